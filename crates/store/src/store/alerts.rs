//! The part of [`Store`] that serves alerts after intake: listing them for site staff,
//! recording an acknowledgement, and escalating the alerts nobody acknowledged in
//! time.

use time::OffsetDateTime;

use super::{OpenBackend, Store, dispatch};
use crate::model::{AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter, StoreError};

impl Store {
    /// Lists the alerts of a trial that match every filter in `filter`, in `alert_id`
    /// order, which is creation order. Pass the last `alert_id` of a page as
    /// `filter.after` to read the next one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>, StoreError> {
        dispatch!(self, backend => backend.alerts(filter).await)
    }

    /// Reads one alert, or `None` if no alert has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn alert(&self, alert_id: &str) -> Result<Option<Alert>, StoreError> {
        dispatch!(self, backend => backend.alert(alert_id).await)
    }

    /// Counts the open alerts of every trial, escalated or not, for the open alerts
    /// gauge.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn open_alert_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, backend => backend.open_alert_count().await)
    }

    /// Records site staff's acknowledgement of an open alert: in one transaction, the
    /// alert becomes `acknowledged` with its time, actor and comment, and an audit row
    /// (action [`ALERT_ACKNOWLEDGED`](crate::ALERT_ACKNOWLEDGED), entity `alert`) keeps
    /// the status before and after with the comment as its reason.
    ///
    /// An acknowledgement is final: a second one writes nothing and returns
    /// [`AcknowledgeOutcome::AlreadyAcknowledged`]. Of several at the same moment,
    /// exactly one is recorded.
    ///
    /// # Errors
    ///
    /// [`StoreError::Overloaded`] when the SQLite writer's queue is full,
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when the comment is blank, the actor is empty, or the
    /// transaction fails to commit. Nothing is changed in any of these cases.
    pub async fn acknowledge_alert(
        &self,
        acknowledgement: AlertAcknowledgement,
    ) -> Result<AcknowledgeOutcome, StoreError> {
        dispatch!(self, backend => backend.acknowledge_alert(acknowledgement).await)
    }

    /// Escalates up to `limit` open alerts whose due time is at or before `now` and
    /// that have not escalated yet, earliest due first, and returns them as escalated.
    /// For each, in one transaction: `escalated_at` becomes `now`, an
    /// [`ALERT_ESCALATED`](crate::ALERT_ESCALATED) outbox event names the alert and its
    /// due time, and an audit row with actor `system` records the change.
    ///
    /// Each alert escalates exactly once, also when several epro instances call this
    /// at the same time on one PostgreSQL database: an instance skips the alerts
    /// another one is escalating, and finds them escalated afterwards. An alert
    /// acknowledged before its escalation never escalates. Call it again while it
    /// returns `limit` alerts.
    ///
    /// `now` is the caller's clock, so that tests can pass any instant.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShuttingDown`] after [`close`](Store::close),
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] when the transaction fails. Nothing is escalated in
    /// any of these cases.
    pub async fn escalate_overdue_alerts(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<Alert>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        dispatch!(self, backend => backend.escalate_overdue_alerts(now, limit).await)
    }
}
