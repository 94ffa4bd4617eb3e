//! [`Store`], the handle the rest of epro uses: it opens the database, sends writes to
//! the writer thread and runs reads on the connection pool.
//!
//! The methods for data queries and revalidation are in `store::rules`.

mod rules;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::{SharedRecorder, WriterMetrics};
use crate::model::{
    NewSubmission, OutboxBacklog, OutboxEvent, OutboxEventState, OutboxFailure, OutboxReplay, StoreError, StoreStats,
    StoredSubmission, SubmitOutcome,
};
use crate::writer::{Command, Shared, Writer};
use crate::{reader, schema};

/// How long a read waits for a free pooled connection.
const READ_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for [`Store::open`].
#[derive(Clone)]
pub struct StoreConfig {
    /// Database file. Its directory must exist, and the file is created if missing.
    pub path: PathBuf,
    /// Maximum number of commands committed in one transaction.
    pub max_batch: usize,
    /// Maximum number of commands waiting for the writer. A submission that finds the
    /// queue full fails at once with [`StoreError::Overloaded`].
    pub queue_capacity: usize,
    /// Number of pooled read connections.
    pub read_connections: u32,
    /// Where the writer records its metrics, and the relay its metrics too
    /// (see [`Store::metrics_recorder`]). `None` records nothing.
    pub metrics: Option<SharedRecorder>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("max_batch", &self.max_batch)
            .field("queue_capacity", &self.queue_capacity)
            .field("read_connections", &self.read_connections)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl StoreConfig {
    /// Default maximum batch size.
    pub const DEFAULT_MAX_BATCH: usize = 256;
    /// Default queue capacity.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
    /// Default number of read connections.
    pub const DEFAULT_READ_CONNECTIONS: u32 = 4;

    /// Creates a configuration for `path` with the default limits.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            max_batch: Self::DEFAULT_MAX_BATCH,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            read_connections: Self::DEFAULT_READ_CONNECTIONS,
            metrics: None,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.max_batch > 0, "max_batch must be at least 1");
        ensure!(self.queue_capacity > 0, "queue_capacity must be at least 1");
        ensure!(self.read_connections > 0, "read_connections must be at least 1");

        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        ensure!(
            directory.is_dir(),
            "directory {} of database {} does not exist; create it first",
            directory.display(),
            self.path.display()
        );
        Ok(())
    }
}

/// Handle to the epro database. Clones share one writer thread and one read pool.
///
/// Writes ([`submit`](Store::submit), the `outbox_mark_*` methods,
/// [`update_query_status`](Store::update_query_status) and
/// [`record_revalidation`](Store::record_revalidation)) go to the writer thread, which
/// commits them in batches. Reads run on a pool of read-only connections
/// in Tokio's blocking thread pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The long-lived sender of the writer's queue. [`Store::close`] takes it out, so the
    /// channel closes once in-flight sends finish, and the writer drains and exits.
    commands: RwLock<Option<mpsc::Sender<Command>>>,
    shared: Arc<Shared>,
    readers: Pool<SqliteConnectionManager>,
    /// Joined by the first [`Store::close`]. Held in an async mutex so that a second
    /// `close` waits for the first to finish.
    writer_thread: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    metrics: Option<SharedRecorder>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("queue_depth", &self.queue_depth())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database, creating the file if needed, runs pending migrations and
    /// starts the writer thread.
    ///
    /// # Errors
    ///
    /// Fails when a limit in `config` is zero, when the file's directory does not exist,
    /// when the file cannot be opened or migrated, or when the read pool cannot connect.
    pub async fn open(config: StoreConfig) -> anyhow::Result<Store> {
        config.validate()?;
        let path = config.path.clone();

        // The writer thread opens its own connection, so that the connection never
        // crosses threads, and reports back once migrations have run.
        let (commands, receiver) = mpsc::channel(config.queue_capacity);
        let shared = Arc::new(Shared::default());
        let (ready, opened) = oneshot::channel();
        let writer_thread = std::thread::Builder::new()
            .name("epro-store-writer".to_owned())
            .spawn({
                let path = path.clone();
                let shared = Arc::clone(&shared);
                let metrics = WriterMetrics::new(config.metrics.as_ref());
                move || match schema::open_writer(&path) {
                    Ok(connection) => {
                        let _ = ready.send(Ok(()));
                        let writer =
                            Writer { connection, commands: receiver, shared, max_batch: config.max_batch, metrics };
                        writer.run();
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            })
            .context("failed to spawn the store writer thread")?;
        opened.await.map_err(|_| anyhow!("store writer thread stopped during startup"))??;

        let readers = tokio::task::spawn_blocking({
            let path = path.clone();
            move || build_read_pool(&path, config.read_connections)
        })
        .await
        .context("read pool task failed")?;
        let readers = match readers {
            Ok(readers) => readers,
            Err(error) => {
                // Stop the writer before failing: dropping the only sender ends it.
                drop(commands);
                let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
                return Err(error);
            }
        };

        tracing::info!(
            path = %path.display(),
            schema_version = schema::SCHEMA_VERSION,
            "Store opened"
        );
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                commands: RwLock::new(Some(commands)),
                shared,
                readers,
                writer_thread: tokio::sync::Mutex::new(Some(writer_thread)),
                metrics: config.metrics,
            }),
        })
    }

    /// Stores a submission with its data queries, outbox events and audit row, or
    /// reports a resubmission.
    ///
    /// The outbox events are one `submission.accepted` event and one `alert.raised`
    /// event per alert. A replay or conflict writes nothing and returns the stored
    /// receipt, with the status and intake queries of the first submission.
    ///
    /// Returns after the batch containing the submission has committed. Dropping the
    /// returned future after it started does not cancel the write.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] when a row violates a constraint (see [`NewSubmission`])
    /// or the batch fails to commit. Nothing of the submission is stored in any of
    /// these cases.
    pub async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::Submit { submission: Box::new(submission), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Reads a stored submission with all its data queries, or `None` if no submission
    /// has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| reader::submission(connection, &id)).await
    }

    /// Runs `SELECT 1` on a read connection, for readiness checks.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] when no read connection is available or the query fails.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|connection| {
            connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)).context("failed to run SELECT 1")?;
            Ok(())
        })
        .await
    }

    /// Reads up to `limit` pending outbox events (neither delivered nor dead-lettered),
    /// oldest `seq` first, whether a relay has claimed them or not. For inspection and
    /// tests; the relay uses [`outbox_claim`](Store::outbox_claim).
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.read(move |connection| reader::outbox_pending(connection, limit)).await
    }

    /// Claims up to `limit` pending outbox events for the relay `relay_id`, oldest
    /// `seq` first, for the duration of `lease`.
    ///
    /// Events under another relay's live lease are skipped, so two relays never
    /// publish the same event at the same time. A lease that ends without a
    /// delivery mark (a crashed relay) makes its events claimable again, and they are
    /// sent again: delivery is at least once.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] on a database error.
    pub async fn outbox_claim(
        &self,
        relay_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Claim { relay_id: relay_id.to_owned(), limit, lease, reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Reads one outbox event with its delivery state, or `None` if `seq` is unknown.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn outbox_event(&self, seq: i64) -> Result<Option<OutboxEventState>, StoreError> {
        self.read(move |connection| reader::outbox_event(connection, seq)).await
    }

    /// Marks outbox events delivered and ends their claims. An event already delivered
    /// keeps its first delivery time.
    ///
    /// Waits for queue space rather than failing with [`StoreError::Overloaded`],
    /// because the relay must be able to record deliveries under submission load.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] when a `seq` does not exist (then none is marked) or
    /// the batch fails to commit.
    pub async fn outbox_mark_delivered(&self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::MarkDelivered { seqs: seqs.to_vec(), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Records a failed publish of the events in `failure`: each gets one more attempt,
    /// the error as `last_error` and its claim ended. When the sink refused them, each
    /// also gets one more rejection, and an event whose rejections reach
    /// `dead_letter_after` becomes a dead letter. Returns the `seq`s that became dead
    /// letters.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] when a `seq` does not exist (then none is marked),
    /// `dead_letter_after` is 0, or the batch fails to commit.
    pub async fn outbox_mark_failed(&self, failure: OutboxFailure) -> Result<Vec<i64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::MarkFailed { failure: Box::new(failure), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Ends every claim `relay_id` holds on undelivered events, so that another relay
    /// can take them at once rather than after the lease. Returns how many it released.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] on a database error.
    pub async fn outbox_release(&self, relay_id: &str) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Release { relay_id: relay_id.to_owned(), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Reads up to `limit` dead-lettered events with `seq` above `after`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn outbox_dead_letters(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<OutboxEventState>, StoreError> {
        self.read(move |connection| reader::outbox_dead_letters(connection, after, limit)).await
    }

    /// Sends the selected outbox events again: each becomes pending with its
    /// rejections reset, and gets an `outbox.replayed` audit row in the same
    /// transaction. Returns their `seq`s in order.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close), and
    /// [`StoreError::Internal`] when an event id is unknown, the actor is empty or the
    /// reason blank (then nothing changes), or the batch fails to commit.
    pub async fn outbox_replay(&self, replay: OutboxReplay) -> Result<Vec<i64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Replay { replay: Box::new(replay), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Counts the undelivered outbox events and reads when the oldest of them
    /// was written, for the relay's backlog metrics.
    ///
    /// # Errors
    ///
    /// [`StoreError::Internal`] on a database error.
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        self.read(reader::outbox_backlog).await
    }

    /// Returns the recorder the store was opened with. The outbox relay
    /// records its metrics there, so that one application's metrics stay in
    /// one recorder.
    pub fn metrics_recorder(&self) -> Option<SharedRecorder> {
        self.inner.metrics.clone()
    }

    /// Returns the notifier woken after every commit that wrote outbox rows.
    ///
    /// It uses [`Notify::notify_one`], so a commit that happens while the relay is busy
    /// leaves a permit and the relay's next `notified().await` returns at once. With
    /// more than one waiter, each commit wakes only one of them.
    pub fn outbox_notify(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.shared.outbox_notify)
    }

    /// Returns the number of commands queued for the writer and not yet taken into a
    /// batch, including outbox updates waiting for queue space.
    pub fn queue_depth(&self) -> usize {
        self.inner.shared.queued.load(Ordering::Relaxed)
    }

    /// Returns the writer's counters since the store was opened.
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats()
    }

    /// Stops accepting writes, lets the writer commit everything already queued, and
    /// waits for the writer thread to end.
    ///
    /// Later writes fail with [`StoreError::ShuttingDown`]. Reads keep working until
    /// the last clone of the store is dropped. Calling `close` again waits for the first
    /// call to finish and then returns.
    pub async fn close(&self) {
        let mut writer_thread = self.inner.writer_thread.lock().await;

        let sender = self.inner.commands.write().unwrap_or_else(PoisonError::into_inner).take();
        drop(sender);

        let Some(handle) = writer_thread.take() else {
            return;
        };
        // The writer logs its own stop, so success needs no line here.
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("Store writer thread panicked"),
            Err(error) => tracing::error!(error = %error, "Failed to join the store writer thread"),
        }
    }

    /// Queues a command without waiting, so that overload is reported at once.
    fn try_enqueue(&self, command: Command) -> Result<(), StoreError> {
        let commands = self.inner.commands.read().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = commands.as_ref() else {
            return Err(StoreError::ShuttingDown);
        };

        // Count before sending, because the writer may take the command and decrement
        // before `try_send` returns.
        let queued = &self.inner.shared.queued;
        queued.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                Err(StoreError::Overloaded)
            }
            Err(TrySendError::Closed(_)) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                Err(writer_stopped())
            }
        }
    }

    /// Queues a command, waiting for space if the queue is full.
    async fn enqueue(&self, command: Command) -> Result<(), StoreError> {
        // Clone the sender so that no lock is held across the await. The clone keeps
        // the channel open until this send completes, even if `close` runs meanwhile,
        // and the writer then drains the command like any other.
        let sender = self
            .inner
            .commands
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::ShuttingDown)?;

        let queued = &self.inner.shared.queued;
        queued.fetch_add(1, Ordering::Relaxed);
        if sender.send(command).await.is_err() {
            queued.fetch_sub(1, Ordering::Relaxed);
            return Err(writer_stopped());
        }
        Ok(())
    }

    /// Runs a query on a pooled read connection in Tokio's blocking thread pool.
    async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let readers = self.inner.readers.clone();
        let result = tokio::task::spawn_blocking(move || {
            let connection = readers.get().context("failed to get a read connection")?;
            query(&connection)
        })
        .await
        .context("read task failed")?;
        Ok(result?)
    }
}

fn build_read_pool(path: &Path, size: u32) -> anyhow::Result<Pool<SqliteConnectionManager>> {
    let manager = SqliteConnectionManager::file(path).with_flags(schema::reader_flags()).with_init(schema::init_reader);
    Pool::builder()
        .max_size(size)
        .connection_timeout(READ_CONNECTION_TIMEOUT)
        .build(manager)
        .with_context(|| format!("failed to open read connections to {}", path.display()))
}

fn writer_stopped() -> StoreError {
    StoreError::Internal(anyhow!("store writer thread has stopped"))
}
