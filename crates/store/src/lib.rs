//! Durable storage for epro: submissions, the data queries, alerts and revalidation
//! records of the rule engine, the transactional outbox and the audit trail, in one
//! SQLite file or one PostgreSQL database. [`StoreConfig::backend`] picks which, and
//! both behave the same through the one [`Store`] handle. This crate is the only code
//! in epro that writes SQL.
//!
//! A submission is acknowledged only after the transaction holding its `submissions`
//! row, its `data_queries` and `alerts` rows, its `outbox_events` rows and its
//! `audit_events` row has committed: with `synchronous = FULL` on SQLite, and on
//! PostgreSQL with `synchronous_commit = on`, which the store sets on each of its
//! connections. So an acknowledged submission survives a process crash and a power
//! loss. To keep that affordable, one writer commits queued submissions in batches
//! ("group commit"): one flush of the log covers the whole batch.
//!
//! Invariants:
//!
//! - **One writer per SQLite file.** Only the writer thread's connection writes. Read
//!   connections run with `query_only`. On PostgreSQL, submissions still go through
//!   one writer task per store, while the other writes run in their own transactions
//!   beside it, and several epro instances may share the database.
//! - **An outbox row is written in the same transaction as its submission, or not at
//!   all.** So are the data queries and alerts raised at intake. They have no audit
//!   row of their own because the submission's `submission.created` row covers them.
//! - **`submissions`, `submission_versions`, `submission_sequence` (SQLite),
//!   `audit_events`, `data_query_events` and `derived_records` are append-only.**
//!   Triggers reject `UPDATE` and `DELETE`, and on PostgreSQL `TRUNCATE`. A
//!   correction is the next row of `submission_versions`; version 1 stays in
//!   `submissions` as received.
//! - **A correction is stored only from the latest version.** [`Store::correct`]
//!   checks it in the transaction that writes the new version, with its data
//!   queries, the voiding of the submission's valid signatures, its outbox event and
//!   its audit rows. Signatures are never deleted, and only their void columns
//!   change, once.
//! - **Data queries are never deleted, and only their status changes.** Triggers reject
//!   `DELETE` and any `UPDATE` of columns other than `status` and `updated_at`. Every
//!   status change goes through [`Store::update_query_status`], which appends its
//!   history row to `data_query_events` and an audit row in the same transaction.
//! - **Alerts are never deleted, and only their acknowledgement and escalation
//!   change, each once.** Triggers reject `DELETE`, any `UPDATE` of other columns, a
//!   change to an acknowledgement, and a second escalation or one after the
//!   acknowledgement. [`Store::acknowledge_alert`] and
//!   [`Store::escalate_overdue_alerts`] write the change with its audit row (and, for an
//!   escalation, its `alert.escalated` event) in the same transaction.
//! - **A submission has at most one data query per item, code and rule.** A unique
//!   index enforces it, so rerunning revalidation never raises a query twice.
//! - **Revalidation never replaces the original.** [`Store::record_revalidation`]
//!   appends a `derived_records` row and raises new queries. The submission's answers,
//!   intake scores and status stay as they were stored.
//! - **Outbox rows change only in their delivery columns** (`attempts`, `last_error`,
//!   `delivered_at`, the claim, `rejections` and `dead_lettered_at`), through the
//!   `outbox_*` methods of [`Store`].
//! - **An export cursor never skips a row.** A submission version committed after an
//!   export fixed its high-water mark sorts after that mark: on SQLite through
//!   `submission_sequence`, filled by a trigger in the inserting transaction, on
//!   PostgreSQL through the inserting transaction's id (see [`ExportCursor`]).
//! - **No answers outside `submissions` and `submission_versions`**, except in the
//!   `submission.corrected` audit row, whose before and after values hold the changed
//!   items' old and new answers. Other audit rows and every outbox payload carry ids,
//!   codes and timestamps only. Scores appear only in `submissions.scores` and
//!   `derived_records`. Query `params` and derived `findings` are message parameters,
//!   and the store relies on the rule engine to keep answers out of them, because it
//!   cannot tell an answer from a parameter. Errors never repeat a rejected row.
//!
//! # Layout
//!
//! - `store`: [`Store`], [`StoreConfig`] and [`Backend`], the public handle, which
//!   hands each call to the open backend. `store::rules` holds its methods for data
//!   queries and revalidation, `store::export` those of exports, `store::alerts`
//!   those for alerts, `store::audit` those of the audit trail and
//!   `store::corrections` those of corrections and signatures.
//! - `sqlite`: the SQLite backend's handle. Its parts are `writer` (the writer thread
//!   and group commit, with every write statement in its submodules), `reader` (the
//!   read queries) and `schema` (PRAGMAs and the migrations embedded from
//!   `migrations/sqlite/`).
//! - `postgres`: the PostgreSQL backend, with its writer task, statements, readers and
//!   the migrations embedded from `migrations/postgres/`.
//! - `metrics`: the writer's metrics (batch size, commit time, queue depth).
//! - `model`: the values passed in and out, and [`StoreError`].
//! - `columns`: how timestamps and UUIDs are encoded in columns.

mod access;
mod audit;
mod catalog;
mod columns;
mod metrics;
mod model;
mod postgres;
mod reader;
mod schema;
mod sqlite;
mod store;
mod writer;

pub use access::{
    PATIENT_ENROLLED, PATIENT_TOKEN_ISSUED, PATIENT_TOKENS_REVOKED, STAFF_CREATED, STAFF_TOKEN_ISSUED,
    STAFF_TOKENS_REVOKED,
};
pub use catalog::{FORM_PUBLISHED, FORM_RETIRED, SITE_ADDED, TRIAL_CREATED};
pub use metrics::SharedRecorder;
pub use model::{
    AccessChange, AccessOutcome, AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter, AlertStatus,
    AnswerChange, AuditBreak, AuditBreakKind, AuditFilter, AuditRecord, AuditVerification, ChangeOrigin,
    CorrectionOutcome, CorrectionReceipt, Credential, DataQuery, Enrolment, EnrolmentFilter, ExportAudit, ExportCursor,
    ExportPage, ExportRow, GrantScope, InvalidCursor, NewAlert, NewCorrection, NewQuery, NewSignature, NewSubmission,
    NewToken, OutboxBacklog, OutboxEvent, OutboxEventState, OutboxFailure, OutboxReplay, QueryFilter, QueryOrigin,
    QueryRef, QueryStatus, QueryStatusChange, QueryUpdate, Receipt, ReplaySelection, Revalidation, RevalidationOutcome,
    Role, RoleGrant, RowKey, SignOutcome, Signature, SourceFormat, StaffMember, StoreError, StoreStats,
    StoredSubmission, SubmissionHistory, SubmissionStatus, SubmissionVersion, SubmitOutcome, TokenDigest,
};
pub use model::{
    CatalogSnapshot, FormRetirement, FormSourceFormat, FormVersion, NewFormVersion, NewSite, NewTrial, PublishOutcome,
    RetireOutcome, Retirement, SiteAddition, SiteOutcome, StoredSite, StoredTrial, TrialOutcome,
};
pub use schema::SCHEMA_VERSION;
pub use store::{Backend, Store, StoreConfig};
pub use writer::{
    ALERT_ACKNOWLEDGED, ALERT_ESCALATED, ALERT_RAISED, EXPORT_CREATED, QUERY_STATUS_CHANGED, SIGNATURE_APPLIED,
    SIGNATURE_VOIDED, SUBMISSION_ACCEPTED, SUBMISSION_CORRECTED, SUBMISSION_CREATED, SUBMISSION_REVALIDATED,
};
