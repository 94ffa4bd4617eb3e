//! Submissions: round trips, replays, conflicts and their rows.

use std::sync::Arc;

use epro_store::{SUBMISSION_ACCEPTED, SUBMISSION_CREATED, SourceFormat, SubmitOutcome};
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, offset};

use crate::support::{TestStore, sha256_stand_in, submission};

#[tokio::test]
async fn submit_round_trips_unicode_byte_for_byte() {
    let test = TestStore::open().await;
    let mut new = submission(7);
    // Chinese, an emoji outside the BMP, a decomposed "é" (e + U+0301) and odd spacing
    // that a JSON re-serialization would change.
    new.raw_answers = "{ \"pain\" : 7,\n  \"note\":\"头痛，睡不好 😣 cafe\u{301}\", \"x\":1.50 }".to_owned();
    new.source = SourceFormat::Fhir;
    new.completed_at = datetime!(2025-03-01 21:15:30.123456789 +08:00);

    let outcome = test.store.submit(new.clone()).await.expect("submit");
    let stored =
        test.store.submission(&new.submission_id).await.expect("read submission").expect("submission is stored");

    assert!(matches!(outcome, SubmitOutcome::Created(_)), "{outcome:?}");
    assert_eq!(stored.raw_answers.as_bytes(), new.raw_answers.as_bytes());
    assert_eq!(stored.normalized_answers, new.normalized_answers);
    assert_eq!(stored.completed_at, new.completed_at);
    assert_eq!(stored.completed_at.offset(), offset!(+08:00));
    assert_eq!(stored.received_at, new.received_at);
    assert_eq!(stored.source, SourceFormat::Fhir);
    assert_eq!(stored.patient_id, new.patient_id);
    assert_eq!(stored.content_sha256, new.content_sha256);
    assert_eq!(stored.request_id, new.request_id);
}

#[tokio::test]
async fn submit_stores_utc_instant_and_offset() {
    let test = TestStore::open().await;
    let mut new = submission(1);
    new.completed_at = datetime!(2025-03-01 08:00:00 -05:00);

    test.store.submit(new.clone()).await.expect("submit");
    let (completed_at, offset_seconds): (String, i64) = test
        .connection()
        .query_row("SELECT completed_at, completed_at_offset_seconds FROM submissions", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .expect("read columns");

    assert_eq!(completed_at, "2025-03-01T13:00:00Z");
    assert_eq!(offset_seconds, -5 * 3600);
}

#[tokio::test]
async fn submission_unknown_id_is_none() {
    let test = TestStore::open().await;

    let stored = test.store.submission(&uuid::Uuid::new_v4().to_string()).await.expect("read submission");

    assert!(stored.is_none());
}

#[tokio::test]
async fn submit_writes_outbox_and_audit_rows() {
    let test = TestStore::open().await;
    let mut new = submission(3);
    new.raw_answers = r#"{"secret_answer":"only in submissions"}"#.to_owned();

    test.store.submit(new.clone()).await.expect("submit");
    let events = test.store.outbox_pending(10).await.expect("read outbox");
    let audit: (String, String, String, String, Option<String>) = test
        .connection()
        .query_row("SELECT actor, action, entity, entity_id, request_id FROM audit_events", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        })
        .expect("read audit row");

    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, SUBMISSION_ACCEPTED);
    assert_eq!(event.submission_id, new.submission_id);
    assert_eq!(event.trial_id, new.trial_id);
    assert_eq!(event.patient_id, new.patient_id);
    assert_eq!(event.attempts, 0);
    assert_eq!(event.event_id.get_version_num(), 7);
    let payload: serde_json::Value = serde_json::from_str(&event.payload).expect("payload is JSON");
    assert_eq!(
        payload,
        serde_json::json!({
            "formId": "pain-diary",
            "formVersion": "1.0.0",
            "status": "accepted",
            "completedAt": "2025-03-01T21:15:30.123456789+08:00",
            "receivedAt": new.received_at.format(&Rfc3339).expect("format receivedAt"),
        })
    );
    assert!(!event.payload.contains("secret_answer"));
    assert_eq!(
        audit,
        (
            "patient:P-001".to_owned(),
            SUBMISSION_CREATED.to_owned(),
            "submission".to_owned(),
            new.submission_id.to_string(),
            new.request_id.clone(),
        )
    );
}

#[tokio::test]
async fn submit_replay_returns_original_receipt() {
    let test = TestStore::open().await;
    let first = submission(5);
    let mut retry = first.clone();
    retry.received_at = first.received_at + time::Duration::minutes(3);

    let created = test.store.submit(first.clone()).await.expect("first submit");
    let replayed = test.store.submit(retry).await.expect("second submit");

    let SubmitOutcome::Created(receipt) = created else {
        panic!("first submit was not created: {created:?}");
    };
    assert_eq!(replayed, SubmitOutcome::Replayed(receipt.clone()));
    assert_eq!(receipt.received_at, first.received_at);
    assert_eq!(test.count("submissions", "1"), 1);
    assert_eq!(test.count("outbox_events", "1"), 1);
    assert_eq!(test.count("audit_events", "1"), 1);
}

#[tokio::test]
async fn submit_conflict_keeps_stored_row() {
    let test = TestStore::open().await;
    let first = submission(5);
    let mut different = first.clone();
    different.raw_answers = r#"{"pain":9}"#.to_owned();
    different.normalized_answers = different.raw_answers.clone();
    different.content_sha256 = sha256_stand_in(9);
    different.form_version = "2.0.0".to_owned();

    let created = test.store.submit(first.clone()).await.expect("first submit");
    let before = test.store.submission(&first.submission_id).await.expect("read");
    let conflict = test.store.submit(different).await.expect("second submit");
    let after = test.store.submission(&first.submission_id).await.expect("read");

    assert_eq!(conflict, SubmitOutcome::Conflict(created.receipt().clone()));
    assert_eq!(conflict.receipt().form_version, "1.0.0");
    assert_eq!(after, before);
    assert_eq!(after.expect("stored").raw_answers, first.raw_answers);
    assert_eq!(test.count("submissions", "1"), 1);
    assert_eq!(test.count("outbox_events", "1"), 1);
    assert_eq!(test.count("audit_events", "1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_submits_create_once() {
    let test = TestStore::open().await;
    let new = submission(11);

    let outcomes = submit_all(&test, (0..20).map(|_| new.clone())).await;

    let created = outcomes.iter().filter(|o| matches!(o, SubmitOutcome::Created(_))).count();
    let replayed = outcomes.iter().filter(|o| matches!(o, SubmitOutcome::Replayed(_))).count();
    assert_eq!(created, 1);
    assert_eq!(replayed, 19);
    let receipt = outcomes[0].receipt();
    assert!(outcomes.iter().all(|outcome| outcome.receipt() == receipt));
    assert_eq!(test.count("submissions", "1"), 1);
    assert_eq!(test.count("outbox_events", "1"), 1);
    assert_eq!(test.count("audit_events", "1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_submits_create_once() {
    let test = TestStore::open().await;
    let base = submission(0);
    let variants = (0..20u32).map(|seed| {
        let mut variant = base.clone();
        variant.raw_answers = format!(r#"{{"pain":{seed}}}"#);
        variant.normalized_answers = variant.raw_answers.clone();
        variant.content_sha256 = sha256_stand_in(seed);
        variant
    });

    let outcomes = submit_all(&test, variants).await;

    let created = outcomes.iter().filter(|o| matches!(o, SubmitOutcome::Created(_))).count();
    let conflicts = outcomes.iter().filter(|o| matches!(o, SubmitOutcome::Conflict(_))).count();
    assert_eq!(created, 1);
    assert_eq!(conflicts, 19);
    assert_eq!(test.count("submissions", "1"), 1);
    assert_eq!(test.count("outbox_events", "1"), 1);
    assert_eq!(test.count("audit_events", "1"), 1);
}

/// Submits everything at once from separate tasks and returns the outcomes in order.
async fn submit_all(
    test: &TestStore,
    submissions: impl Iterator<Item = epro_store::NewSubmission>,
) -> Vec<SubmitOutcome> {
    let submissions: Vec<_> = submissions.collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(submissions.len()));
    let tasks: Vec<_> = submissions
        .into_iter()
        .map(|new| {
            let store = test.store.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.submit(new).await
            })
        })
        .collect();

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("submit"));
    }
    outcomes
}
