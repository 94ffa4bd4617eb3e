//! `GET /healthz` (the process is alive) and `GET /readyz` (it can take
//! submissions: the database answers and shutdown has not begun).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoResponses, ToSchema};

use crate::error::{ApiError, ErrorShape};
use crate::openapi::errors::{self, Layers};
use crate::state::AppState;

/// How long readiness waits for the database before calling it unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The reply of both probes.
#[derive(Serialize, ToSchema)]
#[schema(as = ProbeStatus)]
pub(crate) struct StatusBody {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    #[schema(schema_with = probe_status_schema)]
    status: &'static str,
}

fn probe_status_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["ok", "ready"])
}

/// The errors of [`healthz`].
pub(crate) struct HealthErrors;

impl IntoResponses for HealthErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        errors::responses(ErrorShape::Standard, Layers::Probe, Vec::new())
    }
}

/// Returns 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "getHealth",
    tag = "operations",
    summary = "Liveness probe",
    description = "200 while the process runs. Skips the rate and concurrency limits.",
    responses(
        (status = 200, description = "The process runs.", body = StatusBody, example = json!({"status": "ok"})),
        HealthErrors,
    )
)]
pub async fn healthz() -> Json<StatusBody> {
    Json(StatusBody { status: "ok" })
}

/// The errors of [`readyz`].
pub(crate) struct ReadyErrors;

impl IntoResponses for ReadyErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        errors::responses(ErrorShape::Standard, Layers::Probe, vec![ApiError::ShuttingDown, ApiError::Unavailable])
    }
}

/// Returns 200 when the server can take submissions, 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "getReadiness",
    tag = "operations",
    summary = "Readiness probe",
    description = "200 when the database answers within 2 seconds and shutdown has not begun, else 503. Skips \
        the rate and concurrency limits.",
    responses(
        (status = 200, description = "The server takes submissions.", body = StatusBody,
            example = json!({"status": "ready"})),
        ReadyErrors,
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    if state.lifecycle.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    match tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(StatusBody { status: "ready" })),
        Ok(Err(error)) => {
            tracing::warn!(error.message = %error, "Readiness check failed");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("Readiness check timed out");
            Err(ApiError::Unavailable)
        }
    }
}
