//! Resilience of the real binary: overload, slow clients, graceful
//! shutdown, compressed bodies and rate limits, each against its own
//! `epro serve` process on 127.0.0.1 with a fresh SQLite file.
//!
//! Every test is bounded in requests and time (a few seconds of load at
//! most) and asserts outcomes, never speed: the benchmark measures speed.
//! Each test ends the process it started, by its PID.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::{Server, write_config};

const TOKEN: &str = "epro_s_d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";
const SUBMIT_PATH: &str = "/v1/trials/demo/forms/phq9/submissions";

/// A complete PHQ-9 answer set for the demo trial.
fn envelope(id: &str, patient: &str) -> Value {
    json!({
        "submissionId": id,
        "patientId": patient,
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": {
            "/44250-9": "LA6569-3", "/44255-8": "LA6568-5", "/44259-0": "LA6570-1",
            "/44254-1": "LA6568-5", "/44251-7": "LA6571-9", "/44258-2": "LA6568-5",
            "/44252-5": "LA6569-3", "/44253-3": "LA6568-5", "/44260-8": "LA6568-5"
        }
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One HTTP reply, read completely.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        Reply { status, retry_after, body }
    }

    /// Returns the `code` of a JSON error body, or "" when there is none.
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|body| body["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Checks that `Retry-After` is a whole number of seconds, at least 1.
    fn has_retry_after(&self) -> bool {
        self.retry_after.as_deref().and_then(|value| value.parse::<u64>().ok()).is_some_and(|seconds| seconds >= 1)
    }
}

async fn submit(client: &reqwest::Client, address: &str, id: &str, patient: &str) -> reqwest::Result<Reply> {
    let response = client.post(format!("{address}{SUBMIT_PATH}")).json(&envelope(id, patient)).send().await?;
    Ok(Reply::read(response).await)
}

async fn get(client: &reqwest::Client, url: &str) -> Reply {
    Reply::read(client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url} failed: {e}"))).await
}

fn stored_ids(database: &Path) -> HashSet<String> {
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut statement = connection.prepare("SELECT submission_id FROM submissions").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

fn event_ids(database: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut statement = connection.prepare("SELECT submission_id FROM outbox_events").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Checks that every acknowledged id is stored with exactly one outbox
/// event, and that no rejected id is stored.
fn assert_stored_exactly(database: &Path, acknowledged: &[String], rejected: &[String]) {
    let stored = stored_ids(database);
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged with 201 but not stored: {missing:?}");
    let stored_anyway: Vec<&String> = rejected.iter().filter(|id| stored.contains(*id)).collect();
    assert!(stored_anyway.is_empty(), "rejected but stored: {stored_anyway:?}");

    let events = event_ids(database);
    for id in acknowledged {
        let count = events.iter().filter(|event| *event == id).count();
        assert_eq!(count, 1, "outbox events of acknowledged submission {id}");
    }
}

/// Sums the samples of a Prometheus counter whose labels include `label`,
/// such as `limit="concurrency"`.
fn metric_value(exposition: &str, name: &str, label: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Returns an address on 127.0.0.1 that was free a moment ago.
fn free_local_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// What one overload client saw.
#[derive(Default)]
struct OverloadResult {
    acknowledged: Vec<String>,
    rejected: Vec<String>,
    /// Replies other than 201 and a well-formed 503 `overloaded`.
    unexpected: Vec<String>,
    transport_errors: Vec<String>,
}

/// With room for 4 requests at a time, 64 clients get 201 or an immediate
/// 503 `overloaded` with `Retry-After`. The process stays up and small, and
/// `/metrics` counts each rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_excess_with_503() {
    const CLIENTS: usize = 64;
    const LOAD_TIME: Duration = Duration::from_secs(3);
    const MAX_REQUESTS: usize = 30_000;
    const MAX_RSS_BYTES: u64 = 200 * 1024 * 1024;

    let dir = tempfile::tempdir().unwrap();
    let metrics_address = free_local_address();
    let config = write_config(
        dir.path(),
        TOKEN,
        "max_concurrent_requests = 4",
        &format!("metrics_listen = \"{metrics_address}\""),
    );
    let mut server = Server::start(&config);

    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let result = Arc::new(Mutex::new(OverloadResult::default()));
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|worker| {
            let (client, address, result, sent) =
                (client.clone(), server.address.clone(), result.clone(), sent.clone());
            tokio::spawn(async move {
                let patient = format!("P-{worker:04}");
                while started.elapsed() < LOAD_TIME && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS {
                    let id = new_id();
                    let reply = submit(&client, &address, &id, &patient).await;
                    let mut result = result.lock().unwrap();
                    match reply {
                        Ok(reply) if reply.status == 201 => result.acknowledged.push(id),
                        Ok(reply) if reply.status == 503 && reply.code() == "overloaded" && reply.has_retry_after() => {
                            result.rejected.push(id)
                        }
                        Ok(reply) => result.unexpected.push(format!("{reply:?}")),
                        Err(error) => result.transport_errors.push(error.to_string()),
                    }
                }
            })
        })
        .collect();

    // While the load runs, the probes and the metrics listener still respond
    // and memory stays bounded.
    let probe = reqwest::Client::new();
    let mut max_rss = 0;
    let mut probes = 0;
    while started.elapsed() < LOAD_TIME {
        let health = get(&probe, &format!("{}/healthz", server.address)).await;
        assert_eq!(health.status, 200, "/healthz under overload: {health:?}");
        let side_health = get(&probe, &format!("http://{metrics_address}/healthz")).await;
        assert_eq!(side_health.status, 200, "/healthz on the metrics listener: {side_health:?}");
        max_rss = max_rss.max(server.rss_bytes());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let result = Arc::try_unwrap(result).ok().unwrap().into_inner().unwrap();

    assert!(probes > 0, "the probes ran during the load");
    let first_unexpected = &result.unexpected[..result.unexpected.len().min(5)];
    assert!(
        result.unexpected.is_empty(),
        "{} replies other than 201 or 503 overloaded, the first: {first_unexpected:?}",
        result.unexpected.len()
    );
    let first_errors = &result.transport_errors[..result.transport_errors.len().min(5)];
    assert!(
        result.transport_errors.is_empty(),
        "{} requests without a reply, the first: {first_errors:?}",
        result.transport_errors.len()
    );
    assert!(!result.acknowledged.is_empty(), "no request was accepted");
    assert!(!result.rejected.is_empty(), "no request was shed with 503");
    assert!(max_rss < MAX_RSS_BYTES, "resident set reached {max_rss} bytes");

    let metrics = get(&probe, &format!("{}/metrics", server.address)).await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    let counted = metric_value(&metrics.body, "admission_rejections_total", "limit=\"concurrency\"");
    assert_eq!(counted, result.rejected.len() as f64, "admission_rejections_total{{limit=\"concurrency\"}}");
    let side_metrics = get(&probe, &format!("http://{metrics_address}/metrics")).await;
    assert_eq!(side_metrics.status, 200, "{side_metrics:?}");
    let side_counted = metric_value(&side_metrics.body, "admission_rejections_total", "limit=\"concurrency\"");
    assert_eq!(side_counted, counted, "both listeners expose the same counters");

    server.terminate();
    let status = server.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_stored_exactly(&dir.path().join("var/epro.db"), &result.acknowledged, &result.rejected);
}

/// What a raw TCP client should send before it stalls.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// Nothing at all after connecting.
    Silent,
    /// Part of the request line.
    RequestLine,
    /// The request line and part of the headers.
    Headers,
    /// Header bytes one at a time, never finishing.
    Drip,
    /// The start of the HTTP/2 connection preface, which a server that
    /// also speaks HTTP/2 must read further before it can tell the version.
    Http2Preface,
}

/// Opens a connection that stalls in the way `stall` describes, and returns
/// whether the server closed it (EOF or reset) within `limit`.
async fn server_closes_stalled(socket: &str, stall: Stall, limit: Duration) -> bool {
    let mut stream = TcpStream::connect(socket).await.unwrap();
    let partial: &[u8] = match stall {
        Stall::Silent => b"",
        Stall::RequestLine => b"POST /v1/trials/demo/fo",
        Stall::Http2Preface => b"PRI * HTTP/2.0\r\n",
        Stall::Headers | Stall::Drip => {
            b"POST /v1/trials/demo/forms/phq9/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
        }
    };
    stream.write_all(partial).await.unwrap();

    let (mut reader, mut writer) = stream.into_split();
    let closed = async move {
        // EOF (perhaps after a reply such as 408) and a reset both mean the
        // server let the connection go.
        let mut discarded = Vec::new();
        let _ = reader.read_to_end(&mut discarded).await;
    };
    let drip = async move {
        if matches!(stall, Stall::Drip) {
            while writer.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        std::future::pending::<()>().await;
    };
    let outcome = tokio::time::timeout(limit, async {
        tokio::select! {
            () = closed => {}
            () = drip => {}
        }
    });
    outcome.await.is_ok()
}

/// Connections that never finish the headers of a first request are closed
/// once `header_read_timeout_seconds` passes, each is counted in
/// `/metrics`, and they do not keep a fresh client from submitting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_disconnected() {
    const CONNECTIONS: usize = 50;
    const CLOSE_LIMIT: Duration = Duration::from_secs(6);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "header_read_timeout_seconds = 1", "");
    let server = Server::start(&config);

    let stalls = [Stall::Headers, Stall::RequestLine, Stall::Drip, Stall::Silent, Stall::Http2Preface];
    let stalled: Vec<_> = (0..CONNECTIONS)
        .map(|index| {
            let stall = stalls[index % stalls.len()];
            let socket = server.socket.clone();
            tokio::spawn(async move { (stall, server_closes_stalled(&socket, stall, CLOSE_LIMIT).await) })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = new_id();
    let reply = submit(&reqwest::Client::new(), &server.address, &id, "P-0001").await.unwrap();
    assert_eq!(reply.status, 201, "a fresh client while {CONNECTIONS} connections stall: {reply:?}");

    let mut still_open: BTreeMap<String, usize> = BTreeMap::new();
    for connection in stalled {
        let (stall, closed) = connection.await.unwrap();
        if !closed {
            *still_open.entry(format!("{stall:?}")).or_default() += 1;
        }
    }
    assert!(still_open.is_empty(), "connections still open after {CLOSE_LIMIT:?}, by kind: {still_open:?}");
    assert!(stored_ids(&dir.path().join("var/epro.db")).contains(&id), "the fresh submission is stored");

    // The server may count a closed connection just after the client sees
    // the close, so wait a little for the counter to catch up.
    let probe = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let counted = loop {
        let metrics = get(&probe, &format!("{}/metrics", server.address)).await;
        let counted = metric_value(&metrics.body, "admission_rejections_total", "limit=\"header_timeout\"");
        if counted >= CONNECTIONS as f64 || Instant::now() >= deadline {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counted, CONNECTIONS as f64, "admission_rejections_total{{limit=\"header_timeout\"}}");
}

/// Reads one HTTP/1.1 response with a `Content-Length` body from a raw
/// stream. Returns `None` when the connection closes or `limit` passes first.
async fn read_raw_response(stream: &mut TcpStream, limit: Duration) -> Option<(u16, String)> {
    let read = async {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = &text[..end];
                let length = head
                    .lines()
                    .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                    return Some((status, body));
                }
            }
            let count = stream.read(&mut chunk).await.ok()?;
            if count == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..count]);
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// A client that sends its headers but stalls in the body gets 503
/// `timed_out` after `request_timeout_seconds`, with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_times_out_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "request_timeout_seconds = 1", "");
    let server = Server::start(&config);
    let id = new_id();
    let body = serde_json::to_vec(&envelope(&id, "P-0001")).unwrap();

    let mut stream = TcpStream::connect(&server.socket).await.unwrap();
    let head = format!(
        "POST {SUBMIT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept-Language: en\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();

    let reply = read_raw_response(&mut stream, Duration::from_secs(6)).await;

    let (status, text) = reply.expect("no reply within 6 s to a stalled body");
    assert_eq!(status, 503, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}"));
    assert_eq!(error["code"], "timed_out", "{text}");
    assert!(error["message"].as_str().is_some_and(|message| !message.is_empty()), "{text}");
    drop(stream);
    assert!(!stored_ids(&dir.path().join("var/epro.db")).contains(&id), "a timed-out submission is not stored");
}

/// What the light load saw during shutdown.
#[derive(Default)]
struct ShutdownLoad {
    acknowledged: Vec<String>,
    /// Acknowledged requests that were sent after `/readyz` turned 503.
    acknowledged_while_draining: usize,
    rejected: Vec<String>,
    unexpected: Vec<String>,
}

/// On SIGTERM `/readyz` turns 503 while submissions still succeed for
/// `shutdown_readiness_delay_seconds`. Then the process drains and exits 0
/// with every acknowledged submission stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    const WORKERS: usize = 4;
    const MAX_LOAD_TIME: Duration = Duration::from_secs(10);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "shutdown_readiness_delay_seconds = 2", "");
    let mut server = Server::start(&config);

    let draining = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Mutex::new(ShutdownLoad::default()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (client, address, draining, load) =
                (client.clone(), server.address.clone(), draining.clone(), load.clone());
            tokio::spawn(async move {
                let patient = format!("P-{worker:04}");
                while started.elapsed() < MAX_LOAD_TIME {
                    let sent_while_draining = draining.load(Ordering::SeqCst);
                    let id = new_id();
                    let reply = submit(&client, &address, &id, &patient).await;
                    {
                        let mut load = load.lock().unwrap();
                        match reply {
                            Ok(reply) if reply.status == 201 => {
                                load.acknowledged.push(id);
                                if sent_while_draining {
                                    load.acknowledged_while_draining += 1;
                                }
                            }
                            Ok(reply) if reply.status == 503 && reply.code() == "shutting_down" => {
                                load.rejected.push(id)
                            }
                            Ok(reply) => load.unexpected.push(format!("{reply:?}")),
                            // The listener has closed: the load is over.
                            Err(_) => break,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();

    // Each probe uses a new connection, as a load balancer's health check does.
    let deadline = Instant::now() + Duration::from_secs(2);
    let readiness = loop {
        let probe = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let reply = get(&probe, &format!("{}/readyz", server.address)).await;
        if reply.status != 200 || Instant::now() >= deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    draining.store(true, Ordering::SeqCst);
    assert_eq!(readiness.status, 503, "/readyz after SIGTERM: {readiness:?}");
    assert_eq!(readiness.code(), "shutting_down", "{readiness:?}");

    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let late_id = new_id();
    let late =
        submit(&fresh, &server.address, &late_id, "P-0100").await.expect("the listener accepts during the delay");
    assert_eq!(late.status, 201, "a new connection during the readiness delay: {late:?}");

    let status = server.wait_exit(Duration::from_secs(30)).await;
    for worker in workers {
        worker.await.unwrap();
    }
    let load = Arc::try_unwrap(load).ok().unwrap().into_inner().unwrap();

    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
    assert!(load.unexpected.is_empty(), "replies other than 201 or 503 shutting_down: {:?}", load.unexpected);
    assert!(load.acknowledged_while_draining > 0, "no request sent after /readyz turned 503 succeeded");
    let mut acknowledged = load.acknowledged;
    acknowledged.push(late_id);
    assert_stored_exactly(&dir.path().join("var/epro.db"), &acknowledged, &load.rejected);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn submit_gzip(address: &str, body: Vec<u8>) -> Reply {
    let response = reqwest::Client::new()
        .post(format!("{address}{SUBMIT_PATH}"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("accept-language", "en")
        .body(body)
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

/// A gzip-encoded body is decompressed and stored as if sent plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_body_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "", "");
    let server = Server::start(&config);
    let id = new_id();
    let sent = envelope(&id, "P-0001");

    let reply = submit_gzip(&server.address, gzip(&serde_json::to_vec(&sent).unwrap())).await;

    assert_eq!(reply.status, 201, "{reply:?}");
    let client = reqwest::Client::new();
    let stored = client.get(format!("{}/v1/submissions/{id}", server.address)).bearer_auth(TOKEN).send().await.unwrap();
    let stored = Reply::read(stored).await;
    assert_eq!(stored.status, 200, "{stored:?}");
    let stored: Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(stored["received"], sent["answers"], "the answers are stored as sent, decompressed");
}

/// A few kilobytes that inflate past `http.max_body_bytes` get 413: the
/// limit counts decompressed bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_gets_413() {
    const INFLATED_BYTES: usize = 8 * 1024 * 1024;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "max_body_bytes = 1048576", "");
    let server = Server::start(&config);
    let id = new_id();
    let mut bomb = envelope(&id, "P-0001");
    bomb["answers"]["/44250-9"] = json!("a".repeat(INFLATED_BYTES));
    let compressed = gzip(&serde_json::to_vec(&bomb).unwrap());
    assert!(compressed.len() < 64 * 1024, "the bomb is small on the wire: {} bytes", compressed.len());

    let reply = submit_gzip(&server.address, compressed).await;

    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.code(), "payload_too_large", "{reply:?}");
    assert!(!stored_ids(&dir.path().join("var/epro.db")).contains(&id), "the bomb is not stored");
    let health = get(&reqwest::Client::new(), &format!("{}/healthz", server.address)).await;
    assert_eq!(health.status, 200, "the server survives the bomb");
}

/// A body that claims gzip but is not a valid gzip stream gets 400
/// `invalid_compressed_body`, not a 500, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_gzip_gets_400() {
    /// Length of the gzip header `flate2` writes without a file name.
    const GZIP_HEADER_BYTES: usize = 10;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "", "");
    let server = Server::start(&config);
    let id = new_id();
    let plain = serde_json::to_vec(&envelope(&id, "P-0001")).unwrap();
    let compressed = gzip(&plain);
    // 0xFF as the first deflate byte sets block type 3, which RFC 1951
    // reserves as an error.
    let mut invalid_block = compressed.clone();
    invalid_block[GZIP_HEADER_BYTES] = 0xFF;
    let cases = [
        ("cut in half", compressed[..compressed.len() / 2].to_vec()),
        ("invalid deflate block", invalid_block),
        ("plain JSON", plain),
    ];

    for (case, body) in cases {
        let reply = submit_gzip(&server.address, body).await;

        assert_eq!(reply.status, 400, "{case}: {reply:?}");
        assert_eq!(reply.code(), "invalid_compressed_body", "{case}: {reply:?}");
    }
    assert!(!stored_ids(&dir.path().join("var/epro.db")).contains(&id), "nothing is stored");
}

/// With 1 request a second and a burst of 2 per IP, a quick series from one
/// client gets 429 `rate_limited` with `Retry-After` after the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_rate_limit_rejects_after_burst() {
    const MAX_REQUESTS: usize = 20;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "rate_limit_per_ip_per_second = 1\nrate_limit_per_ip_burst = 2", "");
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    let started = Instant::now();
    let mut replies = Vec::new();
    for index in 0..MAX_REQUESTS {
        let id = new_id();
        let reply = submit(&client, &server.address, &id, &format!("P-{index:04}")).await.unwrap();
        let limited = reply.status == 429;
        replies.push((id, reply));
        if limited && replies.len() > 3 {
            break;
        }
    }
    let elapsed = started.elapsed();

    assert_eq!(replies[0].1.status, 201, "first of the burst: {:?}", replies[0].1);
    assert_eq!(replies[1].1.status, 201, "second of the burst: {:?}", replies[1].1);
    let (accepted, limited): (Vec<_>, Vec<_>) = replies.iter().partition(|(_, reply)| reply.status == 201);
    assert!(!limited.is_empty(), "no 429 in {} requests", replies.len());
    for (_, reply) in &limited {
        assert_eq!(reply.status, 429, "{reply:?}");
        assert_eq!(reply.code(), "rate_limited", "{reply:?}");
        assert!(reply.has_retry_after(), "429 without a valid Retry-After: {reply:?}");
    }
    // The bucket has room for 2 requests and refills 1 a second.
    let allowed = 2 + elapsed.as_secs() as usize + 1;
    assert!(accepted.len() <= allowed, "{} accepted in {elapsed:?}", accepted.len());

    let acknowledged: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    let rejected: Vec<String> = limited.iter().map(|(id, _)| id.clone()).collect();
    assert_stored_exactly(&dir.path().join("var/epro.db"), &acknowledged, &rejected);
}

/// With 3 submissions a minute per patient, one patient's fourth quick
/// submission gets 429 while another patient still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_rate_limit_spares_other_patients() {
    const SUBMISSIONS: usize = 6;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "rate_limit_per_patient_per_minute = 3", "");
    let server = Server::start(&config);
    let client = reqwest::Client::new();

    let mut replies = Vec::new();
    for _ in 0..SUBMISSIONS {
        let id = new_id();
        let reply = submit(&client, &server.address, &id, "P-0001").await.unwrap();
        replies.push((id, reply));
    }
    let other_id = new_id();
    let other = submit(&client, &server.address, &other_id, "P-0002").await.unwrap();

    assert_eq!(replies[0].1.status, 201, "first submission: {:?}", replies[0].1);
    let (accepted, limited): (Vec<_>, Vec<_>) = replies.iter().partition(|(_, reply)| reply.status == 201);
    assert!(accepted.len() <= 3, "{} of one patient's submissions accepted within a minute", accepted.len());
    for (_, reply) in &limited {
        assert_eq!(reply.status, 429, "{reply:?}");
        assert_eq!(reply.code(), "rate_limited", "{reply:?}");
        assert!(reply.has_retry_after(), "429 without a valid Retry-After: {reply:?}");
    }
    assert_eq!(other.status, 201, "another patient from the same address: {other:?}");

    let mut acknowledged: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    acknowledged.push(other_id);
    let rejected: Vec<String> = limited.iter().map(|(id, _)| id.clone()).collect();
    assert_stored_exactly(&dir.path().join("var/epro.db"), &acknowledged, &rejected);
}
