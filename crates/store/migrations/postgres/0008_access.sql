-- Staff accounts with their role grants and API tokens, and patients enrolled into a
-- trial's site with their tokens. Mirrors migrations/sqlite/0008_access.sql.
--
-- Tokens are stored only as the SHA-256 of the whole token text: a token is 32 random
-- bytes, so a plain hash is enough to make a stolen database useless for signing in,
-- and lookup by hash needs no per-row salt. Nothing here holds a token in clear.
--
-- Rows are never deleted. A token is revoked by setting revoked_at once; a grant or
-- an enrolment never changes.
CREATE TABLE staff (
    staff_id text NOT NULL PRIMARY KEY CHECK (length(staff_id) BETWEEN 1 AND 64),
    display_name text NOT NULL CHECK (length(trim(display_name)) > 0),
    created_at timestamptz NOT NULL,
    created_by text NOT NULL CHECK (length(created_by) > 0)
);

-- One row per role a staff member holds. admin holds no trial; data_manager and
-- monitor hold a trial and every site of it; investigator and site_staff hold one site.
CREATE TABLE staff_grants (
    staff_id text NOT NULL REFERENCES staff (staff_id),
    role text NOT NULL CHECK (role IN ('admin', 'data_manager', 'investigator', 'site_staff', 'monitor')),
    trial_id text NOT NULL DEFAULT '',
    site_id text NOT NULL DEFAULT '',
    PRIMARY KEY (staff_id, role, trial_id, site_id),
    CHECK (
        (role = 'admin' AND trial_id = '' AND site_id = '')
        OR (role IN ('data_manager', 'monitor') AND trial_id <> '' AND site_id = '')
        OR (role IN ('investigator', 'site_staff') AND trial_id <> '' AND site_id <> '')
    )
);

CREATE TABLE staff_tokens (
    token_id text NOT NULL PRIMARY KEY,
    staff_id text NOT NULL REFERENCES staff (staff_id),
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

CREATE INDEX staff_tokens_staff ON staff_tokens (staff_id);

-- A patient of a trial, known only by the pseudonymous id the site gave them.
CREATE TABLE patients (
    trial_id text NOT NULL,
    patient_id text NOT NULL,
    site_id text NOT NULL CHECK (length(site_id) > 0),
    enrolled_at timestamptz NOT NULL,
    enrolled_by text NOT NULL CHECK (length(enrolled_by) > 0),
    PRIMARY KEY (trial_id, patient_id)
);

CREATE TABLE patient_tokens (
    token_id text NOT NULL PRIMARY KEY,
    trial_id text NOT NULL,
    patient_id text NOT NULL,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    FOREIGN KEY (trial_id, patient_id) REFERENCES patients (trial_id, patient_id)
);

CREATE INDEX patient_tokens_patient ON patient_tokens (trial_id, patient_id);

CREATE TRIGGER staff_reject_update BEFORE UPDATE ON staff
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('staff rows are immutable: update rejected');
CREATE TRIGGER staff_reject_delete BEFORE DELETE ON staff
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('staff rows are never deleted: delete rejected');
CREATE TRIGGER staff_reject_truncate BEFORE TRUNCATE ON staff
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('staff rows are never deleted: truncate rejected');

CREATE TRIGGER staff_grants_reject_update BEFORE UPDATE ON staff_grants
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('staff_grants rows are immutable: update rejected');
CREATE TRIGGER staff_grants_reject_delete BEFORE DELETE ON staff_grants
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('staff_grants rows are never deleted: delete rejected');
CREATE TRIGGER staff_grants_reject_truncate BEFORE TRUNCATE ON staff_grants
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('staff_grants rows are never deleted: truncate rejected');

CREATE TRIGGER patients_reject_update BEFORE UPDATE ON patients
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('patients rows are immutable: update rejected');
CREATE TRIGGER patients_reject_delete BEFORE DELETE ON patients
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('patients rows are never deleted: delete rejected');
CREATE TRIGGER patients_reject_truncate BEFORE TRUNCATE ON patients
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('patients rows are never deleted: truncate rejected');

-- Only revoked_at may change, and only from NULL.
CREATE TRIGGER staff_tokens_reject_update
BEFORE UPDATE OF token_id, staff_id, token_sha256, created_at, expires_at ON staff_tokens
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('staff_tokens content is immutable: update rejected');
CREATE TRIGGER staff_tokens_revoke_once BEFORE UPDATE OF revoked_at ON staff_tokens
FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
EXECUTE FUNCTION epro_reject_change('staff token already revoked: update rejected');
CREATE TRIGGER staff_tokens_reject_delete BEFORE DELETE ON staff_tokens
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('staff_tokens rows are never deleted: delete rejected');
CREATE TRIGGER staff_tokens_reject_truncate BEFORE TRUNCATE ON staff_tokens
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('staff_tokens rows are never deleted: truncate rejected');

CREATE TRIGGER patient_tokens_reject_update
BEFORE UPDATE OF token_id, trial_id, patient_id, token_sha256, created_at, expires_at ON patient_tokens
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('patient_tokens content is immutable: update rejected');
CREATE TRIGGER patient_tokens_revoke_once BEFORE UPDATE OF revoked_at ON patient_tokens
FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
EXECUTE FUNCTION epro_reject_change('patient token already revoked: update rejected');
CREATE TRIGGER patient_tokens_reject_delete BEFORE DELETE ON patient_tokens
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('patient_tokens rows are never deleted: delete rejected');
CREATE TRIGGER patient_tokens_reject_truncate BEFORE TRUNCATE ON patient_tokens
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('patient_tokens rows are never deleted: truncate rejected');
