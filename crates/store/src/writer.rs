//! The writer thread: the only code that writes to the database, with group commit.
//!
//! [`Store`](crate::Store) sends [`Command`]s over a bounded channel. The thread blocks
//! until one arrives, takes whatever else is already queued (up to `max_batch` in all)
//! and runs the whole batch in one `BEGIN IMMEDIATE` transaction. Only after `COMMIT`
//! returns does it send each caller its result. Because the database runs with
//! `synchronous = FULL`, a successful result means the rows are on disk, and one fsync
//! covers every command in the batch.
//!
//! Each command runs inside its own savepoint. A command that fails (a CHECK constraint,
//! a bad timestamp) is rolled back to its savepoint and its caller gets the error,
//! while the rest of the batch commits. If the transaction cannot begin or commit,
//! every caller in the batch gets an error and nothing is acknowledged.
//!
//! The thread ends when every sender is gone and the queue is empty, which is how
//! [`Store::close`](crate::Store::close) drains it.
//!
//! The statements themselves live in submodules, one per concept: `submission` (a new
//! submission with its data queries, alerts, outbox rows and audit row), `outbox`
//! (delivery marks), `queries` (raising data queries and changing their status),
//! `alerts` (raising, acknowledging and escalating alerts), `revalidation` (derived
//! records), `export` (the audit row of an export), `access` (staff accounts,
//! enrolments and their tokens), `corrections` (new versions of
//! a submission and signatures) and `trials` (the trial catalogue: trials, sites,
//! form versions).

mod access;
mod alerts;
mod corrections;
mod export;
mod outbox;
mod queries;
mod revalidation;
mod submission;
mod trials;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use time::OffsetDateTime;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};

pub(crate) use self::alerts::{SYSTEM_ACTOR, escalated_payload};
pub(crate) use self::corrections::corrected_payload;
pub(crate) use self::outbox::{MAX_LAST_ERROR_BYTES, truncate_at_char_boundary};
pub(crate) use self::trials::{CatalogOutcome, CatalogWrite};
use crate::audit::{AuditEntry, GENESIS_HASH, format_audit_time, link_hash};
use crate::metrics::WriterMetrics;
use crate::model::{
    AccessChange, AccessOutcome, AcknowledgeOutcome, Alert, AlertAcknowledgement, ChangeOrigin, CorrectionOutcome,
    ExportAudit, NewCorrection, NewSignature, NewSubmission, OutboxEvent, OutboxFailure, OutboxReplay,
    QueryStatusChange, QueryUpdate, Revalidation, RevalidationOutcome, SignOutcome, StoreError, StoreStats,
    SubmitOutcome,
};

/// Event type of the outbox row written for each new submission.
pub const SUBMISSION_ACCEPTED: &str = "submission.accepted";

/// Event type of the outbox row written for each alert raised at intake.
pub const ALERT_RAISED: &str = "alert.raised";

/// Event type of the outbox row written when an alert escalates, and the audit
/// action recorded with it.
pub const ALERT_ESCALATED: &str = "alert.escalated";

/// Audit action recorded when site staff acknowledge an alert.
pub const ALERT_ACKNOWLEDGED: &str = "alert.acknowledged";

/// Audit action recorded for each new submission. It also covers the data queries
/// and alerts raised with the submission, which get no audit row of their own.
pub const SUBMISSION_CREATED: &str = "submission.created";

/// Audit action recorded for each status change of a data query.
pub const QUERY_STATUS_CHANGED: &str = "query.status_changed";

/// Audit action recorded for each revalidation record of a submission.
pub const SUBMISSION_REVALIDATED: &str = "submission.revalidated";

/// Audit action recorded for each outbox event an operator sends again.
pub const OUTBOX_REPLAYED: &str = "outbox.replayed";

/// Audit action recorded for each export of a form's submissions.
pub const EXPORT_CREATED: &str = "export.created";

/// Event type of the outbox row written for each correction, and the audit action
/// recorded with it.
pub const SUBMISSION_CORRECTED: &str = "submission.corrected";

/// Audit action recorded when an investigator signs a version of a submission.
pub const SIGNATURE_APPLIED: &str = "signature.applied";

/// Audit action recorded for each signature a correction voids.
pub const SIGNATURE_VOIDED: &str = "signature.voided";

/// A request to the writer thread. Each carries the oneshot sender that receives its
/// result after the batch commits.
pub(crate) enum Command {
    Submit {
        submission: Box<NewSubmission>,
        reply: oneshot::Sender<Result<SubmitOutcome, StoreError>>,
    },
    Claim {
        relay_id: String,
        limit: usize,
        lease: Duration,
        reply: oneshot::Sender<Result<Vec<OutboxEvent>, StoreError>>,
    },
    MarkDelivered {
        seqs: Vec<i64>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    MarkFailed {
        failure: Box<OutboxFailure>,
        reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
    },
    Release {
        relay_id: String,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Replay {
        replay: Box<OutboxReplay>,
        reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
    },
    UpdateQueryStatus {
        change: Box<QueryStatusChange>,
        reply: oneshot::Sender<Result<QueryUpdate, StoreError>>,
    },
    RecordRevalidation {
        record: Box<Revalidation>,
        reply: oneshot::Sender<Result<RevalidationOutcome, StoreError>>,
    },
    RecordExport {
        audit: Box<ExportAudit>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    AcknowledgeAlert {
        acknowledgement: Box<AlertAcknowledgement>,
        reply: oneshot::Sender<Result<AcknowledgeOutcome, StoreError>>,
    },
    EscalateAlerts {
        now: OffsetDateTime,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<Alert>, StoreError>>,
    },
    ChangeAccess {
        change: Box<(AccessChange, ChangeOrigin)>,
        reply: oneshot::Sender<Result<AccessOutcome, StoreError>>,
    },
    Correct {
        correction: Box<NewCorrection>,
        reply: oneshot::Sender<Result<CorrectionOutcome, StoreError>>,
    },
    Sign {
        signature: Box<NewSignature>,
        reply: oneshot::Sender<Result<SignOutcome, StoreError>>,
    },
    Catalog {
        write: Box<CatalogWrite>,
        reply: oneshot::Sender<Result<CatalogOutcome, StoreError>>,
    },
}

/// State shared between the writer, SQLite's thread or PostgreSQL's task, and every
/// [`Store`](crate::Store) clone.
#[derive(Default)]
pub(crate) struct Shared {
    /// Woken after each commit that wrote outbox rows.
    pub(crate) outbox_notify: Arc<Notify>,
    /// Commands sent (or waiting for queue space) and not yet taken by the writer.
    pub(crate) queued: AtomicUsize,
    pub(crate) batches_committed: AtomicU64,
    pub(crate) commands_committed: AtomicU64,
    pub(crate) submissions_created: AtomicU64,
    pub(crate) commands_failed: AtomicU64,
    pub(crate) batches_failed: AtomicU64,
}

impl Shared {
    /// Queues `command` on `commands` without waiting, so that overload is reported
    /// at once, and counts it in `queued`. Both backends' writers drain such a queue.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] once the sender is taken, [`StoreError::Overloaded`]
    /// when the queue is full, and `stopped()` when the writer has ended.
    pub(crate) fn try_enqueue<T>(
        &self,
        commands: &RwLock<Option<mpsc::Sender<T>>>,
        command: T,
        stopped: fn() -> StoreError,
    ) -> Result<(), StoreError> {
        let commands = commands.read().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = commands.as_ref() else {
            return Err(StoreError::ShuttingDown);
        };

        // Count before sending, because the writer may take the command and decrement
        // before `try_send` returns.
        self.queued.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(StoreError::Overloaded)
            }
            Err(TrySendError::Closed(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(stopped())
            }
        }
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            batches_committed: self.batches_committed.load(Ordering::Relaxed),
            commands_committed: self.commands_committed.load(Ordering::Relaxed),
            submissions_created: self.submissions_created.load(Ordering::Relaxed),
            commands_failed: self.commands_failed.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread's state. It owns the only write connection.
pub(crate) struct Writer {
    pub(crate) connection: Connection,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) max_batch: usize,
    pub(crate) metrics: WriterMetrics,
}

/// A command's reply channel with its result, held until the batch's transaction has
/// ended.
struct Reply<T> {
    sender: oneshot::Sender<Result<T, StoreError>>,
    result: anyhow::Result<T>,
}

impl<T> Reply<T> {
    fn new(sender: oneshot::Sender<Result<T, StoreError>>, result: anyhow::Result<T>) -> Self {
        Reply { sender, result }
    }

    /// Creates the reply of a command that never ran, so that it can be failed.
    fn skipped(sender: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Reply { sender, result: Err(anyhow!("not run")) }
    }

    /// Sends the result. A caller that stopped waiting is skipped, because its write
    /// has committed anyway.
    fn send(self) {
        let _ = self.sender.send(self.result.map_err(StoreError::Internal));
    }

    /// Sends the batch's failure in place of the result, because nothing was committed.
    fn fail(self, reason: &str) {
        let _ = self.sender.send(Err(StoreError::Internal(anyhow!("{reason}"))));
    }
}

/// A command's result, held until the batch's transaction has ended.
enum Pending {
    Submit(Reply<SubmitOutcome>),
    Update(Reply<()>),
    Events(Reply<Vec<OutboxEvent>>),
    Seqs(Reply<Vec<i64>>),
    Count(Reply<u64>),
    QueryStatus(Reply<QueryUpdate>),
    Revalidation(Reply<RevalidationOutcome>),
    Acknowledgement(Reply<AcknowledgeOutcome>),
    Alerts(Reply<Vec<Alert>>),
    Access(Reply<AccessOutcome>),
    Correction(Reply<CorrectionOutcome>),
    Signature(Reply<SignOutcome>),
    Catalog(Reply<CatalogOutcome>),
}

impl Pending {
    fn succeeded(&self) -> bool {
        match self {
            Pending::Submit(reply) => reply.result.is_ok(),
            Pending::Update(reply) => reply.result.is_ok(),
            Pending::Events(reply) => reply.result.is_ok(),
            Pending::Seqs(reply) => reply.result.is_ok(),
            Pending::Count(reply) => reply.result.is_ok(),
            Pending::QueryStatus(reply) => reply.result.is_ok(),
            Pending::Revalidation(reply) => reply.result.is_ok(),
            Pending::Acknowledgement(reply) => reply.result.is_ok(),
            Pending::Alerts(reply) => reply.result.is_ok(),
            Pending::Access(reply) => reply.result.is_ok(),
            Pending::Correction(reply) => reply.result.is_ok(),
            Pending::Signature(reply) => reply.result.is_ok(),
            Pending::Catalog(reply) => reply.result.is_ok(),
        }
    }

    fn created(&self) -> bool {
        matches!(self, Pending::Submit(Reply { result: Ok(SubmitOutcome::Created(_)), .. }))
    }

    fn send(self) {
        match self {
            Pending::Submit(reply) => reply.send(),
            Pending::Update(reply) => reply.send(),
            Pending::Events(reply) => reply.send(),
            Pending::Seqs(reply) => reply.send(),
            Pending::Count(reply) => reply.send(),
            Pending::QueryStatus(reply) => reply.send(),
            Pending::Revalidation(reply) => reply.send(),
            Pending::Acknowledgement(reply) => reply.send(),
            Pending::Alerts(reply) => reply.send(),
            Pending::Access(reply) => reply.send(),
            Pending::Correction(reply) => reply.send(),
            Pending::Signature(reply) => reply.send(),
            Pending::Catalog(reply) => reply.send(),
        }
    }

    fn fail(self, reason: &str) {
        match self {
            Pending::Submit(reply) => reply.fail(reason),
            Pending::Update(reply) => reply.fail(reason),
            Pending::Events(reply) => reply.fail(reason),
            Pending::Seqs(reply) => reply.fail(reason),
            Pending::Count(reply) => reply.fail(reason),
            Pending::QueryStatus(reply) => reply.fail(reason),
            Pending::Revalidation(reply) => reply.fail(reason),
            Pending::Acknowledgement(reply) => reply.fail(reason),
            Pending::Alerts(reply) => reply.fail(reason),
            Pending::Access(reply) => reply.fail(reason),
            Pending::Correction(reply) => reply.fail(reason),
            Pending::Signature(reply) => reply.fail(reason),
            Pending::Catalog(reply) => reply.fail(reason),
        }
    }
}

impl Command {
    /// Turns a command that never ran into a pending result, so that it can be failed.
    fn into_skipped(self) -> Pending {
        match self {
            Command::Submit { reply, .. } => Pending::Submit(Reply::skipped(reply)),
            Command::Claim { reply, .. } => Pending::Events(Reply::skipped(reply)),
            Command::MarkDelivered { reply, .. } | Command::RecordExport { reply, .. } => {
                Pending::Update(Reply::skipped(reply))
            }
            Command::MarkFailed { reply, .. } | Command::Replay { reply, .. } => Pending::Seqs(Reply::skipped(reply)),
            Command::Release { reply, .. } => Pending::Count(Reply::skipped(reply)),
            Command::UpdateQueryStatus { reply, .. } => Pending::QueryStatus(Reply::skipped(reply)),
            Command::RecordRevalidation { reply, .. } => Pending::Revalidation(Reply::skipped(reply)),
            Command::AcknowledgeAlert { reply, .. } => Pending::Acknowledgement(Reply::skipped(reply)),
            Command::EscalateAlerts { reply, .. } => Pending::Alerts(Reply::skipped(reply)),
            Command::ChangeAccess { reply, .. } => Pending::Access(Reply::skipped(reply)),
            Command::Correct { reply, .. } => Pending::Correction(Reply::skipped(reply)),
            Command::Sign { reply, .. } => Pending::Signature(Reply::skipped(reply)),
            Command::Catalog { reply, .. } => Pending::Catalog(Reply::skipped(reply)),
        }
    }
}

impl Writer {
    /// Runs batches until every sender is dropped and the queue is empty.
    pub(crate) fn run(mut self) {
        tracing::info!(max_batch = self.max_batch, "Store writer started");
        let mut batch = Vec::with_capacity(self.max_batch);

        while self.commands.blocking_recv_many(&mut batch, self.max_batch) > 0 {
            let before = self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            let waiting = before.saturating_sub(batch.len());
            self.metrics.record_queue_depth(waiting);
            self.run_batch(batch.drain(..));
        }

        tracing::info!("Store writer stopped");
    }

    /// Runs one batch in one transaction and sends each caller its result after the
    /// transaction ends.
    fn run_batch(&mut self, batch: impl ExactSizeIterator<Item = Command>) {
        let batch_size = batch.len();
        let started = Instant::now();

        let mut transaction = match self.connection.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(transaction) => transaction,
            Err(error) => {
                let reason = format!("failed to begin transaction: {error}");
                fail_batch(&self.shared, batch.map(Command::into_skipped), &reason);
                return;
            }
        };

        let now = OffsetDateTime::now_utc();
        let mut abort = None;
        // Replays, escalations and corrections write outbox rows without creating a
        // submission.
        let mut wrote_other_events = false;
        let mut pending = Vec::with_capacity(batch_size);
        for command in batch {
            let entry = match command {
                Command::Submit { submission, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        submission::insert_submission(connection, &submission, now)
                    });
                    Pending::Submit(Reply::new(reply, result))
                }
                Command::MarkDelivered { seqs, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        outbox::mark_delivered(connection, &seqs, now)
                    });
                    Pending::Update(Reply::new(reply, result))
                }
                Command::Claim { relay_id, limit, lease, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        outbox::claim(connection, &relay_id, limit, lease, now)
                    });
                    Pending::Events(Reply::new(reply, result))
                }
                Command::MarkFailed { failure, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        outbox::mark_failed(connection, &failure, now)
                    });
                    Pending::Seqs(Reply::new(reply, result))
                }
                Command::Release { relay_id, reply } => {
                    let result =
                        in_savepoint(&mut transaction, &mut abort, |connection| outbox::release(connection, &relay_id));
                    Pending::Count(Reply::new(reply, result))
                }
                Command::Replay { replay, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        outbox::replay(connection, &replay, now)
                    });
                    wrote_other_events |= result.as_ref().is_ok_and(|seqs| !seqs.is_empty());
                    Pending::Seqs(Reply::new(reply, result))
                }
                Command::UpdateQueryStatus { change, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        queries::update_query_status(connection, &change, now)
                    });
                    Pending::QueryStatus(Reply::new(reply, result))
                }
                Command::RecordRevalidation { record, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        revalidation::record_revalidation(connection, &record, now)
                    });
                    Pending::Revalidation(Reply::new(reply, result))
                }
                Command::RecordExport { audit, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        export::record_export(connection, &audit, now)
                    });
                    Pending::Update(Reply::new(reply, result))
                }
                Command::AcknowledgeAlert { acknowledgement, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        alerts::acknowledge_alert(connection, &acknowledgement, now)
                    });
                    Pending::Acknowledgement(Reply::new(reply, result))
                }
                Command::EscalateAlerts { now: escalation_time, limit, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        alerts::escalate_overdue(connection, escalation_time, limit)
                    });
                    wrote_other_events |= result.as_ref().is_ok_and(|escalated| !escalated.is_empty());
                    Pending::Alerts(Reply::new(reply, result))
                }
                Command::ChangeAccess { change, reply } => {
                    let (change, origin) = &*change;
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        access::change_access(connection, change, origin, now)
                    });
                    Pending::Access(Reply::new(reply, result))
                }
                Command::Correct { correction, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        corrections::insert_correction(connection, &correction, now)
                    });
                    wrote_other_events |= matches!(result, Ok(CorrectionOutcome::Created(_)));
                    Pending::Correction(Reply::new(reply, result))
                }
                Command::Sign { signature, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        corrections::sign(connection, &signature, now)
                    });
                    Pending::Signature(Reply::new(reply, result))
                }
                Command::Catalog { write, reply } => {
                    let result =
                        in_savepoint(&mut transaction, &mut abort, |connection| trials::apply(connection, &write, now));
                    Pending::Catalog(Reply::new(reply, result))
                }
            };
            pending.push(entry);
        }

        if let Some(reason) = abort {
            drop(transaction);
            fail_batch(&self.shared, pending, &format!("batch aborted: {reason}"));
            return;
        }

        if let Err(error) = transaction.commit() {
            let reason = format!("failed to commit batch of {batch_size} commands: {error}");
            fail_batch(&self.shared, pending, &reason);
            return;
        }

        self.metrics.record_commit(batch_size, started.elapsed());
        record_commit(&self.shared, &pending);
        let wrote_outbox = wrote_other_events || pending.iter().any(Pending::created);
        for result in pending {
            result.send();
        }
        if wrote_outbox {
            self.shared.outbox_notify.notify_one();
        }
    }
}

/// Counts a committed batch.
fn record_commit(shared: &Shared, pending: &[Pending]) {
    let succeeded = pending.iter().filter(|result| result.succeeded()).count();
    let created = pending.iter().filter(|result| result.created()).count();
    let failed = pending.len() - succeeded;

    shared.batches_committed.fetch_add(1, Ordering::Relaxed);
    shared.commands_committed.fetch_add(succeeded as u64, Ordering::Relaxed);
    shared.submissions_created.fetch_add(created as u64, Ordering::Relaxed);
    shared.commands_failed.fetch_add(failed as u64, Ordering::Relaxed);
    tracing::debug!(commands = pending.len(), created, failed, "Batch committed");
}

/// Sends the batch's failure to every caller of a batch that did not commit.
fn fail_batch(shared: &Shared, pending: impl IntoIterator<Item = Pending>, reason: &str) {
    shared.batches_failed.fetch_add(1, Ordering::Relaxed);
    let mut commands = 0;
    for result in pending {
        result.fail(reason);
        commands += 1;
    }
    tracing::error!(commands, error = reason, "Batch not committed");
}

/// Runs one command's writes inside its own savepoint.
///
/// When `work` fails, only its savepoint is rolled back and the error is returned for
/// its caller. When the savepoint itself cannot be created, released or rolled back,
/// the transaction can no longer be trusted: `abort` receives the reason, this and
/// every later command of the batch fail, and the batch is rolled back.
fn in_savepoint<T>(
    transaction: &mut Transaction<'_>,
    abort: &mut Option<String>,
    work: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    // SQLite rolls back the whole transaction on some errors (disk full, I/O error).
    // A SAVEPOINT outside a transaction would start and commit one of its own, so
    // stop the batch instead.
    if abort.is_none() && transaction.is_autocommit() {
        *abort = Some("transaction was rolled back by SQLite".to_owned());
    }
    if let Some(reason) = abort {
        bail!("batch aborted: {reason}");
    }

    let mut savepoint = match transaction.savepoint() {
        Ok(savepoint) => savepoint,
        Err(error) => {
            *abort = Some(format!("failed to create savepoint: {error}"));
            return Err(error).context("failed to create savepoint");
        }
    };

    match work(&savepoint) {
        Ok(value) => {
            if let Err(error) = savepoint.commit() {
                *abort = Some(format!("failed to release savepoint: {error}"));
                return Err(error).context("failed to release savepoint");
            }
            Ok(value)
        }
        Err(error) => {
            // Roll back explicitly: the savepoint's drop ignores errors, and a failed
            // rollback would leave this command's partial writes in the batch.
            if let Err(rollback_error) = savepoint.rollback() {
                *abort = Some(format!("failed to roll back savepoint: {rollback_error}"));
            }
            Err(error)
        }
    }
}

/// Appends a row to the audit trail, chained to the newest row: reads the chain's head
/// in the same transaction, numbers the row after it and stores both hashes. The
/// writer thread is the only writer, so no other row can be appended in between. The
/// CHECK on `actor` rejects an empty actor.
fn insert_audit_event(connection: &Connection, event: &AuditEntry<'_>) -> anyhow::Result<()> {
    let (head_seq, head_hash) = chain_head(connection)?;
    let seq = head_seq + 1;
    let occurred_at = format_audit_time(event.occurred_at);
    let hash = link_hash(&head_hash, &event.chain_fields(seq, &occurred_at));

    connection
        .prepare_cached(
            "INSERT INTO audit_events (seq, occurred_at, actor, action, entity, entity_id, request_id, reason,
                                       trial_id, patient_id, submission_id, before_value, after_value,
                                       prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            seq,
            occurred_at,
            event.actor,
            event.action,
            event.entity,
            event.entity_id,
            event.request_id,
            event.reason,
            event.trial_id,
            event.patient_id,
            event.submission_id,
            event.before_value,
            event.after_value,
            &head_hash[..],
            &hash[..],
        ])
        .with_context(|| format!("failed to insert audit event for {} {}", event.entity, event.entity_id))?;
    Ok(())
}

/// Reads the `seq` and hash of the newest audit row, or 0 and the genesis hash for an
/// empty trail.
///
/// # Errors
///
/// Fails when the newest row has no hash, which only rows written before the chain
/// existed lack, and the store hashes those when it opens the database.
fn chain_head(connection: &Connection) -> anyhow::Result<(i64, [u8; 32])> {
    let head: Option<(i64, Option<Vec<u8>>)> = connection
        .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .context("failed to read the head of the audit chain")?;
    match head {
        None => Ok((0, GENESIS_HASH)),
        Some((seq, Some(hash))) => {
            let hash = <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| anyhow!("audit row {seq} has a hash of {} bytes, expected 32", hash.len()))?;
            Ok((seq, hash))
        }
        Some((seq, None)) => Err(anyhow!("audit row {seq} has no hash, so no row can be chained after it")),
    }
}
