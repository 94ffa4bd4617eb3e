//! The relay's metrics, written to the recorder the store was opened with
//! ([`Store::metrics_recorder`]):
//!
//! - `outbox_events_published_total`: events the sink accepted;
//! - `outbox_publish_failures_total{reason}`: failed publish attempts, one per
//!   attempt of a batch or a single event, `reason` being `unavailable` (the
//!   sink could not be reached) or `rejected` (it refused);
//! - `outbox_dead_lettered_total`: events this relay moved to the dead letters;
//! - `outbox_pending_events`: gauge of events neither delivered nor dead-lettered;
//! - `outbox_oldest_pending_age_seconds`: gauge of the age of the oldest pending
//!   event, 0 when there is none: the relay's lag;
//! - `outbox_dead_letter_events`: gauge of dead-lettered events waiting for a replay.
//!
//! The gauges come from counts over the outbox table, which other instances write
//! too, so the relay reads them at most once per [`BACKLOG_READ_INTERVAL`].

use std::time::{Duration, Instant};

use epro_store::Store;
use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};
use time::OffsetDateTime;

/// Shortest time between two backlog reads.
pub(crate) const BACKLOG_READ_INTERVAL: Duration = Duration::from_secs(1);

/// Handles of the relay's metrics.
pub(crate) struct RelayMetrics {
    published: Counter,
    unavailable: Counter,
    rejected: Counter,
    dead_lettered: Counter,
    pending: Gauge,
    oldest_pending_age: Gauge,
    dead_letters: Gauge,
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
                unavailable: Counter::noop(),
                rejected: Counter::noop(),
                dead_lettered: Counter::noop(),
                pending: Gauge::noop(),
                oldest_pending_age: Gauge::noop(),
                dead_letters: Gauge::noop(),
                last_backlog_read: None,
            };
        };
        metrics::with_local_recorder(recorder.as_ref(), || {
            describe_counter!("outbox_events_published_total", "Outbox events the sink accepted.");
            describe_counter!(
                "outbox_publish_failures_total",
                "Failed publish attempts, by reason: unavailable (sink unreachable) or rejected (sink refused)."
            );
            describe_counter!("outbox_dead_lettered_total", "Outbox events this relay moved to the dead letters.");
            describe_gauge!("outbox_pending_events", "Outbox events neither delivered nor dead-lettered.");
            describe_gauge!(
                "outbox_oldest_pending_age_seconds",
                Unit::Seconds,
                "Age of the oldest pending outbox event, the relay's lag; 0 when none is pending."
            );
            describe_gauge!("outbox_dead_letter_events", "Dead-lettered outbox events waiting for a replay.");
            RelayMetrics {
                published: counter!("outbox_events_published_total"),
                unavailable: counter!("outbox_publish_failures_total", "reason" => "unavailable"),
                rejected: counter!("outbox_publish_failures_total", "reason" => "rejected"),
                dead_lettered: counter!("outbox_dead_lettered_total"),
                pending: gauge!("outbox_pending_events"),
                oldest_pending_age: gauge!("outbox_oldest_pending_age_seconds"),
                dead_letters: gauge!("outbox_dead_letter_events"),
                last_backlog_read: None,
            }
        })
    }

    pub(crate) fn record_published(&self, events: usize) {
        self.published.increment(events as u64);
    }

    /// Counts a failed publish attempt: refused by the sink when `rejected`,
    /// unreachable otherwise.
    pub(crate) fn record_publish_failure(&self, rejected: bool) {
        if rejected { self.rejected.increment(1) } else { self.unavailable.increment(1) }
    }

    pub(crate) fn record_dead_letter(&self) {
        self.dead_lettered.increment(1);
    }

    /// Reads the backlog from the store and sets the gauges, unless they
    /// were set less than [`BACKLOG_READ_INTERVAL`] ago and `force` is false. A
    /// failed read keeps the previous values; the relay's own reads report
    /// database trouble.
    pub(crate) async fn refresh_backlog(&mut self, store: &Store, force: bool) {
        let is_fresh = self.last_backlog_read.is_some_and(|last| last.elapsed() < BACKLOG_READ_INTERVAL);
        if is_fresh && !force {
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
                self.dead_letters.set(backlog.dead_letters as f64);
            }
            Err(error) => tracing::debug!(error = %format!("{error:#}"), "Failed to read the outbox backlog"),
        }
    }
}
