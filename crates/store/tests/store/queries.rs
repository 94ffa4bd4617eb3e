//! Data queries after intake: listing with filters and cursor, and status changes with
//! their history and audit rows.

use epro_store::{
    DataQuery, QUERY_STATUS_CHANGED, QueryFilter, QueryStatus, QueryStatusChange, QueryUpdate, StoreError,
};

use crate::support::{Backend, TestStore, backend_tests, new_query, submission, submit_created};

backend_tests!(multi_thread: concurrent_status_changes_record_each_once);
backend_tests!(
    queries_filter_by_each_field,
    queries_cursor_pages_in_order,
    queries_zero_limit_is_empty,
    query_reads_one_by_id,
    update_status_records_history_and_audit,
    update_status_reopens_closed_query,
    update_status_unknown_query_not_found,
    update_status_same_status_unchanged,
    update_status_blank_comment_changes_nothing,
);

/// Query ids of each kind stored by [`seed_queries`].
struct Seeded {
    /// Trial A, pain-diary, patient P-001: item `pain` (later answered) and whole form.
    pain_item: String,
    pain_form: String,
    /// Trial A, phq-9, patient P-002: item `/q9`.
    phq9_item: String,
    /// Trial B, pain-diary, patient P-001: item `pain`.
    other_trial: String,
}

/// Stores three submissions with four queries across two trials, two forms and two
/// patients, and answers one query.
async fn seed_queries(test: &TestStore) -> Seeded {
    let mut pain = submission(1);
    pain.queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("", "score_mismatch", "total")];
    let mut phq9 = submission(2);
    phq9.form_id = "phq-9".to_owned();
    phq9.patient_id = "P-002".to_owned();
    phq9.queries = vec![new_query("/q9", "rule_violated", "item9")];
    let mut other_trial = submission(3);
    other_trial.trial_id = "TRIAL-B".to_owned();
    other_trial.queries = vec![new_query("pain", "rule_violated", "pain-max")];

    let pain = submit_created(&test.store, pain).await;
    let phq9 = submit_created(&test.store, phq9).await;
    let other_trial = submit_created(&test.store, other_trial).await;
    let seeded = Seeded {
        pain_item: pain.queries[0].query_id.clone(),
        pain_form: pain.queries[1].query_id.clone(),
        phq9_item: phq9.queries[0].query_id.clone(),
        other_trial: other_trial.queries[0].query_id.clone(),
    };

    let update = test.store.update_query_status(change(&seeded.pain_item, QueryStatus::Answered)).await;
    assert!(matches!(update, Ok(QueryUpdate::Updated(_))), "{update:?}");
    seeded
}

fn change(query_id: &str, status: QueryStatus) -> QueryStatusChange {
    QueryStatusChange {
        query_id: query_id.to_owned(),
        status,
        comment: "checked with the patient at the visit".to_owned(),
        actor: "staff:S-017".to_owned(),
        request_id: Some("req-staff".to_owned()),
    }
}

fn ids(queries: &[DataQuery]) -> Vec<&str> {
    queries.iter().map(|query| query.query_id.as_str()).collect()
}

async fn queries_filter_by_each_field(backend: Backend) {
    let test = TestStore::open(backend).await;
    let seeded = seed_queries(&test).await;
    let trial_a = || QueryFilter::new("TRIAL-A", 100);

    let all = test.store.queries(trial_a()).await.expect("list");
    let open = test.store.queries(QueryFilter { status: Some(QueryStatus::Open), ..trial_a() }).await.expect("list");
    let answered =
        test.store.queries(QueryFilter { status: Some(QueryStatus::Answered), ..trial_a() }).await.expect("list");
    let closed =
        test.store.queries(QueryFilter { status: Some(QueryStatus::Closed), ..trial_a() }).await.expect("list");
    let phq9 = test.store.queries(QueryFilter { form_id: Some("phq-9".to_owned()), ..trial_a() }).await.expect("list");
    let patient =
        test.store.queries(QueryFilter { patient_id: Some("P-001".to_owned()), ..trial_a() }).await.expect("list");
    let item = test.store.queries(QueryFilter { item: Some("pain".to_owned()), ..trial_a() }).await.expect("list");
    let whole_form = test.store.queries(QueryFilter { item: Some(String::new()), ..trial_a() }).await.expect("list");
    let combined = test
        .store
        .queries(QueryFilter {
            status: Some(QueryStatus::Open),
            patient_id: Some("P-001".to_owned()),
            form_id: Some("pain-diary".to_owned()),
            ..trial_a()
        })
        .await
        .expect("list");
    let trial_b = test.store.queries(QueryFilter::new("TRIAL-B", 100)).await.expect("list");
    let unknown_trial = test.store.queries(QueryFilter::new("TRIAL-Z", 100)).await.expect("list");

    assert_eq!(ids(&all), [&seeded.pain_item, &seeded.pain_form, &seeded.phq9_item]);
    assert!(all.iter().all(|query| query.trial_id == "TRIAL-A"));
    assert_eq!(ids(&open), [&seeded.pain_form, &seeded.phq9_item]);
    assert_eq!(ids(&answered), [&seeded.pain_item]);
    assert!(closed.is_empty());
    assert_eq!(ids(&phq9), [&seeded.phq9_item]);
    assert_eq!(ids(&patient), [&seeded.pain_item, &seeded.pain_form]);
    assert_eq!(ids(&item), [&seeded.pain_item]);
    assert_eq!(ids(&whole_form), [&seeded.pain_form]);
    assert_eq!(ids(&combined), [&seeded.pain_form]);
    assert_eq!(ids(&trial_b), [&seeded.other_trial]);
    assert!(unknown_trial.is_empty());
}

async fn queries_cursor_pages_in_order(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut raised = Vec::new();
    for pain in 0..3 {
        let mut new = submission(pain);
        new.queries = vec![new_query("pain", "rule_violated", "a"), new_query("pain", "rule_violated", "b")];
        let receipt = submit_created(&test.store, new).await;
        raised.extend(receipt.queries.into_iter().map(|reference| reference.query_id));
    }
    let mut extra = submission(9);
    extra.queries = vec![new_query("", "score_mismatch", "total")];
    raised.extend(submit_created(&test.store, extra).await.queries.into_iter().map(|r| r.query_id));

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let filter = QueryFilter { after: after.clone(), ..QueryFilter::new("TRIAL-A", 3) };
        let page = test.store.queries(filter).await.expect("list");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|query| query.query_id.clone());
        pages.push(page);
        assert!(pages.len() <= 3, "paging did not end");
    }

    let sizes: Vec<_> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let listed: Vec<String> = pages.iter().flatten().map(|query| query.query_id.clone()).collect();
    assert_eq!(listed, raised);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
}

async fn queries_zero_limit_is_empty(backend: Backend) {
    let test = TestStore::open(backend).await;
    seed_queries(&test).await;

    let listed = test.store.queries(QueryFilter::new("TRIAL-A", 0)).await.expect("list");

    assert!(listed.is_empty());
}

async fn query_reads_one_by_id(backend: Backend) {
    let test = TestStore::open(backend).await;
    let seeded = seed_queries(&test).await;

    let found = test.store.query(&seeded.phq9_item).await.expect("read").expect("query exists");
    let missing = test.store.query(&uuid::Uuid::now_v7().to_string()).await.expect("read");

    assert_eq!(found.query_id, seeded.phq9_item);
    assert_eq!(found.form_id, "phq-9");
    assert_eq!(found.patient_id, "P-002");
    assert_eq!(found.item, "/q9");
    assert!(missing.is_none());
}

async fn update_status_records_history_and_audit(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(1);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let query_id = submit_created(&test.store, new).await.queries[0].query_id.clone();
    let raised = test.store.query(&query_id).await.expect("read").expect("exists");

    let answered = test.store.update_query_status(change(&query_id, QueryStatus::Answered)).await.expect("answer");
    let mut close = change(&query_id, QueryStatus::Closed);
    close.actor = "staff:DM-002".to_owned();
    close.comment = "数据已核实 / verified against source".to_owned();
    close.request_id = None;
    let closed = test.store.update_query_status(close).await.expect("close");
    let stored = test.store.query(&query_id).await.expect("read").expect("exists");

    let QueryUpdate::Updated(answered) = answered else {
        panic!("answer did not update: {answered:?}");
    };
    assert_eq!(answered.status, QueryStatus::Answered);
    assert!(answered.updated_at >= raised.created_at);
    assert_eq!(answered.created_at, raised.created_at);
    let QueryUpdate::Updated(closed) = closed else {
        panic!("close did not update: {closed:?}");
    };
    assert_eq!(closed.status, QueryStatus::Closed);
    assert_eq!(stored, closed);
    assert_eq!(stored.params, raised.params);
    assert_eq!(stored.item, raised.item);

    let history = query_history(&test, &query_id).await;
    assert_eq!(
        history,
        [
            (
                "staff:S-017".to_owned(),
                "open".to_owned(),
                "answered".to_owned(),
                "checked with the patient at the visit".to_owned(),
                Some("req-staff".to_owned()),
            ),
            (
                "staff:DM-002".to_owned(),
                "answered".to_owned(),
                "closed".to_owned(),
                "数据已核实 / verified against source".to_owned(),
                None,
            ),
        ]
    );
    let audit_filter =
        format!("action = '{QUERY_STATUS_CHANGED}' AND entity = 'data_query' AND entity_id = '{query_id}'");
    assert_eq!(test.count("audit_events", &audit_filter).await, 2);
    assert_eq!(test.count("audit_events", &format!("{audit_filter} AND actor = 'staff:DM-002'")).await, 1);
    assert_eq!(test.count("audit_events", &format!("{audit_filter} AND request_id = 'req-staff'")).await, 1);
    let reason = "reason = '数据已核实 / verified against source' AND actor = 'staff:DM-002'";
    assert_eq!(
        test.count("audit_events", &format!("{audit_filter} AND {reason}")).await,
        1,
        "the comment is the reason"
    );
}

async fn update_status_reopens_closed_query(backend: Backend) {
    let test = TestStore::open(backend).await;
    let seeded = seed_queries(&test).await;
    test.store.update_query_status(change(&seeded.pain_form, QueryStatus::Closed)).await.expect("close");

    let reopened = test.store.update_query_status(change(&seeded.pain_form, QueryStatus::Open)).await.expect("reopen");

    let QueryUpdate::Updated(reopened) = reopened else {
        panic!("reopen did not update: {reopened:?}");
    };
    assert_eq!(reopened.status, QueryStatus::Open);
    let history: Vec<_> =
        query_history(&test, &seeded.pain_form).await.into_iter().map(|(_, from, to, _, _)| (from, to)).collect();
    assert_eq!(history, [("open".to_owned(), "closed".to_owned()), ("closed".to_owned(), "open".to_owned())]);
}

async fn update_status_unknown_query_not_found(backend: Backend) {
    let test = TestStore::open(backend).await;
    seed_queries(&test).await;
    let events_before = test.count("data_query_events", "true").await;
    let audit_before = test.count("audit_events", "true").await;

    let update = test
        .store
        .update_query_status(change(&uuid::Uuid::now_v7().to_string(), QueryStatus::Closed))
        .await
        .expect("update");

    assert_eq!(update, QueryUpdate::NotFound);
    assert_eq!(test.count("data_query_events", "true").await, events_before);
    assert_eq!(test.count("audit_events", "true").await, audit_before);
}

async fn update_status_same_status_unchanged(backend: Backend) {
    let test = TestStore::open(backend).await;
    let seeded = seed_queries(&test).await;
    let before = test.store.query(&seeded.pain_item).await.expect("read").expect("exists");
    let events_before = test.count("data_query_events", "true").await;
    let audit_before = test.count("audit_events", "true").await;

    let update =
        test.store.update_query_status(change(&seeded.pain_item, QueryStatus::Answered)).await.expect("update");

    assert_eq!(update, QueryUpdate::Unchanged(before.clone()));
    assert_eq!(before.status, QueryStatus::Answered);
    assert_eq!(test.count("data_query_events", "true").await, events_before);
    assert_eq!(test.count("audit_events", "true").await, audit_before);
}

async fn update_status_blank_comment_changes_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let seeded = seed_queries(&test).await;
    let audit_before = test.count("audit_events", "true").await;
    let mut blank_comment = change(&seeded.phq9_item, QueryStatus::Closed);
    blank_comment.comment = " \t\n".to_owned();
    let mut empty_actor = change(&seeded.phq9_item, QueryStatus::Closed);
    empty_actor.actor = String::new();

    let comment_result = test.store.update_query_status(blank_comment).await;
    let actor_result = test.store.update_query_status(empty_actor).await;
    let stored = test.store.query(&seeded.phq9_item).await.expect("read").expect("exists");

    let Err(StoreError::Internal(comment_error)) = &comment_result else {
        panic!("blank comment was not rejected: {comment_result:?}");
    };
    assert!(format!("{comment_error:#}").contains("comment"), "{comment_error:#}");
    assert!(matches!(actor_result, Err(StoreError::Internal(_))), "{actor_result:?}");
    assert_eq!(stored.status, QueryStatus::Open);
    assert_eq!(stored.updated_at, stored.created_at);
    assert_eq!(test.count("data_query_events", &format!("query_id = '{}'", seeded.phq9_item)).await, 0);
    assert_eq!(test.count("audit_events", "true").await, audit_before);
}

async fn concurrent_status_changes_record_each_once(backend: Backend) {
    let test = TestStore::open(backend).await;
    let seeded = seed_queries(&test).await;

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = test.store.clone();
            let change = change(&seeded.phq9_item, QueryStatus::Closed);
            tokio::spawn(async move { store.update_query_status(change).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("update"));
    }

    let updated = outcomes.iter().filter(|outcome| matches!(outcome, QueryUpdate::Updated(_))).count();
    let unchanged = outcomes.iter().filter(|outcome| matches!(outcome, QueryUpdate::Unchanged(_))).count();
    assert_eq!(updated, 1);
    assert_eq!(unchanged, 9);
    assert_eq!(test.count("data_query_events", &format!("query_id = '{}'", seeded.phq9_item)).await, 1);
    for outcome in &outcomes {
        let (QueryUpdate::Updated(query) | QueryUpdate::Unchanged(query)) = outcome else {
            panic!("query was not found: {outcome:?}");
        };
        assert_eq!(query.status, QueryStatus::Closed);
    }
}

/// Reads a query's history rows as (actor, from, to, comment, request id), oldest first.
async fn query_history(test: &TestStore, query_id: &str) -> Vec<(String, String, String, String, Option<String>)> {
    let rows = test
        .rows(&format!(
            "SELECT actor, from_status, to_status, comment, request_id FROM data_query_events
             WHERE query_id = '{query_id}' ORDER BY seq"
        ))
        .await;
    rows.into_iter()
        .map(|row| {
            let text = |index: usize| row[index].clone().expect("column is NOT NULL");
            (text(0), text(1), text(2), text(3), row[4].clone())
        })
        .collect()
}
