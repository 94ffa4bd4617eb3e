//! Alerts for site staff: alerts going in with a submission, stored alerts, the
//! listing filter, acknowledgements and their outcome.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Redacted;

/// An alert from the rule engine, for example a PHQ-9 item 9 answer above 0. It is
/// stored as one `alerts` row and sent as one `alert.raised` outbox event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    /// Key of the alert rule that fired. Must not be empty.
    pub rule: String,
    /// Severity declared by the rule, passed to the event as it is. Must not be empty.
    pub severity: String,
    /// linkIds of the items that triggered the alert. Their answers are not sent.
    pub items: Vec<String>,
    /// When the alert escalates unless site staff acknowledge it first: the
    /// submission's `received_at` plus the trial's deadline. Must be later than
    /// `received_at`. Kept to the microsecond.
    pub due_at: OffsetDateTime,
}

/// Workflow state of an alert. A new alert is `Open` until site staff acknowledge
/// it, and an acknowledgement is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Raised and waiting for site staff.
    Open,
    /// Seen by site staff, with a comment on what they did about it.
    Acknowledged,
}

impl AlertStatus {
    /// Returns the name stored in the `status` column: `open` or `acknowledged`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertStatus {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "open" => Ok(AlertStatus::Open),
            "acknowledged" => Ok(AlertStatus::Acknowledged),
            other => bail!("unknown alert status {other:?}, expected open or acknowledged"),
        }
    }
}

/// An alert as stored, read by [`Store::alert`](crate::Store::alert) and
/// [`Store::alerts`](crate::Store::alerts).
///
/// Times are kept to the microsecond on both backends.
#[derive(Clone, PartialEq, Eq)]
pub struct Alert {
    /// UUID v7 chosen by the store, so alert ids sort in creation order.
    pub alert_id: String,
    pub submission_id: String,
    pub trial_id: String,
    pub form_id: String,
    pub form_version: String,
    pub patient_id: String,
    /// Key of the alert rule that fired.
    pub rule: String,
    pub severity: String,
    /// linkIds and score names the rule read.
    pub items: Vec<String>,
    /// When the submission that raised the alert was received.
    pub raised_at: OffsetDateTime,
    /// When the alert escalates, or escalated, unless acknowledged first.
    pub due_at: OffsetDateTime,
    pub status: AlertStatus,
    /// When site staff acknowledged the alert, or `None` while it is open.
    pub acknowledged_at: Option<OffsetDateTime>,
    /// User who acknowledged the alert, for example `operator`.
    pub acknowledged_by: Option<String>,
    /// Comment site staff wrote when they acknowledged the alert.
    pub acknowledge_comment: Option<String>,
    /// When the alert escalated, or `None` if it has not.
    pub escalated_at: Option<OffsetDateTime>,
}

impl fmt::Debug for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Site staff write free text into the comment, which may name the patient.
        f.debug_struct("Alert")
            .field("alert_id", &self.alert_id)
            .field("submission_id", &self.submission_id)
            .field("trial_id", &self.trial_id)
            .field("form_id", &self.form_id)
            .field("form_version", &self.form_version)
            .field("rule", &self.rule)
            .field("severity", &self.severity)
            .field("items", &self.items)
            .field("raised_at", &self.raised_at)
            .field("due_at", &self.due_at)
            .field("status", &self.status)
            .field("acknowledged_at", &self.acknowledged_at)
            .field("acknowledged_by", &self.acknowledged_by)
            .field("acknowledge_comment", &self.acknowledge_comment.as_ref().map(|comment| Redacted(comment.len())))
            .field("escalated_at", &self.escalated_at)
            .finish_non_exhaustive()
    }
}

/// Filters and cursor of [`Store::alerts`](crate::Store::alerts). `None` fields do
/// not filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertFilter {
    pub trial_id: String,
    pub status: Option<AlertStatus>,
    pub patient_id: Option<String>,
    /// Only patients enrolled at one of these sites (a site-bound caller's view).
    /// `None` lists every patient, enrolled or not.
    pub site_ids: Option<Vec<String>>,
    /// Cursor: only alerts with a greater `alert_id` are listed. Pass the last
    /// `alert_id` of the previous page.
    pub after: Option<String>,
    /// Maximum number of alerts returned.
    pub limit: usize,
}

impl AlertFilter {
    /// Creates a filter for the first `limit` alerts of a trial, in any status.
    pub fn new(trial_id: impl Into<String>, limit: usize) -> Self {
        AlertFilter { trial_id: trial_id.into(), status: None, patient_id: None, site_ids: None, after: None, limit }
    }
}

/// Site staff's acknowledgement of one alert, for
/// [`Store::acknowledge_alert`](crate::Store::acknowledge_alert).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertAcknowledgement {
    pub alert_id: String,
    /// Account of what was done about the alert, kept on the alert and as the reason
    /// of its audit row. Must not be blank.
    pub comment: String,
    /// User acknowledging, for example `staff:S-017`, recorded on the alert and in the
    /// audit trail. Must not be empty.
    pub actor: String,
    /// Request id of the HTTP request that carried the acknowledgement.
    pub request_id: Option<String>,
}

impl fmt::Debug for AlertAcknowledgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertAcknowledgement")
            .field("alert_id", &self.alert_id)
            .field("comment", &Redacted(self.comment.len()))
            .field("actor", &self.actor)
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// Result of [`Store::acknowledge_alert`](crate::Store::acknowledge_alert).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcknowledgeOutcome {
    /// The alert is now acknowledged, with its audit row. Contains the alert as stored
    /// after the change.
    Acknowledged(Alert),
    /// No alert has this id. Nothing was written.
    NotFound,
    /// The alert was acknowledged before. Nothing was written, and the alert keeps its
    /// first acknowledgement.
    AlreadyAcknowledged(Alert),
}
