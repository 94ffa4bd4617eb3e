//! The HTTP accept loop: serves a router on a bound listener with hyper,
//! limits how long a client may take to send its request headers, and
//! drains open connections on shutdown.
//!
//! `axum::serve` cannot limit the time to read request headers, so this
//! module drives hyper-util directly. It runs one task per connection and
//! serves HTTP/1.1 and HTTP/2 (prior knowledge) on the same port. Each
//! request gets the peer address as [`ConnectInfo`] for the per-IP rate
//! limit, and [`GracefulShutdown`] lets requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use epro_http::{AppState, Limit};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Wait after an accept error that is not about one connection, such as
/// running out of file descriptors, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connection settings of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Time a client has to send a request's headers, on a new connection
    /// and between requests on a keep-alive connection.
    pub header_read_timeout: Duration,
    /// How long [`serve`] waits for open connections after `stop`.
    pub drain_timeout: Duration,
}

/// The outcome of draining the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection closed after its last response.
    Complete,
    /// Connections were still open at the drain timeout; they are dropped
    /// with the runtime.
    TimedOut,
}

/// Accepts connections on `listener` and serves `app` on each until `stop`
/// is cancelled. Then closes the listener, signals every connection to
/// close after its request in flight, and waits up to
/// `options.drain_timeout` for them.
///
/// A connection that has not sent the headers of its first request within
/// `options.header_read_timeout` is closed, and `state` records it as a
/// rejection by [`Limit::HeaderTimeout`]. Later HTTP/1 requests on a
/// keep-alive connection get the same time from hyper; a connection idle
/// that long between requests is closed as a normal end and not counted.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    state: AppState,
    stop: CancellationToken,
) -> Drained {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();

    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = serve_connection(&builder, stream, peer, app.clone());
                let watched = graceful.watch(connection.connection);
                let served_request = connection.served_request;
                let state = state.clone();
                tokio::spawn(async move {
                    let first_request_deadline = options.header_read_timeout;
                    if let Err(error) = run_connection(watched, &served_request, first_request_deadline, &state).await {
                        on_connection_error(&state, error.as_ref(), served_request.load(Ordering::Relaxed));
                    }
                });
            }
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(error.message = %error, "Failed to accept a connection");
            }
            Err(error) => {
                tracing::error!(error.message = %error, "Failed to accept connections, pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }

    let address = listener.local_addr().map(|address| address.to_string()).unwrap_or_default();
    drop(listener);
    tracing::info!(address, open_connections = graceful.count(), "Listener closed, draining connections");
    tokio::select! {
        () = graceful.shutdown() => Drained::Complete,
        () = tokio::time::sleep(options.drain_timeout) => Drained::TimedOut,
    }
}

/// Runs one connection, and closes it when it has not delivered the headers
/// of a first request within `first_request_deadline` of being accepted.
///
/// hyper's own header timer covers HTTP/1 requests once hyper has chosen
/// the protocol. This deadline also covers the time before that choice (a
/// client that connects and sends nothing, or part of the HTTP/2 preface)
/// and HTTP/2 connections that never open a stream.
///
/// NOTE: an HTTP/2 connection that has opened a stream has no header or
/// idle timeout after that, because hyper (1.13) offers none for HTTP/2.
async fn run_connection(
    connection: impl Future<Output = Result<(), BoxError>>,
    served_request: &AtomicBool,
    first_request_deadline: Duration,
    state: &AppState,
) -> Result<(), BoxError> {
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = &mut connection => return result,
        () = tokio::time::sleep(first_request_deadline) => {}
    }
    if served_request.load(Ordering::Relaxed) {
        return connection.await;
    }
    // Dropping the connection closes its socket.
    state.record_rejection(Limit::HeaderTimeout);
    Ok(())
}

/// A connection being served, and whether it has started a request.
struct ServedConnection<C> {
    connection: C,
    served_request: Arc<AtomicBool>,
}

fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
) -> ServedConnection<impl GracefulConnection<Error = BoxError> + use<>> {
    // Replies are small and written whole, so Nagle's algorithm would only
    // delay them. Failing to set the option changes nothing else.
    let _ = stream.set_nodelay(true);

    let served_request = Arc::new(AtomicBool::new(false));
    let service = {
        let served_request = Arc::clone(&served_request);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            served_request.store(true, Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        })
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
    ServedConnection { connection, served_request }
}

/// Reports a connection that ended with an error. A header timeout before
/// the first request is an admission rejection. Anything else (resets,
/// malformed requests, idle keep-alive timeouts) is logged at debug level,
/// because clients cause it and the server cannot act on it.
fn on_connection_error(state: &AppState, error: &(dyn std::error::Error + 'static), served_request: bool) {
    let is_header_timeout = error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
    if is_header_timeout && !served_request {
        state.record_rejection(Limit::HeaderTimeout);
    } else {
        tracing::debug!(error.message = %error, "Connection ended with an error");
    }
}

/// Returns whether an accept error concerns only the one connection, which
/// the client may already have given up.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
