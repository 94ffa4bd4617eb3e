//! Exports: the high-water mark, pages in commit order, the cursor between two
//! exports while submissions keep arriving, and the audit row.

use std::collections::HashSet;

use epro_store::{EXPORT_CREATED, ExportAudit, ExportCursor, ExportPage, ExportRow, Store};

use crate::support::{Backend, TestStore, backend_tests, new_query, submission, submit_created};

backend_tests!(
    export_pages_form_in_commit_order,
    export_mark_leaves_later_rows_for_next_export,
    export_counts_data_queries,
    export_rejects_other_backend_cursor,
    record_export_appends_audit_row,
    record_export_rejects_empty_actor,
);

backend_tests!(multi_thread: export_resumed_while_writing_misses_none);

/// Reads every row of `form_id` that `since` does not cover, up to a new mark,
/// `page_size` rows at a time, and returns them with the next cursor.
async fn export_all(
    store: &Store,
    form_id: &str,
    since: Option<&ExportCursor>,
    page_size: usize,
) -> (Vec<ExportRow>, ExportCursor) {
    let until = store.export_mark().await.expect("mark");
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = ExportPage { trial_id: "TRIAL-A", form_id, since, until: &until, after, limit: page_size };
        let batch = store.export_page(&page).await.expect("page");
        let Some(last) = batch.last() else {
            break;
        };
        assert!(batch.len() <= page_size, "page of {} rows for a limit of {page_size}", batch.len());
        after = Some(last.key);
        rows.extend(batch);
    }
    (rows, ExportCursor::after_export(since, until))
}

fn ids(rows: &[ExportRow]) -> Vec<String> {
    rows.iter().map(|row| row.submission_id.clone()).collect()
}

async fn export_pages_form_in_commit_order(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut expected = Vec::new();
    for pain in 0..5 {
        let new = submission(pain);
        expected.push(new.submission_id.clone());
        submit_created(&test.store, new).await;
        let mut other = submission(100 + pain);
        other.form_id = "mood-diary".to_owned();
        submit_created(&test.store, other).await;
    }

    let (rows, _) = export_all(&test.store, "pain-diary", None, 2).await;

    assert_eq!(ids(&rows), expected, "only this form, in the order of the commits");
    let first = &rows[0];
    assert_eq!(first.patient_id, "P-001");
    assert_eq!(first.form_version, "1.0.0");
    assert_eq!(first.completed_at.offset().whole_seconds(), 8 * 3600, "the device's offset is kept");
    assert_eq!(first.normalized_answers, r#"{"pain":0}"#);
    assert_eq!(first.scores, "[]");
    assert_eq!(first.query_count, 0);
}

async fn export_mark_leaves_later_rows_for_next_export(backend: Backend) {
    let test = TestStore::open(backend).await;
    let early = submission(1);
    submit_created(&test.store, early.clone()).await;
    let mark = test.store.export_mark().await.expect("mark");
    let late = submission(2);
    submit_created(&test.store, late.clone()).await;

    let page =
        ExportPage { trial_id: "TRIAL-A", form_id: "pain-diary", since: None, until: &mark, after: None, limit: 100 };
    let first = test.store.export_page(&page).await.expect("first export");
    let (second, next) = export_all(&test.store, "pain-diary", Some(&mark), 100).await;
    let (third, _) = export_all(&test.store, "pain-diary", Some(&next), 100).await;

    assert_eq!(ids(&first), vec![early.submission_id], "a row after the mark waits");
    assert_eq!(ids(&second), vec![late.submission_id], "the next export starts after the mark");
    assert!(third.is_empty(), "nothing new: {:?}", ids(&third));
    let text = next.to_string();
    assert_eq!(text.parse::<ExportCursor>(), Ok(next), "the cursor survives its text form: {text}");
}

async fn export_counts_data_queries(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut new = submission(7);
    new.queries = vec![new_query("pain", "rule_violated", "pain-max"), new_query("", "score_mismatch", "total")];
    submit_created(&test.store, new).await;

    let (rows, _) = export_all(&test.store, "pain-diary", None, 10).await;

    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].query_count, 2);
}

async fn export_rejects_other_backend_cursor(backend: Backend) {
    let test = TestStore::open(backend).await;
    submit_created(&test.store, submission(1)).await;
    let own = test.store.export_mark().await.expect("mark");
    let other: ExportCursor = if test.is_postgres() { "v1.s.0" } else { "v1.p.1" }.parse().expect("cursor");

    let page = ExportPage {
        trial_id: "TRIAL-A",
        form_id: "pain-diary",
        since: Some(&other),
        until: &own,
        after: None,
        limit: 10,
    };
    let error = test.store.export_page(&page).await.expect_err("a cursor of the other backend must fail");

    assert!(test.store.accepts_export_cursor(&own));
    assert!(!test.store.accepts_export_cursor(&other));
    assert!(format!("{error:#}").contains("belongs to"), "{error:#}");
}

async fn record_export_appends_audit_row(backend: Backend) {
    let test = TestStore::open(backend).await;
    let audit = ExportAudit {
        actor: "operator".to_owned(),
        trial_id: "TRIAL-A".to_owned(),
        form_id: "pain-diary".to_owned(),
        request_id: Some("req-export".to_owned()),
    };

    test.store.record_export(audit).await.expect("record");
    let rows = test
        .rows(&format!(
            "SELECT actor, entity, entity_id, request_id, reason FROM audit_events WHERE action = '{EXPORT_CREATED}'"
        ))
        .await;

    let [row] = rows.as_slice() else {
        panic!("expected one export audit row, found {rows:?}");
    };
    assert_eq!(row[0].as_deref(), Some("operator"));
    assert_eq!(row[1].as_deref(), Some("form"));
    assert_eq!(row[2].as_deref(), Some("TRIAL-A/pain-diary"));
    assert_eq!(row[3].as_deref(), Some("req-export"));
    assert_eq!(row[4], None, "an export has no reason");
}

async fn record_export_rejects_empty_actor(backend: Backend) {
    let test = TestStore::open(backend).await;
    let audit = ExportAudit {
        actor: String::new(),
        trial_id: "TRIAL-A".to_owned(),
        form_id: "pain-diary".to_owned(),
        request_id: None,
    };

    let result = test.store.record_export(audit).await;

    assert!(result.is_err(), "an empty actor must be rejected");
    assert_eq!(test.count("audit_events", &format!("action = '{EXPORT_CREATED}'")).await, 0);
}

/// Two writers (on PostgreSQL two stores, as two epro instances would be) commit
/// submissions while exports page through them, each resuming from the last one's
/// cursor. Together the exports hold every submission exactly once.
async fn export_resumed_while_writing_misses_none(backend: Backend) {
    const PER_WRITER: u32 = 300;
    let test = TestStore::open(backend).await;
    let second = Store::open(test.config.clone()).await.expect("open a second store on the same database");

    let writers: Vec<_> = [test.store.clone(), second.clone()]
        .into_iter()
        .enumerate()
        .map(|(writer, store)| {
            tokio::spawn(async move {
                let mut submitted = Vec::new();
                let mut pending = Vec::new();
                for index in 0..PER_WRITER {
                    let new = submission(u32::try_from(writer).expect("two writers") * PER_WRITER + index);
                    submitted.push(new.submission_id.clone());
                    let store = store.clone();
                    pending.push(tokio::spawn(async move { store.submit(new).await }));
                    if pending.len() == 16 {
                        for task in pending.drain(..) {
                            task.await.expect("submit task").expect("submit");
                        }
                    }
                }
                for task in pending {
                    task.await.expect("submit task").expect("submit");
                }
                submitted
            })
        })
        .collect();

    let mut exported = Vec::new();
    let mut cursor = None;
    let mut exports = 0;
    while !writers.iter().all(|writer| writer.is_finished()) {
        let (rows, next) = export_all(&test.store, "pain-diary", cursor.as_ref(), 7).await;
        exported.extend(ids(&rows));
        cursor = Some(next);
        exports += 1;
        tokio::task::yield_now().await;
    }
    let mut submitted = Vec::new();
    for writer in writers {
        submitted.extend(writer.await.expect("writer task"));
    }
    // Every submission has committed, so one more export takes the rest.
    let (rows, _) = export_all(&test.store, "pain-diary", cursor.as_ref(), 7).await;
    exported.extend(ids(&rows));

    let unique: HashSet<&String> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "an export repeated a row");
    let expected: HashSet<&String> = submitted.iter().collect();
    assert_eq!(unique, expected, "the {exports} exports during the writes and those after hold every submission");
    second.close().await;
}
