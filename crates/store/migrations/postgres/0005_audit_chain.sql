-- Tamper evidence and targets for the audit trail. Mirrors
-- migrations/sqlite/0005_audit_chain.sql.
--
-- Each row gets a SHA-256 `hash` over the previous row's hash and its own canonical
-- content (the store's `audit` module defines the canonical form), and keeps that
-- previous hash in `prev_hash`. Changing, inserting or deleting a row in the middle
-- breaks the chain at that row, which `epro audit verify` reports. The store appends
-- rows under a transaction-level advisory lock and numbers them itself, so `seq`
-- follows commit order and has no gaps from here on, even with several instances.
--
-- Rows written before this migration have no hash. The store hashes them once, in
-- `seq` order, when it opens the database; the update trigger allows exactly that:
-- filling `prev_hash` and `hash` of a row that has none, with nothing else changed.
--
-- `before_value` and `after_value` are `json`, not `jsonb`, because the hash covers
-- their text and `json` keeps the text as written.
ALTER TABLE audit_events
    ADD COLUMN trial_id text,
    ADD COLUMN patient_id text,
    ADD COLUMN submission_id text,
    ADD COLUMN before_value json,
    ADD COLUMN after_value json,
    ADD COLUMN prev_hash bytea CONSTRAINT audit_events_prev_hash_length CHECK (length(prev_hash) = 32),
    ADD COLUMN hash bytea CONSTRAINT audit_events_hash_length CHECK (length(hash) = 32);

CREATE INDEX audit_events_submission ON audit_events (submission_id, seq) WHERE submission_id IS NOT NULL;
CREATE INDEX audit_events_patient ON audit_events (patient_id, seq) WHERE patient_id IS NOT NULL;

CREATE FUNCTION epro_audit_allow_seal_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hash IS NULL AND NEW.hash IS NOT NULL
        AND NEW.seq = OLD.seq
        AND NEW.occurred_at = OLD.occurred_at
        AND NEW.actor = OLD.actor
        AND NEW.action = OLD.action
        AND NEW.entity = OLD.entity
        AND NEW.entity_id = OLD.entity_id
        AND NEW.request_id IS NOT DISTINCT FROM OLD.request_id
        AND NEW.reason IS NOT DISTINCT FROM OLD.reason
        AND NEW.trial_id IS NOT DISTINCT FROM OLD.trial_id
        AND NEW.patient_id IS NOT DISTINCT FROM OLD.patient_id
        AND NEW.submission_id IS NOT DISTINCT FROM OLD.submission_id
        AND NEW.before_value::text IS NOT DISTINCT FROM OLD.before_value::text
        AND NEW.after_value::text IS NOT DISTINCT FROM OLD.after_value::text
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: update rejected';
END
$$;

DROP TRIGGER audit_events_reject_update ON audit_events;

CREATE TRIGGER audit_events_reject_update BEFORE UPDATE ON audit_events
FOR EACH ROW EXECUTE FUNCTION epro_audit_allow_seal_only();
