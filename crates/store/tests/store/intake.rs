//! What the rule engine adds to a submission at intake: scores, data queries and
//! alerts, all written with the submission.

use epro_store::{
    ALERT_RAISED, AlertFilter, NewAlert, QueryOrigin, QueryStatus, SUBMISSION_ACCEPTED, StoreError, SubmissionStatus,
    SubmitOutcome,
};

use crate::support::{
    Backend, TestStore, assert_json_eq, backend_tests, new_alert, new_query, sha256_stand_in, submission,
    submit_created,
};

backend_tests!(
    submit_with_queries_returns_refs,
    submit_without_queries_is_accepted,
    submit_replay_returns_status_and_queries,
    submit_repeated_query_raised_once,
    submit_invalid_query_params_stores_nothing,
    submit_alerts_write_one_event_each,
    submit_accepted_payload_has_status,
    submit_blank_alert_fields_store_nothing,
    submit_stores_scores_once,
);

async fn submit_with_queries_returns_refs(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(8);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("", "score_mismatch", "total")];

    let receipt = submit_created(&test.store, new.clone()).await;
    let stored = test.store.submission(&new.submission_id).await.expect("read").expect("stored");

    assert_eq!(receipt.status, SubmissionStatus::AcceptedWithQueries);
    let refs: Vec<_> = receipt.queries.iter().map(|r| (r.item.as_str(), r.code.as_str(), r.rule.as_str())).collect();
    assert_eq!(refs, [("pain", "rule_violated", "pain-max"), ("", "score_mismatch", "total")]);
    assert!(receipt.queries[0].query_id < receipt.queries[1].query_id, "query ids must follow creation order");
    let query_version = uuid::Uuid::parse_str(&receipt.queries[0].query_id).expect("query id is a UUID");
    assert_eq!(query_version.get_version_num(), 7);

    assert_eq!(stored.status, SubmissionStatus::AcceptedWithQueries);
    assert_eq!(stored.queries.len(), 2);
    for (query, reference) in stored.queries.iter().zip(&receipt.queries) {
        assert_eq!(query.query_id, reference.query_id);
        assert_eq!(query.submission_id, new.submission_id);
        assert_eq!(query.trial_id, new.trial_id);
        assert_eq!(query.form_id, new.form_id);
        assert_eq!(query.form_version, new.form_version);
        assert_eq!(query.patient_id, new.patient_id);
        assert_json_eq(&query.params, r#"{"min":0,"max":10}"#);
        assert_eq!(query.status, QueryStatus::Open);
        assert_eq!(query.origin, QueryOrigin::Intake);
        assert_eq!(query.created_at, query.updated_at);
    }
    assert_eq!(test.count("submissions", "status = 'accepted_with_queries'").await, 1);
    assert_eq!(test.count("data_queries", "true").await, 2);
    // The submission's audit row covers its queries.
    assert_eq!(test.count("audit_events", "true").await, 1);
}

async fn submit_without_queries_is_accepted(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submission(1);

    let receipt = submit_created(&test.store, new.clone()).await;
    let stored = test.store.submission(&new.submission_id).await.expect("read").expect("stored");

    assert_eq!(receipt.status, SubmissionStatus::Accepted);
    assert!(receipt.queries.is_empty());
    assert_eq!(stored.status, SubmissionStatus::Accepted);
    assert!(stored.queries.is_empty());
    assert_eq!(test.count("data_queries", "true").await, 0);
}

async fn submit_replay_returns_status_and_queries(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut first = submission(6);
    first.queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("mood", "rule_violated", "")];
    let mut different = first.clone();
    different.content_sha256 = sha256_stand_in(99);
    different.queries.clear();

    let created = submit_created(&test.store, first.clone()).await;
    let replayed = test.store.submit(first).await.expect("replay");
    let conflict = test.store.submit(different).await.expect("conflict");

    assert_eq!(replayed, SubmitOutcome::Replayed(created.clone()));
    assert_eq!(conflict, SubmitOutcome::Conflict(created.clone()));
    assert_eq!(created.queries.len(), 2);
    assert_eq!(test.count("data_queries", "true").await, 2);
    assert_eq!(test.count("outbox_events", "true").await, 1);
}

async fn submit_repeated_query_raised_once(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(4);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("pain", "rule_violated", "pain-max")];

    let receipt = submit_created(&test.store, new).await;

    assert_eq!(receipt.queries.len(), 1);
    assert_eq!(receipt.status, SubmissionStatus::AcceptedWithQueries);
    assert_eq!(test.count("data_queries", "true").await, 1);
}

async fn submit_invalid_query_params_stores_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let cases = ["{not json", "[1, 2]", "\"text\""];

    for params in cases {
        let mut new = submission(2);
        let mut query = new_query("pain", "rule_violated", "pain-max");
        query.params = params.to_owned();
        new.queries = vec![new_query("mood", "rule_violated", ""), query];

        let result = test.store.submit(new).await;

        let Err(StoreError::Internal(error)) = &result else {
            panic!("params {params:?} were not rejected: {result:?}");
        };
        assert!(format!("{error:#}").contains("params"), "{params:?}: {error:#}");
    }
    assert_eq!(test.count("submissions", "true").await, 0);
    assert_eq!(test.count("data_queries", "true").await, 0);
    assert_eq!(test.count("outbox_events", "true").await, 0);
    assert_eq!(test.count("audit_events", "true").await, 0);
}

async fn submit_alerts_write_one_event_each(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(3);
    new.raw_answers = r#"{"q9":"answer-must-not-leave-the-store"}"#.to_owned();
    new.scores = r#"[{"name":"/44261-6","value":"23"}]"#.to_owned();
    let due_at = new.received_at + time::Duration::minutes(30);
    new.alerts = vec![
        NewAlert {
            rule: "phq9-item9".to_owned(),
            severity: "critical".to_owned(),
            items: vec!["/44260-8".to_owned()],
            due_at,
        },
        NewAlert { rule: "phq9-severe".to_owned(), severity: "high".to_owned(), items: Vec::new(), due_at },
    ];

    let receipt = submit_created(&test.store, new.clone()).await;
    let events = test.store.outbox_pending(10).await.expect("read outbox");

    assert_eq!(receipt.status, SubmissionStatus::Accepted, "alerts alone raise no data query");
    let types: Vec<_> = events.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(types, [SUBMISSION_ACCEPTED, ALERT_RAISED, ALERT_RAISED]);
    for event in &events {
        assert_eq!(event.submission_id, new.submission_id);
        assert_eq!(event.trial_id, new.trial_id);
        assert_eq!(event.patient_id, new.patient_id);
        assert!(!event.payload.contains("answer-must-not-leave-the-store"), "{}", event.payload);
        assert!(!event.payload.contains("44261-6"), "score in payload: {}", event.payload);
    }
    let stored = test.store.alerts(AlertFilter::new("TRIAL-A", 10)).await.expect("list alerts");
    let mut first_alert: serde_json::Value = serde_json::from_str(&events[1].payload).expect("payload is JSON");
    let sent_due_at = first_alert.as_object_mut().and_then(|payload| payload.remove("dueAt")).expect("dueAt is sent");
    let sent_due_at = sent_due_at.as_str().expect("dueAt is text");
    assert_eq!(
        time::OffsetDateTime::parse(sent_due_at, &time::format_description::well_known::Rfc3339).expect("RFC 3339"),
        due_at
    );
    assert_eq!(
        first_alert,
        serde_json::json!({
            "alertId": stored[0].alert_id,
            "alertRule": "phq9-item9",
            "severity": "critical",
            "items": ["/44260-8"],
            "formId": "pain-diary",
            "formVersion": "1.0.0",
        })
    );
    let second_alert: serde_json::Value = serde_json::from_str(&events[2].payload).expect("payload is JSON");
    assert_eq!(second_alert["alertRule"], "phq9-severe");
    assert_eq!(second_alert["alertId"], stored[1].alert_id.as_str());
    assert_eq!(second_alert["items"], serde_json::json!([]));
    assert_ne!(events[1].event_id, events[2].event_id);
}

async fn submit_accepted_payload_has_status(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(5);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];

    submit_created(&test.store, new).await;
    let events = test.store.outbox_pending(10).await.expect("read outbox");

    assert_eq!(events.len(), 1);
    let payload: serde_json::Value = serde_json::from_str(&events[0].payload).expect("payload is JSON");
    assert_eq!(payload["status"], "accepted_with_queries");
    assert!(!events[0].payload.contains("min"), "query params in payload: {}", events[0].payload);
}

async fn submit_blank_alert_fields_store_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut empty_rule = submission(1);
    empty_rule.alerts = vec![NewAlert { rule: String::new(), ..new_alert(&empty_rule, "x") }];
    let mut empty_severity = submission(2);
    empty_severity.alerts = vec![NewAlert { severity: String::new(), ..new_alert(&empty_severity, "phq9-item9") }];

    let rule_result = test.store.submit(empty_rule).await;
    let severity_result = test.store.submit(empty_severity).await;

    let Err(StoreError::Internal(rule_error)) = &rule_result else {
        panic!("empty alert rule was not rejected: {rule_result:?}");
    };
    assert!(rule_error.to_string().contains("empty rule"), "{rule_error:#}");
    let Err(StoreError::Internal(severity_error)) = &severity_result else {
        panic!("empty alert severity was not rejected: {severity_result:?}");
    };
    assert!(severity_error.to_string().contains("empty severity"), "{severity_error:#}");
    assert_eq!(test.count("submissions", "true").await, 0);
    assert_eq!(test.count("alerts", "true").await, 0);
    assert_eq!(test.count("outbox_events", "true").await, 0);
}

async fn submit_stores_scores_once(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(7);
    new.scores = r#"[{"name":"/44261-6","value":"10"}]"#.to_owned();
    let mut not_array = submission(8);
    not_array.scores = r#"{"name":"/44261-6"}"#.to_owned();

    submit_created(&test.store, new.clone()).await;
    let stored = test.store.submission(&new.submission_id).await.expect("read").expect("stored");
    let rejected = test.store.submit(not_array.clone()).await;

    assert_json_eq(&stored.scores, &new.scores);
    let Err(StoreError::Internal(error)) = &rejected else {
        panic!("scores that are not an array were not rejected: {rejected:?}");
    };
    assert!(format!("{error:#}").contains("scores"), "{error:#}");
    assert!(test.store.submission(&not_array.submission_id).await.expect("read").is_none());
}
