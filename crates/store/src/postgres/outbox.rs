//! Outbox delivery state on PostgreSQL: claims, delivery marks, failures, dead letters
//! and replays, each in its own transaction on the pool. Like the SQLite versions in
//! `crate::writer::outbox`, they change only the delivery columns.
//!
//! Several epro instances may run relays on one database, so a claim locks the rows it
//! takes with `FOR UPDATE SKIP LOCKED`. A second relay claiming at the same moment
//! skips them instead of waiting, and once the first commits, its live lease keeps them
//! out of the second relay's claims. Lease times come from the database clock
//! (`now()`), the one clock all instances share.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use deadpool_postgres::Object;
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit;
use super::reader::{OUTBOX_COLUMNS, decode_event};
use crate::audit::AuditEntry;
use crate::model::{OutboxEvent, OutboxFailure, OutboxReplay, ReplaySelection};
use crate::writer::{MAX_LAST_ERROR_BYTES, OUTBOX_REPLAYED, truncate_at_char_boundary};

/// Claims up to `limit` pending events that no live lease holds, lowest `seq` first.
pub(super) async fn claim(
    client: &Object,
    relay_id: &str,
    limit: usize,
    lease: Duration,
) -> anyhow::Result<Vec<OutboxEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let lease_seconds = lease.as_secs_f64();

    let statement = client
        .prepare_cached(&format!(
            "WITH claimable AS (
                 SELECT seq FROM outbox_events
                 WHERE delivered_at IS NULL AND dead_lettered_at IS NULL
                   AND (claim_expires_at IS NULL OR claim_expires_at <= now())
                 ORDER BY seq LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE outbox_events
             SET claimed_by = $1, claim_expires_at = now() + make_interval(secs => $3)
             FROM claimable WHERE outbox_events.seq = claimable.seq
             RETURNING {}",
            qualified(OUTBOX_COLUMNS)
        ))
        .await?;
    let rows = client
        .query(&statement, &[&relay_id, &limit, &lease_seconds])
        .await
        .with_context(|| format!("failed to claim outbox events for relay {relay_id}"))?;

    let mut events = rows.iter().map(decode_event).collect::<anyhow::Result<Vec<_>>>()?;
    // RETURNING yields rows in no promised order.
    events.sort_unstable_by_key(|event| event.seq);
    Ok(events)
}

/// Sets `delivered_at` on each event and ends its claim. An event already delivered
/// keeps its first time. An unknown `seq` fails the call, and then none is marked.
pub(super) async fn mark_delivered(client: &mut Object, seqs: &[i64]) -> anyhow::Result<()> {
    let transaction = client.transaction().await.context("failed to begin transaction")?;
    let statement = transaction
        .prepare_cached(
            "UPDATE outbox_events
             SET delivered_at = coalesce(delivered_at, now()), claimed_by = NULL, claim_expires_at = NULL
             WHERE seq = ANY($1)
             RETURNING seq",
        )
        .await?;
    let rows = transaction.query(&statement, &[&seqs]).await.context("failed to mark outbox events delivered")?;
    let marked = returned_seqs(&rows)?;
    if let Some(unknown) = seqs.iter().find(|seq| !marked.contains(seq)) {
        anyhow::bail!("failed to mark outbox event {unknown} delivered: no such event");
    }
    transaction.commit().await.context("failed to commit delivery marks")
}

/// Counts a failed publish attempt on each event, keeps its error text and ends its
/// claim. A refusal also counts toward the dead-letter limit. Returns the events that
/// became dead letters, in `seq` order.
pub(super) async fn mark_failed(client: &mut Object, failure: &OutboxFailure) -> anyhow::Result<Vec<i64>> {
    ensure!(failure.dead_letter_after > 0, "dead_letter_after must be at least 1");
    let error = truncate_at_char_boundary(&failure.error, MAX_LAST_ERROR_BYTES);
    let rejection = i32::from(failure.rejected);
    // Rejections are an int4 column; a limit beyond its range is never reached anyway.
    let dead_letter_after = i32::try_from(failure.dead_letter_after).unwrap_or(i32::MAX);

    let transaction = client.transaction().await.context("failed to begin transaction")?;
    // The CTE reads each row's dead-letter time before the update, so that RETURNING
    // can tell the events this call dead-lettered from those dead before.
    let statement = transaction
        .prepare_cached(
            "WITH before AS (
                 SELECT seq, dead_lettered_at FROM outbox_events WHERE seq = ANY($1) FOR UPDATE
             )
             UPDATE outbox_events
             SET attempts = outbox_events.attempts + 1, last_error = $2, claimed_by = NULL, claim_expires_at = NULL,
                 rejections = outbox_events.rejections + $3,
                 dead_lettered_at = CASE
                     WHEN outbox_events.dead_lettered_at IS NULL AND outbox_events.delivered_at IS NULL
                          AND $3 = 1 AND outbox_events.rejections + 1 >= $4 THEN now()
                     ELSE outbox_events.dead_lettered_at END
             FROM before WHERE outbox_events.seq = before.seq
             RETURNING outbox_events.seq,
                       before.dead_lettered_at IS NULL AND outbox_events.dead_lettered_at IS NOT NULL",
        )
        .await?;
    let rows = transaction
        .query(&statement, &[&failure.seqs, &error, &rejection, &dead_letter_after])
        .await
        .context("failed to mark outbox events failed")?;

    let marked = returned_seqs(&rows)?;
    if let Some(unknown) = failure.seqs.iter().find(|seq| !marked.contains(seq)) {
        anyhow::bail!("failed to mark outbox event {unknown} failed: no such event");
    }
    let mut dead = Vec::new();
    for row in &rows {
        let became_dead: bool = row.try_get(1).context("failed to read dead-letter state")?;
        if became_dead {
            dead.push(row.try_get::<_, i64>(0).context("failed to read outbox seq")?);
        }
    }
    dead.sort_unstable();
    transaction.commit().await.context("failed to commit failure marks")?;
    Ok(dead)
}

/// Ends every claim `relay_id` holds on undelivered events, so that another relay can
/// take them at once. Returns how many it released.
pub(super) async fn release(client: &Object, relay_id: &str) -> anyhow::Result<u64> {
    let statement = client
        .prepare_cached(
            "UPDATE outbox_events SET claimed_by = NULL, claim_expires_at = NULL
             WHERE claimed_by = $1 AND delivered_at IS NULL",
        )
        .await?;
    client
        .execute(&statement, &[&relay_id])
        .await
        .with_context(|| format!("failed to release the outbox claims of relay {relay_id}"))
}

/// Makes the selected events pending again, with their rejections reset, and writes
/// one audit row per event in the same transaction. Returns their `seq`s in order.
pub(super) async fn replay(client: &mut Object, replay: &OutboxReplay) -> anyhow::Result<Vec<i64>> {
    ensure!(!replay.reason.trim().is_empty(), "a replay needs a reason");

    let transaction = client.transaction().await.context("failed to begin transaction")?;
    let targets: Vec<(i64, Uuid)> = match &replay.selection {
        ReplaySelection::DeadLetters => {
            let rows = transaction
                .query(
                    "SELECT seq, event_id FROM outbox_events WHERE dead_lettered_at IS NOT NULL
                     ORDER BY seq FOR UPDATE",
                    &[],
                )
                .await
                .context("failed to read dead letters")?;
            decode_targets(&rows)?
        }
        ReplaySelection::EventIds(ids) => {
            let ids: Vec<Uuid> = ids.iter().copied().collect::<HashSet<_>>().into_iter().collect();
            let rows = transaction
                .query(
                    "SELECT seq, event_id FROM outbox_events WHERE event_id = ANY($1) ORDER BY seq FOR UPDATE",
                    &[&ids],
                )
                .await
                .context("failed to find outbox events")?;
            let targets = decode_targets(&rows)?;
            let found: HashSet<Uuid> = targets.iter().map(|(_, id)| *id).collect();
            let mut unknown: Vec<String> =
                ids.iter().filter(|id| !found.contains(id)).map(|id| id.hyphenated().to_string()).collect();
            unknown.sort_unstable();
            ensure!(unknown.is_empty(), "no outbox event has the id {}", unknown.join(", "));
            targets
        }
    };

    let seqs: Vec<i64> = targets.iter().map(|(seq, _)| *seq).collect();
    transaction
        .execute(
            "UPDATE outbox_events
             SET delivered_at = NULL, dead_lettered_at = NULL, rejections = 0,
                 claimed_by = NULL, claim_expires_at = NULL
             WHERE seq = ANY($1)",
            &[&seqs],
        )
        .await
        .context("failed to replay outbox events")?;

    let owners = transaction
        .query(
            "SELECT event_id, trial_id, patient_id, submission_id FROM outbox_events WHERE seq = ANY($1) ORDER BY seq",
            &[&seqs],
        )
        .await
        .context("failed to read the replayed outbox events")?;
    let owners: Vec<[String; 4]> = owners
        .iter()
        .map(|row| {
            let event_id: Uuid = row.try_get(0)?;
            Ok([event_id.hyphenated().to_string(), row.try_get(1)?, row.try_get(2)?, row.try_get(3)?])
        })
        .collect::<anyhow::Result<_>>()
        .context("failed to read the replayed outbox events")?;
    let now = OffsetDateTime::now_utc();
    let entries: Vec<AuditEntry<'_>> = owners
        .iter()
        .map(|[event_id, trial_id, patient_id, submission_id]| AuditEntry {
            trial_id: Some(trial_id),
            patient_id: Some(patient_id),
            submission_id: Some(submission_id),
            reason: Some(&replay.reason),
            request_id: replay.request_id.as_deref(),
            ..AuditEntry::new(now, &replay.actor, OUTBOX_REPLAYED, "outbox_event", event_id)
        })
        .collect();
    audit::append(&transaction, &entries).await.context("failed to insert audit events for the replay")?;

    transaction.commit().await.context("failed to commit the replay")?;
    Ok(seqs)
}

fn decode_targets(rows: &[tokio_postgres::Row]) -> anyhow::Result<Vec<(i64, Uuid)>> {
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .context("failed to read outbox events")
}

fn returned_seqs(rows: &[tokio_postgres::Row]) -> anyhow::Result<HashSet<i64>> {
    rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>().context("failed to read outbox seqs")
}

/// Prefixes each column of a list with `outbox_events.`, for a `RETURNING` clause of an
/// `UPDATE ... FROM` whose other table has a `seq` column too.
fn qualified(columns: &str) -> String {
    columns.split(", ").map(|column| format!("outbox_events.{column}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_prefixes_each_column() {
        assert_eq!(qualified("seq, payload::text"), "outbox_events.seq, outbox_events.payload::text");
    }
}
