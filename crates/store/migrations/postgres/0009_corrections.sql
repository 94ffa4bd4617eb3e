-- Corrections of stored submissions and investigator signatures. Mirrors
-- migrations/sqlite/0009_corrections.sql.
--
-- A submission is never edited in place. The row in `submissions` is version 1 and
-- stays as it was received; each correction adds one row to `submission_versions`
-- with the next version number, the whole answer set after the correction, the items
-- it changed, the scores and status of the rules run again on it, and the reason.
-- Version N+1 is always made from version N (`base_version`), and the primary key
-- makes a second correction from the same version fail.

CREATE TABLE submission_versions (
    submission_id text NOT NULL REFERENCES submissions (submission_id),
    version integer NOT NULL CHECK (version >= 2),
    base_version integer NOT NULL,
    -- Export order, as in `submissions`: the inserting transaction's id, then a number
    -- from the same sequence as `submissions.seq`, so that (xid, seq) is unique across
    -- both tables. The store never writes either column itself.
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq bigint NOT NULL DEFAULT nextval(pg_get_serial_sequence('submissions', 'seq')::regclass),
    -- Copied from the submission by the store, so they always match it.
    trial_id text NOT NULL,
    form_id text NOT NULL,
    form_version text NOT NULL,
    patient_id text NOT NULL,
    -- Every answer of this version in epro's normalized shape, not only the changes.
    -- json, not jsonb, for the reason given for submissions.normalized_answers.
    normalized_answers json NOT NULL,
    -- linkIds whose answers differ from the base version, a JSON array.
    changed_items jsonb NOT NULL CONSTRAINT submission_versions_changed_items_array
        CHECK (jsonb_typeof(changed_items) = 'array'),
    scores jsonb NOT NULL CONSTRAINT submission_versions_scores_array CHECK (jsonb_typeof(scores) = 'array'),
    -- `accepted_with_queries` when the rules raised data queries on this version.
    status text NOT NULL CHECK (status IN ('accepted', 'accepted_with_queries')),
    -- Why the data changed. Required: blank text (spaces, tabs, line breaks) is rejected.
    reason text NOT NULL CONSTRAINT submission_versions_reason_not_blank
        CHECK (length(btrim(reason, E' \t\n\r')) > 0),
    -- Who made the correction, for example operator or staff:S-017.
    actor text NOT NULL CONSTRAINT submission_versions_actor_not_empty CHECK (length(actor) > 0),
    corrected_at timestamptz NOT NULL,
    request_id text,
    -- SHA-256 over the base version, the answers after the correction and the reason,
    -- compared when the same correction is sent again.
    content_sha256 bytea NOT NULL CHECK (length(content_sha256) = 32),
    PRIMARY KEY (submission_id, version),
    CONSTRAINT submission_versions_base_before CHECK (base_version = version - 1)
);

-- Serves the export's pages, as submissions_export does for version 1.
CREATE INDEX submission_versions_export ON submission_versions (trial_id, form_id, xid, seq);

CREATE TRIGGER submission_versions_reject_update BEFORE UPDATE ON submission_versions
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('submission_versions is append-only: update rejected');

CREATE TRIGGER submission_versions_reject_delete BEFORE DELETE ON submission_versions
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('submission_versions is append-only: delete rejected');

CREATE TRIGGER submission_versions_reject_truncate BEFORE TRUNCATE ON submission_versions
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('submission_versions is append-only: truncate rejected');

-- Data queries belong to one version: the rules run again on each correction and
-- raise that version's queries. Rows written before this migration are version 1. A
-- constant default adds the column without rewriting the table.
ALTER TABLE data_queries ADD COLUMN version integer NOT NULL DEFAULT 1
    CONSTRAINT data_queries_version_positive CHECK (version >= 1);

-- One query per finding and version.
DROP INDEX data_queries_finding;
CREATE UNIQUE INDEX data_queries_finding ON data_queries (submission_id, version, item, code, rule);

DROP TRIGGER data_queries_reject_content_update ON data_queries;

CREATE TRIGGER data_queries_reject_content_update
BEFORE UPDATE OF query_id, submission_id, trial_id, form_id, form_version, patient_id,
    item, code, rule, params, origin, created_at, version
ON data_queries
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('data_queries content is immutable: update rejected');

-- Signatures of investigators on one version of a submission. A correction voids the
-- signatures of the versions before it, in its own transaction: only voided_at and
-- voided_by_version change, once. Rows are never deleted.
CREATE TABLE signatures (
    -- UUID v7 text. The "C" collation sorts it byte by byte, which is creation order.
    signature_id text COLLATE "C" NOT NULL PRIMARY KEY,
    submission_id text NOT NULL REFERENCES submissions (submission_id),
    version integer NOT NULL CHECK (version >= 1),
    -- Who signed, for example operator or staff:S-017.
    signer text NOT NULL CONSTRAINT signatures_signer_not_empty CHECK (length(signer) > 0),
    -- What the signature means, for example "reviewed and approved".
    meaning text NOT NULL CONSTRAINT signatures_meaning_not_blank CHECK (length(btrim(meaning, E' \t\n\r')) > 0),
    signed_at timestamptz NOT NULL,
    request_id text,
    voided_at timestamptz,
    -- The correction whose version voided the signature.
    voided_by_version integer,
    CONSTRAINT signatures_void_complete CHECK (
        (voided_at IS NULL AND voided_by_version IS NULL)
        OR (voided_at IS NOT NULL AND voided_by_version > version)
    )
);

CREATE INDEX signatures_submission ON signatures (submission_id, signature_id);

-- A signer signs a version with one meaning once; a retry finds the first signature.
CREATE UNIQUE INDEX signatures_once ON signatures (submission_id, version, signer, meaning)
    WHERE voided_at IS NULL;

CREATE TRIGGER signatures_reject_delete BEFORE DELETE ON signatures
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('signatures are never deleted: delete rejected');

CREATE TRIGGER signatures_reject_truncate BEFORE TRUNCATE ON signatures
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('signatures are never deleted: truncate rejected');

-- Only the void columns may change. The trigger fires when a listed column appears in
-- SET, even if its value stays the same.
CREATE TRIGGER signatures_reject_content_update
BEFORE UPDATE OF signature_id, submission_id, version, signer, meaning, signed_at, request_id
ON signatures
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('signatures content is immutable: update rejected');

-- A void is final.
CREATE TRIGGER signatures_reject_void_change BEFORE UPDATE ON signatures
FOR EACH ROW
WHEN (OLD.voided_at IS NOT NULL)
EXECUTE FUNCTION epro_reject_change('signatures are voided once: update rejected');

-- The version whose rules raised an alert: 1 for alerts raised at intake, the new
-- version's number for alerts the rules raise again on a correction.
ALTER TABLE alerts ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);
