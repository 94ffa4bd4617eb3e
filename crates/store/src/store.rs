//! [`Store`], the handle the rest of epro uses, and [`StoreConfig`], which picks the
//! backend: an SQLite file (`crate::sqlite`) or a PostgreSQL database
//! (`crate::postgres`). Both offer the same operations with the same results, so each
//! method here only hands the call to the backend that is open.
//!
//! The methods for data queries and revalidation are in `store::rules`, those of
//! exports in `store::export`, alerts in `store::alerts`, the audit trail in
//! `store::audit`, corrections and signatures in `store::corrections`, staff and
//! enrolments in `store::access`, and the trial catalogue in `store::trials`.

mod access;
mod alerts;
mod audit;
mod corrections;
mod export;
mod rules;
mod trials;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use tokio::sync::Notify;

use crate::metrics::SharedRecorder;
use crate::model::{
    NewSubmission, OutboxBacklog, OutboxEvent, OutboxEventState, OutboxFailure, OutboxReplay, StoreError, StoreStats,
    StoredSubmission, SubmitOutcome,
};
use crate::postgres::{self, PostgresStore};
use crate::schema;
use crate::sqlite::{self, SqliteStore};
use crate::writer::Shared;

/// Settings for [`Store::open`].
#[derive(Clone)]
pub struct StoreConfig {
    /// Database to open and its location.
    pub backend: Backend,
    /// Maximum number of commands committed in one transaction.
    pub max_batch: usize,
    /// Maximum number of commands waiting for the writer. A submission that finds the
    /// queue full fails at once with [`StoreError::Overloaded`].
    pub queue_capacity: usize,
    /// Number of pooled read connections to an SQLite file. PostgreSQL reads share the
    /// pool sized by [`Backend::Postgres::pool_size`].
    pub read_connections: u32,
    /// Where the writer records its metrics, and the relay its metrics too
    /// (see [`Store::metrics_recorder`]). `None` records nothing.
    pub metrics: Option<SharedRecorder>,
    /// PostgreSQL only: apply pending migrations at open (the default). With
    /// `false` the store only checks that the schema is current, so that a role
    /// without the right to create tables or change the audit trail can open it,
    /// and `epro migrate` runs as the tables' owner.
    pub run_migrations: bool,
}

/// The database behind a [`Store`].
#[derive(Clone)]
pub enum Backend {
    /// An SQLite file on local disk, written by one writer thread.
    Sqlite {
        /// Database file. Its directory must exist, and the file is created if missing.
        path: PathBuf,
    },
    /// A PostgreSQL database that several epro instances may share.
    ///
    /// Differences from SQLite that a caller sees:
    ///
    /// - Timestamps are kept to the microsecond.
    /// - Scores, query params, findings and event payloads come back as compact JSON
    ///   with jsonb's order of object keys.
    /// - Writes other than submissions never fail with [`StoreError::Overloaded`].
    /// - An unreachable database fails operations with [`StoreError::Unavailable`]
    ///   after a wait of at most a few seconds.
    Postgres {
        /// Connection URL, for example `postgres://epro:secret@db:5432/epro`, or
        /// `key=value` settings. It may contain a password, so it is never logged:
        /// logs and `Debug` show host, port and database only.
        url: String,
        /// Maximum number of connections, shared by the writer, the other writes and
        /// the reads.
        pool_size: u32,
    },
}

impl Backend {
    /// Returns where the data lives, safe to log: the SQLite file's path, or
    /// PostgreSQL's host, port and database without user or password.
    pub fn location(&self) -> String {
        match self {
            Backend::Sqlite { path } => path.display().to_string(),
            Backend::Postgres { url, .. } => match tokio_postgres::Config::from_str(url) {
                Ok(config) => postgres::describe_target(&config),
                Err(_) => "<invalid URL>".to_owned(),
            },
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Backend::Postgres { pool_size, .. } => {
                f.debug_struct("Postgres").field("database", &self.location()).field("pool_size", pool_size).finish()
            }
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
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
    /// Default number of read connections to an SQLite file.
    pub const DEFAULT_READ_CONNECTIONS: u32 = 4;
    /// Default number of PostgreSQL connections.
    pub const DEFAULT_POOL_SIZE: u32 = 8;

    /// Creates a configuration for the SQLite file at `path` with the default limits.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_backend(Backend::Sqlite { path: path.into() })
    }

    /// Creates a configuration for the PostgreSQL database at `url` with the default
    /// limits.
    pub fn postgres(url: impl Into<String>) -> Self {
        Self::with_backend(Backend::Postgres { url: url.into(), pool_size: Self::DEFAULT_POOL_SIZE })
    }

    fn with_backend(backend: Backend) -> Self {
        StoreConfig {
            backend,
            max_batch: Self::DEFAULT_MAX_BATCH,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            read_connections: Self::DEFAULT_READ_CONNECTIONS,
            metrics: None,
            run_migrations: true,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.max_batch > 0, "max_batch must be at least 1");
        ensure!(self.queue_capacity > 0, "queue_capacity must be at least 1");
        match &self.backend {
            Backend::Sqlite { .. } => ensure!(self.read_connections > 0, "read_connections must be at least 1"),
            Backend::Postgres { pool_size, .. } => ensure!(*pool_size > 0, "pool_size must be at least 1"),
        }
        Ok(())
    }
}

/// Handle to the epro database. Clones share one writer and one connection pool.
///
/// Submissions go to the writer, which commits them in batches. On SQLite every other
/// write ([`outbox_mark_delivered`](Store::outbox_mark_delivered),
/// [`update_query_status`](Store::update_query_status) and the like) goes to the writer
/// too. On PostgreSQL it runs in its own transaction on the pool. Reads run on the
/// pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: OpenBackend,
    metrics: Option<SharedRecorder>,
}

/// The backend a [`Store`] opened.
enum OpenBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever backend `$store` has open. The backend is bound
/// to `$backend` inside `$call`.
macro_rules! dispatch {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.inner.backend {
            OpenBackend::Sqlite($backend) => $call,
            OpenBackend::Postgres($backend) => $call,
        }
    };
}

// The other `store::` modules call it too.
use dispatch;

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Store");
        match &self.inner.backend {
            OpenBackend::Sqlite(sqlite) => debug.field("path", &sqlite.path()),
            OpenBackend::Postgres(postgres) => debug.field("database", &postgres.target()),
        };
        debug.field("queue_depth", &self.queue_depth()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database, runs pending migrations and starts the writer. An SQLite
    /// file is created if missing.
    ///
    /// # Errors
    ///
    /// Fails when a limit in `config` is zero, when the SQLite file's directory does not
    /// exist, when the database cannot be opened or migrated, when a PostgreSQL schema
    /// is newer than this build, or when the read pool cannot connect. When PostgreSQL
    /// cannot be reached, the error wraps [`StoreError::Unavailable`].
    pub async fn open(config: StoreConfig) -> anyhow::Result<Store> {
        config.validate()?;

        let backend = match &config.backend {
            Backend::Sqlite { path } => {
                let settings = sqlite::Settings {
                    path,
                    max_batch: config.max_batch,
                    queue_capacity: config.queue_capacity,
                    read_connections: config.read_connections,
                    metrics: config.metrics.as_ref(),
                };
                let store = SqliteStore::open(settings).await?;
                tracing::info!(
                    backend = "sqlite",
                    path = %path.display(),
                    schema_version = schema::SCHEMA_VERSION,
                    "Store opened"
                );
                OpenBackend::Sqlite(store)
            }
            Backend::Postgres { url, pool_size } => {
                let settings = postgres::Settings {
                    url,
                    pool_size: *pool_size,
                    max_batch: config.max_batch,
                    queue_capacity: config.queue_capacity,
                    metrics: config.metrics.as_ref(),
                    run_migrations: config.run_migrations,
                };
                let store = PostgresStore::open(settings).await?;
                tracing::info!(
                    backend = "postgres",
                    database = store.target(),
                    pool_size = *pool_size,
                    schema_version = schema::SCHEMA_VERSION,
                    "Store opened"
                );
                OpenBackend::Postgres(store)
            }
        };

        Ok(Store { inner: Arc::new(Inner { backend, metrics: config.metrics }) })
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
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached or the connection
    /// fails before the commit is confirmed (a retry with the same id is safe), and
    /// [`StoreError::Internal`] when a row violates a constraint (see [`NewSubmission`])
    /// or the batch fails to commit. Nothing of the submission is stored in any of
    /// these cases, except that after `Unavailable` the commit may have happened.
    pub async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        dispatch!(self, backend => backend.submit(submission).await)
    }

    /// Reads a stored submission with all its data queries, or `None` if no submission
    /// has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        dispatch!(self, backend => backend.submission(id).await)
    }

    /// Runs `SELECT 1` on a pooled connection, for readiness checks.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when no SQLite read connection is available or the
    /// query fails.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, backend => backend.ping().await)
    }

    /// Reads up to `limit` pending outbox events (neither delivered nor dead-lettered),
    /// oldest `seq` first, whether a relay has claimed them or not. For inspection and
    /// tests; the relay uses [`outbox_claim`](Store::outbox_claim).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        dispatch!(self, backend => backend.outbox_pending(limit).await)
    }

    /// Claims up to `limit` pending outbox events for the relay `relay_id`, oldest
    /// `seq` first, for the duration of `lease`.
    ///
    /// Events under another relay's live lease are skipped, so two relays never
    /// publish the same event at the same time, also when they run in different epro
    /// instances on one PostgreSQL database. A lease that ends without a delivery mark
    /// (a crashed relay) makes its events claimable again, and they are sent again:
    /// delivery is at least once.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn outbox_claim(
        &self,
        relay_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        dispatch!(self, backend => backend.outbox_claim(relay_id, limit, lease).await)
    }

    /// Reads one outbox event with its delivery state, or `None` if `seq` is unknown.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn outbox_event(&self, seq: i64) -> Result<Option<OutboxEventState>, StoreError> {
        dispatch!(self, backend => backend.outbox_event(seq).await)
    }

    /// Marks outbox events delivered and ends their claims. An event already delivered
    /// keeps its first delivery time.
    ///
    /// Waits for queue space rather than failing with [`StoreError::Overloaded`],
    /// because the relay must be able to record deliveries under submission load.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when a `seq` does not exist (then none is marked) or
    /// the transaction fails to commit.
    pub async fn outbox_mark_delivered(&self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        dispatch!(self, backend => backend.outbox_mark_delivered(seqs).await)
    }

    /// Records a failed publish of the events in `failure`: each gets one more attempt,
    /// the error as `last_error` and its claim ended. When the sink refused them, each
    /// also gets one more rejection, and an event whose rejections reach
    /// `dead_letter_after` becomes a dead letter. Returns the `seq`s that became dead
    /// letters.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when a `seq` does not exist (then none is marked),
    /// `dead_letter_after` is 0, or the transaction fails to commit.
    pub async fn outbox_mark_failed(&self, failure: OutboxFailure) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, backend => backend.outbox_mark_failed(failure).await)
    }

    /// Ends every claim `relay_id` holds on undelivered events, so that another relay
    /// can take them at once rather than after the lease. Returns how many it released.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn outbox_release(&self, relay_id: &str) -> Result<u64, StoreError> {
        dispatch!(self, backend => backend.outbox_release(relay_id).await)
    }

    /// Reads up to `limit` dead-lettered events with `seq` above `after`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn outbox_dead_letters(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<OutboxEventState>, StoreError> {
        dispatch!(self, backend => backend.outbox_dead_letters(after, limit).await)
    }

    /// Sends the selected outbox events again: each becomes pending with its
    /// rejections reset, and gets an `outbox.replayed` audit row in the same
    /// transaction. Returns their `seq`s in order.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when an event id is unknown, the actor is empty or the
    /// reason blank (then nothing changes), or the transaction fails to commit.
    pub async fn outbox_replay(&self, replay: OutboxReplay) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, backend => backend.outbox_replay(replay).await)
    }

    /// Counts the pending and the dead-lettered outbox events and reads when the
    /// oldest pending one was written, for the relay's backlog metrics.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        dispatch!(self, backend => backend.outbox_backlog().await)
    }

    /// Returns the recorder the store was opened with. The outbox relay
    /// records its metrics there, so that one application's metrics stay in
    /// one recorder.
    pub fn metrics_recorder(&self) -> Option<SharedRecorder> {
        self.inner.metrics.clone()
    }

    /// Returns the notifier woken after every commit of this store that wrote outbox
    /// rows. Events written by another epro instance on the same PostgreSQL database
    /// do not wake it, and the relay's poll finds them instead.
    ///
    /// It uses [`Notify::notify_one`], so a commit that happens while the relay is busy
    /// leaves a permit and the relay's next `notified().await` returns at once. With
    /// more than one waiter, each commit wakes only one of them.
    pub fn outbox_notify(&self) -> Arc<Notify> {
        Arc::clone(&self.shared().outbox_notify)
    }

    /// Returns the number of commands queued for the writer and not yet taken into a
    /// batch, including SQLite outbox updates waiting for queue space.
    pub fn queue_depth(&self) -> usize {
        dispatch!(self, backend => backend.queue_depth())
    }

    /// Returns the writer's counters since the store was opened.
    pub fn stats(&self) -> StoreStats {
        self.shared().stats()
    }

    /// Stops accepting writes, lets the writer commit everything already queued, and
    /// waits for the writer to end.
    ///
    /// Later writes fail with [`StoreError::ShuttingDown`]. Reads keep working until
    /// the last clone of the store is dropped. Calling `close` again waits for the first
    /// call to finish and then returns.
    pub async fn close(&self) {
        dispatch!(self, backend => backend.close().await)
    }

    fn shared(&self) -> &Shared {
        dispatch!(self, backend => &backend.shared)
    }
}
