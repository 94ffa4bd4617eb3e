//! Outbox delivery marks: the only writes to `outbox_events` after its rows are
//! inserted, and only to the delivery columns.

use anyhow::{Context as _, bail};
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::columns::format_utc;

/// Maximum length in bytes of the `last_error` text kept on an outbox row. Longer sink
/// errors are cut at a character boundary.
const MAX_LAST_ERROR_BYTES: usize = 2000;

/// Sets `delivered_at` on each event. An event already delivered keeps its first time.
pub(super) fn mark_delivered(connection: &Connection, seqs: &[i64], now: OffsetDateTime) -> anyhow::Result<()> {
    let delivered_at = format_utc(now)?;
    let mut statement = connection
        .prepare_cached("UPDATE outbox_events SET delivered_at = coalesce(delivered_at, ?2) WHERE seq = ?1")?;
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

/// Counts a failed publish attempt and keeps its error text.
pub(super) fn mark_failed(connection: &Connection, seq: i64, error: &str) -> anyhow::Result<()> {
    let error = truncate_at_char_boundary(error, MAX_LAST_ERROR_BYTES);
    let updated = connection
        .prepare_cached("UPDATE outbox_events SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1")?
        .execute(params![seq, error])
        .with_context(|| format!("failed to mark outbox event {seq} failed"))?;
    if updated == 0 {
        bail!("failed to mark outbox event {seq} failed: no such event");
    }
    Ok(())
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
