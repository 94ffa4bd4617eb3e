//! Outbox delivery state: claims, delivery marks, failures, dead letters and replays.
//! These are the only writes to `outbox_events` after its rows are inserted, and they
//! change only the delivery columns.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{OUTBOX_REPLAYED, insert_audit_event};
use crate::audit::AuditEntry;
use crate::columns::{format_utc, unix_millis};
use crate::model::{OutboxEvent, OutboxFailure, OutboxReplay, ReplaySelection};
use crate::reader::{self, OUTBOX_COLUMNS, OutboxColumns};

/// Maximum length in bytes of the `last_error` text kept on an outbox row. Longer sink
/// errors are cut at a character boundary.
pub(crate) const MAX_LAST_ERROR_BYTES: usize = 2000;

/// Claims up to `limit` pending events that no live lease holds, lowest `seq` first.
///
/// On SQLite the single writer thread runs claims one after another, so two relays
/// can never claim the same event while its lease lasts.
pub(super) fn claim(
    connection: &Connection,
    relay_id: &str,
    limit: usize,
    lease: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<OutboxEvent>> {
    let now_ms = unix_millis(now);
    let expires_ms = unix_millis(now + lease);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);

    let mut statement = connection.prepare_cached(&format!(
        "UPDATE outbox_events SET claimed_by = ?1, claim_expires_at = ?2
         WHERE seq IN (
             SELECT seq FROM outbox_events
             WHERE delivered_at IS NULL AND dead_lettered_at IS NULL
               AND (claim_expires_at IS NULL OR claim_expires_at <= ?3)
             ORDER BY seq LIMIT ?4
         )
         RETURNING {OUTBOX_COLUMNS}"
    ))?;
    let rows = statement
        .query_map(params![relay_id, expires_ms, now_ms, limit], OutboxColumns::from_row)
        .context("failed to claim outbox events")?;
    let mut events = reader::decode_events(rows)?;
    // RETURNING yields rows in no promised order.
    events.sort_unstable_by_key(|event| event.seq);
    Ok(events)
}

/// Sets `delivered_at` on each event and ends its claim. An event already delivered
/// keeps its first time.
pub(super) fn mark_delivered(connection: &Connection, seqs: &[i64], now: OffsetDateTime) -> anyhow::Result<()> {
    let delivered_at = format_utc(now)?;
    let mut statement = connection.prepare_cached(
        "UPDATE outbox_events
         SET delivered_at = coalesce(delivered_at, ?2), claimed_by = NULL, claim_expires_at = NULL
         WHERE seq = ?1",
    )?;
    for seq in seqs {
        let updated = statement
            .execute(params![seq, delivered_at])
            .with_context(|| format!("failed to mark outbox event {seq} delivered"))?;
        if updated == 0 {
            bail!("failed to mark outbox event {seq} delivered: no such event");
        }
    }
    Ok(())
}

/// Counts a failed publish attempt on each event, keeps its error text and ends its
/// claim. A refusal also counts toward the dead-letter limit. Returns the events that
/// became dead letters.
pub(super) fn mark_failed(
    connection: &Connection,
    failure: &OutboxFailure,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<i64>> {
    ensure!(failure.dead_letter_after > 0, "dead_letter_after must be at least 1");
    let error = truncate_at_char_boundary(&failure.error, MAX_LAST_ERROR_BYTES);
    let dead_lettered_at = format_utc(now)?;
    let rejection = i64::from(failure.rejected);

    let mut statement = connection.prepare_cached(
        "UPDATE outbox_events
         SET attempts = attempts + 1, last_error = ?2, claimed_by = NULL, claim_expires_at = NULL,
             rejections = rejections + ?3,
             dead_lettered_at = CASE
                 WHEN dead_lettered_at IS NULL AND delivered_at IS NULL AND ?3 = 1
                      AND rejections + 1 >= ?4 THEN ?5
                 ELSE dead_lettered_at END
         WHERE seq = ?1
         RETURNING dead_lettered_at IS ?5",
    )?;
    let mut dead = Vec::new();
    for &seq in &failure.seqs {
        let became_dead: Option<bool> = statement
            .query_row(params![seq, error, rejection, failure.dead_letter_after, dead_lettered_at], |row| row.get(0))
            .optional()
            .with_context(|| format!("failed to mark outbox event {seq} failed"))?;
        match became_dead {
            None => bail!("failed to mark outbox event {seq} failed: no such event"),
            Some(true) => dead.push(seq),
            Some(false) => {}
        }
    }
    Ok(dead)
}

/// Ends every claim `relay_id` holds on undelivered events, so that another relay can
/// take them at once. Returns how many it released.
pub(super) fn release(connection: &Connection, relay_id: &str) -> anyhow::Result<u64> {
    let released = connection
        .prepare_cached(
            "UPDATE outbox_events SET claimed_by = NULL, claim_expires_at = NULL
             WHERE claimed_by = ?1 AND delivered_at IS NULL",
        )?
        .execute([relay_id])
        .with_context(|| format!("failed to release the outbox claims of relay {relay_id}"))?;
    Ok(released as u64)
}

/// Makes the selected events pending again, with their rejections reset, and writes
/// one audit row per event. Returns their `seq`s in order.
pub(super) fn replay(connection: &Connection, replay: &OutboxReplay, now: OffsetDateTime) -> anyhow::Result<Vec<i64>> {
    ensure!(!replay.reason.trim().is_empty(), "a replay needs a reason");
    let targets = match &replay.selection {
        ReplaySelection::DeadLetters => dead_letter_targets(connection)?,
        ReplaySelection::EventIds(ids) => event_id_targets(connection, ids)?,
    };

    let mut reset = connection.prepare_cached(
        "UPDATE outbox_events
         SET delivered_at = NULL, dead_lettered_at = NULL, rejections = 0,
             claimed_by = NULL, claim_expires_at = NULL
         WHERE seq = ?1",
    )?;
    let mut owner =
        connection.prepare_cached("SELECT trial_id, patient_id, submission_id FROM outbox_events WHERE seq = ?1")?;
    for (seq, event_id) in &targets {
        reset.execute([seq]).with_context(|| format!("failed to replay outbox event {seq}"))?;
        let (trial_id, patient_id, submission_id): (String, String, String) = owner
            .query_row([seq], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .with_context(|| format!("failed to read outbox event {seq}"))?;
        insert_audit_event(
            connection,
            &AuditEntry {
                trial_id: Some(&trial_id),
                patient_id: Some(&patient_id),
                submission_id: Some(&submission_id),
                reason: Some(&replay.reason),
                request_id: replay.request_id.as_deref(),
                ..AuditEntry::new(now, &replay.actor, OUTBOX_REPLAYED, "outbox_event", event_id)
            },
        )?;
    }
    Ok(targets.into_iter().map(|(seq, _)| seq).collect())
}

fn dead_letter_targets(connection: &Connection) -> anyhow::Result<Vec<(i64, String)>> {
    let mut statement = connection
        .prepare_cached("SELECT seq, event_id FROM outbox_events WHERE dead_lettered_at IS NOT NULL ORDER BY seq")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).context("failed to read dead letters")?;
    rows.collect::<Result<_, _>>().context("failed to read dead letters")
}

/// Finds each event id, failing with every unknown id listed.
fn event_id_targets(connection: &Connection, ids: &[Uuid]) -> anyhow::Result<Vec<(i64, String)>> {
    let mut statement = connection.prepare_cached("SELECT seq FROM outbox_events WHERE event_id = ?1")?;
    let mut targets = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(*id) {
            continue;
        }
        let event_id = id.hyphenated().to_string();
        let seq: Option<i64> = statement
            .query_row([&event_id], |row| row.get(0))
            .optional()
            .with_context(|| format!("failed to find outbox event {event_id}"))?;
        match seq {
            Some(seq) => targets.push((seq, event_id)),
            None => unknown.push(event_id),
        }
    }
    ensure!(unknown.is_empty(), "no outbox event has the id {}", unknown.join(", "));
    targets.sort_unstable();
    Ok(targets)
}

pub(crate) fn truncate_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text() {
        assert_eq!(truncate_at_char_boundary("timeout", 10), "timeout");
    }

    #[test]
    fn truncate_cuts_at_char_boundary() {
        // "超时" is two characters of three bytes each, so 4 bytes hold only the first.
        assert_eq!(truncate_at_char_boundary("超时", 4), "超");
    }
}
