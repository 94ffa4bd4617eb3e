//! `POST /api/collection/submit`: the endpoint of the system epro replaces,
//! kept so existing patient apps work unchanged.
//!
//! Replies keep the old shape `{status: "success" | "error", message}` and
//! add `submissionId`, the receipt fields (the receipt's own status as
//! `submissionStatus`) and, on errors, `code` and `errors`. Unlike the
//! versioned API, a stored submission answers 200 (created or replayed
//! alike) and failed validation answers 400, as the old clients expect.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::body::{self, SEED_MEDIA_TYPES};
use crate::envelope;
use crate::error::{ApiError, SeedError};
use crate::intake::{self, QueryRefBody, ReceiptBody, Target};
use crate::language::Language;
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// The old success shape, whose `status` is always `success`; the receipt's
/// own status travels as `submissionStatus`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SuccessBody {
    status: &'static str,
    message: &'static str,
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    #[serde(with = "time::serde::rfc3339")]
    received_at: time::OffsetDateTime,
    submission_status: &'static str,
    queries: Vec<QueryRefBody>,
}

/// Accepts `{patientId, trialId, formContent}` where `formContent` is a JSON
/// string of the answers.
pub async fn submit(State(state): State<AppState>, headers: HeaderMap, request_body: Body) -> Response {
    let language = Language::negotiate(&headers, state.settings.default_language);
    match store(&state, &headers, request_body).await {
        Ok(receipt) => {
            let message = match language {
                Language::En => "Submission received.",
                Language::ZhCn => "提交成功。",
            };
            let body = SuccessBody {
                status: "success",
                message,
                submission_id: receipt.submission_id,
                trial_id: receipt.trial_id,
                form_id: receipt.form_id,
                form_version: receipt.form_version,
                received_at: receipt.received_at,
                submission_status: receipt.status,
                queries: receipt.queries,
            };
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn store(state: &AppState, headers: &HeaderMap, request_body: Body) -> Result<ReceiptBody, SeedError> {
    let without_id = |error: ApiError| SeedError { error, submission_id: None };

    body::media_type(headers, SEED_MEDIA_TYPES).map_err(without_id)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await.map_err(without_id)?;
    body::check_depth(&bytes, state.settings.max_json_depth).map_err(without_id)?;
    body::check_keys_and_numbers(&bytes, "").map_err(without_id)?;
    let received_at = intake::now_millis();

    let idempotency_key = headers.get("idempotency-key").and_then(|value| value.to_str().ok());
    let (routing, intake) = envelope::parse_seed(&bytes, idempotency_key, received_at).map_err(without_id)?;
    let submission_id = intake.submission_id.clone();
    tracing::Span::current().record("submission_id", submission_id.as_str());

    let target = Target { trial_id: &routing.trial_id, form_id: routing.form_id.as_deref() };
    intake::accept(state, target, intake, "/formContent", received_at, request_id(headers))
        .await
        .map(|(_, receipt)| receipt)
        .map_err(|error| SeedError { error, submission_id: Some(submission_id) })
}
