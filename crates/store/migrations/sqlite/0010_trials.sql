-- Trials, their sites and the form versions published into them. Mirrors
-- migrations/postgres/0010_trials.sql.
--
-- Times are RFC 3339 UTC text with exactly six fractional digits (the store's audit
-- time format). Every change writes an audit row in the same transaction
-- (trial.created, site.added, form.published, form.retired) and adds one to
-- catalog_generation.generation, which instances poll to reload their catalogue.
--
-- Nothing here is ever deleted. Trials and sites never change. A form version never
-- changes either, except that it can be retired once: retired_at, retired_by and
-- retire_reason are set together, and then stay.
CREATE TABLE trials (
    trial_id TEXT NOT NULL PRIMARY KEY CHECK (length(trial_id) BETWEEN 1 AND 64),
    title_en TEXT NOT NULL CHECK (length(title_en) > 0),
    title_zh_cn TEXT NOT NULL CHECK (length(title_zh_cn) > 0),
    -- Time from raising an alert to its escalation: the [alerts] table of the trial file.
    acknowledge_within_seconds INTEGER NOT NULL CHECK (acknowledge_within_seconds > 0),
    created_at TEXT NOT NULL,
    -- Who created the trial, for example operator or system.
    created_by TEXT NOT NULL CHECK (length(created_by) > 0)
) STRICT;

CREATE TABLE trial_sites (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    site_id TEXT NOT NULL CHECK (length(site_id) BETWEEN 1 AND 64),
    name TEXT NOT NULL CHECK (length(name) > 0),
    -- The site's name in Simplified Chinese; NULL when it has none of its own.
    name_zh_cn TEXT CHECK (name_zh_cn IS NULL OR length(name_zh_cn) > 0),
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL CHECK (length(added_by) > 0),
    PRIMARY KEY (trial_id, site_id)
) STRICT;

CREATE TABLE form_versions (
    -- Publication order. The newest active version of a form is the one a submission
    -- without a version gets.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    form_id TEXT NOT NULL CHECK (length(form_id) BETWEEN 1 AND 64),
    version TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    format TEXT NOT NULL CHECK (format IN ('fhir-json', 'native-toml')),
    -- The form document byte for byte as published, and its SHA-256.
    source TEXT NOT NULL,
    source_sha256 BLOB NOT NULL CHECK (length(source_sha256) = 32),
    -- What the trial adds to the form document, a JSON object: title, scores, alerts
    -- and Chinese rule messages (a [[forms]] entry of a trial file).
    rules TEXT NOT NULL CHECK (json_valid(rules) AND json_type(rules) = 'object'),
    published_at TEXT NOT NULL,
    published_by TEXT NOT NULL CHECK (length(published_by) > 0),
    retired_at TEXT,
    retired_by TEXT,
    -- Why the version was retired. Required with the retirement: blank text (spaces,
    -- tabs, line breaks) is rejected.
    retire_reason TEXT,
    -- A form id and version are never reused, retired or not.
    UNIQUE (trial_id, form_id, version),
    CHECK (
        (retired_at IS NULL AND retired_by IS NULL AND retire_reason IS NULL)
        OR (retired_at IS NOT NULL AND length(retired_by) > 0
            AND length(trim(retire_reason, char(9, 10, 13, 32))) > 0)
    )
) STRICT;

-- One row that counts the changes to the three tables above.
CREATE TABLE catalog_generation (
    singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    generation INTEGER NOT NULL CHECK (generation >= 0)
) STRICT;
INSERT INTO catalog_generation (singleton, generation) VALUES (1, 0);

CREATE TRIGGER trials_reject_update BEFORE UPDATE ON trials
BEGIN
    SELECT RAISE(ABORT, 'trials are immutable: update rejected');
END;

CREATE TRIGGER trials_reject_delete BEFORE DELETE ON trials
BEGIN
    SELECT RAISE(ABORT, 'trials are never deleted: delete rejected');
END;

CREATE TRIGGER trial_sites_reject_update BEFORE UPDATE ON trial_sites
BEGIN
    SELECT RAISE(ABORT, 'trial_sites are immutable: update rejected');
END;

CREATE TRIGGER trial_sites_reject_delete BEFORE DELETE ON trial_sites
BEGIN
    SELECT RAISE(ABORT, 'trial_sites are never deleted: delete rejected');
END;

CREATE TRIGGER form_versions_reject_delete BEFORE DELETE ON form_versions
BEGIN
    SELECT RAISE(ABORT, 'form_versions are never deleted: delete rejected');
END;

-- Only the retirement columns may change. The trigger fires when a listed column
-- appears in SET, even if its value stays the same.
CREATE TRIGGER form_versions_reject_content_update
BEFORE UPDATE OF seq, trial_id, form_id, version, format, source, source_sha256, rules, published_at,
    published_by
ON form_versions
BEGIN
    SELECT RAISE(ABORT, 'form_versions content is immutable: update rejected');
END;

-- A retirement is final.
CREATE TRIGGER form_versions_reject_retirement_change BEFORE UPDATE ON form_versions
WHEN OLD.retired_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'form_versions retirement is final: update rejected');
END;

CREATE TRIGGER catalog_generation_reject_delete BEFORE DELETE ON catalog_generation
BEGIN
    SELECT RAISE(ABORT, 'catalog_generation is never deleted: delete rejected');
END;

-- The generation only grows, one change at a time.
CREATE TRIGGER catalog_generation_grows BEFORE UPDATE ON catalog_generation
WHEN NEW.generation <> OLD.generation + 1 OR NEW.singleton <> OLD.singleton
BEGIN
    SELECT RAISE(ABORT, 'catalog_generation only grows by one: update rejected');
END;
