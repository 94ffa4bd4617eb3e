//! A webhook receiver on 127.0.0.1 for tests of the webhook sink: it checks
//! each request's signature like a real receiver, replies with the status
//! the test sets, and keeps the events of every request it accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A running receiver at `http://{address}/hook`.
pub struct Receiver {
    pub address: SocketAddr,
    /// The status of the next replies; 200 at start. A request with a bad
    /// signature gets 401 whatever this is.
    pub status: Arc<AtomicU16>,
    /// Every event of every accepted request, in arrival order, duplicates
    /// included.
    pub events: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// Starts a receiver that verifies signatures made with `secret`.
    pub async fn start(secret: &'static str) -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let events = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let (status, events) = (Arc::clone(&status), Arc::clone(&events));
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let header = |name: &str| {
                        headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
                    };
                    let verified = epro_outbox::verify_webhook_signature(
                        secret.as_bytes(),
                        &header(epro_outbox::TIMESTAMP_HEADER),
                        &header(epro_outbox::SIGNATURE_HEADER),
                        &body,
                        time::OffsetDateTime::now_utc(),
                        Duration::from_secs(300),
                    );
                    if verified.is_err() {
                        return axum::http::StatusCode::UNAUTHORIZED;
                    }
                    let code = axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    if code.is_success() {
                        let batch: Value = serde_json::from_slice(&body).unwrap();
                        events.lock().unwrap().extend(batch["events"].as_array().unwrap().iter().cloned());
                    }
                    code
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { address, status, events }
    }

    /// Returns the sink table for the configuration: `{ type = "webhook", ... }`.
    pub fn sink(&self, secret: &str) -> String {
        format!(r#"{{ type = "webhook", url = "http://{}/hook", secret = "{secret}" }}"#, self.address)
    }
}
