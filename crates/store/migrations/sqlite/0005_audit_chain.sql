-- Tamper evidence and targets for the audit trail. Mirrors
-- migrations/postgres/0005_audit_chain.sql.
--
-- Each row gets a SHA-256 `hash` over the previous row's hash and its own canonical
-- content (the store's `audit` module defines the canonical form), and keeps that
-- previous hash in `prev_hash`. Changing, inserting or deleting a row in the middle
-- breaks the chain at that row, which `epro audit verify` reports. The store writes
-- both columns when it appends a row, reading the chain's head in the same
-- transaction.
--
-- Rows written before this migration have no hash. The store hashes them once, in
-- `seq` order, when it opens the database; the update trigger allows exactly that:
-- filling `prev_hash` and `hash` of a row that has none, with nothing else changed.
--
-- `trial_id`, `patient_id` and `submission_id` name what the action concerns, so the
-- trail can be filtered by them. `before_value` and `after_value` hold the changed
-- values of a data change as JSON (a query's status before and after, say).
ALTER TABLE audit_events ADD COLUMN trial_id TEXT;
ALTER TABLE audit_events ADD COLUMN patient_id TEXT;
ALTER TABLE audit_events ADD COLUMN submission_id TEXT;
ALTER TABLE audit_events ADD COLUMN before_value TEXT CHECK (before_value IS NULL OR json_valid(before_value));
ALTER TABLE audit_events ADD COLUMN after_value TEXT CHECK (after_value IS NULL OR json_valid(after_value));
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB CHECK (prev_hash IS NULL OR length(prev_hash) = 32);
ALTER TABLE audit_events ADD COLUMN hash BLOB CHECK (hash IS NULL OR length(hash) = 32);

-- Rows of a submission, whatever their entity (the submission, its data queries).
CREATE INDEX audit_events_submission ON audit_events (submission_id, seq) WHERE submission_id IS NOT NULL;
CREATE INDEX audit_events_patient ON audit_events (patient_id, seq) WHERE patient_id IS NOT NULL;

DROP TRIGGER audit_events_reject_update;

CREATE TRIGGER audit_events_reject_update BEFORE UPDATE ON audit_events
WHEN OLD.hash IS NOT NULL
    OR NEW.hash IS NULL
    OR NEW.seq IS NOT OLD.seq
    OR NEW.occurred_at IS NOT OLD.occurred_at
    OR NEW.actor IS NOT OLD.actor
    OR NEW.action IS NOT OLD.action
    OR NEW.entity IS NOT OLD.entity
    OR NEW.entity_id IS NOT OLD.entity_id
    OR NEW.request_id IS NOT OLD.request_id
    OR NEW.reason IS NOT OLD.reason
    OR NEW.trial_id IS NOT OLD.trial_id
    OR NEW.patient_id IS NOT OLD.patient_id
    OR NEW.submission_id IS NOT OLD.submission_id
    OR NEW.before_value IS NOT OLD.before_value
    OR NEW.after_value IS NOT OLD.after_value
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: update rejected');
END;
