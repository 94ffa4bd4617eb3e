//! The relay's metrics, written to the recorder the store was opened with
//! ([`Store::metrics_recorder`]):
//!
//! - `outbox_events_published_total`: events the sink accepted;
//! - `outbox_publish_failures_total`: publish attempts the sink failed, one
//!   per batch attempt;
//! - `outbox_pending_events`: gauge of undelivered events;
//! - `outbox_oldest_pending_age_seconds`: gauge of the age of the oldest
//!   undelivered event, 0 when there is none.
//!
//! The gauges come from a count over the outbox table, so the relay reads
//! them at most once per [`BACKLOG_READ_INTERVAL`] while it has work, and
//! sets them to 0 without a query when it finds the outbox empty.

use std::time::{Duration, Instant};

use epro_store::Store;
use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};
use time::OffsetDateTime;

/// Shortest time between two backlog reads.
pub(crate) const BACKLOG_READ_INTERVAL: Duration = Duration::from_secs(1);

/// Handles of the relay's metrics.
pub(crate) struct RelayMetrics {
    published: Counter,
    publish_failures: Counter,
    pending: Gauge,
    oldest_pending_age: Gauge,
    /// When the gauges were last set from a backlog read.
    last_backlog_read: Option<Instant>,
}

impl RelayMetrics {
    /// Registers the relay's metrics with the store's recorder, or returns
    /// handles that record nothing when the store has none.
    pub(crate) fn new(store: &Store) -> RelayMetrics {
        let Some(recorder) = store.metrics_recorder() else {
            return RelayMetrics {
                published: Counter::noop(),
                publish_failures: Counter::noop(),
                pending: Gauge::noop(),
                oldest_pending_age: Gauge::noop(),
                last_backlog_read: None,
            };
        };
        metrics::with_local_recorder(recorder.as_ref(), || {
            describe_counter!("outbox_events_published_total", "Outbox events the sink accepted.");
            describe_counter!("outbox_publish_failures_total", "Publish attempts of an outbox batch that failed.");
            describe_gauge!("outbox_pending_events", "Outbox events not yet delivered.");
            describe_gauge!(
                "outbox_oldest_pending_age_seconds",
                Unit::Seconds,
                "Age of the oldest outbox event not yet delivered; 0 when every event is delivered."
            );
            RelayMetrics {
                published: counter!("outbox_events_published_total"),
                publish_failures: counter!("outbox_publish_failures_total"),
                pending: gauge!("outbox_pending_events"),
                oldest_pending_age: gauge!("outbox_oldest_pending_age_seconds"),
                last_backlog_read: None,
            }
        })
    }

    pub(crate) fn record_published(&self, events: usize) {
        self.published.increment(events as u64);
    }

    pub(crate) fn record_publish_failure(&self) {
        self.publish_failures.increment(1);
    }

    /// Sets the backlog gauges to 0 after the relay found no pending event.
    pub(crate) fn record_empty_backlog(&mut self) {
        self.pending.set(0.0);
        self.oldest_pending_age.set(0.0);
        self.last_backlog_read = Some(Instant::now());
    }

    /// Reads the backlog from the store and sets the gauges, unless they
    /// were set less than [`BACKLOG_READ_INTERVAL`] ago. A failed read keeps
    /// the previous values; the relay's own reads report database trouble.
    pub(crate) async fn refresh_backlog(&mut self, store: &Store) {
        let is_fresh = self.last_backlog_read.is_some_and(|last| last.elapsed() < BACKLOG_READ_INTERVAL);
        if is_fresh {
            return;
        }
        self.last_backlog_read = Some(Instant::now());

        match store.outbox_backlog().await {
            Ok(backlog) => {
                let age = backlog
                    .oldest_occurred_at
                    .map_or(0.0, |oldest| (OffsetDateTime::now_utc() - oldest).as_seconds_f64().max(0.0));
                self.pending.set(backlog.pending as f64);
                self.oldest_pending_age.set(age);
            }
            Err(error) => tracing::debug!(error = %format!("{error:#}"), "Failed to read the outbox backlog"),
        }
    }
}
