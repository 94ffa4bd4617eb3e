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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow, bail};
use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::columns::{format_utc, format_with_offset, parse_timestamp};
use crate::model::{NewSubmission, Receipt, StoreError, StoreStats, SubmitOutcome};

/// Event type of the outbox row written for each new submission.
pub const SUBMISSION_ACCEPTED: &str = "submission.accepted";

/// Audit action recorded for each new submission.
pub const SUBMISSION_CREATED: &str = "submission.created";

/// Maximum length in bytes of the `last_error` text kept on an outbox row. Longer sink
/// errors are cut at a character boundary.
const MAX_LAST_ERROR_BYTES: usize = 2000;

/// A request to the writer thread. Each carries the oneshot sender that receives its
/// result after the batch commits.
pub(crate) enum Command {
    Submit { submission: Box<NewSubmission>, reply: oneshot::Sender<Result<SubmitOutcome, StoreError>> },
    MarkDelivered { seqs: Vec<i64>, reply: oneshot::Sender<Result<(), StoreError>> },
    MarkFailed { seq: i64, error: String, reply: oneshot::Sender<Result<(), StoreError>> },
}

/// State shared between the writer thread and every [`Store`](crate::Store) clone.
#[derive(Default)]
pub(crate) struct Shared {
    /// Woken after each commit that wrote outbox rows.
    pub(crate) outbox_notify: Arc<Notify>,
    /// Commands sent (or waiting for queue space) and not yet taken by the writer.
    pub(crate) queued: AtomicUsize,
    batches_committed: AtomicU64,
    commands_committed: AtomicU64,
    submissions_created: AtomicU64,
    commands_failed: AtomicU64,
    batches_failed: AtomicU64,
}

impl Shared {
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
}

/// A command's result, held until the batch's transaction has ended.
enum Pending {
    Submit(oneshot::Sender<Result<SubmitOutcome, StoreError>>, anyhow::Result<SubmitOutcome>),
    Update(oneshot::Sender<Result<(), StoreError>>, anyhow::Result<()>),
}

impl Pending {
    fn succeeded(&self) -> bool {
        match self {
            Pending::Submit(_, result) => result.is_ok(),
            Pending::Update(_, result) => result.is_ok(),
        }
    }

    fn created(&self) -> bool {
        matches!(self, Pending::Submit(_, Ok(SubmitOutcome::Created(_))))
    }

    /// Sends the result. A caller that stopped waiting is skipped, because its write
    /// has committed anyway.
    fn send(self) {
        match self {
            Pending::Submit(reply, result) => {
                let _ = reply.send(result.map_err(StoreError::Internal));
            }
            Pending::Update(reply, result) => {
                let _ = reply.send(result.map_err(StoreError::Internal));
            }
        }
    }

    /// Sends the batch's failure in place of the result, because nothing was committed.
    fn fail(self, reason: &str) {
        match self {
            Pending::Submit(reply, _) => {
                let _ = reply.send(Err(StoreError::Internal(anyhow!("{reason}"))));
            }
            Pending::Update(reply, _) => {
                let _ = reply.send(Err(StoreError::Internal(anyhow!("{reason}"))));
            }
        }
    }
}

impl Command {
    /// Turns a command that never ran into a pending result, so that it can be failed.
    fn into_skipped(self) -> Pending {
        match self {
            Command::Submit { reply, .. } => Pending::Submit(reply, Err(anyhow!("not run"))),
            Command::MarkDelivered { reply, .. } | Command::MarkFailed { reply, .. } => {
                Pending::Update(reply, Err(anyhow!("not run")))
            }
        }
    }
}

impl Writer {
    /// Runs batches until every sender is dropped and the queue is empty.
    pub(crate) fn run(mut self) {
        tracing::info!(max_batch = self.max_batch, "Store writer started");
        let mut batch = Vec::with_capacity(self.max_batch);

        while self.commands.blocking_recv_many(&mut batch, self.max_batch) > 0 {
            self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.run_batch(batch.drain(..));
        }

        tracing::info!("Store writer stopped");
    }

    /// Runs one batch in one transaction and sends each caller its result after the
    /// transaction ends.
    fn run_batch(&mut self, batch: impl ExactSizeIterator<Item = Command>) {
        let batch_size = batch.len();

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
        let mut pending = Vec::with_capacity(batch_size);
        for command in batch {
            let entry = match command {
                Command::Submit { submission, reply } => {
                    let result = in_savepoint(&mut transaction, &mut abort, |connection| {
                        insert_submission(connection, &submission, now)
                    });
                    Pending::Submit(reply, result)
                }
                Command::MarkDelivered { seqs, reply } => {
                    let result =
                        in_savepoint(&mut transaction, &mut abort, |connection| mark_delivered(connection, &seqs, now));
                    Pending::Update(reply, result)
                }
                Command::MarkFailed { seq, error, reply } => {
                    let result =
                        in_savepoint(&mut transaction, &mut abort, |connection| mark_failed(connection, seq, &error));
                    Pending::Update(reply, result)
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

        record_commit(&self.shared, &pending);
        let wrote_outbox = pending.iter().any(Pending::created);
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

const INSERT_SUBMISSION: &str = "
    INSERT INTO submissions (
        submission_id, trial_id, form_id, form_version, patient_id,
        completed_at, completed_at_offset_seconds, received_at, source,
        raw_answers, normalized_answers, content_sha256, request_id
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (submission_id) DO NOTHING";

const SELECT_EXISTING: &str = "
    SELECT content_sha256, trial_id, form_id, form_version, received_at
    FROM submissions WHERE submission_id = ?1";

const INSERT_OUTBOX_EVENT: &str = "
    INSERT INTO outbox_events (
        event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const INSERT_AUDIT_EVENT: &str = "
    INSERT INTO audit_events (occurred_at, actor, action, entity, entity_id, request_id)
    VALUES (?1, ?2, ?3, 'submission', ?4, ?5)";

/// Stores a new submission with its outbox and audit rows, or classifies a resubmission.
///
/// The insert itself detects a resubmission (`ON CONFLICT DO NOTHING` inserts no row),
/// so two submissions with the same id cannot both be created, even within one batch.
fn insert_submission(
    connection: &Connection,
    submission: &NewSubmission,
    now: OffsetDateTime,
) -> anyhow::Result<SubmitOutcome> {
    let submission_id = submission.submission_id.as_str();
    let completed_at = format_utc(submission.completed_at)?;
    let completed_at_offset = submission.completed_at.offset().whole_seconds();
    let received_at = format_utc(submission.received_at)?;

    let inserted = connection
        .prepare_cached(INSERT_SUBMISSION)?
        .execute(params![
            submission_id,
            submission.trial_id,
            submission.form_id,
            submission.form_version,
            submission.patient_id,
            completed_at,
            completed_at_offset,
            received_at,
            submission.source.as_str(),
            submission.raw_answers,
            submission.normalized_answers,
            &submission.content_sha256[..],
            submission.request_id,
        ])
        .with_context(|| format!("failed to insert submission {submission_id}"))?;

    if inserted == 0 {
        return classify_resubmission(connection, submission, submission_id);
    }

    let event_id = Uuid::now_v7();
    let occurred_at = format_utc(now)?;
    let payload = serde_json::json!({
        "formId": submission.form_id,
        "formVersion": submission.form_version,
        "completedAt": format_with_offset(submission.completed_at)?,
        "receivedAt": received_at,
    });
    connection
        .prepare_cached(INSERT_OUTBOX_EVENT)?
        .execute(params![
            event_id.hyphenated().to_string(),
            SUBMISSION_ACCEPTED,
            occurred_at,
            submission.trial_id,
            submission.patient_id,
            submission_id,
            payload.to_string(),
        ])
        .with_context(|| format!("failed to insert outbox event for submission {submission_id}"))?;

    connection
        .prepare_cached(INSERT_AUDIT_EVENT)?
        .execute(params![occurred_at, submission.actor, SUBMISSION_CREATED, submission_id, submission.request_id,])
        .with_context(|| format!("failed to insert audit event for submission {submission_id}"))?;

    Ok(SubmitOutcome::Created(Receipt {
        submission_id: submission.submission_id.clone(),
        trial_id: submission.trial_id.clone(),
        form_id: submission.form_id.clone(),
        form_version: submission.form_version.clone(),
        received_at: parse_timestamp(&received_at)?,
    }))
}

/// Compares a resubmission with the stored row of the same id.
fn classify_resubmission(
    connection: &Connection,
    submission: &NewSubmission,
    submission_id: &str,
) -> anyhow::Result<SubmitOutcome> {
    let existing = connection
        .prepare_cached(SELECT_EXISTING)?
        .query_row([submission_id], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                Receipt {
                    submission_id: submission.submission_id.clone(),
                    trial_id: row.get(1)?,
                    form_id: row.get(2)?,
                    form_version: row.get(3)?,
                    received_at: OffsetDateTime::UNIX_EPOCH,
                },
                row.get::<_, String>(4)?,
            ))
        })
        .optional()
        .with_context(|| format!("failed to read stored submission {submission_id}"))?;
    let Some((stored_sha256, mut receipt, received_at)) = existing else {
        bail!("submission {submission_id} was neither inserted nor found");
    };
    receipt.received_at = parse_timestamp(&received_at)?;

    let same_content = stored_sha256 == submission.content_sha256;
    if same_content { Ok(SubmitOutcome::Replayed(receipt)) } else { Ok(SubmitOutcome::Conflict(receipt)) }
}

/// Sets `delivered_at` on each event. An event already delivered keeps its first time.
fn mark_delivered(connection: &Connection, seqs: &[i64], now: OffsetDateTime) -> anyhow::Result<()> {
    let delivered_at = format_utc(now)?;
    let mut statement = connection
        .prepare_cached("UPDATE outbox_events SET delivered_at = coalesce(delivered_at, ?2) WHERE seq = ?1")?;
    for seq in seqs {
        let updated = statement
            .execute(params![seq, delivered_at])
            .with_context(|| format!("failed to mark outbox event {seq} delivered"))?;
        if updated == 0 {
            bail!("failed to mark outbox event {seq} delivered: no such event");
        }
    }
    Ok(())
}

/// Counts a failed publish attempt and keeps its error text.
fn mark_failed(connection: &Connection, seq: i64, error: &str) -> anyhow::Result<()> {
    let error = truncate_at_char_boundary(error, MAX_LAST_ERROR_BYTES);
    let updated = connection
        .prepare_cached("UPDATE outbox_events SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1")?
        .execute(params![seq, error])
        .with_context(|| format!("failed to mark outbox event {seq} failed"))?;
    if updated == 0 {
        bail!("failed to mark outbox event {seq} failed: no such event");
    }
    Ok(())
}

fn truncate_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text() {
        assert_eq!(truncate_at_char_boundary("timeout", 10), "timeout");
    }

    #[test]
    fn truncate_cuts_at_char_boundary() {
        // "超时" is two characters of three bytes each, so 4 bytes hold only the first.
        assert_eq!(truncate_at_char_boundary("超时", 4), "超");
    }
}
