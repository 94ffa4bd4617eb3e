//! Helpers shared by the store tests: a store in a temporary directory, submission
//! builders, and a second connection for looking at the file directly.

use std::path::PathBuf;

use epro_store::{NewQuery, NewSubmission, OutboxFailure, Receipt, SourceFormat, Store, StoreConfig, SubmitOutcome};
use rusqlite::Connection;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// A store on a fresh file in its own temporary directory.
pub struct TestStore {
    pub store: Store,
    pub config: StoreConfig,
    /// Deletes the directory with the database when the test ends.
    _directory: TempDir,
}

impl TestStore {
    pub async fn open() -> TestStore {
        Self::open_with(|_| {}).await
    }

    /// Opens a store after letting the test change the default configuration.
    pub async fn open_with(adjust: impl FnOnce(&mut StoreConfig)) -> TestStore {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let mut config = StoreConfig::new(directory.path().join("epro.db"));
        adjust(&mut config);
        let store = Store::open(config.clone()).await.expect("open store");
        TestStore { store, config, _directory: directory }
    }

    pub fn path(&self) -> PathBuf {
        self.config.path.clone()
    }

    /// Opens a separate connection to the database file, as another process would.
    pub fn connection(&self) -> Connection {
        let connection = Connection::open(self.path()).expect("open second connection");
        connection.busy_timeout(std::time::Duration::from_secs(5)).expect("set busy_timeout");
        connection
    }

    /// Counts the rows of `table` that satisfy the SQL condition `filter`.
    pub fn count(&self, table: &str, filter: &str) -> i64 {
        self.connection()
            .query_row(&format!("SELECT count(*) FROM {table} WHERE {filter}"), [], |row| row.get(0))
            .expect("count rows")
    }
}

/// Builds a valid submission with a random id and answers derived from `pain`.
pub fn submission(pain: u32) -> NewSubmission {
    let answers = format!(r#"{{"pain":{pain}}}"#);
    NewSubmission {
        submission_id: Uuid::new_v4().to_string(),
        trial_id: "TRIAL-A".to_owned(),
        form_id: "pain-diary".to_owned(),
        form_version: "1.0.0".to_owned(),
        patient_id: "P-001".to_owned(),
        completed_at: datetime!(2025-03-01 21:15:30.123456789 +08:00),
        received_at: OffsetDateTime::now_utc(),
        source: SourceFormat::Native,
        raw_answers: answers.clone(),
        normalized_answers: answers,
        content_sha256: sha256_stand_in(pain),
        scores: "[]".to_owned(),
        queries: Vec::new(),
        alerts: Vec::new(),
        actor: "patient:P-001".to_owned(),
        request_id: Some(format!("req-{pain}")),
    }
}

/// Builds a data query with small message parameters.
pub fn new_query(item: &str, code: &str, rule: &str) -> NewQuery {
    NewQuery {
        item: item.to_owned(),
        code: code.to_owned(),
        rule: rule.to_owned(),
        params: r#"{"min":0,"max":10}"#.to_owned(),
    }
}

/// Submits `new` and returns its receipt, failing the test unless it was created.
pub async fn submit_created(store: &Store, new: NewSubmission) -> Receipt {
    match store.submit(new).await.expect("submit") {
        SubmitOutcome::Created(receipt) => receipt,
        other => panic!("submission was not created: {other:?}"),
    }
}

/// Returns a distinct 32-byte value per `seed` in place of a real content hash. The
/// store only compares hashes and never computes them.
pub fn sha256_stand_in(seed: u32) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..4].copy_from_slice(&seed.to_be_bytes());
    hash[31] = 0xA5;
    hash
}

/// Starts an `IMMEDIATE` transaction on `connection`, which blocks the store's writer
/// until the returned guard is dropped (or `busy_timeout` runs out).
pub fn hold_write_lock(connection: &mut Connection) -> rusqlite::Transaction<'_> {
    connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).expect("take the write lock")
}

/// Waits until the writer has taken every queued command, up to two seconds.
pub async fn wait_for_queue_depth(store: &Store, depth: usize) {
    for _ in 0..200 {
        if store.queue_depth() == depth {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("queue depth stayed at {} instead of reaching {depth}", store.queue_depth());
}

/// A publish failure where the sink could not be reached.
pub fn unreachable(seqs: Vec<i64>) -> OutboxFailure {
    OutboxFailure { seqs, error: "connection refused".to_owned(), rejected: false, dead_letter_after: 3 }
}
