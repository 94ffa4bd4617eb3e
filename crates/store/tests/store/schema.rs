//! Schema guarantees: append-only tables, migrations and opening rules.

use epro_store::{QueryStatus, Revalidation, SCHEMA_VERSION, Store, StoreConfig, SubmissionStatus};

use crate::support::{TestStore, new_query, submission, submit_created};

/// The first migration as released, to build a database the way an older epro did.
const INITIAL_SCHEMA: &str = include_str!("../../migrations/sqlite/0001_initial.sql");

/// Runs `sql` on a second connection and returns SQLite's error message.
fn rejected(test: &TestStore, sql: &str) -> String {
    match test.connection().execute(sql, []) {
        Ok(changed) => panic!("{sql:?} succeeded and changed {changed} rows"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn submissions_reject_update_and_delete() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = rejected(&test, "UPDATE submissions SET raw_answers = '{}'");
    let delete = rejected(&test, "DELETE FROM submissions");

    assert!(update.contains("submissions is append-only"), "{update}");
    assert!(delete.contains("submissions is append-only"), "{delete}");
    assert_eq!(test.count("submissions", "raw_answers = '{\"pain\":1}'"), 1);
}

#[tokio::test]
async fn audit_events_reject_update_and_delete() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = rejected(&test, "UPDATE audit_events SET actor = 'someone else'");
    let delete = rejected(&test, "DELETE FROM audit_events");

    assert!(update.contains("audit_events is append-only"), "{update}");
    assert!(delete.contains("audit_events is append-only"), "{delete}");
    assert_eq!(test.count("audit_events", "actor = 'patient:P-001'"), 1);
}

#[tokio::test]
async fn outbox_events_reject_content_update() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = rejected(&test, "UPDATE outbox_events SET payload = '{}'");

    assert!(update.contains("outbox_events content is immutable"), "{update}");
}

#[tokio::test]
async fn data_queries_reject_delete_and_content_update() {
    let test = TestStore::open().await;
    let mut new = submission(1);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let query_id = submit_created(&test.store, new).await.queries[0].query_id.clone();

    let delete = rejected(&test, "DELETE FROM data_queries");
    let content_updates = [
        "UPDATE data_queries SET params = '{}'",
        "UPDATE data_queries SET item = 'mood'",
        "UPDATE data_queries SET origin = 'revalidation'",
        "UPDATE data_queries SET status = 'closed', code = 'other'",
    ];

    assert!(delete.contains("data_queries are never deleted"), "{delete}");
    for sql in content_updates {
        let update = rejected(&test, sql);
        assert!(update.contains("data_queries content is immutable"), "{sql}: {update}");
    }
    let stored = test.store.query(&query_id).await.expect("read").expect("query kept");
    assert_eq!(stored.status, QueryStatus::Open);
    assert_eq!(stored.item, "pain");
    assert_eq!(stored.params, r#"{"min":0,"max":10}"#);
}

#[tokio::test]
async fn data_query_events_reject_update_and_delete() {
    let test = TestStore::open().await;
    let mut new = submission(1);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let query_id = submit_created(&test.store, new).await.queries[0].query_id.clone();
    let change = epro_store::QueryStatusChange {
        query_id,
        status: QueryStatus::Answered,
        comment: "confirmed".to_owned(),
        actor: "staff:S-017".to_owned(),
        request_id: None,
    };
    test.store.update_query_status(change).await.expect("answer");

    let update = rejected(&test, "UPDATE data_query_events SET comment = 'rewritten'");
    let delete = rejected(&test, "DELETE FROM data_query_events");

    assert!(update.contains("data_query_events is append-only"), "{update}");
    assert!(delete.contains("data_query_events is append-only"), "{delete}");
    assert_eq!(test.count("data_query_events", "comment = 'confirmed'"), 1);
}

#[tokio::test]
async fn derived_records_reject_update_and_delete() {
    let test = TestStore::open().await;
    let new = submission(1);
    submit_created(&test.store, new.clone()).await;
    let record = Revalidation {
        run_id: "run-1".to_owned(),
        submission_id: new.submission_id,
        form_version: "1.0.0".to_owned(),
        scores: "[]".to_owned(),
        findings: "[]".to_owned(),
        queries: Vec::new(),
        actor: "operator:cli".to_owned(),
    };
    test.store.record_revalidation(record).await.expect("record");

    let update = rejected(&test, "UPDATE derived_records SET scores = '[1]'");
    let delete = rejected(&test, "DELETE FROM derived_records");

    assert!(update.contains("derived_records is append-only"), "{update}");
    assert!(delete.contains("derived_records is append-only"), "{delete}");
    assert_eq!(test.count("derived_records", "scores = '[]'"), 1);
}

/// A file written by a build that had only the first migration gains the new columns
/// with their defaults, and its rows read back unchanged.
#[tokio::test]
async fn open_migrates_initial_schema_database() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let config = StoreConfig::new(directory.path().join("epro.db"));
    let old = rusqlite::Connection::open(&config.path).expect("create old database");
    old.execute_batch(INITIAL_SCHEMA).expect("run the first migration");
    old.pragma_update(None, "user_version", 1).expect("record the first migration");
    old.execute(
        r#"INSERT INTO submissions (
            submission_id, trial_id, form_id, form_version, patient_id, completed_at,
            completed_at_offset_seconds, received_at, source, raw_answers, normalized_answers,
            content_sha256, request_id
        ) VALUES ('old-1', 'TRIAL-A', 'pain-diary', '1.0.0', 'P-001', '2024-12-01T02:00:00Z',
            28800, '2024-12-01T02:00:05Z', 'native', '{"pain":3}', '{"pain":3}', zeroblob(32), NULL)"#,
        [],
    )
    .expect("insert old submission");
    drop(old);

    let store = Store::open(config.clone()).await.expect("open and migrate");
    let stored = store.submission("old-1").await.expect("read").expect("old submission kept");
    let receipt = submit_created(&store, submission(1)).await;
    let user_version: u32 = rusqlite::Connection::open(&config.path)
        .expect("open")
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("read user_version");

    assert_eq!(stored.scores, "[]");
    assert_eq!(stored.status, SubmissionStatus::Accepted);
    assert!(stored.queries.is_empty());
    assert_eq!(stored.raw_answers, r#"{"pain":3}"#);
    assert_eq!(stored.completed_at.offset().whole_seconds(), 28800);
    assert_eq!(receipt.status, SubmissionStatus::Accepted);
    assert_eq!(user_version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 3);
    store.close().await;
}

#[tokio::test]
async fn reopen_skips_applied_migrations() {
    let test = TestStore::open().await;
    let new = submission(1);
    test.store.submit(new.clone()).await.expect("submit");
    test.store.close().await;

    // Running 0001 again would fail on CREATE TABLE, so a second open proves it was
    // skipped.
    let reopened = Store::open(test.config.clone()).await.expect("reopen");
    let stored = reopened.submission(&new.submission_id).await.expect("read");
    let user_version: u32 =
        test.connection().query_row("PRAGMA user_version", [], |row| row.get(0)).expect("read user_version");

    assert!(stored.is_some());
    assert_eq!(user_version, SCHEMA_VERSION);
    assert_eq!(test.count("sqlite_master", "type = 'table' AND name = 'submissions'"), 1);
    reopened.close().await;
}

#[tokio::test]
async fn open_enables_wal_journal() {
    let test = TestStore::open().await;

    let journal_mode: String =
        test.connection().query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("read journal_mode");

    assert_eq!(journal_mode, "wal");
}

#[tokio::test]
async fn open_rejects_missing_directory() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let path = directory.path().join("missing").join("epro.db");

    let error = Store::open(StoreConfig::new(&path)).await.expect_err("open must fail");

    let message = format!("{error:#}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(!path.parent().expect("parent").exists());
}

#[tokio::test]
async fn open_rejects_zero_limits() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let path = directory.path().join("epro.db");
    type SetToZero = fn(&mut StoreConfig);
    let cases: [(&str, SetToZero); 3] = [
        ("max_batch", |config| config.max_batch = 0),
        ("queue_capacity", |config| config.queue_capacity = 0),
        ("read_connections", |config| config.read_connections = 0),
    ];

    for (field, zero) in cases {
        let mut config = StoreConfig::new(&path);
        zero(&mut config);
        let error = Store::open(config).await.expect_err("open must fail");
        assert!(error.to_string().contains(field), "{field}: {error:#}");
    }
    assert!(!path.exists(), "a rejected configuration must not create the file");
}

#[tokio::test]
async fn ping_succeeds_on_open_store() {
    let test = TestStore::open().await;

    let result = test.store.ping().await;

    assert!(result.is_ok(), "{result:?}");
}
