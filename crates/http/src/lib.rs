//! The HTTP API of epro.
//!
//! This crate is the only code that knows the JSON shapes of requests and
//! replies and the only code that reads `Accept-Language`. It parses each
//! request into valid values once, at the edge, passes them to the form
//! library for validation and to the store for the group commit, and renders
//! every error with a stable code and a message in Simplified Chinese or
//! English.
//!
//! # Layout
//!
//! - [`router`] builds the whole application; tests drive it without a
//!   socket.
//! - `routes/`: one module per resource (`submissions`, `collection` for the
//!   seed-compatible endpoint, `health`).
//! - `envelope`: the three request envelopes, parsed into an `Intake`.
//! - `intake`: the shared pipeline, lookup → validate → store.
//! - `body`: content type, streamed size limit, JSON nesting limit.
//! - [`error`]: the error contract; `messages`: its two catalogues.
//! - [`language`]: `Accept-Language` negotiation.
//! - [`state`]: what every handler shares.

pub mod error;
pub mod language;
pub mod state;

mod body;
mod envelope;
mod intake;
mod messages;
mod query_params;
mod routes;

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use axum::middleware;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

pub use crate::error::ApiError;
pub use crate::intake::{new_queries, recheck, scores_json};
pub use crate::language::Language;
pub use crate::state::{AppState, Lifecycle, Settings};

/// Builds the application: every route, the error renderer, request ids and
/// one log line per request.
///
/// The request span records the matched route template, never the raw URI,
/// because paths can carry patient-related ids. Bodies are never logged.
pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
            let request_id =
                request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
            tracing::info_span!(
                "request",
                method = %request.method(),
                route,
                request_id,
                submission_id = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_response(|response: &Response<_>, latency: Duration, _span: &Span| {
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            tracing::info!(status = response.status().as_u16(), latency_us, "Request finished");
        })
        .on_failure(());

    Router::new()
        .route("/v1/trials/{trial_id}/forms/{form_id}/submissions", post(routes::submissions::submit))
        .route("/v1/submissions/{submission_id}", get(routes::submissions::get))
        .route("/v1/trials/{trial_id}/queries", get(routes::queries::list))
        .route("/v1/queries/{query_id}/status", post(routes::queries::change_status))
        .route("/api/collection/submit", post(routes::collection::submit))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(trace)
                .layer(middleware::from_fn_with_state(state.clone(), error::render_errors)),
        )
        .with_state(state)
}
