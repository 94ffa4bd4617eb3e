//! The audit trail's hash chain: the canonical content of a row, the hash that links
//! it to the row before, and the walk that checks a whole chain.
//!
//! Every row's `hash` is SHA-256 over the previous row's `hash` (32 zero bytes for the
//! first row) followed by the row's canonical content: a JSON array, in this order, of
//! the format tag `"epro.audit.v1"`, `seq`, `occurred_at` as stored, `actor`, `action`,
//! `entity`, `entity_id`, `trial_id`, `patient_id`, `submission_id`, `before_value`
//! and `after_value` (each as its JSON text, not parsed), `reason` and `request_id`,
//! with `null` for an absent value. `serde_json` writes that array the same way every
//! time, so anyone can recompute a hash from a row read over `GET /v1/audit`.
//!
//! A changed row no longer matches its own hash. A row recomputed to match, inserted
//! or deleted breaks the link of the row after it. Deleting the newest rows leaves a
//! shorter chain that is still intact, so `epro audit verify` prints the head it saw,
//! for the operator to keep and compare with later.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::{AuditBreak, AuditBreakKind, AuditRecord};

/// The `prev_hash` of the first row of a chain.
pub(crate) const GENESIS_HASH: [u8; 32] = [0; 32];

/// Key of the PostgreSQL advisory lock that serializes appends to the chain: "epro_aud"
/// in ASCII. Other applications on the same database must not use it.
pub(crate) const CHAIN_LOCK_KEY: i64 = 0x6570_726f_5f61_7564;

/// Tag that starts every canonical form, so that a future format cannot be confused
/// with this one.
const FORMAT_TAG: &str = "epro.audit.v1";

/// The columns of one audit row that its hash covers, borrowed from wherever the row
/// is: about to be inserted, or read back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainFields<'a> {
    pub(crate) seq: i64,
    pub(crate) occurred_at: &'a str,
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    pub(crate) entity: &'a str,
    pub(crate) entity_id: &'a str,
    pub(crate) trial_id: Option<&'a str>,
    pub(crate) patient_id: Option<&'a str>,
    pub(crate) submission_id: Option<&'a str>,
    pub(crate) before_value: Option<&'a str>,
    pub(crate) after_value: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) request_id: Option<&'a str>,
}

impl<'a> ChainFields<'a> {
    /// Borrows the hashed columns of a row read back from the database.
    pub(crate) fn of(record: &'a AuditRecord) -> Self {
        ChainFields {
            seq: record.seq,
            occurred_at: &record.occurred_at,
            actor: &record.actor,
            action: &record.action,
            entity: &record.entity,
            entity_id: &record.entity_id,
            trial_id: record.trial_id.as_deref(),
            patient_id: record.patient_id.as_deref(),
            submission_id: record.submission_id.as_deref(),
            before_value: record.before_value.as_deref(),
            after_value: record.after_value.as_deref(),
            reason: record.reason.as_deref(),
            request_id: record.request_id.as_deref(),
        }
    }
}

/// An audit row about to be appended, before the chain gives it a `seq` and hashes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuditEntry<'a> {
    /// When the action happened. Stored and hashed to the microsecond.
    pub(crate) occurred_at: OffsetDateTime,
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    /// Kind of the entity, for example `submission` or `data_query`.
    pub(crate) entity: &'a str,
    pub(crate) entity_id: &'a str,
    pub(crate) trial_id: Option<&'a str>,
    pub(crate) patient_id: Option<&'a str>,
    pub(crate) submission_id: Option<&'a str>,
    /// The changed values before the action, as JSON text.
    pub(crate) before_value: Option<&'a str>,
    /// The changed values after the action, as JSON text.
    pub(crate) after_value: Option<&'a str>,
    /// The reason for the change, where the action has one.
    pub(crate) reason: Option<&'a str>,
    pub(crate) request_id: Option<&'a str>,
}

impl<'a> AuditEntry<'a> {
    /// An entry with only the required columns set; the others start empty.
    pub(crate) fn new(
        occurred_at: OffsetDateTime,
        actor: &'a str,
        action: &'a str,
        entity: &'a str,
        entity_id: &'a str,
    ) -> Self {
        AuditEntry {
            occurred_at,
            actor,
            action,
            entity,
            entity_id,
            trial_id: None,
            patient_id: None,
            submission_id: None,
            before_value: None,
            after_value: None,
            reason: None,
            request_id: None,
        }
    }

    /// The hashed columns of this entry once it is row `seq`, stored at `occurred_at`
    /// (this entry's time formatted by [`format_audit_time`]).
    pub(crate) fn chain_fields<'b>(&'b self, seq: i64, occurred_at: &'b str) -> ChainFields<'b> {
        ChainFields {
            seq,
            occurred_at,
            actor: self.actor,
            action: self.action,
            entity: self.entity,
            entity_id: self.entity_id,
            trial_id: self.trial_id,
            patient_id: self.patient_id,
            submission_id: self.submission_id,
            before_value: self.before_value,
            after_value: self.after_value,
            reason: self.reason,
            request_id: self.request_id,
        }
    }
}

/// Computes the hash of a row from the hash of the row before it.
pub(crate) fn link_hash(prev_hash: &[u8; 32], fields: &ChainFields<'_>) -> [u8; 32] {
    let canonical = (
        FORMAT_TAG,
        fields.seq,
        fields.occurred_at,
        fields.actor,
        fields.action,
        fields.entity,
        fields.entity_id,
        fields.trial_id,
        fields.patient_id,
        fields.submission_id,
        fields.before_value,
        fields.after_value,
        (fields.reason, fields.request_id),
    );
    // A tuple of strings, integers and options cannot fail to serialize.
    let json = serde_json::to_vec(&canonical).expect("a tuple of strings and integers serializes");

    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(&json);
    hasher.finalize().into()
}

/// Formats an audit time the way it is hashed and stored: RFC 3339 in UTC with exactly
/// six fractional digits, so that text order is time order.
pub(crate) fn format_audit_time(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    let micros = utc.nanosecond() / 1_000;
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    let text = whole.format(&Rfc3339).unwrap_or_else(|_| whole.to_string());
    // `text` ends in `Z` with no fraction, because the nanoseconds are zero.
    format!("{}.{micros:06}Z", text.trim_end_matches('Z'))
}

/// Checks rows of one chain in `seq` order, one page at a time, and stops at the first
/// broken link.
#[derive(Debug, Default)]
pub(crate) struct ChainWalk {
    previous: Option<(i64, [u8; 32])>,
    checked: u64,
}

impl ChainWalk {
    /// Checks the next row: it has a hash, its `prev_hash` is the hash of the row
    /// before (or zeros for the first), and its hash matches its content.
    pub(crate) fn check(&mut self, record: &AuditRecord) -> Result<(), AuditBreak> {
        let broken = |kind| AuditBreak { seq: record.seq, kind, entries_checked: self.checked };

        let (Some(prev_hash), Some(hash)) = (record.prev_hash, record.hash) else {
            return Err(broken(AuditBreakKind::Unsealed));
        };
        let expected_prev = self.previous.map_or(GENESIS_HASH, |(_, hash)| hash);
        if prev_hash != expected_prev {
            return Err(broken(AuditBreakKind::LinkBroken { previous_seq: self.previous.map(|(seq, _)| seq) }));
        }
        if link_hash(&prev_hash, &ChainFields::of(record)) != hash {
            return Err(broken(AuditBreakKind::ContentChanged));
        }

        self.previous = Some((record.seq, hash));
        self.checked += 1;
        Ok(())
    }

    /// Number of rows checked so far, all intact.
    pub(crate) fn checked(&self) -> u64 {
        self.checked
    }

    /// The last intact row: its `seq` and hash.
    pub(crate) fn head(&self) -> Option<(i64, [u8; 32])> {
        self.previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, actor: &str) -> AuditRecord {
        AuditRecord {
            seq,
            occurred_at: "2026-12-05T01:02:03.000004Z".to_owned(),
            actor: actor.to_owned(),
            action: "submission.created".to_owned(),
            entity: "submission".to_owned(),
            entity_id: format!("s-{seq}"),
            trial_id: Some("demo".to_owned()),
            patient_id: Some("P-1".to_owned()),
            submission_id: Some(format!("s-{seq}")),
            before_value: None,
            after_value: Some(r#"{"status":"open"}"#.to_owned()),
            reason: None,
            request_id: None,
            prev_hash: None,
            hash: None,
        }
    }

    fn chain(actors: &[&str]) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH;
        actors
            .iter()
            .enumerate()
            .map(|(index, actor)| {
                let mut row = record(index as i64 + 1, actor);
                let hash = link_hash(&prev, &ChainFields::of(&row));
                row.prev_hash = Some(prev);
                row.hash = Some(hash);
                prev = hash;
                row
            })
            .collect()
    }

    fn walk(rows: &[AuditRecord]) -> Result<u64, AuditBreak> {
        let mut walk = ChainWalk::default();
        for row in rows {
            walk.check(row)?;
        }
        Ok(walk.checked())
    }

    #[test]
    fn walk_accepts_intact_chain() {
        assert_eq!(walk(&chain(&["a", "b", "c"])), Ok(3));
    }

    #[test]
    fn walk_names_changed_row() {
        let mut rows = chain(&["a", "b", "c"]);
        rows[1].actor = "mallory".to_owned();

        let broken = walk(&rows).unwrap_err();

        assert_eq!(broken.seq, 2);
        assert_eq!(broken.kind, AuditBreakKind::ContentChanged);
    }

    #[test]
    fn walk_names_row_after_rehashed_row() {
        let mut rows = chain(&["a", "b", "c"]);
        rows[1].actor = "mallory".to_owned();
        rows[1].hash = Some(link_hash(&rows[1].prev_hash.unwrap(), &ChainFields::of(&rows[1])));

        let broken = walk(&rows).unwrap_err();

        assert_eq!(broken.seq, 3);
        assert_eq!(broken.kind, AuditBreakKind::LinkBroken { previous_seq: Some(2) });
    }

    #[test]
    fn walk_names_row_after_deleted_row() {
        let mut rows = chain(&["a", "b", "c"]);
        rows.remove(1);

        assert_eq!(walk(&rows).unwrap_err().seq, 3);
    }

    #[test]
    fn walk_rejects_row_without_hash() {
        let mut rows = chain(&["a", "b"]);
        rows[1].hash = None;

        assert_eq!(walk(&rows).unwrap_err().kind, AuditBreakKind::Unsealed);
    }

    #[test]
    fn hash_distinguishes_null_from_empty_and_moved_text() {
        let base = record(1, "a");
        let mut empty_reason = record(1, "a");
        empty_reason.reason = Some(String::new());
        let mut moved = record(1, "a");
        moved.trial_id = None;
        moved.patient_id = Some("demo".to_owned());

        let hash = |row: &AuditRecord| link_hash(&GENESIS_HASH, &ChainFields::of(row));

        assert_ne!(hash(&base), hash(&empty_reason));
        assert_ne!(hash(&base), hash(&moved));
    }

    #[test]
    fn audit_time_has_six_fraction_digits() {
        let instant = time::macros::datetime!(2026-12-05 01:02:03.000_004_567 +08:00);

        assert_eq!(format_audit_time(instant), "2026-12-04T17:02:03.000004Z");
        assert_eq!(format_audit_time(time::macros::datetime!(2026-12-05 01:02:03 UTC)), "2026-12-05T01:02:03.000000Z");
    }
}
