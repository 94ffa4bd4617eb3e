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
//! - [`router`] builds the whole application and [`ops_router`] the
//!   operations endpoints alone; tests drive them without a socket.
//!   [`openapi()`] builds the OpenAPI document from the same list of routes.
//! - `routes/`: one module per resource (`submissions`, `corrections` for
//!   versions and signatures, `collection` for the seed-compatible endpoint,
//!   `queries`, `alerts`, `outbox`, `audit`, `export`, `trials`, `staff`,
//!   `patients`, `health`, `metrics`).
//! - [`catalog`]: the runtime catalogue of trials and forms, loaded from the
//!   store and reloaded when it changes.
//! - [`auth`]: principals, the `Authenticator` trait and the role table.
//! - `envelope`: the three request envelopes, parsed into an `Intake`.
//! - `intake`: the shared pipeline, lookup → validate → store.
//! - `body`: content type, streamed size limit, JSON nesting limit.
//! - [`admission`]: concurrency, time and rate limits, content encoding;
//!   `rejection_log`: the rate limit of their log lines.
//! - [`metrics`]: the Prometheus recorder and the HTTP layer's metrics.
//! - [`error`]: the error contract; `messages`: its two catalogues.
//! - [`language`]: `Accept-Language` negotiation.
//! - [`state`]: what every handler shares.

pub mod admission;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod language;
pub mod metrics;
pub mod state;

mod body;
mod envelope;
mod intake;
mod messages;
mod openapi;
mod query_params;
mod rejection_log;
mod routes;

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::admission::{AdmissionSettings, IpRate, Limit};
pub use crate::error::ApiError;
pub use crate::intake::{new_queries, recheck, scores_json};
pub use crate::language::Language;
pub use crate::metrics::Metrics;
pub use crate::routes::export::NEXT_CURSOR_HEADER;
pub use crate::state::{AppState, Lifecycle, Settings};

/// Builds the application: every route of [`api_routes`], behind the layers
/// of [`layered`].
pub fn router(state: AppState) -> Router {
    let (routes, _) = api_routes().split_for_parts();
    layered(routes, state)
}

/// Builds the operations endpoints alone (`/healthz`, `/readyz`,
/// `/metrics`), for a separate listener that only the platform reaches.
pub fn ops_router(state: AppState) -> Router {
    let (routes, _) = ops_routes().split_for_parts();
    layered(routes, state)
}

/// Builds the OpenAPI 3.1 document of [`router`], the one `GET
/// /openapi.json` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut document) = api_routes().split_for_parts();
    openapi::complete(&mut document);
    document
}

/// Every endpoint of the API. The router and the OpenAPI document are both
/// built from this list: `routes!` takes each handler's path and method from
/// its `#[utoipa::path]` attribute. To add an endpoint, give its handler that
/// attribute (with its replies and an `IntoResponses` type for its errors)
/// and list it here; a route added with plain `.route()` fails the coverage
/// test in `tests/openapi.rs`.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::submissions::submit))
        .routes(routes!(routes::submissions::get))
        .routes(routes!(routes::corrections::correct))
        .routes(routes!(routes::corrections::get_version))
        .routes(routes!(routes::corrections::sign))
        .routes(routes!(routes::queries::list))
        .routes(routes!(routes::queries::change_status))
        .routes(routes!(routes::alerts::list))
        .routes(routes!(routes::alerts::acknowledge))
        .routes(routes!(routes::outbox::dead_letters))
        .routes(routes!(routes::audit::list))
        .routes(routes!(routes::export::export))
        .routes(routes!(routes::export::codebook))
        .routes(routes!(routes::collection::submit))
        .routes(routes!(routes::staff::create, routes::staff::list))
        .routes(routes!(routes::staff::issue_token, routes::staff::revoke_tokens))
        .routes(routes!(routes::staff::me))
        .routes(routes!(routes::patients::enrol, routes::patients::list))
        .routes(routes!(routes::patients::issue_token, routes::patients::revoke_tokens))
        .routes(routes!(routes::trials::list, routes::trials::create))
        .routes(routes!(routes::trials::get))
        .routes(routes!(routes::trials::add_site))
        .routes(routes!(routes::trials::publish))
        .routes(routes!(routes::trials::retire))
        .routes(routes!(openapi::serve))
        .merge(ops_routes())
}

fn ops_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::metrics::metrics))
}

/// Puts `routes` behind the middleware every request passes, listed from
/// the outside in:
///
/// 1. request id: assigns `x-request-id` and copies it to the response;
/// 2. trace: the request span and one log line per request;
/// 3. [`metrics::record_request`]: counts every reply, rejections included;
/// 4. [`error::render_errors`]: writes the JSON body of every error below
///    in the caller's language, and counts rejections;
/// 5. catch panic: a panicking handler becomes a 500 `internal_error`;
/// 6. [`admission::limit_rate_per_ip`] (429), [`admission::limit_concurrency`]
///    (503, never queued) and [`admission::limit_time`] (503), cheapest
///    first, so a rate-limited request never takes a concurrency slot;
/// 7. [`admission::check_content_encoding`], gzip decompression and
///    [`admission::mark_decompression_errors`], so that handlers read, and
///    the body limit counts, decompressed bytes, and a corrupt gzip body is
///    a 400.
///
/// Axum runs these layers after routing, so each has the matched route
/// template. The request span records that template, never the raw URI,
/// because paths can carry patient-related ids. Bodies are never logged.
fn layered(routes: Router<AppState>, state: AppState) -> Router {
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

    routes
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(trace)
                .layer(middleware::from_fn_with_state(state.clone(), metrics::record_request))
                .layer(middleware::from_fn_with_state(state.clone(), error::render_errors))
                .layer(CatchPanicLayer::custom(admission::panic_response))
                .layer(middleware::from_fn_with_state(state.clone(), admission::limit_rate_per_ip))
                .layer(middleware::from_fn_with_state(state.clone(), admission::limit_concurrency))
                .layer(middleware::from_fn_with_state(state.clone(), admission::limit_time))
                .layer(middleware::from_fn(admission::check_content_encoding))
                .layer(RequestDecompressionLayer::new())
                .map_request(admission::mark_decompression_errors),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::{get, post};
    use epro_forms::Catalog;
    use epro_store::{Store, StoreConfig};
    use tower::ServiceExt;

    use super::*;

    /// Builds `routes` behind the real middleware, on a fresh store and an
    /// empty catalogue. The directory must outlive the store.
    async fn app(routes: Router<AppState>, admission: AdmissionSettings) -> (Router, AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path().join("epro.db"))).await.unwrap();
        let settings = Settings {
            default_language: Language::En,
            max_body_bytes: 1024,
            max_json_depth: 8,
            clock_skew_seconds: 300,
            require_patient_token: false,
            patient_token_days: 365,
            staff_token_days: 365,
            admission,
        };
        let state = AppState::new(Arc::new(Catalog::new(Vec::new()).unwrap()), store, settings, Metrics::new());
        (layered(routes, state.clone()), state, dir)
    }

    async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn layered_answers_panic_with_json_500() {
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let routes = Router::new().route("/boom", get(boom));
        let (app, state, _dir) = app(routes, AdmissionSettings::default()).await;

        let (status, headers, body) = send(&app, Request::get("/boom").body(Body::empty()).unwrap()).await;

        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["code"], "internal_error");
        assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
        assert!(!body["message"].as_str().unwrap_or("").contains("handler bug"), "no internal text: {body}");
        let metrics = state.metrics.render();
        assert!(metrics.contains(r#"http_requests_total{route="/boom",method="GET",status="500"} 1"#), "{metrics}");
    }

    #[tokio::test]
    async fn layered_times_out_with_json_503() {
        let routes = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "late"
            }),
        );
        let admission = AdmissionSettings {
            request_timeout: Some(std::time::Duration::from_millis(50)),
            ..AdmissionSettings::default()
        };
        let (app, state, _dir) = app(routes, admission).await;

        let (status, headers, body) = send(&app, Request::get("/slow").body(Body::empty()).unwrap()).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["code"], "timed_out");
        let metrics = state.metrics.render();
        assert!(metrics.contains(r#"admission_rejections_total{limit="timeout"} 1"#), "{metrics}");
    }

    #[tokio::test]
    async fn layered_exempts_probes_from_concurrency() {
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let (probes, _) = ops_routes().split_for_parts();
        let routes = probes.route(
            "/hold",
            get(move || {
                let released = Arc::clone(&released);
                async move {
                    if let Some(released) = released.lock().await.take() {
                        let _ = released.await;
                    }
                    "done"
                }
            }),
        );
        let admission = AdmissionSettings { max_concurrent_requests: Some(1), ..AdmissionSettings::default() };
        let (app, _state, _dir) = app(routes, admission).await;

        let holder = tokio::spawn({
            let app = app.clone();
            async move { send(&app, Request::get("/hold").body(Body::empty()).unwrap()).await.0 }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (second, headers, body) = send(&app, Request::get("/hold").body(Body::empty()).unwrap()).await;
        let (health, _, _) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
        release.send(()).unwrap();

        assert_eq!(second, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["code"], "overloaded");
        assert_eq!(health, StatusCode::OK, "probes skip the concurrency limit");
        assert_eq!(holder.await.unwrap(), StatusCode::OK);
    }

    #[tokio::test]
    async fn layered_rejects_unknown_content_encoding() {
        let routes = Router::new().route("/echo", post(|body: String| async move { body }));
        let (app, _state, _dir) = app(routes, AdmissionSettings::default()).await;

        let request = Request::post("/echo").header(header::CONTENT_ENCODING, "br").body(Body::from("x")).unwrap();
        let (status, _, body) = send(&app, request).await;
        let request =
            Request::post("/echo").header(header::CONTENT_ENCODING, " Identity ").body(Body::from("x")).unwrap();
        let (identity_status, _, _) = send(&app, request).await;

        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["code"], "unsupported_content_encoding");
        assert_eq!(identity_status, StatusCode::OK);
    }
}
