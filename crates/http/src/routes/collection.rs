//! `POST /api/collection/submit`: the endpoint of the system epro replaces,
//! kept so existing patient apps work unchanged.
//!
//! Replies keep the old shape `{status: "success" | "error", message}` and
//! add `submissionId`, the receipt fields (the receipt's own status as
//! `submissionStatus`) and, on errors, `code` and `errors`. Unlike the
//! versioned API, a stored submission answers 200 (created or replayed
//! alike) and failed validation answers 400, as the old clients expect.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoResponses, ToSchema};

use crate::auth::{self, Principal};
use crate::body::{self, SEED_MEDIA_TYPES};
use crate::envelope;
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError, SeedError};
use crate::intake::{self, QueryRefBody, ReceiptBody, Target};
use crate::language::Language;
use crate::openapi::errors::{self, Layers};
use crate::openapi::shapes;
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// The old success shape, whose `status` is always `success`; the receipt's
/// own status travels as `submissionStatus`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SeedReceipt)]
pub(crate) struct SuccessBody {
    /// Always `success`.
    #[schema(schema_with = success_schema)]
    status: &'static str,
    /// `Submission received.` in the language of `Content-Language`.
    message: &'static str,
    /// The id sent, or the one epro derived or generated: send it again on
    /// a retry.
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    #[serde(with = "time::serde::rfc3339")]
    received_at: time::OffsetDateTime,
    /// `accepted` or `accepted_with_queries`.
    #[schema(schema_with = crate::intake::receipt_status_schema)]
    submission_status: &'static str,
    /// The data queries raised on this submission at intake.
    queries: Vec<QueryRefBody>,
}

fn success_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["success"])
}

/// The errors of [`submit`]. Failed validation is 400 here.
pub(crate) struct SeedErrors;

impl IntoResponses for SeedErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let form_ids = ["phq9", "gad7", "pain-nrs"].map(str::to_owned).to_vec();
        let invalid = vec![
            FieldError::envelope("formContent", EnvelopeProblem::FormContentNotObject),
            FieldError::envelope("formId", EnvelopeProblem::FormRequired { form_ids }),
        ];
        errors::responses(ErrorShape::Seed, Layers::Limited, errors::submission_errors(SEED_MEDIA_TYPES, invalid))
    }
}

/// Accepts `{patientId, trialId, formContent}` where `formContent` is a JSON
/// string of the answers.
#[utoipa::path(
    post,
    path = "/api/collection/submit",
    operation_id = "submitCollection",
    tag = "seed",
    summary = "Submit through the endpoint of the system epro replaces",
    description = "Takes the old request and answers in the old shape `{status, message}` with the receipt's \
        fields added. A stored submission is 200, new or replayed alike, and failed validation is 400 \
        `validation_failed`. Send `submissionId` (or `Idempotency-Key`) so a retry is recognised.",
    params(
        ("Idempotency-Key" = Option<String>, Header, format = Uuid,
            description = "The submission id, when the body has no `submissionId`: a UUID."),
    ),
    request_body(
        description = "`formContent` is a JSON string holding the answers object. May be gzip-compressed.",
        content((shapes::SeedSubmission = "application/json", example = shapes::seed_example)),
    ),
    responses(
        (status = 200, description = "Stored, or an identical submission with this id was already stored.",
            body = SuccessBody, example = success_example),
        SeedErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    request_body: Body,
) -> Response {
    let language = Language::negotiate(&headers, state.settings.default_language);
    match store(&state, &principal, &headers, request_body).await {
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

async fn store(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    request_body: Body,
) -> Result<ReceiptBody, SeedError> {
    let without_id = |error: ApiError| SeedError { error, submission_id: None };
    auth::check_submitter(state, principal).map_err(without_id)?;

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
    intake::accept(state, principal, target, intake, "/formContent", received_at, request_id(headers))
        .await
        .map(|(_, receipt)| receipt)
        .map_err(|error| SeedError { error, submission_id: Some(submission_id) })
}

/// The reply to the seed example request.
fn success_example() -> serde_json::Value {
    json!({
        "status": "success",
        "message": "Submission received.",
        "submissionId": "9a1d6c3b-7e2f-4a85-b0c4-1f3e5d7a9b26",
        "trialId": "demo",
        "formId": "phq9",
        "formVersion": "1",
        "receivedAt": "2026-12-04T12:15:01.123Z",
        "submissionStatus": "accepted",
        "queries": [],
    })
}
