//! Corrections and signatures. A correction stores the next version beside the
//! original with its queries, event and audit row. An outdated base conflicts, and a
//! retry finds its first result. A correction voids the signatures before it, and
//! every version is exported with its reason, also by an incremental export.

use epro_store::{
    AnswerChange, AuditFilter, AuditVerification, CorrectionOutcome, ExportCursor, ExportPage, ExportRow,
    NewCorrection, NewSignature, NewSubmission, SIGNATURE_APPLIED, SIGNATURE_VOIDED, SUBMISSION_CORRECTED, SignOutcome,
    Store, StoreError, SubmissionStatus,
};
use serde_json::json;

use crate::support::{Backend, TestStore, backend_tests, new_query, sha256_stand_in, submission, submit_created};

backend_tests!(multi_thread: concurrent_corrections_store_one);
backend_tests!(
    correct_stores_next_version_beside_original,
    correct_outdated_base_conflicts,
    correct_retry_replays_first_receipt,
    correct_runs_queries_per_version,
    correct_unknown_submission_not_found,
    correct_blank_reason_stores_nothing,
    sign_then_correct_voids_signature,
    sign_checks_version,
    version_and_signature_rows_reject_rewrites,
    export_lists_each_version_with_reason,
    correct_raises_alerts_for_new_version,
    correct_with_alert_due_too_early_stores_nothing,
);

/// Builds a correction of `original` from `base_version` that sets `pain` to `pain`.
pub(crate) fn correction(original: &NewSubmission, base_version: u32, before: u32, pain: u32) -> NewCorrection {
    NewCorrection {
        submission_id: original.submission_id.clone(),
        base_version,
        normalized_answers: format!(r#"{{"pain":{pain}}}"#),
        changes: vec![AnswerChange {
            link_id: "pain".to_owned(),
            before: Some(json!(before)),
            after: Some(json!(pain)),
        }],
        scores: "[]".to_owned(),
        queries: Vec::new(),
        alerts: Vec::new(),
        reason: "Transcription error confirmed with the patient".to_owned(),
        actor: "operator".to_owned(),
        request_id: Some(format!("req-correct-{pain}")),
        content_sha256: sha256_stand_in(1000 + pain),
    }
}

pub(crate) fn signature(original: &NewSubmission, version: u32) -> NewSignature {
    NewSignature {
        submission_id: original.submission_id.clone(),
        version,
        signer: "operator".to_owned(),
        meaning: "Reviewed and approved".to_owned(),
        request_id: Some("req-sign".to_owned()),
    }
}

async fn created(store: &Store, correction: NewCorrection) -> epro_store::CorrectionReceipt {
    match store.correct(correction).await.expect("correct") {
        CorrectionOutcome::Created(receipt) => receipt,
        other => panic!("expected a new version, got {other:?}"),
    }
}

async fn assert_chain_intact(test: &TestStore) {
    let verification = test.store.audit_verify().await.expect("verify");
    assert!(matches!(verification, AuditVerification::Intact { .. }), "{verification:?}");
}

async fn correct_stores_next_version_beside_original(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;

    let receipt = created(&test.store, correction(&original, 1, 3, 5)).await;
    let history = test.store.submission_history(&original.submission_id).await.expect("read").expect("stored");

    assert_eq!((receipt.version, receipt.replaces), (2, 1));
    assert_eq!(receipt.status, SubmissionStatus::Accepted);
    assert_eq!(history.submission.normalized_answers, r#"{"pain":3}"#, "version 1 stays as received");
    assert_eq!(history.versions.len(), 2);
    let first = &history.versions[0];
    assert_eq!((first.version, first.replaces, first.reason.as_deref()), (1, None, None));
    assert_eq!(first.actor, "patient:P-001");
    let latest = history.latest();
    assert_eq!(latest.version, 2);
    assert_eq!(latest.replaces, Some(1));
    assert_eq!(latest.normalized_answers, r#"{"pain":5}"#);
    assert_eq!(latest.changed_items, vec!["pain".to_owned()]);
    assert_eq!(latest.reason.as_deref(), Some("Transcription error confirmed with the patient"));
    assert_eq!(latest.actor, "operator");
    assert_eq!(latest.recorded_at, receipt.corrected_at);

    let events = test.store.outbox_pending(10).await.expect("outbox");
    let corrected: Vec<_> = events.iter().filter(|event| event.event_type == SUBMISSION_CORRECTED).collect();
    assert_eq!(corrected.len(), 1, "{events:?}");
    let payload: serde_json::Value = serde_json::from_str(&corrected[0].payload).expect("payload");
    assert_eq!(payload["version"], 2);
    assert_eq!(payload["replaces"], 1);
    assert_eq!(payload["changedItems"], json!(["pain"]));
    assert!(!corrected[0].payload.contains("Transcription"), "no reason in events: {}", corrected[0].payload);

    let filter =
        AuditFilter { submission_id: Some(original.submission_id.clone()), limit: 100, ..AuditFilter::default() };
    let audit = test.store.audit_events(filter).await.expect("audit");
    let row = audit.iter().find(|row| row.action == SUBMISSION_CORRECTED).expect("correction audit row");
    assert_eq!(row.actor, "operator");
    assert_eq!(row.reason.as_deref(), Some("Transcription error confirmed with the patient"));
    let before: serde_json::Value = serde_json::from_str(row.before_value.as_deref().unwrap()).unwrap();
    let after: serde_json::Value = serde_json::from_str(row.after_value.as_deref().unwrap()).unwrap();
    assert_eq!(before, json!({ "version": 1, "answers": { "pain": 3 } }));
    assert_eq!(after, json!({ "version": 2, "answers": { "pain": 5 } }));
    assert_eq!(row.request_id.as_deref(), Some("req-correct-5"));
    assert_chain_intact(&test).await;
}

async fn correct_outdated_base_conflicts(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    created(&test.store, correction(&original, 1, 3, 5)).await;

    let outdated = test.store.correct(correction(&original, 1, 3, 7)).await.expect("correct");
    let ahead = test.store.correct(correction(&original, 4, 5, 7)).await.expect("correct");

    assert_eq!(outdated, CorrectionOutcome::Conflict { current_version: 2 });
    assert_eq!(ahead, CorrectionOutcome::Conflict { current_version: 2 });
    assert_eq!(test.count("submission_versions", "1 = 1").await, 1, "nothing written");
    let history = test.store.submission_history(&original.submission_id).await.unwrap().unwrap();
    assert_eq!(history.latest().normalized_answers, r#"{"pain":5}"#);
}

async fn correct_retry_replays_first_receipt(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    let mut first = correction(&original, 1, 3, 5);
    first.queries = vec![new_query("pain", "rule_violated", "pain-high")];
    let receipt = created(&test.store, first.clone()).await;
    let audit_rows = test.count("audit_events", "1 = 1").await;

    let retry = test.store.correct(first.clone()).await.expect("retry");
    let retry_after_next = {
        created(&test.store, correction(&original, 2, 5, 6)).await;
        test.store.correct(first).await.expect("late retry")
    };

    assert_eq!(retry, CorrectionOutcome::Replayed(receipt.clone()));
    assert_eq!(retry_after_next, CorrectionOutcome::Replayed(receipt), "the same content finds its version later");
    assert_eq!(test.count("submission_versions", "version = 2").await, 1);
    assert_eq!(test.count("data_queries", "version = 2").await, 1);
    assert_eq!(test.count("outbox_events", &format!("event_type = '{SUBMISSION_CORRECTED}'")).await, 2);
    assert_eq!(test.count("audit_events", "1 = 1").await, audit_rows + 1, "only the second correction adds a row");
}

async fn correct_runs_queries_per_version(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut original = submission(3);
    original.queries = vec![new_query("pain", "rule_violated", "pain-high")];
    let intake = submit_created(&test.store, original.clone()).await;

    let mut raising = correction(&original, 1, 3, 11);
    raising.queries = vec![new_query("pain", "rule_violated", "pain-high"), new_query("", "score_mismatch", "total")];
    let second = created(&test.store, raising).await;
    let third = created(&test.store, correction(&original, 2, 11, 4)).await;
    let history = test.store.submission_history(&original.submission_id).await.unwrap().unwrap();
    let replay = test.store.submit(original.clone()).await.expect("replay");

    assert_eq!(second.status, SubmissionStatus::AcceptedWithQueries);
    assert_eq!(second.queries.len(), 2, "the same finding as version 1 is raised again for version 2");
    assert_eq!(third.status, SubmissionStatus::Accepted);
    assert!(third.queries.is_empty());
    let versions: Vec<(u32, &str)> =
        history.submission.queries.iter().map(|query| (query.version, query.code.as_str())).collect();
    assert_eq!(versions, vec![(1, "rule_violated"), (2, "rule_violated"), (2, "score_mismatch")]);
    let statuses: Vec<SubmissionStatus> = history.versions.iter().map(|version| version.status).collect();
    assert_eq!(
        statuses,
        vec![SubmissionStatus::AcceptedWithQueries, SubmissionStatus::AcceptedWithQueries, SubmissionStatus::Accepted]
    );
    assert_eq!(replay.receipt().queries, intake.queries, "a replay of version 1 lists its own queries only");
}

/// Two corrections from the same version at the same time: one becomes version 2,
/// the other conflicts, on PostgreSQL through the lock on the submission's row.
async fn concurrent_corrections_store_one(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;

    let mut tasks = tokio::task::JoinSet::new();
    for pain in [5, 6, 7, 8] {
        let store = test.store.clone();
        let correction = correction(&original, 1, 3, pain);
        tasks.spawn(async move { store.correct(correction).await.expect("correct") });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.expect("task"));
    }

    let created = outcomes.iter().filter(|outcome| matches!(outcome, CorrectionOutcome::Created(_))).count();
    let conflicts =
        outcomes.iter().filter(|outcome| **outcome == CorrectionOutcome::Conflict { current_version: 2 }).count();
    assert_eq!((created, conflicts), (1, 3), "{outcomes:?}");
    assert_eq!(test.count("submission_versions", "1 = 1").await, 1);
    assert_chain_intact(&test).await;
}

async fn correct_unknown_submission_not_found(backend: Backend) {
    let test = TestStore::open(backend).await;
    let never_stored = submission(3);

    let outcome = test.store.correct(correction(&never_stored, 1, 3, 5)).await.expect("correct");
    let history = test.store.submission_history(&never_stored.submission_id).await.expect("read");

    assert_eq!(outcome, CorrectionOutcome::NotFound);
    assert!(history.is_none());
}

async fn correct_blank_reason_stores_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    let mut blank = correction(&original, 1, 3, 5);
    blank.reason = " \t\n".to_owned();
    let mut unchanged = correction(&original, 1, 3, 5);
    unchanged.changes.clear();

    let blank = test.store.correct(blank).await;
    let unchanged = test.store.correct(unchanged).await;

    assert!(matches!(blank, Err(StoreError::Internal(_))), "{blank:?}");
    assert!(matches!(unchanged, Err(StoreError::Internal(_))), "{unchanged:?}");
    assert_eq!(test.count("submission_versions", "1 = 1").await, 0);
    assert_eq!(test.count("outbox_events", &format!("event_type = '{SUBMISSION_CORRECTED}'")).await, 0);
    assert_chain_intact(&test).await;
}

async fn sign_then_correct_voids_signature(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;

    let SignOutcome::Signed(signed) = test.store.sign(signature(&original, 1)).await.expect("sign") else {
        panic!("expected a new signature")
    };
    let again = test.store.sign(signature(&original, 1)).await.expect("sign again");
    created(&test.store, correction(&original, 1, 3, 5)).await;
    let history = test.store.submission_history(&original.submission_id).await.unwrap().unwrap();

    assert_eq!((signed.version, signed.voided_at), (1, None));
    assert_eq!(again, SignOutcome::AlreadySigned(signed.clone()));
    assert_eq!(history.signatures.len(), 1);
    let voided = &history.signatures[0];
    assert_eq!(voided.signature_id, signed.signature_id);
    assert_eq!(voided.voided_by_version, Some(2));
    assert_eq!(voided.voided_at, Some(history.latest().recorded_at));
    let filter =
        AuditFilter { submission_id: Some(original.submission_id.clone()), limit: 100, ..AuditFilter::default() };
    let audit = test.store.audit_events(filter).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|row| row.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["submission.created", SIGNATURE_APPLIED, SUBMISSION_CORRECTED, SIGNATURE_VOIDED],
        "{audit:?}"
    );
    let void_row = audit.iter().find(|row| row.action == SIGNATURE_VOIDED).unwrap();
    assert_eq!(void_row.entity_id, signed.signature_id);
    assert_eq!(void_row.reason.as_deref(), Some("Transcription error confirmed with the patient"));
    let applied = audit.iter().find(|row| row.action == SIGNATURE_APPLIED).unwrap();
    assert_eq!(applied.actor, "operator");
    assert_chain_intact(&test).await;

    let resigned = test.store.sign(signature(&original, 2)).await.expect("sign version 2");
    assert!(matches!(resigned, SignOutcome::Signed(ref fresh) if fresh.version == 2), "{resigned:?}");
}

async fn sign_checks_version(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    created(&test.store, correction(&original, 1, 3, 5)).await;

    let old = test.store.sign(signature(&original, 1)).await.expect("sign");
    let missing = test.store.sign(signature(&original, 3)).await.expect("sign");
    let zero = test.store.sign(signature(&original, 0)).await.expect("sign");
    let unknown = test.store.sign(signature(&submission(4), 1)).await.expect("sign");
    let blank = test.store.sign(NewSignature { meaning: "  ".to_owned(), ..signature(&original, 2) }).await;

    assert_eq!(old, SignOutcome::NotLatest { current_version: 2 });
    assert_eq!(missing, SignOutcome::VersionNotFound);
    assert_eq!(zero, SignOutcome::VersionNotFound);
    assert_eq!(unknown, SignOutcome::SubmissionNotFound);
    assert!(matches!(blank, Err(StoreError::Internal(_))), "{blank:?}");
    assert_eq!(test.count("signatures", "1 = 1").await, 0);
}

async fn version_and_signature_rows_reject_rewrites(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    test.store.sign(signature(&original, 1)).await.expect("sign");
    let mut with_query = correction(&original, 1, 3, 5);
    with_query.queries = vec![new_query("pain", "rule_violated", "pain-high")];
    created(&test.store, with_query).await;
    test.store.sign(signature(&original, 2)).await.expect("sign version 2");

    let update = test.rejected("UPDATE submission_versions SET reason = 'rewritten'").await;
    let delete = test.rejected("DELETE FROM submission_versions").await;
    let meaning = test.rejected("UPDATE signatures SET meaning = 'rewritten' WHERE voided_at IS NULL").await;
    let unvoid = test
        .rejected("UPDATE signatures SET voided_at = NULL, voided_by_version = NULL WHERE voided_at IS NOT NULL")
        .await;
    let remove = test.rejected("DELETE FROM signatures").await;
    let query_version = test.rejected("UPDATE data_queries SET version = 3").await;

    assert!(update.contains("submission_versions is append-only"), "{update}");
    assert!(delete.contains("submission_versions is append-only"), "{delete}");
    assert!(meaning.contains("signatures content is immutable"), "{meaning}");
    assert!(unvoid.contains("signatures are voided once"), "{unvoid}");
    assert!(remove.contains("signatures are never deleted"), "{remove}");
    assert!(query_version.contains("data_queries content is immutable"), "{query_version}");
}

async fn export_lists_each_version_with_reason(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    let first_mark = test.store.export_mark().await.expect("mark");
    let first = export(&test.store, None, &first_mark).await;
    let correction_receipt = created(&test.store, correction(&original, 1, 3, 5)).await;
    let second_mark = test.store.export_mark().await.expect("mark");
    let next = ExportCursor::after_export(Some(&first_mark), second_mark.clone());
    let incremental = export(&test.store, Some(&first_mark), &second_mark).await;
    let full = export(&test.store, None, &second_mark).await;
    let nothing_new = export(&test.store, Some(&next), &test.store.export_mark().await.unwrap()).await;

    assert_eq!(versions(&first), vec![(1, None)]);
    assert_eq!(versions(&incremental), vec![(2, Some("Transcription error confirmed with the patient"))]);
    assert_eq!(
        versions(&full),
        vec![(1, None), (2, Some("Transcription error confirmed with the patient"))],
        "one row per version, in commit order"
    );
    assert!(nothing_new.is_empty(), "{nothing_new:?}");
    let corrected = &incremental[0];
    assert_eq!(corrected.submission_id, original.submission_id);
    assert_eq!(corrected.normalized_answers, r#"{"pain":5}"#);
    assert_eq!(corrected.corrected_at, Some(correction_receipt.corrected_at));
    assert_eq!(corrected.received_at, full[0].received_at, "received_at stays the original receipt");
    assert_eq!(full[0].normalized_answers, r#"{"pain":3}"#);
}

async fn export(store: &Store, since: Option<&ExportCursor>, until: &ExportCursor) -> Vec<ExportRow> {
    let page = ExportPage { trial_id: "TRIAL-A", form_id: "pain-diary", since, until, after: None, limit: 100 };
    store.export_page(&page).await.expect("export")
}

fn versions(rows: &[ExportRow]) -> Vec<(u32, Option<&str>)> {
    rows.iter().map(|row| (row.version, row.correction_reason.as_deref())).collect()
}

async fn correct_raises_alerts_for_new_version(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    let mut change = correction(&original, 1, 3, 9);
    change.alerts = vec![epro_store::NewAlert {
        rule: "pain-severe".to_owned(),
        severity: "high".to_owned(),
        items: vec!["pain".to_owned()],
        due_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }];

    created(&test.store, change).await;

    let alerts = test.store.alerts(epro_store::AlertFilter::new("TRIAL-A", 10)).await.expect("list alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].rule, "pain-severe");
    assert_eq!(alerts[0].submission_id, original.submission_id);
    let version = test.rows(&format!("SELECT version FROM alerts WHERE alert_id = '{}'", alerts[0].alert_id)).await;
    assert_eq!(version, vec![vec![Some("2".to_owned())]]);
    let events = test.store.outbox_pending(20).await.expect("pending events");
    let raised: Vec<_> = events.iter().filter(|event| event.event_type == epro_store::ALERT_RAISED).collect();
    assert_eq!(raised.len(), 1, "{events:?}");
    let payload: serde_json::Value = serde_json::from_str(&raised[0].payload).expect("payload is JSON");
    assert_eq!(payload["version"], 2);
    assert_eq!(payload["alertId"], alerts[0].alert_id.as_str());
    assert_chain_intact(&test).await;
}

async fn correct_with_alert_due_too_early_stores_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let original = submission(3);
    submit_created(&test.store, original.clone()).await;
    let mut change = correction(&original, 1, 3, 9);
    change.alerts = vec![epro_store::NewAlert {
        rule: "pain-severe".to_owned(),
        severity: "high".to_owned(),
        items: vec!["pain".to_owned()],
        due_at: time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    }];

    let result = test.store.correct(change).await;

    assert!(result.is_err(), "an alert due before the correction was stored: {result:?}");
    assert_eq!(test.count("submission_versions", "true").await, 0);
    assert_eq!(test.count("alerts", "true").await, 0);
}
