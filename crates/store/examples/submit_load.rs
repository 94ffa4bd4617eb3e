//! Measures how long 10,000 submissions take through `Store::submit` from 256
//! concurrent tasks, on either backend.
//!
//! ```text
//! cargo run --release -p epro-store --example submit_load -- sqlite
//! cargo run --release -p epro-store --example submit_load -- postgres://postgres@127.0.0.1:5432/epro_load
//! ```
//!
//! SQLite writes to a new file in a temporary directory. A PostgreSQL database must
//! exist and should be empty; the store creates its tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail};
use epro_store::{NewSubmission, SourceFormat, Store, StoreConfig, SubmitOutcome};
use time::OffsetDateTime;
use uuid::Uuid;

const SUBMISSIONS: usize = 10_000;
const TASKS: usize = 256;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = std::env::args().nth(1).context("usage: submit_load sqlite|POSTGRES_URL")?;
    let directory = tempfile::tempdir().context("failed to create a temporary directory")?;
    let config = if target == "sqlite" {
        StoreConfig::new(directory.path().join("load.db"))
    } else {
        StoreConfig::postgres(target.clone())
    };
    let store = Store::open(config).await?;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let store = store.clone();
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < SUBMISSIONS {
                match store.submit(submission()).await? {
                    SubmitOutcome::Created(_) => {}
                    other => bail!("submission was not created: {other:?}"),
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await.context("submit task panicked")??;
    }
    let elapsed = started.elapsed();

    let stats = store.stats();
    println!(
        "{target_name}: {SUBMISSIONS} submissions from {TASKS} tasks in {:.2} s ({:.0}/s), {} commits",
        elapsed.as_secs_f64(),
        SUBMISSIONS as f64 / elapsed.as_secs_f64(),
        stats.batches_committed,
        target_name = if target == "sqlite" { "sqlite" } else { "postgres" },
    );
    store.close().await;
    Ok(())
}

/// Builds a submission of a small form with a new id and one answer.
fn submission() -> NewSubmission {
    let answers = r#"{"pain":7,"note":"headache after lunch"}"#.to_owned();
    // The store compares hashes and never computes them, so a random stand-in will do.
    let mut content_sha256 = [0u8; 32];
    content_sha256[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    NewSubmission {
        submission_id: Uuid::new_v4().to_string(),
        trial_id: "TRIAL-LOAD".to_owned(),
        form_id: "pain-diary".to_owned(),
        form_version: "1.0.0".to_owned(),
        patient_id: "P-LOAD".to_owned(),
        completed_at: OffsetDateTime::now_utc(),
        received_at: OffsetDateTime::now_utc(),
        source: SourceFormat::Native,
        raw_answers: answers.clone(),
        normalized_answers: answers,
        content_sha256,
        scores: "[]".to_owned(),
        queries: Vec::new(),
        alerts: Vec::new(),
        actor: "patient:P-LOAD".to_owned(),
        request_id: None,
    }
}
