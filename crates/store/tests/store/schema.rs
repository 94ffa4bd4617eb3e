//! Schema guarantees: append-only tables, migrations and opening rules.

use epro_store::{
    AuditFilter, AuditVerification, ExportPage, QueryStatus, Revalidation, SCHEMA_VERSION, Store, StoreConfig,
    SubmissionStatus,
};

use crate::support::{
    Backend, TestDatabase, TestStore, assert_json_eq, backend_tests, new_query, submission, submit_created,
};

backend_tests!(
    submissions_reject_update_and_delete,
    audit_events_reject_update_and_delete,
    outbox_events_reject_content_update,
    data_queries_reject_delete_and_content_update,
    data_query_events_reject_update_and_delete,
    derived_records_reject_update_and_delete,
    open_migrates_initial_schema_database,
    reopen_skips_applied_migrations,
    open_rejects_zero_limits,
    ping_succeeds_on_open_store,
);

/// The first SQLite migration as released, to build a database the way an older epro
/// did.
const INITIAL_SQLITE_SCHEMA: &str = include_str!("../../migrations/sqlite/0001_initial.sql");

/// The first PostgreSQL migration as released.
const INITIAL_POSTGRES_SCHEMA: &str = include_str!("../../migrations/postgres/0001_initial.sql");

async fn submissions_reject_update_and_delete(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = test.rejected("UPDATE submissions SET raw_answers = '{}'").await;
    let delete = test.rejected("DELETE FROM submissions").await;

    assert!(update.contains("submissions is append-only"), "{update}");
    assert!(delete.contains("submissions is append-only"), "{delete}");
    assert_eq!(test.count("submissions", "raw_answers = '{\"pain\":1}'").await, 1);
}

async fn audit_events_reject_update_and_delete(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = test.rejected("UPDATE audit_events SET actor = 'someone else'").await;
    let delete = test.rejected("DELETE FROM audit_events").await;

    assert!(update.contains("audit_events is append-only"), "{update}");
    assert!(delete.contains("audit_events is append-only"), "{delete}");
    assert_eq!(test.count("audit_events", "actor = 'patient:P-001'").await, 1);
}

async fn outbox_events_reject_content_update(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = test.rejected("UPDATE outbox_events SET payload = '{}'").await;

    assert!(update.contains("outbox_events content is immutable"), "{update}");
}

async fn data_queries_reject_delete_and_content_update(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(1);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let query_id = submit_created(&test.store, new).await.queries[0].query_id.clone();

    let delete = test.rejected("DELETE FROM data_queries").await;
    let content_updates = [
        "UPDATE data_queries SET params = '{}'",
        "UPDATE data_queries SET item = 'mood'",
        "UPDATE data_queries SET origin = 'revalidation'",
        "UPDATE data_queries SET status = 'closed', code = 'other'",
    ];

    assert!(delete.contains("data_queries are never deleted"), "{delete}");
    for sql in content_updates {
        let update = test.rejected(sql).await;
        assert!(update.contains("data_queries content is immutable"), "{sql}: {update}");
    }
    let stored = test.store.query(&query_id).await.expect("read").expect("query kept");
    assert_eq!(stored.status, QueryStatus::Open);
    assert_eq!(stored.item, "pain");
    assert_json_eq(&stored.params, r#"{"min":0,"max":10}"#);
}

async fn data_query_events_reject_update_and_delete(backend: Backend) {
    let test = TestStore::open(backend).await;
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

    let update = test.rejected("UPDATE data_query_events SET comment = 'rewritten'").await;
    let delete = test.rejected("DELETE FROM data_query_events").await;

    assert!(update.contains("data_query_events is append-only"), "{update}");
    assert!(delete.contains("data_query_events is append-only"), "{delete}");
    assert_eq!(test.count("data_query_events", "comment = 'confirmed'").await, 1);
}

async fn derived_records_reject_update_and_delete(backend: Backend) {
    let test = TestStore::open(backend).await;
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

    let update = test.rejected("UPDATE derived_records SET scores = '[1]'").await;
    let delete = test.rejected("DELETE FROM derived_records").await;

    assert!(update.contains("derived_records is append-only"), "{update}");
    assert!(delete.contains("derived_records is append-only"), "{delete}");
    assert_eq!(test.count("derived_records", "scores = '[]'").await, 1);
}

/// A database written by a build that had only the first migration gains the new
/// columns with their defaults, and its rows read back unchanged.
async fn open_migrates_initial_schema_database(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    match &database {
        TestDatabase::Sqlite { path, .. } => {
            let old = rusqlite::Connection::open(path).expect("create old database");
            old.execute_batch(INITIAL_SQLITE_SCHEMA).expect("run the first migration");
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
            old.execute(
                "INSERT INTO audit_events (occurred_at, actor, action, entity, entity_id)
                 VALUES ('2024-12-01T02:00:05.5Z', 'patient:P-001', 'submission.created', 'submission', 'old-1')",
                [],
            )
            .expect("insert old audit row");
        }
        TestDatabase::Postgres { client, .. } => {
            client.batch_execute(INITIAL_POSTGRES_SCHEMA).await.expect("run the first migration");
            client
                .batch_execute(
                    r#"CREATE TABLE epro_schema_migrations (
                        version integer NOT NULL PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    );
                    INSERT INTO epro_schema_migrations (version, name) VALUES (1, 'initial');
                    INSERT INTO submissions (
                        submission_id, trial_id, form_id, form_version, patient_id, completed_at,
                        completed_at_offset_seconds, received_at, source, raw_answers, normalized_answers,
                        content_sha256, request_id
                    ) VALUES ('old-1', 'TRIAL-A', 'pain-diary', '1.0.0', 'P-001', '2024-12-01T02:00:00Z',
                        28800, '2024-12-01T02:00:05Z', 'native', '{"pain":3}', '{"pain":3}',
                        decode(repeat('00', 32), 'hex'), NULL);
                    INSERT INTO audit_events (occurred_at, actor, action, entity, entity_id)
                    VALUES ('2024-12-01T02:00:05.5Z', 'patient:P-001', 'submission.created', 'submission', 'old-1')"#,
                )
                .await
                .expect("record the first migration and insert an old submission");
        }
    }

    let store = Store::open(database.config()).await.expect("open and migrate");
    let stored = store.submission("old-1").await.expect("read").expect("old submission kept");
    let receipt = submit_created(&store, submission(1)).await;
    let version = schema_version(&database).await;
    let verification = store.audit_verify().await.expect("verify the audit chain");
    let audit = store.audit_events(AuditFilter { limit: 10, ..AuditFilter::default() }).await.expect("read audit");
    let mark = store.export_mark().await.expect("mark");
    let page =
        ExportPage { trial_id: "TRIAL-A", form_id: "pain-diary", since: None, until: &mark, after: None, limit: 10 };
    let exported: Vec<String> =
        store.export_page(&page).await.expect("export").into_iter().map(|row| row.submission_id).collect();

    assert_eq!(stored.scores, "[]");
    assert_eq!(stored.status, SubmissionStatus::Accepted);
    assert!(stored.queries.is_empty());
    assert_eq!(stored.raw_answers, r#"{"pain":3}"#);
    assert_eq!(stored.completed_at.offset().whole_seconds(), 28800);
    assert_eq!(receipt.status, SubmissionStatus::Accepted);
    assert_eq!(exported, vec!["old-1".to_owned(), receipt.submission_id], "old rows are exported first");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 10);
    assert!(
        matches!(verification, AuditVerification::Intact { entries: 2, .. }),
        "the old audit row is chained before the new one: {verification:?}"
    );
    assert_eq!(audit[0].entity_id, "old-1");
    assert_eq!(audit[0].prev_hash, Some([0; 32]));
    store.close().await;
}

async fn reopen_skips_applied_migrations(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submission(1);
    test.store.submit(new.clone()).await.expect("submit");
    test.store.close().await;

    // Running 0001 again would fail on CREATE TABLE, so a second open proves it was
    // skipped.
    let reopened = Store::open(test.config.clone()).await.expect("reopen");
    let stored = reopened.submission(&new.submission_id).await.expect("read");
    let version = schema_version(&test.database).await;

    assert!(stored.is_some());
    assert_eq!(version, SCHEMA_VERSION);
    let submissions_tables = if test.is_postgres() {
        test.count("information_schema.tables", "table_name = 'submissions'").await
    } else {
        test.count("sqlite_master", "type = 'table' AND name = 'submissions'").await
    };
    assert_eq!(submissions_tables, 1);
    reopened.close().await;
}

/// Reads the schema version recorded in the database: `PRAGMA user_version` on SQLite,
/// the rows of `epro_schema_migrations` on PostgreSQL.
async fn schema_version(database: &TestDatabase) -> u32 {
    let count: i64 = match database {
        TestDatabase::Sqlite { .. } => {
            let connection = database.connection();
            connection.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("read user_version")
        }
        TestDatabase::Postgres { .. } => database.count("epro_schema_migrations", "true").await,
    };
    u32::try_from(count).expect("schema version fits u32")
}

#[tokio::test]
async fn submission_sequence_rejects_update_and_delete() {
    let test = TestStore::open(Backend::Sqlite).await;
    test.store.submit(submission(1)).await.expect("submit");

    let update = test.rejected("UPDATE submission_sequence SET seq = 100").await;
    let delete = test.rejected("DELETE FROM submission_sequence").await;

    assert!(update.contains("submission_sequence is append-only"), "{update}");
    assert!(delete.contains("submission_sequence is append-only"), "{delete}");
    assert_eq!(test.count("submission_sequence", "true").await, 1);
}

#[tokio::test]
async fn open_enables_wal_journal() {
    let test = TestStore::open(Backend::Sqlite).await;

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

/// A zero limit is rejected before the database is touched: no SQLite file is created,
/// and no table appears in the PostgreSQL database.
async fn open_rejects_zero_limits(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    type SetToZero = fn(&mut StoreConfig);
    let mut cases: Vec<(&str, SetToZero)> =
        vec![("max_batch", |config| config.max_batch = 0), ("queue_capacity", |config| config.queue_capacity = 0)];
    if database.is_postgres() {
        cases.push(("pool_size", |config| {
            if let epro_store::Backend::Postgres { pool_size, .. } = &mut config.backend {
                *pool_size = 0;
            }
        }));
    } else {
        cases.push(("read_connections", |config| config.read_connections = 0));
    }

    for (field, zero) in cases {
        let mut config = database.config();
        zero(&mut config);
        let error = Store::open(config).await.expect_err("open must fail");
        assert!(error.to_string().contains(field), "{field}: {error:#}");
    }
    if database.is_postgres() {
        assert_eq!(database.count("information_schema.tables", "table_schema = 'public'").await, 0);
    } else {
        assert!(!database.path().exists(), "a rejected configuration must not create the file");
    }
}

async fn ping_succeeds_on_open_store(backend: Backend) {
    let test = TestStore::open(backend).await;

    let result = test.store.ping().await;

    assert!(result.is_ok(), "{result:?}");
}
