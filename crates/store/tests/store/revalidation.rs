//! Revalidation: paging through stored submissions and recording derived results
//! beside them.

use epro_store::{
    NewQuery, QueryOrigin, QueryStatus, Revalidation, SUBMISSION_REVALIDATED, StoreError, SubmissionStatus,
};

use crate::support::{Backend, TestStore, assert_json_eq, backend_tests, new_query, submission, submit_created};

backend_tests!(
    record_revalidation_appends_derived_record,
    record_revalidation_twice_raises_once,
    record_revalidation_skips_intake_query,
    record_revalidation_unknown_submission_fails,
    record_revalidation_invalid_query_records_nothing,
    submissions_page_pages_in_order,
);

fn revalidation(submission_id: &str, run_id: &str, queries: Vec<NewQuery>) -> Revalidation {
    Revalidation {
        run_id: run_id.to_owned(),
        submission_id: submission_id.to_owned(),
        form_version: "1.1.0".to_owned(),
        scores: r#"[{"name":"total","value":"12"}]"#.to_owned(),
        findings: r#"[{"code":"rule_violated","item":"pain","severity":"query"}]"#.to_owned(),
        queries,
        actor: "operator:cli".to_owned(),
    }
}

async fn record_revalidation_appends_derived_record(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(4);
    new.scores = r#"[{"name":"total","value":"4"}]"#.to_owned();
    submit_created(&test.store, new.clone()).await;
    let before = test.store.submission(&new.submission_id).await.expect("read").expect("stored");
    let record = revalidation(&new.submission_id, "run-1", vec![new_query("pain", "rule_violated", "pain-max")]);

    let outcome = test.store.record_revalidation(record.clone()).await.expect("record");
    let after = test.store.submission(&new.submission_id).await.expect("read").expect("stored");
    let derived = test
        .rows(&format!(
            "SELECT submission_id, run_id, form_version, scores, findings FROM derived_records WHERE seq = {}",
            outcome.record_seq
        ))
        .await;

    let [derived] = derived.as_slice() else {
        panic!("derived record {} not found once: {derived:?}", outcome.record_seq);
    };
    assert_eq!(derived[0].as_deref(), Some(new.submission_id.as_str()));
    assert_eq!(derived[1].as_deref(), Some("run-1"));
    assert_eq!(derived[2].as_deref(), Some("1.1.0"));
    assert_json_eq(derived[3].as_deref().expect("scores"), &record.scores);
    assert_json_eq(derived[4].as_deref().expect("findings"), &record.findings);
    assert_eq!(outcome.new_queries.len(), 1);
    assert_eq!(after.scores, before.scores, "revalidation must not replace intake scores");
    assert_eq!(after.status, SubmissionStatus::Accepted);
    assert_eq!(after.raw_answers, before.raw_answers);
    assert_eq!(after.form_version, "1.0.0");
    assert_eq!(after.queries.len(), 1);
    let query = &after.queries[0];
    assert_eq!(query.query_id, outcome.new_queries[0].query_id);
    assert_eq!(query.origin, QueryOrigin::Revalidation);
    assert_eq!(query.status, QueryStatus::Open);
    assert_eq!(query.form_version, "1.1.0");
    assert_eq!(query.patient_id, new.patient_id);
    assert_eq!(query.trial_id, new.trial_id);
    let audit_filter = format!(
        "action = '{SUBMISSION_REVALIDATED}' AND entity = 'submission' AND entity_id = '{}' AND actor = 'operator:cli'",
        new.submission_id
    );
    assert_eq!(test.count("audit_events", &audit_filter).await, 1);
    assert_eq!(test.count("outbox_events", "true").await, 1, "revalidation writes no outbox event");
}

async fn record_revalidation_twice_raises_once(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submission(2);
    submit_created(&test.store, new.clone()).await;
    let queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("", "score_mismatch", "total")];

    let first = test
        .store
        .record_revalidation(revalidation(&new.submission_id, "run-1", queries.clone()))
        .await
        .expect("first");
    let second =
        test.store.record_revalidation(revalidation(&new.submission_id, "run-2", queries)).await.expect("second");

    assert_eq!(first.new_queries.len(), 2);
    assert!(second.new_queries.is_empty(), "{:?}", second.new_queries);
    assert!(second.record_seq > first.record_seq);
    assert_eq!(test.count("derived_records", &format!("submission_id = '{}'", new.submission_id)).await, 2);
    assert_eq!(test.count("data_queries", "true").await, 2);
    assert_eq!(test.count("audit_events", &format!("action = '{SUBMISSION_REVALIDATED}'")).await, 2);
}

async fn record_revalidation_skips_intake_query(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(9);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let receipt = submit_created(&test.store, new.clone()).await;
    let queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("pain", "stale_form_version", "")];

    let outcome =
        test.store.record_revalidation(revalidation(&new.submission_id, "run-1", queries)).await.expect("record");
    let stored = test.store.submission(&new.submission_id).await.expect("read").expect("stored");

    let codes: Vec<_> = outcome.new_queries.iter().map(|reference| reference.code.as_str()).collect();
    assert_eq!(codes, ["stale_form_version"]);
    let origins: Vec<_> = stored.queries.iter().map(|query| query.origin).collect();
    assert_eq!(origins, [QueryOrigin::Intake, QueryOrigin::Revalidation]);
    assert_eq!(stored.queries[0].query_id, receipt.queries[0].query_id);
    let replayed = test.store.submit(new).await.expect("replay");
    assert_eq!(replayed.receipt().queries, receipt.queries, "a replay lists intake queries only");
}

async fn record_revalidation_unknown_submission_fails(backend: Backend) {
    let test = TestStore::open(backend).await;
    let missing = uuid::Uuid::new_v4().to_string();

    let result = test.store.record_revalidation(revalidation(&missing, "run-1", Vec::new())).await;

    let Err(StoreError::Internal(error)) = &result else {
        panic!("unknown submission was not rejected: {result:?}");
    };
    assert!(error.to_string().contains("no such submission"), "{error:#}");
    assert_eq!(test.count("derived_records", "true").await, 0);
    assert_eq!(test.count("audit_events", "true").await, 0);
}

async fn record_revalidation_invalid_query_records_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let new = submission(1);
    submit_created(&test.store, new.clone()).await;
    let mut bad_params = new_query("", "score_mismatch", "total");
    bad_params.params = "[]".to_owned();
    let queries = vec![new_query("pain", "rule_violated", "pain-max"), bad_params];
    let mut bad_scores = revalidation(&new.submission_id, "run-1", Vec::new());
    bad_scores.scores = "{}".to_owned();

    let query_result = test.store.record_revalidation(revalidation(&new.submission_id, "run-1", queries)).await;
    let scores_result = test.store.record_revalidation(bad_scores).await;

    assert!(matches!(query_result, Err(StoreError::Internal(_))), "{query_result:?}");
    assert!(matches!(scores_result, Err(StoreError::Internal(_))), "{scores_result:?}");
    assert_eq!(test.count("derived_records", "true").await, 0);
    assert_eq!(test.count("data_queries", "true").await, 0);
    assert_eq!(test.count("audit_events", &format!("action = '{SUBMISSION_REVALIDATED}'")).await, 0);
}

async fn submissions_page_pages_in_order(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut expected = Vec::new();
    let mut expected_v2 = Vec::new();
    for pain in 0..250 {
        let mut new = submission(pain);
        if pain % 2 == 1 {
            new.form_version = "2.0.0".to_owned();
            expected_v2.push(new.submission_id.clone());
        }
        if pain == 10 {
            new.queries = vec![new_query("pain", "rule_violated", "pain-max")];
        }
        expected.push(new.submission_id.clone());
        test.store.submit(new).await.expect("submit");

        // Neighbours from another form and another trial, which no page may contain.
        if pain % 50 == 0 {
            let mut other_form = submission(1000 + pain);
            other_form.form_id = "phq-9".to_owned();
            test.store.submit(other_form).await.expect("submit");
            let mut other_trial = submission(2000 + pain);
            other_trial.trial_id = "TRIAL-B".to_owned();
            test.store.submit(other_trial).await.expect("submit");
        }
    }

    let pages = read_pages(&test, None, 100).await;
    let pages_v2 = read_pages(&test, Some("2.0.0"), 100).await;

    let sizes: Vec<_> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let rows: Vec<_> = pages.into_iter().flatten().collect();
    let listed: Vec<_> = rows.iter().map(|(_, stored)| stored.submission_id.clone()).collect();
    assert_eq!(listed, expected);
    assert!(rows.windows(2).all(|pair| pair[0].0 < pair[1].0), "rowids must increase");
    assert!(rows.iter().all(|(_, stored)| stored.trial_id == "TRIAL-A"));
    assert!(rows.iter().all(|(_, stored)| stored.form_id == "pain-diary"));
    assert!(rows.iter().all(|(_, stored)| stored.raw_answers.starts_with(r#"{"pain":"#)));
    assert_eq!(rows[10].1.queries.len(), 1, "a page carries each submission's queries");
    let listed_v2: Vec<_> = pages_v2.into_iter().flatten().map(|(_, stored)| stored.submission_id).collect();
    assert_eq!(listed_v2, expected_v2);
}

/// Reads every page of the pain-diary submissions of TRIAL-A.
async fn read_pages(
    test: &TestStore,
    form_version: Option<&str>,
    limit: usize,
) -> Vec<Vec<(i64, epro_store::StoredSubmission)>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page =
            test.store.submissions_page("TRIAL-A", "pain-diary", form_version, after, limit).await.expect("read page");
        if page.is_empty() {
            return pages;
        }
        after = page.last().map(|(rowid, _)| *rowid);
        pages.push(page);
        assert!(pages.len() <= 10, "paging did not end");
    }
}
