//! Helpers shared by the store tests: a store on either backend, submission builders,
//! and a second connection for looking at the database directly.
//!
//! Each test body is an `async fn(Backend)`. The [`backend_tests!`] macro turns it into
//! two tests, `<name>::sqlite` on a fresh file in a temporary directory and
//! `<name>::postgres` on a fresh database created on the server named by
//! `TEST_EPRO_POSTGRES_URL` and dropped when the test ends, even when it fails.
//! Without that variable the PostgreSQL tests print one line and pass.

use std::path::PathBuf;
use std::time::Duration;

use epro_store::{
    NewAlert, NewQuery, NewSubmission, OutboxFailure, Receipt, SourceFormat, Store, StoreConfig, SubmitOutcome,
};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// Environment variable with the URL of a PostgreSQL server the tests may create
/// databases on, for example `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VARIABLE: &str = "TEST_EPRO_POSTGRES_URL";

/// Generates the `sqlite` and `postgres` tests of each `async fn(Backend)` named.
/// `multi_thread:` before the names runs them on a two-thread runtime.
macro_rules! backend_tests {
    (multi_thread: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::support::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = crate::support::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(crate::support::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(backend) = crate::support::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            }
        )+
    };
}

pub(crate) use backend_tests;

/// The backend a test runs against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The server's URL, on which each test creates its own database.
    Postgres(String),
}

impl Backend {
    /// Returns the PostgreSQL backend, or prints that the test is skipped and returns
    /// `None` when [`POSTGRES_URL_VARIABLE`] is not set.
    pub fn postgres() -> Option<Backend> {
        match std::env::var(POSTGRES_URL_VARIABLE) {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                println!("skipped: {POSTGRES_URL_VARIABLE} is not set");
                None
            }
        }
    }
}

/// A store on a fresh database, and what the test needs to look at it directly.
pub struct TestStore {
    pub store: Store,
    pub config: StoreConfig,
    pub database: TestDatabase,
}

impl TestStore {
    pub async fn open(backend: Backend) -> TestStore {
        Self::open_with(backend, |_| {}).await
    }

    /// Opens a store after letting the test change the default configuration.
    pub async fn open_with(backend: Backend, adjust: impl FnOnce(&mut StoreConfig)) -> TestStore {
        let database = TestDatabase::create(backend).await;
        let mut config = database.config();
        adjust(&mut config);
        let store = Store::open(config.clone()).await.expect("open store");
        TestStore { store, config, database }
    }

    pub fn is_postgres(&self) -> bool {
        self.database.is_postgres()
    }

    /// Counts the rows of `table` that satisfy the SQL condition `filter`.
    pub async fn count(&self, table: &str, filter: &str) -> i64 {
        self.database.count(table, filter).await
    }

    /// Runs `sql` on a second connection and returns every row with each column as
    /// text, `None` for NULL.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.database.rows(sql).await
    }

    /// Runs `sql`, which must fail, on a second connection and returns the database's
    /// error message.
    pub async fn rejected(&self, sql: &str) -> String {
        self.database.rejected(sql).await
    }

    /// Opens a separate connection to the SQLite file, as another process would.
    pub fn connection(&self) -> Connection {
        self.database.connection()
    }

    /// Takes a lock that blocks the store's writer at its next submission insert until
    /// [`WriteLock::release`].
    pub async fn hold_write_lock(&self) -> WriteLock {
        self.database.hold_write_lock().await
    }
}

/// A fresh database for one test: an SQLite file in a temporary directory, or a
/// PostgreSQL database dropped when this value is dropped.
pub enum TestDatabase {
    Sqlite {
        path: PathBuf,
        /// Deletes the directory with the database when the test ends.
        _directory: TempDir,
    },
    Postgres {
        /// URL of the test's own database.
        url: String,
        /// A connection of the test's own, beside the store's pool.
        client: tokio_postgres::Client,
        /// Drops the database when the test ends.
        _guard: DropDatabase,
    },
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir().expect("create temporary directory");
                TestDatabase::Sqlite { path: directory.path().join("epro.db"), _directory: directory }
            }
            Backend::Postgres(server_url) => {
                let name = format!("epro_test_{}", Uuid::new_v4().simple());
                let admin = connect(&server_url).await;
                admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
                let url = with_database(&server_url, &name);
                let client = connect(&url).await;
                let guard = DropDatabase { server_url, name };
                TestDatabase::Postgres { url, client, _guard: guard }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDatabase::Postgres { .. })
    }

    /// Returns a store configuration for this database with the default limits.
    pub fn config(&self) -> StoreConfig {
        match self {
            TestDatabase::Sqlite { path, .. } => StoreConfig::new(path),
            TestDatabase::Postgres { url, .. } => StoreConfig::postgres(url),
        }
    }

    /// Returns the SQLite file's path, failing the test on PostgreSQL.
    pub fn path(&self) -> PathBuf {
        match self {
            TestDatabase::Sqlite { path, .. } => path.clone(),
            TestDatabase::Postgres { .. } => panic!("a PostgreSQL database has no file"),
        }
    }

    /// Returns the client connected to the PostgreSQL database, failing the test on
    /// SQLite.
    pub fn client(&self) -> &tokio_postgres::Client {
        match self {
            TestDatabase::Postgres { client, .. } => client,
            _ => panic!("only a PostgreSQL test database has a client"),
        }
    }

    pub async fn count(&self, table: &str, filter: &str) -> i64 {
        let rows = self.rows(&format!("SELECT count(*) FROM {table} WHERE {filter}")).await;
        let count = rows[0][0].as_deref().expect("count is not NULL");
        count.parse().expect("count is an integer")
    }

    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            TestDatabase::Sqlite { .. } => {
                let connection = self.connection();
                let mut statement = connection.prepare(sql).expect("prepare statement");
                let columns = statement.column_count();
                let rows = statement
                    .query_map([], |row| (0..columns).map(|index| Ok(text(row.get_ref(index)?))).collect())
                    .expect("run statement");
                rows.collect::<Result<_, _>>().expect("read rows")
            }
            TestDatabase::Postgres { .. } => {
                let messages = self.client().simple_query(sql).await.expect("run statement");
                messages
                    .into_iter()
                    .filter_map(|message| match message {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            Some((0..row.len()).map(|index| row.get(index).map(str::to_owned)).collect())
                        }
                        _ => None,
                    })
                    .collect()
            }
        }
    }

    pub async fn rejected(&self, sql: &str) -> String {
        match self {
            TestDatabase::Sqlite { .. } => match self.connection().execute(sql, []) {
                Ok(changed) => panic!("{sql:?} succeeded and changed {changed} rows"),
                Err(error) => error.to_string(),
            },
            TestDatabase::Postgres { .. } => match self.client().execute(sql, &[]).await {
                Ok(changed) => panic!("{sql:?} succeeded and changed {changed} rows"),
                Err(error) => error.as_db_error().map_or_else(|| error.to_string(), |db| db.message().to_owned()),
            },
        }
    }

    pub fn connection(&self) -> Connection {
        let connection = Connection::open(self.path()).expect("open second connection");
        connection.busy_timeout(Duration::from_secs(5)).expect("set busy_timeout");
        connection
    }

    pub async fn hold_write_lock(&self) -> WriteLock {
        match self {
            TestDatabase::Sqlite { path, .. } => {
                let connection = Connection::open(path).expect("open second connection");
                connection.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
                WriteLock::Sqlite(connection)
            }
            TestDatabase::Postgres { url, .. } => {
                let client = connect(url).await;
                client
                    .batch_execute("BEGIN; LOCK TABLE submissions IN EXCLUSIVE MODE")
                    .await
                    .expect("take the write lock");
                WriteLock::Postgres(client)
            }
        }
    }
}

/// A lock held by another connection that blocks the store's writer: SQLite's write
/// lock, or on PostgreSQL an `EXCLUSIVE` lock on `submissions`, which lets reads pass
/// and blocks inserts.
pub enum WriteLock {
    Sqlite(Connection),
    Postgres(tokio_postgres::Client),
}

impl WriteLock {
    /// Rolls back the holding transaction, which lets the writer go on.
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(connection) => connection.execute_batch("ROLLBACK").expect("release the write lock"),
            WriteLock::Postgres(client) => client.batch_execute("ROLLBACK").await.expect("release the write lock"),
        }
    }
}

/// Drops a test's PostgreSQL database when dropped, also while a failing test unwinds.
pub struct DropDatabase {
    server_url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // The test's runtime may be gone or busy unwinding, so drop from a thread of
        // its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&server_url, NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("failed to drop test database {}: {error}", self.name),
            Err(_) => eprintln!("failed to drop test database {}: the dropping thread panicked", self.name),
        }
    }
}

/// Connects to `url` and drives the connection on the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("test connection to PostgreSQL ended: {error}");
        }
    });
    client
}

/// Returns `url` with its database name replaced by `name`. Handles URLs
/// (`postgres://user@host:port/db?options`) and `key=value` settings.
pub fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let authority_start = scheme_end + 3;
    let (base, query) = match url.find('?') {
        Some(position) => url.split_at(position),
        None => (url, ""),
    };
    let authority_end = base[authority_start..].find('/').map_or(base.len(), |position| authority_start + position);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// Renders one SQLite value as the text PostgreSQL's simple query protocol would send.
fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(integer) => Some(integer.to_string()),
        ValueRef::Real(real) => Some(real.to_string()),
        ValueRef::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect()),
    }
}

/// Builds a valid submission with a random id and answers derived from `pain`. Its
/// times have whole microseconds, which both backends keep exactly.
pub fn submission(pain: u32) -> NewSubmission {
    let answers = format!(r#"{{"pain":{pain}}}"#);
    NewSubmission {
        submission_id: Uuid::new_v4().to_string(),
        trial_id: "TRIAL-A".to_owned(),
        form_id: "pain-diary".to_owned(),
        form_version: "1.0.0".to_owned(),
        patient_id: "P-001".to_owned(),
        completed_at: datetime!(2025-03-01 21:15:30.123456 +08:00),
        received_at: now_in_micros(),
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

/// Returns the current time cut to whole microseconds.
pub fn now_in_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).expect("a rounded-down nanosecond is valid")
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

/// Builds a `high` alert of `rule` on item `/q9`, due an hour after `submission` was
/// received.
pub fn new_alert(submission: &NewSubmission, rule: &str) -> NewAlert {
    NewAlert {
        rule: rule.to_owned(),
        severity: "high".to_owned(),
        items: vec!["/q9".to_owned()],
        due_at: submission.received_at + time::Duration::hours(1),
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

/// Asserts that two JSON texts hold the same value. PostgreSQL returns jsonb with its
/// own key order, so the tests compare values, not bytes.
#[track_caller]
pub fn assert_json_eq(actual: &str, expected: &str) {
    let actual_value: serde_json::Value = serde_json::from_str(actual).expect("actual text is JSON");
    let expected_value: serde_json::Value = serde_json::from_str(expected).expect("expected text is JSON");
    assert_eq!(actual_value, expected_value, "JSON differs:\n actual: {actual}\n expected: {expected}");
}

/// Waits until the writer has taken every queued command, up to two seconds.
pub async fn wait_for_queue_depth(store: &Store, depth: usize) {
    for _ in 0..200 {
        if store.queue_depth() == depth {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("queue depth stayed at {} instead of reaching {depth}", store.queue_depth());
}

/// Builds a publish failure where the sink could not be reached.
pub fn unreachable(seqs: Vec<i64>) -> OutboxFailure {
    OutboxFailure { seqs, error: "connection refused".to_owned(), rejected: false, dead_letter_after: 3 }
}

#[test]
fn with_database_replaces_path() {
    let cases = [
        ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/t1"),
        ("postgresql://u:p@h/db?sslmode=disable", "postgresql://u:p@h/t1?sslmode=disable"),
        ("postgres://h:5432", "postgres://h:5432/t1"),
        ("host=h user=u", "host=h user=u dbname=t1"),
    ];
    for (url, expected) in cases {
        assert_eq!(with_database(url, "t1"), expected, "{url}");
    }
}
