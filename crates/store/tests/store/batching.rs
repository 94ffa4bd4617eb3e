//! Group commit: batching, per-row failures, back-pressure and draining on close.

use std::time::Duration;

use epro_store::{NewSubmission, Store, StoreError, SubmitOutcome};
use tokio::task::JoinHandle;

use crate::support::{
    Backend, TestStore, backend_tests, new_query, sha256_stand_in, submission, unreachable, wait_for_queue_depth,
};

type SubmitTask = JoinHandle<Result<SubmitOutcome, StoreError>>;

backend_tests!(multi_thread: concurrent_submits_share_batches);
backend_tests!(
    failing_row_spares_its_neighbours,
    failing_query_spares_its_neighbours,
    duplicates_within_batch_are_detected,
    full_queue_returns_overloaded,
    close_drains_queued_submissions,
    close_twice_returns,
);

fn spawn_submit(store: &Store, new: NewSubmission) -> SubmitTask {
    let store = store.clone();
    tokio::spawn(async move { store.submit(new).await })
}

/// Spawns submissions and returns once each has been queued. On the single-threaded
/// test runtime, `yield_now` lets every spawned task run up to its first await, and
/// `submit` queues its command before that.
async fn spawn_queued(store: &Store, submissions: impl IntoIterator<Item = NewSubmission>) -> Vec<SubmitTask> {
    let tasks = submissions.into_iter().map(|new| spawn_submit(store, new)).collect();
    tokio::task::yield_now().await;
    tasks
}

async fn concurrent_submits_share_batches(backend: Backend) {
    let test = TestStore::open_with(backend, |config| config.max_batch = 64).await;

    let tasks: Vec<_> = (0..500).map(|pain| spawn_submit(&test.store, submission(pain))).collect();
    for task in tasks {
        let outcome = task.await.expect("task").expect("submit");
        assert!(matches!(outcome, SubmitOutcome::Created(_)), "{outcome:?}");
    }
    let stats = test.store.stats();

    assert_eq!(stats.submissions_created, 500);
    assert_eq!(stats.commands_committed, 500);
    assert!(stats.batches_committed < 500, "500 submissions took {} commits", stats.batches_committed);
    assert!(
        stats.batches_committed >= 500 / 64,
        "batches of at most 64 cannot hold 500 submissions in {} commits",
        stats.batches_committed
    );
    assert_eq!(test.count("submissions", "true").await, 500);
    assert_eq!(test.count("outbox_events", "true").await, 500);
}

/// One row has invalid JSON, another an empty actor, which fails its last insert (the
/// audit row), so its submission and outbox rows must be rolled back. SQLite rolls
/// back that row's savepoint. PostgreSQL rejects the JSON before the batch, rolls back
/// the batch on the audit row and writes its submissions one per transaction.
async fn failing_row_spares_its_neighbours(backend: Backend) {
    let test = TestStore::open(backend).await;
    let store = &test.store;
    let lock = test.hold_write_lock().await;

    // The first command is taken alone and blocks on the lock, so the next four queue
    // up and form the second batch, in order.
    let first = spawn_queued(store, [submission(1)]).await;
    wait_for_queue_depth(store, 0).await;
    let mut invalid_json = submission(3);
    invalid_json.normalized_answers = "{not json".to_owned();
    let mut empty_actor = submission(4);
    empty_actor.actor = String::new();
    let batch = [submission(2), invalid_json, empty_actor.clone(), submission(5)];
    let tasks = spawn_queued(store, batch).await;
    wait_for_queue_depth(store, 4).await;
    lock.release().await;

    let first = join_all(first).await;
    let results = join_all(tasks).await;

    assert!(matches!(first[0], Ok(SubmitOutcome::Created(_))), "{:?}", first[0]);
    assert!(matches!(results[0], Ok(SubmitOutcome::Created(_))), "{:?}", results[0]);
    let Err(StoreError::Internal(invalid_json_error)) = &results[1] else {
        panic!("invalid JSON was not rejected: {:?}", results[1]);
    };
    assert!(format!("{invalid_json_error:#}").contains("normalized_answers"), "{invalid_json_error:#}");
    let Err(StoreError::Internal(empty_actor_error)) = &results[2] else {
        panic!("empty actor was not rejected: {:?}", results[2]);
    };
    assert!(format!("{empty_actor_error:#}").contains("failed to insert audit event"), "{empty_actor_error:#}");
    assert!(matches!(results[3], Ok(SubmitOutcome::Created(_))), "{:?}", results[3]);

    let stats = store.stats();
    // PostgreSQL commits the two good submissions of the rolled-back batch one by one.
    let expected_batches = if test.is_postgres() { 3 } else { 2 };
    assert_eq!(stats.batches_committed, expected_batches);
    assert_eq!(stats.commands_failed, 2);
    assert_eq!(test.count("submissions", "true").await, 3);
    assert_eq!(test.count("outbox_events", "true").await, 3);
    assert_eq!(test.count("audit_events", "true").await, 3);
    let empty_actor_id = empty_actor.submission_id.to_string();
    assert_eq!(test.count("outbox_events", &format!("submission_id = '{empty_actor_id}'")).await, 0);
}

/// A data query that fails its check is written after its submission row. The whole
/// submission, with its other query and its outbox rows, must be rolled back. The
/// submissions around it in the batch still commit with their queries.
async fn failing_query_spares_its_neighbours(backend: Backend) {
    let test = TestStore::open(backend).await;
    let store = &test.store;
    let lock = test.hold_write_lock().await;

    let blocker = spawn_queued(store, [submission(1)]).await;
    wait_for_queue_depth(store, 0).await;
    let mut before = submission(2);
    before.queries = vec![new_query("pain", "rule_violated", "pain-max")];
    let mut failing = submission(3);
    let mut bad_params = new_query("", "score_mismatch", "total");
    bad_params.params = "{not json".to_owned();
    failing.queries = vec![new_query("pain", "rule_violated", "pain-max"), bad_params];
    let mut after = submission(4);
    after.queries = vec![new_query("mood", "rule_violated", "")];
    let tasks = spawn_queued(store, [before.clone(), failing.clone(), after.clone()]).await;
    wait_for_queue_depth(store, 3).await;
    lock.release().await;

    join_all(blocker).await;
    let results = join_all(tasks).await;

    assert_eq!(store.stats().batches_committed, 2);
    assert!(matches!(results[0], Ok(SubmitOutcome::Created(_))), "{:?}", results[0]);
    let Err(StoreError::Internal(error)) = &results[1] else {
        panic!("invalid params were not rejected: {:?}", results[1]);
    };
    assert!(format!("{error:#}").contains("params"), "{error:#}");
    assert!(matches!(results[2], Ok(SubmitOutcome::Created(_))), "{:?}", results[2]);
    let failing_id = &failing.submission_id;
    assert_eq!(test.count("submissions", &format!("submission_id = '{failing_id}'")).await, 0);
    assert_eq!(test.count("data_queries", &format!("submission_id = '{failing_id}'")).await, 0);
    assert_eq!(test.count("outbox_events", &format!("submission_id = '{failing_id}'")).await, 0);
    assert_eq!(test.count("audit_events", &format!("entity_id = '{failing_id}'")).await, 0);
    for neighbour in [&before, &after] {
        let id = &neighbour.submission_id;
        assert_eq!(test.count("data_queries", &format!("submission_id = '{id}'")).await, 1, "queries of {id}");
        assert_eq!(test.count("outbox_events", &format!("submission_id = '{id}'")).await, 1, "outbox of {id}");
    }
}

/// A resubmission in the same batch as the original finds the uncommitted row.
async fn duplicates_within_batch_are_detected(backend: Backend) {
    let test = TestStore::open(backend).await;
    let store = &test.store;
    let lock = test.hold_write_lock().await;

    let blocker = spawn_queued(store, [submission(1)]).await;
    wait_for_queue_depth(store, 0).await;
    let original = submission(2);
    let mut changed = original.clone();
    changed.content_sha256 = sha256_stand_in(3);
    let tasks = spawn_queued(store, [original.clone(), original, changed]).await;
    wait_for_queue_depth(store, 3).await;
    lock.release().await;

    join_all(blocker).await;
    let results = join_all(tasks).await;

    assert_eq!(store.stats().batches_committed, 2);
    let Ok(SubmitOutcome::Created(receipt)) = &results[0] else {
        panic!("original was not created: {:?}", results[0]);
    };
    assert_eq!(results[1].as_ref().ok(), Some(&SubmitOutcome::Replayed(receipt.clone())));
    assert_eq!(results[2].as_ref().ok(), Some(&SubmitOutcome::Conflict(receipt.clone())));
    assert_eq!(test.count("submissions", "true").await, 2);
    assert_eq!(test.count("outbox_events", "true").await, 2);
}

async fn full_queue_returns_overloaded(backend: Backend) {
    let test = TestStore::open_with(backend, |config| config.queue_capacity = 2).await;
    let store = &test.store;
    let lock = test.hold_write_lock().await;

    let blocker = spawn_queued(store, [submission(1)]).await;
    wait_for_queue_depth(store, 0).await;
    let queued = spawn_queued(store, [submission(2), submission(3)]).await;
    wait_for_queue_depth(store, 2).await;
    let rejected = submission(4);
    let overloaded = tokio::time::timeout(Duration::from_secs(1), store.submit(rejected.clone()))
        .await
        .expect("a full queue must fail at once, not wait");
    lock.release().await;

    assert!(matches!(overloaded, Err(StoreError::Overloaded)), "{overloaded:?}");
    for result in join_all(blocker.into_iter().chain(queued)).await {
        assert!(matches!(result, Ok(SubmitOutcome::Created(_))), "{result:?}");
    }
    let stored = store.submission(&rejected.submission_id).await.expect("read");
    assert!(stored.is_none());
    assert_eq!(store.queue_depth(), 0);
}

async fn close_drains_queued_submissions(backend: Backend) {
    let test = TestStore::open(backend).await;
    let store = &test.store;
    let lock = test.hold_write_lock().await;

    let submissions: Vec<_> = (0..50).map(submission).collect();
    let mut tasks = spawn_queued(store, submissions[..1].iter().cloned()).await;
    wait_for_queue_depth(store, 0).await;
    tasks.extend(spawn_queued(store, submissions[1..].iter().cloned()).await);
    wait_for_queue_depth(store, 49).await;
    let closing = tokio::spawn({
        let store = store.clone();
        async move { store.close().await }
    });
    // On this single-threaded runtime the close task runs before this task resumes,
    // and it stops accepting writes before its first await.
    tokio::task::yield_now().await;
    let late = store.submit(submission(99)).await;
    lock.release().await;
    closing.await.expect("close task");

    assert!(matches!(late, Err(StoreError::ShuttingDown)), "{late:?}");
    for result in join_all(tasks).await {
        assert!(matches!(result, Ok(SubmitOutcome::Created(_))), "{result:?}");
    }
    let reopened = Store::open(test.config.clone()).await.expect("reopen");
    for new in &submissions {
        let stored = reopened.submission(&new.submission_id).await.expect("read");
        assert!(stored.is_some(), "submission {} was lost", new.submission_id);
    }
    assert_eq!(test.count("submissions", "true").await, 50);
    reopened.close().await;
}

async fn close_twice_returns(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");

    test.store.close().await;
    test.store.close().await;
    let late = test.store.outbox_mark_failed(unreachable(vec![1])).await;

    assert!(matches!(late, Err(StoreError::ShuttingDown)), "{late:?}");
    assert_eq!(test.count("submissions", "true").await, 1);
}

async fn join_all(tasks: impl IntoIterator<Item = SubmitTask>) -> Vec<Result<SubmitOutcome, StoreError>> {
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results
}
