//! Read queries on PostgreSQL, with the same results as the SQLite readers in
//! `crate::reader`.
//!
//! A read that runs more than one statement (a submission with its data queries, the
//! outbox backlog) runs them in one `REPEATABLE READ` transaction, so that all of them
//! see the same commit. jsonb columns are read as text and compacted, so that they come
//! back in the compact form SQLite returns, though with jsonb's order of object keys.

use anyhow::Context as _;
use deadpool_postgres::{GenericClient, Object, Transaction};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::columns::with_offset_seconds;
use crate::model::{DataQuery, OutboxBacklog, OutboxEvent, OutboxEventState, QueryFilter, QueryRef, StoredSubmission};
use crate::reader::SubmissionPage;

/// Column list of every read of `submissions`, in the order [`decode_submission`]
/// expects.
const SUBMISSION_COLUMNS: &str = "submission_id, trial_id, form_id, form_version, patient_id,
    completed_at, completed_at_offset_seconds, received_at, source,
    raw_answers, normalized_answers::text, content_sha256, request_id, scores::text, status";

/// Column list of every read of `data_queries`, in the order [`decode_query`] expects.
const QUERY_COLUMNS: &str = "query_id, submission_id, trial_id, form_id, form_version, patient_id,
    item, code, rule, params::text, status, origin, created_at, updated_at, version";

/// Column list of the outbox reads that return events, in the order [`decode_event`]
/// expects.
pub(super) const OUTBOX_COLUMNS: &str =
    "seq, event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload::text, attempts";

/// [`OUTBOX_COLUMNS`] followed by the delivery state [`decode_event_state`] reads.
const OUTBOX_STATE_COLUMNS: &str = "seq, event_id, event_type, occurred_at, trial_id, patient_id, submission_id, \
     payload::text, attempts, delivered_at, last_error, claimed_by, claim_expires_at, rejections, dead_lettered_at";

/// Reads one submission by id, with its data queries.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn submission(client: &mut Object, submission_id: &str) -> anyhow::Result<Option<StoredSubmission>> {
    let snapshot = begin_snapshot(client).await?;
    let submission = read_submission(&snapshot, submission_id).await?;
    snapshot.commit().await.context("failed to end read transaction")?;
    Ok(submission)
}

/// Reads one submission with its data queries, in the caller's transaction.
pub(super) async fn read_submission(
    snapshot: &impl GenericClient,
    submission_id: &str,
) -> anyhow::Result<Option<StoredSubmission>> {
    let statement = snapshot
        .prepare_cached(&format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE submission_id = $1"))
        .await?;
    let row = snapshot
        .query_opt(&statement, &[&submission_id])
        .await
        .with_context(|| format!("failed to read submission {submission_id}"))?;
    let Some(row) = row else {
        return Ok(None);
    };

    let queries = submission_queries(snapshot, submission_id).await?;
    let submission =
        decode_submission(&row, queries).with_context(|| format!("invalid stored submission {submission_id}"))?;
    Ok(Some(submission))
}

/// Reads up to `limit` submissions of one form after the `seq` `after`, in `seq` order,
/// each with its `seq` and data queries.
///
/// NOTE: `seq` is taken when a row is inserted, and concurrent batches may commit out
/// of that order, so a page read while submissions arrive can miss a row that commits
/// later with a lower `seq`. Revalidation runs over settled data; run it again to
/// cover late rows.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn submissions_page(
    client: &mut Object,
    page: &SubmissionPage<'_>,
) -> anyhow::Result<Vec<(i64, StoredSubmission)>> {
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
    let after = page.after.unwrap_or(i64::MIN);
    let snapshot = begin_snapshot(client).await?;

    let statement = snapshot
        .prepare_cached(&format!(
            "SELECT {SUBMISSION_COLUMNS}, seq FROM submissions
             WHERE trial_id = $1 AND form_id = $2 AND ($3::text IS NULL OR form_version = $3) AND seq > $4
             ORDER BY seq LIMIT $5"
        ))
        .await?;
    let rows = snapshot
        .query(&statement, &[&page.trial_id, &page.form_id, &page.form_version, &after, &limit])
        .await
        .with_context(|| {
        format!("failed to query submissions of form {} in trial {}", page.form_id, page.trial_id)
    })?;

    let mut submissions = Vec::with_capacity(rows.len());
    for row in rows {
        let submission_id: String = row.try_get(0).context("failed to read submission")?;
        let seq: i64 = row.try_get(15).context("failed to read submission")?;
        let queries = submission_queries(&snapshot, &submission_id).await?;
        let submission =
            decode_submission(&row, queries).with_context(|| format!("invalid stored submission {submission_id}"))?;
        submissions.push((seq, submission));
    }
    snapshot.commit().await.context("failed to end read transaction")?;
    Ok(submissions)
}

/// Reads one data query by id.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn data_query(client: &impl GenericClient, query_id: &str) -> anyhow::Result<Option<DataQuery>> {
    let statement =
        client.prepare_cached(&format!("SELECT {QUERY_COLUMNS} FROM data_queries WHERE query_id = $1")).await?;
    let row = client
        .query_opt(&statement, &[&query_id])
        .await
        .with_context(|| format!("failed to read data query {query_id}"))?;
    row.as_ref().map(decode_query).transpose()
}

/// Reads up to `filter.limit` data queries of a trial that match every filter given, in
/// `query_id` order after the cursor.
///
/// Only the conditions of the filters given are put into the statement, so that the
/// planner can choose the index for exactly those conditions.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn data_queries(client: &Object, filter: &QueryFilter) -> anyhow::Result<Vec<DataQuery>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let status = filter.status.map(|status| status.as_str());

    let mut sql = format!("SELECT {QUERY_COLUMNS} FROM data_queries WHERE trial_id = $1");
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&filter.trial_id];
    let mut conditions: Vec<(&str, &(dyn ToSql + Sync))> = Vec::new();
    if let Some(status) = &status {
        conditions.push(("status", status));
    }
    if let Some(form_id) = &filter.form_id {
        conditions.push(("form_id", form_id));
    }
    if let Some(patient_id) = &filter.patient_id {
        conditions.push(("patient_id", patient_id));
    }
    if let Some(item) = &filter.item {
        conditions.push(("item", item));
    }
    for (column, value) in conditions {
        values.push(value);
        sql.push_str(&format!(" AND {column} = ${}", values.len()));
    }
    if let Some(site_ids) = &filter.site_ids {
        values.push(&filter.trial_id);
        values.push(site_ids);
        sql.push_str(&format!(
            " AND patient_id IN (SELECT patient_id FROM patients WHERE trial_id = ${} AND site_id = ANY(${}))",
            values.len() - 1,
            values.len()
        ));
    }
    if let Some(after) = &filter.after {
        values.push(after);
        sql.push_str(&format!(" AND query_id > ${}", values.len()));
    }
    values.push(&limit);
    sql.push_str(&format!(" ORDER BY query_id LIMIT ${}", values.len()));

    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &values)
        .await
        .with_context(|| format!("failed to query data queries of trial {}", filter.trial_id))?;
    rows.iter().map(decode_query).collect()
}

/// Reads every data query of one submission, in `query_id` order.
async fn submission_queries(client: &impl GenericClient, submission_id: &str) -> anyhow::Result<Vec<DataQuery>> {
    let statement = client
        .prepare_cached(&format!("SELECT {QUERY_COLUMNS} FROM data_queries WHERE submission_id = $1 ORDER BY query_id"))
        .await?;
    let rows = client
        .query(&statement, &[&submission_id])
        .await
        .with_context(|| format!("failed to query data queries of submission {submission_id}"))?;
    rows.iter().map(decode_query).collect()
}

/// Reads the references of the queries raised at intake on each of `submission_ids`,
/// in creation order, as pairs of submission id and reference.
pub(super) async fn intake_queries(
    client: &impl GenericClient,
    submission_ids: &[&str],
) -> anyhow::Result<Vec<(String, QueryRef)>> {
    let statement = client
        .prepare_cached(
            "SELECT submission_id, query_id, item, code, rule FROM data_queries
             WHERE submission_id = ANY($1) AND version = 1 AND origin = 'intake'
             ORDER BY submission_id, query_id",
        )
        .await?;
    let rows = client.query(&statement, &[&submission_ids]).await.context("failed to read intake queries")?;
    rows.iter()
        .map(|row| {
            let reference = QueryRef {
                query_id: row.try_get(1)?,
                item: row.try_get(2)?,
                code: row.try_get(3)?,
                rule: row.try_get(4)?,
            };
            Ok((row.try_get(0)?, reference))
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .context("failed to read intake queries")
}

/// Reads up to `limit` pending outbox events (neither delivered nor dead-lettered) in
/// `seq` order, whether claimed or not.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn outbox_pending(client: &Object, limit: usize) -> anyhow::Result<Vec<OutboxEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = client
        .prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox_events
             WHERE delivered_at IS NULL AND dead_lettered_at IS NULL ORDER BY seq LIMIT $1"
        ))
        .await?;
    let rows = client.query(&statement, &[&limit]).await.context("failed to query pending outbox events")?;
    rows.iter().map(decode_event).collect()
}

/// Counts the pending and the dead-lettered outbox events and reads the time of the
/// oldest pending one.
///
/// # Errors
///
/// Fails on a database error.
pub(super) async fn outbox_backlog(client: &mut Object) -> anyhow::Result<OutboxBacklog> {
    let snapshot = begin_snapshot(client).await?;

    let row = snapshot
        .query_one(
            "SELECT
                 (SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL AND dead_lettered_at IS NULL),
                 (SELECT occurred_at FROM outbox_events WHERE delivered_at IS NULL AND dead_lettered_at IS NULL
                  ORDER BY seq LIMIT 1),
                 (SELECT count(*) FROM outbox_events WHERE dead_lettered_at IS NOT NULL)",
            &[],
        )
        .await
        .context("failed to count pending outbox events")?;
    let pending: i64 = row.try_get(0).context("failed to count pending outbox events")?;
    let oldest: Option<OffsetDateTime> = row.try_get(1).context("failed to read the oldest pending outbox event")?;
    let dead_letters: i64 = row.try_get(2).context("failed to count dead-lettered outbox events")?;
    snapshot.commit().await.context("failed to end read transaction")?;

    Ok(OutboxBacklog {
        pending: u64::try_from(pending).unwrap_or(0),
        oldest_occurred_at: oldest,
        dead_letters: u64::try_from(dead_letters).unwrap_or(0),
    })
}

/// Reads one outbox event with its delivery state.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn outbox_event(client: &Object, seq: i64) -> anyhow::Result<Option<OutboxEventState>> {
    let statement =
        client.prepare_cached(&format!("SELECT {OUTBOX_STATE_COLUMNS} FROM outbox_events WHERE seq = $1")).await?;
    let row =
        client.query_opt(&statement, &[&seq]).await.with_context(|| format!("failed to read outbox event {seq}"))?;
    row.as_ref().map(decode_event_state).transpose()
}

/// Reads up to `limit` dead-lettered events with `seq` above `after`, in `seq` order.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn outbox_dead_letters(
    client: &Object,
    after: Option<i64>,
    limit: usize,
) -> anyhow::Result<Vec<OutboxEventState>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = client
        .prepare_cached(&format!(
            "SELECT {OUTBOX_STATE_COLUMNS} FROM outbox_events
             WHERE dead_lettered_at IS NOT NULL AND seq > $1 ORDER BY seq LIMIT $2"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&after.unwrap_or(0), &limit])
        .await
        .context("failed to query dead-lettered outbox events")?;
    rows.iter().map(decode_event_state).collect()
}

/// Starts a read-only transaction that sees one snapshot for all its statements.
pub(super) async fn begin_snapshot(client: &mut Object) -> anyhow::Result<Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("failed to begin read transaction")
}

/// Decodes a row read with [`SUBMISSION_COLUMNS`].
fn decode_submission(row: &Row, queries: Vec<DataQuery>) -> anyhow::Result<StoredSubmission> {
    let content_sha256: Vec<u8> = row.try_get(11)?;
    let content_sha256 = <[u8; 32]>::try_from(content_sha256.as_slice()).context("content_sha256 is not 32 bytes")?;
    let scores: String = row.try_get(13)?;
    let source: String = row.try_get(8)?;
    let status: String = row.try_get(14)?;
    Ok(StoredSubmission {
        submission_id: row.try_get(0)?,
        trial_id: row.try_get(1)?,
        form_id: row.try_get(2)?,
        form_version: row.try_get(3)?,
        patient_id: row.try_get(4)?,
        completed_at: with_offset_seconds(row.try_get(5)?, row.try_get(6)?)?,
        received_at: row.try_get(7)?,
        source: source.parse()?,
        raw_answers: row.try_get(9)?,
        normalized_answers: row.try_get(10)?,
        content_sha256,
        request_id: row.try_get(12)?,
        scores: compact_json(&scores),
        status: status.parse()?,
        queries,
    })
}

/// Decodes a row read with [`QUERY_COLUMNS`].
fn decode_query(row: &Row) -> anyhow::Result<DataQuery> {
    let query_id: String = row.try_get(0).context("failed to read data query")?;
    decode_query_fields(row).with_context(|| format!("invalid stored data query {query_id}"))
}

fn decode_query_fields(row: &Row) -> anyhow::Result<DataQuery> {
    let params: String = row.try_get(9)?;
    let status: String = row.try_get(10)?;
    let origin: String = row.try_get(11)?;
    let version: i32 = row.try_get(14)?;
    Ok(DataQuery {
        query_id: row.try_get(0)?,
        submission_id: row.try_get(1)?,
        trial_id: row.try_get(2)?,
        form_id: row.try_get(3)?,
        form_version: row.try_get(4)?,
        patient_id: row.try_get(5)?,
        version: u32::try_from(version).context("query version out of range")?,
        item: row.try_get(6)?,
        code: row.try_get(7)?,
        rule: row.try_get(8)?,
        params: compact_json(&params),
        status: status.parse()?,
        origin: origin.parse()?,
        created_at: row.try_get(12)?,
        updated_at: row.try_get(13)?,
    })
}

/// Decodes a row read with [`OUTBOX_COLUMNS`].
pub(super) fn decode_event(row: &Row) -> anyhow::Result<OutboxEvent> {
    let seq: i64 = row.try_get(0).context("failed to read outbox event")?;
    decode_event_fields(row).with_context(|| format!("invalid stored outbox event {seq}"))
}

fn decode_event_fields(row: &Row) -> anyhow::Result<OutboxEvent> {
    let event_id: Uuid = row.try_get(1)?;
    let payload: String = row.try_get(7)?;
    let attempts: i32 = row.try_get(8)?;
    Ok(OutboxEvent {
        seq: row.try_get(0)?,
        event_id,
        event_type: row.try_get(2)?,
        occurred_at: row.try_get(3)?,
        trial_id: row.try_get(4)?,
        patient_id: row.try_get(5)?,
        submission_id: row.try_get(6)?,
        payload: compact_json(&payload),
        attempts: u32::try_from(attempts).context("attempts is negative")?,
    })
}

/// Decodes a row read with [`OUTBOX_STATE_COLUMNS`].
fn decode_event_state(row: &Row) -> anyhow::Result<OutboxEventState> {
    let event = decode_event(row)?;
    let seq = event.seq;
    let state = || -> anyhow::Result<OutboxEventState> {
        let rejections: i32 = row.try_get(13)?;
        Ok(OutboxEventState {
            delivered_at: row.try_get(9)?,
            last_error: row.try_get(10)?,
            claimed_by: row.try_get(11)?,
            claim_expires_at: row.try_get(12)?,
            rejections: u32::try_from(rejections).context("rejections is negative")?,
            dead_lettered_at: row.try_get(14)?,
            event,
        })
    };
    state().with_context(|| format!("invalid stored outbox event {seq}"))
}

/// Removes the whitespace outside strings from JSON text, which turns PostgreSQL's
/// rendering of jsonb (`{"a": 1, "b": [1, 2]}`) into the compact form SQLite returns.
/// Strings, numbers and key order stay as they are.
pub(super) fn compact_json(text: &str) -> String {
    let mut compact = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for character in text.chars() {
        if in_string {
            compact.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
            continue;
        }
        if character == '"' {
            in_string = true;
        }
        if !matches!(character, ' ' | '\t' | '\n' | '\r') {
            compact.push(character);
        }
    }
    compact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_removes_separator_spaces() {
        assert_eq!(compact_json(r#"{"a": [1, 2.50], "max": 10}"#), r#"{"a":[1,2.50],"max":10}"#);
    }

    #[test]
    fn compact_json_keeps_strings() {
        let text = r#"{"note": "a \"quoted\" word, then: spaces  ", "b\\": " x"}"#;

        assert_eq!(compact_json(text), r#"{"note":"a \"quoted\" word, then: spaces  ","b\\":" x"}"#);
    }
}
