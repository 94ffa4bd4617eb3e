//! Reads of an export on SQLite: the high-water mark and one page of a form's
//! submission versions in `submission_sequence` order.

use anyhow::{Context as _, bail};
use rusqlite::{Connection, Row};

use crate::columns::{parse_timestamp, parse_with_offset};
use crate::model::{ExportCursor, ExportPage, ExportRow, Key, Mark, RowKey};

/// Returns the `seq` of the last committed submission, or 0 before the first.
///
/// Every submission committed later gets a greater `seq`: the one writer allocates
/// `seq` inside its transaction, above every value handed out before, and this read
/// sees only committed rows.
///
/// # Errors
///
/// Fails on a database error.
pub(crate) fn export_mark(connection: &Connection) -> anyhow::Result<ExportCursor> {
    let seq: i64 = connection
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM submission_sequence")?
        .query_row([], |row| row.get(0))
        .context("failed to read the last submission sequence number")?;
    Ok(ExportCursor(Mark::Sqlite { seq }))
}

/// Reads up to `page.limit` submissions of one form with a `seq` above `page.since`
/// and `page.after` and at most `page.until`, in `seq` order, each with its number of
/// data queries.
///
/// # Errors
///
/// Fails when a cursor belongs to PostgreSQL, on a database error, or on a row that
/// this crate could not have written.
pub(crate) fn export_page(connection: &Connection, page: &ExportPage<'_>) -> anyhow::Result<Vec<ExportRow>> {
    let since = match page.since.map(|cursor| &cursor.0) {
        None => 0,
        Some(Mark::Sqlite { seq }) => *seq,
        Some(Mark::Postgres { .. }) => bail!("export cursor belongs to PostgreSQL"),
    };
    let Mark::Sqlite { seq: until } = page.until.0 else {
        bail!("export mark {} belongs to PostgreSQL", page.until);
    };
    let after = match page.after.map(|key| key.0) {
        None => since,
        Some(Key::Sqlite { seq }) => seq.max(since),
        Some(Key::Postgres { .. }) => bail!("row key belongs to PostgreSQL"),
    };
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);

    let mut statement = connection.prepare_cached(
        "SELECT q.seq, s.submission_id, s.form_version, s.patient_id, s.completed_at,
                s.completed_at_offset_seconds, s.received_at, s.source,
                coalesce(v.normalized_answers, s.normalized_answers), coalesce(v.scores, s.scores),
                coalesce(v.status, s.status),
                (SELECT count(*) FROM data_queries d WHERE d.submission_id = s.submission_id AND d.version = q.version),
                q.version, v.reason, v.corrected_at
         FROM submission_sequence q JOIN submissions s ON s.submission_id = q.submission_id
         LEFT JOIN submission_versions v ON v.submission_id = q.submission_id AND v.version = q.version
         WHERE q.trial_id = ?1 AND q.form_id = ?2 AND q.seq > ?3 AND q.seq <= ?4
         ORDER BY q.seq LIMIT ?5",
    )?;
    let rows = statement
        .query_map(rusqlite::params![page.trial_id, page.form_id, after, until, limit], ExportColumns::from_row)
        .with_context(|| format!("failed to query the export of form {} in trial {}", page.form_id, page.trial_id))?;

    let mut exported = Vec::with_capacity(page.limit.min(1024));
    for row in rows {
        let columns = row.context("failed to read exported submission")?;
        let submission_id = columns.submission_id.clone();
        exported.push(columns.decode().with_context(|| format!("invalid stored submission {submission_id}"))?);
    }
    Ok(exported)
}

/// One row of the export query, before decoding.
struct ExportColumns {
    seq: i64,
    submission_id: String,
    form_version: String,
    patient_id: String,
    completed_at: String,
    completed_at_offset_seconds: i32,
    received_at: String,
    source: String,
    normalized_answers: String,
    scores: String,
    status: String,
    query_count: i64,
    version: u32,
    correction_reason: Option<String>,
    corrected_at: Option<String>,
}

impl ExportColumns {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ExportColumns {
            seq: row.get(0)?,
            submission_id: row.get(1)?,
            form_version: row.get(2)?,
            patient_id: row.get(3)?,
            completed_at: row.get(4)?,
            completed_at_offset_seconds: row.get(5)?,
            received_at: row.get(6)?,
            source: row.get(7)?,
            normalized_answers: row.get(8)?,
            scores: row.get(9)?,
            status: row.get(10)?,
            query_count: row.get(11)?,
            version: row.get(12)?,
            correction_reason: row.get(13)?,
            corrected_at: row.get(14)?,
        })
    }

    fn decode(self) -> anyhow::Result<ExportRow> {
        Ok(ExportRow {
            key: RowKey(Key::Sqlite { seq: self.seq }),
            submission_id: self.submission_id,
            version: self.version,
            correction_reason: self.correction_reason,
            corrected_at: self.corrected_at.as_deref().map(parse_timestamp).transpose()?,
            form_version: self.form_version,
            patient_id: self.patient_id,
            completed_at: parse_with_offset(&self.completed_at, self.completed_at_offset_seconds)?,
            received_at: parse_timestamp(&self.received_at)?,
            source: self.source.parse()?,
            normalized_answers: self.normalized_answers,
            scores: self.scores,
            status: self.status.parse()?,
            query_count: u32::try_from(self.query_count).context("query count out of range")?,
        })
    }
}
