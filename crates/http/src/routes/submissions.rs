//! `POST /v1/trials/{trialId}/forms/{formId}/submissions` and
//! `GET /v1/submissions/{submissionId}`, which returns the latest version with
//! the list of versions and signatures (`routes::corrections` stores them).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal};
use crate::body::{self, MediaType, SUBMISSION_MEDIA_TYPES};
use crate::envelope;
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::intake::{self, Disposition, ReceiptBody, Target};
use crate::language::Language;
use crate::openapi::errors::{self, Layers};
use crate::openapi::shapes;
use crate::routes::corrections::{SignatureBody, VersionSummary, signature_body, version_summary};
use crate::routes::queries::{QueryBody, query_body};
use crate::state::AppState;

/// Query parameters of the submission endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// The patient of a FHIR `QuestionnaireResponse` that has no `subject`;
    /// must agree with `subject` when both are sent.
    patient_id: Option<String>,
}

/// The errors of [`submit`].
pub(crate) struct SubmitErrors;

impl IntoResponses for SubmitErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let invalid = vec![
            FieldError::envelope("completedAt", EnvelopeProblem::MissingOffset),
            FieldError::envelope("submissionId", EnvelopeProblem::InvalidSubmissionId { uuid_only: true }),
        ];
        errors::responses(
            ErrorShape::Standard,
            Layers::Limited,
            errors::submission_errors(SUBMISSION_MEDIA_TYPES, invalid),
        )
    }
}

/// Accepts one submission in the native envelope (`application/json`) or
/// as a FHIR `QuestionnaireResponse` (`application/fhir+json`).
///
/// Replies 201 with a receipt when stored, 200 with the original receipt
/// for an identical replay.
#[utoipa::path(
    post,
    path = "/v1/trials/{trial_id}/forms/{form_id}/submissions",
    operation_id = "submitAnswers",
    tag = "submissions",
    summary = "Submit one answer set",
    description = "Validates every answer against the form and stores the submission with its scores, data \
        queries, audit row and outbox event in one transaction, or rejects it with every finding listed. \
        Retrying with the same `submissionId` (FHIR: `identifier.value` or `id`) is always safe: the same \
        content returns the original receipt with 200, other content 409.",
    params(
        ("trial_id" = String, Path, description = "The trial's id, such as `demo`."),
        ("form_id" = String, Path, description = "The form's id within the trial, such as `phq9`."),
        SubmitQuery,
    ),
    request_body(
        description = "The native envelope, or a FHIR R4 `QuestionnaireResponse`. May be gzip-compressed.",
        content(
            (shapes::NativeSubmission = "application/json", example = shapes::native_example),
            (shapes::FhirQuestionnaireResponse = "application/fhir+json", example = shapes::fhir_example),
        ),
    ),
    responses(
        (status = 201, description = "Stored. Keep the receipt as proof.", body = ReceiptBody,
            example = receipt_example),
        (status = 200, description = "An identical submission with this id was already stored: its original \
            receipt. Nothing new was stored.", body = ReceiptBody),
        SubmitErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    Path((trial_id, form_id)): Path<(String, String)>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    auth::check_submitter(&state, &principal)?;
    let media_type = body::media_type(&headers, SUBMISSION_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;
    let received_at = intake::now_millis();

    let (intake, pointer_base) = match media_type {
        MediaType::Json => (envelope::parse_native(&bytes)?, "/answers"),
        MediaType::FhirJson => (envelope::parse_fhir(&bytes, query.patient_id.as_deref())?, "/item"),
    };
    tracing::Span::current().record("submission_id", intake.submission_id.as_str());

    let target = Target { trial_id: &trial_id, form_id: Some(&form_id) };
    let request_id = request_id(&headers);
    let (disposition, receipt) =
        intake::accept(&state, &principal, target, intake, pointer_base, received_at, request_id).await?;

    let status = match disposition {
        Disposition::Created => StatusCode::CREATED,
        Disposition::Replayed => StatusCode::OK,
    };
    Ok((status, Json(receipt)).into_response())
}

/// A stored submission as an operator reads it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StoredSubmission)]
pub(crate) struct StoredBody {
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    /// With the offset the device sent.
    #[serde(with = "time::serde::rfc3339")]
    completed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    received_at: OffsetDateTime,
    /// `native`, `fhir` or `seed`: which envelope `received` came in.
    #[schema(schema_with = source_schema)]
    source: &'static str,
    /// The answers of version 1 exactly as received, byte for byte: the
    /// `answers` object, the content of `formContent`, or the whole
    /// `QuestionnaireResponse`.
    #[schema(value_type = Object)]
    received: Box<RawValue>,
    /// The latest version's number: 1 until a correction is stored.
    version: u32,
    /// The latest version's answers as validated and normalized, keyed by
    /// `linkId`.
    #[schema(value_type = Object)]
    answers: Box<RawValue>,
    /// Scores computed on the server for the latest version.
    #[schema(value_type = Vec<shapes::Score>)]
    scores: Box<RawValue>,
    /// The latest version's status: `accepted` or `accepted_with_queries`.
    #[schema(schema_with = crate::intake::receipt_status_schema)]
    status: &'static str,
    /// Data queries on every version, each naming its version, with their
    /// current status.
    queries: Vec<QueryBody>,
    /// Every version, version 1 first, with who stored it, when and why.
    versions: Vec<VersionSummary>,
    /// Every signature on any version, with its state.
    signatures: Vec<SignatureBody>,
}

fn source_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["native", "fhir", "seed"])
}

/// The errors of [`get`].
pub(crate) struct GetErrors;

impl IntoResponses for GetErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::ReadSubmissions },
            ApiError::SubmissionNotFound,
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Returns a stored submission to an operator holding the bearer token.
#[utoipa::path(
    get,
    path = "/v1/submissions/{submission_id}",
    operation_id = "getSubmission",
    tag = "submissions",
    summary = "Read a stored submission",
    description = "Returns the submission's latest version: its answers as normalized, the server's scores \
        and status, with the answers of version 1 as received, the data queries of every version with their \
        messages in the caller's language, the list of versions (who stored each, when and why) and every \
        signature with its state. Needs `read_submissions` at the patient's site, or the patient's own token.",
    params(("submission_id" = String, Path, description = "The submission id of the receipt.")),
    responses(
        (status = 200, description = "The stored submission.", body = StoredBody),
        GetErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(submission_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }

    let history = state
        .store
        .submission_history(&submission_id)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read submission"))?
        .ok_or(ApiError::SubmissionNotFound)?;
    auth::require_for_patient(
        &state,
        &principal,
        Permission::ReadSubmissions,
        &history.submission.trial_id,
        &history.submission.patient_id,
    )
    .await?;
    let latest = history.latest();
    let versions = history.versions.iter().map(version_summary).collect();
    let signatures = history.signatures.iter().cloned().map(signature_body).collect();
    let version = latest.version;
    let status = latest.status.as_str();
    let answers = RawValue::from_string(latest.normalized_answers.clone())
        .map_err(|error| anyhow::anyhow!("stored normalized answers are not JSON: {error}"))?;
    let scores = RawValue::from_string(latest.scores.clone())
        .map_err(|error| anyhow::anyhow!("stored scores are not JSON: {error}"))?;
    let stored = history.submission;

    let received = RawValue::from_string(stored.raw_answers)
        .map_err(|error| anyhow::anyhow!("stored raw answers are not JSON: {error}"))?;
    let language = Language::negotiate(&headers, state.settings.default_language);
    let queries = stored.queries.into_iter().map(|query| query_body(query, language)).collect::<Result<_, _>>()?;
    let body = StoredBody {
        submission_id: stored.submission_id,
        trial_id: stored.trial_id,
        form_id: stored.form_id,
        form_version: stored.form_version,
        patient_id: stored.patient_id,
        completed_at: stored.completed_at,
        received_at: stored.received_at,
        source: stored.source.as_str(),
        received,
        version,
        answers,
        scores,
        status,
        queries,
        versions,
        signatures,
    };
    Ok(Json(body).into_response())
}

/// Returns the request id that the request-id layer set on the request.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// The receipt of the README's first request.
fn receipt_example() -> serde_json::Value {
    json!({
        "submissionId": errors::EXAMPLE_SUBMISSION_ID,
        "trialId": "demo",
        "formId": "phq9",
        "formVersion": "1",
        "receivedAt": "2026-12-04T12:15:01.123Z",
        "status": "accepted",
        "queries": [],
    })
}
