//! Submissions: round trips, replays, conflicts and their rows.

use std::sync::Arc;

use epro_store::{SUBMISSION_ACCEPTED, SUBMISSION_CREATED, SourceFormat, SubmitOutcome};
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, offset};

use crate::support::{Backend, TestStore, backend_tests, now_in_micros, sha256_stand_in, submission, submit_created};

backend_tests!(multi_thread: concurrent_identical_submits_create_once, concurrent_conflicting_submits_create_once);
backend_tests!(
    submit_round_trips_unicode_byte_for_byte,
    submit_keeps_backend_time_precision,
    submit_stores_utc_instant_and_offset,
    submission_unknown_id_is_none,
    submit_writes_outbox_and_audit_rows,
    submit_replay_returns_original_receipt,
    submit_conflict_keeps_stored_row,
    submit_error_omits_answers,
    submit_keeps_json_escapes,
);

async fn submit_round_trips_unicode_byte_for_byte(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(7);
    // Chinese, an emoji outside the BMP, a decomposed "é" (e + U+0301) and odd spacing
    // that a JSON re-serialization would change.
    new.raw_answers = "{ \"pain\" : 7,\n  \"note\":\"头痛，睡不好 😣 cafe\u{301}\", \"x\":1.50 }".to_owned();
    new.source = SourceFormat::Fhir;
    new.completed_at = datetime!(2025-03-01 21:15:30.123456 +08:00);

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

/// SQLite keeps nanoseconds. PostgreSQL keeps microseconds, and the receipt of a new
/// submission already carries the stored value, so that it equals the receipt of a
/// replay.
async fn submit_keeps_backend_time_precision(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(2);
    new.completed_at = datetime!(2025-03-01 21:15:30.123456789 +08:00);
    new.received_at = now_in_micros().replace_nanosecond(987_654_321).expect("valid nanosecond");

    let created = test.store.submit(new.clone()).await.expect("submit");
    let replayed = test.store.submit(new.clone()).await.expect("replay");
    let stored = test.store.submission(&new.submission_id).await.expect("read").expect("stored");

    let (completed_at, received_at) = if test.is_postgres() {
        (datetime!(2025-03-01 21:15:30.123456 +08:00), new.received_at.replace_nanosecond(987_654_000).expect("valid"))
    } else {
        (new.completed_at, new.received_at)
    };
    assert_eq!(stored.completed_at, completed_at);
    assert_eq!(stored.received_at, received_at);
    assert_eq!(created.receipt().received_at, received_at);
    assert_eq!(replayed, SubmitOutcome::Replayed(created.receipt().clone()));
}

async fn submit_stores_utc_instant_and_offset(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(1);
    new.completed_at = datetime!(2025-03-01 08:00:00 -05:00);

    test.store.submit(new.clone()).await.expect("submit");
    let sql = if test.is_postgres() {
        r#"SELECT to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), completed_at_offset_seconds
           FROM submissions"#
    } else {
        "SELECT completed_at, completed_at_offset_seconds FROM submissions"
    };
    let rows = test.rows(sql).await;

    assert_eq!(rows, [[Some("2025-03-01T13:00:00Z".to_owned()), Some((-5 * 3600).to_string())]]);
}

async fn submission_unknown_id_is_none(backend: Backend) {
    let test = TestStore::open(backend).await;

    let stored = test.store.submission(&uuid::Uuid::new_v4().to_string()).await.expect("read submission");

    assert!(stored.is_none());
}

async fn submit_writes_outbox_and_audit_rows(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(3);
    new.raw_answers = r#"{"secret_answer":"only in submissions"}"#.to_owned();

    test.store.submit(new.clone()).await.expect("submit");
    let events = test.store.outbox_pending(10).await.expect("read outbox");
    let audit = test.rows("SELECT actor, action, entity, entity_id, request_id FROM audit_events").await;

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
            "completedAt": "2025-03-01T21:15:30.123456+08:00",
            "receivedAt": new.received_at.format(&Rfc3339).expect("format receivedAt"),
        })
    );
    assert!(!event.payload.contains("secret_answer"));
    assert_eq!(
        audit,
        [[
            Some("patient:P-001".to_owned()),
            Some(SUBMISSION_CREATED.to_owned()),
            Some("submission".to_owned()),
            Some(new.submission_id.to_string()),
            new.request_id.clone(),
        ]]
    );
}

async fn submit_replay_returns_original_receipt(backend: Backend) {
    let test = TestStore::open(backend).await;
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
    assert_eq!(test.count("submissions", "true").await, 1);
    assert_eq!(test.count("outbox_events", "true").await, 1);
    assert_eq!(test.count("audit_events", "true").await, 1);
}

async fn submit_conflict_keeps_stored_row(backend: Backend) {
    let test = TestStore::open(backend).await;
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
    assert_eq!(test.count("submissions", "true").await, 1);
    assert_eq!(test.count("outbox_events", "true").await, 1);
    assert_eq!(test.count("audit_events", "true").await, 1);
}

async fn concurrent_identical_submits_create_once(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submission(11);

    let outcomes = submit_all(&test, (0..20).map(|_| new.clone())).await;

    let created = outcomes.iter().filter(|o| matches!(o, SubmitOutcome::Created(_))).count();
    let replayed = outcomes.iter().filter(|o| matches!(o, SubmitOutcome::Replayed(_))).count();
    assert_eq!(created, 1);
    assert_eq!(replayed, 19);
    let receipt = outcomes[0].receipt();
    assert!(outcomes.iter().all(|outcome| outcome.receipt() == receipt));
    assert_eq!(test.count("submissions", "true").await, 1);
    assert_eq!(test.count("outbox_events", "true").await, 1);
    assert_eq!(test.count("audit_events", "true").await, 1);
}

async fn concurrent_conflicting_submits_create_once(backend: Backend) {
    let test = TestStore::open(backend).await;
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
    assert_eq!(test.count("submissions", "true").await, 1);
    assert_eq!(test.count("outbox_events", "true").await, 1);
    assert_eq!(test.count("audit_events", "true").await, 1);
}

/// A row the database rejects yields an error that names the constraint but never
/// repeats the row: PostgreSQL's DETAIL ("Failing row contains ...") is dropped,
/// because callers log the error chain.
async fn submit_error_omits_answers(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(1);
    new.raw_answers = r#"{"note":"answer-must-stay-in-the-store"}"#.to_owned();
    // Valid for the `time` crate, which allows offsets up to ±25:59:59, but not for the
    // column's CHECK.
    new.completed_at = datetime!(2025-03-01 08:00:00 +25:00);

    let result = test.store.submit(new.clone()).await;

    let Err(epro_store::StoreError::Internal(error)) = &result else {
        panic!("an offset beyond a day was not rejected: {result:?}");
    };
    let text = format!("{error:#} {error:?}");
    assert!(text.contains("completed_at_offset_seconds"), "{text}");
    assert!(!text.contains("answer-must-stay-in-the-store"), "{text}");
    assert_eq!(test.count("submissions", "true").await, 0);
}

/// Answers may contain any JSON escape, `\u0000` included, which jsonb would reject,
/// and both texts come back byte for byte.
async fn submit_keeps_json_escapes(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(1);
    new.raw_answers = r#"{"note": "a\u0000b \ud83d\ude23 \"quoted\""}"#.to_owned();
    new.normalized_answers = r#"{"note":"a\u0000b 😣 \"quoted\""}"#.to_owned();

    submit_created(&test.store, new.clone()).await;
    let stored = test.store.submission(&new.submission_id).await.expect("read").expect("stored");

    assert_eq!(stored.raw_answers, new.raw_answers);
    assert_eq!(stored.normalized_answers, new.normalized_answers);
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
