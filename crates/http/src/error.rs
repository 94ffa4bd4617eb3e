//! The error contract of the HTTP API: one variant per client-caused
//! failure, each with a fixed status and a stable code, plus `Unexpected`
//! for everything else.
//!
//! Handlers return [`ApiError`] without choosing any text. The response it
//! turns into carries the error in an extension and no body yet; the
//! [`render_errors`] middleware, which sees the request's `Accept-Language`
//! and request id, writes the JSON body in the caller's language and logs
//! unexpected errors once, inside the request span. Clients never see
//! internal error text, only a generic message and the request id.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use epro_forms::Problem;
use epro_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::admission::Limit;
use crate::language::Language;
use crate::messages;
use crate::state::AppState;

/// A failure of one request, as the client will see it.
#[derive(Debug)]
pub enum ApiError {
    /// The body is not JSON. Line and column are 1-based, from the parser.
    InvalidJson { line: usize, column: usize },
    /// The body nests arrays or objects deeper than the configured limit.
    NestingTooDeep { max_depth: usize },
    /// The envelope (everything around the answers) has missing, mistyped
    /// or invalid fields.
    InvalidEnvelope(Vec<FieldError>),
    /// The endpoint needs a token and the request had none, or its token is
    /// malformed, unknown, expired or revoked.
    Unauthorized,
    /// The caller's token is valid, but its roles (or, for a patient token, its
    /// patient and trial) do not allow this request.
    Forbidden { permission: crate::auth::Permission },
    /// A staff account with this id exists already.
    StaffExists { staff_id: String },
    /// No staff account has this id.
    StaffNotFound { staff_id: String },
    /// The patient is enrolled in the trial already.
    PatientAlreadyEnrolled { patient_id: String },
    /// The patient is not enrolled in the trial.
    PatientNotEnrolled { patient_id: String },
    /// The trial has no site with this id.
    UnknownSite { trial_id: String, site_id: String },
    /// No trial has this id.
    UnknownTrial { trial_id: String },
    /// The trial has no form with this id.
    UnknownForm { trial_id: String, form_id: String },
    /// The form exists but not in the requested version.
    UnknownVersion { form_id: String, version: String },
    /// No stored submission has this id.
    SubmissionNotFound,
    /// No data query has this id.
    QueryNotFound,
    /// The query already has the requested status.
    QueryUnchanged { status: &'static str },
    /// No alert has this id.
    AlertNotFound,
    /// The alert was acknowledged before; an acknowledgement is final.
    AlertAlreadyAcknowledged { acknowledged_at: Option<time::OffsetDateTime> },
    /// The submission has no version with this number.
    VersionNotFound { version: String },
    /// A correction without a reason, or with a blank one. `errors` names the
    /// field `reason`; nothing was stored.
    CorrectionReasonRequired(Vec<FieldError>),
    /// The correction's `baseVersion` is not the latest version, and no
    /// correction with the same content was made from it: storing it would
    /// overwrite a change its author has not seen.
    CorrectionConflict { base_version: u32, current_version: u32 },
    /// The re-entered credential of a signature does not match the caller's
    /// own. `errors` names the field `credential`; nothing was signed.
    SignatureCredentialInvalid(Vec<FieldError>),
    /// Only the latest version of a submission can be signed.
    SignatureVersionNotCurrent { version: u32, current_version: u32 },
    /// A submission names a retired form version, and no version of the
    /// form is active any more: the form was withdrawn.
    FormVersionRetired { form_id: String, version: String, retired_at: time::OffsetDateTime },
    /// A form document to publish does not load; every problem is listed
    /// with its place in the document.
    InvalidForm(Vec<FieldError>),
    /// The form id and version are published with other content. A version
    /// is never reused, retired or not.
    FormVersionConflict { form_id: String, version: String },
    /// The form version was retired before; a retirement is final.
    FormVersionAlreadyRetired { form_id: String, version: String, retired_at: time::OffsetDateTime },
    /// A trial with this id exists with another title, alert deadline or
    /// site.
    TrialConflict { trial_id: String },
    /// The trial has a site with this id under another name.
    SiteConflict { site_id: String },
    /// No route matches the path.
    RouteNotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// A submission with this id is stored with different content.
    Conflict { submission_id: String },
    /// The body is larger than `http.max_body_bytes`, counted after
    /// decompression.
    PayloadTooLarge { max_bytes: usize },
    /// The `Content-Type` is missing or not one the endpoint accepts.
    UnsupportedMediaType { accepted: &'static [&'static str] },
    /// The `Content-Encoding` is neither `identity` nor `gzip`.
    UnsupportedContentEncoding,
    /// The body is declared gzip-compressed but does not decompress.
    InvalidCompressedBody,
    /// The connection ended (or failed) before the whole body arrived:
    /// the client's side, so it is not logged as a server error.
    IncompleteBody,
    /// The answers (or the completion time) failed validation. Every
    /// finding is listed.
    Validation(Vec<FieldError>),
    /// The body is a well-formed JSON object, but fields of it are missing
    /// or invalid, such as a blank acknowledgement comment. Every finding is
    /// listed, and nothing was changed.
    InvalidFields(Vec<FieldError>),
    /// A capacity limit is full: requests in flight
    /// ([`Limit::Concurrency`]) or the store's queue ([`Limit::StoreQueue`]).
    /// Nothing was stored; the client should retry later.
    Overloaded { limit: Limit },
    /// The request took longer than `http.request_timeout_seconds`.
    TimedOut { timeout_seconds: u64 },
    /// The client ([`Limit::RateIp`]) or the patient
    /// ([`Limit::RatePatient`]) sent more requests than its rate limit
    /// allows; the client may retry after `retry_after_seconds`.
    RateLimited { limit: Limit, retry_after_seconds: u64 },
    /// The server is shutting down and takes no new submissions.
    ShuttingDown,
    /// The database is unreachable: it did not respond to a health check, or
    /// the store lost its connection. Nothing new was acknowledged; the client
    /// should retry later.
    Unavailable,
    /// Anything the client did not cause. Logged with its cause chain; the
    /// client sees a generic message.
    Unexpected(anyhow::Error),
    /// The handler panicked. The panic hook has logged it; the client sees
    /// the same generic message as for [`ApiError::Unexpected`].
    Panicked,
}

/// One finding about one field of a request.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// The item's `linkId`, or the envelope field name (`completedAt`).
    pub item: String,
    /// JSON Pointer (RFC 6901) of the offending value in the request body.
    pub path: String,
    /// What is wrong; decides the stable code and the message.
    pub detail: Detail,
}

/// The reason behind a [`FieldError`].
#[derive(Debug, Clone)]
pub enum Detail {
    /// A finding of form validation, from the form library.
    Answer(Problem),
    /// A problem with an envelope field.
    Envelope(EnvelopeProblem),
    /// A problem that loading a form document found. The forms library
    /// reports it in English only.
    FormNotice { message: String, line: Option<usize>, column: Option<usize> },
}

/// A problem with one field of the request envelope.
#[derive(Debug, Clone)]
pub enum EnvelopeProblem {
    /// A required field is absent or null.
    Missing,
    /// The field has the wrong JSON type.
    WrongType { expected: &'static str },
    /// The envelope has a field this endpoint does not know.
    UnknownField,
    /// A submission id that is neither a UUID nor (for FHIR) a FHIR id.
    InvalidSubmissionId { uuid_only: bool },
    /// An id with characters outside `A-Z a-z 0-9 . _ -` or over 64 long.
    InvalidId,
    /// A date-time that does not parse as RFC 3339.
    InvalidDateTime,
    /// A date-time without a UTC offset.
    MissingOffset,
    /// An offset written without its colon (`+0530`, `+05`).
    OffsetWithoutColon,
    /// A completion time later than now plus the allowed clock skew.
    InFuture { clock_skew_seconds: u64 },
    /// `formContent` is a string, but not one holding a JSON object.
    FormContentNotObject,
    /// The FHIR body is not a `QuestionnaireResponse`.
    NotQuestionnaireResponse,
    /// A `QuestionnaireResponse` whose status is not `completed` or
    /// `amended`.
    UnsupportedStatus { status: String },
    /// The trial has several forms and the seed request named none.
    FormRequired { form_ids: Vec<String> },
    /// A query status other than `open`, `answered` or `closed`.
    InvalidQueryStatus,
    /// An alert status other than `open` or `acknowledged`.
    InvalidAlertStatus,
    /// A text field that holds only spaces, tabs or line breaks.
    Blank,
    /// A text field longer than `max_length` characters.
    TooLong { max_length: usize },
    /// Query parameters of a list request that do not parse; `accepted`
    /// lists the ones the endpoint takes.
    InvalidQueryParameters { accepted: &'static [&'static str], max_limit: Option<usize> },
    /// A number too large for a 64-bit float (such as `1e400`).
    NumberOutOfRange,
    /// The same key appears twice in one JSON object, so the value is
    /// ambiguous.
    DuplicateKey,
    /// A FHIR resource was sent as `application/json`.
    FhirResourceAsJson,
    /// The `QuestionnaireResponse` names another questionnaire than the
    /// form it was posted to.
    QuestionnaireMismatch { expected: String },
    /// `subject` and the `patientId` query parameter name different patients.
    PatientMismatch,
    /// A query parameter that takes one of a fixed set of values got another.
    InvalidOption { allowed: &'static [&'static str] },
    /// A body field whose value is not one of those allowed, such as an unknown
    /// role.
    NotOneOf { allowed: &'static [&'static str] },
    /// A body field that the role of its grant does not take, such as a site for
    /// a data manager, or that it needs and lacks.
    RoleScope { role: &'static str, needed: bool },
    /// A whole number outside its allowed range.
    OutOfRange { min: i64, max: i64 },
    /// An export's `since` is not a cursor this server's database made.
    InvalidCursor,
    /// A query parameter this endpoint does not take; `accepted` lists the
    /// ones it does.
    UnknownParameter { accepted: &'static [&'static str] },
    /// A query parameter given more than once, so its value is ambiguous.
    DuplicateParameter,
    /// An export option that only CSV has, sent with another format.
    CsvOnly { format: &'static str },
    /// A correction whose answers would be the same as the base version's.
    NoChange,
    /// A re-entered credential that is not the caller's own.
    CredentialMismatch,
}

impl FieldError {
    /// Builds an envelope finding on a body field; a dotted name such as
    /// `identifier.value` becomes the pointer `/identifier/value`.
    pub fn envelope(field: &str, problem: EnvelopeProblem) -> Self {
        let path = if field.is_empty() { String::new() } else { format!("/{}", field.replace('.', "/")) };
        FieldError { item: field.to_owned(), path, detail: Detail::Envelope(problem) }
    }

    /// Builds a finding on a request header, which has no place in the body
    /// and so an empty `path`.
    pub fn header(name: &str, problem: EnvelopeProblem) -> Self {
        FieldError { item: name.to_owned(), path: String::new(), detail: Detail::Envelope(problem) }
    }

    /// Builds a finding on the value of one query parameter, which has no place
    /// in the body and so an empty `path`.
    pub fn query_value(name: &str, problem: EnvelopeProblem) -> Self {
        FieldError { item: name.to_owned(), path: String::new(), detail: Detail::Envelope(problem) }
    }

    /// Builds a finding on the URL's query string of an endpoint that takes
    /// the parameters `accepted`, with `limit` up to `max_limit` when it pages.
    pub fn query_parameter(accepted: &'static [&'static str], max_limit: Option<usize>) -> Self {
        FieldError {
            item: "query".to_owned(),
            path: String::new(),
            detail: Detail::Envelope(EnvelopeProblem::InvalidQueryParameters { accepted, max_limit }),
        }
    }

    /// Builds a finding on one named query parameter, which has no place in
    /// the body and so an empty `path`.
    pub fn query_option(name: &str, problem: EnvelopeProblem) -> Self {
        FieldError { item: name.to_owned(), path: String::new(), detail: Detail::Envelope(problem) }
    }

    /// Returns the stable code of this finding.
    pub fn code(&self) -> &'static str {
        match &self.detail {
            Detail::Answer(problem) => problem.code(),
            Detail::Envelope(problem) => problem.code(),
            Detail::FormNotice { .. } => "form_error",
        }
    }

    /// Builds a finding on a form document from a notice of the forms
    /// library. `path` is the notice's JSONPath (FHIR) or key path (TOML),
    /// empty for a syntax error, which has line and column instead.
    pub fn form_notice(notice: &epro_forms::Notice) -> Self {
        let path = if notice.path == "$" { String::new() } else { notice.path.clone() };
        FieldError {
            item: String::new(),
            path,
            detail: Detail::FormNotice { message: notice.message.clone(), line: notice.line, column: notice.column },
        }
    }
}

impl EnvelopeProblem {
    /// Returns the stable code of this problem; part of the API.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeProblem::Missing => "required",
            EnvelopeProblem::WrongType { .. } => "wrong_type",
            EnvelopeProblem::UnknownField => "unknown_field",
            EnvelopeProblem::InvalidSubmissionId { .. } => "invalid_submission_id",
            EnvelopeProblem::InvalidId => "invalid_id",
            EnvelopeProblem::InvalidDateTime => "invalid_datetime",
            EnvelopeProblem::MissingOffset => "missing_offset",
            EnvelopeProblem::OffsetWithoutColon => "offset_without_colon",
            EnvelopeProblem::InFuture { .. } => "in_future",
            EnvelopeProblem::FormContentNotObject => "form_content_not_object",
            EnvelopeProblem::NotQuestionnaireResponse => "not_questionnaire_response",
            EnvelopeProblem::UnsupportedStatus { .. } => "unsupported_status",
            EnvelopeProblem::FormRequired { .. } => "form_required",
            EnvelopeProblem::InvalidQueryStatus => "invalid_query_status",
            EnvelopeProblem::InvalidAlertStatus => "invalid_alert_status",
            EnvelopeProblem::Blank => "blank",
            EnvelopeProblem::TooLong { .. } => "too_long",
            EnvelopeProblem::InvalidQueryParameters { .. } => "invalid_query_parameters",
            EnvelopeProblem::NumberOutOfRange => "number_out_of_range",
            EnvelopeProblem::DuplicateKey => "duplicate_key",
            EnvelopeProblem::FhirResourceAsJson => "fhir_resource_as_json",
            EnvelopeProblem::QuestionnaireMismatch { .. } => "questionnaire_mismatch",
            EnvelopeProblem::PatientMismatch => "patient_mismatch",
            EnvelopeProblem::InvalidOption { .. } => "invalid_option",
            EnvelopeProblem::NotOneOf { .. } => "not_one_of",
            EnvelopeProblem::RoleScope { needed: true, .. } => "required_for_role",
            EnvelopeProblem::RoleScope { needed: false, .. } => "not_for_role",
            EnvelopeProblem::OutOfRange { .. } => "out_of_range",
            EnvelopeProblem::InvalidCursor => "invalid_cursor",
            EnvelopeProblem::UnknownParameter { .. } => "unknown_parameter",
            EnvelopeProblem::DuplicateParameter => "duplicate_parameter",
            EnvelopeProblem::CsvOnly { .. } => "csv_only_option",
            EnvelopeProblem::NoChange => "no_change",
            EnvelopeProblem::CredentialMismatch => "credential_mismatch",
        }
    }
}

impl ApiError {
    /// Returns the HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson { .. }
            | ApiError::NestingTooDeep { .. }
            | ApiError::InvalidEnvelope(_)
            | ApiError::InvalidCompressedBody
            | ApiError::IncompleteBody => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::SignatureCredentialInvalid(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::StaffExists { .. } | ApiError::PatientAlreadyEnrolled { .. } => StatusCode::CONFLICT,
            ApiError::UnknownSite { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::StaffNotFound { .. } | ApiError::PatientNotEnrolled { .. } => StatusCode::NOT_FOUND,
            ApiError::UnknownTrial { .. }
            | ApiError::UnknownForm { .. }
            | ApiError::UnknownVersion { .. }
            | ApiError::SubmissionNotFound
            | ApiError::QueryNotFound
            | ApiError::AlertNotFound
            | ApiError::VersionNotFound { .. }
            | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::FormVersionRetired { .. }
            | ApiError::FormVersionConflict { .. }
            | ApiError::FormVersionAlreadyRetired { .. }
            | ApiError::TrialConflict { .. }
            | ApiError::SiteConflict { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. }
            | ApiError::QueryUnchanged { .. }
            | ApiError::AlertAlreadyAcknowledged { .. }
            | ApiError::CorrectionConflict { .. }
            | ApiError::SignatureVersionNotCurrent { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedContentEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Validation(_)
            | ApiError::InvalidFields(_)
            | ApiError::CorrectionReasonRequired(_)
            | ApiError::InvalidForm(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. }
            | ApiError::TimedOut { .. }
            | ApiError::ShuttingDown
            | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) | ApiError::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Returns the stable code of this error; part of the API, and the label
    /// of the rejection metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::NestingTooDeep { .. } => "nesting_too_deep",
            ApiError::InvalidEnvelope(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::StaffExists { .. } => "staff_exists",
            ApiError::StaffNotFound { .. } => "staff_not_found",
            ApiError::PatientAlreadyEnrolled { .. } => "patient_already_enrolled",
            ApiError::PatientNotEnrolled { .. } => "patient_not_enrolled",
            ApiError::UnknownSite { .. } => "unknown_site",
            ApiError::UnknownTrial { .. } => "unknown_trial",
            ApiError::UnknownForm { .. } => "unknown_form",
            ApiError::UnknownVersion { .. } => "unknown_form_version",
            ApiError::SubmissionNotFound => "submission_not_found",
            ApiError::QueryNotFound => "query_not_found",
            ApiError::QueryUnchanged { .. } => "query_status_unchanged",
            ApiError::AlertNotFound => "alert_not_found",
            ApiError::AlertAlreadyAcknowledged { .. } => "alert_already_acknowledged",
            ApiError::VersionNotFound { .. } => "version_not_found",
            ApiError::CorrectionReasonRequired(_) => "correction_reason_required",
            ApiError::CorrectionConflict { .. } => "correction_conflict",
            ApiError::SignatureCredentialInvalid(_) => "signature_credential_invalid",
            ApiError::SignatureVersionNotCurrent { .. } => "signature_version_not_current",
            ApiError::FormVersionRetired { .. } => "form_version_retired",
            ApiError::InvalidForm(_) => "form_invalid",
            ApiError::FormVersionConflict { .. } => "form_version_conflict",
            ApiError::FormVersionAlreadyRetired { .. } => "form_version_already_retired",
            ApiError::TrialConflict { .. } => "trial_conflict",
            ApiError::SiteConflict { .. } => "site_conflict",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { .. } => "submission_conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::UnsupportedContentEncoding => "unsupported_content_encoding",
            ApiError::InvalidCompressedBody => "invalid_compressed_body",
            ApiError::IncompleteBody => "incomplete_body",
            ApiError::Validation(_) => "validation_failed",
            ApiError::InvalidFields(_) => "invalid_fields",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::TimedOut { .. } => "timed_out",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Unavailable => "unavailable",
            ApiError::Unexpected(_) | ApiError::Panicked => "internal_error",
        }
    }

    /// Returns the admission limit that caused this error, if one did; the
    /// `limit` label of `admission_rejections_total`.
    pub fn admission_limit(&self) -> Option<Limit> {
        match self {
            ApiError::Overloaded { limit } | ApiError::RateLimited { limit, .. } => Some(*limit),
            ApiError::TimedOut { .. } => Some(Limit::Timeout),
            ApiError::PayloadTooLarge { .. } => Some(Limit::BodySize),
            _ => None,
        }
    }

    /// Returns the `Retry-After` value in seconds for errors a client should
    /// retry later.
    pub(crate) fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_seconds, .. } => Some(*retry_after_seconds),
            ApiError::Overloaded { .. }
            | ApiError::TimedOut { .. }
            | ApiError::ShuttingDown
            | ApiError::Unavailable => Some(1),
            _ => None,
        }
    }

    /// Returns the field-level findings, empty for request-level errors.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ApiError::InvalidEnvelope(errors)
            | ApiError::Validation(errors)
            | ApiError::InvalidFields(errors)
            | ApiError::CorrectionReasonRequired(errors)
            | ApiError::SignatureCredentialInvalid(errors)
            | ApiError::InvalidForm(errors) => errors,
            _ => &[],
        }
    }
}

impl ApiError {
    /// Maps a store failure to the reply it calls for: 503 with `Retry-After`
    /// for overload, shutdown and a lost database, 500 with `context` logged for
    /// anything else.
    pub fn from_store(error: StoreError, context: &'static str) -> ApiError {
        match error {
            StoreError::Overloaded => ApiError::Overloaded { limit: Limit::StoreQueue },
            StoreError::ShuttingDown => ApiError::ShuttingDown,
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %format!("{cause:#}"), "{context}: database unavailable");
                ApiError::Unavailable
            }
            StoreError::Internal(cause) => ApiError::Unexpected(cause.context(context)),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Unexpected(error)
    }
}

/// Path of the seed-compatible endpoint, whose errors keep the old shape.
pub(crate) const SEED_PATH: &str = "/api/collection/submit";

/// The JSON shape of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{code, message, requestId, errors}`, used by the versioned API.
    Standard,
    /// `{status: "error", message, code, submissionId, errors}`, the reply
    /// shape of the endpoint kept from the system epro replaces.
    Seed,
}

/// An error on its way out, waiting in the response extensions for
/// [`render_errors`] to write its body.
#[derive(Clone)]
struct PendingError {
    error: Arc<ApiError>,
    shape: ErrorShape,
    submission_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        pending_response(self, ErrorShape::Standard, None)
    }
}

/// An [`ApiError`] from the seed-compatible endpoint, rendered in its old
/// reply shape.
pub struct SeedError {
    pub error: ApiError,
    pub submission_id: Option<String>,
}

impl IntoResponse for SeedError {
    fn into_response(self) -> Response {
        pending_response(self.error, ErrorShape::Seed, self.submission_id)
    }
}

/// Returns the status of `error` in the reply shape `shape`: the old
/// clients of the seed endpoint expect 400 for failed validation.
pub(crate) fn reply_status(error: &ApiError, shape: ErrorShape) -> StatusCode {
    match (error, shape) {
        (ApiError::Validation(_), ErrorShape::Seed) => StatusCode::BAD_REQUEST,
        _ => error.status(),
    }
}

fn pending_response(error: ApiError, shape: ErrorShape, submission_id: Option<String>) -> Response {
    let mut response = reply_status(&error, shape).into_response();
    if let Some(seconds) = error.retry_after_seconds() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if matches!(error, ApiError::Unauthorized | ApiError::SignatureCredentialInvalid(_)) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response.extensions_mut().insert(PendingError { error: Arc::new(error), shape, submission_id });
    response
}

/// One finding in the `errors` list of an error body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FieldError)]
pub(crate) struct FieldErrorBody<'a> {
    /// The item's `linkId`, the envelope field or header name, or empty for
    /// the body as a whole.
    item: &'a str,
    /// JSON Pointer (RFC 6901) of the offending value in the request body;
    /// empty for a header, the query string or the body as a whole.
    path: &'a str,
    /// Stable code of the finding (see the field code table).
    code: &'static str,
    /// What is wrong and how to fix it, in the language of `Content-Language`.
    message: String,
}

/// The error body of the versioned API.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErrorBody)]
pub(crate) struct StandardBody<'a> {
    /// Stable English code of the error; decides what a client does.
    code: &'static str,
    /// What happened and what to do, in the language of `Content-Language`.
    message: String,
    /// The `x-request-id` of the request, to quote to support.
    request_id: &'a str,
    /// Every finding for `invalid_request`, `invalid_fields`, `validation_failed`,
    /// `correction_reason_required` and `signature_credential_invalid`; empty
    /// for other codes.
    errors: Vec<FieldErrorBody<'a>>,
}

/// The error body of the seed-compatible endpoint: the old
/// `{status: "error", message}` with the fields of [`StandardBody`] added.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SeedErrorBody)]
pub(crate) struct SeedBody<'a> {
    /// Always `error`.
    #[schema(pattern = "^error$")]
    status: &'static str,
    /// Stable English code of the error.
    code: &'static str,
    /// What happened and what to do, in the language of `Content-Language`.
    message: String,
    /// The `x-request-id` of the request, to quote to support.
    request_id: &'a str,
    /// The submission id the request carried or was given, once the
    /// envelope named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    submission_id: Option<&'a str>,
    /// Every finding for `invalid_request` and `validation_failed`.
    errors: Vec<FieldErrorBody<'a>>,
}

/// An error body in either shape, serialized without a tag.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody<'a> {
    Standard(StandardBody<'a>),
    Seed(SeedBody<'a>),
}

/// Builds the JSON body of `error` in `shape`, with every message in
/// `language`. Real replies and the examples of the OpenAPI document both
/// come from here.
pub(crate) fn error_body<'a>(
    error: &'a ApiError,
    shape: ErrorShape,
    language: Language,
    request_id: &'a str,
    submission_id: Option<&'a str>,
) -> ErrorBody<'a> {
    let errors: Vec<FieldErrorBody<'_>> = error
        .field_errors()
        .iter()
        .map(|field| FieldErrorBody {
            item: &field.item,
            path: &field.path,
            code: field.code(),
            message: messages::field_message(language, field),
        })
        .collect();
    let message = messages::error_message(language, error);
    match shape {
        ErrorShape::Standard => ErrorBody::Standard(StandardBody { code: error.code(), message, request_id, errors }),
        ErrorShape::Seed => ErrorBody::Seed(SeedBody {
            status: "error",
            code: error.code(),
            message,
            request_id,
            submission_id,
            errors,
        }),
    }
}

/// Routes whose error replies count in `submissions_rejected_total`.
const SUBMISSION_ROUTES: &[&str] = &["/v1/trials/{trial_id}/forms/{form_id}/submissions", "/api/collection/submit"];

/// Renders every error response's body in the language the request asked
/// for, and sets `Content-Language` on every response.
///
/// This is also the one place that receives every error with its code, so it
/// counts error replies of the submission endpoints and records admission
/// rejections. Unexpected errors are logged here, once, inside the request
/// span, with their cause chain; the client gets only a generic message and
/// the request id to quote.
pub async fn render_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let language = Language::negotiate(request.headers(), state.settings.default_language);
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let is_submission =
        request.extensions().get::<MatchedPath>().is_some_and(|route| SUBMISSION_ROUTES.contains(&route.as_str()));
    // Admission layers reject before the seed handler runs; its old clients
    // still expect their reply shape.
    let is_seed = request.uri().path() == SEED_PATH;

    let mut response = next.run(request).await;
    response.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(language.tag()));

    let Some(pending) = response.extensions_mut().remove::<PendingError>() else {
        if is_submission && (response.status().is_client_error() || response.status().is_server_error()) {
            // An axum extractor rejected the request before the handler ran.
            state.metrics.record_submission_rejected("unclassified");
        }
        return response;
    };
    let error = pending.error.as_ref();
    if let ApiError::Unexpected(cause) = error {
        tracing::error!(error.message = %cause, error.cause_chain = ?cause, "Request failed unexpectedly");
    }
    if let Some(limit) = error.admission_limit() {
        state.record_rejection(limit);
    }
    if is_submission {
        state.metrics.record_submission_rejected(error.code());
    }

    let shape = if is_seed { ErrorShape::Seed } else { pending.shape };
    let body = serde_json::to_vec(&error_body(error, shape, language, &request_id, pending.submission_id.as_deref()));
    let body = body.expect("serializing an error body of strings cannot fail");

    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
