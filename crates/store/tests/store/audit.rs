//! The audit trail's hash chain: every write appends a chained row, `audit_verify`
//! walks the chain, and a row changed or deleted behind the store's back is named.

use epro_store::{
    AuditBreakKind, AuditFilter, AuditRecord, AuditVerification, OutboxReplay, QUERY_STATUS_CHANGED, QueryStatus,
    QueryStatusChange, QueryUpdate, ReplaySelection, SUBMISSION_CREATED,
};
use time::Duration;

use crate::support::{Backend, TestStore, backend_tests, new_query, now_in_micros, submission, submit_created};

backend_tests!(multi_thread: chain_intact_after_mixed_concurrent_workload);
backend_tests!(
    verify_names_changed_row,
    verify_names_row_after_deleted_row,
    verify_names_row_after_rehashed_row,
    audit_rows_reject_update_of_hash,
    query_status_change_records_before_and_after,
    audit_events_filter_and_page,
    verify_of_empty_trail_is_intact,
);

/// Stores submissions from 8 concurrent tasks (some with data queries), changes query
/// statuses and replays an outbox event, so that every kind of write appends rows.
/// Returns the number of audit rows the workload must have written.
async fn mixed_workload(test: &TestStore) -> i64 {
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = test.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut query_ids = Vec::new();
            for index in 0..10 {
                let mut new = submission(task * 100 + index);
                new.patient_id = format!("P-{task:03}");
                new.actor = format!("patient:P-{task:03}");
                if index % 3 == 0 {
                    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
                }
                let receipt = submit_created(&store, new).await;
                query_ids.extend(receipt.queries.into_iter().map(|query| query.query_id));
            }
            for query_id in &query_ids {
                let change = QueryStatusChange {
                    query_id: query_id.clone(),
                    status: QueryStatus::Answered,
                    comment: "confirmed with the patient".to_owned(),
                    actor: "staff:S-001".to_owned(),
                    request_id: None,
                };
                let update = store.update_query_status(change).await.expect("change status");
                assert!(matches!(update, QueryUpdate::Updated(_)), "{update:?}");
            }
            query_ids.len()
        }));
    }
    let mut changes = 0;
    for task in tasks {
        changes += task.await.expect("workload task");
    }

    let event = test.store.outbox_pending(1).await.expect("read outbox").remove(0);
    let replay = OutboxReplay {
        selection: ReplaySelection::EventIds(vec![event.event_id]),
        actor: "operator".to_owned(),
        reason: "consumer lost the message".to_owned(),
        request_id: None,
    };
    test.store.outbox_replay(replay).await.expect("replay");

    80 + changes as i64 + 1
}

async fn all_rows(test: &TestStore) -> Vec<AuditRecord> {
    test.store.audit_events(AuditFilter { limit: 10_000, ..AuditFilter::default() }).await.expect("read audit")
}

async fn chain_intact_after_mixed_concurrent_workload(backend: Backend) {
    let test = TestStore::open(backend).await;
    let written = mixed_workload(&test).await;

    let verification = test.store.audit_verify().await.expect("verify");
    let rows = all_rows(&test).await;

    let AuditVerification::Intact { entries, head } = verification else {
        panic!("chain broken after a workload of the store's own writes: {verification:?}");
    };
    assert_eq!(entries, written as u64);
    assert_eq!(head.map(|(seq, _)| seq), Some(written));
    let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
    assert_eq!(seqs, (1..=written).collect::<Vec<_>>(), "seq numbers the rows without gaps");
    assert_eq!(rows[0].prev_hash, Some([0; 32]), "the first row starts the chain");
}

/// Disables the trigger named `trigger` the way a database owner could, so that the
/// test can change what the store forbids.
async fn without_trigger(test: &TestStore, trigger: &str, change: &str) {
    if test.is_postgres() {
        test.rows(&format!("ALTER TABLE audit_events DISABLE TRIGGER {trigger}")).await;
        test.rows(change).await;
    } else {
        let connection = test.connection();
        connection.execute_batch(&format!("DROP TRIGGER {trigger}; {change}")).expect("tamper");
    }
}

async fn verify_names_changed_row(backend: Backend) {
    let test = TestStore::open(backend).await;
    for pain in 0..5 {
        submit_created(&test.store, submission(pain)).await;
    }
    assert!(matches!(test.store.audit_verify().await, Ok(AuditVerification::Intact { entries: 5, .. })));

    without_trigger(
        &test,
        "audit_events_reject_update",
        "UPDATE audit_events SET actor = 'staff:mallory' WHERE seq = 3",
    )
    .await;

    let verification = test.store.audit_verify().await.expect("verify");
    let AuditVerification::Broken(broken) = verification else {
        panic!("a changed row went unnoticed: {verification:?}");
    };
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.kind, AuditBreakKind::ContentChanged);
    assert_eq!(broken.entries_checked, 2);
    assert!(broken.to_string().contains("audit row 3"), "{broken}");
}

async fn verify_names_row_after_deleted_row(backend: Backend) {
    let test = TestStore::open(backend).await;
    for pain in 0..4 {
        submit_created(&test.store, submission(pain)).await;
    }

    without_trigger(&test, "audit_events_reject_delete", "DELETE FROM audit_events WHERE seq = 2").await;

    let verification = test.store.audit_verify().await.expect("verify");
    let AuditVerification::Broken(broken) = verification else {
        panic!("a deleted row went unnoticed: {verification:?}");
    };
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.kind, AuditBreakKind::LinkBroken { previous_seq: Some(1) });
}

/// A forger who changes a row and recomputes its hash still breaks the next link.
async fn verify_names_row_after_rehashed_row(backend: Backend) {
    let test = TestStore::open(backend).await;
    for pain in 0..3 {
        submit_created(&test.store, submission(pain)).await;
    }
    let rows = all_rows(&test).await;
    // Any 32 bytes other than the real hash stand in for the forger's new hash.
    let forged = "ab".repeat(32);
    let change = if test.is_postgres() {
        format!("UPDATE audit_events SET actor = 'x', hash = '\\x{forged}'::bytea WHERE seq = 2")
    } else {
        format!("UPDATE audit_events SET actor = 'x', hash = X'{forged}' WHERE seq = 2")
    };
    assert_ne!(rows[1].hash.map(hex), Some(forged.clone()));

    without_trigger(&test, "audit_events_reject_update", &change).await;

    let verification = test.store.audit_verify().await.expect("verify");
    let AuditVerification::Broken(broken) = verification else {
        panic!("a forged row went unnoticed: {verification:?}");
    };
    assert_eq!(broken.seq, 2, "row 2 no longer matches its content: {broken}");
}

async fn audit_rows_reject_update_of_hash(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_created(&test.store, submission(1)).await;
    let zeros = "00".repeat(32);
    let (set_hash, clear_hash) = if test.is_postgres() {
        (
            format!("UPDATE audit_events SET hash = '\\x{zeros}'::bytea"),
            "UPDATE audit_events SET hash = NULL".to_owned(),
        )
    } else {
        (format!("UPDATE audit_events SET hash = X'{zeros}'"), "UPDATE audit_events SET hash = NULL".to_owned())
    };

    for sql in [set_hash, clear_hash, "UPDATE audit_events SET reason = 'edited'".to_owned()] {
        let error = test.rejected(&sql).await;
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert!(matches!(test.store.audit_verify().await, Ok(AuditVerification::Intact { entries: 1, .. })));
}

async fn query_status_change_records_before_and_after(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(4);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let receipt = submit_created(&test.store, new).await;
    let query_id = receipt.queries[0].query_id.clone();
    let change = QueryStatusChange {
        query_id: query_id.clone(),
        status: QueryStatus::Closed,
        comment: "value confirmed at the visit".to_owned(),
        actor: "staff:S-017".to_owned(),
        request_id: Some("req-close".to_owned()),
    };
    test.store.update_query_status(change).await.expect("change status");

    let filter =
        AuditFilter { submission_id: Some(receipt.submission_id.clone()), limit: 10, ..AuditFilter::default() };
    let rows = test.store.audit_events(filter).await.expect("read audit");

    let actions: Vec<&str> = rows.iter().map(|row| row.action.as_str()).collect();
    assert_eq!(actions, [SUBMISSION_CREATED, QUERY_STATUS_CHANGED]);
    let changed = &rows[1];
    assert_eq!(changed.entity, "data_query");
    assert_eq!(changed.entity_id, query_id);
    assert_eq!(changed.actor, "staff:S-017");
    assert_eq!(changed.trial_id.as_deref(), Some("TRIAL-A"));
    assert_eq!(changed.patient_id.as_deref(), Some("P-001"));
    assert_eq!(changed.before_value.as_deref(), Some(r#"{"status":"open"}"#));
    assert_eq!(changed.after_value.as_deref(), Some(r#"{"status":"closed"}"#));
    assert_eq!(changed.reason.as_deref(), Some("value confirmed at the visit"));
    assert_eq!(changed.request_id.as_deref(), Some("req-close"));
}

async fn audit_events_filter_and_page(backend: Backend) {
    let test = TestStore::open(backend).await;
    let started = now_in_micros() - Duration::seconds(1);
    for pain in 0..6 {
        let mut new = submission(pain);
        if pain % 2 == 1 {
            new.trial_id = "TRIAL-B".to_owned();
            new.patient_id = "P-002".to_owned();
            new.actor = "patient:P-002".to_owned();
        }
        submit_created(&test.store, new).await;
    }
    let read = |filter: AuditFilter| async { test.store.audit_events(filter).await.expect("read audit") };
    let seqs = |rows: Vec<AuditRecord>| rows.into_iter().map(|row| row.seq).collect::<Vec<_>>();
    let base = AuditFilter { limit: 100, ..AuditFilter::default() };

    let trial_b = read(AuditFilter { trial_id: Some("TRIAL-B".to_owned()), ..base.clone() }).await;
    let patient_2 = read(AuditFilter { patient_id: Some("P-002".to_owned()), ..base.clone() }).await;
    let actor_1 = read(AuditFilter { actor: Some("patient:P-001".to_owned()), ..base.clone() }).await;
    let first_page = read(AuditFilter { limit: 4, ..base.clone() }).await;
    let second_page = read(AuditFilter { after_seq: 4, limit: 4, ..base.clone() }).await;
    let in_range =
        read(AuditFilter { from: Some(started), to: Some(now_in_micros() + Duration::minutes(1)), ..base.clone() })
            .await;
    let before_start = read(AuditFilter { to: Some(started), ..base.clone() }).await;

    assert_eq!(seqs(trial_b), [2, 4, 6]);
    assert_eq!(seqs(patient_2), [2, 4, 6]);
    assert_eq!(seqs(actor_1), [1, 3, 5]);
    assert_eq!(seqs(first_page), [1, 2, 3, 4]);
    assert_eq!(seqs(second_page), [5, 6]);
    assert_eq!(seqs(in_range), [1, 2, 3, 4, 5, 6]);
    assert!(before_start.is_empty(), "{before_start:?}");
}

async fn verify_of_empty_trail_is_intact(backend: Backend) {
    let test = TestStore::open(backend).await;

    let verification = test.store.audit_verify().await.expect("verify");

    assert_eq!(verification, AuditVerification::Intact { entries: 0, head: None });
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
