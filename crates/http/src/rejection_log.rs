//! Rate limit for the log lines about rejected requests: at most one line
//! per admission limit per interval, carrying the number of rejections it
//! stands for. Under overload a server rejects thousands of requests a
//! second, and one line each would bury every other log line.
//!
//! Rejections after the last line of a burst are reported by the next line
//! about the same limit, whenever that comes. `admission_rejections_total`
//! has the exact totals at all times.

use std::time::{Duration, Instant};

use crate::admission::Limit;

/// Per-limit counts of rejections not yet reported in a log line.
#[derive(Debug)]
pub struct RejectionLog {
    interval: Duration,
    entries: [Entry; Limit::ALL.len()],
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    last_line: Option<Instant>,
    /// Rejections since `last_line` that no line reported.
    unreported: u64,
}

impl RejectionLog {
    /// Creates a log that writes at most one line per limit per `interval`.
    pub fn new(interval: Duration) -> Self {
        RejectionLog { interval, entries: [Entry::default(); Limit::ALL.len()] }
    }

    /// Counts one rejection by `limit` at `now`.
    ///
    /// Returns the number of rejections a log line written now should
    /// report (this one and those held back since the previous line), or
    /// `None` when the previous line about `limit` is less than an interval
    /// old.
    pub fn record(&mut self, limit: Limit, now: Instant) -> Option<u64> {
        let entry = &mut self.entries[limit.index()];
        entry.unreported += 1;

        let line_due = entry.last_line.is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !line_due {
            return None;
        }
        entry.last_line = Some(now);
        Some(std::mem::take(&mut entry.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_writes_one_line_per_interval() {
        let mut log = RejectionLog::new(Duration::from_secs(10));
        let start = Instant::now();

        let first = log.record(Limit::Concurrency, start);
        let held_back: Vec<_> =
            (1..=99).map(|i| log.record(Limit::Concurrency, start + Duration::from_millis(i * 50))).collect();
        let next = log.record(Limit::Concurrency, start + Duration::from_secs(10));

        assert_eq!(first, Some(1));
        assert!(held_back.iter().all(Option::is_none), "{held_back:?}");
        assert_eq!(next, Some(100), "the 99 held back and this one");
    }

    #[test]
    fn record_keeps_limits_apart() {
        let mut log = RejectionLog::new(Duration::from_secs(10));
        let start = Instant::now();

        assert_eq!(log.record(Limit::RateIp, start), Some(1));
        assert_eq!(log.record(Limit::Timeout, start), Some(1), "another limit gets its own first line");
        assert_eq!(log.record(Limit::RateIp, start + Duration::from_secs(1)), None);
        assert_eq!(log.record(Limit::Timeout, start + Duration::from_secs(11)), Some(1));
        assert_eq!(log.record(Limit::RateIp, start + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn record_tolerates_clock_going_back() {
        let mut log = RejectionLog::new(Duration::from_secs(10));
        let start = Instant::now() + Duration::from_secs(5);

        assert_eq!(log.record(Limit::BodySize, start), Some(1));
        assert_eq!(log.record(Limit::BodySize, start - Duration::from_secs(5)), None);
    }
}
