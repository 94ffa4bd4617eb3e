//! Data queries: `GET /v1/trials/{trialId}/queries` lists a trial's
//! queries, `POST /v1/queries/{queryId}/status` changes one's status with a
//! comment. Listing needs `view_queries` (site roles see their own sites'
//! patients only), a status change `change_query_status` at the patient's site.
//!
//! A query is raised when a rule of severity `query` fails or a client's
//! score disagrees with the computed one: the submission is stored, and the
//! query waits for site staff, the way EDC systems raise discrepancy notes.
//! Queries are never deleted; every status change is kept with its comment.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use epro_store::{DataQuery, QueryFilter, QueryStatus, QueryStatusChange, QueryUpdate};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal, SiteAccess};
use crate::body::{self, SEED_MEDIA_TYPES};
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::language::Language;
use crate::messages;
use crate::openapi::errors::{self, Layers};
use crate::openapi::shapes;
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// The query parameters of the list endpoint, as named in error messages.
const LIST_PARAMETERS: &[&str] = &["status", "formId", "patientId", "item", "after", "limit"];

/// The fields of a status change; any other is `unknown_field`.
pub(crate) const STATUS_CHANGE_FIELDS: &[&str] = &["status", "comment"];

/// Most queries returned by one list request.
const MAX_PAGE: usize = 500;

/// Filters of the list endpoint, all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only queries with this status: `open`, `answered` or `closed`.
    #[param(pattern = "^(open|answered|closed)$")]
    status: Option<String>,
    /// Only queries on submissions of this form.
    form_id: Option<String>,
    /// Only queries on this patient's submissions.
    patient_id: Option<String>,
    /// Only queries on this item (`linkId`) or score.
    item: Option<String>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// Most queries in the reply, 1 to 500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One data query as site staff and operators read it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataQuery)]
pub struct QueryBody {
    query_id: String,
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    /// The version of the submission whose answers raised the query: 1 for the
    /// submission as received, a later number for a correction.
    version: u32,
    /// The item's `linkId` (or the score's name) the query is about.
    item: String,
    /// `rule_violated` or `score_mismatch`.
    code: String,
    /// The rule's key or the score's name.
    rule: String,
    /// The message parameters, as stored.
    #[schema(value_type = Object)]
    params: Box<RawValue>,
    /// The query's text in the caller's language.
    message: String,
    /// `open`, `answered` or `closed`.
    #[schema(schema_with = query_status_schema)]
    status: &'static str,
    /// What raised the query: validation at intake, or `epro revalidate`.
    #[schema(schema_with = query_origin_schema)]
    origin: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// A page of data queries.
#[derive(Serialize, ToSchema)]
#[schema(as = DataQueryPage)]
pub struct ListBody {
    queries: Vec<QueryBody>,
    /// Pass as `after` to read the next page; `null` on the last page.
    #[schema(required = true)]
    next: Option<String>,
}

fn query_status_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["open", "answered", "closed"])
}

fn query_origin_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["intake", "revalidation"])
}

/// The errors of [`list`].
pub(crate) struct ListErrors;

impl IntoResponses for ListErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::ViewQueries },
            ApiError::InvalidEnvelope(vec![
                FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE)),
                FieldError::envelope("status", EnvelopeProblem::InvalidQueryStatus),
            ]),
            errors::unknown_trial(),
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Lists a trial's data queries, oldest first, with optional filters.
#[utoipa::path(
    get,
    path = "/v1/trials/{trial_id}/queries",
    operation_id = "listDataQueries",
    tag = "data queries",
    summary = "List a trial's data queries",
    description = "Oldest first, with each query's message in the caller's language. Needs `view_queries`; site roles see their own sites' patients only.",
    params(("trial_id" = String, Path, description = "The trial's id."), ListParams),
    responses(
        (status = 200, description = "One page of queries; pass `next` as `after` for the next.", body = ListBody),
        ListErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(trial_id): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<ListBody>, ApiError> {
    auth::require_known_trial(&state, &principal, &trial_id)?;
    let sites = auth::site_access(&principal, Permission::ViewQueries, &trial_id)
        .inspect_err(|_| state.metrics.record_security_event("forbidden"))?;
    let Query(params) = params.map_err(|rejection| {
        tracing::debug!(error.message = %rejection.body_text(), "Invalid query parameters");
        ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE))])
    })?;
    if state.catalog().trial(&trial_id).is_none() {
        return Err(ApiError::UnknownTrial { trial_id });
    }

    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(parse_status(text, "status")?),
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE))]));
    }
    let filter = QueryFilter {
        trial_id,
        status,
        form_id: params.form_id,
        patient_id: params.patient_id,
        site_ids: match sites {
            SiteAccess::All => None,
            SiteAccess::Sites(site_ids) => Some(site_ids),
        },
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
    for name in fields.keys().filter(|name| !STATUS_CHANGE_FIELDS.contains(&name.as_str())) {
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

/// The errors of [`change_status`].
pub(crate) struct ChangeStatusErrors;

impl IntoResponses for ChangeStatusErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors =
            vec![ApiError::Unauthorized, ApiError::Forbidden { permission: crate::auth::Permission::ViewQueries }];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidEnvelope(vec![
                FieldError::envelope("status", EnvelopeProblem::InvalidQueryStatus),
                FieldError::envelope("comment", EnvelopeProblem::Missing),
            ]),
            ApiError::QueryNotFound,
            ApiError::QueryUnchanged { status: "closed" },
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Changes a query's status (`open`, `answered`, `closed`) with a comment.
#[utoipa::path(
    post,
    path = "/v1/queries/{query_id}/status",
    operation_id = "changeDataQueryStatus",
    tag = "data queries",
    summary = "Change a data query's status",
    description = "Keeps every change with its comment; queries are never deleted. Needs `change_query_status` at the patient's site.",
    params(("query_id" = String, Path, description = "The query's id from a receipt or a list.")),
    request_body(
        content((shapes::QueryStatusChange = "application/json", example = shapes::query_status_example)),
    ),
    responses(
        (status = 200, description = "The query with its new status.", body = QueryBody),
        ChangeStatusErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn change_status(
    State(state): State<AppState>,
    principal: Principal,
    Path(query_id): Path<String>,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<Json<QueryBody>, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let query = state
        .store
        .query(&query_id)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read data query"))?
        .ok_or(ApiError::QueryNotFound)?;
    auth::require_for_patient(&state, &principal, Permission::ChangeQueryStatus, &query.trial_id, &query.patient_id)
        .await?;

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
        actor: principal.actor(),
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
        version: query.version,
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
