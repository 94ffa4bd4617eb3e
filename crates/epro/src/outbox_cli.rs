//! `epro outbox`: lists dead letters and sends events again, for operators.
//!
//! Both commands open the database the configuration names, like `epro
//! migrate`, and may run beside a live server: on SQLite the store waits for
//! the server's writer, and the server's relay polls for replayed events.
//! Output is one JSON object per line on standard output, with ids, codes
//! and timestamps only, never answers.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use epro_store::{OutboxEventState, OutboxReplay, ReplaySelection, Store};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::cli::OutboxCommand;
use crate::config::Config;

/// Runs one `epro outbox` subcommand.
///
/// # Errors
///
/// Fails when the configuration or the database cannot be opened, when an
/// event id is unknown (then nothing is replayed), or when the reason is blank.
pub fn run(command: OutboxCommand) -> anyhow::Result<()> {
    match command {
        OutboxCommand::DeadLetters { config, after, limit } => with_store(&config, async |store| {
            let dead = store.outbox_dead_letters(after, usize::from(limit)).await?;
            let mut stdout = std::io::stdout().lock();
            for state in &dead {
                writeln!(stdout, "{}", describe(state))?;
            }
            eprintln!("{} dead-lettered event(s) listed", dead.len());
            Ok(())
        }),
        OutboxCommand::Replay { config, dead_letters, event_id, reason } => {
            anyhow::ensure!(!reason.trim().is_empty(), "--reason must not be blank: say why the events are sent again");
            let selection =
                if dead_letters { ReplaySelection::DeadLetters } else { ReplaySelection::EventIds(event_id) };
            with_store(&config, async |store| {
                let replay = OutboxReplay { selection, actor: actor(), reason, request_id: None };
                let seqs = store.outbox_replay(replay).await.context("replay failed; nothing was changed")?;
                println!("{}", json!({ "replayed": seqs.len(), "seqs": seqs }));
                tracing::info!(replayed = seqs.len(), "Outbox events queued again");
                Ok(())
            })
        }
    }
}

/// Opens the store, runs `work` and closes the store whatever the result.
pub(crate) fn with_store(
    config_path: &Path,
    work: impl AsyncFnOnce(&Store) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let config = Config::load_database(config_path)?;
    crate::telemetry::init(&config.telemetry)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = Store::open(config.store_config()?).await?;
        let result = work(&store).await;
        store.close().await;
        result
    })
}

/// Names the operator in the audit trail: `operator:cli:USER` when the
/// login name is known.
fn actor() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => format!("operator:cli:{}", user.trim()),
        _ => "operator:cli".to_owned(),
    }
}

fn describe(state: &OutboxEventState) -> serde_json::Value {
    let timestamp = |value: Option<time::OffsetDateTime>| value.and_then(|instant| instant.format(&Rfc3339).ok());
    let event = &state.event;
    json!({
        "seq": event.seq,
        "eventId": event.event_id,
        "type": event.event_type,
        "occurredAt": timestamp(Some(event.occurred_at)),
        "trialId": event.trial_id,
        "submissionId": event.submission_id,
        "attempts": event.attempts,
        "rejections": state.rejections,
        "lastError": state.last_error,
        "deadLetteredAt": timestamp(state.dead_lettered_at),
    })
}
