-- Initial schema: submissions, the transactional outbox and the audit trail.
--
-- Timestamps are TEXT in RFC 3339 with a `Z` suffix (UTC). UUIDs are TEXT in the
-- hyphenated lowercase form. All tables are STRICT, so a value of the wrong type is
-- rejected instead of being stored with type affinity.

-- One row per accepted questionnaire submission. Rows are append-only: a correction
-- is a new submission, never an UPDATE.
CREATE TABLE submissions (
    submission_id TEXT NOT NULL PRIMARY KEY,
    trial_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    form_version TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    -- The instant the patient completed the form, in UTC. The device's UTC offset is
    -- kept separately so that the local time can be rebuilt.
    completed_at TEXT NOT NULL,
    completed_at_offset_seconds INTEGER NOT NULL
        CHECK (completed_at_offset_seconds BETWEEN -86399 AND 86399),
    received_at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('native', 'fhir', 'seed')),
    -- The answers exactly as received, byte for byte.
    raw_answers TEXT NOT NULL CHECK (json_valid(raw_answers)),
    normalized_answers TEXT NOT NULL CHECK (json_valid(normalized_answers)),
    -- SHA-256 of the submitted content, compared when the same submission_id arrives again.
    content_sha256 BLOB NOT NULL CHECK (length(content_sha256) = 32),
    request_id TEXT
) STRICT;

CREATE TRIGGER submissions_reject_update BEFORE UPDATE ON submissions
BEGIN
    SELECT RAISE(ABORT, 'submissions is append-only: update rejected');
END;

CREATE TRIGGER submissions_reject_delete BEFORE DELETE ON submissions
BEGIN
    SELECT RAISE(ABORT, 'submissions is append-only: delete rejected');
END;

-- Events waiting to be relayed to the sink, written in the same transaction as the
-- row they describe. AUTOINCREMENT keeps `seq` increasing even if old rows are purged,
-- so the relay's ordering never goes back in time.
CREATE TABLE outbox_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error TEXT,
    delivered_at TEXT
) STRICT;

-- Serves the relay's query for undelivered events in `seq` order.
CREATE INDEX outbox_events_pending ON outbox_events (seq) WHERE delivered_at IS NULL;

-- Only the delivery columns (attempts, last_error, delivered_at) may change.
CREATE TRIGGER outbox_events_reject_content_update
BEFORE UPDATE OF seq, event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload
ON outbox_events
BEGIN
    SELECT RAISE(ABORT, 'outbox_events content is immutable: update rejected');
END;

-- Who did what to which entity. Never contains answers. Rows are append-only.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at TEXT NOT NULL,
    actor TEXT NOT NULL CHECK (length(actor) > 0),
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    request_id TEXT
) STRICT;

CREATE INDEX audit_events_entity ON audit_events (entity, entity_id);

CREATE TRIGGER audit_events_reject_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: update rejected');
END;

CREATE TRIGGER audit_events_reject_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: delete rejected');
END;
