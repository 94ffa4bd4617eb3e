//! The alert escalation task of `epro serve`. Every `alerts.escalation_interval_seconds`
//! it calls the store to escalate the open alerts past their due time, in batches of
//! `alerts.escalation_batch_size`, and then counts the open alerts for the
//! `alerts_open` gauge.
//!
//! The store escalates each alert exactly once, with its `alert.escalated` outbox event
//! and audit row, also when several instances run this task on one PostgreSQL
//! database. So the task keeps no state of its own: a restarted instance, or another
//! one, finds the same overdue alerts in the database.

use std::time::Duration;

use epro_http::Metrics;
use epro_store::Store;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Settings of [`run_escalation`], from the `[alerts]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationConfig {
    /// Time between two looks for overdue alerts.
    pub interval: Duration,
    /// Most alerts escalated in one transaction.
    pub batch_size: usize,
}

/// Escalates overdue alerts every `config.interval` until `stop` is cancelled. The
/// first run starts at once. A run that is under way finishes its current batch
/// before the task returns, so a clean stop never leaves a batch half written.
pub async fn run_escalation(store: Store, metrics: Metrics, config: EscalationConfig, stop: CancellationToken) {
    tracing::info!(
        interval_seconds = config.interval.as_secs(),
        batch_size = config.batch_size,
        "Alert escalation started"
    );
    let mut interval = tokio::time::interval(config.interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        escalate_overdue(&store, &metrics, config.batch_size, &stop).await;
        count_open_alerts(&store, &metrics).await;
    }

    tracing::info!("Alert escalation stopped");
}

/// Escalates batches of overdue alerts until a batch comes back smaller than
/// `batch_size`, the store fails, or `stop` is cancelled.
async fn escalate_overdue(store: &Store, metrics: &Metrics, batch_size: usize, stop: &CancellationToken) {
    loop {
        let escalated = match store.escalate_overdue_alerts(OffsetDateTime::now_utc(), batch_size).await {
            Ok(escalated) => escalated,
            Err(error) => {
                // The next interval tries again; the alerts stay due until then.
                tracing::error!(error = %format!("{error:#}"), "Failed to escalate overdue alerts");
                return;
            }
        };

        for alert in &escalated {
            metrics.record_alert_escalated(&alert.trial_id);
            let due_at = alert.due_at.format(&Rfc3339).unwrap_or_else(|_| alert.due_at.to_string());
            tracing::warn!(
                alert_id = %alert.alert_id,
                trial_id = %alert.trial_id,
                rule = %alert.rule,
                severity = %alert.severity,
                due_at,
                "Alert escalated: not acknowledged in time"
            );
        }

        let drained = escalated.len() < batch_size;
        if drained || stop.is_cancelled() {
            return;
        }
    }
}

/// Sets the `alerts_open` gauge from the database.
async fn count_open_alerts(store: &Store, metrics: &Metrics) {
    match store.open_alert_count().await {
        Ok(count) => metrics.set_open_alerts(count),
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "Failed to count open alerts"),
    }
}
