//! Crash safety of the real binary: SIGKILL while concurrent submissions
//! are in flight, restart on the same SQLite file, and check that every
//! acknowledged submission and its outbox event survived, exactly once.
//!
//! The load is bounded: 16 workers for 400 ms per cycle, 20 cycles, about
//! 30 s in all.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{Server, write_config};

const TOKEN: &str = "epro_s_c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const CYCLES: usize = 20;
const WORKERS: usize = 16;
const LOAD_TIME: Duration = Duration::from_millis(400);

fn envelope(id: &str, worker: usize) -> Value {
    json!({
        "submissionId": id,
        "patientId": format!("P-{worker:04}"),
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": {
            "/44250-9": "LA6569-3", "/44255-8": "LA6568-5", "/44259-0": "LA6570-1",
            "/44254-1": "LA6568-5", "/44251-7": "LA6571-9", "/44258-2": "LA6568-5",
            "/44252-5": "LA6569-3", "/44253-3": "LA6568-5", "/44260-8": "LA6568-5"
        }
    })
}

/// What the load saw: ids acknowledged with 201, and ids sent whose reply
/// never arrived (the kill cut them off).
#[derive(Default)]
struct LoadResult {
    acknowledged: Vec<String>,
    unanswered: Vec<(String, usize)>,
}

/// Submits unique PHQ-9 answer sets from several workers until `stop`.
async fn run_load(address: String, stop: Arc<AtomicBool>) -> LoadResult {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let result = Arc::new(Mutex::new(LoadResult::default()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (client, address, stop, result) = (client.clone(), address.clone(), stop.clone(), result.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let id = uuid::Uuid::new_v4().to_string();
                    let sent = client
                        .post(format!("{address}/v1/trials/demo/forms/phq9/submissions"))
                        .json(&envelope(&id, worker))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status().as_u16() == 201 => {
                            result.lock().unwrap().acknowledged.push(id)
                        }
                        Ok(response) => panic!("unexpected status {} under load", response.status()),
                        Err(_) => {
                            result.lock().unwrap().unanswered.push((id, worker));
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    Arc::try_unwrap(result).ok().unwrap().into_inner().unwrap()
}

fn stored_ids(database: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut statement = connection.prepare("SELECT submission_id FROM submissions").unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

fn count(database: &Path, sql: &str) -> i64 {
    let connection = rusqlite::Connection::open(database).unwrap();
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN, "", "");
    let database = dir.path().join("var/epro.db");
    let mut acknowledged: Vec<String> = Vec::new();

    for cycle in 0..CYCLES {
        let server = Server::start(&config);
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(run_load(server.address.clone(), stop.clone()));

        tokio::time::sleep(LOAD_TIME).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let result = load.await.unwrap();
        assert!(!result.acknowledged.is_empty(), "cycle {cycle}: the load stored nothing before the kill");
        acknowledged.extend(result.acknowledged);

        // Restart on the same file and check before the next kill.
        let server = Server::start(&config);
        let stored: HashSet<String> = stored_ids(&database).into_iter().collect();
        let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(missing.is_empty(), "cycle {cycle}: acknowledged but lost: {missing:?}");

        // A retry of a request cut off by the kill is either a first store
        // (201) or a replay (200), never a conflict or a duplicate.
        let client = reqwest::Client::new();
        for (id, worker) in &result.unanswered {
            let status = client
                .post(format!("{}/v1/trials/demo/forms/phq9/submissions", server.address))
                .json(&envelope(id, *worker))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!(status == 201 || status == 200, "cycle {cycle}: retry got {status}");
        }
        server.kill();
    }

    let submissions = count(&database, "SELECT count(*) FROM submissions");
    let distinct = count(&database, "SELECT count(DISTINCT submission_id) FROM submissions");
    assert_eq!(submissions, distinct, "no submission is stored twice");
    let without_event = count(
        &database,
        "SELECT count(*) FROM submissions s WHERE NOT EXISTS \
         (SELECT 1 FROM outbox_events e WHERE e.submission_id = s.submission_id)",
    );
    assert_eq!(without_event, 0, "every stored submission has its outbox event");
    let extra_events = count(
        &database,
        "SELECT count(*) FROM (SELECT submission_id FROM outbox_events GROUP BY submission_id HAVING count(*) > 1)",
    );
    assert_eq!(extra_events, 0, "no submission has two outbox events");

    // After a last restart the relay delivers every event at least once.
    let server = Server::start(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let undelivered = count(&database, "SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL");
        if undelivered == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{undelivered} events still undelivered after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = std::fs::read_to_string(dir.path().join("var/outbox.ndjson")).unwrap();
    let delivered_ids: HashSet<String> = delivered
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["submissionId"].as_str().unwrap().to_owned())
        .collect();
    let undelivered: Vec<&String> = acknowledged.iter().filter(|id| !delivered_ids.contains(*id)).collect();
    assert!(undelivered.is_empty(), "acknowledged but never relayed: {undelivered:?}");
    drop(server);
}
