//! Trial management: `GET /v1/trials` and
//! `GET /v1/trials/{trialId}` read trials with their sites and form versions,
//! `POST /v1/trials` creates a trial, `POST /v1/trials/{trialId}/sites` adds a
//! site, `POST /v1/trials/{trialId}/forms` publishes a form version and
//! `POST .../versions/{version}/retire` retires one.
//!
//! A published version is immutable and its id and version are never reused.
//! Publishing runs every check that `epro forms check` runs and rejects a
//! document with errors. A retired version takes no new submissions, but its
//! submissions, exports and codebook stay readable. Each write reloads this
//! instance's catalogue before it replies; other instances reload within their
//! poll interval.
//!
//! Reading a trial needs a staff role in it (admins read every trial);
//! creating trials and sites and publishing and retiring forms need
//! `manage_trials` (admin). Changes record the staff member as actor.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use epro_store::{
    FormRetirement, FormSourceFormat, FormVersion, NewFormVersion, NewSite, NewTrial, PublishOutcome, RetireOutcome,
    SiteAddition, SiteOutcome, StoredSite, StoredTrial, TrialOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal, Scope};
use crate::body::{self, SEED_MEDIA_TYPES};
use crate::catalog::check_form;
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::openapi::errors::{self, Layers};
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// Media types of a form document to publish.
const FORM_MEDIA_TYPES: &[&str] = &["application/fhir+json", "application/json", "application/toml"];

/// The query parameters of the publish endpoint, as named in error messages.
const PUBLISH_PARAMETERS: &[&str] = &["formId", "version", "inheritRules"];

/// Maximum length of a title, a site name or a retirement reason, in characters.
const MAX_TEXT_CHARS: usize = 500;

/// Default alert deadline of a trial created without one: the trial file's default.
const DEFAULT_ACKNOWLEDGE_WITHIN_SECONDS: i64 = 3600;

/// Maximum alert deadline: one year, as in a trial file.
const MAX_ACKNOWLEDGE_WITHIN_SECONDS: i64 = 365 * 24 * 60 * 60;

/// A trial with its sites and every version of its forms.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Trial)]
pub(crate) struct TrialBody {
    trial_id: String,
    title: TitleBody,
    /// Seconds site staff have to acknowledge an alert before it escalates.
    acknowledge_within_seconds: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    created_by: String,
    sites: Vec<SiteBody>,
    /// Forms in the order of their first publication.
    forms: Vec<FormBody>,
}

/// Text in both languages.
#[derive(Serialize, ToSchema)]
#[schema(as = LocalizedText)]
pub(crate) struct TitleBody {
    en: String,
    #[serde(rename = "zh-CN")]
    zh_cn: String,
}

/// A site of a trial.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Site)]
pub(crate) struct SiteBody {
    site_id: String,
    /// The name in English, or the only name.
    name: String,
    /// The name in Simplified Chinese, when the site has one of its own.
    name_zh_cn: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    added_at: OffsetDateTime,
    added_by: String,
}

/// One form of a trial with its versions.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrialForm)]
pub(crate) struct FormBody {
    form_id: String,
    /// Versions in publication order.
    versions: Vec<FormVersionBody>,
}

/// One published version of a form.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FormVersion)]
pub(crate) struct FormVersionBody {
    trial_id: String,
    form_id: String,
    version: String,
    /// `fhir-json` or `native-toml`.
    #[schema(schema_with = format_schema)]
    format: &'static str,
    /// SHA-256 of the document as published, in hex.
    source_sha256: String,
    /// `active`, or `retired` once it takes no new submissions.
    #[schema(schema_with = status_schema)]
    status: &'static str,
    /// True for the version a submission without a version gets: the newest
    /// active one.
    current: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    published_at: OffsetDateTime,
    published_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    retired_at: Option<OffsetDateTime>,
    #[schema(required = true)]
    retired_by: Option<String>,
    #[schema(required = true)]
    retire_reason: Option<String>,
}

fn format_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["fhir-json", "native-toml"])
}

fn status_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["active", "retired"])
}

/// Every trial.
#[derive(Serialize, ToSchema)]
#[schema(as = TrialList)]
pub(crate) struct TrialListBody {
    trials: Vec<TrialBody>,
}

/// The body of a trial creation, for the OpenAPI document; the handler reads
/// it field by field to name each problem.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NewTrial)]
#[allow(dead_code)]
pub(crate) struct NewTrialRequest {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`.
    trial_id: String,
    title: TitleBody,
    /// Seconds site staff have to acknowledge an alert, 1 to 31536000 (a
    /// year); 3600 when absent.
    acknowledge_within_seconds: Option<i64>,
    /// The first sites; more can be added later.
    sites: Option<Vec<NewSiteRequest>>,
}

/// A site to add.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NewSite)]
#[allow(dead_code)]
pub(crate) struct NewSiteRequest {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`.
    site_id: String,
    /// 1 to 500 characters.
    name: String,
}

/// The body of a retirement, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(as = FormRetirement)]
#[allow(dead_code)]
pub(crate) struct RetireRequest {
    /// The reason for the retirement, 1 to 500 characters, kept in the audit trail.
    reason: String,
}

/// The query parameters of the publish endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PublishParams {
    /// The form's id within the trial, 1 to 64 of `A-Z a-z 0-9 . _ -`.
    form_id: Option<String>,
    /// The version to publish, never published before for this form (or
    /// published with exactly this content).
    version: Option<String>,
    /// `true` (the default) gives the new version the trial's scores, alerts and
    /// Chinese messages of the form's latest version, checked against the new
    /// document; `false` publishes it without them.
    inherit_rules: Option<bool>,
}

/// The errors of [`list`].
pub(crate) struct ListErrors;

impl IntoResponses for ListErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        errors::responses(ErrorShape::Standard, Layers::Limited, vec![ApiError::Unauthorized, ApiError::Unavailable])
    }
}

/// The errors of [`get`].
pub(crate) struct GetErrors;

impl IntoResponses for GetErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![ApiError::Unauthorized, errors::unknown_trial(), ApiError::Unavailable];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`create`].
pub(crate) struct CreateErrors;

impl IntoResponses for CreateErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors = vec![ApiError::Unauthorized];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidFields(vec![FieldError::envelope("trialId", EnvelopeProblem::InvalidId)]),
            errors::trial_conflict(),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`add_site`].
pub(crate) struct AddSiteErrors;

impl IntoResponses for AddSiteErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors = vec![ApiError::Unauthorized];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidFields(vec![FieldError::envelope("name", EnvelopeProblem::Missing)]),
            errors::unknown_trial(),
            errors::site_conflict(),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`publish`].
pub(crate) struct PublishErrors;

impl IntoResponses for PublishErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::InvalidEnvelope(vec![FieldError::query_value("version", EnvelopeProblem::Missing)]),
            ApiError::UnsupportedMediaType { accepted: FORM_MEDIA_TYPES },
            ApiError::PayloadTooLarge { max_bytes: 1_048_576 },
            ApiError::IncompleteBody,
            ApiError::InvalidCompressedBody,
            errors::invalid_form(),
            errors::unknown_trial(),
            errors::form_version_conflict(),
            ApiError::Overloaded { limit: crate::admission::Limit::StoreQueue },
            ApiError::ShuttingDown,
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`retire`].
pub(crate) struct RetireErrors;

impl IntoResponses for RetireErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors = vec![ApiError::Unauthorized];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidFields(vec![FieldError::envelope("reason", EnvelopeProblem::Blank)]),
            errors::unknown_trial(),
            ApiError::UnknownForm { trial_id: "demo".to_owned(), form_id: "phq8".to_owned() },
            ApiError::UnknownVersion { form_id: "phq9".to_owned(), version: "7".to_owned() },
            errors::form_version_already_retired(),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Lists every trial with its sites and form versions.
#[utoipa::path(
    get,
    path = "/v1/trials",
    operation_id = "listTrials",
    tag = "trials",
    summary = "List trials",
    description = "Every trial, in id order, with its sites and every version of its forms and their status. \
        Staff see the trials they hold a role in; admins see every trial.",
    responses(
        (status = 200, description = "Every trial.", body = TrialListBody),
        ListErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<TrialListBody>, ApiError> {
    if !matches!(principal, Principal::Staff(_)) {
        return Err(if principal == Principal::Anonymous {
            ApiError::Unauthorized
        } else {
            ApiError::Forbidden { permission: Permission::ViewTrials }
        });
    }
    let snapshot = read_snapshot(&state).await?;
    let trials = snapshot
        .trials
        .iter()
        .filter(|trial| auth::require(&principal, Permission::ViewTrials, Scope::Trial(&trial.trial_id)).is_ok())
        .map(|trial| trial_body(trial, &snapshot.forms))
        .collect();
    Ok(Json(TrialListBody { trials }))
}

/// Reads one trial with its sites and form versions.
#[utoipa::path(
    get,
    path = "/v1/trials/{trial_id}",
    operation_id = "getTrial",
    tag = "trials",
    summary = "Read a trial",
    description = "The trial with its sites and every version of its forms and their status. Needs a \
        staff role in the trial (admins read every trial).",
    params(("trial_id" = String, Path, description = "The trial's id.")),
    responses(
        (status = 200, description = "The trial.", body = TrialBody),
        GetErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(trial_id): Path<String>,
) -> Result<Json<TrialBody>, ApiError> {
    auth::require_known_trial(&state, &principal, &trial_id)?;
    auth::require_in(&state, &principal, Permission::ViewTrials, Scope::Trial(&trial_id))?;
    let snapshot = read_snapshot(&state).await?;
    let trial =
        snapshot.trials.iter().find(|trial| trial.trial_id == trial_id).ok_or(ApiError::UnknownTrial { trial_id })?;
    Ok(Json(trial_body(trial, &snapshot.forms)))
}

/// Creates a trial with its first sites.
#[utoipa::path(
    post,
    path = "/v1/trials",
    operation_id = "createTrial",
    tag = "trials",
    summary = "Create a trial",
    description = "Creates the trial and its sites, each with an audit row. Sending the same trial again is \
        safe: 200 with the stored trial. Needs `manage_trials` (admin).",
    request_body(content((NewTrialRequest = "application/json"))),
    responses(
        (status = 201, description = "The new trial.", body = TrialBody),
        (status = 200, description = "The trial existed with this title, deadline and sites; nothing changed.",
            body = TrialBody),
        CreateErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageTrials, Scope::System)?;
    let object = read_object(&state, &headers, request_body).await?;
    let trial = parse_new_trial(&object, principal.actor(), request_id(&headers))?;

    let outcome =
        state.store.create_trial(trial).await.map_err(|error| ApiError::from_store(error, "failed to create trial"))?;
    let (status, stored) = match outcome {
        TrialOutcome::Created(stored) => {
            tracing::info!(trial_id = %stored.trial_id, "Trial created");
            reload_catalog(&state).await;
            (StatusCode::CREATED, stored)
        }
        TrialOutcome::Unchanged(stored) => (StatusCode::OK, stored),
        TrialOutcome::Conflict(stored) => return Err(ApiError::TrialConflict { trial_id: stored.trial_id }),
    };
    let snapshot = read_snapshot(&state).await?;
    Ok((status, Json(trial_body(&stored, &snapshot.forms))).into_response())
}

/// Adds a site to a trial.
#[utoipa::path(
    post,
    path = "/v1/trials/{trial_id}/sites",
    operation_id = "addSite",
    tag = "trials",
    summary = "Add a site",
    description = "Adds a site to the trial with an audit row. Sending the same site again is safe: 200 with \
        the stored site. Needs `manage_trials` (admin).",
    params(("trial_id" = String, Path, description = "The trial's id.")),
    request_body(content((NewSiteRequest = "application/json"))),
    responses(
        (status = 201, description = "The new site.", body = SiteBody),
        (status = 200, description = "The trial had this site with this name; nothing changed.", body = SiteBody),
        AddSiteErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn add_site(
    State(state): State<AppState>,
    principal: Principal,
    Path(trial_id): Path<String>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageTrials, Scope::System)?;
    let object = read_object(&state, &headers, request_body).await?;
    let mut fields = Fields::new(&object, &["siteId", "name"], "");
    let site = fields.site();
    let site = fields.finish(site)?;

    let addition =
        SiteAddition { trial_id: trial_id.clone(), site, actor: principal.actor(), request_id: request_id(&headers) };
    let outcome =
        state.store.add_site(addition).await.map_err(|error| ApiError::from_store(error, "failed to add site"))?;
    match outcome {
        SiteOutcome::Added(site) => {
            tracing::info!(trial_id = %trial_id, site_id = %site.site_id, "Site added");
            reload_catalog(&state).await;
            Ok((StatusCode::CREATED, Json(site_body(&site))).into_response())
        }
        SiteOutcome::Unchanged(site) => Ok((StatusCode::OK, Json(site_body(&site))).into_response()),
        SiteOutcome::Conflict(site) => Err(ApiError::SiteConflict { site_id: site.site_id }),
        SiteOutcome::UnknownTrial => Err(ApiError::UnknownTrial { trial_id }),
    }
}

/// Publishes a form version into a trial.
#[utoipa::path(
    post,
    path = "/v1/trials/{trial_id}/forms",
    operation_id = "publishForm",
    tag = "trials",
    summary = "Publish a form version",
    description = "The body is the form document: a FHIR R4 Questionnaire (`application/fhir+json` or \
        `application/json`) or the native TOML format (`application/toml`). It is loaded with every check of \
        `epro forms check` and published only without errors, byte for byte. A form id and version are never \
        reused: the same document again is 200 with the stored version, another one 409. The version takes \
        submissions on this instance at once, on other instances within a few seconds. The new version keeps \
        the scores, alerts and Chinese messages of the form's latest version unless `inheritRules=false`; \
        rules that do not fit the new document are 422 `form_invalid`. Needs `manage_trials` (admin).",
    params(("trial_id" = String, Path, description = "The trial's id."), PublishParams),
    request_body(
        description = "The form document, byte for byte as it is to be kept.",
        content(
            (String = "application/fhir+json"),
            (String = "application/toml"),
        ),
    ),
    responses(
        (status = 201, description = "The new version.", body = FormVersionBody),
        (status = 200, description = "This version was published with exactly this document; nothing changed.",
            body = FormVersionBody),
        PublishErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    Path(trial_id): Path<String>,
    params: Result<Query<PublishParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageTrials, Scope::System)?;
    let Query(params) = params.map_err(|rejection| {
        tracing::debug!(error.message = %rejection.body_text(), "Invalid query parameters");
        ApiError::InvalidEnvelope(vec![FieldError::query_parameter(PUBLISH_PARAMETERS, None)])
    })?;
    let inherit_rules = params.inherit_rules.unwrap_or(true);
    let (form_id, version) = publish_target(params)?;
    let format = form_media_type(&headers)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    let source = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::InvalidForm(vec![FieldError::form_notice(&epro_forms::Notice {
            path: String::new(),
            line: None,
            column: None,
            message: "the document is not UTF-8 text".to_owned(),
        })])
    })?;

    // A new version keeps the form's alert rules unless the caller says otherwise:
    // a PHQ-9 version published without its item 9 alert would silently stop
    // alerting site staff.
    let rules = if inherit_rules {
        let snapshot = read_snapshot(&state).await?;
        snapshot
            .forms
            .iter()
            .filter(|stored| stored.trial_id == trial_id && stored.form_id == form_id)
            .max_by_key(|stored| stored.seq)
            .map_or_else(|| "{}".to_owned(), |latest| latest.rules.clone())
    } else {
        "{}".to_owned()
    };
    if let Err(notices) = check_form(format, &source, &rules) {
        return Err(ApiError::InvalidForm(notices.iter().map(FieldError::form_notice).collect()));
    }
    let form = NewFormVersion {
        trial_id: trial_id.clone(),
        form_id,
        version,
        format,
        source,
        rules,
        actor: principal.actor(),
        request_id: request_id(&headers),
    };
    let outcome =
        state.store.publish_form(form).await.map_err(|error| ApiError::from_store(error, "failed to publish form"))?;
    let (status, stored) = match outcome {
        PublishOutcome::Published(stored) => {
            tracing::info!(
                trial_id = %stored.trial_id,
                form_id = %stored.form_id,
                version = %stored.version,
                "Form version published"
            );
            reload_catalog(&state).await;
            (StatusCode::CREATED, stored)
        }
        PublishOutcome::Unchanged(stored) => (StatusCode::OK, stored),
        PublishOutcome::Conflict(stored) => {
            return Err(ApiError::FormVersionConflict { form_id: stored.form_id, version: stored.version });
        }
        PublishOutcome::UnknownTrial => return Err(ApiError::UnknownTrial { trial_id }),
    };
    let body = version_body(&state, &stored).await?;
    Ok((status, Json(body)).into_response())
}

/// Retires a form version.
#[utoipa::path(
    post,
    path = "/v1/trials/{trial_id}/forms/{form_id}/versions/{version}/retire",
    operation_id = "retireFormVersion",
    tag = "trials",
    summary = "Retire a form version",
    description = "The version takes no new submissions; its submissions, exports and codebook stay readable. \
        A device that still sends this version while a newer one is active has its submission stored with a \
        `stale_form_version` data query; once no version of the form is active, such submissions get 409 \
        `form_version_retired`. A retirement is final and recorded with its reason in the audit trail. Needs \
        `manage_trials` (admin).",
    params(
        ("trial_id" = String, Path, description = "The trial's id."),
        ("form_id" = String, Path, description = "The form's id."),
        ("version" = String, Path, description = "The version to retire."),
    ),
    request_body(content((RetireRequest = "application/json"))),
    responses(
        (status = 200, description = "The retired version.", body = FormVersionBody),
        RetireErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn retire(
    State(state): State<AppState>,
    principal: Principal,
    Path((trial_id, form_id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Json<FormVersionBody>, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageTrials, Scope::System)?;
    let object = read_object(&state, &headers, request_body).await?;
    let mut fields = Fields::new(&object, &["reason"], "");
    let reason = fields.text("reason");
    let reason = fields.finish(reason)?;

    let retirement = FormRetirement {
        trial_id: trial_id.clone(),
        form_id: form_id.clone(),
        version: version.clone(),
        reason,
        actor: principal.actor(),
        request_id: request_id(&headers),
    };
    let outcome = state
        .store
        .retire_form(retirement)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to retire form"))?;
    match outcome {
        RetireOutcome::Retired(stored) => {
            tracing::info!(trial_id = %trial_id, form_id = %form_id, version = %version, "Form version retired");
            reload_catalog(&state).await;
            Ok(Json(version_body(&state, &stored).await?))
        }
        RetireOutcome::AlreadyRetired(stored) => Err(ApiError::FormVersionAlreadyRetired {
            retired_at: stored.retirement.map_or(stored.published_at, |retirement| retirement.retired_at),
            form_id,
            version,
        }),
        RetireOutcome::NotFound => Err(not_found(&state, trial_id, form_id, version).await?),
    }
}

/// Names what is missing of a version that the store did not find.
async fn not_found(state: &AppState, trial_id: String, form_id: String, version: String) -> Result<ApiError, ApiError> {
    let snapshot = read_snapshot(state).await?;
    if !snapshot.trials.iter().any(|trial| trial.trial_id == trial_id) {
        return Ok(ApiError::UnknownTrial { trial_id });
    }
    let has_form = snapshot.forms.iter().any(|form| form.trial_id == trial_id && form.form_id == form_id);
    if has_form {
        Ok(ApiError::UnknownVersion { form_id, version })
    } else {
        Ok(ApiError::UnknownForm { trial_id, form_id })
    }
}

/// Reloads this instance's catalogue after a change it made, so that the change
/// takes effect before the reply. A failed reload is logged; the poll tries again.
async fn reload_catalog(state: &AppState) {
    if let Err(error) = state.live_catalog.reload(&state.store).await {
        tracing::error!(error = %format!("{error:#}"), "Failed to reload the catalogue after a change");
    }
}

async fn read_snapshot(state: &AppState) -> Result<epro_store::CatalogSnapshot, ApiError> {
    state.store.catalog_snapshot().await.map_err(|error| ApiError::from_store(error, "failed to read trials"))
}

/// Reads a JSON object body: 415 for another media type, 400 for a body that is
/// not a JSON object.
async fn read_object(
    state: &AppState,
    headers: &HeaderMap,
    request_body: Body,
) -> Result<Map<String, Value>, ApiError> {
    body::media_type(headers, SEED_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|error| body::invalid_json(&error))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::InvalidEnvelope(vec![FieldError::envelope(
            "",
            EnvelopeProblem::WrongType { expected: "object" },
        )])),
    }
}

/// Picks the document format from `Content-Type`, ignoring parameters.
fn form_media_type(headers: &HeaderMap) -> Result<FormSourceFormat, ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/fhir+json" | "application/json") => Ok(FormSourceFormat::FhirJson),
        Some("application/toml") => Ok(FormSourceFormat::NativeToml),
        _ => Err(ApiError::UnsupportedMediaType { accepted: FORM_MEDIA_TYPES }),
    }
}

/// Checks the form id and version of a publication.
fn publish_target(params: PublishParams) -> Result<(String, String), ApiError> {
    let mut errors = Vec::new();
    let mut check = |name: &str, value: Option<String>| match value {
        None => {
            errors.push(FieldError::query_value(name, EnvelopeProblem::Missing));
            None
        }
        Some(value) if !epro_forms::trial::is_valid_id(&value) => {
            errors.push(FieldError::query_value(name, EnvelopeProblem::InvalidId));
            None
        }
        Some(value) => Some(value),
    };
    let form_id = check("formId", params.form_id);
    let version = check("version", params.version);
    match (form_id, version) {
        (Some(form_id), Some(version)) => Ok((form_id, version)),
        _ => Err(ApiError::InvalidEnvelope(errors)),
    }
}

fn parse_new_trial(
    object: &Map<String, Value>,
    actor: String,
    request_id: Option<String>,
) -> Result<NewTrial, ApiError> {
    let mut fields = Fields::new(object, &["trialId", "title", "acknowledgeWithinSeconds", "sites"], "");
    let trial_id = fields.id("trialId");
    let title = fields.localized("title");
    let deadline = fields.deadline("acknowledgeWithinSeconds");
    let sites = fields.sites("sites");
    let parsed = match (trial_id, title, deadline, sites) {
        (Some(trial_id), Some((title_en, title_zh_cn)), Some(deadline), Some(sites)) => {
            Some((trial_id, title_en, title_zh_cn, deadline, sites))
        }
        _ => None,
    };
    let (trial_id, title_en, title_zh_cn, acknowledge_within_seconds, sites) = fields.finish(parsed)?;
    Ok(NewTrial { trial_id, title_en, title_zh_cn, acknowledge_within_seconds, sites, actor, request_id })
}

/// Reads the fields of a JSON object one by one and collects a finding for each
/// missing, mistyped, blank, too long, invalid or unknown one.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// The dotted path of the object in the body, such as `sites.0`, or empty for the
    /// body itself.
    base: String,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn new(object: &'a Map<String, Value>, known: &[&str], base: &str) -> Self {
        let mut fields = Fields { object, base: base.to_owned(), errors: Vec::new() };
        for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
            let field = fields.name(name);
            fields.errors.push(FieldError::envelope(&field, EnvelopeProblem::UnknownField));
        }
        fields
    }

    /// Returns the dotted name of `name` in the body.
    fn name(&self, name: &str) -> String {
        if self.base.is_empty() { name.to_owned() } else { format!("{}.{name}", self.base) }
    }

    fn fail(&mut self, name: &str, problem: EnvelopeProblem) {
        let field = self.name(name);
        self.errors.push(FieldError::envelope(&field, problem));
    }

    /// Reads a required string of 1 to [`MAX_TEXT_CHARS`] characters, trimmed.
    fn text(&mut self, name: &str) -> Option<String> {
        match self.object.get(name) {
            None | Some(Value::Null) => self.fail(name, EnvelopeProblem::Missing),
            Some(Value::String(text)) if text.trim().is_empty() => self.fail(name, EnvelopeProblem::Blank),
            Some(Value::String(text)) if text.trim().chars().count() > MAX_TEXT_CHARS => {
                self.fail(name, EnvelopeProblem::TooLong { max_length: MAX_TEXT_CHARS });
            }
            Some(Value::String(text)) => return Some(text.trim().to_owned()),
            Some(_) => self.fail(name, EnvelopeProblem::WrongType { expected: "string" }),
        }
        None
    }

    /// Reads a required id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    fn id(&mut self, name: &str) -> Option<String> {
        let id = match self.object.get(name) {
            Some(Value::String(id)) => id.clone(),
            None | Some(Value::Null) => {
                self.fail(name, EnvelopeProblem::Missing);
                return None;
            }
            Some(_) => {
                self.fail(name, EnvelopeProblem::WrongType { expected: "string" });
                return None;
            }
        };
        if epro_forms::trial::is_valid_id(&id) {
            Some(id)
        } else {
            self.fail(name, EnvelopeProblem::InvalidId);
            None
        }
    }

    /// Reads a required `{"en": ..., "zh-CN": ...}` object.
    fn localized(&mut self, name: &str) -> Option<(String, String)> {
        let object = match self.object.get(name) {
            Some(Value::Object(object)) => object,
            None | Some(Value::Null) => {
                self.fail(name, EnvelopeProblem::Missing);
                return None;
            }
            Some(_) => {
                self.fail(name, EnvelopeProblem::WrongType { expected: "object" });
                return None;
            }
        };
        let mut inner = Fields::new(object, &["en", "zh-CN"], &self.name(name));
        let en = inner.text("en");
        let zh_cn = inner.text("zh-CN");
        self.errors.append(&mut inner.errors);
        Some((en?, zh_cn?))
    }

    /// Reads the optional alert deadline in seconds, 1 up to a year.
    fn deadline(&mut self, name: &str) -> Option<i64> {
        match self.object.get(name) {
            None | Some(Value::Null) => Some(DEFAULT_ACKNOWLEDGE_WITHIN_SECONDS),
            Some(value) => match value.as_i64() {
                Some(seconds) if (1..=MAX_ACKNOWLEDGE_WITHIN_SECONDS).contains(&seconds) => Some(seconds),
                _ => {
                    self.fail(name, EnvelopeProblem::WrongType { expected: "integer from 1 to 31536000" });
                    None
                }
            },
        }
    }

    /// Reads the optional list of sites.
    fn sites(&mut self, name: &str) -> Option<Vec<NewSite>> {
        let list = match self.object.get(name) {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => {
                self.fail(name, EnvelopeProblem::WrongType { expected: "array" });
                return None;
            }
        };
        let mut sites = Vec::new();
        let mut valid = true;
        for (position, entry) in list.iter().enumerate() {
            let entry_name = format!("{name}.{position}");
            let Some(object) = entry.as_object() else {
                self.fail(&entry_name, EnvelopeProblem::WrongType { expected: "object" });
                valid = false;
                continue;
            };
            let mut inner = Fields::new(object, &["siteId", "name"], &self.name(&entry_name));
            let site = inner.site();
            valid &= site.is_some();
            self.errors.append(&mut inner.errors);
            sites.extend(site);
        }
        valid.then_some(sites)
    }

    /// Reads `siteId` and `name` of a site object. `name` is one string, or
    /// `{"en": ..., "zh-CN": ...}` like a trial's title.
    fn site(&mut self) -> Option<NewSite> {
        let site_id = self.id("siteId");
        let (name, name_zh_cn) = match self.object.get("name") {
            Some(Value::Object(_)) => {
                let (en, zh_cn) = self.localized("name")?;
                (Some(en), Some(zh_cn))
            }
            _ => (self.text("name"), None),
        };
        Some(NewSite { site_id: site_id?, name: name?, name_zh_cn })
    }

    /// Returns `value` when no field had a problem, or 422 with every finding.
    fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(ApiError::InvalidFields(self.errors)),
        }
    }
}

fn trial_body(trial: &StoredTrial, forms: &[FormVersion]) -> TrialBody {
    let versions: Vec<&FormVersion> = forms.iter().filter(|form| form.trial_id == trial.trial_id).collect();
    let mut bodies: Vec<FormBody> = Vec::new();
    for version in &versions {
        let body = form_version_body(version, &versions);
        match bodies.iter_mut().find(|form| form.form_id == version.form_id) {
            Some(form) => form.versions.push(body),
            None => bodies.push(FormBody { form_id: version.form_id.clone(), versions: vec![body] }),
        }
    }
    TrialBody {
        trial_id: trial.trial_id.clone(),
        title: TitleBody { en: trial.title_en.clone(), zh_cn: trial.title_zh_cn.clone() },
        acknowledge_within_seconds: trial.acknowledge_within_seconds,
        created_at: trial.created_at,
        created_by: trial.created_by.clone(),
        sites: trial.sites.iter().map(site_body).collect(),
        forms: bodies,
    }
}

fn site_body(site: &StoredSite) -> SiteBody {
    SiteBody {
        site_id: site.site_id.clone(),
        name: site.name.clone(),
        name_zh_cn: site.name_zh_cn.clone(),
        added_at: site.added_at,
        added_by: site.added_by.clone(),
    }
}

/// Shapes one version; `siblings` are every version of its trial, which decide
/// whether it is current.
fn form_version_body(version: &FormVersion, siblings: &[&FormVersion]) -> FormVersionBody {
    let newest_active = siblings
        .iter()
        .filter(|other| other.form_id == version.form_id && !other.is_retired())
        .map(|other| other.seq)
        .max();
    let retirement = version.retirement.as_ref();
    FormVersionBody {
        trial_id: version.trial_id.clone(),
        form_id: version.form_id.clone(),
        version: version.version.clone(),
        format: version.format.as_str(),
        source_sha256: version.source_sha256.iter().map(|byte| format!("{byte:02x}")).collect(),
        status: if version.is_retired() { "retired" } else { "active" },
        current: newest_active == Some(version.seq),
        published_at: version.published_at,
        published_by: version.published_by.clone(),
        retired_at: retirement.map(|retirement| retirement.retired_at),
        retired_by: retirement.map(|retirement| retirement.retired_by.clone()),
        retire_reason: retirement.map(|retirement| retirement.reason.clone()),
    }
}

/// Shapes one version, reading its siblings to tell whether it is current.
async fn version_body(state: &AppState, version: &FormVersion) -> Result<FormVersionBody, ApiError> {
    let snapshot = read_snapshot(state).await?;
    let siblings: Vec<&FormVersion> = snapshot.forms.iter().filter(|form| form.trial_id == version.trial_id).collect();
    Ok(form_version_body(version, &siblings))
}
