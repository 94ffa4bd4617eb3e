//! Exports for analysts: `GET /v1/trials/{trialId}/forms/{formId}/export`
//! streams a form's submissions as CSV, NDJSON or FHIR NDJSON, and
//! `GET /v1/trials/{trialId}/forms/{formId}/codebook` describes the columns.
//!
//! The export reply starts at once. The handler fixes the export's
//! high-water mark, writes the audit row and sends the headers with the next
//! cursor (`Epro-Next-Cursor`). Then it streams one page of rows after the
//! other, so memory stays bounded by one page whatever the export's size. A
//! page that fails to read ends the stream without its last chunk, so the
//! client sees an incomplete body and must not keep the cursor.
//!
//! Both endpoints need `export` for the whole trial (data managers).

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use epro_export::{CodebookFormat, Exporter, Format, HeaderStyle, Layout, Options};
use epro_forms::Trial;
use epro_store::{ExportAudit, ExportCursor};

use std::collections::BTreeMap;

use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses};

use crate::auth::{self, Permission, Principal, Scope};
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::language::Language;
use crate::openapi::errors::{self, Layers};
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// Response header with the cursor of the next export.
pub const NEXT_CURSOR_HEADER: &str = "epro-next-cursor";

/// The query parameters of the export endpoint.
const EXPORT_PARAMETERS: &[&str] = &["format", "since", "header", "labelLanguage", "bom"];

/// The query parameters of the codebook endpoint.
const CODEBOOK_PARAMETERS: &[&str] = &["format"];

/// Query parameters as sent, in order.
type RawParams = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// The query parameters of the export endpoint, for the OpenAPI document.
/// The handler reads them as a list, so that it can report unknown and
/// repeated parameters by name.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct ExportParams {
    /// `csv` (the default), `ndjson` or `fhir` (NDJSON of FHIR `QuestionnaireResponse`).
    format: Option<String>,
    /// The `Epro-Next-Cursor` of an earlier export: only what was stored since.
    since: Option<String>,
    /// CSV only: `linkId` (the default) or `label` for column headers.
    header: Option<String>,
    /// CSV only, with `header=label`: `en` or `zh-CN`; the `Accept-Language` when absent.
    label_language: Option<String>,
    /// CSV only: `true` starts the file with a UTF-8 byte-order mark for Excel.
    bom: Option<bool>,
}

/// The query parameters of the codebook endpoint, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct CodebookParams {
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

/// The errors of [`export`] and [`codebook`].
pub(crate) struct ExportErrors;

impl IntoResponses for ExportErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::Export },
            ApiError::InvalidEnvelope(vec![
                FieldError::query_option("format", EnvelopeProblem::InvalidOption { allowed: Format::NAMES }),
                FieldError::query_option("since", EnvelopeProblem::InvalidCursor),
                FieldError::query_option("bom", EnvelopeProblem::CsvOnly { format: "ndjson" }),
                FieldError::query_option("cursor", EnvelopeProblem::UnknownParameter { accepted: EXPORT_PARAMETERS }),
                FieldError::query_option("format", EnvelopeProblem::DuplicateParameter),
            ]),
            ApiError::UnknownTrial { trial_id: "demo".to_owned() },
            ApiError::UnknownForm { trial_id: "demo".to_owned(), form_id: "phq9".to_owned() },
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Streams the submissions of one form.
#[utoipa::path(
    get,
    path = "/v1/trials/{trial_id}/forms/{form_id}/export",
    operation_id = "exportSubmissions",
    tag = "exports",
    summary = "Export a form's submissions",
    description = "Streams one row (CSV) or line (NDJSON, FHIR NDJSON) per submission version, in commit \
        order. The `Epro-Next-Cursor` reply header holds the cursor to pass as `since` next time; keep it only \
        after reading the whole body, because a database failure mid-stream ends the body early. Writes one \
        audit row. Needs `export` for the trial (data managers).",
    params(
        ("trial_id" = String, Path, description = "The trial's id, such as `demo`."),
        ("form_id" = String, Path, description = "The form's id within the trial, such as `phq9`."),
        ExportParams,
    ),
    responses(
        (status = 200, description = "The export, streamed.",
            headers(("Epro-Next-Cursor" = String, description = "The cursor of the next incremental export.")),
            content(
                (String = "text/csv"),
                (String = "application/x-ndjson"),
                (String = "application/fhir+ndjson"),
            )),
        ExportErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Path((trial_id, form_id)): Path<(String, String)>,
    params: RawParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_known_trial(&state, &principal, &trial_id)?;
    auth::require_in(&state, &principal, Permission::Export, Scope::Trial(&trial_id))?;
    let actor = principal.actor();
    let params = read_params(params, EXPORT_PARAMETERS)?;
    let language = Language::negotiate(&headers, state.settings.default_language);
    let options = export_options(&state, &params, language)?;
    let layout = find_layout(&state, &trial_id, &form_id)?;

    let exporter = Exporter::start(state.store.clone(), layout, options.clone())
        .await
        .map_err(|error| ApiError::from_store(error, "failed to start export"))?;
    if exporter.since_is_beyond_database() {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_option("since", EnvelopeProblem::InvalidCursor)]));
    }
    let audit =
        ExportAudit { actor, trial_id: trial_id.clone(), form_id: form_id.clone(), request_id: request_id(&headers) };
    state.store.record_export(audit).await.map_err(|error| ApiError::from_store(error, "failed to audit export"))?;

    let next_cursor = exporter.next_cursor().to_string();
    tracing::info!(trial_id, form_id, format = %options.format, incremental = options.since.is_some(), "Export started");
    let file_name = format!("{trial_id}-{form_id}.{}", options.format.extension());
    let body = Body::from_stream(chunks(exporter, trial_id, form_id));

    let mut response = body.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(options.format.media_type()));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    let cursor =
        HeaderValue::from_str(&next_cursor).map_err(|error| anyhow::anyhow!("invalid cursor text: {error}"))?;
    response_headers.insert(NEXT_CURSOR_HEADER, cursor);
    Ok(response)
}

/// Turns the exporter's pages into the body's chunks. A failed page is
/// logged here, because the request's span and log line have ended by then.
fn chunks(
    exporter: Exporter,
    trial_id: String,
    form_id: String,
) -> impl futures_util::Stream<Item = Result<Bytes, epro_export::ExportError>> + Send {
    futures_util::stream::try_unfold((exporter, 0_u64), move |(mut exporter, mut rows)| {
        let (trial_id, form_id) = (trial_id.clone(), form_id.clone());
        async move {
            match exporter.next_chunk().await {
                Ok(Some(chunk)) => {
                    rows += chunk.rows as u64;
                    Ok(Some((Bytes::from(chunk.bytes), (exporter, rows))))
                }
                Ok(None) => {
                    tracing::info!(trial_id, form_id, rows, "Export finished");
                    Ok(None)
                }
                Err(error) => {
                    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
                    tracing::error!(trial_id, form_id, rows, error.message = %error, error.cause = cause, "Export stopped part way");
                    Err(error)
                }
            }
        }
    })
}

/// Returns the codebook of one form.
#[utoipa::path(
    get,
    path = "/v1/trials/{trial_id}/forms/{form_id}/codebook",
    operation_id = "getCodebook",
    tag = "exports",
    summary = "Describe a form's export columns",
    description = "Every item of every published version with its type, labels in both languages, answer \
        codes and ordinal values, so that an export can be read without the form file. Needs `export` for the trial (data managers).",
    params(
        ("trial_id" = String, Path, description = "The trial's id, such as `demo`."),
        ("form_id" = String, Path, description = "The form's id within the trial, such as `phq9`."),
        CodebookParams,
    ),
    responses(
        (status = 200, description = "The codebook.",
            content((Object = "application/json"), (String = "text/csv"))),
        ExportErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn codebook(
    State(state): State<AppState>,
    principal: Principal,
    Path((trial_id, form_id)): Path<(String, String)>,
    params: RawParams,
) -> Result<Response, ApiError> {
    auth::require_known_trial(&state, &principal, &trial_id)?;
    auth::require_in(&state, &principal, Permission::Export, Scope::Trial(&trial_id))?;
    let params = read_params(params, CODEBOOK_PARAMETERS)?;
    let format = match value(&params, "format") {
        None => CodebookFormat::Json,
        Some(text) => text.parse().map_err(|()| {
            let problem = EnvelopeProblem::InvalidOption { allowed: CodebookFormat::NAMES };
            ApiError::InvalidEnvelope(vec![FieldError::query_option("format", problem)])
        })?,
    };
    let layout = find_layout(&state, &trial_id, &form_id)?;

    let mut response = Body::from(epro_export::codebook(&layout, format)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    Ok(response)
}

/// Checks the query parameters' names: each known, each at most once.
fn read_params(params: RawParams, accepted: &'static [&'static str]) -> Result<Vec<(String, String)>, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        tracing::debug!(error.message = %rejection.body_text(), "Invalid query string");
        ApiError::InvalidEnvelope(vec![FieldError::query_parameter(accepted, None)])
    })?;
    let mut errors = Vec::new();
    for (position, (name, _)) in params.iter().enumerate() {
        if !accepted.contains(&name.as_str()) {
            errors.push(FieldError::query_option(name, EnvelopeProblem::UnknownParameter { accepted }));
        } else if params[..position].iter().any(|(earlier, _)| earlier == name) {
            errors.push(FieldError::query_option(name, EnvelopeProblem::DuplicateParameter));
        }
    }
    if errors.is_empty() { Ok(params) } else { Err(ApiError::InvalidEnvelope(errors)) }
}

fn value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// Reads the export options, collecting one finding per bad parameter.
fn export_options(state: &AppState, params: &[(String, String)], language: Language) -> Result<Options, ApiError> {
    let mut errors = Vec::new();
    let mut invalid = |name: &str, allowed: &'static [&'static str]| {
        errors.push(FieldError::query_option(name, EnvelopeProblem::InvalidOption { allowed }));
    };

    let format = match value(params, "format") {
        None => Format::Csv,
        Some(text) => text.parse().unwrap_or_else(|()| {
            invalid("format", Format::NAMES);
            Format::Csv
        }),
    };
    let header = match value(params, "header") {
        None => HeaderStyle::LinkId,
        Some(text) => text.parse().unwrap_or_else(|()| {
            invalid("header", HeaderStyle::NAMES);
            HeaderStyle::LinkId
        }),
    };
    let label_language = match value(params, "labelLanguage") {
        None => match language {
            Language::En => epro_forms::Language::En,
            Language::ZhCn => epro_forms::Language::ZhCn,
        },
        Some(text) => epro_export::parse_language(text).unwrap_or_else(|| {
            invalid("labelLanguage", epro_export::LANGUAGE_NAMES);
            epro_forms::Language::En
        }),
    };
    let bom = match value(params, "bom") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            invalid("bom", &["true", "false"]);
            false
        }
    };

    let since = match value(params, "since") {
        None => None,
        Some(text) => match text.parse::<ExportCursor>() {
            Ok(cursor) if state.store.accepts_export_cursor(&cursor) => Some(cursor),
            _ => {
                errors.push(FieldError::query_option("since", EnvelopeProblem::InvalidCursor));
                None
            }
        },
    };
    if format != Format::Csv {
        let format_name = match format {
            Format::Ndjson => "ndjson",
            _ => "fhir",
        };
        for name in ["header", "labelLanguage", "bom"] {
            if value(params, name).is_some() {
                errors.push(FieldError::query_option(name, EnvelopeProblem::CsvOnly { format: format_name }));
            }
        }
    }

    if !errors.is_empty() {
        return Err(ApiError::InvalidEnvelope(errors));
    }
    Ok(Options { format, since, header, label_language, bom })
}

/// Finds the form's layout, or the 404 that names what is missing.
fn find_layout(state: &AppState, trial_id: &str, form_id: &str) -> Result<Layout, ApiError> {
    let catalog = state.catalog();
    let trial: &Trial =
        catalog.trial(trial_id).ok_or_else(|| ApiError::UnknownTrial { trial_id: trial_id.to_owned() })?;
    Layout::new(trial, form_id)
        .ok_or_else(|| ApiError::UnknownForm { trial_id: trial_id.to_owned(), form_id: form_id.to_owned() })
}
