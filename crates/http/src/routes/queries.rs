//! Data queries: `GET /v1/trials/{trialId}/queries` lists a trial's
//! queries, `POST /v1/queries/{queryId}/status` changes one's status with a
//! comment. Both need the operator token until staff roles exist.
//!
//! A query is raised when a rule of severity `query` fails or a client's
//! score disagrees with the computed one: the submission is stored, and the
//! query waits for site staff, the way EDC systems raise discrepancy notes.
//! Queries are never deleted; every status change is kept with its comment.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use epro_store::{DataQuery, QueryFilter, QueryStatus, QueryStatusChange, QueryUpdate};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::body::{self, SEED_MEDIA_TYPES};
use crate::error::{ApiError, EnvelopeProblem, FieldError};
use crate::language::Language;
use crate::messages;
use crate::routes::submissions::{authorize_operator, request_id};
use crate::state::AppState;

/// The query parameters of the list endpoint, as named in error messages.
const LIST_PARAMETERS: &[&str] = &["status", "formId", "patientId", "item", "after", "limit"];

/// Most queries returned by one list request.
const MAX_PAGE: usize = 500;

/// Filters of the list endpoint, all optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    form_id: Option<String>,
    patient_id: Option<String>,
    item: Option<String>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    limit: Option<usize>,
}

/// One data query as site staff and operators read it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryBody {
    query_id: String,
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    item: String,
    code: String,
    rule: String,
    /// The message parameters, as stored.
    params: Box<RawValue>,
    /// The query's text in the caller's language.
    message: String,
    status: &'static str,
    origin: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

#[derive(Serialize)]
pub struct ListBody {
    queries: Vec<QueryBody>,
    /// Pass as `after` to read the next page; `null` on the last page.
    next: Option<String>,
}

/// Lists a trial's data queries, oldest first, with optional filters.
pub async fn list(
    State(state): State<AppState>,
    Path(trial_id): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<ListBody>, ApiError> {
    authorize_operator(&state, &headers)?;
    let Query(params) = params.map_err(|rejection| {
        tracing::debug!(error.message = %rejection.body_text(), "Invalid query parameters");
        ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS)])
    })?;
    if state.catalog.trial(&trial_id).is_none() {
        return Err(ApiError::UnknownTrial { trial_id });
    }

    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(parse_status(text, "status")?),
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS)]));
    }
    let filter = QueryFilter {
        trial_id,
        status,
        form_id: params.form_id,
        patient_id: params.patient_id,
        item: params.item,
        after: params.after,
        limit,
    };

    let queries =
        state.store.queries(filter).await.map_err(|error| ApiError::from_store(error, "failed to list queries"))?;
    let language = Language::negotiate(&headers, state.settings.default_language);
    let next = (queries.len() == limit).then(|| queries.last().map(|query| query.query_id.clone())).flatten();
    let queries = queries.into_iter().map(|query| query_body(query, language)).collect::<Result<_, _>>()?;
    Ok(Json(ListBody { queries, next }))
}

/// The body of a status change.
#[derive(Debug)]
struct StatusChange {
    status: String,
    comment: String,
}

/// Reads `{status, comment}`, naming each missing, mistyped or unknown
/// field.
fn parse_status_change(bytes: &[u8]) -> Result<StatusChange, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| body::invalid_json(&error))?;
    let Some(fields) = value.as_object() else {
        let problem = EnvelopeProblem::WrongType { expected: "object" };
        return Err(ApiError::InvalidEnvelope(vec![FieldError::envelope("", problem)]));
    };

    let mut errors = Vec::new();
    for name in fields.keys().filter(|name| !matches!(name.as_str(), "status" | "comment")) {
        errors.push(FieldError::envelope(name, EnvelopeProblem::UnknownField));
    }
    let mut text = |name: &str| match fields.get(name) {
        Some(serde_json::Value::String(text)) => Some(text.clone()),
        None | Some(serde_json::Value::Null) => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::Missing));
            None
        }
        Some(_) => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::WrongType { expected: "string" }));
            None
        }
    };
    let status = text("status");
    let comment = text("comment");
    match (status, comment) {
        (Some(status), Some(comment)) if errors.is_empty() => Ok(StatusChange { status, comment }),
        _ => Err(ApiError::InvalidEnvelope(errors)),
    }
}

/// Changes a query's status (`open`, `answered`, `closed`) with a comment.
pub async fn change_status(
    State(state): State<AppState>,
    Path(query_id): Path<String>,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<Json<QueryBody>, ApiError> {
    authorize_operator(&state, &headers)?;
    body::media_type(&headers, SEED_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;

    let change = parse_status_change(&bytes)?;
    let status = parse_status(&change.status, "status")?;
    let comment = change.comment.trim();
    if comment.is_empty() {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::envelope("comment", EnvelopeProblem::Missing)]));
    }

    let update = QueryStatusChange {
        query_id,
        status,
        comment: comment.to_owned(),
        actor: "operator".to_owned(),
        request_id: request_id(&headers),
    };
    let language = Language::negotiate(&headers, state.settings.default_language);
    match state.store.update_query_status(update).await {
        Ok(QueryUpdate::Updated(query)) => Ok(Json(query_body(query, language)?)),
        Ok(QueryUpdate::Unchanged(query)) => Err(ApiError::QueryUnchanged { status: query.status.as_str() }),
        Ok(QueryUpdate::NotFound) => Err(ApiError::QueryNotFound),
        Err(error) => Err(ApiError::from_store(error, "failed to change query status")),
    }
}

fn parse_status(text: &str, field: &str) -> Result<QueryStatus, ApiError> {
    text.parse::<QueryStatus>()
        .map_err(|_| ApiError::InvalidEnvelope(vec![FieldError::envelope(field, EnvelopeProblem::InvalidQueryStatus)]))
}

pub(crate) fn query_body(query: DataQuery, language: Language) -> Result<QueryBody, ApiError> {
    let message = messages::query_message(language, &query.item, &query.code, &query.params);
    let params = RawValue::from_string(query.params)
        .map_err(|error| anyhow::anyhow!("stored query parameters are not JSON: {error}"))?;
    Ok(QueryBody {
        query_id: query.query_id,
        submission_id: query.submission_id,
        trial_id: query.trial_id,
        form_id: query.form_id,
        form_version: query.form_version,
        patient_id: query.patient_id,
        item: query.item,
        code: query.code,
        rule: query.rule,
        params,
        message,
        status: query.status.as_str(),
        origin: query.origin.as_str(),
        created_at: query.created_at,
        updated_at: query.updated_at,
    })
}
