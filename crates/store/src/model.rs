//! Values that cross the store's boundary: submissions going in, receipts, stored
//! submissions and outbox events coming out, and the store's error type.
//!
//! Data queries and revalidation records have their own module, `model::queries`;
//! alerts, corrections and signatures, exports and the audit trail have theirs. All are re-exported from here.
//!
//! Types that carry questionnaire answers, scores or message parameters implement
//! `Debug` by hand and print only their length, so that logging a submission with `?`
//! does not leak them.

mod access;
mod alerts;
mod audit;
mod corrections;
mod export;
mod queries;
mod trials;

pub use access::{
    AccessChange, AccessOutcome, ChangeOrigin, Credential, Enrolment, EnrolmentFilter, GrantScope, NewToken, Role,
    RoleGrant, StaffMember, TokenDigest,
};
pub use alerts::{AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter, AlertStatus, NewAlert};
pub use audit::{AuditBreak, AuditBreakKind, AuditFilter, AuditRecord, AuditVerification};
pub(crate) use corrections::corrected_alert_payload;
pub use corrections::{
    AnswerChange, CorrectionOutcome, CorrectionReceipt, NewCorrection, NewSignature, SignOutcome, Signature,
    SubmissionHistory, SubmissionVersion,
};

pub use export::{ExportAudit, ExportCursor, ExportPage, ExportRow, InvalidCursor, RowKey};
pub(crate) use export::{Key, Mark};
pub use queries::{
    DataQuery, NewQuery, QueryFilter, QueryOrigin, QueryRef, QueryStatus, QueryStatusChange, QueryUpdate, Revalidation,
    RevalidationOutcome,
};
pub use trials::{
    CatalogSnapshot, FormRetirement, FormSourceFormat, FormVersion, NewFormVersion, NewSite, NewTrial, PublishOutcome,
    RetireOutcome, Retirement, SiteAddition, SiteOutcome, StoredSite, StoredTrial, TrialOutcome,
};

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Format in which a submission reached epro.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Answers in epro's native JSON shape, checked against a native TOML form.
    Native,
    /// A FHIR R4 QuestionnaireResponse.
    Fhir,
    /// The seed-compatible `formContent` request of the system epro replaces.
    Seed,
}

impl SourceFormat {
    /// Returns the name stored in the `source` column: `native`, `fhir` or `seed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Native => "native",
            SourceFormat::Fhir => "fhir",
            SourceFormat::Seed => "seed",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceFormat {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "native" => Ok(SourceFormat::Native),
            "fhir" => Ok(SourceFormat::Fhir),
            "seed" => Ok(SourceFormat::Seed),
            other => bail!("unknown submission source {other:?}, expected native, fhir or seed"),
        }
    }
}

/// Outcome of the rule engine at intake, stored on the submission row.
///
/// Serializes as `accepted` or `accepted_with_queries`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// No data query was raised at intake.
    Accepted,
    /// The submission was accepted and at least one data query was raised at intake.
    AcceptedWithQueries,
}

impl SubmissionStatus {
    /// Returns the name stored in the `status` column: `accepted` or
    /// `accepted_with_queries`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Accepted => "accepted",
            SubmissionStatus::AcceptedWithQueries => "accepted_with_queries",
        }
    }
}

impl fmt::Display for SubmissionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubmissionStatus {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "accepted" => Ok(SubmissionStatus::Accepted),
            "accepted_with_queries" => Ok(SubmissionStatus::AcceptedWithQueries),
            other => bail!("unknown submission status {other:?}, expected accepted or accepted_with_queries"),
        }
    }
}

/// A validated submission to be stored by [`Store::submit`](crate::Store::submit).
///
/// The caller has already checked the answers against the form and run its rules. The
/// store only adds its own integrity checks: both answer texts and every query's
/// `params` must be valid JSON, `scores` must be a JSON array, `actor` and each
/// alert's rule and severity must not be empty, each alert's `due_at` must be later
/// than `received_at`, and the UTC offset of `completed_at` must be less than a day.
#[derive(Clone)]
pub struct NewSubmission {
    /// Client-chosen identity, which makes a retried submission idempotent: a
    /// UUID, or a FHIR resource id for `QuestionnaireResponse` submissions.
    /// The caller has validated it.
    pub submission_id: String,
    pub trial_id: String,
    pub form_id: String,
    pub form_version: String,
    pub patient_id: String,
    /// Completion time on the device, with the device's UTC offset. The store keeps
    /// the UTC instant and the offset in seconds in separate columns.
    pub completed_at: OffsetDateTime,
    /// Server time of receipt. Stored in UTC whatever its offset.
    pub received_at: OffsetDateTime,
    pub source: SourceFormat,
    /// The answers exactly as received, a JSON text kept byte for byte.
    pub raw_answers: String,
    /// The answers in epro's normalized JSON shape.
    pub normalized_answers: String,
    /// SHA-256 of the submitted content. A resubmission with the same id is a replay
    /// when this hash matches and a conflict when it does not.
    pub content_sha256: [u8; 32],
    /// Scores computed by the rule engine, a JSON array such as
    /// `[{"name":"/44261-6","value":"10"}]`, or `[]`. Written once with the row.
    pub scores: String,
    /// Data queries raised at intake. They are stored with the submission, open and
    /// with origin `intake`, and make its status
    /// [`AcceptedWithQueries`](SubmissionStatus::AcceptedWithQueries). A second query
    /// with the same item, code and rule is dropped.
    pub queries: Vec<NewQuery>,
    /// Alerts for site staff. Each becomes an open `alerts` row, raised at
    /// `received_at`, and one `alert.raised` outbox event that names the row.
    pub alerts: Vec<NewAlert>,
    /// Submitter recorded in the audit trail, for example `patient:P-001`.
    pub actor: String,
    /// Request id of the HTTP request that carried the submission, for the audit trail.
    pub request_id: Option<String>,
}

impl NewSubmission {
    /// Returns the status this submission is stored with, which depends only on
    /// whether the rule engine raised data queries.
    pub fn status(&self) -> SubmissionStatus {
        if self.queries.is_empty() { SubmissionStatus::Accepted } else { SubmissionStatus::AcceptedWithQueries }
    }
}

impl fmt::Debug for NewSubmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSubmission")
            .field("submission_id", &self.submission_id)
            .field("trial_id", &self.trial_id)
            .field("form_id", &self.form_id)
            .field("form_version", &self.form_version)
            .field("completed_at", &self.completed_at)
            .field("received_at", &self.received_at)
            .field("source", &self.source)
            .field("raw_answers", &Redacted(self.raw_answers.len()))
            .field("normalized_answers", &Redacted(self.normalized_answers.len()))
            .field("scores", &Redacted(self.scores.len()))
            .field("queries", &self.queries)
            .field("alerts", &self.alerts)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// Proof that a submission is stored, returned to the patient's device.
///
/// Serializes with camelCase keys and `receivedAt` in RFC 3339.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub submission_id: String,
    pub trial_id: String,
    pub form_id: String,
    pub form_version: String,
    /// Server time of the first receipt, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Status stored at intake.
    pub status: SubmissionStatus,
    /// Data queries raised at intake, in the order they were raised. Queries raised
    /// later by revalidation are not listed, so a replay returns the same list.
    pub queries: Vec<QueryRef>,
}

/// Result of [`Store::submit`](crate::Store::submit).
#[derive(Clone, Debug, PartialEq)]
pub enum SubmitOutcome {
    /// The submission was new and is now committed with its data queries, alerts,
    /// outbox and audit rows.
    Created(Receipt),
    /// The same id was stored before with the same content hash. Nothing was written,
    /// and the receipt is the original one.
    Replayed(Receipt),
    /// The same id was stored before with different content. Nothing was written, and
    /// the receipt describes the stored submission.
    Conflict(Receipt),
}

impl SubmitOutcome {
    /// Returns the receipt carried by every outcome.
    pub fn receipt(&self) -> &Receipt {
        match self {
            SubmitOutcome::Created(receipt) | SubmitOutcome::Replayed(receipt) | SubmitOutcome::Conflict(receipt) => {
                receipt
            }
        }
    }
}

/// Errors returned by [`Store`](crate::Store) operations.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The writer's queue is full. The caller should answer "try again later" (HTTP 503
    /// with `Retry-After`) rather than wait.
    #[error("submission queue is full")]
    Overloaded,
    /// [`Store::close`](crate::Store::close) has been called.
    #[error("store is shutting down")]
    ShuttingDown,
    /// The database cannot be reached (PostgreSQL down or the connection lost). Nothing
    /// of the operation was acknowledged; the caller should reply "try again later"
    /// (HTTP 503 with `Retry-After`). The embedded SQLite backend never returns it.
    #[error("database unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// A database or thread failure. The text is for logs, never for patients.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A submission as stored, read back by [`Store::submission`](crate::Store::submission).
#[derive(Clone, PartialEq)]
pub struct StoredSubmission {
    pub submission_id: String,
    pub trial_id: String,
    pub form_id: String,
    pub form_version: String,
    pub patient_id: String,
    /// Completion time rebuilt with the device's original UTC offset.
    pub completed_at: OffsetDateTime,
    /// Server time of receipt, in UTC.
    pub received_at: OffsetDateTime,
    pub source: SourceFormat,
    /// The answers exactly as received, byte for byte.
    pub raw_answers: String,
    pub normalized_answers: String,
    pub content_sha256: [u8; 32],
    pub request_id: Option<String>,
    /// Scores computed at intake, a JSON array. `[]` for submissions stored before
    /// scores existed.
    pub scores: String,
    /// Status stored at intake.
    pub status: SubmissionStatus,
    /// Every data query on this submission, of every version, from intake and from
    /// revalidation, in the order they were raised.
    pub queries: Vec<DataQuery>,
}

impl fmt::Debug for StoredSubmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSubmission")
            .field("submission_id", &self.submission_id)
            .field("trial_id", &self.trial_id)
            .field("form_id", &self.form_id)
            .field("form_version", &self.form_version)
            .field("completed_at", &self.completed_at)
            .field("received_at", &self.received_at)
            .field("source", &self.source)
            .field("raw_answers", &Redacted(self.raw_answers.len()))
            .field("normalized_answers", &Redacted(self.normalized_answers.len()))
            .field("request_id", &self.request_id)
            .field("scores", &Redacted(self.scores.len()))
            .field("status", &self.status)
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

/// An event from the `outbox_events` table, to be published by the relay.
///
/// The payload never contains answers. Consumers deduplicate on `event_id`, which is
/// generated once when the row is written and never changes.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEvent {
    /// Position in the outbox. Events are relayed in increasing `seq`.
    pub seq: i64,
    pub event_id: Uuid,
    /// Event name, for example `submission.accepted`.
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub trial_id: String,
    pub patient_id: String,
    pub submission_id: String,
    /// Event-specific JSON object.
    pub payload: String,
    /// Number of failed publish attempts so far.
    pub attempts: u32,
}

/// An outbox event together with its delivery state, read by
/// [`Store::outbox_event`](crate::Store::outbox_event) and
/// [`Store::outbox_dead_letters`](crate::Store::outbox_dead_letters).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEventState {
    pub event: OutboxEvent,
    /// When the relay marked the event delivered, or `None` while it is pending.
    pub delivered_at: Option<OffsetDateTime>,
    /// Error text of the most recent failed publish attempt.
    pub last_error: Option<String>,
    /// Relay holding the current or last claim, or `None` when unclaimed.
    pub claimed_by: Option<String>,
    /// When that claim's lease ends. After it, another relay may claim the event.
    pub claim_expires_at: Option<OffsetDateTime>,
    /// Failed attempts that the sink rejected. Unreachable-sink failures
    /// count in `event.attempts` only.
    pub rejections: u32,
    /// When the event became a dead letter, or `None` while it is live.
    pub dead_lettered_at: Option<OffsetDateTime>,
}

/// The undelivered part of the outbox, read by
/// [`Store::outbox_backlog`](crate::Store::outbox_backlog).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Events not yet delivered and not dead-lettered: the relay's work.
    pub pending: u64,
    /// When the oldest pending event was written, or `None` when there is none.
    pub oldest_occurred_at: Option<OffsetDateTime>,
    /// Dead-lettered events waiting for a replay.
    pub dead_letters: u64,
}

/// A failed publish of some outbox events, recorded by
/// [`Store::outbox_mark_failed`](crate::Store::outbox_mark_failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxFailure {
    pub seqs: Vec<i64>,
    /// Error text kept as `last_error`, cut to 2000 bytes. It must not contain answers
    /// or secrets.
    pub error: String,
    /// `true` when the sink replied and rejected the events; `false` when it could not
    /// be reached. Only refusals count toward the dead-letter limit, so an outage of
    /// any length never dead-letters anything.
    pub rejected: bool,
    /// Number of refusals after which an event becomes a dead letter. At least 1.
    pub dead_letter_after: u32,
}

/// The selection of outbox events that
/// [`Store::outbox_replay`](crate::Store::outbox_replay) sends again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplaySelection {
    /// Every dead-lettered event.
    DeadLetters,
    /// These events, delivered or not. An unknown id fails the whole replay.
    EventIds(Vec<Uuid>),
}

/// An operator's request to send outbox events again, recorded in the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxReplay {
    pub selection: ReplaySelection,
    /// The requester, for example `operator:cli`. Must not be empty.
    pub actor: String,
    /// Why, kept in the log line of the replay. Must not be blank.
    pub reason: String,
    pub request_id: Option<String>,
}

/// Counters of the store's writes since it was opened.
///
/// On PostgreSQL, writes other than submissions run in transactions of their own, and
/// each counts as a batch of one. A batch that a constraint rolled back is written
/// again one submission per transaction, and each of those counts as a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed. Each commit is one flush of the log.
    pub batches_committed: u64,
    /// Commands (submissions, outbox updates, query status changes, revalidation
    /// records, alert acknowledgements and escalation runs) answered after a
    /// successful commit.
    pub commands_committed: u64,
    /// New submissions committed, which excludes replays and conflicts.
    pub submissions_created: u64,
    /// Commands rejected while the rest of their batch went on: rolled back to their
    /// savepoint on SQLite, rejected before the batch or by their own transaction on
    /// PostgreSQL.
    pub commands_failed: u64,
    /// Batches whose transaction failed to begin or commit, or on PostgreSQL lost its
    /// connection.
    pub batches_failed: u64,
}

/// Debug stand-in for answers, scores and message parameters: shows the length only.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}
