//! Schema guarantees: append-only tables, migrations and opening rules.

use epro_store::{SCHEMA_VERSION, Store, StoreConfig};

use crate::support::{TestStore, submission};

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
