//! The store's metrics, written to the recorder given in
//! [`StoreConfig::metrics`](crate::StoreConfig::metrics):
//!
//! - `store_batch_size`: histogram of commands per committed group commit;
//! - `store_commit_duration_seconds`: histogram of the time from the start
//!   of a batch's transaction to the end of its `COMMIT`, the flush of the
//!   log included;
//! - `store_queue_depth`: gauge of commands waiting for the writer, set
//!   each time the writer takes a batch.
//!
//! The writer (SQLite's thread or PostgreSQL's task) updates all three
//! through the handles registered here once, so the hot path does no lookup
//! by name. On PostgreSQL only submissions pass through the writer, so the
//! other writes, which run in transactions of their own, are not counted.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Gauge, Histogram, Recorder, Unit, describe_gauge, describe_histogram, gauge, histogram};

/// The metrics recorder a store and its relay write to.
pub type SharedRecorder = Arc<dyn Recorder + Send + Sync>;

/// Handles of the writer's metrics.
pub(crate) struct WriterMetrics {
    batch_size: Histogram,
    commit_duration: Histogram,
    queue_depth: Gauge,
}

impl WriterMetrics {
    /// Registers the writer's metrics with `recorder`, or returns handles
    /// that record nothing when there is none.
    pub(crate) fn new(recorder: Option<&SharedRecorder>) -> WriterMetrics {
        let Some(recorder) = recorder else {
            return WriterMetrics {
                batch_size: Histogram::noop(),
                commit_duration: Histogram::noop(),
                queue_depth: Gauge::noop(),
            };
        };
        metrics::with_local_recorder(recorder.as_ref(), || {
            describe_histogram!("store_batch_size", "Commands committed together in one group commit.");
            describe_histogram!(
                "store_commit_duration_seconds",
                Unit::Seconds,
                "Time from the start of one group commit's transaction to the end of its COMMIT, including the log flush."
            );
            describe_gauge!("store_queue_depth", "Commands waiting for the writer when it last took a batch.");
            WriterMetrics {
                batch_size: histogram!("store_batch_size"),
                commit_duration: histogram!("store_commit_duration_seconds"),
                queue_depth: gauge!("store_queue_depth"),
            }
        })
    }

    /// Records a committed batch of `commands` that took `duration`.
    pub(crate) fn record_commit(&self, commands: usize, duration: Duration) {
        self.batch_size.record(commands as f64);
        self.commit_duration.record(duration.as_secs_f64());
    }

    /// Records the number of commands still waiting for the writer.
    pub(crate) fn record_queue_depth(&self, waiting: usize) {
        self.queue_depth.set(waiting as f64);
    }
}
