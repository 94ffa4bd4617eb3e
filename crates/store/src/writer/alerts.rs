//! Alert writes: raising an alert with its submission, site staff's acknowledgement
//! with its audit row, and the escalation of overdue alerts with their outbox events
//! and audit rows.
//!
//! Nothing here deletes an alert or changes anything but its acknowledgement and
//! `escalated_at`, and the triggers of migration 0007 reject any statement that
//! tries. Times are written with exactly six fractional digits
//! ([`format_audit_time`]), so that `due_at <= ?` compares them as text in time order.

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::submission::{EventOwner, insert_outbox_event};
use super::{ALERT_ACKNOWLEDGED, ALERT_ESCALATED, insert_audit_event};
use crate::audit::{AuditEntry, format_audit_time};
use crate::columns::parse_timestamp;
use crate::model::{AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertStatus, NewAlert, NewSubmission};
use crate::reader::{self, ALERT_COLUMNS, AlertColumns};

/// Actor of the audit rows that epro writes on its own, such as escalations.
pub(crate) const SYSTEM_ACTOR: &str = "system";

const INSERT_ALERT: &str = "
    INSERT INTO alerts (
        alert_id, submission_id, trial_id, form_id, form_version, patient_id,
        rule, severity, items, raised_at, due_at
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The status condition makes a second acknowledgement change nothing, though the
/// caller has already found the alert open in the same savepoint.
const ACKNOWLEDGE: &str = "
    UPDATE alerts
    SET status = 'acknowledged', acknowledged_at = ?2, acknowledged_by = ?3, acknowledge_comment = ?4
    WHERE alert_id = ?1 AND status = 'open'";

const ESCALATE: &str =
    "UPDATE alerts SET escalated_at = ?2 WHERE alert_id = ?1 AND status = 'open' AND escalated_at IS NULL";

/// Inserts one open alert of a new submission and returns its id, a UUID v7.
///
/// # Errors
///
/// Fails when the rule or severity is empty or `due_at` is not after `received_at`,
/// or on a database error.
pub(super) fn insert_alert(
    connection: &Connection,
    submission: &NewSubmission,
    alert: &NewAlert,
) -> anyhow::Result<String> {
    let submission_id = &submission.submission_id;
    ensure!(!alert.rule.is_empty(), "alert of submission {submission_id} has an empty rule");
    ensure!(!alert.severity.is_empty(), "alert {:?} of submission {submission_id} has an empty severity", alert.rule);
    let raised_at = format_audit_time(submission.received_at);
    let due_at = format_audit_time(alert.due_at);
    ensure!(
        due_at > raised_at,
        "alert {:?} of submission {submission_id} is due at {due_at}, not after it was raised at {raised_at}",
        alert.rule
    );

    let alert_id = Uuid::now_v7().hyphenated().to_string();
    let items = serde_json::to_string(&alert.items).context("failed to encode alert items")?;
    connection
        .prepare_cached(INSERT_ALERT)?
        .execute(params![
            alert_id,
            submission_id,
            submission.trial_id,
            submission.form_id,
            submission.form_version,
            submission.patient_id,
            alert.rule,
            alert.severity,
            items,
            raised_at,
            due_at,
        ])
        .with_context(|| format!("failed to insert alert {:?} of submission {submission_id}", alert.rule))?;
    Ok(alert_id)
}

/// Acknowledges an open alert and appends its audit row. An alert acknowledged
/// before is returned unchanged, and nothing is written.
///
/// # Errors
///
/// Fails when the comment is blank or the actor empty (the CHECKs of the alert and
/// audit rows reject them), or on a database error. The savepoint then undoes the
/// whole acknowledgement.
pub(super) fn acknowledge_alert(
    connection: &Connection,
    acknowledgement: &AlertAcknowledgement,
    now: OffsetDateTime,
) -> anyhow::Result<AcknowledgeOutcome> {
    let alert_id = acknowledgement.alert_id.as_str();
    let Some(current) = reader::alert(connection, alert_id)? else {
        return Ok(AcknowledgeOutcome::NotFound);
    };
    if current.status == AlertStatus::Acknowledged {
        return Ok(AcknowledgeOutcome::AlreadyAcknowledged(current));
    }

    let acknowledged_at = format_audit_time(now);
    let updated = connection
        .prepare_cached(ACKNOWLEDGE)?
        .execute(params![alert_id, acknowledged_at, acknowledgement.actor, acknowledgement.comment])
        .with_context(|| format!("failed to acknowledge alert {alert_id}"))?;
    ensure!(updated == 1, "failed to acknowledge alert {alert_id}: {updated} rows changed");

    let before = serde_json::json!({ "status": AlertStatus::Open.as_str() }).to_string();
    let after = serde_json::json!({ "status": AlertStatus::Acknowledged.as_str() }).to_string();
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&current.trial_id),
            patient_id: Some(&current.patient_id),
            submission_id: Some(&current.submission_id),
            before_value: Some(&before),
            after_value: Some(&after),
            reason: Some(&acknowledgement.comment),
            request_id: acknowledgement.request_id.as_deref(),
            ..AuditEntry::new(now, &acknowledgement.actor, ALERT_ACKNOWLEDGED, "alert", alert_id)
        },
    )?;

    let stored = reader::alert(connection, alert_id)?
        .with_context(|| format!("alert {alert_id} not found after its acknowledgement"))?;
    Ok(AcknowledgeOutcome::Acknowledged(stored))
}

/// Escalates up to `limit` open alerts that are due at or before `now` and have not
/// escalated yet, earliest due first: sets `escalated_at`, writes an `alert.escalated`
/// outbox event and appends an audit row by `system` for each. Returns the alerts as
/// escalated.
///
/// The writer thread runs this one command at a time, so no alert escalates twice.
pub(super) fn escalate_overdue(
    connection: &Connection,
    now: OffsetDateTime,
    limit: usize,
) -> anyhow::Result<Vec<Alert>> {
    let escalated_at = format_audit_time(now);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut due = Vec::new();
    {
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts
             WHERE status = 'open' AND escalated_at IS NULL AND due_at <= ?1
             ORDER BY due_at, alert_id LIMIT ?2"
        ))?;
        let rows = statement
            .query_map(params![escalated_at, limit], AlertColumns::from_row)
            .context("failed to find overdue alerts")?;
        for row in rows {
            due.push(row.context("failed to read overdue alert")?.decode()?);
        }
    }

    let mut escalated = Vec::with_capacity(due.len());
    for mut alert in due {
        let alert_id = alert.alert_id.clone();
        let updated = connection
            .prepare_cached(ESCALATE)?
            .execute(params![alert_id, escalated_at])
            .with_context(|| format!("failed to escalate alert {alert_id}"))?;
        ensure!(updated == 1, "failed to escalate alert {alert_id}: {updated} rows changed");
        alert.escalated_at = Some(parse_timestamp(&escalated_at)?);

        let owner = EventOwner {
            trial_id: &alert.trial_id,
            patient_id: &alert.patient_id,
            submission_id: &alert.submission_id,
        };
        insert_outbox_event(connection, &owner, ALERT_ESCALATED, &escalated_at, &escalated_payload(&alert))?;

        let before = serde_json::json!({ "escalatedAt": null }).to_string();
        let after = serde_json::json!({ "escalatedAt": escalated_at }).to_string();
        insert_audit_event(
            connection,
            &AuditEntry {
                trial_id: Some(&alert.trial_id),
                patient_id: Some(&alert.patient_id),
                submission_id: Some(&alert.submission_id),
                before_value: Some(&before),
                after_value: Some(&after),
                ..AuditEntry::new(now, SYSTEM_ACTOR, ALERT_ESCALATED, "alert", &alert_id)
            },
        )?;
        escalated.push(alert);
    }
    Ok(escalated)
}

/// Builds the `alert.escalated` payload: which alert escalated and when it was due.
/// The event's envelope names the trial, patient and submission. No answers.
pub(crate) fn escalated_payload(alert: &Alert) -> serde_json::Value {
    serde_json::json!({
        "alertId": alert.alert_id,
        "alertRule": alert.rule,
        "severity": alert.severity,
        "formId": alert.form_id,
        "formVersion": alert.form_version,
        "raisedAt": format_audit_time(alert.raised_at),
        "dueAt": format_audit_time(alert.due_at),
    })
}
