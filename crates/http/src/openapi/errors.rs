//! The error replies in the OpenAPI document: which codes each operation
//! can return, grouped by status, with one example body per code in each
//! language, and the tables of every code.
//!
//! The examples are real replies: sample [`ApiError`] values rendered by
//! [`error::error_body`], the function that writes every error body the
//! server sends, with the messages of the catalogue in `messages`. Sample
//! parameters (ids, limits) are the demo trial's and the configuration's
//! defaults.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use epro_forms::{Expected, Hint, Localized, Problem, Severity};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{HeaderBuilder, Ref, RefOr};

use crate::admission::Limit;
use crate::body::SUBMISSION_MEDIA_TYPES;
use crate::error::{self, ApiError, Detail, EnvelopeProblem, ErrorShape, FieldError};
use crate::language::Language;
use crate::messages;

/// Request id of the example bodies.
const EXAMPLE_REQUEST_ID: &str = "7d2f4d0e-2a8c-4c53-9a43-3f4f0c9d5a10";
/// Submission id of the examples, the one of the README's first request.
pub(crate) const EXAMPLE_SUBMISSION_ID: &str = "0b6f3c2e-8d4a-4f7e-9a51-2c7d9e1f4a3b";

/// The admission layers an operation passes, which add their own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layers {
    /// Every layer, the per-IP rate limit and the concurrency limit
    /// included.
    Limited,
    /// `/healthz`, `/readyz` and `/metrics`, which skip the rate and
    /// concurrency limits.
    Probe,
}

/// Builds the error replies of one operation: `errors` plus those of the
/// layers in front of every handler, one response per status.
pub(crate) fn responses(shape: ErrorShape, layers: Layers, errors: Vec<ApiError>) -> BTreeMap<String, RefOr<Response>> {
    let mut all = errors;
    all.extend(layer_errors(layers));

    let mut by_status: BTreeMap<u16, Vec<ApiError>> = BTreeMap::new();
    for error in all {
        by_status.entry(error::reply_status(&error, shape).as_u16()).or_default().push(error);
    }
    by_status.into_iter().map(|(status, errors)| (status.to_string(), RefOr::T(response(shape, &errors)))).collect()
}

/// The replies for requests that match no route or no method of a route,
/// for `components.responses`: no operation can list them.
pub(crate) fn unrouted_responses() -> Vec<(String, RefOr<Response>)> {
    vec![
        ("RouteNotFound".to_owned(), RefOr::T(response(ErrorShape::Standard, &[ApiError::RouteNotFound]))),
        ("MethodNotAllowed".to_owned(), RefOr::T(response(ErrorShape::Standard, &[ApiError::MethodNotAllowed]))),
    ]
}

/// Errors of the layers in front of every handler: see `crate::layered`.
fn layer_errors(layers: Layers) -> Vec<ApiError> {
    let mut errors = vec![
        ApiError::UnsupportedContentEncoding,
        ApiError::TimedOut { timeout_seconds: 10 },
        ApiError::Unexpected(anyhow::anyhow!("example")),
    ];
    if layers == Layers::Limited {
        errors.push(ApiError::RateLimited { limit: Limit::RateIp, retry_after_seconds: 1 });
        errors.push(ApiError::Overloaded { limit: Limit::Concurrency });
    }
    errors
}

fn response(shape: ErrorShape, errors: &[ApiError]) -> Response {
    let mut description = String::new();
    let mut described = Vec::new();
    for error in errors {
        if !described.contains(&error.code()) {
            described.push(error.code());
            let _ = writeln!(description, "- `{}`: {}", error.code(), when(error));
        }
    }

    let schema = match shape {
        ErrorShape::Standard => "ErrorBody",
        ErrorShape::Seed => "SeedErrorBody",
    };
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name(schema)));
    for error in errors {
        for language in [Language::En, Language::ZhCn] {
            let submission_id =
                (shape == ErrorShape::Seed && knows_submission_id(error)).then_some(EXAMPLE_SUBMISSION_ID);
            let body = error::error_body(error, shape, language, EXAMPLE_REQUEST_ID, submission_id);
            let value = serde_json::to_value(&body).expect("an error body serializes to JSON");
            let example = ExampleBuilder::new()
                .summary(format!("{} ({})", error.code(), language.tag()))
                .value(Some(value))
                .build();
            content = content.examples_from_iter([(example_name(error, language), example)]);
        }
    }

    let mut builder =
        ResponseBuilder::new().description(description.trim_end()).content("application/json", content.build());
    if let Some(seconds) = errors.iter().find_map(ApiError::retry_after_seconds) {
        let header = HeaderBuilder::new()
            .schema(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer).build())
            .description(Some(format!(
                "Seconds to wait before retrying ({seconds} for every code but `rate_limited`, whose wait \
                 the rate limit computes). Retry a submission with the same submission id."
            )))
            .build();
        builder = builder.header("Retry-After", header);
    }
    if errors.iter().any(|error| matches!(error, ApiError::Unauthorized)) {
        let header = HeaderBuilder::new()
            .schema(super::string_enum(&["Bearer"]))
            .description(Some("The authentication scheme to use."))
            .build();
        builder = builder.header("WWW-Authenticate", header);
    }
    builder.build()
}

/// Returns whether the seed endpoint has read the submission id when it
/// returns `error`: every error after the envelope parsed.
fn knows_submission_id(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::UnknownTrial { .. }
            | ApiError::UnknownForm { .. }
            | ApiError::UnknownVersion { .. }
            | ApiError::FormVersionRetired { .. }
            | ApiError::RateLimited { limit: Limit::RatePatient, .. }
            | ApiError::Validation(_)
            | ApiError::Conflict { .. }
            | ApiError::Overloaded { limit: Limit::StoreQueue }
            | ApiError::ShuttingDown
            | ApiError::Unavailable
    )
}

/// Names an example by its code, the limit that caused it when one code
/// has several causes, and the language: `rate_limited.rate_patient.en`.
fn example_name(error: &ApiError, language: Language) -> String {
    match error {
        ApiError::Overloaded { limit } | ApiError::RateLimited { limit, .. } => {
            format!("{}.{}.{}", error.code(), limit.label(), language.tag())
        }
        _ => format!("{}.{}", error.code(), language.tag()),
    }
}

/// Describes when the server returns `error`, for developers reading the
/// document. The match is exhaustive, so a new [`ApiError`] variant does not
/// compile until it is described here; add a sample to [`catalogue`] too.
fn when(error: &ApiError) -> &'static str {
    match error {
        ApiError::InvalidJson { .. } => "The body is not JSON; the message gives line and column.",
        ApiError::NestingTooDeep { .. } => "The body nests arrays or objects deeper than `http.max_json_depth`.",
        ApiError::InvalidEnvelope(_) => {
            "Fields around the answers (or query parameters) are missing, mistyped or invalid; `errors` lists each."
        }
        ApiError::Unauthorized => "The token is missing, malformed, unknown, expired or revoked.",
        ApiError::Forbidden { .. } => {
            "The token is valid but its roles, or its patient and trial, do not allow this request; logged as a \
             security event."
        }
        ApiError::StaffExists { .. } => "A staff account with this id exists already; nothing changed.",
        ApiError::StaffNotFound { .. } => "No staff account has this id.",
        ApiError::PatientAlreadyEnrolled { .. } => "The patient is enrolled in this trial already; nothing changed.",
        ApiError::PatientNotEnrolled { .. } => "The patient is not enrolled in this trial.",
        ApiError::UnknownSite { .. } => "The trial file lists no site with this id; nothing changed.",
        ApiError::UnknownTrial { .. } => "No trial has this id.",
        ApiError::UnknownForm { .. } => "The trial has no form with this id.",
        ApiError::UnknownVersion { .. } => "The form has no such version; omit the version to use the current one.",
        ApiError::SubmissionNotFound => "No submission with this id is stored.",
        ApiError::QueryNotFound => "No data query has this id.",
        ApiError::QueryUnchanged { .. } => "The data query already has the requested status; nothing changed.",
        ApiError::AlertNotFound => "No alert has this id.",
        ApiError::AlertAlreadyAcknowledged { .. } => "The alert was acknowledged before; an acknowledgement is final.",
        ApiError::InvalidFields(_) => "Fields of the request body are missing or invalid; `errors` lists each.",
        ApiError::VersionNotFound { .. } => "The submission has no version with this number.",
        ApiError::CorrectionReasonRequired(_) => {
            "A correction without a reason, or with a blank one; `errors` names `reason`. Nothing was stored."
        }
        ApiError::CorrectionConflict { .. } => {
            "`baseVersion` is not the current version; the message names the current one. Nothing was stored."
        }
        ApiError::SignatureCredentialInvalid(_) => {
            "The re-entered `credential` is not the caller's own; `errors` names it. Nothing was signed."
        }
        ApiError::SignatureVersionNotCurrent { .. } => {
            "Only the latest version can be signed; the message names it. Nothing was signed."
        }
        ApiError::FormVersionRetired { .. } => {
            "The submission names a retired form version and the form has no active version left (it was \
             withdrawn); nothing stored. A version retired while a newer one is active is stored with a \
             `stale_form_version` data query instead."
        }
        ApiError::InvalidForm(_) => {
            "The form document to publish does not load; nothing published and `errors` lists every problem."
        }
        ApiError::FormVersionConflict { .. } => {
            "The form id and version are published with other content; a version is never reused. Publish a \
             new version."
        }
        ApiError::FormVersionAlreadyRetired { .. } => "The form version was retired before; a retirement is final.",
        ApiError::TrialConflict { .. } => "A trial with this id exists with another title, alert deadline or sites.",
        ApiError::SiteConflict { .. } => "The trial has a site with this id under another name.",
        ApiError::RouteNotFound => "No endpoint has this path.",
        ApiError::MethodNotAllowed => "The endpoint does not take this HTTP method.",
        ApiError::Conflict { .. } => {
            "A submission with this id is stored with other content; nothing changed. New answers need a new id."
        }
        ApiError::PayloadTooLarge { .. } => {
            "The body is larger than `http.max_body_bytes` (1 MiB by default), counted after gzip decompression."
        }
        ApiError::UnsupportedMediaType { .. } => "`Content-Type` is missing or not one this endpoint takes.",
        ApiError::UnsupportedContentEncoding => "`Content-Encoding` is neither `gzip` nor `identity`.",
        ApiError::InvalidCompressedBody => "The body is declared gzip but is not valid gzip data.",
        ApiError::IncompleteBody => "The connection ended before the whole body arrived.",
        ApiError::Validation(_) => "Answers failed validation; nothing was stored and `errors` lists every finding.",
        ApiError::Overloaded { .. } => {
            "Too many requests in flight, or the store's queue is full; rejected at once, nothing stored."
        }
        ApiError::TimedOut { .. } => {
            "The request took longer than `http.request_timeout_seconds`; a submission may be stored, so retry \
             with the same id."
        }
        ApiError::RateLimited { .. } => {
            "Over the rate limit of the client address or of the patient; nothing stored. Retry after `Retry-After`."
        }
        ApiError::ShuttingDown => "The server is shutting down; nothing new was stored.",
        ApiError::Unavailable => {
            "The database is not reachable; retry. A submission whose commit outcome is unknown also gets this."
        }
        ApiError::Unexpected(_) | ApiError::Panicked => {
            "An unexpected failure, logged on the server; quote `requestId` to support."
        }
    }
}

/// One sample of every error code, in the order of the table.
fn catalogue() -> Vec<ApiError> {
    vec![
        ApiError::InvalidJson { line: 1, column: 17 },
        ApiError::NestingTooDeep { max_depth: 64 },
        invalid_request(FieldError::envelope("completedAt", EnvelopeProblem::MissingOffset)),
        ApiError::IncompleteBody,
        ApiError::InvalidCompressedBody,
        ApiError::Unauthorized,
        ApiError::Forbidden { permission: crate::auth::Permission::Export },
        ApiError::StaffExists { staff_id: "dm-wang".to_owned() },
        ApiError::StaffNotFound { staff_id: "dm-wang".to_owned() },
        ApiError::PatientAlreadyEnrolled { patient_id: "P-0042".to_owned() },
        ApiError::PatientNotEnrolled { patient_id: "P-0042".to_owned() },
        ApiError::UnknownSite { trial_id: "demo".to_owned(), site_id: "site-99".to_owned() },
        unknown_trial(),
        unknown_form(),
        unknown_version(),
        ApiError::SubmissionNotFound,
        ApiError::QueryNotFound,
        ApiError::RouteNotFound,
        ApiError::MethodNotAllowed,
        conflict(),
        ApiError::QueryUnchanged { status: "closed" },
        ApiError::AlertNotFound,
        ApiError::AlertAlreadyAcknowledged { acknowledged_at: None },
        ApiError::InvalidFields(vec![FieldError::envelope("comment", EnvelopeProblem::Missing)]),
        version_not_found(),
        correction_reason_required(),
        correction_conflict(),
        signature_credential_invalid(),
        signature_version_not_current(),
        form_version_retired(),
        invalid_form(),
        form_version_conflict(),
        form_version_already_retired(),
        trial_conflict(),
        site_conflict(),
        ApiError::PayloadTooLarge { max_bytes: 1_048_576 },
        ApiError::UnsupportedMediaType { accepted: SUBMISSION_MEDIA_TYPES },
        ApiError::UnsupportedContentEncoding,
        validation(),
        ApiError::RateLimited { limit: Limit::RateIp, retry_after_seconds: 1 },
        ApiError::Overloaded { limit: Limit::Concurrency },
        ApiError::TimedOut { timeout_seconds: 10 },
        ApiError::ShuttingDown,
        ApiError::Unavailable,
        ApiError::Unexpected(anyhow::anyhow!("example")),
    ]
}

/// Errors of an endpoint that reads a JSON body taking `accepted` media
/// types, before its own parsing.
pub(crate) fn body_errors(accepted: &'static [&'static str]) -> Vec<ApiError> {
    vec![
        ApiError::UnsupportedMediaType { accepted },
        ApiError::PayloadTooLarge { max_bytes: 1_048_576 },
        ApiError::InvalidJson { line: 1, column: 17 },
        ApiError::NestingTooDeep { max_depth: 64 },
        ApiError::IncompleteBody,
        ApiError::InvalidCompressedBody,
    ]
}

/// Errors of the submission endpoints after the body is read: the form
/// lookup, the per-patient limit, validation, the conflict check and the
/// store. `invalid` is the example of the endpoint's envelope errors.
pub(crate) fn submission_errors(accepted: &'static [&'static str], invalid: Vec<FieldError>) -> Vec<ApiError> {
    let mut errors = body_errors(accepted);
    errors.extend([
        ApiError::InvalidEnvelope(invalid),
        ApiError::Unauthorized,
        ApiError::Forbidden { permission: crate::auth::Permission::Submit },
        unknown_trial(),
        unknown_form(),
        unknown_version(),
        form_version_retired(),
        ApiError::RateLimited { limit: Limit::RatePatient, retry_after_seconds: 12 },
        validation(),
        conflict(),
    ]);
    errors.extend(store_write_errors());
    errors
}

/// Errors of a write through the store's queue.
pub(crate) fn store_write_errors() -> Vec<ApiError> {
    vec![ApiError::Overloaded { limit: Limit::StoreQueue }, ApiError::ShuttingDown, ApiError::Unavailable]
}

/// An `invalid_request` error with the findings `fields`.
pub(crate) fn invalid_request(field: FieldError) -> ApiError {
    ApiError::InvalidEnvelope(vec![field])
}

pub(crate) fn unknown_trial() -> ApiError {
    ApiError::UnknownTrial { trial_id: "demo2".to_owned() }
}

fn unknown_form() -> ApiError {
    ApiError::UnknownForm { trial_id: "demo".to_owned(), form_id: "phq8".to_owned() }
}

fn unknown_version() -> ApiError {
    ApiError::UnknownVersion { form_id: "phq9".to_owned(), version: "7".to_owned() }
}

fn conflict() -> ApiError {
    ApiError::Conflict { submission_id: EXAMPLE_SUBMISSION_ID.to_owned() }
}

pub(crate) fn version_not_found() -> ApiError {
    ApiError::VersionNotFound { version: "3".to_owned() }
}

pub(crate) fn correction_reason_required() -> ApiError {
    ApiError::CorrectionReasonRequired(vec![FieldError::envelope("reason", EnvelopeProblem::Missing)])
}

pub(crate) fn correction_conflict() -> ApiError {
    ApiError::CorrectionConflict { base_version: 1, current_version: 2 }
}

pub(crate) fn signature_credential_invalid() -> ApiError {
    ApiError::SignatureCredentialInvalid(vec![FieldError::envelope("credential", EnvelopeProblem::CredentialMismatch)])
}

pub(crate) fn signature_version_not_current() -> ApiError {
    ApiError::SignatureVersionNotCurrent { version: 1, current_version: 2 }
}

/// The instant of the examples of retired versions.
const EXAMPLE_RETIRED_AT: time::OffsetDateTime = time::macros::datetime!(2026-11-30 08:00 UTC);

pub(crate) fn form_version_retired() -> ApiError {
    ApiError::FormVersionRetired { form_id: "phq9".to_owned(), version: "1".to_owned(), retired_at: EXAMPLE_RETIRED_AT }
}

/// A `form_invalid` error: an option that does not fit its item, the kind of
/// problem `epro forms check` lists.
pub(crate) fn invalid_form() -> ApiError {
    ApiError::InvalidForm(vec![form_finding()])
}

fn form_finding() -> FieldError {
    FieldError::form_notice(&epro_forms::Notice {
        path: "$.item[2].answerOption[0]".to_owned(),
        line: None,
        column: None,
        message: "an option of this kind does not fit an item of type integer".to_owned(),
    })
}

pub(crate) fn form_version_conflict() -> ApiError {
    ApiError::FormVersionConflict { form_id: "phq9".to_owned(), version: "1".to_owned() }
}

pub(crate) fn form_version_already_retired() -> ApiError {
    ApiError::FormVersionAlreadyRetired {
        form_id: "phq9".to_owned(),
        version: "1".to_owned(),
        retired_at: EXAMPLE_RETIRED_AT,
    }
}

pub(crate) fn trial_conflict() -> ApiError {
    ApiError::TrialConflict { trial_id: "demo".to_owned() }
}

pub(crate) fn site_conflict() -> ApiError {
    ApiError::SiteConflict { site_id: "S01".to_owned() }
}

/// A `validation_failed` error: the README's PHQ-9 answer that is not one
/// of the item's options.
fn validation() -> ApiError {
    ApiError::Validation(vec![FieldError {
        item: "/44250-9".to_owned(),
        path: "/answers/~144250-9".to_owned(),
        detail: Detail::Answer(Problem::NotAnOption {
            allowed: ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"].map(str::to_owned).to_vec(),
        }),
    }])
}

/// One sample finding of every field code with the status of the reply
/// that carries it, in the order of the table.
fn field_catalogue() -> Vec<(FieldError, &'static str)> {
    let envelope = |field: &str, problem| (FieldError::envelope(field, problem), "400");
    let answer = |item: &str, problem| {
        let finding = FieldError {
            item: item.to_owned(),
            path: format!("/answers/{}", item.replace('~', "~0").replace('/', "~1")),
            detail: Detail::Answer(problem),
        };
        (finding, "422 (400 on the seed endpoint)")
    };
    let mut samples = vec![
        envelope("patientId", EnvelopeProblem::Missing),
        envelope("patientId", EnvelopeProblem::WrongType { expected: "string" }),
        envelope("patient", EnvelopeProblem::UnknownField),
        envelope("submissionId", EnvelopeProblem::InvalidSubmissionId { uuid_only: true }),
        envelope("patientId", EnvelopeProblem::InvalidId),
        envelope("completedAt", EnvelopeProblem::InvalidDateTime),
        envelope("completedAt", EnvelopeProblem::MissingOffset),
        envelope("completedAt", EnvelopeProblem::OffsetWithoutColon),
        (FieldError::envelope("completedAt", EnvelopeProblem::InFuture { clock_skew_seconds: 300 }), "422"),
        envelope("formContent", EnvelopeProblem::FormContentNotObject),
        envelope("resourceType", EnvelopeProblem::NotQuestionnaireResponse),
        envelope("status", EnvelopeProblem::UnsupportedStatus { status: "in-progress".to_owned() }),
        envelope(
            "formId",
            EnvelopeProblem::FormRequired { form_ids: ["phq9", "gad7", "pain-nrs"].map(str::to_owned).to_vec() },
        ),
        envelope("status", EnvelopeProblem::InvalidQueryStatus),
        (FieldError::query_value("status", EnvelopeProblem::InvalidAlertStatus), "400"),
        (FieldError::envelope("comment", EnvelopeProblem::Blank), "422"),
        (FieldError::envelope("comment", EnvelopeProblem::TooLong { max_length: 2000 }), "422"),
        (FieldError::query_parameter(&["after", "limit"], Some(500)), "400"),
        envelope("answers./44261-6", EnvelopeProblem::NumberOutOfRange),
        envelope("patientId", EnvelopeProblem::DuplicateKey),
        envelope("resourceType", EnvelopeProblem::FhirResourceAsJson),
        envelope(
            "questionnaire",
            EnvelopeProblem::QuestionnaireMismatch { expected: "http://example.org/Questionnaire/phq9".to_owned() },
        ),
        envelope("subject", EnvelopeProblem::PatientMismatch),
        (
            FieldError::query_option("format", EnvelopeProblem::InvalidOption { allowed: &["csv", "ndjson", "fhir"] }),
            "400",
        ),
        (FieldError::query_option("since", EnvelopeProblem::InvalidCursor), "400"),
        (
            FieldError::query_option("cursor", EnvelopeProblem::UnknownParameter { accepted: &["format", "since"] }),
            "400",
        ),
        (FieldError::query_option("format", EnvelopeProblem::DuplicateParameter), "400"),
        (FieldError::query_option("bom", EnvelopeProblem::CsvOnly { format: "ndjson" }), "400"),
        (FieldError::envelope("roles[0].role", EnvelopeProblem::NotOneOf { allowed: &["admin", "monitor"] }), "422"),
        (
            FieldError::envelope("roles[0].siteId", EnvelopeProblem::RoleScope { role: "investigator", needed: true }),
            "422",
        ),
        (FieldError::envelope("roles[0].siteId", EnvelopeProblem::RoleScope { role: "monitor", needed: false }), "422"),
        (FieldError::envelope("expiresInDays", EnvelopeProblem::OutOfRange { min: 1, max: 3650 }), "422"),
        (FieldError::envelope("answers", EnvelopeProblem::NoChange), "422"),
        (FieldError::envelope("credential", EnvelopeProblem::CredentialMismatch), "401"),
    ];
    samples.extend([
        answer("/44250-9", Problem::Required),
        answer("/12345-6", Problem::UnknownItem),
        answer("age", Problem::WrongType { expected: Expected::Integer, hint: Some(Hint::QuotedNumber) }),
        answer("pain", Problem::OutOfRange { min: Some("0".to_owned()), max: Some("10".to_owned()) }),
        answer("/44250-9", Problem::NotAnOption { allowed: ["LA6568-5", "LA6569-3"].map(str::to_owned).to_vec() }),
        answer("comment", Problem::TooLong { max_length: 500, length: 612 }),
        answer("zip", Problem::PatternMismatch { pattern: "^[0-9]{6}$".to_owned() }),
        answer("weight", Problem::TooManyDecimals { max_decimal_places: 1 }),
        answer("medications", Problem::TooFewRepeats { min: 1, count: 0 }),
        answer("medications", Problem::TooManyRepeats { max: 5, count: 6 }),
        answer("intro", Problem::NotAnswerable),
        answer("weight", Problem::UnitNotAllowed { allowed: vec!["kg".to_owned()] }),
        answer("smoking-years", Problem::AnsweredWhileDisabled),
        answer(
            "end-date",
            Problem::RuleViolated {
                rule: "end-after-start".to_owned(),
                severity: Severity::Reject,
                message: Localized {
                    en: "The end date must not be before the start date.".to_owned(),
                    zh_cn: "结束日期不能早于开始日期。".to_owned(),
                },
            },
        ),
    ]);
    samples.push((form_finding(), "422 (publishing a form)"));
    let (mismatch, _) = answer(
        "/44261-6",
        Problem::ScoreMismatch { score: "/44261-6".to_owned(), computed: "10".to_owned(), sent: "13".to_owned() },
    );
    samples.push((mismatch, "none: a data query on the stored submission"));
    samples
}

/// Renders the tables of every error code and every field code, in
/// Markdown, for the document's description.
pub(crate) fn tables() -> String {
    let mut text = String::from(
        "## Errors\n\n\
         Every error reply is JSON: `{code, message, requestId, errors: [{item, path, code, message}]}`; the \
         seed-compatible endpoint adds `status: \"error\"` and `submissionId`. `code` is stable and English and \
         decides what a client does; `message` is in the language of `Content-Language`, chosen by \
         `Accept-Language`. Every 429 and 503 carries `Retry-After`. Treat a code you do not know by its \
         status. Each operation lists its codes with an example body in English and in Simplified Chinese.\n\n\
         | status | code | when |\n| --- | --- | --- |\n",
    );
    let mut rows: Vec<(u16, &str, &str)> = Vec::new();
    for error in &catalogue() {
        let row = (error.status().as_u16(), error.code(), when(error));
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    rows.sort_by_key(|(status, ..)| *status);
    for (status, code, when) in rows {
        let _ = writeln!(text, "| {status} | `{code}` | {when} |");
    }
    text.push_str("\nThe seed-compatible endpoint answers `validation_failed` with 400, as its old clients expect.\n");

    text.push_str(
        "\n## Field codes\n\n\
         Each entry of `errors` has its own `code`. `path` is a JSON Pointer into the request body; `item` is \
         the item's `linkId` or the field name.\n\n\
         | code | status | example (en) | example (zh-CN) |\n| --- | --- | --- | --- |\n",
    );
    for (field, status) in field_catalogue() {
        let english = messages::field_message(Language::En, &field).replace('|', "\\|");
        let chinese = messages::field_message(Language::ZhCn, &field).replace('|', "\\|");
        let _ = writeln!(text, "| `{}` | {status} | {english} | {chinese} |", field.code());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_lists_each_code_once() {
        let mut codes: Vec<&str> = catalogue().iter().map(ApiError::code).collect();
        let count = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), count, "a code appears twice in the catalogue");
    }

    #[test]
    fn responses_group_codes_by_status() {
        let responses = responses(ErrorShape::Standard, Layers::Probe, vec![unknown_trial(), ApiError::QueryNotFound]);

        let Some(RefOr::T(not_found)) = responses.get("404") else { panic!("no 404 in {:?}", responses.keys()) };
        assert!(not_found.description.contains("`unknown_trial`"), "{}", not_found.description);
        assert!(not_found.description.contains("`query_not_found`"), "{}", not_found.description);
        let examples = &not_found.content["application/json"].examples;
        assert!(examples.contains_key("unknown_trial.en"), "{:?}", examples.keys());
        assert!(examples.contains_key("query_not_found.zh-CN"), "{:?}", examples.keys());
        assert!(!responses.contains_key("429"), "probes skip the rate limit");
        let Some(RefOr::T(unavailable)) = responses.get("503") else { panic!("no 503") };
        assert!(unavailable.headers.contains_key("Retry-After"));
    }

    #[test]
    fn examples_carry_real_messages() {
        let responses = responses(ErrorShape::Standard, Layers::Probe, vec![unknown_trial()]);
        let Some(RefOr::T(not_found)) = responses.get("404") else { panic!("no 404") };
        let examples = &not_found.content["application/json"].examples;

        for language in [Language::En, Language::ZhCn] {
            let Some(RefOr::T(example)) = examples.get(&format!("unknown_trial.{}", language.tag())) else {
                panic!("no example in {}", language.tag())
            };
            let value = example.value.as_ref().unwrap();
            assert_eq!(value["message"], messages::error_message(language, &unknown_trial()));
            assert_eq!(value["code"], "unknown_trial");
        }
    }
}
