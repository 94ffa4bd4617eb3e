//! The relay loop: claims pending outbox events, publishes them to a [`Sink`] and
//! marks them delivered, at least once and in `seq` order.
//!
//! One iteration claims up to `batch_size` pending events for `lease`, publishes them,
//! and only then marks them delivered. Several relays (one per epro instance) can share
//! one outbox, because the store never hands an event under a live lease to a second
//! relay. The leases of a relay that crashed expire, and another relay then sends those
//! events again. A crash between publish and mark also sends the batch again, and
//! consumers deduplicate on the stable `eventId`.
//!
//! A failed publish is recorded on every event of the batch and ends their claims, so
//! the next claim takes the same events first and the order is kept:
//!
//! - [`PublishError::Unavailable`] (the sink could not be reached): the relay retries
//!   after an exponential backoff with jitter, with no overall time limit. An outage
//!   of any length never dead-letters an event.
//! - [`PublishError::Rejected`] (the sink refused): a batch of more than one event is
//!   published again one event at a time, so only the refused events are charged.
//!   An event refused `dead_letter_after` times becomes a dead letter, leaves the
//!   queue, and waits for `epro outbox replay`.
//!
//! The relay sleeps between batches until a commit wakes it through
//! [`Store::outbox_notify`] or `poll_interval` passes. The poll catches events written
//! by other instances and expired leases, which cannot notify this one. On shutdown it
//! releases its claims so that another instance takes them at once, and at start it
//! releases claims left under its own id by a run that crashed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use epro_store::{OutboxEvent, OutboxFailure, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::metrics::RelayMetrics;
use crate::sink::{PublishError, Sink};

/// Minimum time between two warnings about the same run of failures. Failures in
/// between are counted and reported with the next warning.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Timing and size settings of [`run_relay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Identifies this relay's claims in the outbox, unique per running instance.
    pub relay_id: String,
    /// Maximum wait for new events when no commit wakes the relay.
    pub poll_interval: Duration,
    /// Maximum number of events per publish.
    pub batch_size: usize,
    /// How long a claim keeps other relays off a batch. It must exceed the longest
    /// publish, or another relay may send the same events meanwhile.
    pub lease: Duration,
    /// Number of refusals by the sink after which an event becomes a dead letter.
    pub dead_letter_after: u32,
    /// Wait after the first failure. It doubles after each further failure.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between retries.
    pub max_backoff: Duration,
}

impl RelayConfig {
    /// Returns the relay id `HOST:PORT` of an instance listening on `port`.
    ///
    /// Two instances on one host listen on different ports, so the id is unique. An
    /// instance restarted on the same host and port gets the same id back, so it
    /// releases the claims its crashed predecessor left at once instead of waiting for
    /// their leases.
    pub fn relay_id_for_port(port: u16) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{port}")
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            relay_id: format!("relay-{:08x}", fastrand::u32(..)),
            poll_interval: Duration::from_millis(200),
            batch_size: 256,
            lease: Duration::from_secs(60),
            dead_letter_after: 10,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Relays outbox events from `store` to `sink` until `shutdown` is cancelled.
///
/// Cancellation interrupts waits and backoffs at once, but a batch that is being
/// published is finished and marked first. The relay also stops, without error,
/// when the store is closed under it. Events then left unmarked are sent again by
/// the next run.
///
/// # Errors
///
/// Fails at start when `batch_size` or `dead_letter_after` is zero, the lease is
/// zero, or `max_backoff` is shorter than `initial_backoff`. Sink and store failures
/// are retried, never returned.
pub async fn run_relay(
    store: Store,
    sink: Arc<dyn Sink>,
    config: RelayConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    ensure!(config.batch_size > 0, "outbox relay batch_size must be at least 1");
    ensure!(config.dead_letter_after > 0, "outbox relay dead_letter_after must be at least 1");
    ensure!(!config.lease.is_zero(), "outbox relay lease must be longer than zero");
    ensure!(
        config.initial_backoff <= config.max_backoff,
        "outbox relay initial_backoff ({:?}) must not exceed max_backoff ({:?})",
        config.initial_backoff,
        config.max_backoff
    );

    // A predecessor with the same id that crashed left claims behind; take them back
    // now rather than after their leases end.
    match store.outbox_release(&config.relay_id).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "Outbox relay took back claims left by its previous run"),
        Err(StoreError::ShuttingDown) => return Ok(()),
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "Failed to release old outbox claims"),
    }

    let notify = store.outbox_notify();
    let mut backoff = Backoff::new(config.initial_backoff, config.max_backoff);
    let mut failures = FailureLog::new(WARNING_INTERVAL);
    let mut relay = Relay { store: &store, sink: sink.as_ref(), config: &config, metrics: RelayMetrics::new(&store) };
    tracing::info!(
        sink = sink.name(),
        relay_id = %config.relay_id,
        batch_size = config.batch_size,
        "Outbox relay started"
    );

    // Whether the last batch did something, so that the backlog gauges are read again
    // at once when the relay falls idle rather than keeping a count from mid-batch.
    let mut was_busy = false;
    while !shutdown.is_cancelled() {
        let result = relay.relay_batch().await;
        let went_idle = was_busy && matches!(result, Ok(0));
        was_busy = !matches!(result, Ok(0));

        let wait = match result {
            Ok(0) => Wait::ForEvents,
            Ok(published) => {
                if let Some(failed_attempts) = failures.record_success() {
                    tracing::info!(sink = sink.name(), failed_attempts, "Outbox relay recovered");
                }
                backoff.reset();
                tracing::debug!(sink = sink.name(), published, "Outbox batch published");
                Wait::None
            }
            Err(BatchError::StoreClosed) => {
                tracing::info!("Outbox relay stopping because the store is closed");
                break;
            }
            Err(BatchError::Failed(error)) => {
                let delay = backoff.next_delay();
                if let Some(report) = failures.record_failure(Instant::now()) {
                    tracing::warn!(
                        sink = sink.name(),
                        error = %format!("{error:#}"),
                        consecutive_failures = report.consecutive,
                        failures_not_logged = report.not_logged,
                        retry_in_ms = delay.as_millis() as u64,
                        "Outbox relay failed, will retry"
                    );
                } else {
                    tracing::debug!(error = %format!("{error:#}"), "Outbox relay failed again");
                }
                Wait::Backoff(delay)
            }
        };
        relay.metrics.refresh_backlog(&store, went_idle).await;

        match wait {
            Wait::None => {}
            Wait::ForEvents => {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = notify.notified() => {}
                    () = tokio::time::sleep(config.poll_interval) => {}
                }
            }
            Wait::Backoff(delay) => {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    match store.outbox_release(&config.relay_id).await {
        Ok(0) | Err(StoreError::ShuttingDown) => {}
        Ok(released) => tracing::info!(released, "Outbox relay released its claims"),
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "Failed to release outbox claims; they expire"),
    }
    tracing::info!(sink = sink.name(), "Outbox relay stopped");
    Ok(())
}

/// Pause before the next batch.
enum Wait {
    None,
    ForEvents,
    Backoff(Duration),
}

/// Reason a batch did not complete.
enum BatchError {
    /// The store rejected a write because it is closing, so the relay should stop.
    StoreClosed,
    /// Claiming, publishing or marking failed. The events are claimed again after a
    /// backoff.
    Failed(anyhow::Error),
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ShuttingDown => BatchError::StoreClosed,
            other => BatchError::Failed(other.into()),
        }
    }
}

/// The state of one relay loop: the store, sink and settings it borrows, and its
/// metrics.
struct Relay<'a> {
    store: &'a Store,
    sink: &'a dyn Sink,
    config: &'a RelayConfig,
    metrics: RelayMetrics,
}

impl Relay<'_> {
    /// Claims and publishes one batch, and returns the number of events delivered.
    async fn relay_batch(&self) -> Result<usize, BatchError> {
        let events = self.store.outbox_claim(&self.config.relay_id, self.config.batch_size, self.config.lease).await?;
        if events.is_empty() {
            return Ok(0);
        }

        match self.sink.publish(&events).await {
            Ok(()) => {
                self.mark_delivered(&events).await?;
                Ok(events.len())
            }
            Err(PublishError::Rejected(error)) if events.len() > 1 => {
                self.metrics.record_publish_failure(true);
                tracing::debug!(
                    error = %format!("{error:#}"),
                    events = events.len(),
                    "Sink refused a batch, publishing its events one at a time"
                );
                self.publish_one_at_a_time(&events).await
            }
            Err(error) => {
                let rejected = matches!(error, PublishError::Rejected(_));
                self.metrics.record_publish_failure(rejected);
                self.record_failure(&events, &error).await?;
                Err(BatchError::Failed(anyhow::Error::from(error).context(format!(
                    "failed to publish {} outbox events to the {} sink",
                    events.len(),
                    self.sink.name()
                ))))
            }
        }
    }

    /// Publishes claimed events one by one after the sink refused them as a batch, so
    /// that only the refused events count toward the dead-letter limit. Stops at the
    /// first `Unavailable` reply and leaves the rest for the next claim.
    async fn publish_one_at_a_time(&self, events: &[OutboxEvent]) -> Result<usize, BatchError> {
        let mut delivered = 0;
        let mut refused = 0;
        for (index, event) in events.iter().enumerate() {
            match self.sink.publish(std::slice::from_ref(event)).await {
                Ok(()) => {
                    self.mark_delivered(std::slice::from_ref(event)).await?;
                    delivered += 1;
                }
                Err(error @ PublishError::Rejected(_)) => {
                    self.metrics.record_publish_failure(true);
                    self.record_failure(std::slice::from_ref(event), &error).await?;
                    refused += 1;
                }
                Err(error @ PublishError::Unavailable(_)) => {
                    self.metrics.record_publish_failure(false);
                    self.record_failure(&events[index..], &error).await?;
                    return Err(BatchError::Failed(
                        anyhow::Error::from(error).context(format!("the {} sink became unavailable", self.sink.name())),
                    ));
                }
            }
        }
        if refused > 0 && delivered == 0 {
            return Err(BatchError::Failed(anyhow::anyhow!(
                "the {} sink rejected all {refused} events of a batch",
                self.sink.name()
            )));
        }
        Ok(delivered)
    }

    async fn mark_delivered(&self, events: &[OutboxEvent]) -> Result<(), BatchError> {
        let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
        self.store.outbox_mark_delivered(&seqs).await.map_err(|error| match error {
            StoreError::ShuttingDown => BatchError::StoreClosed,
            // The events reached the sink; when their lease ends they are sent again.
            other => BatchError::Failed(anyhow::Error::from(other).context(format!(
                "published outbox events {}..={} but failed to mark them delivered",
                seqs[0],
                seqs[seqs.len() - 1]
            ))),
        })?;
        self.metrics.record_published(events.len());
        Ok(())
    }

    /// Records a failed attempt on each event and ends their claims. Events refused
    /// often enough become dead letters, each logged once.
    ///
    /// A failure to record is logged and otherwise ignored, because the publish error
    /// is what the caller retries on, and the claims expire anyway.
    async fn record_failure(&self, events: &[OutboxEvent], error: &PublishError) -> Result<(), BatchError> {
        let failure = OutboxFailure {
            seqs: events.iter().map(|event| event.seq).collect(),
            error: format!("{error:#}"),
            rejected: matches!(error, PublishError::Rejected(_)),
            dead_letter_after: self.config.dead_letter_after,
        };
        match self.store.outbox_mark_failed(failure).await {
            Ok(dead) => {
                for event in events.iter().filter(|event| dead.contains(&event.seq)) {
                    self.metrics.record_dead_letter();
                    tracing::error!(
                        seq = event.seq,
                        event_id = %event.event_id,
                        event_type = %event.event_type,
                        rejections = self.config.dead_letter_after,
                        error = %format!("{error:#}"),
                        "Outbox event dead-lettered; replay it with `epro outbox replay`"
                    );
                }
                Ok(())
            }
            Err(StoreError::ShuttingDown) => Err(BatchError::StoreClosed),
            Err(mark_error) => {
                tracing::warn!(
                    events = events.len(),
                    error = %format!("{mark_error:#}"),
                    "Failed to record a failed outbox publish attempt"
                );
                Ok(())
            }
        }
    }
}

/// Exponential backoff with jitter: each delay is drawn from the upper half of the
/// current step, so relays restarted together spread their retries.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, step: initial }
    }

    /// Returns a delay in `[step / 2, step]` and doubles the step up to `max`.
    fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = step.saturating_mul(2).min(self.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    fn reset(&mut self) {
        self.step = self.initial;
    }
}

/// Rate limit for failure warnings during a long sink outage.
#[derive(Debug)]
struct FailureLog {
    interval: Duration,
    consecutive: u64,
    not_logged: u64,
    last_warning: Option<Instant>,
}

/// Counts reported with a warning.
#[derive(Debug, PartialEq, Eq)]
struct FailureReport {
    /// Failures since the last success, including this one.
    consecutive: u64,
    /// Failures since the previous warning that were not logged at `warn`.
    not_logged: u64,
}

impl FailureLog {
    fn new(interval: Duration) -> Self {
        FailureLog { interval, consecutive: 0, not_logged: 0, last_warning: None }
    }

    /// Counts a failure and returns the counts to log, or `None` when a warning was
    /// logged less than `interval` ago.
    fn record_failure(&mut self, now: Instant) -> Option<FailureReport> {
        self.consecutive += 1;
        let warn_now = self.last_warning.is_none_or(|last| now.duration_since(last) >= self.interval);
        if !warn_now {
            self.not_logged += 1;
            return None;
        }

        let report = FailureReport { consecutive: self.consecutive, not_logged: self.not_logged };
        self.last_warning = Some(now);
        self.not_logged = 0;
        Some(report)
    }

    /// Ends a run of failures and returns its length, or `None` if there was none.
    fn record_success(&mut self) -> Option<u64> {
        let failed = self.consecutive;
        self.consecutive = 0;
        self.not_logged = 0;
        self.last_warning = None;
        (failed > 0).then_some(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let expected_steps = [100, 200, 350, 350];

        for step in expected_steps {
            let delay = backoff.next_delay();
            let step = Duration::from_millis(step);
            assert!(delay >= step / 2, "delay {delay:?} below half of step {step:?}");
            assert!(delay <= step, "delay {delay:?} above step {step:?}");
        }
    }

    #[test]
    fn backoff_reset_restarts_at_initial() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..5 {
            backoff.next_delay();
        }

        backoff.reset();

        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn failure_log_limits_warnings() {
        let mut log = FailureLog::new(Duration::from_secs(60));
        let start = Instant::now();

        let first = log.record_failure(start);
        let within_interval: Vec<_> =
            (1..=30).map(|second| log.record_failure(start + Duration::from_secs(second))).collect();
        let after_interval = log.record_failure(start + Duration::from_secs(61));

        assert_eq!(first, Some(FailureReport { consecutive: 1, not_logged: 0 }));
        assert!(within_interval.iter().all(Option::is_none));
        assert_eq!(after_interval, Some(FailureReport { consecutive: 32, not_logged: 30 }));
    }

    #[test]
    fn failure_log_success_ends_run() {
        let mut log = FailureLog::new(Duration::from_secs(60));
        let start = Instant::now();
        log.record_failure(start);
        log.record_failure(start + Duration::from_secs(1));

        let recovered = log.record_success();
        let quiet = log.record_success();
        let next = log.record_failure(start + Duration::from_secs(2));

        assert_eq!(recovered, Some(2));
        assert_eq!(quiet, None);
        assert_eq!(next, Some(FailureReport { consecutive: 1, not_logged: 0 }));
    }
}
