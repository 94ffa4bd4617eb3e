//! The HTTP ceiling of the epro benchmark: an axum server that reads the
//! body of `POST /api/collection/submit` and returns a fixed 200 JSON
//! reply without parsing, validating or storing anything.
//!
//! Its throughput bounds what any design built on axum and tokio can reach
//! on the same machine with the same load generator.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

const REPLY: &str =
    r#"{"status":"success","message":"Submission received.","submissionId":"00000000-0000-4000-8000-000000000000"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address: SocketAddr = match std::env::args().nth(1) {
        Some(text) => {
            text.parse().map_err(|error| std::io::Error::other(format!("invalid listen address {text:?}: {error}")))?
        }
        None => SocketAddr::from(([127, 0, 0, 1], 18083)),
    };

    let app = Router::new().route("/api/collection/submit", post(submit));
    let listener = tokio::net::TcpListener::bind(address).await?;
    eprintln!("ceiling listening on {}", listener.local_addr()?);

    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
}

/// Takes the whole body, as a real handler must before it can reply.
async fn submit(body: Bytes) -> impl IntoResponse {
    drop(body);
    ([(header::CONTENT_TYPE, "application/json")], REPLY)
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
