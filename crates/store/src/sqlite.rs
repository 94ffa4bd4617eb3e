//! The SQLite backend of [`Store`](crate::Store): one file, one writer thread that owns
//! the only write connection (`crate::writer`), and a pool of read-only connections
//! (`crate::reader`) used from Tokio's blocking thread pool.
//!
//! Every write, submissions and the rest alike, goes through the writer's queue and
//! commits in its batches.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{SharedRecorder, WriterMetrics};
use crate::model::{
    AccessChange, AccessOutcome, AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter, AuditFilter,
    AuditRecord, ChangeOrigin, CorrectionOutcome, Credential, DataQuery, Enrolment, EnrolmentFilter, ExportAudit,
    ExportCursor, ExportPage, ExportRow, NewCorrection, NewSignature, NewSubmission, OutboxBacklog, OutboxEvent,
    OutboxEventState, OutboxFailure, OutboxReplay, QueryFilter, QueryStatusChange, QueryUpdate, Revalidation,
    RevalidationOutcome, SignOutcome, StaffMember, StoreError, StoredSubmission, SubmissionHistory, SubmitOutcome,
    TokenDigest,
};
use crate::model::{
    CatalogSnapshot, FormRetirement, NewFormVersion, NewTrial, PublishOutcome, RetireOutcome, SiteAddition,
    SiteOutcome, TrialOutcome,
};
use crate::reader::{self, SubmissionPage};
use crate::schema;
use crate::writer::{CatalogOutcome, CatalogWrite, Command, Shared, Writer};

/// How long a read waits for a free pooled connection.
const READ_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of [`SqliteStore::open`], taken from [`StoreConfig`](crate::StoreConfig).
pub(crate) struct Settings<'a> {
    pub(crate) path: &'a Path,
    pub(crate) max_batch: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) read_connections: u32,
    pub(crate) metrics: Option<&'a SharedRecorder>,
}

/// An open SQLite store: the writer thread and the read pool.
pub(crate) struct SqliteStore {
    path: PathBuf,
    /// The long-lived sender of the writer's queue. [`SqliteStore::close`] takes it out,
    /// so the channel closes once in-flight sends finish, and the writer drains and
    /// exits.
    commands: RwLock<Option<mpsc::Sender<Command>>>,
    pub(crate) shared: Arc<Shared>,
    readers: Pool<SqliteConnectionManager>,
    /// Joined by the first [`SqliteStore::close`]. Held in an async mutex so that a
    /// second `close` waits for the first to finish.
    writer_thread: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database, creating the file if needed, runs pending migrations and
    /// starts the writer thread.
    ///
    /// # Errors
    ///
    /// Fails when the file's directory does not exist, when the file cannot be opened
    /// or migrated, or when the read pool cannot connect.
    pub(crate) async fn open(settings: Settings<'_>) -> anyhow::Result<SqliteStore> {
        let path = settings.path.to_path_buf();
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        anyhow::ensure!(
            directory.is_dir(),
            "directory {} of database {} does not exist; create it first",
            directory.display(),
            path.display()
        );

        // The writer thread opens its own connection, so that the connection never
        // crosses threads, and reports back once migrations have run.
        let (commands, receiver) = mpsc::channel(settings.queue_capacity);
        let shared = Arc::new(Shared::default());
        let (ready, opened) = oneshot::channel();
        let max_batch = settings.max_batch;
        let writer_thread = std::thread::Builder::new()
            .name("epro-store-writer".to_owned())
            .spawn({
                let path = path.clone();
                let shared = Arc::clone(&shared);
                let metrics = WriterMetrics::new(settings.metrics);
                move || match schema::open_writer(&path) {
                    Ok(connection) => {
                        let _ = ready.send(Ok(()));
                        let writer = Writer { connection, commands: receiver, shared, max_batch, metrics };
                        writer.run();
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            })
            .context("failed to spawn the store writer thread")?;
        opened.await.map_err(|_| anyhow!("store writer thread stopped during startup"))??;

        let read_connections = settings.read_connections;
        let readers = tokio::task::spawn_blocking({
            let path = path.clone();
            move || build_read_pool(&path, read_connections)
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

        Ok(SqliteStore {
            path,
            commands: RwLock::new(Some(commands)),
            shared,
            readers,
            writer_thread: tokio::sync::Mutex::new(Some(writer_thread)),
        })
    }

    /// Returns the database file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::Submit { submission: Box::new(submission), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| reader::submission(connection, &id)).await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.read(|connection| {
            connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)).context("failed to run SELECT 1")?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.read(move |connection| reader::outbox_pending(connection, limit)).await
    }

    pub(crate) async fn outbox_event(&self, seq: i64) -> Result<Option<OutboxEventState>, StoreError> {
        self.read(move |connection| reader::outbox_event(connection, seq)).await
    }

    pub(crate) async fn outbox_mark_delivered(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::MarkDelivered { seqs: seqs.to_vec(), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn outbox_claim(
        &self,
        relay_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Claim { relay_id: relay_id.to_owned(), limit, lease, reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn outbox_mark_failed(&self, failure: OutboxFailure) -> Result<Vec<i64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::MarkFailed { failure: Box::new(failure), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn outbox_release(&self, relay_id: &str) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Release { relay_id: relay_id.to_owned(), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn outbox_dead_letters(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<OutboxEventState>, StoreError> {
        self.read(move |connection| reader::outbox_dead_letters(connection, after, limit)).await
    }

    pub(crate) async fn outbox_replay(&self, replay: OutboxReplay) -> Result<Vec<i64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Replay { replay: Box::new(replay), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        self.read(reader::outbox_backlog).await
    }

    pub(crate) async fn audit_events(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |connection| reader::audit_events(connection, &filter)).await
    }

    pub(crate) async fn queries(&self, filter: QueryFilter) -> Result<Vec<DataQuery>, StoreError> {
        self.read(move |connection| reader::data_queries(connection, &filter)).await
    }

    pub(crate) async fn query(&self, query_id: &str) -> Result<Option<DataQuery>, StoreError> {
        let query_id = query_id.to_owned();
        self.read(move |connection| reader::data_query(connection, &query_id)).await
    }

    pub(crate) async fn update_query_status(&self, change: QueryStatusChange) -> Result<QueryUpdate, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::UpdateQueryStatus { change: Box::new(change), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn submissions_page(
        &self,
        page: &SubmissionPage<'_>,
    ) -> Result<Vec<(i64, StoredSubmission)>, StoreError> {
        let trial_id = page.trial_id.to_owned();
        let form_id = page.form_id.to_owned();
        let form_version = page.form_version.map(str::to_owned);
        let (after, limit) = (page.after, page.limit);
        self.read(move |connection| {
            let page = SubmissionPage {
                trial_id: &trial_id,
                form_id: &form_id,
                form_version: form_version.as_deref(),
                after,
                limit,
            };
            reader::submissions_page(connection, &page)
        })
        .await
    }

    pub(crate) async fn record_revalidation(&self, record: Revalidation) -> Result<RevalidationOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::RecordRevalidation { record: Box::new(record), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn export_mark(&self) -> Result<ExportCursor, StoreError> {
        self.read(reader::export_mark).await
    }

    pub(crate) async fn export_page(&self, page: &ExportPage<'_>) -> Result<Vec<ExportRow>, StoreError> {
        let trial_id = page.trial_id.to_owned();
        let form_id = page.form_id.to_owned();
        let since = page.since.cloned();
        let until = page.until.clone();
        let (after, limit) = (page.after, page.limit);
        self.read(move |connection| {
            let page = ExportPage {
                trial_id: &trial_id,
                form_id: &form_id,
                since: since.as_ref(),
                until: &until,
                after,
                limit,
            };
            reader::export_page(connection, &page)
        })
        .await
    }

    pub(crate) async fn record_export(&self, audit: ExportAudit) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::RecordExport { audit: Box::new(audit), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>, StoreError> {
        self.read(move |connection| reader::alerts(connection, &filter)).await
    }

    pub(crate) async fn alert(&self, alert_id: &str) -> Result<Option<Alert>, StoreError> {
        let alert_id = alert_id.to_owned();
        self.read(move |connection| reader::alert(connection, &alert_id)).await
    }

    pub(crate) async fn open_alert_count(&self) -> Result<u64, StoreError> {
        self.read(reader::open_alert_count).await
    }

    pub(crate) async fn acknowledge_alert(
        &self,
        acknowledgement: AlertAcknowledgement,
    ) -> Result<AcknowledgeOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::AcknowledgeAlert { acknowledgement: Box::new(acknowledgement), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn correct(&self, correction: NewCorrection) -> Result<CorrectionOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::Correct { correction: Box::new(correction), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn sign(&self, signature: NewSignature) -> Result<SignOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::Sign { signature: Box::new(signature), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn submission_history(&self, id: &str) -> Result<Option<SubmissionHistory>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| reader::submission_history(connection, &id)).await
    }

    pub(crate) async fn escalate_overdue_alerts(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::EscalateAlerts { now, limit, reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn change_access(
        &self,
        change: AccessChange,
        origin: ChangeOrigin,
    ) -> Result<AccessOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(Command::ChangeAccess { change: Box::new((change, origin)), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn credential(&self, digest: TokenDigest) -> Result<Option<Credential>, StoreError> {
        self.read(move |connection| reader::credential(connection, &digest)).await
    }

    pub(crate) async fn enrolments(
        &self,
        filter: EnrolmentFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<Enrolment>, StoreError> {
        self.read(move |connection| reader::enrolments(connection, &filter, now)).await
    }

    pub(crate) async fn staff_members(
        &self,
        staff_id: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Vec<StaffMember>, StoreError> {
        self.read(move |connection| reader::staff_members(connection, staff_id.as_deref(), now)).await
    }

    pub(crate) async fn create_trial(&self, trial: NewTrial) -> Result<TrialOutcome, StoreError> {
        match self.catalog_write(CatalogWrite::CreateTrial(trial)).await? {
            CatalogOutcome::Trial(outcome) => Ok(outcome),
            _ => Err(outcome_mismatch()),
        }
    }

    pub(crate) async fn add_site(&self, addition: SiteAddition) -> Result<SiteOutcome, StoreError> {
        match self.catalog_write(CatalogWrite::AddSite(addition)).await? {
            CatalogOutcome::Site(outcome) => Ok(outcome),
            _ => Err(outcome_mismatch()),
        }
    }

    pub(crate) async fn publish_form(&self, form: NewFormVersion) -> Result<PublishOutcome, StoreError> {
        match self.catalog_write(CatalogWrite::Publish(form)).await? {
            CatalogOutcome::Publish(outcome) => Ok(outcome),
            _ => Err(outcome_mismatch()),
        }
    }

    pub(crate) async fn retire_form(&self, retirement: FormRetirement) -> Result<RetireOutcome, StoreError> {
        match self.catalog_write(CatalogWrite::Retire(retirement)).await? {
            CatalogOutcome::Retire(outcome) => Ok(outcome),
            _ => Err(outcome_mismatch()),
        }
    }

    pub(crate) async fn catalog_generation(&self) -> Result<i64, StoreError> {
        self.read(reader::trials::catalog_generation).await
    }

    pub(crate) async fn catalog_snapshot(&self) -> Result<CatalogSnapshot, StoreError> {
        self.read(reader::trials::catalog_snapshot).await
    }

    /// Sends a catalogue write to the writer, waiting for queue space: catalogue
    /// writes are rare, and an import at startup must not fail under load.
    async fn catalog_write(&self, write: CatalogWrite) -> Result<CatalogOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Command::Catalog { write: Box::new(write), reply }).await?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Returns the number of commands queued for the writer and not yet taken into a
    /// batch, including outbox updates waiting for queue space.
    pub(crate) fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Stops accepting writes, lets the writer commit everything already queued, and
    /// waits for the writer thread to end.
    pub(crate) async fn close(&self) {
        let mut writer_thread = self.writer_thread.lock().await;

        let sender = self.commands.write().unwrap_or_else(PoisonError::into_inner).take();
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
        self.shared.try_enqueue(&self.commands, command, writer_stopped)
    }

    /// Queues a command, waiting for space if the queue is full.
    async fn enqueue(&self, command: Command) -> Result<(), StoreError> {
        // Clone the sender so that no lock is held across the await. The clone keeps
        // the channel open until this send completes, even if `close` runs meanwhile,
        // and the writer then drains the command like any other.
        let sender =
            self.commands.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or(StoreError::ShuttingDown)?;

        let queued = &self.shared.queued;
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
        let readers = self.readers.clone();
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

fn outcome_mismatch() -> StoreError {
    StoreError::Internal(anyhow!("the writer answered a catalogue write with the outcome of another write"))
}
