//! Reads of `alerts`: one alert by id, the filtered listing by trial with its
//! `alert_id` cursor, and the number of open alerts.

use anyhow::Context as _;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::columns::parse_timestamp;
use crate::model::{Alert, AlertFilter};
use crate::reader::site_condition;

/// Column list shared by every read of `alerts`, in the order
/// [`AlertColumns::from_row`] expects.
pub(crate) const ALERT_COLUMNS: &str = "alert_id, submission_id, trial_id, form_id, form_version, patient_id,
    rule, severity, items, raised_at, due_at, status, acknowledged_at, acknowledged_by, acknowledge_comment,
    escalated_at";

/// Reads one alert by id.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn alert(connection: &Connection, alert_id: &str) -> anyhow::Result<Option<Alert>> {
    let columns = connection
        .prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = ?1"))?
        .query_row([alert_id], AlertColumns::from_row)
        .optional()
        .with_context(|| format!("failed to read alert {alert_id}"))?;
    columns.map(AlertColumns::decode).transpose()
}

/// Reads up to `filter.limit` alerts of a trial that match every filter given, in
/// `alert_id` order after the cursor.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn alerts(connection: &Connection, filter: &AlertFilter) -> anyhow::Result<Vec<Alert>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let status = filter.status.map(|status| status.as_str());

    let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE trial_id = ?");
    let mut values: Vec<&dyn ToSql> = vec![&filter.trial_id];
    if let Some(status) = &status {
        sql.push_str(" AND status = ?");
        values.push(status);
    }
    if let Some(patient_id) = &filter.patient_id {
        sql.push_str(" AND patient_id = ?");
        values.push(patient_id);
    }
    let site_condition = filter.site_ids.as_ref().map(|site_ids| site_condition(site_ids.len()));
    if let (Some(condition), Some(site_ids)) = (&site_condition, &filter.site_ids) {
        sql.push_str(condition);
        values.push(&filter.trial_id);
        values.extend(site_ids.iter().map(|site_id| site_id as &dyn ToSql));
    }
    if let Some(after) = &filter.after {
        sql.push_str(" AND alert_id > ?");
        values.push(after);
    }
    sql.push_str(" ORDER BY alert_id LIMIT ?");
    values.push(&limit);

    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(values.as_slice(), AlertColumns::from_row)
        .with_context(|| format!("failed to query alerts of trial {}", filter.trial_id))?;
    let mut alerts = Vec::new();
    for row in rows {
        alerts.push(row.context("failed to read alert")?.decode()?);
    }
    Ok(alerts)
}

/// Counts the open alerts of every trial.
///
/// # Errors
///
/// Fails on a database error.
pub(crate) fn open_alert_count(connection: &Connection) -> anyhow::Result<u64> {
    let count: i64 = connection
        .prepare_cached("SELECT count(*) FROM alerts WHERE status = 'open'")?
        .query_row([], |row| row.get(0))
        .context("failed to count open alerts")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// An `alerts` row as stored, before decoding.
pub(crate) struct AlertColumns {
    alert_id: String,
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    rule: String,
    severity: String,
    items: String,
    raised_at: String,
    due_at: String,
    status: String,
    acknowledged_at: Option<String>,
    acknowledged_by: Option<String>,
    acknowledge_comment: Option<String>,
    escalated_at: Option<String>,
}

impl AlertColumns {
    /// Reads the columns of [`ALERT_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(AlertColumns {
            alert_id: row.get(0)?,
            submission_id: row.get(1)?,
            trial_id: row.get(2)?,
            form_id: row.get(3)?,
            form_version: row.get(4)?,
            patient_id: row.get(5)?,
            rule: row.get(6)?,
            severity: row.get(7)?,
            items: row.get(8)?,
            raised_at: row.get(9)?,
            due_at: row.get(10)?,
            status: row.get(11)?,
            acknowledged_at: row.get(12)?,
            acknowledged_by: row.get(13)?,
            acknowledge_comment: row.get(14)?,
            escalated_at: row.get(15)?,
        })
    }

    pub(crate) fn decode(self) -> anyhow::Result<Alert> {
        let alert_id = self.alert_id.clone();
        self.decode_fields().with_context(|| format!("invalid stored alert {alert_id}"))
    }

    fn decode_fields(self) -> anyhow::Result<Alert> {
        let optional_time = |text: Option<String>| text.as_deref().map(parse_timestamp).transpose();
        Ok(Alert {
            alert_id: self.alert_id,
            submission_id: self.submission_id,
            trial_id: self.trial_id,
            form_id: self.form_id,
            form_version: self.form_version,
            patient_id: self.patient_id,
            rule: self.rule,
            severity: self.severity,
            items: serde_json::from_str(&self.items).context("items is not a JSON array of strings")?,
            raised_at: parse_timestamp(&self.raised_at)?,
            due_at: parse_timestamp(&self.due_at)?,
            status: self.status.parse()?,
            acknowledged_at: optional_time(self.acknowledged_at)?,
            acknowledged_by: self.acknowledged_by,
            acknowledge_comment: self.acknowledge_comment,
            escalated_at: optional_time(self.escalated_at)?,
        })
    }
}
