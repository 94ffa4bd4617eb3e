//! RabbitMQ sink tests against the broker named by `TEST_EPRO_AMQP_URL`, for example
//! `amqp://guest:guest@127.0.0.1:5672/%2f`. Without it they print one line and pass.
//!
//! Each test declares its own exchange and queue with a random suffix and deletes
//! them at the end. The outage test puts a TCP proxy, started in the test on
//! 127.0.0.1, between the sink and the broker.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use epro_outbox::{PublishError, RabbitMqConfig, RabbitMqSink, Sink, message};
use epro_store::OutboxEvent;
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Upper bound on one publish in these tests, far above the sink's own timeouts, so
/// that a sink that hangs fails the test instead of stalling it.
const PUBLISH_GUARD: Duration = Duration::from_secs(60);

fn amqp_url(test: &str) -> Option<String> {
    let url = std::env::var("TEST_EPRO_AMQP_URL").ok().filter(|url| !url.is_empty());
    if url.is_none() {
        println!("skipped {test}: TEST_EPRO_AMQP_URL is not set");
    }
    url
}

/// Exchange and queue names of one test.
struct Names {
    exchange: String,
    queue: String,
}

impl Names {
    fn new() -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        Names { exchange: format!("epro.test.{suffix}"), queue: format!("epro.test.{suffix}") }
    }
}

fn config(url: &str, names: &Names) -> RabbitMqConfig {
    RabbitMqConfig {
        exchange: names.exchange.clone(),
        queue: names.queue.clone(),
        connect_timeout_milliseconds: 1_000,
        publish_timeout_milliseconds: 2_000,
        ..RabbitMqConfig::new(url)
    }
}

fn events(count: usize) -> Vec<OutboxEvent> {
    (0..count)
        .map(|index| OutboxEvent {
            seq: index as i64 + 1,
            event_id: Uuid::now_v7(),
            event_type: if index % 3 == 2 { "alert.raised" } else { "submission.accepted" }.to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            trial_id: format!("TRIAL-{}", index % 2),
            patient_id: format!("P-{index:03}"),
            submission_id: Uuid::new_v4().to_string(),
            payload: r#"{"formId":"pain-diary","formVersion":"1.0.0"}"#.to_owned(),
            attempts: 0,
        })
        .collect()
}

async fn publish(sink: &RabbitMqSink, events: &[OutboxEvent]) -> Result<(), PublishError> {
    tokio::time::timeout(PUBLISH_GUARD, sink.publish(events)).await.expect("publish must not hang")
}

/// Opens the test's own connection, to read the queue and clean up.
async fn open_channel(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default()).await.expect("test connection");
    let channel = connection.create_channel().await.expect("test channel");
    (connection, channel)
}

/// Takes every message from the queue, acknowledging each on receipt.
async fn drain(channel: &Channel, queue: &str) -> Vec<lapin::message::Delivery> {
    let mut deliveries = Vec::new();
    // Bounded: the tests publish far fewer than this.
    for _ in 0..10_000 {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get from the test queue");
        match got {
            Some(message) => deliveries.push(message.delivery),
            None => break,
        }
    }
    deliveries
}

async fn delete_topology(channel: &Channel, names: &Names) {
    channel.queue_delete(names.queue.as_str().into(), QueueDeleteOptions::default()).await.expect("delete queue");
    channel
        .exchange_delete(names.exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_delivers_confirmed_events() {
    let Some(url) = amqp_url("rabbitmq_delivers_confirmed_events") else { return };
    let names = Names::new();
    let sink = RabbitMqSink::new(config(&url, &names)).expect("sink");
    let events = events(25);

    publish(&sink, &events[..10]).await.expect("first batch confirmed");
    publish(&sink, &events[10..]).await.expect("second batch confirmed");

    let (_connection, channel) = open_channel(&url).await;
    let deliveries = drain(&channel, &names.queue).await;
    assert_eq!(deliveries.len(), events.len(), "every confirmed event is in the queue");
    for (delivery, event) in deliveries.iter().zip(&events) {
        let properties = &delivery.properties;
        let body: Value = serde_json::from_slice(&delivery.data).expect("JSON body");
        assert_eq!(body, message(event), "body is the wire message, in seq order");
        assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
        assert_eq!(properties.message_id().as_ref().map(|id| id.as_str()), Some(event.event_id.to_string().as_str()));
        assert_eq!(properties.content_type().as_ref().map(|kind| kind.as_str()), Some("application/json"));
        assert_eq!(properties.kind().as_ref().map(|kind| kind.as_str()), Some(event.event_type.as_str()));
        assert_eq!(properties.timestamp(), &Some(event.occurred_at.unix_timestamp() as u64));
        assert_eq!(delivery.routing_key.as_str(), event.event_type, "routing key is the event type");
        assert_eq!(delivery.exchange.as_str(), names.exchange);
    }
    delete_topology(&channel, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_unroutable_event_is_rejected() {
    let Some(url) = amqp_url("rabbitmq_unroutable_event_is_rejected") else { return };
    let names = Names::new();
    let sink = RabbitMqSink::new(config(&url, &names)).expect("sink");
    let events = events(3);
    sink.connect().await.expect("connect and declare");
    let (_connection, channel) = open_channel(&url).await;
    // Without the queue, the exchange has no binding, so mandatory messages return.
    channel.queue_delete(names.queue.as_str().into(), QueueDeleteOptions::default()).await.expect("delete queue");

    let error = publish(&sink, &events).await.expect_err("unroutable messages are returned");

    assert!(error.is_rejected(), "{error}");
    let text = error.to_string();
    assert!(text.contains("rejected 3 of 3"), "{text}");
    assert!(text.contains("NO_ROUTE"), "{text}");
    delete_topology(&channel, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_broker_down_is_unavailable() {
    // Needs no broker: the port refuses connections.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let names = Names::new();
    let url = format!("amqp://epro:not-logged-pw@{address}/%2f");
    let sink = RabbitMqSink::new(config(&url, &names)).expect("sink builds while the broker is down");

    let connect = sink.connect().await.expect_err("nothing listens");
    let publish = publish(&sink, &events(1)).await.expect_err("nothing listens");

    for error in [connect, publish] {
        assert!(matches!(error, PublishError::Unavailable(_)), "{error}");
        let text = error.to_string();
        assert!(text.contains(&address.to_string()), "names the broker: {text}");
        assert!(!text.contains("not-logged-pw"), "password in error: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_outage_is_unavailable_then_recovers() {
    let Some(url) = amqp_url("rabbitmq_outage_is_unavailable_then_recovers") else { return };
    let names = Names::new();
    let broker = broker_address(&url);
    let proxy = Proxy::start(broker).await;
    let sink = RabbitMqSink::new(config(&with_address(&url, proxy.address), &names)).expect("sink");
    let events = events(12);

    publish(&sink, &events[..4]).await.expect("published before the outage");
    proxy.set_up(false);
    let during_open_connection = publish(&sink, &events[4..8]).await;
    let during_reconnect = publish(&sink, &events[4..8]).await;
    proxy.set_up(true);
    // The relay would retry the failed batch first, then go on.
    publish(&sink, &events[4..8]).await.expect("failed batch published after the outage");
    publish(&sink, &events[8..]).await.expect("published after the outage");

    for (error, case) in [(during_open_connection, "open connection"), (during_reconnect, "reconnect")] {
        let error = error.expect_err(case);
        assert!(matches!(error, PublishError::Unavailable(_)), "{case}: {error}");
        assert!(error.to_string().contains("timed out"), "{case}: {error}");
    }
    let (_connection, channel) = open_channel(&url).await;
    let deliveries = drain(&channel, &names.queue).await;
    let received: HashSet<String> = deliveries
        .iter()
        .filter_map(|delivery| delivery.properties.message_id().as_ref().map(|id| id.to_string()))
        .collect();
    let expected: HashSet<String> = events.iter().map(|event| event.event_id.to_string()).collect();
    assert_eq!(received, expected, "every event arrived, duplicates allowed");
    delete_topology(&channel, &names).await;
    proxy.stop();
}

/// Returns `host:port` of the broker in `url`, with 5672 when the URL has no port.
fn broker_address(url: &str) -> SocketAddr {
    let uri: lapin::uri::AMQPUri = url.parse().expect("TEST_EPRO_AMQP_URL is an AMQP URL");
    let host = if uri.authority.host == "localhost" { "127.0.0.1" } else { uri.authority.host.as_str() };
    format!("{host}:{}", uri.authority.port).parse().expect("TEST_EPRO_AMQP_URL names an IP address and port")
}

/// Returns `url` with its host and port replaced by `address`.
fn with_address(url: &str, address: SocketAddr) -> String {
    let authority_start = url.find("://").expect("URL has a scheme") + 3;
    let authority_end = url[authority_start..].find(['/', '?']).map_or(url.len(), |offset| authority_start + offset);
    let authority = &url[authority_start..authority_end];
    let user_info = authority.rsplit_once('@').map(|(user_info, _host)| format!("{user_info}@")).unwrap_or_default();
    format!("{}{user_info}{address}{}", &url[..authority_start], &url[authority_end..])
}

/// A TCP proxy on 127.0.0.1 that forwards to the broker while up. While down, it
/// stops forwarding on open connections and keeps new ones open without a response,
/// as a broker behind a broken network does. Coming back up closes those connections.
struct Proxy {
    address: SocketAddr,
    up: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(broker: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (up, _) = watch::channel(true);
        let up_for_accept = up.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _peer)) = listener.accept().await {
                tokio::spawn(forward(client, broker, up_for_accept.subscribe()));
            }
        });
        Proxy { address, up, accept }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    fn stop(self) {
        self.accept.abort();
    }
}

async fn forward(mut client: TcpStream, broker: SocketAddr, mut up: watch::Receiver<bool>) {
    if *up.borrow_and_update() {
        let Ok(mut upstream) = TcpStream::connect(broker).await else { return };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => return,
            _ = up.wait_for(|up| !*up) => {}
        }
        // Down: keep both sockets open and silent until the proxy is up again.
        let _ = up.wait_for(|up| *up).await;
        let _ = upstream.shutdown().await;
    } else {
        let _ = up.wait_for(|up| *up).await;
    }
    let _ = client.shutdown().await;
}
