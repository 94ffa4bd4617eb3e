-- Rule engine results: computed scores and intake status on submissions, data queries
-- with their status history, and the derived records of revalidation runs.
--
-- Same conventions as 0001: RFC 3339 UTC timestamps and hyphenated lowercase UUIDs as
-- TEXT, STRICT tables. No table here holds answers. Data query `params` and derived
-- records hold message parameters and computed scores, stored as the caller passed
-- them, so keeping answers out of them is the caller's duty.

-- Rows written before this migration get `scores = '[]'` and `status = 'accepted'`,
-- which is what the service accepted them as. Both columns are written once, at
-- insert, because the append-only triggers of 0001 still reject every UPDATE.
ALTER TABLE submissions ADD COLUMN scores TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(scores) AND json_type(scores) = 'array');

-- `accepted_with_queries` when the rule engine raised at least one data query at
-- intake. Queries raised later by revalidation leave this column as it was.
ALTER TABLE submissions ADD COLUMN status TEXT NOT NULL DEFAULT 'accepted'
    CHECK (status IN ('accepted', 'accepted_with_queries'));

-- Serves revalidation, which pages through one form's submissions in rowid order.
-- SQLite appends the rowid to every index entry, so this index also yields that order.
CREATE INDEX submissions_trial_form ON submissions (trial_id, form_id);

-- Data queries: findings that let a submission in but ask site staff to check an item,
-- like the discrepancy notes of an EDC system. trial_id, form_id and patient_id are
-- copied from the submission row by the INSERT itself, so they always match it.
CREATE TABLE data_queries (
    query_id TEXT NOT NULL PRIMARY KEY,
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    trial_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    -- Version of the form definition whose rules raised the query: the submission's
    -- own version at intake, the version revalidated against otherwise.
    form_version TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    -- linkId of the item the query is about, or '' for the whole form.
    item TEXT NOT NULL,
    -- Finding code, for example rule_violated or score_mismatch.
    code TEXT NOT NULL CHECK (length(code) > 0),
    -- Rule key or score name, or '' when the code alone identifies the finding.
    rule TEXT NOT NULL DEFAULT '',
    -- Parameters of the message shown to site staff, a JSON object.
    params TEXT NOT NULL CHECK (json_valid(params) AND json_type(params) = 'object'),
    status TEXT NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    origin TEXT NOT NULL CHECK (origin IN ('intake', 'revalidation')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

-- One query per finding and submission, so that revalidating the same submission again
-- never raises a query twice. The writer inserts with ON CONFLICT DO NOTHING on it.
CREATE UNIQUE INDEX data_queries_finding ON data_queries (submission_id, item, code, rule);

-- Serve the listings by trial, with and without a status filter, in query_id order.
CREATE INDEX data_queries_trial ON data_queries (trial_id, query_id);
CREATE INDEX data_queries_trial_status ON data_queries (trial_id, status, query_id);

CREATE TRIGGER data_queries_reject_delete BEFORE DELETE ON data_queries
BEGIN
    SELECT RAISE(ABORT, 'data_queries are never deleted: delete rejected');
END;

-- Only the workflow columns (status, updated_at) may change. The trigger fires when a
-- listed column appears in SET, even if its value stays the same.
CREATE TRIGGER data_queries_reject_content_update
BEFORE UPDATE OF query_id, submission_id, trial_id, form_id, form_version, patient_id,
    item, code, rule, params, origin, created_at
ON data_queries
BEGIN
    SELECT RAISE(ABORT, 'data_queries content is immutable: update rejected');
END;

-- Every status change of a data query, written in the same transaction as the UPDATE
-- of data_queries.status. Rows are append-only.
CREATE TABLE data_query_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id TEXT NOT NULL REFERENCES data_queries (query_id),
    occurred_at TEXT NOT NULL,
    actor TEXT NOT NULL CHECK (length(actor) > 0),
    from_status TEXT NOT NULL CHECK (from_status IN ('open', 'answered', 'closed')),
    to_status TEXT NOT NULL CHECK (to_status IN ('open', 'answered', 'closed')),
    -- The reason site staff gave for the change. Required: blank text (spaces, tabs,
    -- line breaks) is rejected.
    comment TEXT NOT NULL CHECK (length(trim(comment, char(9, 10, 13, 32))) > 0),
    request_id TEXT,
    CHECK (from_status <> to_status)
) STRICT;

CREATE INDEX data_query_events_query ON data_query_events (query_id, seq);

CREATE TRIGGER data_query_events_reject_update BEFORE UPDATE ON data_query_events
BEGIN
    SELECT RAISE(ABORT, 'data_query_events is append-only: update rejected');
END;

CREATE TRIGGER data_query_events_reject_delete BEFORE DELETE ON data_query_events
BEGIN
    SELECT RAISE(ABORT, 'data_query_events is append-only: delete rejected');
END;

-- Results of re-running the current rules over a stored submission. They sit beside
-- the submission and never replace its scores or status. No answers: a derived record
-- points at its submission instead. Rows are append-only.
CREATE TABLE derived_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    -- Identifies one revalidation run. Not unique: a run writes one row per submission.
    run_id TEXT NOT NULL CHECK (length(run_id) > 0),
    computed_at TEXT NOT NULL,
    -- Version of the form definition whose rules were run.
    form_version TEXT NOT NULL,
    scores TEXT NOT NULL CHECK (json_valid(scores) AND json_type(scores) = 'array'),
    -- The rule engine's findings, as JSON. Like params, never answers.
    findings TEXT NOT NULL CHECK (json_valid(findings))
) STRICT;

CREATE INDEX derived_records_submission ON derived_records (submission_id, seq);
CREATE INDEX derived_records_run ON derived_records (run_id);

CREATE TRIGGER derived_records_reject_update BEFORE UPDATE ON derived_records
BEGIN
    SELECT RAISE(ABORT, 'derived_records is append-only: update rejected');
END;

CREATE TRIGGER derived_records_reject_delete BEFORE DELETE ON derived_records
BEGIN
    SELECT RAISE(ABORT, 'derived_records is append-only: delete rejected');
END;
