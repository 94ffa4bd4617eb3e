//! Webhook sink tests against a receiver started in the test on 127.0.0.1, which
//! checks every request with `verify_webhook_signature` as a real receiver would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use epro_outbox::{
    PublishError, SIGNATURE_HEADER, SignatureError, Sink, TIMESTAMP_HEADER, WebhookConfig, WebhookSink, message,
    verify_webhook_signature,
};
use epro_store::OutboxEvent;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

const SECRET: &str = "webhook-test-secret-5d1c";

/// Clock difference the receiver accepts, as a receiver in production would set it.
const TOLERANCE: Duration = Duration::from_secs(300);

/// Upper bound on one publish in these tests, far above the sink's own timeouts, so
/// that a sink that hangs fails the test instead of stalling it.
const PUBLISH_GUARD: Duration = Duration::from_secs(30);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    timestamp: String,
    signature: String,
    body: Bytes,
    verified: Result<(), SignatureError>,
}

#[derive(Clone)]
struct Receiver {
    /// Status the receiver responds with.
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Received>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let timestamp = header(TIMESTAMP_HEADER);
    let signature = header(SIGNATURE_HEADER);
    let verified = verify_webhook_signature(
        SECRET.as_bytes(),
        &timestamp,
        &signature,
        &body,
        OffsetDateTime::now_utc(),
        TOLERANCE,
    );
    let rejected = verified.is_err();
    receiver.requests.lock().expect("requests lock").push(Received { timestamp, signature, body, verified });

    if rejected {
        return StatusCode::UNAUTHORIZED;
    }
    StatusCode::from_u16(receiver.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Starts a receiver on 127.0.0.1 that responds `status` after verifying each request.
async fn start_receiver(status: StatusCode) -> (Receiver, SocketAddr, JoinHandle<()>) {
    let receiver =
        Receiver { status: Arc::new(AtomicU16::new(status.as_u16())), requests: Arc::new(Mutex::new(Vec::new())) };
    let router = Router::new().route("/events", post(receive)).with_state(receiver.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let address = listener.local_addr().expect("receiver address");
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("receiver serves");
    });
    (receiver, address, server)
}

fn sink_for(address: SocketAddr) -> WebhookSink {
    let config = WebhookConfig {
        timeout_milliseconds: 2_000,
        connect_timeout_milliseconds: 1_000,
        ..WebhookConfig::new(format!("http://{address}/events"), SECRET)
    };
    WebhookSink::new(config).expect("webhook sink")
}

fn events(count: usize) -> Vec<OutboxEvent> {
    (0..count)
        .map(|index| OutboxEvent {
            seq: index as i64 + 1,
            event_id: Uuid::now_v7(),
            event_type: if index % 2 == 0 { "submission.accepted" } else { "alert.raised" }.to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            trial_id: format!("TRIAL-{}", index % 3),
            patient_id: format!("P-{index:03}"),
            submission_id: Uuid::new_v4().to_string(),
            payload: r#"{"formId":"pain-diary","formVersion":"1.0.0"}"#.to_owned(),
            attempts: 0,
        })
        .collect()
}

async fn publish(sink: &WebhookSink, events: &[OutboxEvent]) -> Result<(), PublishError> {
    tokio::time::timeout(PUBLISH_GUARD, sink.publish(events)).await.expect("publish must not hang")
}

#[tokio::test]
async fn webhook_delivers_signed_batch() {
    let (receiver, address, server) = start_receiver(StatusCode::NO_CONTENT).await;
    let sink = sink_for(address);
    let events = events(5);

    let published = publish(&sink, &events).await;

    assert!(published.is_ok(), "{published:?}");
    let requests = receiver.requests.lock().expect("requests lock").clone();
    assert_eq!(requests.len(), 1, "one request per batch");
    let request = &requests[0];
    assert_eq!(request.verified, Ok(()), "signature must verify");
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    let received = body["events"].as_array().expect("events array");
    let expected: Vec<Value> = events.iter().map(message).collect();
    assert_eq!(received, &expected, "messages in seq order, in the wire format");
    server.abort();
}

#[tokio::test]
async fn webhook_maps_statuses_to_errors() {
    let cases = [
        (StatusCode::SERVICE_UNAVAILABLE, false),
        (StatusCode::INTERNAL_SERVER_ERROR, false),
        (StatusCode::TOO_MANY_REQUESTS, false),
        (StatusCode::REQUEST_TIMEOUT, false),
        (StatusCode::BAD_REQUEST, true),
        (StatusCode::UNPROCESSABLE_ENTITY, true),
    ];
    let (receiver, address, server) = start_receiver(StatusCode::OK).await;
    let sink = sink_for(address);
    let events = events(2);

    for (status, expect_rejected) in cases {
        receiver.status.store(status.as_u16(), Ordering::SeqCst);

        let error = publish(&sink, &events).await.expect_err("a non-2xx status must fail the publish");

        assert_eq!(error.is_rejected(), expect_rejected, "status {status}: {error}");
        assert!(error.to_string().contains(&status.as_u16().to_string()), "status {status} named in: {error}");
    }
    let requests = receiver.requests.lock().expect("requests lock").clone();
    assert_eq!(requests.len(), cases.len());
    assert!(requests.iter().all(|request| request.verified.is_ok()), "{requests:?}");
    server.abort();
}

#[tokio::test]
async fn webhook_wrong_secret_is_rejected() {
    let (receiver, address, server) = start_receiver(StatusCode::OK).await;
    let config = WebhookConfig {
        timeout_milliseconds: 2_000,
        ..WebhookConfig::new(format!("http://{address}/events"), "not-the-shared-secret")
    };
    let sink = WebhookSink::new(config).expect("webhook sink");

    let error = publish(&sink, &events(1)).await.expect_err("receiver responds 401");

    assert!(error.is_rejected(), "401 is a rejection: {error}");
    let requests = receiver.requests.lock().expect("requests lock").clone();
    assert_eq!(requests[0].verified, Err(SignatureError::SignatureMismatch));
    server.abort();
}

#[tokio::test]
async fn webhook_receiver_down_is_unavailable() {
    // Bind and drop a listener, so that the port is known to refuse connections.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let sink = sink_for(address);

    let error = publish(&sink, &events(1)).await.expect_err("nothing listens");

    assert!(matches!(error, PublishError::Unavailable(_)), "{error}");
    assert!(!error.to_string().contains(SECRET), "{error}");
}

#[tokio::test]
async fn webhook_silent_receiver_times_out() {
    // Accepts connections and never responds, like a hung receiver.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let silent = tokio::spawn(async move {
        let mut open_connections = Vec::new();
        while let Ok((stream, _peer)) = listener.accept().await {
            open_connections.push(stream);
        }
    });
    let config =
        WebhookConfig { timeout_milliseconds: 500, ..WebhookConfig::new(format!("http://{address}/events"), SECRET) };
    let sink = WebhookSink::new(config).expect("webhook sink");

    let error = publish(&sink, &events(1)).await.expect_err("no response");

    assert!(matches!(error, PublishError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    silent.abort();
}

#[tokio::test]
async fn webhook_request_fails_when_tampered_or_replayed() {
    let (receiver, address, server) = start_receiver(StatusCode::OK).await;
    let sink = sink_for(address);
    publish(&sink, &events(2)).await.expect("publish");
    let request = receiver.requests.lock().expect("requests lock")[0].clone();
    assert_eq!(request.verified, Ok(()));
    let mut tampered = request.body.to_vec();
    let position = tampered.iter().position(|&byte| byte == b'P').expect("a patient id in the body");
    tampered[position] = b'Q';
    let signed_at: i64 = request.timestamp.parse().expect("Unix seconds");
    let an_hour_later = OffsetDateTime::from_unix_timestamp(signed_at + 3_600).expect("timestamp");
    let now = OffsetDateTime::now_utc();

    let with_tampered_body =
        verify_webhook_signature(SECRET.as_bytes(), &request.timestamp, &request.signature, &tampered, now, TOLERANCE);
    let with_other_timestamp = verify_webhook_signature(
        SECRET.as_bytes(),
        &(signed_at - 1).to_string(),
        &request.signature,
        &request.body,
        now,
        TOLERANCE,
    );
    let replayed = verify_webhook_signature(
        SECRET.as_bytes(),
        &request.timestamp,
        &request.signature,
        &request.body,
        an_hour_later,
        TOLERANCE,
    );

    assert_eq!(with_tampered_body, Err(SignatureError::SignatureMismatch));
    assert_eq!(with_other_timestamp, Err(SignatureError::SignatureMismatch));
    assert_eq!(
        replayed,
        Err(SignatureError::TimestampOutsideTolerance { age_seconds: 3_600, tolerance_seconds: TOLERANCE.as_secs() })
    );
    server.abort();
}
