//! The real binary publishing through real brokers while they go away:
//! every submission is accepted during the outage and every event arrives
//! once the broker is back, duplicates only as at-least-once allows and
//! always with the same event id. Also the dead-letter path end to end: a
//! receiver that refuses events, the operator API and `epro outbox replay`.
//!
//! Brokers are the shared RabbitMQ (`TEST_EPRO_AMQP_URL`) behind a TCP proxy
//! the test cuts, and webhook receivers the test runs on 127.0.0.1. Loads
//! are bounded in count (5,000 submissions, 32 at a time).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

mod support;

use support::proxy::Proxy;
use support::receiver::Receiver;
use support::{Server, phq9_envelope, write_backend_config};

const SUBMISSIONS: usize = 5_000;
const CONCURRENCY: usize = 32;
const OPERATOR_TOKEN: &str = support::BACKEND_TOKEN;

/// Submits `count` new PHQ-9 sets, `CONCURRENCY` at a time, and returns the
/// id of each. Panics on any status but 201: during a broker outage nothing
/// may be refused.
async fn submit_many(address: &str, count: usize) -> Vec<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let ids: Vec<String> = (0..count).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let statuses: Vec<(String, u16)> = futures::stream::iter(ids.iter().cloned().enumerate())
        .map(|(index, id)| {
            let client = client.clone();
            let url = format!("{address}/v1/trials/demo/forms/phq9/submissions");
            async move {
                let reply = client.post(url).json(&phq9_envelope(&id, &format!("P-{:04}", index % 500))).send().await;
                (id, reply.map(|reply| reply.status().as_u16()).unwrap_or(0))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let refused: Vec<_> = statuses.iter().filter(|(_, status)| *status != 201).collect();
    assert!(refused.is_empty(), "{} of {count} submissions not accepted, first: {:?}", refused.len(), refused.first());
    ids
}

fn amqp_upstream(url: &str) -> SocketAddr {
    let without_scheme = url.strip_prefix("amqp://").expect("TEST_EPRO_AMQP_URL starts with amqp://");
    let host_port = without_scheme.rsplit('@').next().unwrap().split('/').next().unwrap();
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5672") };
    host_port.parse().expect("TEST_EPRO_AMQP_URL names 127.0.0.1:PORT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_outage_loses_no_event() {
    let Ok(amqp_url) = std::env::var("TEST_EPRO_AMQP_URL") else {
        eprintln!("skipped: TEST_EPRO_AMQP_URL is not set");
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (exchange, queue) = (format!("epro.test.{suffix}"), format!("epro.test.{suffix}"));
    let proxy = Proxy::start(amqp_upstream(&amqp_url)).await;
    let proxied_url = amqp_url.replacen(&amqp_upstream(&amqp_url).to_string(), &proxy.address.to_string(), 1);
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        r#"{{ type = "rabbitmq", url = "{proxied_url}", exchange = "{exchange}", queue = "{queue}", publish_timeout_milliseconds = 2000, connect_timeout_milliseconds = 2000 }}"#
    );
    let config = write_backend_config(dir.path(), "sqlite://var/epro.db", &sink, "");
    let server = Server::start(&config);

    // The broker goes away before the load and stays away during all of it.
    proxy.cut();
    let acknowledged = submit_many(&server.address, SUBMISSIONS).await;
    let pending_during_outage = pending_events(dir.path());
    proxy.restore().await;

    let deadline = Instant::now() + Duration::from_secs(120);
    while pending_events(dir.path()) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} events undelivered 120 s after the broker came back",
            pending_events(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);

    let connection =
        Connection::connect(&amqp_url, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("open a channel");
    let mut by_event: HashMap<String, Value> = HashMap::new();
    let mut deliveries = 0;
    while let Some(message) =
        channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("basic.get")
    {
        deliveries += 1;
        let body: Value = serde_json::from_slice(&message.delivery.data).expect("a JSON message");
        let event_id = body["eventId"].as_str().expect("eventId").to_owned();
        if let Some(earlier) = by_event.insert(event_id.clone(), body.clone()) {
            assert_eq!(earlier, body, "a duplicate of {event_id} differs from the first copy");
        }
        assert!(deliveries <= 2 * SUBMISSIONS + 100, "far more deliveries than events");
    }
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.expect("delete queue");
    channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await.expect("delete exchange");

    let accepted: HashSet<&str> = by_event
        .values()
        .filter(|message| message["type"] == "submission.accepted")
        .map(|message| message["submissionId"].as_str().unwrap())
        .collect();
    let missing: Vec<_> = acknowledged.iter().filter(|id| !accepted.contains(id.as_str())).collect();
    assert!(pending_during_outage > 0, "the outage held events back");
    assert_eq!(missing.len(), 0, "acknowledged but never published: {:?}", &missing[..missing.len().min(5)]);
    assert_eq!(accepted.len(), SUBMISSIONS);
    eprintln!("{SUBMISSIONS} submissions, {} distinct events, {deliveries} deliveries", by_event.len());
}

fn pending_events(dir: &std::path::Path) -> i64 {
    let connection = rusqlite::Connection::open(dir.join("var/epro.db")).unwrap();
    connection.query_row("SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL", [], |row| row.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_dead_letter_and_replay() {
    const SECRET: &str = "webhook-test-secret-0123456789";
    let receiver = Receiver::start(SECRET).await;
    receiver.status.store(422, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let sink = receiver.sink(SECRET);
    let config = write_backend_config(dir.path(), "sqlite://var/epro.db", &sink, "dead_letter_after_rejections = 2");
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    let acknowledged = submit_many(&server.address, 3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let reply: Value = client
            .get(format!("{}/v1/outbox/dead-letters", server.address))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if reply["events"].as_array().is_some_and(|events| events.len() == 3) {
            break reply;
        }
        assert!(Instant::now() < deadline, "events not dead-lettered within 30 s: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dead_ids: HashSet<String> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["eventId"].as_str().unwrap().to_owned())
        .collect();
    for event in listed["events"].as_array().unwrap() {
        assert_eq!(event["rejections"], 2, "{event}");
        assert!(event["lastError"].as_str().is_some_and(|error| error.contains("422")), "{event}");
    }
    assert!(receiver.events.lock().unwrap().is_empty(), "a refused event was recorded as received");

    receiver.status.store(200, Ordering::SeqCst);
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_epro"))
        .args(["outbox", "replay", "--config"])
        .arg(&config)
        .args(["--dead-letters", "--reason", "receiver fixed"])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    let printed: Value = serde_json::from_slice(&replay.stdout).expect("replay prints JSON");
    assert_eq!(printed["replayed"], 3);

    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.events.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "replayed events not delivered within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
    let received: HashSet<String> =
        receiver.events.lock().unwrap().iter().map(|event| event["eventId"].as_str().unwrap().to_owned()).collect();
    let submissions: HashSet<String> = receiver
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|event| event["submissionId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received, dead_ids, "the replay sends the same event ids");
    assert_eq!(submissions, acknowledged.into_iter().collect::<HashSet<_>>());
    let audit: i64 = rusqlite::Connection::open(dir.path().join("var/epro.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM audit_events WHERE action = 'outbox.replayed' AND reason = 'receiver fixed'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(audit, 3, "one audit row per replayed event");
}
