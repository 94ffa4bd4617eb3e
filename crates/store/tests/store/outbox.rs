//! The outbox side of the store: pending events, delivery marks and notification.

use std::time::Duration;

use epro_store::StoreError;

use crate::support::{Backend, TestStore, backend_tests, submission};

backend_tests!(
    outbox_pending_orders_by_seq,
    mark_delivered_removes_from_pending,
    mark_delivered_twice_keeps_first_time,
    mark_failed_counts_attempts,
    mark_unknown_seq_fails,
    outbox_notify_wakes_after_commit,
    outbox_event_id_is_stable,
);

async fn outbox_pending_orders_by_seq(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut submitted = Vec::new();
    for pain in 0..5 {
        let new = submission(pain);
        test.store.submit(new.clone()).await.expect("submit");
        submitted.push(new.submission_id);
    }

    let first_three = test.store.outbox_pending(3).await.expect("read outbox");
    let all = test.store.outbox_pending(100).await.expect("read outbox");

    assert_eq!(first_three.len(), 3);
    assert_eq!(all.len(), 5);
    let order: Vec<_> = all.iter().map(|event| event.submission_id.clone()).collect();
    assert_eq!(order, submitted);
    assert!(all.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(first_three[..], all[..3]);
}

async fn mark_delivered_removes_from_pending(backend: Backend) {
    let test = TestStore::open(backend).await;
    for pain in 0..3 {
        test.store.submit(submission(pain)).await.expect("submit");
    }
    let pending = test.store.outbox_pending(10).await.expect("read outbox");

    test.store.outbox_mark_delivered(&[pending[0].seq, pending[2].seq]).await.expect("mark delivered");
    let remaining = test.store.outbox_pending(10).await.expect("read outbox");
    let delivered = test.store.outbox_event(pending[0].seq).await.expect("read event").expect("event exists");

    assert_eq!(remaining, vec![pending[1].clone()]);
    assert!(delivered.delivered_at.is_some());
    assert_eq!(delivered.event, pending[0]);
}

async fn mark_delivered_twice_keeps_first_time(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");
    let seq = test.store.outbox_pending(1).await.expect("read outbox")[0].seq;

    test.store.outbox_mark_delivered(&[seq]).await.expect("first mark");
    let first = test.store.outbox_event(seq).await.expect("read").expect("exists");
    tokio::time::sleep(Duration::from_millis(5)).await;
    test.store.outbox_mark_delivered(&[seq]).await.expect("second mark");
    let second = test.store.outbox_event(seq).await.expect("read").expect("exists");

    assert!(first.delivered_at.is_some());
    assert_eq!(second.delivered_at, first.delivered_at);
}

async fn mark_failed_counts_attempts(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");
    let seq = test.store.outbox_pending(1).await.expect("read outbox")[0].seq;
    let long_error = "连接被拒绝 ".repeat(400);

    test.store.outbox_mark_failed(seq, "connection refused").await.expect("mark");
    test.store.outbox_mark_failed(seq, &long_error).await.expect("mark");
    let state = test.store.outbox_event(seq).await.expect("read").expect("exists");
    let pending = test.store.outbox_pending(1).await.expect("read outbox");

    assert_eq!(state.event.attempts, 2);
    assert_eq!(pending[0].attempts, 2);
    assert!(state.delivered_at.is_none());
    let last_error = state.last_error.expect("last_error is kept");
    assert!(last_error.len() <= 2000, "last_error has {} bytes", last_error.len());
    assert!(long_error.starts_with(&last_error));
}

async fn mark_unknown_seq_fails(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");
    let seq = test.store.outbox_pending(1).await.expect("read outbox")[0].seq;

    let delivered = test.store.outbox_mark_delivered(&[seq, 9999]).await;
    let failed = test.store.outbox_mark_failed(9999, "timeout").await;
    let state = test.store.outbox_event(seq).await.expect("read").expect("exists");

    assert!(matches!(delivered, Err(StoreError::Internal(_))), "{delivered:?}");
    assert!(matches!(failed, Err(StoreError::Internal(_))), "{failed:?}");
    assert!(state.delivered_at.is_none(), "a failed mark must mark nothing");
}

async fn outbox_notify_wakes_after_commit(backend: Backend) {
    let test = TestStore::open(backend).await;
    let notify = test.store.outbox_notify();

    test.store.submit(submission(1)).await.expect("submit");
    let woken = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;

    assert!(woken.is_ok(), "no notification after a commit with an outbox row");
}

async fn outbox_event_id_is_stable(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");

    let first = test.store.outbox_pending(1).await.expect("read outbox");
    test.store.close().await;
    let reopened = epro_store::Store::open(test.config.clone()).await.expect("reopen");
    let second = reopened.outbox_pending(1).await.expect("read outbox");

    assert_eq!(first[0].event_id, second[0].event_id);
    reopened.close().await;
}
