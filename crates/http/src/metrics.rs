//! The application's Prometheus metrics: the recorder, the text rendered at
//! `GET /metrics`, and the functions that update the HTTP layer's metrics.
//!
//! Every application gets its own recorder instead of the process-wide one
//! of the `metrics` crate, so tests that start several applications in one
//! process each read their own counters. The store and the outbox relay
//! write to the same recorder through [`Metrics::recorder`]. Each metric is
//! updated by one function; the HTTP layer's are here:
//!
//! | metric | labels | updated by |
//! | --- | --- | --- |
//! | `http_requests_total` | `route`, `method`, `status` | [`record_request`] |
//! | `http_request_duration_seconds` | `route`, `method` | [`record_request`] |
//! | `submissions_accepted_total` | `trial`, `form` | [`Metrics::record_submission_accepted`] |
//! | `submissions_rejected_total` | `code` | [`Metrics::record_submission_rejected`] |
//! | `admission_rejections_total` | `limit` | [`Metrics::record_admission_rejection`] |
//! | `alerts_acknowledged_total` | `trial` | [`Metrics::record_alert_acknowledged`] |
//! | `alerts_escalated_total` | `trial` | [`Metrics::record_alert_escalated`] |
//! | `alerts_open` | none | [`Metrics::set_open_alerts`] |
//!
//! Labels never carry raw paths or patient ids: `route` is the route
//! template, and `trial` and `form` are ids of forms the catalogue has (for
//! an alert, had when the alert was raised).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Recorder, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::admission::Limit;
use crate::state::AppState;

/// Bucket bounds in seconds for request and commit durations: 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Bucket bounds for the rows of one group commit, up to above the largest
/// `database.group_commit_max_rows` that makes sense.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// The route label of requests that matched no route.
const UNMATCHED_ROUTE: &str = "unmatched";

/// One application's metrics recorder and the handle that renders it.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Metrics {
    /// Creates an empty recorder with the bucket bounds of every histogram
    /// of epro, and describes the HTTP layer's metrics.
    pub fn new() -> Metrics {
        let builder = [
            ("http_request_duration_seconds", DURATION_BUCKETS),
            ("store_commit_duration_seconds", DURATION_BUCKETS),
            ("store_batch_size", BATCH_SIZE_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("bucket lists are constant and not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder: Arc::new(recorder), handle };
        metrics.describe();
        metrics
    }

    /// Returns the recorder, for the store and the relay to write their
    /// metrics to.
    pub fn recorder(&self) -> Arc<dyn Recorder + Send + Sync> {
        Arc::clone(&self.recorder) as Arc<dyn Recorder + Send + Sync>
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Moves recorded histogram samples into their buckets. Rendering does
    /// this too; call it periodically so samples do not pile up in memory
    /// when nobody scrapes `/metrics`.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Counts a submission that the store committed as new (replays of a
    /// stored submission are not counted).
    pub fn record_submission_accepted(&self, trial_id: &str, form_id: &str) {
        self.with_recorder(|| {
            counter!("submissions_accepted_total", "trial" => trial_id.to_owned(), "form" => form_id.to_owned())
                .increment(1);
        });
    }

    /// Counts an error reply of a submission endpoint by its error code.
    pub fn record_submission_rejected(&self, code: &'static str) {
        self.with_recorder(|| counter!("submissions_rejected_total", "code" => code).increment(1));
    }

    /// Counts a request or connection rejected by an admission limit.
    pub fn record_admission_rejection(&self, limit: Limit) {
        self.with_recorder(|| counter!("admission_rejections_total", "limit" => limit.label()).increment(1));
    }

    /// Counts a request that presented a token epro did not accept, or asked for
    /// something its caller may not do, by `reason` (`malformed_token`,
    /// `unknown_token`, `expired_token`, `revoked_token`, `forbidden`).
    pub fn record_security_event(&self, reason: &'static str) {
        self.with_recorder(|| counter!("security_events_total", "reason" => reason).increment(1));
    }

    /// Counts an alert that site staff acknowledged.
    pub fn record_alert_acknowledged(&self, trial_id: &str) {
        self.with_recorder(|| counter!("alerts_acknowledged_total", "trial" => trial_id.to_owned()).increment(1));
    }

    /// Counts an alert that escalated because nobody acknowledged it in time.
    pub fn record_alert_escalated(&self, trial_id: &str) {
        self.with_recorder(|| counter!("alerts_escalated_total", "trial" => trial_id.to_owned()).increment(1));
    }

    /// Sets the number of open alerts in the database, of every trial and every
    /// instance, as the escalation task last counted them.
    pub fn set_open_alerts(&self, count: u64) {
        self.with_recorder(|| gauge!("alerts_open").set(count as f64));
    }

    fn record_http_request(&self, route: String, method: &'static str, status: StatusCode, duration: Duration) {
        self.with_recorder(|| {
            let status = status.as_str().to_owned();
            counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
                .increment(1);
            histogram!("http_request_duration_seconds", "route" => route, "method" => method)
                .record(duration.as_secs_f64());
        });
    }

    fn describe(&self) {
        self.with_recorder(|| {
            describe_counter!("http_requests_total", "HTTP requests answered, by route template, method and status.");
            describe_histogram!(
                "http_request_duration_seconds",
                Unit::Seconds,
                "Time from receiving the request headers to the response, by route template and method."
            );
            describe_counter!("submissions_accepted_total", "Submissions stored as new, by trial and form.");
            describe_counter!(
                "submissions_rejected_total",
                "Error replies of the submission endpoints, by error code."
            );
            describe_counter!(
                "admission_rejections_total",
                "Requests and connections rejected by an admission limit, by limit."
            );
            describe_counter!("alerts_acknowledged_total", "Alerts acknowledged by site staff, by trial.");
            describe_counter!(
                "alerts_escalated_total",
                "Alerts escalated by this instance because nobody acknowledged them in time, by trial."
            );
            describe_gauge!("alerts_open", "Open alerts of every trial in the database, escalated or not.");
        });
    }

    fn with_recorder(&self, update: impl FnOnce()) {
        metrics::with_local_recorder(self.recorder.as_ref(), update);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Counts every request with its route template, method and final status,
/// and observes its duration. Runs outside the error renderer and the
/// admission limits, so rejected requests are counted too.
pub async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str).to_owned();
    let method = method_label(request.method());
    let started = Instant::now();

    let response = next.run(request).await;

    state.metrics.record_http_request(route, method, response.status(), started.elapsed());
    response
}

/// Returns the method as a label, with every method outside RFC 9110's list
/// as `other`, so that clients cannot create label values at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_one_request() {
        let metrics = Metrics::new();
        let route = "/v1/trials/{trial_id}/forms/{form_id}/submissions".to_owned();

        metrics.record_http_request(route, "POST", StatusCode::CREATED, Duration::from_millis(3));
        let text = metrics.render();

        let counter_line = r#"http_requests_total{route="/v1/trials/{trial_id}/forms/{form_id}/submissions",method="POST",status="201"} 1"#;
        assert!(text.contains(counter_line), "{text}");
        let bucket_line = r#"http_request_duration_seconds_bucket{route="/v1/trials/{trial_id}/forms/{form_id}/submissions",method="POST",le="0.005"} 1"#;
        assert!(text.contains(bucket_line), "{text}");
        let below_line = r#"http_request_duration_seconds_bucket{route="/v1/trials/{trial_id}/forms/{form_id}/submissions",method="POST",le="0.0025"} 0"#;
        assert!(text.contains(below_line), "{text}");
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"), "{text}");
    }

    #[test]
    fn render_keeps_apps_apart() {
        let first = Metrics::new();
        let second = Metrics::new();

        first.record_admission_rejection(Limit::RateIp);
        first.record_admission_rejection(Limit::RateIp);
        second.record_submission_rejected("validation_failed");

        assert!(first.render().contains(r#"admission_rejections_total{limit="rate_ip"} 2"#), "{}", first.render());
        assert!(!second.render().contains("admission_rejections_total{"), "{}", second.render());
        assert!(second.render().contains(r#"submissions_rejected_total{code="validation_failed"} 1"#));
    }

    #[test]
    fn render_shows_alert_metrics() {
        let metrics = Metrics::new();

        metrics.record_alert_acknowledged("demo");
        metrics.record_alert_escalated("demo");
        metrics.record_alert_escalated("demo");
        metrics.set_open_alerts(7);
        let text = metrics.render();

        assert!(text.contains(r#"alerts_acknowledged_total{trial="demo"} 1"#), "{text}");
        assert!(text.contains(r#"alerts_escalated_total{trial="demo"} 2"#), "{text}");
        assert!(text.contains("alerts_open 7"), "{text}");
    }

    #[test]
    fn method_label_folds_unknown_methods() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
