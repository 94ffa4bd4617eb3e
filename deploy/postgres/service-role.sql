-- Least privilege for the PostgreSQL role that `epro serve` connects as.
--
-- Run `epro migrate` as the owner of the database first, then this script as the
-- owner, for example:
--   psql "postgres://OWNER@HOST/epro" -v role=epro_app -f deploy/postgres/service-role.sql
-- and start `epro serve` as that role with database.run_migrations = false (or
-- EPRO_DATABASE__RUN_MIGRATIONS=false). Run it again after every `epro migrate`
-- that adds tables.
--
-- The role may read everything and insert rows, and may update only the columns
-- epro changes in place (delivery marks of the outbox, acknowledgements and
-- escalations of alerts, query statuses, token revocations, voided signatures,
-- retirements of form versions, the catalogue generation). It gets no UPDATE,
-- DELETE or TRUNCATE on audit_events, so even a stolen service password cannot
-- rewrite the audit trail; the triggers of the tables reject it for every role too.
-- FOR UPDATE and FOR NO KEY UPDATE locks need UPDATE on one column, which the
-- submissions grant gives (its triggers still reject every UPDATE).

GRANT USAGE ON SCHEMA public TO :"role";
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO :"role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"role";
GRANT UPDATE ON outbox_events, alerts, data_queries, patient_tokens, staff_tokens, signatures, form_versions,
    catalog_generation TO :"role";
GRANT UPDATE (submission_id) ON submissions TO :"role";
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM :"role";
