//! Alerts after intake: the rows written with their submission, the listing with its
//! filters and cursor, acknowledgements, and the escalation of overdue alerts, each
//! with its audit rows and events. Escalation takes `now` from the test, so no test
//! waits for a deadline.

use std::collections::HashSet;

use epro_store::{
    ALERT_ACKNOWLEDGED, ALERT_ESCALATED, ALERT_RAISED, AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter,
    AlertStatus, AuditFilter, AuditVerification, NewAlert, NewSubmission, SUBMISSION_CREATED, Store, StoreError,
    SubmitOutcome,
};
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use crate::support::{Backend, TestDatabase, TestStore, backend_tests, new_alert, submission, submit_created};

backend_tests!(
    multi_thread: concurrent_escalations_escalate_each_once,
    concurrent_acknowledgements_record_one
);
backend_tests!(
    submit_stores_open_alerts_with_events,
    submit_replay_raises_no_second_alert,
    submit_alert_due_before_receipt_stores_nothing,
    alerts_filter_by_status_and_patient,
    alerts_cursor_pages_in_order,
    acknowledge_records_audit_row,
    acknowledge_twice_keeps_first,
    acknowledge_unknown_alert_not_found,
    acknowledge_blank_comment_changes_nothing,
    escalate_waits_for_due_time,
    escalate_exactly_once_with_event_and_audit,
    escalate_respects_limit_earliest_first,
    escalate_skips_acknowledged_alert,
    escalated_alert_can_be_acknowledged,
    alert_rows_reject_delete_and_rewrites,
);

/// Stores a submission of `patient` with one alert of `rule` per entry and returns
/// the submission as sent.
async fn submit_with_alerts(test: &TestStore, seed: u32, patient: &str, rules: &[&str]) -> NewSubmission {
    let mut new = submission(seed);
    new.patient_id = patient.to_owned();
    new.actor = format!("patient:{patient}");
    new.alerts = rules.iter().map(|rule| new_alert(&new, rule)).collect();
    submit_created(&test.store, new.clone()).await;
    new
}

async fn all_alerts(store: &Store) -> Vec<Alert> {
    store.alerts(AlertFilter::new("TRIAL-A", 500)).await.expect("list alerts")
}

fn acknowledgement(alert_id: &str, comment: &str) -> AlertAcknowledgement {
    AlertAcknowledgement {
        alert_id: alert_id.to_owned(),
        comment: comment.to_owned(),
        actor: "staff:S-017".to_owned(),
        request_id: Some("req-ack".to_owned()),
    }
}

fn ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|alert| alert.alert_id.as_str()).collect()
}

async fn assert_chain_intact(test: &TestStore) {
    let verification = test.store.audit_verify().await.expect("verify");
    assert!(matches!(verification, AuditVerification::Intact { .. }), "{verification:?}");
}

async fn submit_stores_open_alerts_with_events(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(3);
    new.raw_answers = r#"{"q9":"answer-must-not-leave-the-store"}"#.to_owned();
    new.alerts = vec![
        NewAlert { items: vec!["/44260-8".to_owned()], ..new_alert(&new, "phq9-item9") },
        NewAlert { severity: "medium".to_owned(), items: Vec::new(), ..new_alert(&new, "phq9-severe") },
    ];

    submit_created(&test.store, new.clone()).await;
    let alerts = all_alerts(&test.store).await;
    let events = test.store.outbox_pending(10).await.expect("read outbox");

    assert_eq!(alerts.len(), 2);
    let first = &alerts[0];
    assert_eq!(first.rule, "phq9-item9");
    assert_eq!(first.severity, "high");
    assert_eq!(first.items, ["/44260-8"]);
    assert_eq!(first.submission_id, new.submission_id);
    assert_eq!((first.trial_id.as_str(), first.patient_id.as_str()), ("TRIAL-A", "P-001"));
    assert_eq!((first.form_id.as_str(), first.form_version.as_str()), ("pain-diary", "1.0.0"));
    assert_eq!(first.raised_at, new.received_at);
    assert_eq!(first.due_at, new.alerts[0].due_at);
    assert_eq!(first.status, AlertStatus::Open);
    assert_eq!(first.acknowledged_at, None);
    assert_eq!(first.acknowledged_by, None);
    assert_eq!(first.acknowledge_comment, None);
    assert_eq!(first.escalated_at, None);
    assert_eq!(alerts[1].severity, "medium");
    assert!(alerts[1].items.is_empty());
    let version = uuid::Uuid::parse_str(&first.alert_id).expect("alert id is a UUID").get_version_num();
    assert_eq!(version, 7);
    assert!(alerts[0].alert_id < alerts[1].alert_id, "alert ids follow creation order");

    let raised: Vec<serde_json::Value> = events
        .iter()
        .filter(|event| event.event_type == ALERT_RAISED)
        .map(|event| serde_json::from_str(&event.payload).expect("payload is JSON"))
        .collect();
    let named: Vec<&str> = raised.iter().map(|payload| payload["alertId"].as_str().expect("alertId")).collect();
    assert_eq!(named, ids(&alerts), "each alert.raised event names its alert row");
    let row = test.rows("SELECT * FROM alerts").await;
    assert!(!format!("{row:?}").contains("answer-must-not-leave-the-store"), "no answers in alerts: {row:?}");
    assert_eq!(test.count("audit_events", "true").await, 1, "the submission's audit row covers its alerts");
    assert_eq!(test.store.open_alert_count().await.expect("count"), 2);
}

async fn submit_replay_raises_no_second_alert(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submit_with_alerts(&test, 1, "P-001", &["phq9-item9"]).await;

    let replayed = test.store.submit(new).await.expect("replay");

    assert!(matches!(replayed, SubmitOutcome::Replayed(_)), "{replayed:?}");
    assert_eq!(test.count("alerts", "true").await, 1);
    assert_eq!(test.count("outbox_events", &format!("event_type = '{ALERT_RAISED}'")).await, 1);
}

async fn submit_alert_due_before_receipt_stores_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut due_at_receipt = submission(1);
    due_at_receipt.alerts =
        vec![NewAlert { due_at: due_at_receipt.received_at, ..new_alert(&due_at_receipt, "phq9-item9") }];
    let mut due_before = submission(2);
    due_before.alerts =
        vec![NewAlert { due_at: due_before.received_at - Duration::minutes(1), ..new_alert(&due_before, "x") }];

    for new in [due_at_receipt, due_before] {
        let result = test.store.submit(new).await;

        let Err(StoreError::Internal(error)) = &result else {
            panic!("an alert due at or before its receipt was stored: {result:?}");
        };
        assert!(format!("{error:#}").contains("not after it was raised"), "{error:#}");
    }
    assert_eq!(test.count("submissions", "true").await, 0);
    assert_eq!(test.count("alerts", "true").await, 0);
    assert_eq!(test.count("outbox_events", "true").await, 0);
}

async fn alerts_filter_by_status_and_patient(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["a", "b"]).await;
    submit_with_alerts(&test, 2, "P-002", &["a"]).await;
    let mut other_trial = submission(3);
    other_trial.trial_id = "TRIAL-B".to_owned();
    other_trial.alerts = vec![new_alert(&other_trial, "a")];
    submit_created(&test.store, other_trial).await;
    let all = all_alerts(&test.store).await;
    let acknowledged = test.store.acknowledge_alert(acknowledgement(&all[1].alert_id, "called the patient")).await;
    assert!(matches!(acknowledged, Ok(AcknowledgeOutcome::Acknowledged(_))), "{acknowledged:?}");
    let trial_a = || AlertFilter::new("TRIAL-A", 100);

    let open =
        test.store.alerts(AlertFilter { status: Some(AlertStatus::Open), ..trial_a() }).await.expect("list alerts");
    let done = test
        .store
        .alerts(AlertFilter { status: Some(AlertStatus::Acknowledged), ..trial_a() })
        .await
        .expect("list alerts");
    let patient = test
        .store
        .alerts(AlertFilter { patient_id: Some("P-002".to_owned()), ..trial_a() })
        .await
        .expect("list alerts");
    let trial_b = test.store.alerts(AlertFilter::new("TRIAL-B", 100)).await.expect("list alerts");
    let unknown = test.store.alerts(AlertFilter::new("TRIAL-Z", 100)).await.expect("list alerts");

    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|alert| alert.trial_id == "TRIAL-A"));
    assert_eq!(ids(&open), [&all[0].alert_id, &all[2].alert_id]);
    assert_eq!(ids(&done), [&all[1].alert_id]);
    assert_eq!(ids(&patient), [&all[2].alert_id]);
    assert_eq!(trial_b.len(), 1);
    assert!(unknown.is_empty());
    assert_eq!(test.store.open_alert_count().await.expect("count"), 3, "open alerts of every trial");
}

async fn alerts_cursor_pages_in_order(backend: Backend) {
    let test = TestStore::open(backend).await;
    for seed in 0..4 {
        submit_with_alerts(&test, seed, "P-001", &["a", "b"]).await;
    }

    let mut listed = Vec::new();
    let mut pages = 0;
    let mut after = None;
    loop {
        let filter = AlertFilter { after: after.clone(), ..AlertFilter::new("TRIAL-A", 3) };
        let page = test.store.alerts(filter).await.expect("list alerts");
        let Some(last) = page.last() else { break };
        after = Some(last.alert_id.clone());
        listed.extend(page.into_iter().map(|alert| alert.alert_id));
        pages += 1;
        assert!(pages <= 3, "paging did not end");
    }

    assert_eq!(pages, 3);
    assert_eq!(listed.len(), 8);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), 8, "no alert listed twice");
}

async fn acknowledge_records_audit_row(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submit_with_alerts(&test, 1, "P-001", &["phq9-item9"]).await;
    let alert_id = all_alerts(&test.store).await[0].alert_id.clone();
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);

    let outcome = test.store.acknowledge_alert(acknowledgement(&alert_id, "Called the patient; safe.")).await;

    let Ok(AcknowledgeOutcome::Acknowledged(alert)) = outcome else {
        panic!("the open alert was not acknowledged: {outcome:?}");
    };
    assert_eq!(alert.status, AlertStatus::Acknowledged);
    assert_eq!(alert.acknowledged_by.as_deref(), Some("staff:S-017"));
    assert_eq!(alert.acknowledge_comment.as_deref(), Some("Called the patient; safe."));
    let acknowledged_at = alert.acknowledged_at.expect("acknowledged_at is set");
    assert!(acknowledged_at > before, "{acknowledged_at}");
    assert_eq!(test.store.alert(&alert_id).await.expect("read"), Some(alert.clone()));
    assert_eq!(test.store.open_alert_count().await.expect("count"), 0);

    let filter = AuditFilter { submission_id: Some(new.submission_id.clone()), limit: 10, ..AuditFilter::default() };
    let rows = test.store.audit_events(filter).await.expect("read audit");
    let actions: Vec<&str> = rows.iter().map(|row| row.action.as_str()).collect();
    assert_eq!(actions, [SUBMISSION_CREATED, ALERT_ACKNOWLEDGED]);
    let row = &rows[1];
    assert_eq!((row.entity.as_str(), row.entity_id.as_str()), ("alert", alert_id.as_str()));
    assert_eq!(row.actor, "staff:S-017");
    assert_eq!(row.reason.as_deref(), Some("Called the patient; safe."));
    assert_eq!(row.before_value.as_deref(), Some(r#"{"status":"open"}"#));
    assert_eq!(row.after_value.as_deref(), Some(r#"{"status":"acknowledged"}"#));
    assert_eq!((row.trial_id.as_deref(), row.patient_id.as_deref()), (Some("TRIAL-A"), Some("P-001")));
    assert_eq!(row.request_id.as_deref(), Some("req-ack"));
    assert_chain_intact(&test).await;
}

async fn acknowledge_twice_keeps_first(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["phq9-item9"]).await;
    let alert_id = all_alerts(&test.store).await[0].alert_id.clone();

    let first = test.store.acknowledge_alert(acknowledgement(&alert_id, "first")).await.expect("acknowledge");
    let second = test.store.acknowledge_alert(acknowledgement(&alert_id, "second")).await.expect("acknowledge");

    let AcknowledgeOutcome::Acknowledged(acknowledged) = first else {
        panic!("the first acknowledgement was not recorded: {first:?}");
    };
    assert_eq!(second, AcknowledgeOutcome::AlreadyAcknowledged(acknowledged));
    assert_eq!(test.count("audit_events", &format!("action = '{ALERT_ACKNOWLEDGED}'")).await, 1);
    let stored = test.store.alert(&alert_id).await.expect("read").expect("stored");
    assert_eq!(stored.acknowledge_comment.as_deref(), Some("first"));
}

async fn acknowledge_unknown_alert_not_found(backend: Backend) {
    let test = TestStore::open(backend).await;

    let outcome = test.store.acknowledge_alert(acknowledgement("00000000-0000-7000-8000-000000000000", "x")).await;

    assert_eq!(outcome.expect("acknowledge"), AcknowledgeOutcome::NotFound);
    assert_eq!(test.count("audit_events", "true").await, 0);
}

async fn acknowledge_blank_comment_changes_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["phq9-item9"]).await;
    let alert_id = all_alerts(&test.store).await[0].alert_id.clone();
    let mut no_actor = acknowledgement(&alert_id, "called");
    no_actor.actor = String::new();

    for (case, change) in [("blank comment", acknowledgement(&alert_id, " \t\n ")), ("empty actor", no_actor)] {
        let result = test.store.acknowledge_alert(change).await;

        assert!(matches!(result, Err(StoreError::Internal(_))), "{case}: {result:?}");
    }
    let stored = test.store.alert(&alert_id).await.expect("read").expect("stored");
    assert_eq!(stored.status, AlertStatus::Open);
    assert_eq!(test.count("audit_events", "true").await, 1, "only the submission's row");
}

async fn escalate_waits_for_due_time(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submit_with_alerts(&test, 1, "P-001", &["phq9-item9"]).await;
    let due_at = new.alerts[0].due_at;

    let early = test.store.escalate_overdue_alerts(due_at - Duration::microseconds(1), 10).await.expect("escalate");
    let zero_limit = test.store.escalate_overdue_alerts(due_at + Duration::hours(1), 0).await.expect("escalate");
    let on_time = test.store.escalate_overdue_alerts(due_at, 10).await.expect("escalate");

    assert!(early.is_empty(), "{early:?}");
    assert!(zero_limit.is_empty(), "{zero_limit:?}");
    assert_eq!(on_time.len(), 1, "an alert escalates at its due time");
    assert_eq!(on_time[0].escalated_at, Some(due_at));
}

async fn escalate_exactly_once_with_event_and_audit(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submit_with_alerts(&test, 1, "P-001", &["phq9-item9"]).await;
    let alert = all_alerts(&test.store).await.remove(0);
    let now = alert.due_at + Duration::minutes(5);

    let first = test.store.escalate_overdue_alerts(now, 10).await.expect("escalate");
    let second = test.store.escalate_overdue_alerts(now + Duration::hours(1), 10).await.expect("escalate");

    assert_eq!(ids(&first), [alert.alert_id.as_str()]);
    assert_eq!(first[0].escalated_at, Some(now));
    assert_eq!(first[0].status, AlertStatus::Open, "escalation does not acknowledge");
    assert!(second.is_empty(), "escalated twice: {second:?}");
    assert_eq!(test.store.alert(&alert.alert_id).await.expect("read"), Some(first[0].clone()));

    let events = test.store.outbox_pending(10).await.expect("read outbox");
    let escalated: Vec<_> = events.iter().filter(|event| event.event_type == ALERT_ESCALATED).collect();
    assert_eq!(escalated.len(), 1);
    let event = escalated[0];
    assert_eq!((event.trial_id.as_str(), event.patient_id.as_str()), ("TRIAL-A", "P-001"));
    assert_eq!(event.submission_id, new.submission_id);
    let payload: serde_json::Value = serde_json::from_str(&event.payload).expect("payload is JSON");
    assert_eq!(payload["alertId"], alert.alert_id.as_str());
    assert_eq!(payload["alertRule"], "phq9-item9");
    let due_at = payload["dueAt"].as_str().expect("dueAt is text");
    let due_at = OffsetDateTime::parse(due_at, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
    assert_eq!(due_at, alert.due_at);

    let filter = AuditFilter { actor: Some("system".to_owned()), limit: 10, ..AuditFilter::default() };
    let rows = test.store.audit_events(filter).await.expect("read audit");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, ALERT_ESCALATED);
    assert_eq!((rows[0].entity.as_str(), rows[0].entity_id.as_str()), ("alert", alert.alert_id.as_str()));
    assert_eq!(rows[0].submission_id.as_deref(), Some(new.submission_id.as_str()));
    assert_eq!(rows[0].before_value.as_deref(), Some(r#"{"escalatedAt":null}"#));
    assert!(rows[0].after_value.as_deref().is_some_and(|after| after.contains("escalatedAt")), "{:?}", rows[0]);
    assert_chain_intact(&test).await;
}

async fn escalate_respects_limit_earliest_first(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(1);
    let received_at = new.received_at;
    new.alerts = [30, 10, 20]
        .into_iter()
        .map(|minutes| NewAlert { due_at: received_at + Duration::minutes(minutes), ..new_alert(&new, "r") })
        .collect();
    submit_created(&test.store, new).await;
    let now = received_at + Duration::hours(2);

    let first = test.store.escalate_overdue_alerts(now, 2).await.expect("escalate");
    let rest = test.store.escalate_overdue_alerts(now, 2).await.expect("escalate");

    let due: Vec<Duration> = first.iter().chain(&rest).map(|alert| alert.due_at - received_at).collect();
    assert_eq!(due, [Duration::minutes(10), Duration::minutes(20), Duration::minutes(30)]);
    assert_eq!((first.len(), rest.len()), (2, 1));
    assert_eq!(test.count("outbox_events", &format!("event_type = '{ALERT_ESCALATED}'")).await, 3);
}

async fn escalate_skips_acknowledged_alert(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["a", "b"]).await;
    let alerts = all_alerts(&test.store).await;
    test.store.acknowledge_alert(acknowledgement(&alerts[0].alert_id, "handled")).await.expect("acknowledge");

    let escalated = test.store.escalate_overdue_alerts(alerts[1].due_at + Duration::hours(1), 10).await;

    assert_eq!(ids(&escalated.expect("escalate")), [alerts[1].alert_id.as_str()]);
    let acknowledged = test.store.alert(&alerts[0].alert_id).await.expect("read").expect("stored");
    assert_eq!(acknowledged.escalated_at, None);
}

async fn escalated_alert_can_be_acknowledged(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["a"]).await;
    let alert = all_alerts(&test.store).await.remove(0);
    let escalated = test.store.escalate_overdue_alerts(alert.due_at, 10).await.expect("escalate");

    let outcome = test.store.acknowledge_alert(acknowledgement(&alert.alert_id, "late, but handled")).await;

    let Ok(AcknowledgeOutcome::Acknowledged(acknowledged)) = outcome else {
        panic!("an escalated alert could not be acknowledged: {outcome:?}");
    };
    assert_eq!(acknowledged.escalated_at, escalated[0].escalated_at, "the escalation stays on record");
    assert_eq!(acknowledged.status, AlertStatus::Acknowledged);
    assert_chain_intact(&test).await;
}

/// The triggers keep alerts from being deleted or rewritten by anything but the
/// store's own acknowledgement and escalation.
async fn alert_rows_reject_delete_and_rewrites(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["a", "b"]).await;
    let alerts = all_alerts(&test.store).await;
    test.store.acknowledge_alert(acknowledgement(&alerts[0].alert_id, "handled")).await.expect("acknowledge");
    test.store.escalate_overdue_alerts(alerts[1].due_at, 10).await.expect("escalate");
    let (acknowledged, escalated) = (&alerts[0].alert_id, &alerts[1].alert_id);
    let later = if test.is_postgres() { "now() + interval '1 day'" } else { "'2999-01-01T00:00:00.000000Z'" };

    let cases = [
        (format!("DELETE FROM alerts WHERE alert_id = '{escalated}'"), "never deleted"),
        (format!("UPDATE alerts SET rule = 'other' WHERE alert_id = '{escalated}'"), "immutable"),
        (
            format!(
                "UPDATE alerts SET status = 'open', acknowledged_at = NULL, acknowledged_by = NULL, acknowledge_comment = NULL WHERE alert_id = '{acknowledged}'"
            ),
            "final",
        ),
        (format!("UPDATE alerts SET acknowledge_comment = 'edited' WHERE alert_id = '{acknowledged}'"), "final"),
        (format!("UPDATE alerts SET escalated_at = {later} WHERE alert_id = '{escalated}'"), "escalate once"),
        (format!("UPDATE alerts SET escalated_at = {later} WHERE alert_id = '{acknowledged}'"), "escalate once"),
    ];
    for (sql, message) in cases {
        let error = test.rejected(&sql).await;
        assert!(error.contains(message), "{sql}: {error}");
    }
    assert_eq!(test.count("alerts", "true").await, 2);
}

/// Many escalation runs at once, from clones of one store, escalate each alert
/// exactly once.
async fn concurrent_escalations_escalate_each_once(backend: Backend) {
    let test = TestStore::open(backend).await;
    for seed in 0..10 {
        submit_with_alerts(&test, seed, "P-001", &["a", "b", "c"]).await;
    }
    let now = OffsetDateTime::now_utc() + Duration::days(1);

    let escalated = escalate_concurrently(&[test.store.clone(), test.store.clone()], now).await;

    assert_eq!(escalated.len(), 30, "every overdue alert escalated once");
    assert_eq!(escalated.iter().collect::<HashSet<_>>().len(), 30, "no alert escalated twice");
    assert_eq!(test.count("outbox_events", &format!("event_type = '{ALERT_ESCALATED}'")).await, 30);
    assert_eq!(test.count("audit_events", &format!("action = '{ALERT_ESCALATED}'")).await, 30);
    assert_chain_intact(&test).await;
}

/// Runs 8 escalation tasks spread over `stores`, each taking 4 alerts at a time until
/// it finds none, and returns the ids of every alert any of them escalated.
async fn escalate_concurrently(stores: &[Store], now: OffsetDateTime) -> Vec<String> {
    let mut tasks = JoinSet::new();
    for task in 0..8 {
        let store = stores[task % stores.len()].clone();
        tasks.spawn(async move {
            let mut escalated = Vec::new();
            // Bounded: 30 alerts cannot take more than 30 non-empty rounds.
            for _ in 0..40 {
                let batch = store.escalate_overdue_alerts(now, 4).await.expect("escalate");
                if batch.is_empty() {
                    break;
                }
                escalated.extend(batch.into_iter().map(|alert| alert.alert_id));
            }
            escalated
        });
    }
    let mut escalated = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        escalated.extend(joined.expect("escalation task"));
    }
    escalated
}

/// Many acknowledgements of one alert at once record exactly one.
async fn concurrent_acknowledgements_record_one(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_with_alerts(&test, 1, "P-001", &["a"]).await;
    let alert_id = all_alerts(&test.store).await[0].alert_id.clone();

    let mut tasks = JoinSet::new();
    for task in 0..6 {
        let store = test.store.clone();
        let change = acknowledgement(&alert_id, &format!("handled by task {task}"));
        tasks.spawn(async move { store.acknowledge_alert(change).await.expect("acknowledge") });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("acknowledgement task"));
    }

    let recorded = outcomes.iter().filter(|outcome| matches!(outcome, AcknowledgeOutcome::Acknowledged(_))).count();
    let refused =
        outcomes.iter().filter(|outcome| matches!(outcome, AcknowledgeOutcome::AlreadyAcknowledged(_))).count();
    assert_eq!((recorded, refused), (1, 5), "{outcomes:?}");
    assert_eq!(test.count("audit_events", &format!("action = '{ALERT_ACKNOWLEDGED}'")).await, 1);
}

/// Two instances on one PostgreSQL database escalating at the same time escalate each
/// alert exactly once, with one event and one audit row each, in one intact chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_escalate_each_alert_once() {
    let Some(backend) = Backend::postgres() else { return };
    let database = TestDatabase::create(backend).await;
    let first = Store::open(database.config()).await.expect("open the first instance");
    let second = Store::open(database.config()).await.expect("open the second instance");
    for seed in 0..10 {
        let mut new = submission(seed);
        new.alerts = ["a", "b", "c"].iter().map(|rule| new_alert(&new, rule)).collect();
        submit_created(&first, new).await;
    }
    let now = OffsetDateTime::now_utc() + Duration::days(1);

    let escalated = escalate_concurrently(&[first.clone(), second.clone()], now).await;

    assert_eq!(escalated.len(), 30, "every overdue alert escalated once");
    assert_eq!(escalated.iter().collect::<HashSet<_>>().len(), 30, "no alert escalated twice");
    assert_eq!(database.count("outbox_events", &format!("event_type = '{ALERT_ESCALATED}'")).await, 30);
    assert_eq!(database.count("audit_events", &format!("action = '{ALERT_ESCALATED}'")).await, 30);
    assert_eq!(database.count("alerts", "escalated_at IS NULL").await, 0);
    let verification = second.audit_verify().await.expect("verify");
    assert!(matches!(verification, AuditVerification::Intact { entries: 40, .. }), "{verification:?}");
    first.close().await;
    second.close().await;
}
