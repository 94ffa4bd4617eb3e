//! Durable storage for epro: submissions, the transactional outbox and the audit trail
//! in one SQLite file. This crate is the only code in epro that writes SQL.
//!
//! A submission is acknowledged only after the transaction holding its `submissions`
//! row, its `outbox_events` row and its `audit_events` row has committed with
//! `synchronous = FULL`, so an acknowledged submission survives a process crash and a
//! power loss. To keep that affordable, one writer thread commits queued submissions in
//! batches ("group commit"): one fsync covers the whole batch.
//!
//! Invariants:
//!
//! - **One writer.** Only the writer thread's connection writes. Read connections run
//!   with `query_only`.
//! - **An outbox row is written in the same transaction as its submission, or not at
//!   all.**
//! - **`submissions` and `audit_events` are append-only.** Triggers reject `UPDATE`
//!   and `DELETE`. A correction is a new submission.
//! - **Outbox rows change only in their delivery columns** (`attempts`, `last_error`,
//!   `delivered_at`), through [`Store::outbox_mark_delivered`] and
//!   [`Store::outbox_mark_failed`].
//! - **No answers outside `submissions`.** Outbox payloads and audit rows carry ids and
//!   timestamps only.
//!
//! # Layout
//!
//! - `store`: [`Store`] and [`StoreConfig`], the public handle.
//! - `writer`: the writer thread, group commit and every write statement.
//! - `reader`: the read queries.
//! - `schema`: PRAGMAs and the migrations embedded from `migrations/sqlite/`.
//! - `model`: the values passed in and out, and [`StoreError`].
//! - `columns`: how timestamps and UUIDs are encoded in columns.

mod columns;
mod model;
mod reader;
mod schema;
mod store;
mod writer;

pub use model::{
    NewSubmission, OutboxEvent, OutboxEventState, Receipt, SourceFormat, StoreError, StoreStats, StoredSubmission,
    SubmitOutcome,
};
pub use schema::SCHEMA_VERSION;
pub use store::{Store, StoreConfig};
pub use writer::{SUBMISSION_ACCEPTED, SUBMISSION_CREATED};
