//! The writer's metrics and the outbox backlog read that feeds the relay's
//! gauges.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusBuilder;

use crate::support::{Backend, TestStore, backend_tests, submission};

backend_tests!(writer_records_batches_and_queue, outbox_backlog_counts_undelivered_events);

async fn writer_records_batches_and_queue(backend: Backend) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let test = TestStore::open_with(backend, |config| config.metrics = Some(Arc::new(recorder))).await;

    for pain in 0..3 {
        test.store.submit(submission(pain)).await.expect("submit");
    }
    let text = handle.render();

    assert!(text.contains("store_batch_size_sum 3"), "three commands were committed:\n{text}");
    assert!(text.contains("store_batch_size_count 3"), "one commit per awaited submit:\n{text}");
    assert!(text.contains("store_commit_duration_seconds_count 3"), "{text}");
    assert!(text.contains("store_queue_depth 0"), "nothing waits after the last batch:\n{text}");
    assert!(test.store.metrics_recorder().is_some(), "the relay finds the same recorder");
}

async fn outbox_backlog_counts_undelivered_events(backend: Backend) {
    let test = TestStore::open(backend).await;
    let empty = test.store.outbox_backlog().await.expect("read backlog");
    for pain in 0..3 {
        test.store.submit(submission(pain)).await.expect("submit");
    }

    let before = test.store.outbox_backlog().await.expect("read backlog");
    let pending = test.store.outbox_pending(10).await.expect("read outbox");
    test.store.outbox_mark_delivered(&[pending[0].seq]).await.expect("mark delivered");
    let after_first = test.store.outbox_backlog().await.expect("read backlog");

    assert_eq!(empty.pending, 0);
    assert_eq!(empty.oldest_occurred_at, None);
    assert_eq!(before.pending, 3);
    assert_eq!(before.oldest_occurred_at, Some(pending[0].occurred_at));
    assert_eq!(after_first.pending, 2);
    assert_eq!(after_first.oldest_occurred_at, Some(pending[1].occurred_at));
}
