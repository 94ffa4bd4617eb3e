//! Read queries, run on pooled `query_only` connections. The writer also calls
//! [`data_query`] and [`alert`] inside its savepoints.
//!
//! With WAL, each statement reads the state as of the last commit before it started,
//! and it neither blocks the writer nor waits for it. A read of a submission with its
//! data queries runs both statements in one read transaction, so that both see the
//! same commit.

mod access;
mod alerts;
mod audit;
mod corrections;
mod export;
mod queries;
pub(crate) mod trials;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::columns::{from_unix_millis, parse_timestamp, parse_uuid, parse_with_offset};
use crate::model::{DataQuery, OutboxBacklog, OutboxEvent, OutboxEventState, StoredSubmission};

pub(crate) use access::{credential, enrolments, staff_members};
pub(crate) use alerts::{ALERT_COLUMNS, AlertColumns, alert, alerts, open_alert_count};
pub(crate) use audit::{audit_events, seal_unhashed};
pub(crate) use corrections::{SignatureColumns, latest_version, submission_history};
pub(crate) use export::{export_mark, export_page};
pub(crate) use queries::{data_queries, data_query};

/// Reads one submission by id, with its data queries.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn submission(connection: &Connection, submission_id: &str) -> anyhow::Result<Option<StoredSubmission>> {
    let snapshot = connection.unchecked_transaction().context("failed to begin read transaction")?;
    read_submission(&snapshot, submission_id)
}

/// Reads one submission with its data queries, in the caller's read transaction.
fn read_submission(snapshot: &Connection, submission_id: &str) -> anyhow::Result<Option<StoredSubmission>> {
    let columns = snapshot
        .prepare_cached(
            "SELECT submission_id, trial_id, form_id, form_version, patient_id,
                    completed_at, completed_at_offset_seconds, received_at, source,
                    raw_answers, normalized_answers, content_sha256, request_id, scores, status
             FROM submissions WHERE submission_id = ?1",
        )?
        .query_row([submission_id], SubmissionColumns::from_row)
        .optional()
        .with_context(|| format!("failed to read submission {submission_id}"))?;
    let Some(columns) = columns else {
        return Ok(None);
    };

    let queries = queries::submission_queries(snapshot, submission_id)?;
    let submission = columns.decode(queries).with_context(|| format!("invalid stored submission {submission_id}"))?;
    Ok(Some(submission))
}

/// Reads up to `limit` submissions of one form after the rowid `after`, in rowid
/// order, each with its rowid and data queries. `form_version` narrows the page to one
/// version when given.
///
/// Rowids increase in insertion order because submissions are never deleted.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn submissions_page(
    connection: &Connection,
    page: &SubmissionPage<'_>,
) -> anyhow::Result<Vec<(i64, StoredSubmission)>> {
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
    let after = page.after.unwrap_or(i64::MIN);
    let snapshot = connection.unchecked_transaction().context("failed to begin read transaction")?;

    let mut statement = snapshot.prepare_cached(
        "SELECT submission_id, trial_id, form_id, form_version, patient_id,
                completed_at, completed_at_offset_seconds, received_at, source,
                raw_answers, normalized_answers, content_sha256, request_id, scores, status, rowid
         FROM submissions
         WHERE trial_id = ?1 AND form_id = ?2 AND (?3 IS NULL OR form_version = ?3) AND rowid > ?4
         ORDER BY rowid LIMIT ?5",
    )?;
    let rows = statement
        .query_map(rusqlite::params![page.trial_id, page.form_id, page.form_version, after, limit], |row| {
            Ok((row.get::<_, i64>(15)?, SubmissionColumns::from_row(row)?))
        })
        .with_context(|| format!("failed to query submissions of form {} in trial {}", page.form_id, page.trial_id))?;

    let mut submissions = Vec::new();
    for row in rows {
        let (rowid, columns) = row.context("failed to read submission")?;
        let submission_id = columns.submission_id.clone();
        let queries = queries::submission_queries(&snapshot, &submission_id)?;
        let submission =
            columns.decode(queries).with_context(|| format!("invalid stored submission {submission_id}"))?;
        submissions.push((rowid, submission));
    }
    Ok(submissions)
}

/// Selection of one page of submissions for [`submissions_page`].
pub(crate) struct SubmissionPage<'a> {
    pub(crate) trial_id: &'a str,
    pub(crate) form_id: &'a str,
    pub(crate) form_version: Option<&'a str>,
    /// Rowid of the last submission of the previous page.
    pub(crate) after: Option<i64>,
    pub(crate) limit: usize,
}

/// The columns [`OutboxColumns::from_row`] reads, in its order.
pub(crate) const OUTBOX_COLUMNS: &str =
    "seq, event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload, attempts";

/// [`OUTBOX_COLUMNS`] followed by the delivery state [`outbox_state_from_row`] reads.
const OUTBOX_STATE_COLUMNS: &str = "seq, event_id, event_type, occurred_at, trial_id, patient_id, submission_id, \
     payload, attempts, delivered_at, last_error, claimed_by, claim_expires_at, rejections, dead_lettered_at";

/// Reads up to `limit` pending outbox events (neither delivered nor dead-lettered) in
/// `seq` order, whether claimed or not. The relay claims with
/// [`Store::outbox_claim`](crate::Store::outbox_claim) instead.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn outbox_pending(connection: &Connection, limit: usize) -> anyhow::Result<Vec<OutboxEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox_events
         WHERE delivered_at IS NULL AND dead_lettered_at IS NULL ORDER BY seq LIMIT ?1"
    ))?;
    let rows =
        statement.query_map([limit], OutboxColumns::from_row).context("failed to query pending outbox events")?;
    decode_events(rows)
}

/// Decodes the rows of a query over [`OUTBOX_COLUMNS`].
pub(crate) fn decode_events(
    rows: impl Iterator<Item = rusqlite::Result<OutboxColumns>>,
) -> anyhow::Result<Vec<OutboxEvent>> {
    let mut events = Vec::new();
    for row in rows {
        let columns = row.context("failed to read outbox event")?;
        events.push(columns.decode()?);
    }
    Ok(events)
}

/// Counts the pending and the dead-lettered outbox events and reads the time of the
/// oldest pending one.
///
/// The statements use the partial indexes on pending and dead-lettered rows, and run
/// in one read transaction so that they see the same commit.
///
/// # Errors
///
/// Fails on a database error or a timestamp that this crate could not have written.
pub(crate) fn outbox_backlog(connection: &Connection) -> anyhow::Result<OutboxBacklog> {
    let snapshot = connection.unchecked_transaction().context("failed to begin read transaction")?;

    let pending: i64 = snapshot
        .prepare_cached("SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL AND dead_lettered_at IS NULL")?
        .query_row([], |row| row.get(0))
        .context("failed to count pending outbox events")?;
    let oldest: Option<String> = snapshot
        .prepare_cached(
            "SELECT occurred_at FROM outbox_events WHERE delivered_at IS NULL AND dead_lettered_at IS NULL
             ORDER BY seq LIMIT 1",
        )?
        .query_row([], |row| row.get(0))
        .optional()
        .context("failed to read the oldest pending outbox event")?;
    let dead_letters: i64 = snapshot
        .prepare_cached("SELECT count(*) FROM outbox_events WHERE dead_lettered_at IS NOT NULL")?
        .query_row([], |row| row.get(0))
        .context("failed to count dead-lettered outbox events")?;

    Ok(OutboxBacklog {
        pending: u64::try_from(pending).unwrap_or(0),
        oldest_occurred_at: oldest.as_deref().map(parse_timestamp).transpose()?,
        dead_letters: u64::try_from(dead_letters).unwrap_or(0),
    })
}

/// Reads one outbox event with its delivery state.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn outbox_event(connection: &Connection, seq: i64) -> anyhow::Result<Option<OutboxEventState>> {
    let mut statement =
        connection.prepare_cached(&format!("SELECT {OUTBOX_STATE_COLUMNS} FROM outbox_events WHERE seq = ?1"))?;
    let columns = statement
        .query_row([seq], StateColumns::from_row)
        .optional()
        .with_context(|| format!("failed to read outbox event {seq}"))?;
    columns.map(StateColumns::decode).transpose()
}

/// Reads up to `limit` dead-lettered events with `seq` above `after`, in `seq` order.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn outbox_dead_letters(
    connection: &Connection,
    after: Option<i64>,
    limit: usize,
) -> anyhow::Result<Vec<OutboxEventState>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {OUTBOX_STATE_COLUMNS} FROM outbox_events
         WHERE dead_lettered_at IS NOT NULL AND seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = statement
        .query_map(rusqlite::params![after.unwrap_or(0), limit], StateColumns::from_row)
        .context("failed to query dead-lettered outbox events")?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.context("failed to read outbox event")?.decode()?);
    }
    Ok(events)
}

/// An outbox row with its delivery state, before decoding.
struct StateColumns {
    event: OutboxColumns,
    delivered_at: Option<String>,
    last_error: Option<String>,
    claimed_by: Option<String>,
    claim_expires_at: Option<i64>,
    rejections: u32,
    dead_lettered_at: Option<String>,
}

impl StateColumns {
    /// Reads the columns of [`OUTBOX_STATE_COLUMNS`].
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(StateColumns {
            event: OutboxColumns::from_row(row)?,
            delivered_at: row.get(9)?,
            last_error: row.get(10)?,
            claimed_by: row.get(11)?,
            claim_expires_at: row.get(12)?,
            rejections: row.get(13)?,
            dead_lettered_at: row.get(14)?,
        })
    }

    fn decode(self) -> anyhow::Result<OutboxEventState> {
        let seq = self.event.seq;
        let timestamp = |value: Option<String>| {
            value
                .as_deref()
                .map(parse_timestamp)
                .transpose()
                .with_context(|| format!("invalid stored outbox event {seq}"))
        };
        Ok(OutboxEventState {
            delivered_at: timestamp(self.delivered_at)?,
            claim_expires_at: self.claim_expires_at.map(from_unix_millis).transpose()?,
            dead_lettered_at: timestamp(self.dead_lettered_at)?,
            event: self.event.decode()?,
            last_error: self.last_error,
            claimed_by: self.claimed_by,
            rejections: self.rejections,
        })
    }
}

/// A `submissions` row as stored, before decoding.
struct SubmissionColumns {
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    completed_at: String,
    completed_at_offset_seconds: i32,
    received_at: String,
    source: String,
    raw_answers: String,
    normalized_answers: String,
    content_sha256: Vec<u8>,
    request_id: Option<String>,
    scores: String,
    status: String,
}

impl SubmissionColumns {
    /// Reads the first fifteen columns, in the order of the `SELECT` lists above.
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(SubmissionColumns {
            submission_id: row.get(0)?,
            trial_id: row.get(1)?,
            form_id: row.get(2)?,
            form_version: row.get(3)?,
            patient_id: row.get(4)?,
            completed_at: row.get(5)?,
            completed_at_offset_seconds: row.get(6)?,
            received_at: row.get(7)?,
            source: row.get(8)?,
            raw_answers: row.get(9)?,
            normalized_answers: row.get(10)?,
            content_sha256: row.get(11)?,
            request_id: row.get(12)?,
            scores: row.get(13)?,
            status: row.get(14)?,
        })
    }

    fn decode(self, queries: Vec<DataQuery>) -> anyhow::Result<StoredSubmission> {
        let content_sha256 =
            <[u8; 32]>::try_from(self.content_sha256.as_slice()).context("content_sha256 is not 32 bytes")?;
        Ok(StoredSubmission {
            submission_id: self.submission_id,
            trial_id: self.trial_id,
            form_id: self.form_id,
            form_version: self.form_version,
            patient_id: self.patient_id,
            completed_at: parse_with_offset(&self.completed_at, self.completed_at_offset_seconds)?,
            received_at: parse_timestamp(&self.received_at)?,
            source: self.source.parse()?,
            raw_answers: self.raw_answers,
            normalized_answers: self.normalized_answers,
            content_sha256,
            request_id: self.request_id,
            scores: self.scores,
            status: self.status.parse()?,
            queries,
        })
    }
}

/// An `outbox_events` row as stored, before decoding.
pub(crate) struct OutboxColumns {
    seq: i64,
    event_id: String,
    event_type: String,
    occurred_at: String,
    trial_id: String,
    patient_id: String,
    submission_id: String,
    payload: String,
    attempts: u32,
}

impl OutboxColumns {
    /// Reads the first nine columns, in the order of [`OUTBOX_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(OutboxColumns {
            seq: row.get(0)?,
            event_id: row.get(1)?,
            event_type: row.get(2)?,
            occurred_at: row.get(3)?,
            trial_id: row.get(4)?,
            patient_id: row.get(5)?,
            submission_id: row.get(6)?,
            payload: row.get(7)?,
            attempts: row.get(8)?,
        })
    }

    fn decode(self) -> anyhow::Result<OutboxEvent> {
        let seq = self.seq;
        self.decode_fields().with_context(|| format!("invalid stored outbox event {seq}"))
    }

    fn decode_fields(self) -> anyhow::Result<OutboxEvent> {
        Ok(OutboxEvent {
            seq: self.seq,
            event_id: parse_uuid(&self.event_id)?,
            event_type: self.event_type,
            occurred_at: parse_timestamp(&self.occurred_at)?,
            trial_id: self.trial_id,
            patient_id: self.patient_id,
            submission_id: self.submission_id,
            payload: self.payload,
            attempts: self.attempts,
        })
    }
}

/// Returns the SQL condition that keeps only rows of patients enrolled at one of
/// `site_count` sites, for a site-bound caller. Its parameters are the trial id and
/// then each site id.
pub(crate) fn site_condition(site_count: usize) -> String {
    let placeholders = vec!["?"; site_count].join(", ");
    format!(" AND patient_id IN (SELECT patient_id FROM patients WHERE trial_id = ? AND site_id IN ({placeholders}))")
}
