-- Rule engine results: computed scores and intake status on submissions, data queries
-- with their status history, and the derived records of revalidation runs. Mirrors
-- migrations/sqlite/0002_rules.sql.
--
-- Same conventions as 0001. No table here holds answers. Data query `params` and
-- derived records hold message parameters and computed scores, which epro writes, so
-- they are jsonb: the store returns them as compact JSON text with the same content,
-- though jsonb orders object keys its own way and drops duplicate keys.

-- Rows written before this migration get `scores = '[]'` and `status = 'accepted'`.
-- Adding a column with a constant default rewrites no row, so the append-only
-- triggers of 0001 do not fire.
ALTER TABLE submissions ADD COLUMN scores jsonb NOT NULL DEFAULT '[]'
    CONSTRAINT submissions_scores_array CHECK (jsonb_typeof(scores) = 'array');

-- `accepted_with_queries` when the rule engine raised at least one data query at
-- intake. Queries raised later by revalidation leave this column as it was.
ALTER TABLE submissions ADD COLUMN status text NOT NULL DEFAULT 'accepted'
    CHECK (status IN ('accepted', 'accepted_with_queries'));

-- Serves revalidation, which pages through one form's submissions in seq order.
CREATE INDEX submissions_trial_form ON submissions (trial_id, form_id, seq);

-- Data queries: findings that let a submission in but ask site staff to check an item,
-- like the discrepancy notes of an EDC system. trial_id, form_id and patient_id are
-- copied from the submission by the writer, so they always match it.
CREATE TABLE data_queries (
    -- UUID v7 text. The "C" collation sorts it byte by byte, which is creation order,
    -- whatever the database's locale.
    query_id text COLLATE "C" NOT NULL PRIMARY KEY,
    submission_id text NOT NULL REFERENCES submissions (submission_id),
    trial_id text NOT NULL,
    form_id text NOT NULL,
    -- Version of the form definition whose rules raised the query: the submission's
    -- own version at intake, the version revalidated against otherwise.
    form_version text NOT NULL,
    patient_id text NOT NULL,
    -- linkId of the item the query is about, or '' for the whole form.
    item text NOT NULL,
    -- Finding code, for example rule_violated or score_mismatch.
    code text NOT NULL CHECK (length(code) > 0),
    -- Rule key or score name, or '' when the code alone identifies the finding.
    rule text NOT NULL DEFAULT '',
    -- Parameters of the message shown to site staff, a JSON object.
    params jsonb NOT NULL CONSTRAINT data_queries_params_object CHECK (jsonb_typeof(params) = 'object'),
    status text NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    origin text NOT NULL CHECK (origin IN ('intake', 'revalidation')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One query per finding and submission, so that revalidating the same submission again
-- never raises a query twice. The writer inserts with ON CONFLICT DO NOTHING on it.
CREATE UNIQUE INDEX data_queries_finding ON data_queries (submission_id, item, code, rule);

-- Serve the listings by trial, with and without a status filter, in query_id order.
CREATE INDEX data_queries_trial ON data_queries (trial_id, query_id);
CREATE INDEX data_queries_trial_status ON data_queries (trial_id, status, query_id);

CREATE TRIGGER data_queries_reject_delete BEFORE DELETE ON data_queries
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('data_queries are never deleted: delete rejected');

CREATE TRIGGER data_queries_reject_truncate BEFORE TRUNCATE ON data_queries
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('data_queries are never deleted: truncate rejected');

-- Only the workflow columns (status, updated_at) may change. The trigger fires when a
-- listed column appears in SET, even if its value stays the same.
CREATE TRIGGER data_queries_reject_content_update
BEFORE UPDATE OF query_id, submission_id, trial_id, form_id, form_version, patient_id,
    item, code, rule, params, origin, created_at
ON data_queries
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('data_queries content is immutable: update rejected');

-- Every status change of a data query, written in the same transaction as the UPDATE
-- of data_queries.status. Rows are append-only.
CREATE TABLE data_query_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    query_id text COLLATE "C" NOT NULL REFERENCES data_queries (query_id),
    occurred_at timestamptz NOT NULL,
    actor text NOT NULL CONSTRAINT data_query_events_actor_not_empty CHECK (length(actor) > 0),
    from_status text NOT NULL CHECK (from_status IN ('open', 'answered', 'closed')),
    to_status text NOT NULL CHECK (to_status IN ('open', 'answered', 'closed')),
    -- The reason site staff gave for the change. Required: blank text (spaces, tabs,
    -- line breaks) is rejected.
    comment text NOT NULL CONSTRAINT data_query_events_comment_not_blank
        CHECK (length(btrim(comment, E' \t\n\r')) > 0),
    request_id text,
    CONSTRAINT data_query_events_status_changes CHECK (from_status <> to_status)
);

CREATE INDEX data_query_events_query ON data_query_events (query_id, seq);

CREATE TRIGGER data_query_events_reject_update BEFORE UPDATE ON data_query_events
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('data_query_events is append-only: update rejected');

CREATE TRIGGER data_query_events_reject_delete BEFORE DELETE ON data_query_events
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('data_query_events is append-only: delete rejected');

CREATE TRIGGER data_query_events_reject_truncate BEFORE TRUNCATE ON data_query_events
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('data_query_events is append-only: truncate rejected');

-- Results of re-running the current rules over a stored submission. They sit beside
-- the submission and never replace its scores or status. No answers: a derived record
-- points at its submission instead. Rows are append-only.
CREATE TABLE derived_records (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    submission_id text NOT NULL REFERENCES submissions (submission_id),
    -- Identifies one revalidation run. Not unique: a run writes one row per submission.
    run_id text NOT NULL CHECK (length(run_id) > 0),
    computed_at timestamptz NOT NULL,
    -- Version of the form definition whose rules were run.
    form_version text NOT NULL,
    scores jsonb NOT NULL CONSTRAINT derived_records_scores_array CHECK (jsonb_typeof(scores) = 'array'),
    -- The rule engine's findings, as JSON. Like params, never answers.
    findings jsonb NOT NULL
);

CREATE INDEX derived_records_submission ON derived_records (submission_id, seq);
CREATE INDEX derived_records_run ON derived_records (run_id);

CREATE TRIGGER derived_records_reject_update BEFORE UPDATE ON derived_records
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('derived_records is append-only: update rejected');

CREATE TRIGGER derived_records_reject_delete BEFORE DELETE ON derived_records
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('derived_records is append-only: delete rejected');

CREATE TRIGGER derived_records_reject_truncate BEFORE TRUNCATE ON derived_records
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('derived_records is append-only: truncate rejected');
