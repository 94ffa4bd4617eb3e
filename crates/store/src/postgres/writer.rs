//! The PostgreSQL writer task: group commit of submissions.
//!
//! [`PostgresStore::submit`](super::PostgresStore::submit) sends each submission over
//! the same bounded channel as on SQLite. The task waits for one, takes whatever else
//! is queued (up to `max_batch` in all), and writes the batch in one transaction with
//! the multi-row statements of `batch`. Only after `COMMIT` returns does it reply to
//! the callers. The other writes do not queue here: they run in their own transactions on
//! the pool, because PostgreSQL, unlike SQLite, lets them run beside a batch.
//!
//! When the batch fails on a constraint, which one row's value can cause, the task
//! rolls it back and writes each submission again in its own transaction, so that only
//! the bad one fails and the rest commit. When the database cannot be reached, or the
//! connection fails before `COMMIT` returns, every caller of the batch gets
//! [`StoreError::Unavailable`]: nothing was acknowledged, and the client's retry with
//! the same submission id is a replay if the commit did happen. The task itself keeps
//! running, and the pool opens new connections once the database is back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::error::{classify, is_unavailable, redact};
use crate::metrics::WriterMetrics;
use crate::model::{NewSubmission, StoreError, SubmitOutcome};
use crate::writer::Shared;

/// A submission waiting for the writer, with the sender that receives its outcome
/// after its batch has committed.
pub(super) struct SubmitCommand {
    pub(super) submission: Box<NewSubmission>,
    pub(super) reply: oneshot::Sender<Result<SubmitOutcome, StoreError>>,
}

impl SubmitCommand {
    /// Sends the result to the caller. A caller that stopped waiting is skipped,
    /// because dropping the future of `submit` does not cancel the write.
    fn send_result(self, result: Result<SubmitOutcome, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// The writer task's state.
pub(super) struct Writer {
    pub(super) pool: Pool,
    pub(super) commands: mpsc::Receiver<SubmitCommand>,
    pub(super) shared: Arc<Shared>,
    pub(super) max_batch: usize,
    pub(super) metrics: WriterMetrics,
}

impl Writer {
    /// Runs batches until every sender is dropped and the queue is empty.
    pub(super) async fn run(mut self) {
        tracing::info!(max_batch = self.max_batch, "Store writer started");
        let mut batch = Vec::with_capacity(self.max_batch);

        while self.commands.recv_many(&mut batch, self.max_batch).await > 0 {
            let before = self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.metrics.record_queue_depth(before.saturating_sub(batch.len()));
            self.run_batch(std::mem::take(&mut batch)).await;
        }

        tracing::info!("Store writer stopped");
    }

    /// Writes one batch and replies to each caller after its transaction has ended.
    async fn run_batch(&self, commands: Vec<SubmitCommand>) {
        let started = Instant::now();

        let mut checked = Vec::with_capacity(commands.len());
        for command in commands {
            match batch::check(&command.submission) {
                Ok(()) => checked.push(command),
                Err(error) => {
                    self.shared.commands_failed.fetch_add(1, Ordering::Relaxed);
                    command.send_result(Err(StoreError::Internal(error)));
                }
            }
        }
        if checked.is_empty() {
            return;
        }

        let error = match self.write(&checked).await {
            Ok(outcomes) => {
                self.metrics.record_commit(checked.len(), started.elapsed());
                self.reply_committed(checked.into_iter().zip(outcomes));
                return;
            }
            Err(error) => error,
        };

        if is_unavailable(&error) {
            fail_unavailable(&self.shared, checked, error);
            return;
        }
        let error = redact(error);
        tracing::warn!(
            commands = checked.len(),
            error = %format!("{error:#}"),
            "Batch rolled back; writing its submissions one per transaction"
        );
        self.write_one_by_one(checked).await;
    }

    /// Writes each submission in its own transaction, after its batch failed on a
    /// constraint. Once the database is unavailable, the rest fail without a try.
    async fn write_one_by_one(&self, commands: Vec<SubmitCommand>) {
        let mut commands = commands.into_iter();
        while let Some(command) = commands.next() {
            let started = Instant::now();
            match self.write(std::slice::from_ref(&command)).await {
                Ok(mut outcomes) => {
                    self.metrics.record_commit(1, started.elapsed());
                    let outcome = outcomes.pop().context("a batch of one returned no outcome");
                    match outcome {
                        Ok(outcome) => self.reply_committed([(command, outcome)].into_iter()),
                        Err(error) => command.send_result(Err(StoreError::Internal(error))),
                    }
                }
                Err(error) if is_unavailable(&error) => {
                    fail_unavailable(&self.shared, std::iter::once(command).chain(commands), error);
                    return;
                }
                Err(error) => {
                    let id = command.submission.submission_id.clone();
                    self.shared.commands_failed.fetch_add(1, Ordering::Relaxed);
                    command.send_result(Err(classify(error.context(format!("failed to store submission {id}")))));
                }
            }
        }
    }

    /// Runs the batch's statements in one transaction and commits it.
    async fn write(&self, commands: &[SubmitCommand]) -> anyhow::Result<Vec<SubmitOutcome>> {
        let mut client = self.pool.get().await.context("failed to get a database connection")?;
        let transaction = client.transaction().await.context("failed to begin transaction")?;

        let submissions: Vec<&NewSubmission> = commands.iter().map(|command| command.submission.as_ref()).collect();
        let outcomes = batch::insert(&transaction, &submissions).await?;

        transaction
            .commit()
            .await
            .with_context(|| format!("failed to commit batch of {} submissions", commands.len()))?;
        Ok(outcomes)
    }

    /// Counts a committed transaction, replies to its callers and wakes the relay if
    /// it stored a new submission.
    fn reply_committed(&self, results: impl ExactSizeIterator<Item = (SubmitCommand, SubmitOutcome)>) {
        let commands = results.len();
        let mut created = 0;
        for (command, outcome) in results {
            if matches!(outcome, SubmitOutcome::Created(_)) {
                created += 1;
            }
            command.send_result(Ok(outcome));
        }

        let shared = &self.shared;
        shared.batches_committed.fetch_add(1, Ordering::Relaxed);
        shared.commands_committed.fetch_add(commands as u64, Ordering::Relaxed);
        shared.submissions_created.fetch_add(created, Ordering::Relaxed);
        tracing::debug!(commands, created, "Batch committed");
        if created > 0 {
            shared.outbox_notify.notify_one();
        }
    }
}

/// Fails every caller of a batch that did not commit, or whose commit is unknown,
/// with [`StoreError::Unavailable`].
fn fail_unavailable(shared: &Shared, commands: impl IntoIterator<Item = SubmitCommand>, error: anyhow::Error) {
    shared.batches_failed.fetch_add(1, Ordering::Relaxed);
    let reason = format!("{:#}", redact(error));
    let mut count = 0;
    for command in commands {
        let id = &command.submission.submission_id;
        let error = anyhow!("submission {id} not acknowledged: {reason}");
        command.send_result(Err(StoreError::Unavailable(error)));
        count += 1;
    }
    tracing::error!(commands = count, error = reason, "Batch not committed: database unavailable");
}
