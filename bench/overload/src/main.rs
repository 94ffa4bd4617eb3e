//! The overload probe of the epro benchmark.
//!
//! wrk reports one latency distribution for every reply, so under overload the
//! fast 503s of load shedding hide the latency of the requests the server
//! admitted. This probe keeps them apart. CONNECTIONS closed-loop clients send
//! the benchmark's seed-endpoint submission for SECONDS, with a unique patient
//! and idempotency key each time. Then it prints one line for `bench/run` with
//! the count and the p50 and p99 latency of the 2xx replies, of the 503
//! replies and of everything else.
//!
//! Usage: `epro-bench-overload HOST:PORT CONNECTIONS SECONDS RUN_TAG COMPLETED_AT`

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Latencies in microseconds by reply class.
#[derive(Default)]
struct Samples {
    admitted: Vec<u64>,
    shed: Vec<u64>,
    other: Vec<u64>,
    connect_errors: u64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, address, connections, seconds, run_tag, completed_at] = args.as_slice() else {
        eprintln!("usage: epro-bench-overload HOST:PORT CONNECTIONS SECONDS RUN_TAG COMPLETED_AT");
        std::process::exit(2);
    };
    let connections: usize = connections.parse().expect("CONNECTIONS is a number");
    let deadline = Instant::now() + Duration::from_secs(seconds.parse().expect("SECONDS is a number"));

    let mut clients = Vec::with_capacity(connections);
    for client in 0..connections {
        let (address, run_tag, completed_at) = (address.clone(), run_tag.clone(), completed_at.clone());
        clients.push(tokio::spawn(async move { run_client(&address, client, deadline, &run_tag, &completed_at).await }));
    }
    let mut all = Samples::default();
    for client in clients {
        let samples = client.await.expect("client task");
        all.admitted.extend(samples.admitted);
        all.shed.extend(samples.shed);
        all.other.extend(samples.other);
        all.connect_errors += samples.connect_errors;
    }

    let (admitted_p50, admitted_p99) = percentiles(&mut all.admitted);
    let (shed_p50, shed_p99) = percentiles(&mut all.shed);
    let (_, other_p99) = percentiles(&mut all.other);
    println!(
        "OVERLOAD_RESULT admitted={} admitted_p50_us={admitted_p50} admitted_p99_us={admitted_p99} shed={} \
         shed_p50_us={shed_p50} shed_p99_us={shed_p99} other={} other_p99_us={other_p99} connect_errors={}",
        all.admitted.len(),
        all.shed.len(),
        all.other.len(),
        all.connect_errors
    );
}

/// Sends one request after the other until `deadline` on a keep-alive
/// connection, reopened when the server closes it, and returns the latencies.
async fn run_client(address: &str, client: usize, deadline: Instant, run_tag: &str, completed_at: &str) -> Samples {
    let mut samples = Samples::default();
    let mut counter = 0u64;
    while Instant::now() < deadline {
        let Ok(stream) = TcpStream::connect(address).await else {
            samples.connect_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, connection)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
            samples.connect_errors += 1;
            continue;
        };
        tokio::spawn(connection);

        while Instant::now() < deadline {
            counter += 1;
            let request = submission(address, client, counter, run_tag, completed_at);
            let started = Instant::now();
            let Ok(response) = sender.send_request(request).await else { break };
            let status = response.status().as_u16();
            let complete = response.into_body().collect().await.is_ok();
            let micros = started.elapsed().as_micros() as u64;
            match status {
                200..=299 => samples.admitted.push(micros),
                503 => samples.shed.push(micros),
                _ => samples.other.push(micros),
            }
            if !complete || sender.ready().await.is_err() {
                break;
            }
        }
    }
    samples
}

/// Builds the benchmark's request: the seed endpoint with a PHQ-9 response, like
/// `bench/wrk/submit.lua`, with this client's own patient and key.
fn submission(address: &str, client: usize, counter: u64, run_tag: &str, completed_at: &str) -> Request<Full<Bytes>> {
    let form_content = format!(
        r#"{{\"/44250-9\":\"LA6568-5\",\"/44255-8\":\"LA6569-3\",\"/44259-0\":\"LA6570-1\",\"/44254-1\":\"LA6571-9\",\"/44251-7\":\"LA6568-5\",\"/44258-2\":\"LA6568-5\",\"/44252-5\":\"LA6569-3\",\"/44253-3\":\"LA6568-5\",\"/44260-8\":\"LA6568-5\",\"completedAt\":\"{completed_at}\"}}"#
    );
    let body = format!(
        r#"{{"patientId":"P-{run_tag}-ovl-{client}-{counter}","trialId":"demo","formId":"phq9","formContent":"{form_content}"}}"#
    );
    Request::post("/api/collection/submit")
        .header("host", address)
        .header("content-type", "application/json")
        .header("idempotency-key", format!("{run_tag}-{client:04x}-4000-8000-{counter:012x}"))
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request")
}

/// Returns the 50th and 99th percentile of `samples`, 0 when there are none.
fn percentiles(samples: &mut [u64]) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    samples.sort_unstable();
    let at = |percent: usize| samples[(samples.len() * percent / 100).min(samples.len() - 1)];
    (at(50), at(99))
}
