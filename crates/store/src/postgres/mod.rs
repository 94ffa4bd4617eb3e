//! The PostgreSQL backend of [`Store`](crate::Store), with the same operations and the
//! same results as the SQLite backend, on a pool of connections.
//!
//! Submissions go through the writer task (`writer`), which commits them in batches
//! like the SQLite writer thread. Every other write runs in its own transaction on
//! the pool, and reads run on the pool too. A pooled connection is handed out only
//! after a check that it is still open, and a new one is opened when none is idle, so
//! the store recovers by itself when the database comes back after an outage.
//!
//! Differences from SQLite that a caller can see:
//!
//! - Timestamps keep microseconds, not nanoseconds. The store cuts the finer digits
//!   before writing, so the receipt of a new submission equals what is read back.
//! - jsonb columns (scores, query params, derived findings, event payloads) come back
//!   compact with the same content, but with jsonb's order of object keys.
//! - [`StoreError::Unavailable`] reports an unreachable database.
//! - Writes other than submissions do not queue, so they never fail with
//!   [`StoreError::Overloaded`]. Instead they wait up to [`POOL_TIMEOUT`] for a
//!   connection.

mod access;
mod alerts;
mod audit;
mod batch;
mod corrections;
mod error;
mod export;
mod outbox;
mod reader;
mod rules;
mod schema;
mod trials;
mod writer;

use std::fmt;
use std::str::FromStr as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use self::error::classify;
use self::writer::{SubmitCommand, Writer};
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
use crate::reader::SubmissionPage;
use crate::writer::Shared;

/// How long a caller waits for a pooled connection, and how long opening or checking
/// one may take, before the operation fails with [`StoreError::Unavailable`]. Short, so
/// that requests fail fast while the database is down instead of piling up.
pub(crate) const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of [`PostgresStore::open`], taken from [`StoreConfig`](crate::StoreConfig).
pub(crate) struct Settings<'a> {
    pub(crate) url: &'a str,
    pub(crate) pool_size: u32,
    pub(crate) max_batch: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) metrics: Option<&'a SharedRecorder>,
    pub(crate) run_migrations: bool,
}

/// An open PostgreSQL store: the pool and the writer task.
pub(crate) struct PostgresStore {
    pool: Pool,
    /// Host, port and database name, for logs. Never the password.
    target: String,
    /// The long-lived sender of the writer's queue. [`PostgresStore::close`] takes it
    /// out, so the channel closes once in-flight sends finish and the writer drains.
    commands: RwLock<Option<mpsc::Sender<SubmitCommand>>>,
    pub(crate) shared: Arc<Shared>,
    /// Joined by the first [`PostgresStore::close`]. Held in an async mutex so that a
    /// second `close` waits for the first to finish.
    writer_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// `true` once closed. Writes on the pool hold it for reading while they run, and
    /// `close` takes it for writing, so `close` waits for them and later ones fail
    /// with [`StoreError::ShuttingDown`].
    closed: tokio::sync::RwLock<bool>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.target).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, runs pending migrations and starts the writer task.
    ///
    /// # Errors
    ///
    /// Fails when the URL is invalid, when the database cannot be reached (the error
    /// then wraps [`StoreError::Unavailable`]), or when a migration fails or the schema
    /// is newer than this build.
    pub(crate) async fn open(settings: Settings<'_>) -> anyhow::Result<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(settings.url)
            .map_err(|error| anyhow!("invalid PostgreSQL URL: {error}"))?;
        let target = describe_target(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("epro");
        }
        // A submission is acknowledged after COMMIT returns, so COMMIT must wait for the
        // flush of the log, whatever the server's or the role's default.
        let options = match config.get_options() {
            Some(options) => format!("{options} -c synchronous_commit=on"),
            None => "-c synchronous_commit=on".to_owned(),
        };
        config.options(&options);

        // NOTE: connections are unencrypted (NoTls), so a server that requires TLS
        // rejects them. Add a TLS connector before using a database across a network.
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool_size = usize::try_from(settings.pool_size).unwrap_or(usize::MAX);
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .context("failed to build the PostgreSQL connection pool")?;

        let migrated = async {
            let mut client = pool.get().await.context("failed to connect")?;
            if !settings.run_migrations {
                return schema::check_current(&client).await;
            }
            schema::migrate(&mut client).await?;
            let sealed = audit::seal_unhashed(&mut client).await.context("failed to hash the audit trail")?;
            if sealed > 0 {
                tracing::info!(rows = sealed, "Audit rows written before the hash chain are now chained");
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = migrated {
            // Wrapped in a StoreError, so that a caller can tell an unreachable database
            // from a broken one.
            let error = error.context(format!("failed to open PostgreSQL database {target}"));
            return Err(anyhow::Error::new(classify(error)));
        }

        let (commands, receiver) = mpsc::channel(settings.queue_capacity);
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            pool: pool.clone(),
            commands: receiver,
            shared: Arc::clone(&shared),
            max_batch: settings.max_batch,
            metrics: WriterMetrics::new(settings.metrics),
        };
        let writer_task = tokio::spawn(writer.run());

        Ok(PostgresStore {
            pool,
            target,
            commands: RwLock::new(Some(commands)),
            shared,
            writer_task: tokio::sync::Mutex::new(Some(writer_task)),
            closed: tokio::sync::RwLock::new(false),
        })
    }

    /// Returns host, port and database name, for logs.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    pub(crate) async fn submit(&self, submission: NewSubmission) -> Result<SubmitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.try_enqueue(SubmitCommand { submission: Box::new(submission), reply })?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) async fn submission(&self, id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let mut client = self.client().await?;
        reader::submission(&mut client, id).await.map_err(classify)
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await.context("failed to run SELECT 1").map_err(classify)?;
        Ok(())
    }

    pub(crate) async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let client = self.client().await?;
        reader::outbox_pending(&client, limit).await.map_err(classify)
    }

    pub(crate) async fn outbox_claim(
        &self,
        relay_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let _open = self.open_for_writes().await?;
        let client = self.client().await?;
        let events = outbox::claim(&client, relay_id, limit, lease).await.map_err(classify)?;
        self.record_transaction();
        Ok(events)
    }

    pub(crate) async fn outbox_event(&self, seq: i64) -> Result<Option<OutboxEventState>, StoreError> {
        let client = self.client().await?;
        reader::outbox_event(&client, seq).await.map_err(classify)
    }

    pub(crate) async fn outbox_mark_delivered(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        outbox::mark_delivered(&mut client, seqs).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(())
    }

    pub(crate) async fn outbox_mark_failed(&self, failure: OutboxFailure) -> Result<Vec<i64>, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let dead = outbox::mark_failed(&mut client, &failure).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(dead)
    }

    pub(crate) async fn outbox_release(&self, relay_id: &str) -> Result<u64, StoreError> {
        let _open = self.open_for_writes().await?;
        let client = self.client().await?;
        let released = outbox::release(&client, relay_id).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(released)
    }

    pub(crate) async fn outbox_dead_letters(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<OutboxEventState>, StoreError> {
        let client = self.client().await?;
        reader::outbox_dead_letters(&client, after, limit).await.map_err(classify)
    }

    pub(crate) async fn outbox_replay(&self, replay: OutboxReplay) -> Result<Vec<i64>, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let seqs = outbox::replay(&mut client, &replay).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        if !seqs.is_empty() {
            self.shared.outbox_notify.notify_one();
        }
        Ok(seqs)
    }

    pub(crate) async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let mut client = self.client().await?;
        reader::outbox_backlog(&mut client).await.map_err(classify)
    }

    pub(crate) async fn audit_events(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.client().await?;
        audit::audit_events(&client, &filter).await.map_err(classify)
    }

    pub(crate) async fn queries(&self, filter: QueryFilter) -> Result<Vec<DataQuery>, StoreError> {
        let client = self.client().await?;
        reader::data_queries(&client, &filter).await.map_err(classify)
    }

    pub(crate) async fn query(&self, query_id: &str) -> Result<Option<DataQuery>, StoreError> {
        let client = self.client().await?;
        reader::data_query(&client, query_id).await.map_err(classify)
    }

    pub(crate) async fn update_query_status(&self, change: QueryStatusChange) -> Result<QueryUpdate, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let update =
            rules::update_query_status(&mut client, &change).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(update)
    }

    pub(crate) async fn submissions_page(
        &self,
        page: &SubmissionPage<'_>,
    ) -> Result<Vec<(i64, StoredSubmission)>, StoreError> {
        let mut client = self.client().await?;
        reader::submissions_page(&mut client, page).await.map_err(classify)
    }

    pub(crate) async fn record_revalidation(&self, record: Revalidation) -> Result<RevalidationOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome =
            rules::record_revalidation(&mut client, &record).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn export_mark(&self) -> Result<ExportCursor, StoreError> {
        let client = self.client().await?;
        export::mark(&client).await.map_err(classify)
    }

    pub(crate) async fn export_page(&self, page: &ExportPage<'_>) -> Result<Vec<ExportRow>, StoreError> {
        let client = self.client().await?;
        export::page(&client, page).await.map_err(classify)
    }

    pub(crate) async fn record_export(&self, audit: ExportAudit) -> Result<(), StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        export::record(&mut client, &audit).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(())
    }

    pub(crate) async fn alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let client = self.client().await?;
        alerts::alerts(&client, &filter).await.map_err(classify)
    }

    pub(crate) async fn alert(&self, alert_id: &str) -> Result<Option<Alert>, StoreError> {
        let client = self.client().await?;
        alerts::alert(&client, alert_id).await.map_err(classify)
    }

    pub(crate) async fn open_alert_count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        alerts::open_alert_count(&client).await.map_err(classify)
    }

    pub(crate) async fn change_access(
        &self,
        change: AccessChange,
        origin: ChangeOrigin,
    ) -> Result<AccessOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome =
            access::change_access(&mut client, &change, &origin).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn credential(&self, digest: TokenDigest) -> Result<Option<Credential>, StoreError> {
        let client = self.client().await?;
        access::credential(&client, &digest).await.map_err(classify)
    }

    pub(crate) async fn enrolments(
        &self,
        filter: EnrolmentFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<Enrolment>, StoreError> {
        let client = self.client().await?;
        access::enrolments(&client, &filter, now).await.map_err(classify)
    }

    pub(crate) async fn staff_members(
        &self,
        staff_id: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Vec<StaffMember>, StoreError> {
        let client = self.client().await?;
        access::staff_members(&client, staff_id.as_deref(), now).await.map_err(classify)
    }

    pub(crate) async fn acknowledge_alert(
        &self,
        acknowledgement: AlertAcknowledgement,
    ) -> Result<AcknowledgeOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome = alerts::acknowledge_alert(&mut client, &acknowledgement)
            .await
            .map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn correct(&self, correction: NewCorrection) -> Result<CorrectionOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome =
            corrections::correct(&mut client, &correction).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        if matches!(outcome, CorrectionOutcome::Created(_)) {
            self.shared.outbox_notify.notify_one();
        }
        Ok(outcome)
    }

    pub(crate) async fn sign(&self, signature: NewSignature) -> Result<SignOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome = corrections::sign(&mut client, &signature).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn submission_history(&self, id: &str) -> Result<Option<SubmissionHistory>, StoreError> {
        let mut client = self.client().await?;
        corrections::submission_history(&mut client, id).await.map_err(classify)
    }

    pub(crate) async fn escalate_overdue_alerts(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let escalated =
            alerts::escalate_overdue(&mut client, now, limit).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        if !escalated.is_empty() {
            self.shared.outbox_notify.notify_one();
        }
        Ok(escalated)
    }

    pub(crate) async fn create_trial(&self, trial: NewTrial) -> Result<TrialOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome = trials::create_trial(&mut client, &trial).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn add_site(&self, addition: SiteAddition) -> Result<SiteOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome = trials::add_site(&mut client, &addition).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn publish_form(&self, form: NewFormVersion) -> Result<PublishOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome = trials::publish_form(&mut client, &form).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn retire_form(&self, retirement: FormRetirement) -> Result<RetireOutcome, StoreError> {
        let _open = self.open_for_writes().await?;
        let mut client = self.client().await?;
        let outcome =
            trials::retire_form(&mut client, &retirement).await.map_err(|error| self.record_failure(error))?;
        self.record_transaction();
        Ok(outcome)
    }

    pub(crate) async fn catalog_generation(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        trials::catalog_generation(&client).await.map_err(classify)
    }

    pub(crate) async fn catalog_snapshot(&self) -> Result<CatalogSnapshot, StoreError> {
        let mut client = self.client().await?;
        trials::catalog_snapshot(&mut client).await.map_err(classify)
    }

    /// Returns the number of submissions queued for the writer and not yet taken into
    /// a batch.
    pub(crate) fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Stops accepting writes, lets the writer commit everything queued and waits for
    /// it and for the writes running on the pool. Reads keep working.
    pub(crate) async fn close(&self) {
        let mut writer_task = self.writer_task.lock().await;

        let sender = self.commands.write().unwrap_or_else(PoisonError::into_inner).take();
        drop(sender);
        *self.closed.write().await = true;

        let Some(handle) = writer_task.take() else {
            return;
        };
        // The writer logs its own stop, so success needs no line here.
        if let Err(error) = handle.await {
            tracing::error!(error = %error, "Store writer task failed");
        }
    }

    /// Queues a command without waiting, so that overload is reported at once.
    fn try_enqueue(&self, command: SubmitCommand) -> Result<(), StoreError> {
        self.shared.try_enqueue(&self.commands, command, writer_stopped)
    }

    /// Returns a guard that keeps [`close`](Self::close) waiting while a write runs, or
    /// [`StoreError::ShuttingDown`] once the store is closed.
    async fn open_for_writes(&self) -> Result<tokio::sync::RwLockReadGuard<'_, bool>, StoreError> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::ShuttingDown);
        }
        Ok(closed)
    }

    /// Takes a connection from the pool, or reports the database unavailable.
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.context("failed to get a database connection").map_err(classify)
    }

    /// Counts a write committed on the pool, as the writer counts its batches.
    fn record_transaction(&self) {
        self.shared.batches_committed.fetch_add(1, Ordering::Relaxed);
        self.shared.commands_committed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write on the pool that did not commit, and classifies its error.
    fn record_failure(&self, error: anyhow::Error) -> StoreError {
        let error = classify(error);
        let counter = match error {
            StoreError::Unavailable(_) => &self.shared.batches_failed,
            _ => &self.shared.commands_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        error
    }
}

/// Describes where a configuration connects, without user or password:
/// `host:port/database`.
pub(crate) fn describe_target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config.get_ports().get(index).or(config.get_ports().first()).copied().unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() { "localhost:5432".to_owned() } else { hosts.join(",") };
    let database = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("{hosts}/{database}")
}

fn writer_stopped() -> StoreError {
    StoreError::Internal(anyhow!("store writer task has stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_omits_password() {
        let config = tokio_postgres::Config::from_str("postgres://epro:s3cret@db.example:6543/trials").expect("parse");

        let target = describe_target(&config);

        assert_eq!(target, "db.example:6543/trials");
    }

    #[test]
    fn target_defaults_port_and_database() {
        let config = tokio_postgres::Config::from_str("postgres://epro@127.0.0.1").expect("parse");

        assert_eq!(describe_target(&config), "127.0.0.1:5432/epro");
    }
}
