-- Trials, their sites and the form versions published into them. Mirrors
-- migrations/sqlite/0010_trials.sql.
--
-- Every change writes an audit row in the same transaction (trial.created,
-- site.added, form.published, form.retired) and adds one to
-- catalog_generation.generation, which instances poll to reload their catalogue.
-- Updating that one row also serializes catalogue writes across instances.
--
-- Nothing here is ever deleted. Trials and sites never change. A form version never
-- changes either, except that it can be retired once: retired_at, retired_by and
-- retire_reason are set together, and then stay.
CREATE TABLE trials (
    trial_id text NOT NULL PRIMARY KEY CHECK (length(trial_id) BETWEEN 1 AND 64),
    title_en text NOT NULL CHECK (length(title_en) > 0),
    title_zh_cn text NOT NULL CHECK (length(title_zh_cn) > 0),
    -- Time from raising an alert to its escalation: the [alerts] table of the trial file.
    acknowledge_within_seconds bigint NOT NULL CHECK (acknowledge_within_seconds > 0),
    created_at timestamptz NOT NULL,
    -- Who created the trial, for example operator or system.
    created_by text NOT NULL CHECK (length(created_by) > 0)
);

CREATE TABLE trial_sites (
    trial_id text NOT NULL REFERENCES trials (trial_id),
    site_id text NOT NULL CHECK (length(site_id) BETWEEN 1 AND 64),
    name text NOT NULL CHECK (length(name) > 0),
    -- The site's name in Simplified Chinese; NULL when it has none of its own.
    name_zh_cn text CHECK (name_zh_cn IS NULL OR length(name_zh_cn) > 0),
    added_at timestamptz NOT NULL,
    added_by text NOT NULL CHECK (length(added_by) > 0),
    PRIMARY KEY (trial_id, site_id)
);

CREATE TABLE form_versions (
    -- Publication order. The newest active version of a form is the one a submission
    -- without a version gets.
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trial_id text NOT NULL REFERENCES trials (trial_id),
    form_id text NOT NULL CHECK (length(form_id) BETWEEN 1 AND 64),
    version text NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    format text NOT NULL CHECK (format IN ('fhir-json', 'native-toml')),
    -- The form document byte for byte as published, and its SHA-256.
    source text NOT NULL,
    source_sha256 bytea NOT NULL CHECK (length(source_sha256) = 32),
    -- What the trial adds to the form document, a JSON object: title, scores, alerts
    -- and Chinese rule messages (a [[forms]] entry of a trial file). Kept as json, not
    -- jsonb, so that it reads back byte for byte.
    rules json NOT NULL CHECK (json_typeof(rules) = 'object'),
    published_at timestamptz NOT NULL,
    published_by text NOT NULL CHECK (length(published_by) > 0),
    retired_at timestamptz,
    retired_by text,
    -- Why the version was retired. Required with the retirement: blank text (spaces,
    -- tabs, line breaks) is rejected.
    retire_reason text,
    -- A form id and version are never reused, retired or not.
    CONSTRAINT form_versions_unique_version UNIQUE (trial_id, form_id, version),
    CONSTRAINT form_versions_retirement_complete CHECK (
        (retired_at IS NULL AND retired_by IS NULL AND retire_reason IS NULL)
        OR (retired_at IS NOT NULL AND length(retired_by) > 0
            AND length(btrim(retire_reason, E' \t\n\r')) > 0)
    )
);

-- One row that counts the changes to the three tables above.
CREATE TABLE catalog_generation (
    singleton integer NOT NULL PRIMARY KEY CHECK (singleton = 1),
    generation bigint NOT NULL CHECK (generation >= 0)
);
INSERT INTO catalog_generation (singleton, generation) VALUES (1, 0);

CREATE TRIGGER trials_reject_update BEFORE UPDATE ON trials
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('trials are immutable: update rejected');

CREATE TRIGGER trials_reject_delete BEFORE DELETE ON trials
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('trials are never deleted: delete rejected');

CREATE TRIGGER trials_reject_truncate BEFORE TRUNCATE ON trials
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('trials are never deleted: truncate rejected');

CREATE TRIGGER trial_sites_reject_update BEFORE UPDATE ON trial_sites
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('trial_sites are immutable: update rejected');

CREATE TRIGGER trial_sites_reject_delete BEFORE DELETE ON trial_sites
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('trial_sites are never deleted: delete rejected');

CREATE TRIGGER trial_sites_reject_truncate BEFORE TRUNCATE ON trial_sites
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('trial_sites are never deleted: truncate rejected');

CREATE TRIGGER form_versions_reject_delete BEFORE DELETE ON form_versions
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('form_versions are never deleted: delete rejected');

CREATE TRIGGER form_versions_reject_truncate BEFORE TRUNCATE ON form_versions
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('form_versions are never deleted: truncate rejected');

-- Only the retirement columns may change. The trigger fires when a listed column
-- appears in SET, even if its value stays the same.
CREATE TRIGGER form_versions_reject_content_update
BEFORE UPDATE OF seq, trial_id, form_id, version, format, source, source_sha256, rules, published_at,
    published_by
ON form_versions
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('form_versions content is immutable: update rejected');

-- A retirement is final.
CREATE TRIGGER form_versions_reject_retirement_change BEFORE UPDATE ON form_versions
FOR EACH ROW
WHEN (OLD.retired_at IS NOT NULL)
EXECUTE FUNCTION epro_reject_change('form_versions retirement is final: update rejected');

CREATE TRIGGER catalog_generation_reject_delete BEFORE DELETE ON catalog_generation
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('catalog_generation is never deleted: delete rejected');

CREATE TRIGGER catalog_generation_reject_truncate BEFORE TRUNCATE ON catalog_generation
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('catalog_generation is never deleted: truncate rejected');

-- The generation only grows, one change at a time.
CREATE TRIGGER catalog_generation_grows BEFORE UPDATE ON catalog_generation
FOR EACH ROW
WHEN (NEW.generation <> OLD.generation + 1 OR NEW.singleton <> OLD.singleton)
EXECUTE FUNCTION epro_reject_change('catalog_generation only grows by one: update rejected');
