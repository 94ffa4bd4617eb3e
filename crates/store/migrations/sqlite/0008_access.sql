-- Staff accounts with their role grants and API tokens, and patients enrolled into a
-- trial's site with their tokens. Mirrors migrations/postgres/0008_access.sql.
--
-- Tokens are stored only as the SHA-256 of the whole token text: a token is 32 random
-- bytes, so a plain hash is enough to make a stolen database useless for signing in,
-- and lookup by hash needs no per-row salt. Nothing here holds a token in clear.
--
-- Rows are never deleted. A token is revoked by setting revoked_at once; a grant or
-- an enrolment never changes (a new site means a new enrolment decision, which this
-- version does not offer).
CREATE TABLE staff (
    staff_id TEXT NOT NULL PRIMARY KEY CHECK (length(staff_id) BETWEEN 1 AND 64),
    display_name TEXT NOT NULL CHECK (length(trim(display_name)) > 0),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL CHECK (length(created_by) > 0)
) STRICT;

-- One row per role a staff member holds. admin holds no trial; data_manager and
-- monitor hold a trial and every site of it; investigator and site_staff hold one site.
CREATE TABLE staff_grants (
    staff_id TEXT NOT NULL REFERENCES staff (staff_id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'data_manager', 'investigator', 'site_staff', 'monitor')),
    trial_id TEXT NOT NULL DEFAULT '',
    site_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (staff_id, role, trial_id, site_id),
    CHECK (
        (role = 'admin' AND trial_id = '' AND site_id = '')
        OR (role IN ('data_manager', 'monitor') AND trial_id <> '' AND site_id = '')
        OR (role IN ('investigator', 'site_staff') AND trial_id <> '' AND site_id <> '')
    )
) STRICT;

CREATE TABLE staff_tokens (
    token_id TEXT NOT NULL PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES staff (staff_id),
    token_sha256 BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
) STRICT;

CREATE INDEX staff_tokens_staff ON staff_tokens (staff_id);

-- A patient of a trial, known only by the pseudonymous id the site gave them.
CREATE TABLE patients (
    trial_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    site_id TEXT NOT NULL CHECK (length(site_id) > 0),
    enrolled_at TEXT NOT NULL,
    enrolled_by TEXT NOT NULL CHECK (length(enrolled_by) > 0),
    PRIMARY KEY (trial_id, patient_id)
) STRICT;

CREATE TABLE patient_tokens (
    token_id TEXT NOT NULL PRIMARY KEY,
    trial_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    token_sha256 BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    FOREIGN KEY (trial_id, patient_id) REFERENCES patients (trial_id, patient_id)
) STRICT;

CREATE INDEX patient_tokens_patient ON patient_tokens (trial_id, patient_id);

CREATE TRIGGER staff_reject_change BEFORE UPDATE ON staff
BEGIN
    SELECT RAISE(ABORT, 'staff rows are immutable: update rejected');
END;

CREATE TRIGGER staff_reject_delete BEFORE DELETE ON staff
BEGIN
    SELECT RAISE(ABORT, 'staff rows are never deleted: delete rejected');
END;

CREATE TRIGGER staff_grants_reject_change BEFORE UPDATE ON staff_grants
BEGIN
    SELECT RAISE(ABORT, 'staff_grants rows are immutable: update rejected');
END;

CREATE TRIGGER staff_grants_reject_delete BEFORE DELETE ON staff_grants
BEGIN
    SELECT RAISE(ABORT, 'staff_grants rows are never deleted: delete rejected');
END;

CREATE TRIGGER patients_reject_change BEFORE UPDATE ON patients
BEGIN
    SELECT RAISE(ABORT, 'patients rows are immutable: update rejected');
END;

CREATE TRIGGER patients_reject_delete BEFORE DELETE ON patients
BEGIN
    SELECT RAISE(ABORT, 'patients rows are never deleted: delete rejected');
END;

-- Only revoked_at may change, and only from NULL.
CREATE TRIGGER staff_tokens_reject_change
BEFORE UPDATE OF token_id, staff_id, token_sha256, created_at, expires_at ON staff_tokens
BEGIN
    SELECT RAISE(ABORT, 'staff_tokens content is immutable: update rejected');
END;

CREATE TRIGGER staff_tokens_revoke_once BEFORE UPDATE OF revoked_at ON staff_tokens
WHEN OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'staff token already revoked: update rejected');
END;

CREATE TRIGGER staff_tokens_reject_delete BEFORE DELETE ON staff_tokens
BEGIN
    SELECT RAISE(ABORT, 'staff_tokens rows are never deleted: delete rejected');
END;

CREATE TRIGGER patient_tokens_reject_change
BEFORE UPDATE OF token_id, trial_id, patient_id, token_sha256, created_at, expires_at ON patient_tokens
BEGIN
    SELECT RAISE(ABORT, 'patient_tokens content is immutable: update rejected');
END;

CREATE TRIGGER patient_tokens_revoke_once BEFORE UPDATE OF revoked_at ON patient_tokens
WHEN OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'patient token already revoked: update rejected');
END;

CREATE TRIGGER patient_tokens_reject_delete BEFORE DELETE ON patient_tokens
BEGIN
    SELECT RAISE(ABORT, 'patient_tokens rows are never deleted: delete rejected');
END;
