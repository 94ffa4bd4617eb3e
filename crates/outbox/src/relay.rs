//! The relay loop: reads undelivered outbox events, publishes them to a [`Sink`] and
//! marks them delivered, at least once and in `seq` order.
//!
//! One iteration reads up to `batch_size` pending events, publishes them, and only
//! then marks them delivered. A crash between publish and mark sends the batch again
//! on the next run, and consumers deduplicate on the stable `eventId`. When the sink
//! fails, every event of the batch gets a failed attempt recorded, and the relay
//! retries the same batch after an exponential backoff with jitter, with no overall
//! time limit. Later events wait behind it, so the order is kept.
//!
//! The relay sleeps between batches until a commit wakes it through
//! [`Store::outbox_notify`] or `poll_interval` passes. The poll catches events written
//! by another process, which cannot notify this one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use epro_store::{OutboxEvent, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::metrics::RelayMetrics;
use crate::sink::Sink;

/// Minimum time between two warnings about the same run of failures. Failures in
/// between are counted and reported with the next warning.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Timing and size settings of [`run_relay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Maximum wait for new events when no commit wakes the relay.
    pub poll_interval: Duration,
    /// Maximum number of events per publish.
    pub batch_size: usize,
    /// Wait after the first failure. It doubles after each further failure.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between retries.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            poll_interval: Duration::from_millis(200),
            batch_size: 256,
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
/// Fails at start when `batch_size` is zero or `max_backoff` is shorter than
/// `initial_backoff`. Sink and store failures are retried, never returned.
pub async fn run_relay(
    store: Store,
    sink: Arc<dyn Sink>,
    config: RelayConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    ensure!(config.batch_size > 0, "outbox relay batch_size must be at least 1");
    ensure!(
        config.initial_backoff <= config.max_backoff,
        "outbox relay initial_backoff ({:?}) must not exceed max_backoff ({:?})",
        config.initial_backoff,
        config.max_backoff
    );

    let notify = store.outbox_notify();
    let mut metrics = RelayMetrics::new(&store);
    let mut backoff = Backoff::new(config.initial_backoff, config.max_backoff);
    let mut failures = FailureLog::new(WARNING_INTERVAL);
    tracing::info!(sink = sink.name(), batch_size = config.batch_size, "Outbox relay started");

    while !shutdown.is_cancelled() {
        let result = relay_batch(&store, sink.as_ref(), config.batch_size, &metrics).await;

        let wait = match result {
            Ok(0) => {
                metrics.record_empty_backlog();
                Wait::ForEvents
            }
            Ok(published) => {
                metrics.record_published(published);
                metrics.refresh_backlog(&store).await;
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
                metrics.refresh_backlog(&store).await;
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
    /// Reading, publishing or marking failed. The batch is retried after a backoff.
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

/// Publishes one batch and returns the number of events delivered.
async fn relay_batch(
    store: &Store,
    sink: &dyn Sink,
    batch_size: usize,
    metrics: &RelayMetrics,
) -> Result<usize, BatchError> {
    let events = store.outbox_pending(batch_size).await?;
    if events.is_empty() {
        return Ok(0);
    }

    if let Err(error) = sink.publish(&events).await {
        let error = anyhow::Error::new(error);
        metrics.record_publish_failure();
        record_failed_attempts(store, &events, &error).await?;
        return Err(BatchError::Failed(error.context(format!(
            "failed to publish {} outbox events to the {} sink",
            events.len(),
            sink.name()
        ))));
    }

    let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
    store.outbox_mark_delivered(&seqs).await.map_err(|error| match error {
        StoreError::ShuttingDown => BatchError::StoreClosed,
        // The events reached the sink, so the retry sends them a second time.
        other => BatchError::Failed(anyhow::Error::from(other).context(format!(
            "published outbox events {}..={} but failed to mark them delivered",
            seqs[0],
            seqs[seqs.len() - 1]
        ))),
    })?;
    Ok(events.len())
}

/// Counts a failed attempt on each event of the batch.
///
/// A failure to record is logged and otherwise ignored, because the publish error
/// is what the caller retries on.
async fn record_failed_attempts(
    store: &Store,
    events: &[OutboxEvent],
    error: &anyhow::Error,
) -> Result<(), BatchError> {
    let error_text = format!("{error:#}");
    for event in events {
        match store.outbox_mark_failed(event.seq, &error_text).await {
            Ok(()) => {}
            Err(StoreError::ShuttingDown) => return Err(BatchError::StoreClosed),
            Err(mark_error) => {
                tracing::warn!(
                    seq = event.seq,
                    event_id = %event.event_id,
                    error = %format!("{mark_error:#}"),
                    "Failed to record a failed outbox publish attempt"
                );
            }
        }
    }
    Ok(())
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
