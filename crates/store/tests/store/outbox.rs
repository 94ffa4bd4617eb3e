//! The outbox side of the store: pending events, claims, delivery marks, dead letters,
//! replays and notification.

use std::time::Duration;

use epro_store::{OutboxFailure, OutboxReplay, ReplaySelection, StoreError};
use uuid::Uuid;

use crate::support::{Backend, TestStore, backend_tests, submission, unreachable};

backend_tests!(multi_thread: concurrent_claims_never_overlap);
backend_tests!(
    outbox_pending_orders_by_seq,
    mark_delivered_removes_from_pending,
    mark_delivered_twice_keeps_first_time,
    mark_failed_counts_attempts,
    mark_unknown_seq_fails,
    outbox_notify_wakes_after_commit,
    outbox_event_id_is_stable,
    claims_skip_events_under_a_live_lease,
    expired_claims_are_claimable_again,
    release_returns_claims_at_once,
    refusals_dead_letter_but_outages_never_do,
    replay_of_dead_letters_makes_them_pending_and_audits,
    replay_by_event_id_resends_a_delivered_event,
    replay_with_an_unknown_id_changes_nothing,
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

async fn mark_unknown_seq_fails(backend: Backend) {
    let test = TestStore::open(backend).await;
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

/// Builds a failure where the sink replied and rejected the events.
fn refused(seqs: Vec<i64>, dead_letter_after: u32) -> OutboxFailure {
    OutboxFailure { seqs, error: "broker returned the message".to_owned(), rejected: true, dead_letter_after }
}

fn replay(selection: ReplaySelection) -> OutboxReplay {
    OutboxReplay { selection, actor: "operator:test".to_owned(), reason: "consumer fixed".to_owned(), request_id: None }
}

const LEASE: Duration = Duration::from_secs(30);

async fn claims_skip_events_under_a_live_lease(backend: Backend) {
    let test = TestStore::open(backend).await;
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

async fn expired_claims_are_claimable_again(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");

    let crashed = test.store.outbox_claim("relay-a", 10, Duration::from_millis(50)).await.expect("claim");
    let during = test.store.outbox_claim("relay-b", 10, LEASE).await.expect("claim");
    tokio::time::sleep(Duration::from_millis(120)).await;
    let after = test.store.outbox_claim("relay-b", 10, LEASE).await.expect("claim");

    assert_eq!(crashed.len(), 1);
    assert!(during.is_empty(), "the lease was still live: {during:?}");
    assert_eq!(after, crashed, "the expired claim passes to the next relay");
}

async fn release_returns_claims_at_once(backend: Backend) {
    let test = TestStore::open(backend).await;
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

async fn refusals_dead_letter_but_outages_never_do(backend: Backend) {
    let test = TestStore::open(backend).await;
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

    assert!(first.is_empty());
    assert!(second.is_empty());
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

async fn replay_of_dead_letters_makes_them_pending_and_audits(backend: Backend) {
    let test = TestStore::open(backend).await;
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
    let audited = "action = 'outbox.replayed' AND actor = 'operator:test' AND reason = 'consumer fixed'";
    assert_eq!(test.count("audit_events", audited).await, 2);
}

async fn replay_by_event_id_resends_a_delivered_event(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.submit(submission(1)).await.expect("submit");
    let event = test.store.outbox_pending(1).await.expect("read outbox").remove(0);
    test.store.outbox_mark_delivered(&[event.seq]).await.expect("deliver");

    let replayed = test.store.outbox_replay(replay(ReplaySelection::EventIds(vec![event.event_id]))).await;
    let pending = test.store.outbox_pending(10).await.expect("read outbox");

    assert_eq!(replayed.expect("replay"), vec![event.seq]);
    assert_eq!(pending, vec![event]);
}

async fn replay_with_an_unknown_id_changes_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
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
    assert_eq!(test.count("audit_events", "action = 'outbox.replayed'").await, 0);
}

/// Two relays claiming at the same time, over and over, never hold the same event while
/// their leases are live, and between them they claim every event once.
async fn concurrent_claims_never_overlap(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut submitted = Vec::new();
    for pain in 0..200 {
        let new = submission(pain);
        submitted.push(new.submission_id.clone());
        test.store.submit(new).await.expect("submit");
    }

    let relays: Vec<_> = ["relay-a", "relay-b"]
        .into_iter()
        .map(|relay_id| {
            let store = test.store.clone();
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                // Bounded: 200 events in claims of at most 7 take at most 29 rounds each.
                for _ in 0..100 {
                    let batch = store.outbox_claim(relay_id, 7, LEASE).await.expect("claim");
                    if batch.is_empty() {
                        break;
                    }
                    claimed.extend(batch.into_iter().map(|event| event.seq));
                    tokio::task::yield_now().await;
                }
                claimed
            })
        })
        .collect();
    let mut by_relay = Vec::new();
    for relay in relays {
        by_relay.push(relay.await.expect("relay task"));
    }

    let all: Vec<i64> = by_relay.iter().flatten().copied().collect();
    let distinct: std::collections::HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an event was claimed twice under a live lease");
    assert_eq!(all.len(), submitted.len(), "every event is claimed once");
    assert!(
        by_relay.iter().all(|claimed| claimed.windows(2).all(|pair| pair[0] < pair[1])),
        "each relay claims in seq order"
    );
}
