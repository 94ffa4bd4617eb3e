//! Reads of `audit_events` on SQLite: filtered pages by `seq` cursor, and the seal that
//! hashes rows written before the chain existed.

use anyhow::{Context as _, anyhow};
use rusqlite::types::ToSql;
use rusqlite::{Connection, Row};

use crate::audit::{ChainFields, GENESIS_HASH, format_audit_time, link_hash};
use crate::model::{AuditFilter, AuditRecord};

/// Column list of every read of `audit_events`, in the order [`decode`] expects.
const AUDIT_COLUMNS: &str = "seq, occurred_at, actor, action, entity, entity_id, trial_id, patient_id,
    submission_id, before_value, after_value, reason, request_id, prev_hash, hash";

/// Reads up to `filter.limit` audit rows that match every filter given, in `seq` order
/// after `filter.after_seq`.
///
/// # Errors
///
/// Fails on a database error or a hash that is not 32 bytes.
pub(crate) fn audit_events(connection: &Connection, filter: &AuditFilter) -> anyhow::Result<Vec<AuditRecord>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let from = filter.from.map(format_audit_time);
    let to = filter.to.map(format_audit_time);

    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > ?");
    let mut values: Vec<&dyn ToSql> = vec![&filter.after_seq];
    let conditions: [(&str, Option<&String>); 6] = [
        (" AND trial_id = ?", filter.trial_id.as_ref()),
        (" AND patient_id = ?", filter.patient_id.as_ref()),
        (" AND submission_id = ?", filter.submission_id.as_ref()),
        (" AND actor = ?", filter.actor.as_ref()),
        (" AND occurred_at >= ?", from.as_ref()),
        (" AND occurred_at < ?", to.as_ref()),
    ];
    for (condition, value) in conditions {
        if let Some(value) = value {
            sql.push_str(condition);
            values.push(value);
        }
    }
    sql.push_str(" ORDER BY seq LIMIT ?");
    values.push(&limit);

    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(values.as_slice(), decode).context("failed to read audit events")?;
    rows.collect::<Result<Vec<_>, _>>().context("failed to read audit events")
}

/// Hashes, in `seq` order, every audit row that has no hash yet: the rows written
/// before the chain existed. Runs on the writer connection when the store opens, in
/// one transaction, and returns how many rows it sealed.
///
/// # Errors
///
/// Fails on a database error, or when a row without a hash follows one with a hash,
/// which means a row was inserted by something other than the store.
pub(crate) fn seal_unhashed(connection: &mut Connection) -> anyhow::Result<u64> {
    let transaction = connection.transaction().context("failed to begin the audit seal")?;
    let mut sealed = 0;
    {
        let mut select = transaction.prepare(&format!("SELECT {AUDIT_COLUMNS} FROM audit_events ORDER BY seq"))?;
        let mut update = transaction.prepare("UPDATE audit_events SET prev_hash = ?2, hash = ?3 WHERE seq = ?1")?;
        let mut rows = select.query([]).context("failed to read audit events")?;
        let mut previous = GENESIS_HASH;
        let mut seen_hashed = false;
        while let Some(row) = rows.next().context("failed to read audit events")? {
            let record = decode(row)?;
            if let Some(hash) = record.hash {
                previous = hash;
                seen_hashed = true;
                continue;
            }
            if seen_hashed {
                return Err(anyhow!("audit row {} has no hash but follows hashed rows", record.seq));
            }
            let hash = link_hash(&previous, &ChainFields::of(&record));
            update.execute(rusqlite::params![record.seq, &previous[..], &hash[..]])?;
            previous = hash;
            sealed += 1;
        }
    }
    transaction.commit().context("failed to commit the audit seal")?;
    Ok(sealed)
}

fn decode(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: row.get(0)?,
        occurred_at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        entity: row.get(4)?,
        entity_id: row.get(5)?,
        trial_id: row.get(6)?,
        patient_id: row.get(7)?,
        submission_id: row.get(8)?,
        before_value: row.get(9)?,
        after_value: row.get(10)?,
        reason: row.get(11)?,
        request_id: row.get(12)?,
        prev_hash: hash_column(row, 13)?,
        hash: hash_column(row, 14)?,
    })
}

fn hash_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<[u8; 32]>> {
    let bytes: Option<Vec<u8>> = row.get(index)?;
    bytes
        .map(|bytes| {
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Blob,
                    format!("audit hash of {} bytes, expected 32", bytes.len()).into(),
                )
            })
        })
        .transpose()
}
