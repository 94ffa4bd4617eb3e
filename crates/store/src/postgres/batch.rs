//! The statements of one group commit on PostgreSQL: every submission of the batch with
//! its data queries, alerts, outbox events and audit row, written with one multi-row statement
//! per table (`INSERT ... SELECT ... FROM UNNEST(...)`), so that a batch of 256 costs
//! a handful of round trips rather than a thousand.
//!
//! The insert of `submissions` itself detects resubmissions: `ON CONFLICT DO NOTHING
//! RETURNING submission_id` returns only the rows it inserted, and the rest are
//! compared by content hash with the stored row, as on SQLite. Two submissions of one
//! batch with the same id are settled before the insert: the first is inserted, and
//! the later ones are compared with it.
//!
//! Nothing here commits; `writer` owns the transaction.

use std::collections::{HashMap, HashSet};

use anyhow::{Context as _, bail, ensure};
use deadpool_postgres::Transaction;
use serde::de::IgnoredAny;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::{audit, reader};
use crate::audit::{AuditEntry, format_audit_time};
use crate::columns::{format_utc, format_with_offset, truncate_to_micros};
use crate::model::{NewAlert, NewQuery, NewSubmission, QueryOrigin, QueryRef, Receipt, SubmitOutcome};
use crate::writer::{ALERT_RAISED, SUBMISSION_ACCEPTED, SUBMISSION_CREATED};

const INSERT_SUBMISSIONS: &str = "
    INSERT INTO submissions (
        submission_id, trial_id, form_id, form_version, patient_id,
        completed_at, completed_at_offset_seconds, received_at, source,
        raw_answers, normalized_answers, content_sha256, request_id, scores, status
    )
    SELECT u.submission_id, u.trial_id, u.form_id, u.form_version, u.patient_id,
           u.completed_at, u.offset_seconds, u.received_at, u.source,
           u.raw_answers, u.normalized_answers::json, u.content_sha256, u.request_id, u.scores::jsonb, u.status
    FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[], $7::int4[], $8::timestamptz[], $9::text[],
        $10::text[], $11::text[], $12::bytea[], $13::text[], $14::text[], $15::text[]
    ) AS u (
        submission_id, trial_id, form_id, form_version, patient_id,
        completed_at, offset_seconds, received_at, source,
        raw_answers, normalized_answers, content_sha256, request_id, scores, status
    )
    ON CONFLICT (submission_id) DO NOTHING
    RETURNING submission_id";

/// The conflict target is the unique index `data_queries_finding`, so a finding the
/// submission already has is skipped while every other constraint still fails the
/// statement.
pub(super) const INSERT_QUERIES: &str = "
    INSERT INTO data_queries (
        query_id, submission_id, trial_id, form_id, form_version, patient_id,
        item, code, rule, params, status, origin, created_at, updated_at, version
    )
    SELECT u.query_id, u.submission_id, u.trial_id, u.form_id, u.form_version, u.patient_id,
           u.item, u.code, u.rule, u.params::jsonb, 'open', $11, now(), now(), $12
    FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]
    ) AS u (query_id, submission_id, trial_id, form_id, form_version, patient_id, item, code, rule, params)
    ON CONFLICT (submission_id, version, item, code, rule) DO NOTHING
    RETURNING query_id";

const INSERT_ALERTS: &str = "
    INSERT INTO alerts (
        alert_id, submission_id, trial_id, form_id, form_version, patient_id,
        rule, severity, items, raised_at, due_at
    )
    SELECT u.alert_id, u.submission_id, u.trial_id, u.form_id, u.form_version, u.patient_id,
           u.rule, u.severity, u.items::jsonb, u.raised_at, u.due_at
    FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[]
    ) AS u (alert_id, submission_id, trial_id, form_id, form_version, patient_id,
            rule, severity, items, raised_at, due_at)";

/// `seq` follows the order of the arrays, which `ORDER BY position` makes explicit.
pub(super) const INSERT_OUTBOX_EVENTS: &str = "
    INSERT INTO outbox_events (event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload)
    SELECT u.event_id, u.event_type, now(), u.trial_id, u.patient_id, u.submission_id, u.payload::jsonb
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
        WITH ORDINALITY AS u (event_id, event_type, trial_id, patient_id, submission_id, payload, position)
    ORDER BY u.position";

const SELECT_EXISTING: &str = "
    SELECT submission_id, content_sha256, trial_id, form_id, form_version, received_at, status
    FROM submissions WHERE submission_id = ANY($1)";

/// Checks what the store promises to check about a submission (see [`NewSubmission`])
/// before it joins a batch, so that the caller of a bad row gets an error naming the
/// field and the batch is not rolled back. The database's constraints check again.
///
/// # Errors
///
/// Fails when answers, scores or query params are not JSON of the expected kind, or an
/// alert has an empty rule or severity or is not due after the submission's receipt.
pub(super) fn check(submission: &NewSubmission) -> anyhow::Result<()> {
    let id = &submission.submission_id;
    check_json(&submission.raw_answers, JsonKind::Any).with_context(|| format!("raw_answers of submission {id}"))?;
    check_json(&submission.normalized_answers, JsonKind::Any)
        .with_context(|| format!("normalized_answers of submission {id}"))?;
    check_json(&submission.scores, JsonKind::Array).with_context(|| format!("scores of submission {id}"))?;
    for query in &submission.queries {
        check_json(&query.params, JsonKind::Object).with_context(|| {
            format!("params of data query {} on item {:?} of submission {id}", query.code, query.item)
        })?;
    }
    let raised_at = truncate_to_micros(submission.received_at);
    for alert in &submission.alerts {
        ensure!(!alert.rule.is_empty(), "alert of submission {id} has an empty rule");
        ensure!(!alert.severity.is_empty(), "alert {:?} of submission {id} has an empty severity", alert.rule);
        ensure!(
            truncate_to_micros(alert.due_at) > raised_at,
            "alert {:?} of submission {id} is due at {}, not after it was raised at {raised_at}",
            alert.rule,
            alert.due_at
        );
    }
    Ok(())
}

/// The JSON value a text column must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JsonKind {
    Any,
    Array,
    Object,
}

/// Checks that `text` is one JSON value of `kind`.
///
/// # Errors
///
/// Fails with the parser's message, or with the kind expected.
pub(super) fn check_json(text: &str, kind: JsonKind) -> anyhow::Result<()> {
    serde_json::from_str::<IgnoredAny>(text).context("is not valid JSON")?;
    let first = text.trim_start().chars().next();
    match kind {
        JsonKind::Any => {}
        JsonKind::Array => ensure!(first == Some('['), "is not a JSON array"),
        JsonKind::Object => ensure!(first == Some('{'), "is not a JSON object"),
    }
    Ok(())
}

/// Writes a batch of checked submissions in `transaction` and returns their outcomes in
/// the order given.
///
/// # Errors
///
/// Fails on any database error. The caller rolls back the whole batch then.
pub(super) async fn insert(
    transaction: &Transaction<'_>,
    submissions: &[&NewSubmission],
) -> anyhow::Result<Vec<SubmitOutcome>> {
    // The first submission with a given id is the candidate for insertion. The
    // others are resubmissions of it, settled after the insert.
    let mut first_with_id: HashMap<&str, usize> = HashMap::new();
    for (index, submission) in submissions.iter().enumerate() {
        first_with_id.entry(submission.submission_id.as_str()).or_insert(index);
    }
    let mut candidates: Vec<usize> = first_with_id.values().copied().collect();
    candidates.sort_unstable();

    let rows: Vec<Row<'_>> = candidates.iter().map(|&index| Row::new(submissions[index])).collect();
    let inserted = insert_submissions(transaction, &rows).await?;

    let created: Vec<&Row<'_>> = rows.iter().filter(|row| inserted.contains(row.id())).collect();
    let mut queries = insert_intake_queries(transaction, &created).await?;
    let alerts = alert_rows(&created);
    insert_alerts(transaction, &alerts).await?;
    insert_outbox_events(transaction, &created, &alerts).await?;
    insert_audit_events(transaction, &created).await?;

    let mut receipts: HashMap<&str, Receipt> = HashMap::with_capacity(rows.len());
    for row in &created {
        receipts.insert(row.id(), row.receipt(queries.remove(row.id()).unwrap_or_default()));
    }
    let resubmitted: Vec<&str> = rows.iter().map(Row::id).filter(|id| !inserted.contains(*id)).collect();
    let stored = read_stored(transaction, &resubmitted).await?;

    let mut outcomes = Vec::with_capacity(submissions.len());
    for (index, submission) in submissions.iter().enumerate() {
        let id = submission.submission_id.as_str();
        let outcome = if let Some(receipt) = receipts.get(id) {
            let first = submissions[first_with_id[id]];
            if first_with_id[id] == index {
                SubmitOutcome::Created(receipt.clone())
            } else if first.content_sha256 == submission.content_sha256 {
                SubmitOutcome::Replayed(receipt.clone())
            } else {
                SubmitOutcome::Conflict(receipt.clone())
            }
        } else if let Some((stored_sha256, receipt)) = stored.get(id) {
            if *stored_sha256 == submission.content_sha256 {
                SubmitOutcome::Replayed(receipt.clone())
            } else {
                SubmitOutcome::Conflict(receipt.clone())
            }
        } else {
            bail!("submission {id} was neither inserted nor found");
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// One submission as its columns are written. Timestamps are cut to microseconds here,
/// so that the receipt of a new submission equals the receipt of its replay.
struct Row<'a> {
    submission: &'a NewSubmission,
    completed_at: OffsetDateTime,
    received_at: OffsetDateTime,
}

impl<'a> Row<'a> {
    fn new(submission: &'a NewSubmission) -> Self {
        Row {
            submission,
            completed_at: truncate_to_micros(submission.completed_at),
            received_at: truncate_to_micros(submission.received_at).to_offset(UtcOffset::UTC),
        }
    }

    fn id(&self) -> &'a str {
        &self.submission.submission_id
    }

    fn receipt(&self, queries: Vec<QueryRef>) -> Receipt {
        let submission = self.submission;
        Receipt {
            submission_id: submission.submission_id.clone(),
            trial_id: submission.trial_id.clone(),
            form_id: submission.form_id.clone(),
            form_version: submission.form_version.clone(),
            received_at: self.received_at,
            status: submission.status(),
            queries,
        }
    }
}

/// Inserts the submission rows, lowest id first, and returns the ids inserted. The
/// others were stored before.
///
/// Sorting by id makes two instances that insert overlapping batches take the row
/// locks of the primary key in the same order, so they wait for each other instead of
/// deadlocking.
async fn insert_submissions(transaction: &Transaction<'_>, rows: &[Row<'_>]) -> anyhow::Result<HashSet<String>> {
    let mut sorted: Vec<&Row<'_>> = rows.iter().collect();
    sorted.sort_unstable_by_key(|row| row.id());

    let ids: Vec<&str> = sorted.iter().map(|row| row.id()).collect();
    let trial_ids: Vec<&str> = sorted.iter().map(|row| row.submission.trial_id.as_str()).collect();
    let form_ids: Vec<&str> = sorted.iter().map(|row| row.submission.form_id.as_str()).collect();
    let form_versions: Vec<&str> = sorted.iter().map(|row| row.submission.form_version.as_str()).collect();
    let patient_ids: Vec<&str> = sorted.iter().map(|row| row.submission.patient_id.as_str()).collect();
    let completed_at: Vec<OffsetDateTime> = sorted.iter().map(|row| row.completed_at).collect();
    let offsets: Vec<i32> = sorted.iter().map(|row| row.completed_at.offset().whole_seconds()).collect();
    let received_at: Vec<OffsetDateTime> = sorted.iter().map(|row| row.received_at).collect();
    let sources: Vec<&str> = sorted.iter().map(|row| row.submission.source.as_str()).collect();
    let raw_answers: Vec<&str> = sorted.iter().map(|row| row.submission.raw_answers.as_str()).collect();
    let normalized: Vec<&str> = sorted.iter().map(|row| row.submission.normalized_answers.as_str()).collect();
    let hashes: Vec<&[u8]> = sorted.iter().map(|row| &row.submission.content_sha256[..]).collect();
    let request_ids: Vec<Option<&str>> = sorted.iter().map(|row| row.submission.request_id.as_deref()).collect();
    let scores: Vec<&str> = sorted.iter().map(|row| row.submission.scores.as_str()).collect();
    let statuses: Vec<&str> = sorted.iter().map(|row| row.submission.status().as_str()).collect();

    let statement = transaction.prepare_cached(INSERT_SUBMISSIONS).await?;
    let inserted = transaction
        .query(
            &statement,
            &[
                &ids,
                &trial_ids,
                &form_ids,
                &form_versions,
                &patient_ids,
                &completed_at,
                &offsets,
                &received_at,
                &sources,
                &raw_answers,
                &normalized,
                &hashes,
                &request_ids,
                &scores,
                &statuses,
            ],
        )
        .await
        .with_context(|| format!("failed to insert {} submissions", rows.len()))?;
    inserted
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .context("failed to read inserted submission ids")
}

/// One data query to insert with [`INSERT_QUERIES`].
pub(super) struct QueryRow<'a> {
    pub(super) query_id: String,
    pub(super) submission_id: &'a str,
    pub(super) trial_id: &'a str,
    pub(super) form_id: &'a str,
    pub(super) form_version: &'a str,
    pub(super) patient_id: &'a str,
    pub(super) query: &'a NewQuery,
}

/// Inserts `rows` with `origin` on the submissions' version `version` and returns the
/// ids of those inserted. A row whose submission version has the same finding already
/// is skipped.
pub(super) async fn insert_queries(
    transaction: &Transaction<'_>,
    rows: &[QueryRow<'_>],
    origin: QueryOrigin,
    version: u32,
) -> anyhow::Result<HashSet<String>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let query_ids: Vec<&str> = rows.iter().map(|row| row.query_id.as_str()).collect();
    let submission_ids: Vec<&str> = rows.iter().map(|row| row.submission_id).collect();
    let trial_ids: Vec<&str> = rows.iter().map(|row| row.trial_id).collect();
    let form_ids: Vec<&str> = rows.iter().map(|row| row.form_id).collect();
    let form_versions: Vec<&str> = rows.iter().map(|row| row.form_version).collect();
    let patient_ids: Vec<&str> = rows.iter().map(|row| row.patient_id).collect();
    let items: Vec<&str> = rows.iter().map(|row| row.query.item.as_str()).collect();
    let codes: Vec<&str> = rows.iter().map(|row| row.query.code.as_str()).collect();
    let rules: Vec<&str> = rows.iter().map(|row| row.query.rule.as_str()).collect();
    let params: Vec<&str> = rows.iter().map(|row| row.query.params.as_str()).collect();

    let statement = transaction.prepare_cached(INSERT_QUERIES).await?;
    let inserted = transaction
        .query(
            &statement,
            &[
                &query_ids,
                &submission_ids,
                &trial_ids,
                &form_ids,
                &form_versions,
                &patient_ids,
                &items,
                &codes,
                &rules,
                &params,
                &origin.as_str(),
                &i32::try_from(version).context("query version out of range")?,
            ],
        )
        .await
        .with_context(|| format!("failed to insert {} data queries", rows.len()))?;
    inserted
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .context("failed to read inserted query ids")
}

/// Keeps the first of the queries with the same item, code and rule, as the unique
/// index would, in the order given.
pub(super) fn distinct_findings(queries: &[NewQuery]) -> Vec<&NewQuery> {
    let mut seen = HashSet::new();
    queries.iter().filter(|query| seen.insert((&query.item, &query.code, &query.rule))).collect()
}

/// Raises the intake queries of the new submissions and returns the references of each
/// submission's queries, in the order given.
async fn insert_intake_queries<'a>(
    transaction: &Transaction<'_>,
    created: &[&Row<'a>],
) -> anyhow::Result<HashMap<&'a str, Vec<QueryRef>>> {
    let mut rows = Vec::new();
    for row in created {
        let submission = row.submission;
        for query in distinct_findings(&submission.queries) {
            rows.push(QueryRow {
                query_id: Uuid::now_v7().hyphenated().to_string(),
                submission_id: &submission.submission_id,
                trial_id: &submission.trial_id,
                form_id: &submission.form_id,
                form_version: &submission.form_version,
                patient_id: &submission.patient_id,
                query,
            });
        }
    }
    let inserted = insert_queries(transaction, &rows, QueryOrigin::Intake, 1).await?;

    let mut references: HashMap<&'a str, Vec<QueryRef>> = HashMap::new();
    for row in rows.into_iter().filter(|row| inserted.contains(&row.query_id)) {
        references.entry(row.submission_id).or_default().push(QueryRef {
            query_id: row.query_id,
            item: row.query.item.clone(),
            code: row.query.code.clone(),
            rule: row.query.rule.clone(),
        });
    }
    Ok(references)
}

/// One alert of a new submission, with the id the store chose for it.
struct AlertRow<'a> {
    alert_id: String,
    row: &'a Row<'a>,
    alert: &'a NewAlert,
}

/// Gives each alert of the new submissions its UUID v7 id, in submission order.
fn alert_rows<'a>(created: &[&'a Row<'a>]) -> Vec<AlertRow<'a>> {
    created
        .iter()
        .flat_map(|row| {
            row.submission.alerts.iter().map(|alert| AlertRow {
                alert_id: Uuid::now_v7().hyphenated().to_string(),
                row,
                alert,
            })
        })
        .collect()
}

/// Inserts the alerts of the new submissions, open and raised at their submission's
/// `received_at`.
async fn insert_alerts(transaction: &Transaction<'_>, alerts: &[AlertRow<'_>]) -> anyhow::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let alert_ids: Vec<&str> = alerts.iter().map(|alert| alert.alert_id.as_str()).collect();
    let submission_ids: Vec<&str> = alerts.iter().map(|alert| alert.row.id()).collect();
    let trial_ids: Vec<&str> = alerts.iter().map(|alert| alert.row.submission.trial_id.as_str()).collect();
    let form_ids: Vec<&str> = alerts.iter().map(|alert| alert.row.submission.form_id.as_str()).collect();
    let form_versions: Vec<&str> = alerts.iter().map(|alert| alert.row.submission.form_version.as_str()).collect();
    let patient_ids: Vec<&str> = alerts.iter().map(|alert| alert.row.submission.patient_id.as_str()).collect();
    let rules: Vec<&str> = alerts.iter().map(|alert| alert.alert.rule.as_str()).collect();
    let severities: Vec<&str> = alerts.iter().map(|alert| alert.alert.severity.as_str()).collect();
    let items: Vec<String> = alerts.iter().map(|alert| serde_json::json!(alert.alert.items).to_string()).collect();
    let raised_at: Vec<OffsetDateTime> = alerts.iter().map(|alert| alert.row.received_at).collect();
    let due_at: Vec<OffsetDateTime> = alerts.iter().map(|alert| truncate_to_micros(alert.alert.due_at)).collect();

    let statement = transaction.prepare_cached(INSERT_ALERTS).await?;
    transaction
        .execute(
            &statement,
            &[
                &alert_ids,
                &submission_ids,
                &trial_ids,
                &form_ids,
                &form_versions,
                &patient_ids,
                &rules,
                &severities,
                &items,
                &raised_at,
                &due_at,
            ],
        )
        .await
        .with_context(|| format!("failed to insert {} alerts", alerts.len()))?;
    Ok(())
}

/// Writes each new submission's `submission.accepted` event and one `alert.raised`
/// event per alert, in submission order.
async fn insert_outbox_events(
    transaction: &Transaction<'_>,
    created: &[&Row<'_>],
    alerts: &[AlertRow<'_>],
) -> anyhow::Result<()> {
    let mut event_ids = Vec::new();
    let mut event_types = Vec::new();
    let mut trial_ids = Vec::new();
    let mut patient_ids = Vec::new();
    let mut submission_ids = Vec::new();
    let mut payloads = Vec::new();
    // `alerts` lists the alerts of `created` in the same order, so one cursor walks
    // both.
    let mut alerts = alerts.iter().peekable();
    for row in created {
        let submission = row.submission;
        let mut events = vec![(SUBMISSION_ACCEPTED, accepted_payload(row)?)];
        while let Some(alert) = alerts.next_if(|alert| alert.row.id() == row.id()) {
            events.push((ALERT_RAISED, alert_payload(submission, alert)));
        }
        for (event_type, payload) in events {
            event_ids.push(Uuid::now_v7());
            event_types.push(event_type);
            trial_ids.push(submission.trial_id.as_str());
            patient_ids.push(submission.patient_id.as_str());
            submission_ids.push(submission.submission_id.as_str());
            payloads.push(payload.to_string());
        }
    }
    if event_ids.is_empty() {
        return Ok(());
    }

    let statement = transaction.prepare_cached(INSERT_OUTBOX_EVENTS).await?;
    transaction
        .execute(&statement, &[&event_ids, &event_types, &trial_ids, &patient_ids, &submission_ids, &payloads])
        .await
        .with_context(|| format!("failed to insert {} outbox events", event_ids.len()))?;
    Ok(())
}

/// Builds the `submission.accepted` payload from the values as stored.
fn accepted_payload(row: &Row<'_>) -> anyhow::Result<serde_json::Value> {
    let submission = row.submission;
    Ok(serde_json::json!({
        "formId": submission.form_id,
        "formVersion": submission.form_version,
        "status": submission.status().as_str(),
        "completedAt": format_with_offset(row.completed_at)?,
        "receivedAt": format_utc(row.received_at)?,
    }))
}

/// Builds the `alert.raised` payload: which alert row, from which rule on which items,
/// and when it is due. Never answers or any score. [`check`] has rejected empty rules
/// and severities.
fn alert_payload(submission: &NewSubmission, alert: &AlertRow<'_>) -> serde_json::Value {
    serde_json::json!({
        "alertId": alert.alert_id,
        "alertRule": alert.alert.rule,
        "severity": alert.alert.severity,
        "items": alert.alert.items,
        "formId": submission.form_id,
        "formVersion": submission.form_version,
        "dueAt": format_audit_time(alert.alert.due_at),
    })
}

/// Writes one `submission.created` audit row per new submission.
async fn insert_audit_events(transaction: &Transaction<'_>, created: &[&Row<'_>]) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let entries: Vec<AuditEntry<'_>> = created
        .iter()
        .map(|row| {
            let submission = row.submission;
            AuditEntry {
                trial_id: Some(&submission.trial_id),
                patient_id: Some(&submission.patient_id),
                submission_id: Some(row.id()),
                request_id: submission.request_id.as_deref(),
                ..AuditEntry::new(now, &submission.actor, SUBMISSION_CREATED, "submission", row.id())
            }
        })
        .collect();
    audit::append(transaction, &entries)
        .await
        .with_context(|| format!("failed to insert audit events for {} submissions", created.len()))
}

/// Reads the stored receipt and content hash of each resubmitted id, with the intake
/// queries of the first submission.
async fn read_stored(
    transaction: &Transaction<'_>,
    ids: &[&str],
) -> anyhow::Result<HashMap<String, ([u8; 32], Receipt)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = transaction.prepare_cached(SELECT_EXISTING).await?;
    let rows = transaction.query(&statement, &[&ids]).await.context("failed to read stored submissions")?;
    let mut queries: HashMap<String, Vec<QueryRef>> = HashMap::new();
    for (submission_id, reference) in reader::intake_queries(transaction, ids).await? {
        queries.entry(submission_id).or_default().push(reference);
    }

    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let submission_id: String = row.try_get(0).context("failed to read stored submission")?;
        let mut decoded = || -> anyhow::Result<([u8; 32], Receipt)> {
            let hash: Vec<u8> = row.try_get(1)?;
            let hash = <[u8; 32]>::try_from(hash.as_slice()).context("content_sha256 is not 32 bytes")?;
            let status: String = row.try_get(6)?;
            let receipt = Receipt {
                submission_id: submission_id.clone(),
                trial_id: row.try_get(2)?,
                form_id: row.try_get(3)?,
                form_version: row.try_get(4)?,
                received_at: row.try_get(5)?,
                status: status.parse()?,
                queries: queries.remove(&submission_id).unwrap_or_default(),
            };
            Ok((hash, receipt))
        };
        let decoded = decoded().with_context(|| format!("invalid stored submission {submission_id}"))?;
        stored.insert(submission_id, decoded);
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_json_accepts_each_kind() {
        assert!(check_json(r#"{"pain": 3}"#, JsonKind::Object).is_ok());
        assert!(check_json(" [1, 2]", JsonKind::Array).is_ok());
        assert!(check_json("\"text\"", JsonKind::Any).is_ok());
    }

    #[test]
    fn check_json_rejects_wrong_kind() {
        let array = check_json("[1, 2]", JsonKind::Object).expect_err("an array is not an object");
        let object = check_json("{}", JsonKind::Array).expect_err("an object is not an array");

        assert_eq!(array.to_string(), "is not a JSON object");
        assert_eq!(object.to_string(), "is not a JSON array");
    }

    #[test]
    fn check_json_rejects_invalid_text() {
        for text in ["{not json", "", "[1,]", "{} {}"] {
            let error = check_json(text, JsonKind::Any).expect_err(text);
            assert_eq!(error.to_string(), "is not valid JSON", "{text:?}");
        }
    }
}
