//! The outbox side of the store: pending events, delivery marks and notification.

use std::time::Duration;

use epro_store::{OutboxFailure, OutboxReplay, ReplaySelection, StoreError};
use uuid::Uuid;

use crate::support::{TestStore, submission, unreachable};

#[tokio::test]
async fn outbox_pending_orders_by_seq() {
    let test = TestStore::open().await;
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

#[tokio::test]
async fn mark_delivered_removes_from_pending() {
    let test = TestStore::open().await;
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

#[tokio::test]
async fn mark_delivered_twice_keeps_first_time() {
    let test = TestStore::open().await;
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

#[tokio::test]
async fn mark_failed_counts_attempts() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");
    let seq = test.store.outbox_pending(1).await.expect("read outbox")[0].seq;
    let long_error = "连接被拒绝 ".repeat(400);

    test.store.outbox_mark_failed(unreachable(vec![seq])).await.expect("mark");
    let failure = OutboxFailure { error: long_error.clone(), ..unreachable(vec![seq]) };
    test.store.outbox_mark_failed(failure).await.expect("mark");
    let state = test.store.outbox_event(seq).await.expect("read").expect("exists");
    let pending = test.store.outbox_pending(1).await.expect("read outbox");

    assert_eq!(state.event.attempts, 2);
    assert_eq!(pending[0].attempts, 2);
    assert!(state.delivered_at.is_none());
    let last_error = state.last_error.expect("last_error is kept");
    assert!(last_error.len() <= 2000, "last_error has {} bytes", last_error.len());
    assert!(long_error.starts_with(&last_error));
}

#[tokio::test]
async fn mark_unknown_seq_fails() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");
    let seq = test.store.outbox_pending(1).await.expect("read outbox")[0].seq;

    let delivered = test.store.outbox_mark_delivered(&[seq, 9999]).await;
    let failed = test.store.outbox_mark_failed(unreachable(vec![seq, 9999])).await;
    let state = test.store.outbox_event(seq).await.expect("read").expect("exists");

    assert!(matches!(delivered, Err(StoreError::Internal(_))), "{delivered:?}");
    assert!(matches!(failed, Err(StoreError::Internal(_))), "{failed:?}");
    assert!(state.delivered_at.is_none(), "a failed mark must mark nothing");
    assert_eq!(state.event.attempts, 0, "a failed mark must count nothing");
}

#[tokio::test]
async fn outbox_notify_wakes_after_commit() {
    let test = TestStore::open().await;
    let notify = test.store.outbox_notify();

    test.store.submit(submission(1)).await.expect("submit");
    let woken = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;

    assert!(woken.is_ok(), "no notification after a commit with an outbox row");
}

#[tokio::test]
async fn outbox_event_id_is_stable() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");

    let first = test.store.outbox_pending(1).await.expect("read outbox");
    test.store.close().await;
    let reopened = epro_store::Store::open(test.config.clone()).await.expect("reopen");
    let second = reopened.outbox_pending(1).await.expect("read outbox");

    assert_eq!(first[0].event_id, second[0].event_id);
    reopened.close().await;
}

/// A failure where the sink answered and refused the events.
fn refused(seqs: Vec<i64>, dead_letter_after: u32) -> OutboxFailure {
    OutboxFailure { seqs, error: "broker returned the message".to_owned(), rejected: true, dead_letter_after }
}

fn replay(selection: ReplaySelection) -> OutboxReplay {
    OutboxReplay { selection, actor: "operator:test".to_owned(), reason: "consumer fixed".to_owned(), request_id: None }
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn claims_skip_events_under_a_live_lease() {
    let test = TestStore::open().await;
    for pain in 0..5 {
        test.store.submit(submission(pain)).await.expect("submit");
    }

    let first = test.store.outbox_claim("relay-a", 3, LEASE).await.expect("claim");
    let second = test.store.outbox_claim("relay-b", 10, LEASE).await.expect("claim");
    let third = test.store.outbox_claim("relay-c", 10, LEASE).await.expect("claim");
    let state = test.store.outbox_event(first[0].seq).await.expect("read").expect("exists");

    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 2);
    assert!(third.is_empty(), "every event is under a live lease: {third:?}");
    assert!(first.windows(2).all(|pair| pair[0].seq < pair[1].seq), "claims come in seq order");
    assert!(first.last().expect("claimed").seq < second[0].seq, "the second relay gets the later events");
    assert_eq!(state.claimed_by.as_deref(), Some("relay-a"));
    assert!(state.claim_expires_at.is_some());
}

#[tokio::test]
async fn expired_claims_are_claimable_again() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");

    let crashed = test.store.outbox_claim("relay-a", 10, Duration::from_millis(50)).await.expect("claim");
    let during = test.store.outbox_claim("relay-b", 10, LEASE).await.expect("claim");
    tokio::time::sleep(Duration::from_millis(120)).await;
    let after = test.store.outbox_claim("relay-b", 10, LEASE).await.expect("claim");

    assert_eq!(crashed.len(), 1);
    assert!(during.is_empty(), "the lease was still live: {during:?}");
    assert_eq!(after, crashed, "the expired claim passes to the next relay");
}

#[tokio::test]
async fn release_returns_claims_at_once() {
    let test = TestStore::open().await;
    for pain in 0..3 {
        test.store.submit(submission(pain)).await.expect("submit");
    }
    let claimed = test.store.outbox_claim("relay-a", 10, LEASE).await.expect("claim");
    test.store.outbox_mark_delivered(&[claimed[0].seq]).await.expect("deliver");

    let released = test.store.outbox_release("relay-a").await.expect("release");
    let other = test.store.outbox_claim("relay-b", 10, LEASE).await.expect("claim");

    assert_eq!(released, 2, "the delivered event holds no claim");
    assert_eq!(other, claimed[1..].to_vec());
}

#[tokio::test]
async fn refusals_dead_letter_but_outages_never_do() {
    let test = TestStore::open().await;
    for pain in 0..2 {
        test.store.submit(submission(pain)).await.expect("submit");
    }
    let events = test.store.outbox_pending(10).await.expect("read outbox");
    let (refused_seq, outage_seq) = (events[0].seq, events[1].seq);

    for _ in 0..10 {
        let dead = test.store.outbox_mark_failed(unreachable(vec![outage_seq])).await.expect("mark");
        assert!(dead.is_empty());
    }
    let first = test.store.outbox_mark_failed(refused(vec![refused_seq], 3)).await.expect("mark");
    let second = test.store.outbox_mark_failed(refused(vec![refused_seq], 3)).await.expect("mark");
    let third = test.store.outbox_mark_failed(refused(vec![refused_seq], 3)).await.expect("mark");
    let dead_state = test.store.outbox_event(refused_seq).await.expect("read").expect("exists");
    let outage_state = test.store.outbox_event(outage_seq).await.expect("read").expect("exists");
    let backlog = test.store.outbox_backlog().await.expect("backlog");
    let claimable = test.store.outbox_claim("relay-a", 10, LEASE).await.expect("claim");
    let listed = test.store.outbox_dead_letters(None, 10).await.expect("dead letters");

    assert!(first.is_empty() && second.is_empty());
    assert_eq!(third, vec![refused_seq]);
    assert_eq!(dead_state.rejections, 3);
    assert!(dead_state.dead_lettered_at.is_some());
    assert_eq!(outage_state.event.attempts, 10);
    assert_eq!(outage_state.rejections, 0);
    assert!(outage_state.dead_lettered_at.is_none(), "an outage of any length never dead-letters");
    assert_eq!((backlog.pending, backlog.dead_letters), (1, 1));
    assert_eq!(claimable.iter().map(|event| event.seq).collect::<Vec<_>>(), vec![outage_seq]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].event.seq, refused_seq);
    assert_eq!(listed[0].last_error.as_deref(), Some("broker returned the message"));
}

#[tokio::test]
async fn replay_of_dead_letters_makes_them_pending_and_audits() {
    let test = TestStore::open().await;
    for pain in 0..3 {
        test.store.submit(submission(pain)).await.expect("submit");
    }
    let events = test.store.outbox_pending(10).await.expect("read outbox");
    let dead: Vec<i64> = events[..2].iter().map(|event| event.seq).collect();
    test.store.outbox_mark_failed(refused(dead.clone(), 1)).await.expect("mark");

    let replayed = test.store.outbox_replay(replay(ReplaySelection::DeadLetters)).await.expect("replay");
    let state = test.store.outbox_event(dead[0]).await.expect("read").expect("exists");
    let backlog = test.store.outbox_backlog().await.expect("backlog");

    assert_eq!(replayed, dead);
    assert!(state.dead_lettered_at.is_none());
    assert_eq!(state.rejections, 0);
    assert_eq!(state.event.attempts, 1, "the attempt history stays");
    assert_eq!((backlog.pending, backlog.dead_letters), (3, 0));
    assert_eq!(test.count("audit_events", "action = 'outbox.replayed' AND actor = 'operator:test'"), 2);
}

#[tokio::test]
async fn replay_by_event_id_resends_a_delivered_event() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");
    let event = test.store.outbox_pending(1).await.expect("read outbox").remove(0);
    test.store.outbox_mark_delivered(&[event.seq]).await.expect("deliver");

    let replayed = test.store.outbox_replay(replay(ReplaySelection::EventIds(vec![event.event_id]))).await;
    let pending = test.store.outbox_pending(10).await.expect("read outbox");

    assert_eq!(replayed.expect("replay"), vec![event.seq]);
    assert_eq!(pending, vec![event]);
}

#[tokio::test]
async fn replay_with_an_unknown_id_changes_nothing() {
    let test = TestStore::open().await;
    test.store.submit(submission(1)).await.expect("submit");
    let event = test.store.outbox_pending(1).await.expect("read outbox").remove(0);
    test.store.outbox_mark_delivered(&[event.seq]).await.expect("deliver");
    let unknown = Uuid::new_v4();

    let result = test.store.outbox_replay(replay(ReplaySelection::EventIds(vec![event.event_id, unknown]))).await;
    let blank = test
        .store
        .outbox_replay(OutboxReplay { reason: " \t".to_owned(), ..replay(ReplaySelection::DeadLetters) })
        .await;
    let state = test.store.outbox_event(event.seq).await.expect("read").expect("exists");

    let error = result.expect_err("an unknown id fails the replay");
    assert!(format!("{error:#}").contains(&unknown.to_string()), "{error:#}");
    assert!(matches!(blank, Err(StoreError::Internal(_))), "{blank:?}");
    assert!(state.delivered_at.is_some(), "the known event stays delivered");
    assert_eq!(test.count("audit_events", "action = 'outbox.replayed'"), 0);
}
