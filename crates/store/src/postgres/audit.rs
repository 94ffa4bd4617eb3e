//! The audit trail on PostgreSQL: appending chained rows, reading filtered pages, and
//! hashing rows written before the chain existed.
//!
//! Appends from every transaction of every instance go through [`append`], which takes
//! a transaction-level advisory lock before it reads the chain's head, so the rows of
//! concurrent transactions are numbered and chained in commit order. Each caller
//! appends as the last write of its transaction, so the lock is held only until the
//! commit and a holder never waits for another lock: no deadlock can form around it.

use anyhow::{Context as _, anyhow};
use deadpool_postgres::{GenericClient, Object, Transaction};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::audit::{AuditEntry, CHAIN_LOCK_KEY, ChainFields, GENESIS_HASH, format_audit_time, link_hash};
use crate::columns::truncate_to_micros;
use crate::model::{AuditFilter, AuditRecord};

/// Column list of every read of `audit_events`, in the order [`decode`] expects.
const AUDIT_COLUMNS: &str = "seq, occurred_at, actor, action, entity, entity_id, trial_id, patient_id,
    submission_id, before_value::text, after_value::text, reason, request_id, prev_hash, hash";

/// `seq` is `GENERATED ALWAYS`; the chain numbers rows itself, hence `OVERRIDING
/// SYSTEM VALUE`.
const INSERT_AUDIT_EVENTS: &str = "
    INSERT INTO audit_events (seq, occurred_at, actor, action, entity, entity_id, request_id, reason,
                              trial_id, patient_id, submission_id, before_value, after_value, prev_hash, hash)
    OVERRIDING SYSTEM VALUE
    SELECT u.seq, u.occurred_at, u.actor, u.action, u.entity, u.entity_id, u.request_id, u.reason,
           u.trial_id, u.patient_id, u.submission_id, u.before_value::json, u.after_value::json, u.prev_hash, u.hash
    FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::bytea[])
        AS u (seq, occurred_at, actor, action, entity, entity_id, request_id, reason,
              trial_id, patient_id, submission_id, before_value, after_value, prev_hash, hash)";

/// Appends `entries` to the audit trail in order, chained after the newest row. Call
/// it as the last write of the transaction.
///
/// # Errors
///
/// Fails on a database error, when a CHECK rejects a row (an empty actor), or when the
/// newest row has no hash.
pub(super) async fn append(transaction: &Transaction<'_>, entries: &[AuditEntry<'_>]) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK_KEY])
        .await
        .context("failed to take the audit chain lock")?;
    let (head_seq, head_hash) = chain_head(transaction).await?;

    let mut columns = Columns::with_capacity(entries.len());
    let mut previous = head_hash;
    for (offset, entry) in entries.iter().enumerate() {
        let seq = head_seq + 1 + offset as i64;
        let occurred_at = truncate_to_micros(entry.occurred_at);
        let hash = link_hash(&previous, &entry.chain_fields(seq, &format_audit_time(occurred_at)));
        columns.push(seq, occurred_at, entry, previous, hash);
        previous = hash;
    }

    let statement = transaction.prepare_cached(INSERT_AUDIT_EVENTS).await?;
    transaction
        .execute(
            &statement,
            &[
                &columns.seq,
                &columns.occurred_at,
                &columns.actor,
                &columns.action,
                &columns.entity,
                &columns.entity_id,
                &columns.request_id,
                &columns.reason,
                &columns.trial_id,
                &columns.patient_id,
                &columns.submission_id,
                &columns.before_value,
                &columns.after_value,
                &columns.prev_hash,
                &columns.hash,
            ],
        )
        .await
        .with_context(|| format!("failed to insert {} audit events", entries.len()))?;
    Ok(())
}

/// Reads up to `filter.limit` audit rows that match every filter given, in `seq` order
/// after `filter.after_seq`.
///
/// # Errors
///
/// Fails on a database error or a hash that is not 32 bytes.
pub(super) async fn audit_events(client: &Object, filter: &AuditFilter) -> anyhow::Result<Vec<AuditRecord>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1");
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&filter.after_seq];
    let conditions: [(&str, Option<&(dyn ToSql + Sync)>); 6] = [
        ("trial_id =", filter.trial_id.as_ref().map(|value| value as _)),
        ("patient_id =", filter.patient_id.as_ref().map(|value| value as _)),
        ("submission_id =", filter.submission_id.as_ref().map(|value| value as _)),
        ("actor =", filter.actor.as_ref().map(|value| value as _)),
        ("occurred_at >=", filter.from.as_ref().map(|value| value as _)),
        ("occurred_at <", filter.to.as_ref().map(|value| value as _)),
    ];
    for (condition, value) in conditions {
        if let Some(value) = value {
            values.push(value);
            sql.push_str(&format!(" AND {condition} ${}", values.len()));
        }
    }
    values.push(&limit);
    sql.push_str(&format!(" ORDER BY seq LIMIT ${}", values.len()));

    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &values).await.context("failed to read audit events")?;
    rows.iter().map(decode).collect()
}

/// Hashes, in `seq` order, every audit row that has no hash yet: the rows written
/// before the chain existed. Runs once when the store opens, in one transaction under
/// the chain lock, and returns how many rows it sealed.
///
/// # Errors
///
/// Fails on a database error, or when a row without a hash follows one with a hash,
/// which means a row was inserted by something other than the store.
pub(super) async fn seal_unhashed(client: &mut Object) -> anyhow::Result<u64> {
    let transaction = client.transaction().await.context("failed to begin the audit seal")?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK_KEY])
        .await
        .context("failed to take the audit chain lock")?;

    let bounds = transaction
        .query_one(
            "SELECT (SELECT max(seq) FROM audit_events WHERE hash IS NULL),
                    (SELECT min(seq) FROM audit_events WHERE hash IS NOT NULL)",
            &[],
        )
        .await
        .context("failed to find unhashed audit rows")?;
    let last_unhashed: Option<i64> = bounds.try_get(0)?;
    let first_hashed: Option<i64> = bounds.try_get(1)?;
    let Some(last_unhashed) = last_unhashed else {
        return Ok(0);
    };
    if let Some(first_hashed) = first_hashed.filter(|first| *first < last_unhashed) {
        return Err(anyhow!("audit row {last_unhashed} has no hash but follows the hashed row {first_hashed}"));
    }

    let select = transaction
        .prepare(&format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"))
        .await?;
    let update = transaction.prepare("UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE seq = $1").await?;
    let mut previous = GENESIS_HASH;
    let mut after_seq = 0_i64;
    let mut sealed = 0;
    loop {
        let rows = transaction.query(&select, &[&after_seq]).await.context("failed to read audit events")?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let record = decode(row)?;
            after_seq = record.seq;
            let hash = link_hash(&previous, &ChainFields::of(&record));
            transaction
                .execute(&update, &[&record.seq, &&previous[..], &&hash[..]])
                .await
                .with_context(|| format!("failed to hash audit row {}", record.seq))?;
            previous = hash;
            sealed += 1;
        }
    }
    transaction.commit().await.context("failed to commit the audit seal")?;
    Ok(sealed)
}

/// Reads the `seq` and hash of the newest audit row, or 0 and the genesis hash for an
/// empty trail.
async fn chain_head(client: &impl GenericClient) -> anyhow::Result<(i64, [u8; 32])> {
    let row = client
        .query_opt("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1", &[])
        .await
        .context("failed to read the head of the audit chain")?;
    let Some(row) = row else {
        return Ok((0, GENESIS_HASH));
    };
    let seq: i64 = row.try_get(0)?;
    let hash: Option<Vec<u8>> = row.try_get(1)?;
    let hash = hash.ok_or_else(|| anyhow!("audit row {seq} has no hash, so no row can be chained after it"))?;
    let hash = to_hash(seq, &hash)?;
    Ok((seq, hash))
}

fn decode(row: &Row) -> anyhow::Result<AuditRecord> {
    let seq: i64 = row.try_get(0)?;
    let occurred_at: OffsetDateTime = row.try_get(1)?;
    let prev_hash: Option<Vec<u8>> = row.try_get(13)?;
    let hash: Option<Vec<u8>> = row.try_get(14)?;
    Ok(AuditRecord {
        seq,
        occurred_at: format_audit_time(occurred_at),
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        entity: row.try_get(4)?,
        entity_id: row.try_get(5)?,
        trial_id: row.try_get(6)?,
        patient_id: row.try_get(7)?,
        submission_id: row.try_get(8)?,
        before_value: row.try_get(9)?,
        after_value: row.try_get(10)?,
        reason: row.try_get(11)?,
        request_id: row.try_get(12)?,
        prev_hash: prev_hash.map(|bytes| to_hash(seq, &bytes)).transpose()?,
        hash: hash.map(|bytes| to_hash(seq, &bytes)).transpose()?,
    })
}

fn to_hash(seq: i64, bytes: &[u8]) -> anyhow::Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| anyhow!("audit row {seq} has a hash of {} bytes, expected 32", bytes.len()))
}

/// The columns of [`INSERT_AUDIT_EVENTS`], one array per column.
struct Columns<'a> {
    seq: Vec<i64>,
    occurred_at: Vec<OffsetDateTime>,
    actor: Vec<&'a str>,
    action: Vec<&'a str>,
    entity: Vec<&'a str>,
    entity_id: Vec<&'a str>,
    request_id: Vec<Option<&'a str>>,
    reason: Vec<Option<&'a str>>,
    trial_id: Vec<Option<&'a str>>,
    patient_id: Vec<Option<&'a str>>,
    submission_id: Vec<Option<&'a str>>,
    before_value: Vec<Option<&'a str>>,
    after_value: Vec<Option<&'a str>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Columns {
            seq: Vec::with_capacity(capacity),
            occurred_at: Vec::with_capacity(capacity),
            actor: Vec::with_capacity(capacity),
            action: Vec::with_capacity(capacity),
            entity: Vec::with_capacity(capacity),
            entity_id: Vec::with_capacity(capacity),
            request_id: Vec::with_capacity(capacity),
            reason: Vec::with_capacity(capacity),
            trial_id: Vec::with_capacity(capacity),
            patient_id: Vec::with_capacity(capacity),
            submission_id: Vec::with_capacity(capacity),
            before_value: Vec::with_capacity(capacity),
            after_value: Vec::with_capacity(capacity),
            prev_hash: Vec::with_capacity(capacity),
            hash: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, seq: i64, occurred_at: OffsetDateTime, entry: &AuditEntry<'a>, prev: [u8; 32], hash: [u8; 32]) {
        self.seq.push(seq);
        self.occurred_at.push(occurred_at);
        self.actor.push(entry.actor);
        self.action.push(entry.action);
        self.entity.push(entry.entity);
        self.entity_id.push(entry.entity_id);
        self.request_id.push(entry.request_id);
        self.reason.push(entry.reason);
        self.trial_id.push(entry.trial_id);
        self.patient_id.push(entry.patient_id);
        self.submission_id.push(entry.submission_id);
        self.before_value.push(entry.before_value);
        self.after_value.push(entry.after_value);
        self.prev_hash.push(prev.to_vec());
        self.hash.push(hash.to_vec());
    }
}
