//! Alerts on PostgreSQL: reads, site staff's acknowledgement and the escalation of
//! overdue alerts, each write in its own transaction on the pool, with the same rows
//! and checks as the SQLite versions in `crate::writer::alerts`.
//!
//! Several epro instances may escalate at the same time, so the escalation locks the
//! alerts it takes with `FOR UPDATE SKIP LOCKED`. A second instance skips them instead
//! of waiting. Once the first commits, their `escalated_at` keeps them out of every
//! later search. An acknowledgement locks its alert with `FOR UPDATE`, so it waits for
//! an escalation of the same alert to commit, and two acknowledgements of one alert
//! record exactly one. Both append their audit rows last, as `audit::append` requires.

use anyhow::{Context as _, ensure};
use deadpool_postgres::{GenericClient, Object};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::audit;
use super::batch::INSERT_OUTBOX_EVENTS;
use crate::audit::{AuditEntry, format_audit_time};
use crate::columns::truncate_to_micros;
use crate::model::{AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter, AlertStatus};
use crate::writer::{ALERT_ACKNOWLEDGED, ALERT_ESCALATED, SYSTEM_ACTOR, escalated_payload};

/// Column list of every read of `alerts`, in the order [`decode`] expects.
const ALERT_COLUMNS: &str = "alert_id, submission_id, trial_id, form_id, form_version, patient_id,
    rule, severity, items::text, raised_at, due_at, status, acknowledged_at, acknowledged_by, acknowledge_comment,
    escalated_at";

/// Reads one alert by id.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn alert(client: &impl GenericClient, alert_id: &str) -> anyhow::Result<Option<Alert>> {
    let statement = client.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = $1")).await?;
    let row =
        client.query_opt(&statement, &[&alert_id]).await.with_context(|| format!("failed to read alert {alert_id}"))?;
    row.as_ref().map(decode).transpose()
}

/// Reads up to `filter.limit` alerts of a trial that match every filter given, in
/// `alert_id` order after the cursor.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(super) async fn alerts(client: &Object, filter: &AlertFilter) -> anyhow::Result<Vec<Alert>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let status = filter.status.map(|status| status.as_str());

    let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE trial_id = $1");
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&filter.trial_id];
    if let Some(status) = &status {
        values.push(status);
        sql.push_str(&format!(" AND status = ${}", values.len()));
    }
    if let Some(patient_id) = &filter.patient_id {
        values.push(patient_id);
        sql.push_str(&format!(" AND patient_id = ${}", values.len()));
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
        sql.push_str(&format!(" AND alert_id > ${}", values.len()));
    }
    values.push(&limit);
    sql.push_str(&format!(" ORDER BY alert_id LIMIT ${}", values.len()));

    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &values)
        .await
        .with_context(|| format!("failed to query alerts of trial {}", filter.trial_id))?;
    rows.iter().map(decode).collect()
}

/// Counts the open alerts of every trial.
///
/// # Errors
///
/// Fails on a database error.
pub(super) async fn open_alert_count(client: &Object) -> anyhow::Result<u64> {
    let row = client
        .query_one("SELECT count(*) FROM alerts WHERE status = 'open'", &[])
        .await
        .context("failed to count open alerts")?;
    let count: i64 = row.try_get(0).context("failed to count open alerts")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Acknowledges an open alert and appends its audit row, in one transaction. An alert
/// acknowledged before is returned unchanged, and nothing is written.
///
/// # Errors
///
/// Fails when a CHECK rejects the change (a blank comment or an empty actor) or on a
/// database error. The transaction then rolls back.
pub(super) async fn acknowledge_alert(
    client: &mut Object,
    acknowledgement: &AlertAcknowledgement,
) -> anyhow::Result<AcknowledgeOutcome> {
    let alert_id = acknowledgement.alert_id.as_str();
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = client.transaction().await.context("failed to begin transaction")?;

    let locked = transaction
        .query_opt(
            "SELECT status, trial_id, patient_id, submission_id FROM alerts WHERE alert_id = $1 FOR UPDATE",
            &[&alert_id],
        )
        .await
        .with_context(|| format!("failed to lock alert {alert_id}"))?;
    let Some(locked) = locked else {
        return Ok(AcknowledgeOutcome::NotFound);
    };
    let status: String = locked.try_get(0).with_context(|| format!("failed to read alert {alert_id}"))?;
    let trial_id: String = locked.try_get(1)?;
    let patient_id: String = locked.try_get(2)?;
    let submission_id: String = locked.try_get(3)?;
    if status == AlertStatus::Acknowledged.as_str() {
        let current =
            alert(&transaction, alert_id).await?.with_context(|| format!("alert {alert_id} vanished while locked"))?;
        return Ok(AcknowledgeOutcome::AlreadyAcknowledged(current));
    }

    let updated = transaction
        .execute(
            "UPDATE alerts
             SET status = 'acknowledged', acknowledged_at = $2, acknowledged_by = $3, acknowledge_comment = $4
             WHERE alert_id = $1 AND status = 'open'",
            &[&alert_id, &now, &acknowledgement.actor, &acknowledgement.comment],
        )
        .await
        .with_context(|| format!("failed to acknowledge alert {alert_id}"))?;
    ensure!(updated == 1, "failed to acknowledge alert {alert_id}: {updated} rows changed");

    let before = serde_json::json!({ "status": AlertStatus::Open.as_str() }).to_string();
    let after = serde_json::json!({ "status": AlertStatus::Acknowledged.as_str() }).to_string();
    let entry = AuditEntry {
        trial_id: Some(&trial_id),
        patient_id: Some(&patient_id),
        submission_id: Some(&submission_id),
        before_value: Some(&before),
        after_value: Some(&after),
        reason: Some(&acknowledgement.comment),
        request_id: acknowledgement.request_id.as_deref(),
        ..AuditEntry::new(now, &acknowledgement.actor, ALERT_ACKNOWLEDGED, "alert", alert_id)
    };
    audit::append(&transaction, &[entry])
        .await
        .with_context(|| format!("failed to insert audit event for alert {alert_id}"))?;

    let stored = alert(&transaction, alert_id)
        .await?
        .with_context(|| format!("alert {alert_id} not found after its acknowledgement"))?;
    transaction.commit().await.with_context(|| format!("failed to commit acknowledgement of alert {alert_id}"))?;
    Ok(AcknowledgeOutcome::Acknowledged(stored))
}

/// Escalates up to `limit` open alerts due at or before `now` that have not escalated
/// yet, earliest due first, with one `alert.escalated` outbox event and one audit row
/// each, in one transaction. Returns the alerts as escalated.
///
/// Under `READ COMMITTED`, a row that another transaction escalated after this
/// statement's snapshot is read again in its committed version before it is locked,
/// and then no longer matches `escalated_at IS NULL`. So no alert escalates twice.
///
/// # Errors
///
/// Fails on a database error; the transaction then rolls back and nothing escalates.
pub(super) async fn escalate_overdue(
    client: &mut Object,
    now: OffsetDateTime,
    limit: usize,
) -> anyhow::Result<Vec<Alert>> {
    let now = truncate_to_micros(now);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let transaction = client.transaction().await.context("failed to begin transaction")?;

    let statement = transaction
        .prepare_cached(&format!(
            "WITH due AS (
                 SELECT alert_id FROM alerts
                 WHERE status = 'open' AND escalated_at IS NULL AND due_at <= $1
                 ORDER BY due_at, alert_id LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE alerts SET escalated_at = $1
             FROM due
             WHERE alerts.alert_id = due.alert_id AND alerts.status = 'open' AND alerts.escalated_at IS NULL
             RETURNING {}",
            qualified(ALERT_COLUMNS)
        ))
        .await?;
    let rows = transaction.query(&statement, &[&now, &limit]).await.context("failed to escalate overdue alerts")?;
    let mut escalated = rows.iter().map(decode).collect::<anyhow::Result<Vec<_>>>()?;
    if escalated.is_empty() {
        transaction.commit().await.context("failed to end escalation transaction")?;
        return Ok(escalated);
    }
    // RETURNING yields rows in no promised order.
    escalated.sort_by(|a, b| (a.due_at, &a.alert_id).cmp(&(b.due_at, &b.alert_id)));

    insert_escalated_events(&transaction, &escalated).await?;

    let before = serde_json::json!({ "escalatedAt": null }).to_string();
    let after = serde_json::json!({ "escalatedAt": format_audit_time(now) }).to_string();
    let entries: Vec<AuditEntry<'_>> = escalated
        .iter()
        .map(|alert| AuditEntry {
            trial_id: Some(&alert.trial_id),
            patient_id: Some(&alert.patient_id),
            submission_id: Some(&alert.submission_id),
            before_value: Some(&before),
            after_value: Some(&after),
            ..AuditEntry::new(now, SYSTEM_ACTOR, ALERT_ESCALATED, "alert", &alert.alert_id)
        })
        .collect();
    audit::append(&transaction, &entries)
        .await
        .with_context(|| format!("failed to insert audit events for {} escalated alerts", escalated.len()))?;

    transaction.commit().await.with_context(|| format!("failed to commit escalation of {} alerts", escalated.len()))?;
    Ok(escalated)
}

/// Writes one `alert.escalated` outbox event per alert, in the order given.
async fn insert_escalated_events(client: &impl GenericClient, escalated: &[Alert]) -> anyhow::Result<()> {
    let event_ids: Vec<Uuid> = escalated.iter().map(|_| Uuid::now_v7()).collect();
    let event_types: Vec<&str> = escalated.iter().map(|_| ALERT_ESCALATED).collect();
    let trial_ids: Vec<&str> = escalated.iter().map(|alert| alert.trial_id.as_str()).collect();
    let patient_ids: Vec<&str> = escalated.iter().map(|alert| alert.patient_id.as_str()).collect();
    let submission_ids: Vec<&str> = escalated.iter().map(|alert| alert.submission_id.as_str()).collect();
    let payloads: Vec<String> = escalated.iter().map(|alert| escalated_payload(alert).to_string()).collect();

    let statement = client.prepare_cached(INSERT_OUTBOX_EVENTS).await?;
    client
        .execute(&statement, &[&event_ids, &event_types, &trial_ids, &patient_ids, &submission_ids, &payloads])
        .await
        .with_context(|| format!("failed to insert {} alert.escalated outbox events", escalated.len()))?;
    Ok(())
}

/// Prefixes each column of a list with `alerts.`, for `UPDATE ... FROM`, where a
/// bare name could be ambiguous.
fn qualified(columns: &str) -> String {
    columns.split(',').map(|column| format!("alerts.{}", column.trim())).collect::<Vec<_>>().join(", ")
}

/// Decodes a row read with [`ALERT_COLUMNS`].
fn decode(row: &Row) -> anyhow::Result<Alert> {
    let alert_id: String = row.try_get(0).context("failed to read alert")?;
    decode_fields(row).with_context(|| format!("invalid stored alert {alert_id}"))
}

fn decode_fields(row: &Row) -> anyhow::Result<Alert> {
    let items: String = row.try_get(8)?;
    let status: String = row.try_get(11)?;
    Ok(Alert {
        alert_id: row.try_get(0)?,
        submission_id: row.try_get(1)?,
        trial_id: row.try_get(2)?,
        form_id: row.try_get(3)?,
        form_version: row.try_get(4)?,
        patient_id: row.try_get(5)?,
        rule: row.try_get(6)?,
        severity: row.try_get(7)?,
        items: serde_json::from_str(&items).context("items is not a JSON array of strings")?,
        raised_at: row.try_get(9)?,
        due_at: row.try_get(10)?,
        status: status.parse()?,
        acknowledged_at: row.try_get(12)?,
        acknowledged_by: row.try_get(13)?,
        acknowledge_comment: row.try_get(14)?,
        escalated_at: row.try_get(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_prefixes_each_column_of_a_wrapped_list() {
        assert_eq!(
            qualified("alert_id, items::text,\n    raised_at"),
            "alerts.alert_id, alerts.items::text, alerts.raised_at"
        );
    }
}
