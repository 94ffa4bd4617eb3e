//! A new submission and everything written with it in its savepoint: the
//! `submissions` row, its data queries, its alerts, its outbox events
//! (`submission.accepted` and one `alert.raised` per alert) and its audit row. Either
//! all of them commit or none.
//!
//! Data queries and alerts raised here get no audit row of their own: the
//! submission's `submission.created` row covers them, and each query and alert row
//! records when it was raised.

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::alerts::insert_alert;
use super::queries::{QueryTarget, insert_query};
use super::{ALERT_RAISED, SUBMISSION_ACCEPTED, SUBMISSION_CREATED, insert_audit_event};
use crate::audit::{AuditEntry, format_audit_time};
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
    WHERE submission_id = ?1 AND version = 1 AND origin = 'intake'
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
    let target =
        QueryTarget { submission_id, form_version: &submission.form_version, origin: QueryOrigin::Intake, version: 1 };
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
    let owner = EventOwner { trial_id: &submission.trial_id, patient_id: &submission.patient_id, submission_id };
    insert_outbox_event(connection, &owner, SUBMISSION_ACCEPTED, &occurred_at, &accepted)?;
    for alert in &submission.alerts {
        let alert_id = insert_alert(connection, submission, alert)?;
        let payload = alert_payload(submission, alert, &alert_id);
        insert_outbox_event(connection, &owner, ALERT_RAISED, &occurred_at, &payload)?;
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

/// Builds the `alert.raised` payload: which alert row, from which rule on which items,
/// and when it is due. Never answers or any score. [`insert_alert`] has rejected empty
/// rules and severities.
fn alert_payload(submission: &NewSubmission, alert: &NewAlert, alert_id: &str) -> serde_json::Value {
    serde_json::json!({
        "alertId": alert_id,
        "alertRule": alert.rule,
        "severity": alert.severity,
        "items": alert.items,
        "formId": submission.form_id,
        "formVersion": submission.form_version,
        "dueAt": format_audit_time(alert.due_at),
    })
}

/// The trial, patient and submission an outbox event is about, which the relay puts
/// in every message's envelope.
pub(super) struct EventOwner<'a> {
    pub(super) trial_id: &'a str,
    pub(super) patient_id: &'a str,
    pub(super) submission_id: &'a str,
}

/// Inserts one outbox event with a new UUID v7 event id.
pub(super) fn insert_outbox_event(
    connection: &Connection,
    owner: &EventOwner<'_>,
    event_type: &str,
    occurred_at: &str,
    payload: &serde_json::Value,
) -> anyhow::Result<()> {
    let submission_id = owner.submission_id;
    connection
        .prepare_cached(INSERT_OUTBOX_EVENT)?
        .execute(params![
            Uuid::now_v7().hyphenated().to_string(),
            event_type,
            occurred_at,
            owner.trial_id,
            owner.patient_id,
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
