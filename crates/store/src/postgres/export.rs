//! Exports on PostgreSQL: the high-water mark, one page of a form's submission
//! versions in (xid, seq) order, and the audit row, with the same results as the SQLite versions
//! in `crate::reader::export` and `crate::writer::export`.
//!
//! `xid8` has no Rust type in tokio-postgres, so transaction ids cross the wire as
//! `bigint` through a text cast. A 64-bit transaction id counts epochs in its high
//! half, and stays below `i64::MAX` for far longer than any server runs.

use anyhow::{Context as _, bail};
use deadpool_postgres::Object;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::reader::compact_json;
use crate::audit::AuditEntry;
use crate::columns::with_offset_seconds;
use crate::model::{ExportAudit, ExportCursor, ExportPage, ExportRow, Key, Mark, RowKey};
use crate::writer::EXPORT_CREATED;

/// Returns a fresh snapshot as the mark: its `xmax` and its running transactions.
///
/// The rows this snapshot sees are those whose `xid` is below `xmax` and not running,
/// because rows are only ever inserted. Those transactions have ended, so that set
/// never changes. Any transaction that commits later is either running now or gets an
/// id at or above `xmax`, so the mark never covers a row committed after it.
///
/// # Errors
///
/// Fails on a database error.
pub(super) async fn mark(client: &Object) -> anyhow::Result<ExportCursor> {
    let row = client
        .query_one(
            "SELECT pg_snapshot_xmax(snapshot)::text::bigint,
                    ARRAY(SELECT xid::text::bigint FROM pg_snapshot_xip(snapshot) AS xid ORDER BY 1)
             FROM pg_current_snapshot() AS snapshot",
            &[],
        )
        .await
        .context("failed to read the current snapshot")?;
    let xmax: i64 = row.try_get(0).context("failed to read the snapshot's xmax")?;
    let running: Vec<i64> = row.try_get(1).context("failed to read the snapshot's running transactions")?;
    Ok(ExportCursor(Mark::Postgres { xmax, running }))
}

/// Reads up to `page.limit` submissions of one form that `page.until` covers and
/// `page.since` does not, after `page.after`, in `(xid, seq)` order, each with its
/// number of data queries.
///
/// # Errors
///
/// Fails when a cursor belongs to SQLite, on a database error, or on a row that this
/// crate could not have written.
pub(super) async fn page(client: &Object, page: &ExportPage<'_>) -> anyhow::Result<Vec<ExportRow>> {
    // Without a cursor every row counts as new: xmax 0 covers nothing. Rows stored
    // before the export migration have xid 0, which is not below 0.
    let (since_xmax, since_running) = match page.since.map(|cursor| &cursor.0) {
        None => (0, &[][..]),
        Some(Mark::Postgres { xmax, running }) => (*xmax, running.as_slice()),
        Some(Mark::Sqlite { .. }) => bail!("export cursor belongs to SQLite"),
    };
    let Mark::Postgres { xmax: until_xmax, running: until_running } = &page.until.0 else {
        bail!("export mark {} belongs to SQLite", page.until);
    };
    // The first row the cursor does not cover has an id at least as high as its oldest
    // running transaction or its xmax, so the index scan can start there instead of at
    // the form's first row.
    let lowest_new = since_running.first().copied().unwrap_or(since_xmax).min(since_xmax);
    let (after_xid, after_seq) = match page.after.map(|key| key.0) {
        None => (lowest_new, 0),
        Some(Key::Postgres { xid, seq }) => (xid, seq),
        Some(Key::Sqlite { .. }) => bail!("row key belongs to SQLite"),
    };
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);

    // `seq` starts at 1, so (lowest_new, 0) sorts before every row of that transaction.
    // Version 1 of each submission is its `submissions` row and every later version a
    // `submission_versions` row. Both take `seq` from one sequence, so (xid, seq) orders
    // them together. Each branch reads at most one page in index order.
    let statement = client
        .prepare_cached(
            "WITH page AS (
                 (SELECT s.xid, s.seq, s.submission_id, 1 AS version, s.normalized_answers::text AS answers,
                         s.scores::text AS scores, s.status, NULL::text AS reason, NULL::timestamptz AS corrected_at
                  FROM submissions s
                  WHERE s.trial_id = $1 AND s.form_id = $2
                    AND (s.xid, s.seq) > ($3::bigint::text::xid8, $4::bigint)
                    AND (s.xid >= $5::bigint::text::xid8 OR s.xid::text::bigint = ANY($6::bigint[]))
                    AND s.xid < $7::bigint::text::xid8 AND NOT (s.xid::text::bigint = ANY($8::bigint[]))
                  ORDER BY s.xid, s.seq
                  LIMIT $9)
                 UNION ALL
                 (SELECT v.xid, v.seq, v.submission_id, v.version, v.normalized_answers::text, v.scores::text,
                         v.status, v.reason, v.corrected_at
                  FROM submission_versions v
                  WHERE v.trial_id = $1 AND v.form_id = $2
                    AND (v.xid, v.seq) > ($3::bigint::text::xid8, $4::bigint)
                    AND (v.xid >= $5::bigint::text::xid8 OR v.xid::text::bigint = ANY($6::bigint[]))
                    AND v.xid < $7::bigint::text::xid8 AND NOT (v.xid::text::bigint = ANY($8::bigint[]))
                  ORDER BY v.xid, v.seq
                  LIMIT $9)
                 ORDER BY 1, 2
                 LIMIT $9
             )
             SELECT p.xid::text::bigint, p.seq, p.submission_id, s.form_version, s.patient_id, s.completed_at,
                    s.completed_at_offset_seconds, s.received_at, s.source, p.answers, p.scores, p.status,
                    (SELECT count(*) FROM data_queries d
                     WHERE d.submission_id = p.submission_id AND d.version = p.version),
                    p.version, p.reason, p.corrected_at
             FROM page p JOIN submissions s ON s.submission_id = p.submission_id
             ORDER BY p.xid, p.seq",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &page.trial_id,
                &page.form_id,
                &after_xid,
                &after_seq,
                &since_xmax,
                &since_running,
                until_xmax,
                until_running,
                &limit,
            ],
        )
        .await
        .with_context(|| format!("failed to query the export of form {} in trial {}", page.form_id, page.trial_id))?;

    let mut exported = Vec::with_capacity(rows.len());
    for row in rows {
        let submission_id: String = row.try_get(2).context("failed to read exported submission")?;
        exported.push(decode(&row).with_context(|| format!("invalid stored submission {submission_id}"))?);
    }
    Ok(exported)
}

fn decode(row: &Row) -> anyhow::Result<ExportRow> {
    let source: String = row.try_get(8)?;
    let scores: String = row.try_get(10)?;
    let status: String = row.try_get(11)?;
    let query_count: i64 = row.try_get(12)?;
    let version: i32 = row.try_get(13)?;
    let completed_at: OffsetDateTime = row.try_get(5)?;
    Ok(ExportRow {
        key: RowKey(Key::Postgres { xid: row.try_get(0)?, seq: row.try_get(1)? }),
        submission_id: row.try_get(2)?,
        version: u32::try_from(version).context("version out of range")?,
        correction_reason: row.try_get(14)?,
        corrected_at: row.try_get(15)?,
        form_version: row.try_get(3)?,
        patient_id: row.try_get(4)?,
        completed_at: with_offset_seconds(completed_at, row.try_get(6)?)?,
        received_at: row.try_get(7)?,
        source: source.parse()?,
        normalized_answers: row.try_get(9)?,
        scores: compact_json(&scores),
        status: status.parse()?,
        query_count: u32::try_from(query_count).context("query count out of range")?,
    })
}

/// Appends the audit row of an export in a transaction of its own.
///
/// # Errors
///
/// Fails when the actor is empty (a CHECK rejects it) or the insert fails.
pub(super) async fn record(client: &mut Object, audit: &ExportAudit) -> anyhow::Result<()> {
    let entity_id = audit.entity_id();
    let entry = AuditEntry {
        trial_id: Some(&audit.trial_id),
        request_id: audit.request_id.as_deref(),
        ..AuditEntry::new(OffsetDateTime::now_utc(), &audit.actor, EXPORT_CREATED, "form", &entity_id)
    };
    let transaction = client.transaction().await.context("failed to begin transaction")?;
    super::audit::append(&transaction, &[entry])
        .await
        .with_context(|| format!("failed to insert audit event for form {entity_id}"))?;
    transaction.commit().await.with_context(|| format!("failed to commit audit event for form {entity_id}"))
}
