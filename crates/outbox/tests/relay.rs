//! Relay tests against a real store in a temporary directory and real or scripted sinks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use epro_outbox::{NdjsonFileSink, PublishError, RelayConfig, Sink, run_relay};
use epro_store::{NewSubmission, OutboxEvent, SourceFormat, Store, StoreConfig};
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Text placed in every submission's answers. It must never reach a sink.
const ANSWER_MARKER: &str = "answer-must-not-leave-the-store";

async fn open_store(directory: &TempDir) -> Store {
    Store::open(StoreConfig::new(directory.path().join("epro.db"))).await.expect("open store")
}

fn submission(index: u32) -> NewSubmission {
    let answers = format!(r#"{{"pain":{index},"note":"{ANSWER_MARKER}"}}"#);
    let mut content_sha256 = [0u8; 32];
    content_sha256[..4].copy_from_slice(&index.to_be_bytes());
    NewSubmission {
        submission_id: Uuid::new_v4().to_string(),
        trial_id: "TRIAL-A".to_owned(),
        form_id: "pain-diary".to_owned(),
        form_version: "1.0.0".to_owned(),
        patient_id: format!("P-{index:03}"),
        completed_at: OffsetDateTime::now_utc(),
        received_at: OffsetDateTime::now_utc(),
        source: SourceFormat::Native,
        raw_answers: answers.clone(),
        normalized_answers: answers,
        content_sha256,
        scores: "[]".to_owned(),
        queries: Vec::new(),
        alerts: Vec::new(),
        actor: format!("patient:P-{index:03}"),
        request_id: None,
    }
}

/// Relay settings with short waits, so that retries happen within a test.
fn fast_config() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(50),
        batch_size: 8,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        dead_letter_after: 3,
        ..RelayConfig::default()
    }
}

fn spawn_relay(
    store: &Store,
    sink: Arc<dyn Sink>,
    config: RelayConfig,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(run_relay(store.clone(), sink, config, shutdown.clone()));
    (shutdown, relay)
}

/// Waits up to ten seconds for the outbox to have no undelivered event.
async fn wait_until_delivered(store: &Store) {
    for _ in 0..1000 {
        if store.outbox_pending(1).await.expect("read outbox").is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("outbox events are still pending after ten seconds");
}

/// Stops the relay and returns its result, failing the test if it takes over a second.
async fn stop(shutdown: CancellationToken, relay: JoinHandle<anyhow::Result<()>>) {
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(1), relay)
        .await
        .expect("relay must stop within a second of shutdown")
        .expect("relay task");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_writes_each_event_once() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    let path = directory.path().join("events.ndjson");
    let sink = Arc::new(NdjsonFileSink::open(&path).expect("open sink"));
    let (shutdown, relay) = spawn_relay(&store, sink, fast_config());

    let mut submissions = Vec::new();
    for index in 0..30 {
        let new = submission(index);
        store.submit(new.clone()).await.expect("submit");
        submissions.push(new);
    }
    wait_until_delivered(&store).await;
    stop(shutdown, relay).await;

    let text = std::fs::read_to_string(&path).expect("read sink file");
    assert!(!text.contains(ANSWER_MARKER), "answers reached the sink");
    let messages: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect();
    assert_eq!(messages.len(), 30);

    let event_ids: HashSet<_> = messages.iter().map(|m| m["eventId"].clone()).collect();
    assert_eq!(event_ids.len(), 30, "an event was written twice");
    for (message, new) in messages.iter().zip(&submissions) {
        let id = new.submission_id.to_string();
        assert_eq!(message["submissionId"], id.as_str(), "messages follow submit order");
        assert_eq!(message["type"], "submission.accepted");
        assert_eq!(message["trialId"], "TRIAL-A");
        assert_eq!(message["patientId"], new.patient_id.as_str());
        assert!(message["eventId"].as_str().is_some_and(|v| Uuid::parse_str(v).is_ok()));
        assert!(message["occurredAt"].as_str().is_some_and(|v| v.ends_with('Z')));
        let payload = message["payload"].as_object().expect("payload is an object");
        let mut keys: Vec<_> = payload.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["completedAt", "formId", "formVersion", "receivedAt", "status"]);
        assert_eq!(payload["formId"], "pain-diary");
    }
    store.close().await;
}

/// A sink that fails its first `failures` publishes, then records what it receives.
struct FlakySink {
    failures: usize,
    calls: AtomicUsize,
    published: Mutex<Vec<OutboxEvent>>,
}

#[async_trait::async_trait]
impl Sink for FlakySink {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.failures {
            return Err(PublishError::Unavailable(anyhow!("broker unavailable (call {call})")));
        }
        self.published.lock().expect("published lock").extend_from_slice(events);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_retries_until_sink_recovers() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    let sink = Arc::new(FlakySink { failures: 3, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    let new = submission(1);
    store.submit(new.clone()).await.expect("submit");
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), fast_config());

    wait_until_delivered(&store).await;
    stop(shutdown, relay).await;

    assert_eq!(sink.calls.load(Ordering::SeqCst), 4);
    let published = sink.published.lock().expect("published lock").clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].submission_id, new.submission_id);
    // The event was read for the fourth call after three failed attempts.
    assert_eq!(published[0].attempts, 3);
    let state = store.outbox_event(published[0].seq).await.expect("read event").expect("event exists");
    assert_eq!(state.event.attempts, 3);
    assert!(state.delivered_at.is_some());
    let last_error = state.last_error.expect("last_error is kept");
    assert!(last_error.contains("broker unavailable (call 2)"), "{last_error}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_records_published_and_failures() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut config = StoreConfig::new(directory.path().join("epro.db"));
    config.metrics = Some(Arc::new(recorder));
    let store = Store::open(config).await.expect("open store");
    let sink = Arc::new(FlakySink { failures: 3, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    store.submit(submission(1)).await.expect("submit");
    store.submit(submission(2)).await.expect("submit");
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), fast_config());

    wait_until_delivered(&store).await;
    stop(shutdown, relay).await;
    let text = handle.render();

    assert!(text.contains("outbox_events_published_total 2"), "{text}");
    assert!(text.contains(r#"outbox_publish_failures_total{reason="unavailable"} 3"#), "{text}");
    assert!(text.contains("outbox_dead_letter_events 0"), "{text}");
    assert!(text.contains("outbox_pending_events 0"), "{text}");
    assert!(text.contains("outbox_oldest_pending_age_seconds 0"), "{text}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reports_backlog_while_sink_fails() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut config = StoreConfig::new(directory.path().join("epro.db"));
    config.metrics = Some(Arc::new(recorder));
    let store = Store::open(config).await.expect("open store");
    let sink =
        Arc::new(FlakySink { failures: usize::MAX, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    store.submit(submission(1)).await.expect("submit");
    store.submit(submission(2)).await.expect("submit");
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), fast_config());

    for _ in 0..500 {
        if sink.calls.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = handle.render();
    stop(shutdown, relay).await;

    assert!(sink.calls.load(Ordering::SeqCst) >= 2, "the sink was called at least twice");
    assert!(text.contains("outbox_pending_events 2"), "{text}");
    let age: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("outbox_oldest_pending_age_seconds "))
        .expect("the age gauge is set")
        .parse()
        .expect("the age is a number");
    assert!((0.0..60.0).contains(&age), "age {age} s of an event written during this test");
    assert!(!text.contains("outbox_events_published_total 1"), "{text}");
    store.close().await;
}

#[tokio::test]
async fn relay_stops_promptly_when_idle() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    let sink = Arc::new(FlakySink { failures: 0, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    let config = RelayConfig { poll_interval: Duration::from_secs(600), ..RelayConfig::default() };
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), config);
    tokio::time::sleep(Duration::from_millis(50)).await;

    stop(shutdown, relay).await;

    assert_eq!(sink.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn relay_stops_promptly_during_backoff() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    store.submit(submission(1)).await.expect("submit");
    let sink =
        Arc::new(FlakySink { failures: usize::MAX, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    let config = RelayConfig {
        initial_backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
        ..RelayConfig::default()
    };
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), config);
    for _ in 0..100 {
        if sink.calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    stop(shutdown, relay).await;

    assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
    let pending = store.outbox_pending(1).await.expect("read outbox");
    assert_eq!(pending[0].attempts, 1);
}

/// A sink whose publish waits until the test releases it.
struct GatedSink {
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl Sink for GatedSink {
    fn name(&self) -> &'static str {
        "gated"
    }

    async fn publish(&self, _events: &[OutboxEvent]) -> Result<(), PublishError> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(())
    }
}

#[tokio::test]
async fn relay_finishes_batch_on_shutdown() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    store.submit(submission(1)).await.expect("submit");
    let sink = Arc::new(GatedSink { entered: Notify::new(), release: Notify::new() });
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), fast_config());

    tokio::time::timeout(Duration::from_secs(5), sink.entered.notified()).await.expect("relay must start publishing");
    shutdown.cancel();
    sink.release.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(1), relay)
        .await
        .expect("relay must stop after its batch")
        .expect("relay task");

    assert!(result.is_ok(), "{result:?}");
    let pending = store.outbox_pending(1).await.expect("read outbox");
    assert!(pending.is_empty(), "the batch in flight was not marked delivered");
}

#[tokio::test]
async fn relay_stops_when_store_closes() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    store.submit(submission(1)).await.expect("submit");
    let sink = Arc::new(GatedSink { entered: Notify::new(), release: Notify::new() });
    let (_shutdown, relay) = spawn_relay(&store, sink.clone(), fast_config());

    tokio::time::timeout(Duration::from_secs(5), sink.entered.notified()).await.expect("relay must start publishing");
    store.close().await;
    sink.release.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(1), relay)
        .await
        .expect("relay must stop once the store is closed")
        .expect("relay task");

    assert!(result.is_ok(), "{result:?}");
    let pending = store.outbox_pending(1).await.expect("read outbox");
    assert_eq!(pending.len(), 1, "an unmarked event stays pending for the next run");
}

#[tokio::test]
async fn relay_rejects_invalid_config() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    let sink: Arc<dyn Sink> = Arc::new(epro_outbox::LogSink);
    let cases = [
        ("batch_size", RelayConfig { batch_size: 0, ..RelayConfig::default() }),
        ("dead_letter_after", RelayConfig { dead_letter_after: 0, ..RelayConfig::default() }),
        ("lease", RelayConfig { lease: Duration::ZERO, ..RelayConfig::default() }),
        (
            "max_backoff",
            RelayConfig {
                initial_backoff: Duration::from_secs(10),
                max_backoff: Duration::from_secs(1),
                ..RelayConfig::default()
            },
        ),
    ];

    for (field, config) in cases {
        let result = run_relay(store.clone(), sink.clone(), config, CancellationToken::new()).await;
        let error = result.expect_err("invalid config must be rejected");
        assert!(error.to_string().contains(field), "{field}: {error:#}");
    }
}

#[tokio::test]
async fn ndjson_sink_appends_across_opens() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    for index in 0..3 {
        store.submit(submission(index)).await.expect("submit");
    }
    let events = store.outbox_pending(10).await.expect("read outbox");
    let path = directory.path().join("events.ndjson");

    NdjsonFileSink::open(&path).expect("open sink").publish(&events[..2]).await.expect("publish first two");
    NdjsonFileSink::open(&path).expect("reopen sink").publish(&events[2..]).await.expect("publish third");

    let text = std::fs::read_to_string(&path).expect("read sink file");
    let event_ids: Vec<_> = text
        .lines()
        .map(|line| {
            let message: serde_json::Value = serde_json::from_str(line).expect("line is JSON");
            message["eventId"].as_str().expect("eventId").to_owned()
        })
        .collect();
    let expected: Vec<_> = events.iter().map(|event| event.event_id.to_string()).collect();
    assert_eq!(event_ids, expected);
    assert!(text.ends_with('\n'));
}

#[test]
fn ndjson_sink_rejects_missing_directory() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let path = directory.path().join("missing").join("events.ndjson");

    let error = NdjsonFileSink::open(&path).expect_err("open must fail");

    let message = format!("{error:#}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

/// A sink that refuses every event whose patient id is in `refused`, like a broker
/// returning an unroutable message, and records the others.
struct PickySink {
    refused: HashSet<String>,
    calls: AtomicUsize,
    published: Mutex<Vec<OutboxEvent>>,
}

#[async_trait::async_trait]
impl Sink for PickySink {
    fn name(&self) -> &'static str {
        "picky"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(event) = events.iter().find(|event| self.refused.contains(&event.patient_id)) {
            return Err(PublishError::Rejected(anyhow!("message for {} returned as unroutable", event.patient_id)));
        }
        self.published.lock().expect("published lock").extend_from_slice(events);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_event_alone_dead_letters() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut config = StoreConfig::new(directory.path().join("epro.db"));
    config.metrics = Some(Arc::new(recorder));
    let store = Store::open(config).await.expect("open store");
    let sink = Arc::new(PickySink {
        refused: HashSet::from(["P-002".to_owned()]),
        calls: AtomicUsize::new(0),
        published: Mutex::new(Vec::new()),
    });
    for index in 0..5 {
        store.submit(submission(index)).await.expect("submit");
    }
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), fast_config());

    wait_until_delivered(&store).await;
    stop(shutdown, relay).await;
    let dead = store.outbox_dead_letters(None, 10).await.expect("dead letters");
    let text = handle.render();

    let published: Vec<_> =
        sink.published.lock().expect("published lock").iter().map(|e| e.patient_id.clone()).collect();
    assert_eq!(published, ["P-000", "P-001", "P-003", "P-004"], "the others pass the refused event in order");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.patient_id, "P-002");
    assert_eq!(dead[0].rejections, 3, "dead-lettered after dead_letter_after refusals");
    assert!(dead[0].last_error.as_deref().is_some_and(|error| error.contains("unroutable")), "{dead:?}");
    assert!(text.contains("outbox_dead_lettered_total 1"), "{text}");
    assert!(text.contains(r#"outbox_publish_failures_total{reason="rejected"}"#), "{text}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_dead_letter_is_delivered() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    let picky = Arc::new(PickySink {
        refused: HashSet::from(["P-001".to_owned()]),
        calls: AtomicUsize::new(0),
        published: Mutex::new(Vec::new()),
    });
    store.submit(submission(1)).await.expect("submit");
    let (shutdown, relay) = spawn_relay(&store, picky, fast_config());
    wait_until_delivered(&store).await;
    stop(shutdown, relay).await;
    let dead = store.outbox_dead_letters(None, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "the event is a dead letter before the replay");

    let replay = epro_store::OutboxReplay {
        selection: epro_store::ReplaySelection::DeadLetters,
        actor: "operator:test".to_owned(),
        reason: "routing fixed".to_owned(),
        request_id: None,
    };
    store.outbox_replay(replay).await.expect("replay");
    let fixed = Arc::new(FlakySink { failures: 0, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    let (shutdown, relay) = spawn_relay(&store, fixed.clone(), fast_config());
    wait_until_delivered(&store).await;
    stop(shutdown, relay).await;

    let published = fixed.published.lock().expect("published lock").clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].event_id, dead[0].event.event_id, "the replay keeps the event id");
    assert!(store.outbox_dead_letters(None, 10).await.expect("dead letters").is_empty());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_one_outbox_without_duplicates() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    let sink = Arc::new(FlakySink { failures: 0, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    let first = RelayConfig { relay_id: "relay-a".to_owned(), batch_size: 4, ..fast_config() };
    let second = RelayConfig { relay_id: "relay-b".to_owned(), batch_size: 4, ..fast_config() };
    let (shutdown_a, relay_a) = spawn_relay(&store, sink.clone(), first);
    let (shutdown_b, relay_b) = spawn_relay(&store, sink.clone(), second);

    for index in 0..200 {
        store.submit(submission(index)).await.expect("submit");
    }
    wait_until_delivered(&store).await;
    stop(shutdown_a, relay_a).await;
    stop(shutdown_b, relay_b).await;

    let published = sink.published.lock().expect("published lock").clone();
    let unique: HashSet<_> = published.iter().map(|event| event.event_id).collect();
    assert_eq!(published.len(), 200, "no event was published twice while its lease was live");
    assert_eq!(unique.len(), 200);
    store.close().await;
}

#[tokio::test]
async fn stopped_relay_releases_its_claims() {
    let directory = tempfile::tempdir().expect("create temporary directory");
    let store = open_store(&directory).await;
    store.submit(submission(1)).await.expect("submit");
    let sink =
        Arc::new(FlakySink { failures: usize::MAX, calls: AtomicUsize::new(0), published: Mutex::new(Vec::new()) });
    let config = RelayConfig {
        initial_backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
        ..fast_config()
    };
    let (shutdown, relay) = spawn_relay(&store, sink.clone(), config);
    for _ in 0..100 {
        if sink.calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop(shutdown, relay).await;

    let claimed = store.outbox_claim("relay-next", 10, Duration::from_secs(30)).await.expect("claim");

    assert_eq!(claimed.len(), 1, "the next relay takes the event without waiting for a lease");
}
