-- Corrections of stored submissions and investigator signatures. Mirrors
-- migrations/postgres/0009_corrections.sql.
--
-- A submission is never edited in place. The row in `submissions` is version 1 and
-- stays as it was received; each correction adds one row to `submission_versions`
-- with the next version number, the whole answer set after the correction, the items
-- it changed, the scores and status of the rules run again on it, and the reason.
-- Version N+1 is always made from version N (`base_version`), and the primary key
-- makes a second correction from the same version fail.
--
-- Same conventions as 0001: RFC 3339 UTC timestamps and hyphenated lowercase UUIDs as
-- TEXT, STRICT tables. Times written by the correction and signature code have
-- exactly six fractional digits, like the audit trail's.

CREATE TABLE submission_versions (
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    version INTEGER NOT NULL CHECK (version >= 2),
    base_version INTEGER NOT NULL,
    -- Copied from the submission by the INSERT itself, so they always match it.
    trial_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    form_version TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    -- Every answer of this version in epro's normalized shape, not only the changes.
    normalized_answers TEXT NOT NULL CHECK (json_valid(normalized_answers)),
    -- linkIds whose answers differ from the base version, a JSON array.
    changed_items TEXT NOT NULL CHECK (json_valid(changed_items) AND json_type(changed_items) = 'array'),
    scores TEXT NOT NULL CHECK (json_valid(scores) AND json_type(scores) = 'array'),
    -- `accepted_with_queries` when the rules raised data queries on this version.
    status TEXT NOT NULL CHECK (status IN ('accepted', 'accepted_with_queries')),
    -- Why the data changed. Required: blank text (spaces, tabs, line breaks) is rejected.
    reason TEXT NOT NULL CHECK (length(trim(reason, char(9, 10, 13, 32))) > 0),
    -- Who made the correction, for example operator or staff:S-017.
    actor TEXT NOT NULL CHECK (length(actor) > 0),
    corrected_at TEXT NOT NULL,
    request_id TEXT,
    -- SHA-256 over the base version, the answers after the correction and the reason,
    -- compared when the same correction is sent again.
    content_sha256 BLOB NOT NULL CHECK (length(content_sha256) = 32),
    PRIMARY KEY (submission_id, version),
    CHECK (base_version = version - 1)
) STRICT;

CREATE TRIGGER submission_versions_reject_update BEFORE UPDATE ON submission_versions
BEGIN
    SELECT RAISE(ABORT, 'submission_versions is append-only: update rejected');
END;

CREATE TRIGGER submission_versions_reject_delete BEFORE DELETE ON submission_versions
BEGIN
    SELECT RAISE(ABORT, 'submission_versions is append-only: delete rejected');
END;

-- The commit order now holds every version, so that an incremental export picks up
-- corrections stored after its cursor. `submission_id` was UNIQUE, and SQLite cannot
-- drop a constraint, so the table is rebuilt with its rows, their `seq` values and its
-- AUTOINCREMENT counter. DROP TABLE removes the table's triggers before it deletes
-- the rows, so the append-only triggers do not fire.
DROP TRIGGER submissions_record_sequence;

CREATE TABLE submission_sequence_by_version (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    version INTEGER NOT NULL CHECK (version >= 1),
    trial_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    UNIQUE (submission_id, version)
) STRICT;

INSERT INTO submission_sequence_by_version (seq, submission_id, version, trial_id, form_id)
SELECT seq, submission_id, 1, trial_id, form_id FROM submission_sequence ORDER BY seq;

-- AUTOINCREMENT never reuses a `seq`, also one above the highest row left.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'submission_sequence_by_version', seq FROM sqlite_sequence
WHERE name = 'submission_sequence'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'submission_sequence_by_version');
UPDATE sqlite_sequence
SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'submission_sequence'))
WHERE name = 'submission_sequence_by_version'
  AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'submission_sequence');

DROP TABLE submission_sequence;
ALTER TABLE submission_sequence_by_version RENAME TO submission_sequence;

CREATE INDEX submission_sequence_form ON submission_sequence (trial_id, form_id, seq);

-- The writer inserts submissions with ON CONFLICT DO NOTHING, and a resubmission that
-- inserts nothing fires no AFTER INSERT trigger, so every version gets exactly one row.
CREATE TRIGGER submissions_record_sequence AFTER INSERT ON submissions
BEGIN
    INSERT INTO submission_sequence (submission_id, version, trial_id, form_id)
    VALUES (NEW.submission_id, 1, NEW.trial_id, NEW.form_id);
END;

CREATE TRIGGER submission_versions_record_sequence AFTER INSERT ON submission_versions
BEGIN
    INSERT INTO submission_sequence (submission_id, version, trial_id, form_id)
    VALUES (NEW.submission_id, NEW.version, NEW.trial_id, NEW.form_id);
END;

CREATE TRIGGER submission_sequence_reject_update BEFORE UPDATE ON submission_sequence
BEGIN
    SELECT RAISE(ABORT, 'submission_sequence is append-only: update rejected');
END;

CREATE TRIGGER submission_sequence_reject_delete BEFORE DELETE ON submission_sequence
BEGIN
    SELECT RAISE(ABORT, 'submission_sequence is append-only: delete rejected');
END;

-- Data queries belong to one version: the rules run again on each correction and
-- raise that version's queries. Rows written before this migration are version 1.
ALTER TABLE data_queries ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);

-- One query per finding and version.
DROP INDEX data_queries_finding;
CREATE UNIQUE INDEX data_queries_finding ON data_queries (submission_id, version, item, code, rule);

DROP TRIGGER data_queries_reject_content_update;

CREATE TRIGGER data_queries_reject_content_update
BEFORE UPDATE OF query_id, submission_id, trial_id, form_id, form_version, patient_id,
    item, code, rule, params, origin, created_at, version
ON data_queries
BEGIN
    SELECT RAISE(ABORT, 'data_queries content is immutable: update rejected');
END;

-- Signatures of investigators on one version of a submission. A correction voids the
-- signatures of the versions before it, in its own transaction: only voided_at and
-- voided_by_version change, once. Rows are never deleted.
CREATE TABLE signatures (
    -- UUID v7, so signature ids sort in creation order.
    signature_id TEXT NOT NULL PRIMARY KEY,
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    version INTEGER NOT NULL CHECK (version >= 1),
    -- Who signed, for example operator or staff:S-017.
    signer TEXT NOT NULL CHECK (length(signer) > 0),
    -- What the signature means, for example "reviewed and approved".
    meaning TEXT NOT NULL CHECK (length(trim(meaning, char(9, 10, 13, 32))) > 0),
    signed_at TEXT NOT NULL,
    request_id TEXT,
    voided_at TEXT,
    -- The correction whose version voided the signature.
    voided_by_version INTEGER,
    CHECK (
        (voided_at IS NULL AND voided_by_version IS NULL)
        OR (voided_at IS NOT NULL AND voided_by_version > version)
    )
) STRICT;

CREATE INDEX signatures_submission ON signatures (submission_id, signature_id);

-- A signer signs a version with one meaning once; a retry finds the first signature.
CREATE UNIQUE INDEX signatures_once ON signatures (submission_id, version, signer, meaning)
    WHERE voided_at IS NULL;

CREATE TRIGGER signatures_reject_delete BEFORE DELETE ON signatures
BEGIN
    SELECT RAISE(ABORT, 'signatures are never deleted: delete rejected');
END;

-- Only the void columns may change. The trigger fires when a listed column appears in
-- SET, even if its value stays the same.
CREATE TRIGGER signatures_reject_content_update
BEFORE UPDATE OF signature_id, submission_id, version, signer, meaning, signed_at, request_id
ON signatures
BEGIN
    SELECT RAISE(ABORT, 'signatures content is immutable: update rejected');
END;

-- A void is final.
CREATE TRIGGER signatures_reject_void_change BEFORE UPDATE ON signatures
WHEN OLD.voided_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'signatures are voided once: update rejected');
END;

-- The version whose rules raised an alert: 1 for alerts raised at intake, the new
-- version's number for alerts the rules raise again on a correction.
ALTER TABLE alerts ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);
