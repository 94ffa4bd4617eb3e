//! A new submission and everything written with it in its savepoint: the
//! `submissions` row, its data queries, its outbox events (`submission.accepted` and
//! one `alert.raised` per alert) and its audit row. Either all of them commit or none.
//!
//! Data queries raised here get no audit row of their own: the submission's
//! `submission.created` row covers them, and each query row records its origin and
//! creation time.

use anyhow::{Context as _, bail, ensure};
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::queries::{QueryTarget, insert_query};
use super::{ALERT_RAISED, SUBMISSION_ACCEPTED, SUBMISSION_CREATED, insert_audit_event};
use crate::audit::AuditEntry;
use crate::columns::{format_utc, format_with_offset, parse_timestamp};
use crate::model::{NewAlert, NewSubmission, QueryOrigin, QueryRef, Receipt, SubmissionStatus, SubmitOutcome};

const INSERT_SUBMISSION: &str = "
    INSERT INTO submissions (
        submission_id, trial_id, form_id, form_version, patient_id,
        completed_at, completed_at_offset_seconds, received_at, source,
        raw_answers, normalized_answers, content_sha256, request_id, scores, status
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT (submission_id) DO NOTHING";

const SELECT_EXISTING: &str = "
    SELECT content_sha256, trial_id, form_id, form_version, received_at, status
    FROM submissions WHERE submission_id = ?1";

const SELECT_INTAKE_QUERIES: &str = "
    SELECT query_id, item, code, rule FROM data_queries
    WHERE submission_id = ?1 AND origin = 'intake'
    ORDER BY query_id";

const INSERT_OUTBOX_EVENT: &str = "
    INSERT INTO outbox_events (
        event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Stores a new submission with its data queries, outbox rows and audit row, or
/// classifies a resubmission.
///
/// The insert itself detects a resubmission (`ON CONFLICT DO NOTHING` inserts no row),
/// so two submissions with the same id cannot both be created, even within one batch.
pub(super) fn insert_submission(
    connection: &Connection,
    submission: &NewSubmission,
    now: OffsetDateTime,
) -> anyhow::Result<SubmitOutcome> {
    let submission_id = submission.submission_id.as_str();
    let status = submission.status();
    let completed_at = format_utc(submission.completed_at)?;
    let completed_at_offset = submission.completed_at.offset().whole_seconds();
    let received_at = format_utc(submission.received_at)?;

    let inserted = connection
        .prepare_cached(INSERT_SUBMISSION)?
        .execute(params![
            submission_id,
            submission.trial_id,
            submission.form_id,
            submission.form_version,
            submission.patient_id,
            completed_at,
            completed_at_offset,
            received_at,
            submission.source.as_str(),
            submission.raw_answers,
            submission.normalized_answers,
            &submission.content_sha256[..],
            submission.request_id,
            submission.scores,
            status.as_str(),
        ])
        .with_context(|| format!("failed to insert submission {submission_id}"))?;

    if inserted == 0 {
        return classify_resubmission(connection, submission, submission_id);
    }

    let occurred_at = format_utc(now)?;
    let target = QueryTarget { submission_id, form_version: &submission.form_version, origin: QueryOrigin::Intake };
    let mut queries = Vec::with_capacity(submission.queries.len());
    for query in &submission.queries {
        queries.extend(insert_query(connection, &target, query, &occurred_at)?);
    }

    let accepted = serde_json::json!({
        "formId": submission.form_id,
        "formVersion": submission.form_version,
        "status": status.as_str(),
        "completedAt": format_with_offset(submission.completed_at)?,
        "receivedAt": received_at,
    });
    insert_outbox_event(connection, submission, SUBMISSION_ACCEPTED, &occurred_at, &accepted)?;
    for alert in &submission.alerts {
        let payload = alert_payload(submission, alert)?;
        insert_outbox_event(connection, submission, ALERT_RAISED, &occurred_at, &payload)?;
    }

    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&submission.trial_id),
            patient_id: Some(&submission.patient_id),
            submission_id: Some(submission_id),
            request_id: submission.request_id.as_deref(),
            ..AuditEntry::new(now, &submission.actor, SUBMISSION_CREATED, "submission", submission_id)
        },
    )?;

    Ok(SubmitOutcome::Created(Receipt {
        submission_id: submission.submission_id.clone(),
        trial_id: submission.trial_id.clone(),
        form_id: submission.form_id.clone(),
        form_version: submission.form_version.clone(),
        received_at: parse_timestamp(&received_at)?,
        status,
        queries,
    }))
}

/// Builds the `alert.raised` payload: which rule fired on which items, never their
/// answers or any score.
fn alert_payload(submission: &NewSubmission, alert: &NewAlert) -> anyhow::Result<serde_json::Value> {
    let submission_id = &submission.submission_id;
    ensure!(!alert.rule.is_empty(), "alert of submission {submission_id} has an empty rule");
    ensure!(!alert.severity.is_empty(), "alert {:?} of submission {submission_id} has an empty severity", alert.rule);

    Ok(serde_json::json!({
        "alertRule": alert.rule,
        "severity": alert.severity,
        "items": alert.items,
        "formId": submission.form_id,
        "formVersion": submission.form_version,
    }))
}

fn insert_outbox_event(
    connection: &Connection,
    submission: &NewSubmission,
    event_type: &str,
    occurred_at: &str,
    payload: &serde_json::Value,
) -> anyhow::Result<()> {
    let submission_id = &submission.submission_id;
    connection
        .prepare_cached(INSERT_OUTBOX_EVENT)?
        .execute(params![
            Uuid::now_v7().hyphenated().to_string(),
            event_type,
            occurred_at,
            submission.trial_id,
            submission.patient_id,
            submission_id,
            payload.to_string(),
        ])
        .with_context(|| format!("failed to insert {event_type} outbox event for submission {submission_id}"))?;
    Ok(())
}

/// Compares a resubmission with the stored row of the same id, and rebuilds the stored
/// receipt with its status and intake queries.
fn classify_resubmission(
    connection: &Connection,
    submission: &NewSubmission,
    submission_id: &str,
) -> anyhow::Result<SubmitOutcome> {
    let existing = connection
        .prepare_cached(SELECT_EXISTING)?
        .query_row([submission_id], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                Receipt {
                    submission_id: submission.submission_id.clone(),
                    trial_id: row.get(1)?,
                    form_id: row.get(2)?,
                    form_version: row.get(3)?,
                    received_at: OffsetDateTime::UNIX_EPOCH,
                    status: SubmissionStatus::Accepted,
                    queries: Vec::new(),
                },
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
            ))
        })
        .optional()
        .with_context(|| format!("failed to read stored submission {submission_id}"))?;
    let Some((stored_sha256, mut receipt, received_at, status)) = existing else {
        bail!("submission {submission_id} was neither inserted nor found");
    };
    receipt.received_at = parse_timestamp(&received_at)?;
    receipt.status = status.parse()?;
    receipt.queries = intake_queries(connection, submission_id)?;

    let same_content = stored_sha256 == submission.content_sha256;
    if same_content { Ok(SubmitOutcome::Replayed(receipt)) } else { Ok(SubmitOutcome::Conflict(receipt)) }
}

/// Reads the references of the queries raised at intake, in creation order, which is
/// the order of the original receipt because UUID v7 ids increase.
fn intake_queries(connection: &Connection, submission_id: &str) -> anyhow::Result<Vec<QueryRef>> {
    let mut statement = connection.prepare_cached(SELECT_INTAKE_QUERIES)?;
    let rows = statement
        .query_map([submission_id], |row| {
            Ok(QueryRef { query_id: row.get(0)?, item: row.get(1)?, code: row.get(2)?, rule: row.get(3)? })
        })
        .with_context(|| format!("failed to read intake queries of submission {submission_id}"))?;
    rows.collect::<Result<_, _>>()
        .with_context(|| format!("failed to read intake queries of submission {submission_id}"))
}
