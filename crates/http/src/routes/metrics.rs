//! `GET /metrics`: every metric of the application in the Prometheus text
//! exposition format, for a Prometheus server to scrape.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::IntoResponses;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;

use crate::error::ErrorShape;
use crate::openapi::errors::{self, Layers};
use crate::state::AppState;

/// Content type of the Prometheus text format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The errors of [`metrics`].
pub(crate) struct MetricsErrors;

impl IntoResponses for MetricsErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        errors::responses(ErrorShape::Standard, Layers::Probe, Vec::new())
    }
}

/// Returns the current value of every metric.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Every metric in the Prometheus text format 0.0.4; the README lists them. Skips the rate and \
        concurrency limits.",
    responses(
        (status = 200, description = "The current value of every metric.", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        MetricsErrors,
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    response
}
