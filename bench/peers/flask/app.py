"""Flask peer of the epro benchmark.

The PHQ-9 intake endpoint ``POST /api/collection/submit`` written the way
the system epro replaces was written: Flask under gunicorn's sync workers,
one psycopg2 connection per worker process and one transaction per request.

Each request is validated (all nine PHQ-9 items present with one of the four
LOINC answer codes, completedAt in RFC 3339 with an offset and not in the
future), scored, and stored as one submission row plus one outbox row in a
single transaction. The reply is sent after the commit.

The database comes from the DATABASE_URL environment variable (a libpq URL).
"""

import datetime
import json
import logging
import os
import re
import uuid

import psycopg2
import psycopg2.errors
from flask import Flask, jsonify, request

TRIAL_ID = "demo"
FORM_ID = "phq9"
MAX_BODY_BYTES = 1 << 20

# How far completedAt may lie ahead of the server's clock, the same allowance
# as epro's default http.clock_skew_seconds.
CLOCK_SKEW = datetime.timedelta(seconds=300)

# The linkIds of the nine PHQ-9 questions.
PHQ9_ITEMS = (
    "/44250-9", "/44255-8", "/44259-0", "/44254-1", "/44251-7",
    "/44258-2", "/44252-5", "/44253-3", "/44260-8",
)

# Each LOINC answer code of the PHQ-9 and its score.
ANSWER_SCORES = {
    "LA6568-5": 0,  # Not at all
    "LA6569-3": 1,  # Several days
    "LA6570-1": 2,  # More than half the days
    "LA6571-9": 3,  # Nearly every day
}

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")

# datetime.fromisoformat accepts more than RFC 3339 (no offset, week dates,
# a space separator), so the shape is checked first.
RFC3339_PATTERN = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/epro_bench_flask"
)

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
log = logging.getLogger("peer")

# One connection per worker process, opened on its first request. Sync
# workers serve one request at a time, so the connection is never shared.
_connection = None


def connection():
    """Return this worker's database connection, reopening it after it was closed."""
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg2.connect(DATABASE_URL)
    return _connection


def error(status, message, problems=()):
    body = {"status": "error", "message": message}
    if problems:
        body["errors"] = list(problems)
    return jsonify(body), status


def parse_completed_at(text, now):
    """Return the parsed time and None, or None and the problem."""
    if not isinstance(text, str):
        return None, "completedAt: required"
    if not RFC3339_PATTERN.fullmatch(text):
        return None, (
            "completedAt: must be RFC 3339 with an offset,"
            " such as 2026-12-04T20:15:00+08:00"
        )
    try:
        moment = datetime.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None, "completedAt: not a valid date and time"
    if moment > now + CLOCK_SKEW:
        return None, "completedAt: in the future"
    return moment, None


def validate(body, idempotency_key, now):
    """Check the envelope and the answers, and return the submission with every problem found."""
    problems = []
    submission = {}

    known_fields = {"patientId", "trialId", "formId", "formContent"}
    problems += [f"{field}: unknown field" for field in body if field not in known_fields]

    patient_id = body.get("patientId")
    if not isinstance(patient_id, str) or not ID_PATTERN.fullmatch(patient_id):
        problems.append("patientId: must be 1-64 letters, digits, '.', '_' or '-'")
    submission["patient_id"] = patient_id
    if body.get("trialId") != TRIAL_ID:
        problems.append("trialId: unknown trial")
    if body.get("formId", FORM_ID) != FORM_ID:
        problems.append("formId: unknown form")

    if idempotency_key is None:
        submission["id"] = str(uuid.uuid4())
    else:
        try:
            submission["id"] = str(uuid.UUID(idempotency_key))
        except ValueError:
            problems.append("Idempotency-Key: must be a UUID")

    raw = body.get("formContent")
    if not isinstance(raw, str):
        problems.append("formContent: required, a JSON string")
        return submission, problems
    submission["raw_answers"] = raw
    try:
        content = json.loads(raw)
    except ValueError:
        content = None
    if not isinstance(content, dict):
        problems.append("formContent: must be a JSON object")
        return submission, problems

    total = 0
    for item in PHQ9_ITEMS:
        code = content.get(item)
        if item not in content:
            problems.append(f"{item}: required")
        elif not isinstance(code, str) or code not in ANSWER_SCORES:
            problems.append(f"{item}: not one of {', '.join(ANSWER_SCORES)}")
        else:
            total += ANSWER_SCORES[code]
    submission["total_score"] = total

    completed_at, problem = parse_completed_at(content.get("completedAt"), now)
    if problem:
        problems.append(problem)
    submission["completed_at"] = completed_at

    allowed = set(PHQ9_ITEMS) | {"completedAt"}
    problems += [f"{key}: not an item of the PHQ-9" for key in content if key not in allowed]
    return submission, problems


def store(submission):
    """Write the submission and its outbox row in one transaction."""
    event = json.dumps({
        "submissionId": submission["id"],
        "trialId": TRIAL_ID,
        "formId": FORM_ID,
        "patientId": submission["patient_id"],
        "totalScore": submission["total_score"],
    })
    conn = connection()
    # The connection's context manager commits on success and rolls back on
    # an exception, but it does not close the connection.
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO submissions (submission_id, trial_id, form_id, patient_id,"
            " completed_at, total_score, raw_answers)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (submission["id"], TRIAL_ID, FORM_ID, submission["patient_id"],
             submission["completed_at"], submission["total_score"],
             submission["raw_answers"]),
        )
        cursor.execute(
            "INSERT INTO outbox_events (submission_id, event_type, payload)"
            " VALUES (%s, 'SubmissionReceived', %s)",
            (submission["id"], event),
        )


@app.post("/api/collection/submit")
def submit():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "invalid JSON body: expected an object")

    now = datetime.datetime.now(datetime.timezone.utc)
    submission, problems = validate(body, request.headers.get("Idempotency-Key"), now)
    if problems:
        return error(400, "the submission was not stored", problems)

    try:
        store(submission)
    except psycopg2.errors.UniqueViolation:
        log.warning("rejected submission %s: id already stored", submission["id"])
        return error(409, "submission id already stored")
    except psycopg2.Error:
        log.exception("failed to store submission %s", submission["id"])
        return error(500, "internal error")

    return jsonify({
        "status": "success",
        "message": "Submission received.",
        "submissionId": submission["id"],
        "totalScore": submission["total_score"],
    })
