//! Corrections and signatures of stored submissions:
//! `POST /v1/submissions/{submissionId}/corrections` stores the next version,
//! `GET /v1/submissions/{submissionId}/versions/{version}` reads one version, and
//! `POST /v1/submissions/{submissionId}/versions/{version}/signature` signs the
//! latest version.
//!
//! A correction names the version it changes (`baseVersion`) and only the items
//! that change. The handler merges them into that version's answers, checks the
//! whole result against the submission's form version with the same validator,
//! skip logic and rules as intake, and hands the new version to the store, which
//! refuses it if `baseVersion` is no longer the latest.
//!
//! Correcting needs `correct` (data managers, investigators and site staff) and
//! signing `sign` (investigators), both at the site of the submission's patient.
//! The signer re-enters a credential, which must be one of their own tokens.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use epro_forms::{Checked, Item, ItemType, PublishedForm, Severity};
use epro_store::{
    AnswerChange, CorrectionOutcome, CorrectionReceipt, NewCorrection, NewSignature, SignOutcome, Signature,
    SubmissionHistory, SubmissionVersion,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal};
use crate::body::{self, SEED_MEDIA_TYPES};
use crate::error::{ApiError, Detail, EnvelopeProblem, ErrorShape, FieldError};
use crate::intake::{self, QueryRefBody};
use crate::language::Language;
use crate::openapi::errors::{self, Layers};
use crate::routes::queries::{QueryBody, query_body};
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// Maximum length of a correction reason or a signature's meaning, in characters:
/// room for a clinical note, not for a document.
const MAX_TEXT_CHARS: usize = 2000;

/// The body of a correction, for the OpenAPI document; the handler reads it field by
/// field to name each problem.
#[derive(ToSchema)]
#[schema(as = Correction, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct CorrectionRequest {
    /// The version the changes apply to: the latest version, as the submission read
    /// returns it.
    #[schema(minimum = 1)]
    base_version: u32,
    /// Only the items that change, keyed by `linkId` like a submission's `answers`. A
    /// value replaces the item's answer, `null` clears it, and an object for a group
    /// that does not repeat changes only the items it names. A repeating item or group
    /// is replaced as a whole.
    #[schema(value_type = Object)]
    answers: Value,
    /// The reason the data changes, 1 to 2000 characters, kept in the version and the
    /// audit trail.
    reason: String,
}

/// The body of a signature, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(as = SignatureRequest)]
#[allow(dead_code)]
pub(crate) struct SignatureRequest {
    /// The signer's own credential, entered again: the bearer token of this request.
    credential: String,
    /// The meaning of the signature, such as `Reviewed and approved`, 1 to 2000
    /// characters.
    meaning: String,
}

/// The receipt of a correction.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CorrectionReceipt)]
pub(crate) struct CorrectionReceiptBody {
    submission_id: String,
    /// The new version's number.
    version: u32,
    /// The version it replaces, always `version - 1`.
    replaces: u32,
    /// `accepted`, or `accepted_with_queries` when the rules raised data queries on
    /// the new version.
    #[schema(schema_with = crate::intake::receipt_status_schema)]
    status: &'static str,
    /// The data queries raised on the new version.
    queries: Vec<QueryRefBody>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    corrected_at: OffsetDateTime,
}

/// One version in the list of a submission's versions.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VersionSummary)]
pub(crate) struct VersionSummary {
    version: u32,
    /// The version this one corrects; `null` for version 1.
    #[schema(required = true)]
    replaces: Option<u32>,
    /// When the version was stored: the receipt for version 1, the correction after.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    recorded_at: OffsetDateTime,
    /// The actor that stored it, such as `patient:P-001` or `staff:inv-li`.
    actor: String,
    /// The correction reason; `null` for version 1.
    #[schema(required = true)]
    reason: Option<String>,
    /// linkIds whose answers differ from the version before.
    changed_items: Vec<String>,
}

/// A signature on one version.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Signature)]
pub(crate) struct SignatureBody {
    signature_id: String,
    /// The signed version.
    version: u32,
    /// The signer, such as `staff:inv-li`.
    signer: String,
    meaning: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    signed_at: OffsetDateTime,
    /// `valid`, or `voided` once a later correction changed the data.
    #[schema(schema_with = signature_state_schema)]
    state: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    voided_at: Option<OffsetDateTime>,
    /// The version whose correction voided the signature.
    #[schema(required = true)]
    voided_by_version: Option<u32>,
}

fn signature_state_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["valid", "voided"])
}

/// One version of a stored submission.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SubmissionVersion)]
pub(crate) struct VersionBody {
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    #[serde(flatten)]
    summary: VersionSummary,
    /// Every answer of this version, normalized and keyed by `linkId`.
    #[schema(value_type = Object)]
    answers: Box<RawValue>,
    /// Scores computed on this version.
    #[schema(value_type = Vec<crate::openapi::shapes::Score>)]
    scores: Box<RawValue>,
    #[schema(schema_with = crate::intake::receipt_status_schema)]
    status: &'static str,
    /// Data queries raised on this version, with their current status.
    queries: Vec<QueryBody>,
    /// Signatures on this version.
    signatures: Vec<SignatureBody>,
}

/// The errors of [`correct`].
pub(crate) struct CorrectErrors;

impl IntoResponses for CorrectErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors =
            vec![ApiError::Unauthorized, ApiError::Forbidden { permission: crate::auth::Permission::Correct }];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidEnvelope(vec![FieldError::envelope(
                "",
                EnvelopeProblem::WrongType { expected: "object" },
            )]),
            ApiError::InvalidFields(vec![FieldError::envelope("answers", EnvelopeProblem::NoChange)]),
            errors::correction_reason_required(),
            ApiError::SubmissionNotFound,
            errors::correction_conflict(),
            ApiError::Validation(vec![FieldError {
                item: "pain".to_owned(),
                path: "/answers/pain".to_owned(),
                detail: Detail::Answer(epro_forms::Problem::OutOfRange {
                    min: Some("0".to_owned()),
                    max: Some("10".to_owned()),
                }),
            }]),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`get_version`].
pub(crate) struct GetVersionErrors;

impl IntoResponses for GetVersionErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::ReadSubmissions },
            ApiError::SubmissionNotFound,
            errors::version_not_found(),
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`sign`].
pub(crate) struct SignErrors;

impl IntoResponses for SignErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::Sign },
            errors::signature_credential_invalid(),
        ];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidEnvelope(vec![FieldError::envelope(
                "",
                EnvelopeProblem::WrongType { expected: "object" },
            )]),
            ApiError::InvalidFields(vec![FieldError::envelope("meaning", EnvelopeProblem::Missing)]),
            ApiError::SubmissionNotFound,
            errors::version_not_found(),
            errors::signature_version_not_current(),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Stores a correction of a submission as its next version.
#[utoipa::path(
    post,
    path = "/v1/submissions/{submission_id}/corrections",
    operation_id = "correctSubmission",
    tag = "corrections",
    summary = "Correct a stored submission",
    description = "Merges the changed items into `baseVersion`'s answers, checks the whole result against the \
        submission's form version with the same validator, skip logic and rules as intake, and stores it as the \
        next version with the reason, its data queries, a `submission.corrected` event and an audit row that \
        keeps the changed items' old and new answers. Earlier versions stay readable, and the correction voids \
        every signature. Sending the same correction again (same `baseVersion`, same answers, same reason) \
        returns the first receipt with 200; a correction from an outdated version is 409. Needs `correct` at the patient's site.",
    params(("submission_id" = String, Path, description = "The submission id of the receipt.")),
    request_body(content((CorrectionRequest = "application/json", example = correction_example))),
    responses(
        (status = 201, description = "Stored as the next version.", body = CorrectionReceiptBody,
            example = correction_receipt_example),
        (status = 200, description = "The same correction was stored before: its first receipt. Nothing new \
            was stored.", body = CorrectionReceiptBody),
        CorrectErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn correct(
    State(state): State<AppState>,
    principal: Principal,
    Path(submission_id): Path<String>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    body::media_type(&headers, SEED_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;
    let request = parse_correction(&bytes)?;
    tracing::Span::current().record("submission_id", submission_id.as_str());

    let history = read_history(&state, &submission_id).await?;
    let (trial_id, patient_id) = (&history.submission.trial_id, &history.submission.patient_id);
    auth::require_for_patient(&state, &principal, Permission::Correct, trial_id, patient_id).await?;
    let current_version = history.latest().version;
    let conflict = ApiError::CorrectionConflict { base_version: request.base_version, current_version };
    let Some(base) = history.version(request.base_version) else {
        return Err(conflict);
    };
    // A correction from an older version can only be a retry of the one that made its
    // successor. That one passed these checks, so anything that fails them conflicts.
    let outdated = base.version != current_version;
    let stored = &history.submission;
    let catalog = state.catalog();
    let published = published_form(&catalog, &stored.trial_id, &stored.form_id, &stored.form_version)?;

    let base_answers: Value = serde_json::from_str(&base.normalized_answers)
        .map_err(|error| anyhow::anyhow!("stored normalized answers are not JSON: {error}"))?;
    let mut merged = match base_answers {
        Value::Object(answers) => answers,
        _ => Map::new(),
    };
    merge_answers(&published.form.items, &mut merged, &request.answers);
    let merged = Value::Object(merged);

    let Checked { normalized, findings, scores, alerts } =
        epro_forms::check_native(&published.form, &merged, "/answers");
    let (rejecting, querying): (Vec<_>, Vec<_>) =
        findings.into_iter().partition(|finding| finding.problem.severity() == Severity::Reject);
    if outdated && !rejecting.is_empty() {
        return Err(conflict);
    }
    if !rejecting.is_empty() {
        let errors = rejecting
            .into_iter()
            .map(|finding| FieldError {
                item: finding.link_id,
                path: finding.pointer,
                detail: Detail::Answer(finding.problem),
            })
            .collect();
        return Err(ApiError::Validation(errors));
    }

    let base_normalized: Value = serde_json::from_str(&base.normalized_answers)
        .map_err(|error| anyhow::anyhow!("stored normalized answers are not JSON: {error}"))?;
    let changes = changed_items(&published.form.items, &base_normalized, &normalized);
    if outdated && changes.is_empty() {
        return Err(conflict);
    }
    if changes.is_empty() {
        return Err(ApiError::InvalidFields(vec![FieldError::envelope("answers", EnvelopeProblem::NoChange)]));
    }

    let normalized_answers = serde_json::to_string(&normalized)
        .map_err(|error| anyhow::anyhow!("failed to serialize normalized answers: {error}"))?;
    let content_sha256 = correction_hash(&submission_id, request.base_version, &normalized_answers, &request.reason)?;
    let correction = NewCorrection {
        submission_id,
        base_version: request.base_version,
        normalized_answers,
        changes,
        scores: intake::scores_json(&scores),
        queries: intake::new_queries(querying),
        alerts: version_alerts(&catalog, &stored.trial_id, alerts)?,
        reason: request.reason,
        actor: principal.actor(),
        request_id: request_id(&headers),
        content_sha256,
    };

    match state.store.correct(correction).await {
        Ok(CorrectionOutcome::Created(receipt)) => {
            tracing::info!(version = receipt.version, "Submission corrected");
            Ok((StatusCode::CREATED, Json(receipt_body(receipt))).into_response())
        }
        Ok(CorrectionOutcome::Replayed(receipt)) => Ok((StatusCode::OK, Json(receipt_body(receipt))).into_response()),
        Ok(CorrectionOutcome::Conflict { current_version }) => {
            Err(ApiError::CorrectionConflict { base_version: request.base_version, current_version })
        }
        Ok(CorrectionOutcome::NotFound) => Err(ApiError::SubmissionNotFound),
        Err(error) => Err(ApiError::from_store(error, "failed to store correction")),
    }
}

/// Returns one version of a submission.
#[utoipa::path(
    get,
    path = "/v1/submissions/{submission_id}/versions/{version}",
    operation_id = "getSubmissionVersion",
    tag = "corrections",
    summary = "Read one version of a submission",
    description = "Returns the version's answers, scores, status, data queries and signatures, with who \
        stored it, when and why. Version 1 is the submission as received. Needs `read_submissions` at the patient's site, or the patient's own token.",
    params(
        ("submission_id" = String, Path, description = "The submission id of the receipt."),
        ("version" = u32, Path, description = "The version number, from 1.", minimum = 1),
    ),
    responses(
        (status = 200, description = "The version.", body = VersionBody),
        GetVersionErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn get_version(
    State(state): State<AppState>,
    principal: Principal,
    Path((submission_id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<VersionBody>, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }

    let number = parse_version(&version)?;
    let history = read_history(&state, &submission_id).await?;
    let (trial_id, patient_id) = (&history.submission.trial_id, &history.submission.patient_id);
    auth::require_for_patient(&state, &principal, Permission::ReadSubmissions, trial_id, patient_id).await?;
    let stored = history.version(number).ok_or(ApiError::VersionNotFound { version })?;
    let language = Language::negotiate(&headers, state.settings.default_language);
    Ok(Json(version_body(&history, stored, language)?))
}

/// Signs the latest version of a submission.
#[utoipa::path(
    post,
    path = "/v1/submissions/{submission_id}/versions/{version}/signature",
    operation_id = "signSubmissionVersion",
    tag = "corrections",
    summary = "Sign the latest version of a submission",
    description = "Records the signer, the version, the meaning and the time, and a `signature.applied` audit \
        row. The signer enters their credential again in `credential`. Only the latest version can be signed, \
        and a later correction voids the signature. Signing the same version with the same meaning again \
        returns the first signature with 200. Needs `sign` (investigators) at the patient's site.",
    params(
        ("submission_id" = String, Path, description = "The submission id of the receipt."),
        ("version" = u32, Path, description = "The version to sign: the latest.", minimum = 1),
    ),
    request_body(content((SignatureRequest = "application/json"))),
    responses(
        (status = 201, description = "Signed.", body = SignatureBody),
        (status = 200, description = "The signer signed this version with this meaning before: that \
            signature. Nothing new was stored.", body = SignatureBody),
        SignErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn sign(
    State(state): State<AppState>,
    principal: Principal,
    Path((submission_id, version)): Path<(String, String)>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let history = read_history(&state, &submission_id).await?;
    let (trial_id, patient_id) = (&history.submission.trial_id, &history.submission.patient_id);
    auth::require_for_patient(&state, &principal, Permission::Sign, trial_id, patient_id).await?;
    body::media_type(&headers, SEED_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;
    let request = parse_signature(&bytes)?;
    if !credential_is_signers(&state, &principal, &request.credential).await {
        return Err(ApiError::SignatureCredentialInvalid(vec![FieldError::envelope(
            "credential",
            EnvelopeProblem::CredentialMismatch,
        )]));
    }
    let number = parse_version(&version)?;

    let signature = NewSignature {
        submission_id,
        version: number,
        signer: principal.actor(),
        meaning: request.meaning,
        request_id: request_id(&headers),
    };
    match state.store.sign(signature).await {
        Ok(SignOutcome::Signed(signature)) => {
            tracing::info!(version = signature.version, "Submission version signed");
            Ok((StatusCode::CREATED, Json(signature_body(signature))).into_response())
        }
        Ok(SignOutcome::AlreadySigned(signature)) => {
            Ok((StatusCode::OK, Json(signature_body(signature))).into_response())
        }
        Ok(SignOutcome::NotLatest { current_version }) => {
            Err(ApiError::SignatureVersionNotCurrent { version: number, current_version })
        }
        Ok(SignOutcome::VersionNotFound) => Err(ApiError::VersionNotFound { version }),
        Ok(SignOutcome::SubmissionNotFound) => Err(ApiError::SubmissionNotFound),
        Err(error) => Err(ApiError::from_store(error, "failed to store signature")),
    }
}

/// A correction's fields, read and checked.
#[derive(Debug)]
struct CorrectionFields {
    base_version: u32,
    answers: Map<String, Value>,
    reason: String,
}

/// Reads `{"baseVersion": N, "answers": {...}, "reason": "..."}`. A body that is not
/// a JSON object is a 400. A missing or blank reason alone is
/// `correction_reason_required`; any other missing, mistyped or unknown field is a
/// 422 `invalid_fields` finding, listed with the reason's.
fn parse_correction(bytes: &[u8]) -> Result<CorrectionFields, ApiError> {
    let fields = parse_object(bytes)?;
    let mut errors: Vec<FieldError> = fields
        .keys()
        .filter(|name| !["baseVersion", "answers", "reason"].contains(&name.as_str()))
        .map(|name| FieldError::envelope(name, EnvelopeProblem::UnknownField))
        .collect();

    let base_version = match fields.get("baseVersion") {
        None | Some(Value::Null) => {
            errors.push(FieldError::envelope("baseVersion", EnvelopeProblem::Missing));
            None
        }
        Some(value) => {
            let version =
                value.as_u64().filter(|version| *version >= 1).and_then(|version| u32::try_from(version).ok());
            if version.is_none() {
                let problem = EnvelopeProblem::WrongType { expected: "positive integer" };
                errors.push(FieldError::envelope("baseVersion", problem));
            }
            version
        }
    };
    let answers = match fields.get("answers") {
        Some(Value::Object(answers)) if !answers.is_empty() => Some(answers.clone()),
        Some(Value::Object(_)) => {
            errors.push(FieldError::envelope("answers", EnvelopeProblem::NoChange));
            None
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::envelope("answers", EnvelopeProblem::Missing));
            None
        }
        Some(_) => {
            errors.push(FieldError::envelope("answers", EnvelopeProblem::WrongType { expected: "object" }));
            None
        }
    };
    let reason_errors_before = errors.len();
    let reason = required_text(&fields, "reason", &mut errors);
    let only_reason = reason_errors_before == 0 && errors.len() > reason_errors_before;

    match (base_version, answers, reason) {
        (Some(base_version), Some(answers), Some(reason)) if errors.is_empty() => {
            Ok(CorrectionFields { base_version, answers, reason })
        }
        _ if only_reason => Err(ApiError::CorrectionReasonRequired(errors)),
        _ => Err(ApiError::InvalidFields(errors)),
    }
}

/// A signature's fields, read and checked.
struct SignatureFields {
    credential: String,
    meaning: String,
}

/// Reads `{"credential": "...", "meaning": "..."}`. A body that is not a JSON object
/// is a 400; each missing, mistyped, blank, too long or unknown field is a 422 finding.
fn parse_signature(bytes: &[u8]) -> Result<SignatureFields, ApiError> {
    let fields = parse_object(bytes)?;
    let mut errors: Vec<FieldError> = fields
        .keys()
        .filter(|name| !["credential", "meaning"].contains(&name.as_str()))
        .map(|name| FieldError::envelope(name, EnvelopeProblem::UnknownField))
        .collect();
    // The credential is compared as sent, never trimmed, and never echoed.
    let credential = match fields.get("credential") {
        Some(Value::String(credential)) if !credential.is_empty() => Some(credential.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            errors.push(FieldError::envelope("credential", EnvelopeProblem::Missing));
            None
        }
        Some(_) => {
            errors.push(FieldError::envelope("credential", EnvelopeProblem::WrongType { expected: "string" }));
            None
        }
    };
    let meaning = required_text(&fields, "meaning", &mut errors);
    match (credential, meaning) {
        (Some(credential), Some(meaning)) if errors.is_empty() => Ok(SignatureFields { credential, meaning }),
        _ => Err(ApiError::InvalidFields(errors)),
    }
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| body::invalid_json(&error))?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => {
            let problem = EnvelopeProblem::WrongType { expected: "object" };
            Err(ApiError::InvalidEnvelope(vec![FieldError::envelope("", problem)]))
        }
    }
}

/// Reads a required text field, trimmed, and records its problem in `errors`.
fn required_text(fields: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let problem = match fields.get(name) {
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() {
                EnvelopeProblem::Blank
            } else if text.chars().count() > MAX_TEXT_CHARS {
                EnvelopeProblem::TooLong { max_length: MAX_TEXT_CHARS }
            } else {
                return Some(text.to_owned());
            }
        }
        None | Some(Value::Null) => EnvelopeProblem::Missing,
        Some(_) => EnvelopeProblem::WrongType { expected: "string" },
    };
    errors.push(FieldError::envelope(name, problem));
    None
}

/// Parses a version number from the path; anything but a whole number from 1 is a
/// version the submission does not have.
fn parse_version(text: &str) -> Result<u32, ApiError> {
    let digits = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    digits
        .then(|| text.parse::<u32>().ok())
        .flatten()
        .filter(|version| *version >= 1)
        .ok_or_else(|| ApiError::VersionNotFound { version: text.to_owned() })
}

/// Checks that the re-entered credential is a valid token of the signing staff
/// member, any of their tokens and not only the one of this request. Patient tokens
/// and other people's tokens never sign.
async fn credential_is_signers(state: &AppState, principal: &Principal, credential: &str) -> bool {
    let Principal::Staff(signer) = principal else {
        return false;
    };
    match state.authenticator.authenticate(credential.trim()).await {
        Ok(Principal::Staff(again)) => again.staff_id == signer.staff_id,
        _ => false,
    }
}

async fn read_history(state: &AppState, submission_id: &str) -> Result<SubmissionHistory, ApiError> {
    state
        .store
        .submission_history(submission_id)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read submission"))?
        .ok_or(ApiError::SubmissionNotFound)
}

/// Turns the alerts the rules raised on a corrected version into alerts to store,
/// due after the trial's acknowledgement deadline, counted from now, as at intake.
fn version_alerts(
    catalog: &epro_forms::Catalog,
    trial_id: &str,
    alerts: Vec<epro_forms::Alert>,
) -> Result<Vec<epro_store::NewAlert>, ApiError> {
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    let trial = catalog.trial(trial_id).ok_or_else(|| ApiError::UnknownTrial { trial_id: trial_id.to_owned() })?;
    let due_at = intake::alert_due_at(trial, OffsetDateTime::now_utc())?;
    Ok(alerts
        .into_iter()
        .map(|alert| epro_store::NewAlert { rule: alert.rule, severity: alert.severity, items: alert.items, due_at })
        .collect())
}

/// Finds the form version a submission was stored with.
fn published_form<'a>(
    catalog: &'a epro_forms::Catalog,
    trial_id: &str,
    form_id: &str,
    version: &str,
) -> Result<&'a PublishedForm, ApiError> {
    let trial = catalog.trial(trial_id).ok_or_else(|| ApiError::UnknownTrial { trial_id: trial_id.to_owned() })?;
    trial.form(form_id, Some(version)).map_err(|error| match error {
        epro_forms::LookupError::UnknownForm => {
            ApiError::UnknownForm { trial_id: trial_id.to_owned(), form_id: form_id.to_owned() }
        }
        epro_forms::LookupError::UnknownVersion => {
            ApiError::UnknownVersion { form_id: form_id.to_owned(), version: version.to_owned() }
        }
    })
}

/// Merges a correction's changes into one level of answers: a value replaces the
/// item's answer, `null` removes it, and an object for a group that does not repeat
/// merges into the group's answers, level by level. A name the form does not have at
/// this level is kept, so that validation reports it as `unknown_item`.
fn merge_answers(items: &[Item], answers: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (link_id, change) in changes {
        let group =
            items.iter().find(|item| &item.link_id == link_id && item.item_type == ItemType::Group && !item.repeats);
        match (group, change, answers.get_mut(link_id)) {
            (_, Value::Null, _) => {
                answers.remove(link_id);
            }
            (Some(group), Value::Object(inner), Some(Value::Object(current))) => {
                merge_answers(&group.children, current, inner);
                if current.is_empty() {
                    answers.remove(link_id);
                }
            }
            _ => {
                answers.insert(link_id.clone(), change.clone());
            }
        }
    }
}

/// Lists the items whose normalized answers differ between two versions, in form
/// order. Groups that do not repeat are compared item by item; a repeating group is
/// one item.
fn changed_items(items: &[Item], before: &Value, after: &Value) -> Vec<AnswerChange> {
    let mut changes = Vec::new();
    collect_changes(items, before.as_object(), after.as_object(), &mut changes);
    changes
}

fn collect_changes(
    items: &[Item],
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
    changes: &mut Vec<AnswerChange>,
) {
    for item in items {
        let old = before.and_then(|answers| answers.get(&item.link_id));
        let new = after.and_then(|answers| answers.get(&item.link_id));
        if item.item_type == ItemType::Group && !item.repeats {
            collect_changes(&item.children, old.and_then(Value::as_object), new.and_then(Value::as_object), changes);
        } else if old != new {
            changes.push(AnswerChange { link_id: item.link_id.clone(), before: old.cloned(), after: new.cloned() });
        }
    }
}

/// Hashes what makes two corrections the same: the submission, the base version, the
/// normalized answers after the correction and the reason. A retry that reorders its
/// JSON or sends a bare option code instead of a full Coding is still the same.
fn correction_hash(
    submission_id: &str,
    base_version: u32,
    normalized_answers: &str,
    reason: &str,
) -> Result<[u8; 32], ApiError> {
    let identity = ("epro.correction.v1", submission_id, base_version, normalized_answers, reason);
    let bytes =
        serde_json::to_vec(&identity).map_err(|error| anyhow::anyhow!("failed to encode correction: {error}"))?;
    Ok(Sha256::digest(bytes).into())
}

fn receipt_body(receipt: CorrectionReceipt) -> CorrectionReceiptBody {
    CorrectionReceiptBody {
        submission_id: receipt.submission_id,
        version: receipt.version,
        replaces: receipt.replaces,
        status: receipt.status.as_str(),
        queries: receipt.queries.into_iter().map(QueryRefBody::from).collect(),
        corrected_at: receipt.corrected_at,
    }
}

/// Shapes a stored signature, with its state.
pub(crate) fn signature_body(signature: Signature) -> SignatureBody {
    SignatureBody {
        signature_id: signature.signature_id,
        version: signature.version,
        signer: signature.signer,
        meaning: signature.meaning,
        signed_at: signature.signed_at,
        state: if signature.voided_at.is_some() { "voided" } else { "valid" },
        voided_at: signature.voided_at,
        voided_by_version: signature.voided_by_version,
    }
}

/// Shapes the entry of one version in a submission's list of versions.
pub(crate) fn version_summary(version: &SubmissionVersion) -> VersionSummary {
    VersionSummary {
        version: version.version,
        replaces: version.replaces,
        recorded_at: version.recorded_at,
        actor: version.actor.clone(),
        reason: version.reason.clone(),
        changed_items: version.changed_items.clone(),
    }
}

fn version_body(
    history: &SubmissionHistory,
    version: &SubmissionVersion,
    language: Language,
) -> Result<VersionBody, ApiError> {
    let stored = &history.submission;
    let answers = RawValue::from_string(version.normalized_answers.clone())
        .map_err(|error| anyhow::anyhow!("stored normalized answers are not JSON: {error}"))?;
    let scores = RawValue::from_string(version.scores.clone())
        .map_err(|error| anyhow::anyhow!("stored scores are not JSON: {error}"))?;
    let queries = stored
        .queries
        .iter()
        .filter(|query| query.version == version.version)
        .map(|query| query_body(query.clone(), language))
        .collect::<Result<_, _>>()?;
    let signatures = history
        .signatures
        .iter()
        .filter(|signature| signature.version == version.version)
        .map(|signature| signature_body(signature.clone()))
        .collect();
    Ok(VersionBody {
        submission_id: stored.submission_id.clone(),
        trial_id: stored.trial_id.clone(),
        form_id: stored.form_id.clone(),
        form_version: stored.form_version.clone(),
        patient_id: stored.patient_id.clone(),
        summary: version_summary(version),
        answers,
        scores,
        status: version.status.as_str(),
        queries,
        signatures,
    })
}

fn correction_example() -> Value {
    serde_json::json!({
        "baseVersion": 1,
        "answers": { "/44250-9": "LA6569-3" },
        "reason": "Transcription error confirmed with the patient by phone",
    })
}

fn correction_receipt_example() -> Value {
    serde_json::json!({
        "submissionId": errors::EXAMPLE_SUBMISSION_ID,
        "version": 2,
        "replaces": 1,
        "status": "accepted",
        "queries": [],
        "correctedAt": "2026-12-05T09:30:00.123456Z",
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(link_id: &str, item_type: ItemType, repeats: bool, children: Vec<Item>) -> Item {
        let mut item = epro_forms::Item::new(link_id, item_type);
        item.repeats = repeats;
        item.children = children;
        item
    }

    fn form_items() -> Vec<Item> {
        vec![
            item("pain", ItemType::Integer, false, Vec::new()),
            item(
                "vitals",
                ItemType::Group,
                false,
                vec![
                    item("weight", ItemType::Decimal, false, Vec::new()),
                    item("height", ItemType::Decimal, false, Vec::new()),
                ],
            ),
            item("meds", ItemType::Group, true, vec![item("name", ItemType::String, false, Vec::new())]),
        ]
    }

    #[test]
    fn merge_replaces_clears_and_descends_into_groups() {
        let mut answers = json!({ "pain": 3, "vitals": { "weight": 70, "height": 1.8 }, "meds": [{ "name": "a" }] })
            .as_object()
            .unwrap()
            .clone();
        let changes = json!({ "pain": null, "vitals": { "weight": 72 }, "meds": [{ "name": "b" }], "extra": 1 });

        merge_answers(&form_items(), &mut answers, changes.as_object().unwrap());

        assert_eq!(
            Value::Object(answers),
            json!({ "vitals": { "weight": 72, "height": 1.8 }, "meds": [{ "name": "b" }], "extra": 1 })
        );
    }

    #[test]
    fn changed_items_lists_leaves_in_form_order() {
        let before = json!({ "pain": 3, "vitals": { "weight": 70, "height": 1.8 }, "meds": [{ "name": "a" }] });
        let after = json!({ "vitals": { "weight": 72, "height": 1.8 }, "meds": [{ "name": "b" }] });

        let changes = changed_items(&form_items(), &before, &after);

        let found: Vec<(&str, Option<&Value>, Option<&Value>)> = changes
            .iter()
            .map(|change| (change.link_id.as_str(), change.before.as_ref(), change.after.as_ref()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("pain", Some(&json!(3)), None),
                ("weight", Some(&json!(70)), Some(&json!(72))),
                ("meds", Some(&json!([{ "name": "a" }])), Some(&json!([{ "name": "b" }]))),
            ]
        );
    }

    #[test]
    fn correction_reason_alone_has_its_own_code() {
        // Each case: the body, the error code, then the path and code of every finding.
        type Case<'a> = (&'a [u8], &'a str, Vec<(&'a str, &'a str)>);
        let cases: [Case<'_>; 4] = [
            (
                br#"{"baseVersion": 1, "answers": {"pain": 4}}"#,
                "correction_reason_required",
                vec![("/reason", "required")],
            ),
            (
                br#"{"baseVersion": 1, "answers": {"pain": 4}, "reason": " \n"}"#,
                "correction_reason_required",
                vec![("/reason", "blank")],
            ),
            (
                br#"{"answers": {"pain": 4}}"#,
                "invalid_fields",
                vec![("/baseVersion", "required"), ("/reason", "required")],
            ),
            (
                br#"{"baseVersion": 0, "answers": {}, "reason": "x"}"#,
                "invalid_fields",
                vec![("/baseVersion", "wrong_type"), ("/answers", "no_change")],
            ),
        ];
        for (body, code, expected) in cases {
            let text = String::from_utf8_lossy(body);
            let error = parse_correction(body).expect_err(&text);

            assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY, "{text}");
            assert_eq!(error.code(), code, "{text}");
            let found: Vec<(&str, &str)> =
                error.field_errors().iter().map(|field| (field.path.as_str(), field.code())).collect();
            assert_eq!(found, expected, "{text}");
        }
    }

    #[test]
    fn correction_keeps_trimmed_reason() {
        let fields = parse_correction(br#"{"baseVersion": 2, "answers": {"pain": 4}, "reason": " Typo. "}"#).unwrap();

        assert_eq!(fields.base_version, 2);
        assert_eq!(fields.reason, "Typo.");
        assert_eq!(Value::Object(fields.answers), json!({ "pain": 4 }));
    }

    #[test]
    fn version_path_accepts_whole_numbers_from_one() {
        assert_eq!(parse_version("1").ok(), Some(1));
        assert_eq!(parse_version("12").ok(), Some(12));
        for text in ["0", "-1", "+1", "1.0", "", "x", "99999999999"] {
            let error = parse_version(text).expect_err(text);
            assert_eq!(error.code(), "version_not_found", "{text:?}");
        }
    }
}
