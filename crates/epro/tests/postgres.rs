//! The real binary on PostgreSQL: several instances sharing one database
//! and one outbox, an instance killed mid-load, and a database restart under
//! load. Needs `TEST_EPRO_POSTGRES_URL` (a server where the test may create
//! databases) and, for the restart, `TEST_EPRO_PG_BIN`; `.ci/run` sets both.
//!
//! Loads are bounded in count: 1,200 submissions per instance, 16 at a time.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::postgres::PrivatePostgres;
use support::receiver::Receiver;
use support::{Server, phq9_envelope, write_backend_config};

/// A database of its own on the shared server, dropped at the end.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    fn create(admin_url: &str) -> TestDatabase {
        let name = format!("epro_e2e_{}", uuid::Uuid::new_v4().simple());
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        TestDatabase { admin_url: admin_url.to_owned(), name }
    }

    fn url(&self) -> String {
        let base = self.admin_url.rsplit_once('/').map_or(self.admin_url.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin_url)
            .args(["-Atqc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// Runs one statement with psql and returns its output, trimmed.
fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql").arg(url).args(["-Atqc", sql]).output().expect("run psql");
    assert!(output.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn count(url: &str, sql: &str) -> i64 {
    psql(url, sql).parse().expect("a count")
}

const SECRET: &str = "postgres-e2e-webhook-secret";

/// Submits until `stop` or `limit` submissions, 16 at a time, and returns
/// what each got: `(id, status, retry_after)`; status 0 means no reply.
async fn load(address: String, limit: usize, stop: Arc<AtomicBool>) -> Vec<(String, u16, Option<String>)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|worker| {
            let (client, address, stop, results, sent) =
                (client.clone(), address.clone(), stop.clone(), results.clone(), sent.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) && sent.fetch_add(1, Ordering::Relaxed) < limit {
                    let id = uuid::Uuid::new_v4().to_string();
                    let reply = client
                        .post(format!("{address}/v1/trials/demo/forms/phq9/submissions"))
                        .json(&phq9_envelope(&id, &format!("P-{worker:03}")))
                        .send()
                        .await;
                    let (status, retry_after) = match reply {
                        Ok(reply) => (
                            reply.status().as_u16(),
                            reply.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned),
                        ),
                        Err(_) => (0, None),
                    };
                    results.lock().unwrap().push((id, status, retry_after));
                    if status != 201 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    Arc::try_unwrap(results).unwrap().into_inner().unwrap()
}

fn accepted(results: &[(String, u16, Option<String>)]) -> Vec<String> {
    results.iter().filter(|(_, status, _)| *status == 201).map(|(id, _, _)| id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_survive_a_kill() {
    let Ok(admin_url) = std::env::var("TEST_EPRO_POSTGRES_URL") else {
        eprintln!("skipped: TEST_EPRO_POSTGRES_URL is not set");
        return;
    };
    let database = TestDatabase::create(&admin_url);
    let receiver = Receiver::start(SECRET).await;
    let sink = receiver.sink(SECRET);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let outbox = "lease_seconds = 2\nbatch_size = 64";
    let server_a = Server::start(&write_backend_config(dir_a.path(), &database.url(), &sink, outbox));
    let server_b = Server::start(&write_backend_config(dir_b.path(), &database.url(), &sink, outbox));

    let stop = Arc::new(AtomicBool::new(false));
    let load_a = tokio::spawn(load(server_a.address.clone(), 1200, stop.clone()));
    let load_b = tokio::spawn(load(server_b.address.clone(), 1200, Arc::new(AtomicBool::new(false))));
    // Kill A once it has stored a good part of its load.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&database.url(), "SELECT count(*) FROM submissions") < 600 {
        assert!(Instant::now() < deadline, "the load did not get going within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server_a.kill();
    stop.store(true, Ordering::Relaxed);
    let results_a = load_a.await.unwrap();
    let results_b = load_b.await.unwrap();

    let acknowledged: Vec<String> = accepted(&results_a).into_iter().chain(accepted(&results_b)).collect();
    assert_eq!(accepted(&results_b).len(), 1200, "B accepted its whole load while A died");
    let stored: HashSet<String> =
        psql(&database.url(), "SELECT submission_id FROM submissions").lines().map(str::to_owned).collect();
    let lost: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {:?}", &lost[..lost.len().min(5)]);

    // B's relay takes over A's claims once their 2 s leases end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&database.url(), "SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL") > 0 {
        assert!(Instant::now() < deadline, "events still undelivered 60 s after the kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server_b);

    let events = count(&database.url(), "SELECT count(*) FROM outbox_events");
    let mut arrivals: HashMap<String, (usize, Value)> = HashMap::new();
    for event in receiver.events.lock().unwrap().iter() {
        let id = event["eventId"].as_str().unwrap().to_owned();
        arrivals.entry(id).or_insert((0, event.clone())).0 += 1;
    }
    let twice: usize = arrivals.values().filter(|(times, _)| *times > 1).count();
    let delivered_submissions: HashSet<&str> = arrivals
        .values()
        .filter(|(_, event)| event["type"] == "submission.accepted")
        .map(|(_, event)| event["submissionId"].as_str().unwrap())
        .collect();
    assert_eq!(arrivals.len() as i64, events, "every stored event arrived");
    assert!(
        acknowledged.iter().all(|id| delivered_submissions.contains(id.as_str())),
        "an acknowledged event is missing"
    );
    // Only a batch the killed instance published but did not mark may arrive
    // twice; live leases keep the two relays off each other's batches.
    assert!(twice <= 64, "{twice} events arrived twice, more than one batch of the killed relay");
    eprintln!(
        "A acknowledged {}, B {}; {events} events, {twice} delivered twice",
        accepted(&results_a).len(),
        accepted(&results_b).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_under_load_answers_503_then_recovers() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sink = r#"{ type = "file", path = "var/outbox.ndjson" }"#;
    let server = Server::start(&write_backend_config(dir.path(), &postgres.url(), sink, ""));

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load(server.address.clone(), 100_000, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    postgres.start_again();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let results = load.await.unwrap();

    let statuses: HashMap<u16, usize> = results.iter().fold(HashMap::new(), |mut counts, (_, status, _)| {
        *counts.entry(*status).or_default() += 1;
        counts
    });
    eprintln!("replies by status: {statuses:?}");
    let unavailable: Vec<_> = results.iter().filter(|(_, status, _)| *status == 503).collect();
    assert!(!unavailable.is_empty(), "no 503 while the database was down: {statuses:?}");
    assert!(unavailable.iter().all(|(_, _, retry)| retry.is_some()), "a 503 without Retry-After");
    assert_eq!(statuses.get(&500), None, "a 500 during the outage: {statuses:?}");
    let recovered = results.iter().rev().take(20).filter(|(_, status, _)| *status == 201).count();
    assert_eq!(recovered, 20, "the last 20 submissions after the restart were not all stored");

    let acknowledged = accepted(&results);
    let stored: HashSet<String> =
        psql(&postgres.url(), "SELECT submission_id FROM submissions").lines().map(str::to_owned).collect();
    let lost: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {:?}", &lost[..lost.len().min(5)]);
    drop(server);
}
