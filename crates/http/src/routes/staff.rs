//! Staff accounts: `POST /v1/staff` creates one with its roles and first token,
//! `GET /v1/staff` lists them, `POST /v1/staff/{staffId}/tokens` issues another
//! token and `DELETE /v1/staff/{staffId}/tokens` revokes every active one. All
//! four need `manage_staff` (admin). `GET /v1/me` tells any caller who the
//! server takes them for.
//!
//! A token is returned once, in the reply that creates it. The store keeps only
//! its SHA-256, so a lost token is replaced, never recovered.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use epro_store::{AccessChange, AccessOutcome, ChangeOrigin, NewToken, Role, RoleGrant, StaffMember};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal, Scope, TokenKind};
use crate::body::{self, SEED_MEDIA_TYPES};
use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::openapi::errors::{self, Layers};
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// Role names as the API takes them.
const ROLE_NAMES: &[&str] = &["admin", "data_manager", "investigator", "site_staff", "monitor"];

/// Longest token lifetime a request may ask for, in days: ten years.
pub(crate) const MAX_TOKEN_DAYS: i64 = 3650;

/// A token as shown once to its holder.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IssuedToken {
    /// The token itself. Shown only in this reply; store it now.
    token: String,
    /// The token's public id, as audit rows name it.
    token_id: String,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// One role of a staff member.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GrantBody {
    /// `admin`, `data_manager`, `investigator`, `site_staff` or `monitor`.
    role: &'static str,
    trial_id: Option<String>,
    site_id: Option<String>,
}

/// A staff account.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StaffBody {
    staff_id: String,
    display_name: String,
    roles: Vec<GrantBody>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    created_by: String,
    /// Tokens neither revoked nor expired.
    active_tokens: u32,
}

/// The reply to creating a staff account: the account and its first token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedStaff {
    staff: StaffBody,
    token: IssuedToken,
}

/// The list of staff accounts.
#[derive(Serialize, ToSchema)]
pub(crate) struct StaffList {
    staff: Vec<StaffBody>,
}

/// How many tokens a revocation revoked.
#[derive(Serialize, ToSchema)]
pub(crate) struct Revoked {
    revoked: u64,
}

/// The caller as the server sees them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeBody {
    /// `staff` or `patient`.
    kind: &'static str,
    /// The actor recorded in audit rows, such as `staff:dm-wang`.
    actor: String,
    roles: Vec<GrantBody>,
    trial_id: Option<String>,
    site_id: Option<String>,
}

/// The errors of the staff endpoints.
pub(crate) struct StaffErrors;

impl IntoResponses for StaffErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors = errors::body_errors(SEED_MEDIA_TYPES);
        errors.extend([
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: Permission::ManageStaff },
            ApiError::StaffExists { staff_id: "dm-wang".to_owned() },
            ApiError::StaffNotFound { staff_id: "dm-wang".to_owned() },
            ApiError::UnknownTrial { trial_id: "demo".to_owned() },
            ApiError::UnknownSite { trial_id: "demo".to_owned(), site_id: "site-99".to_owned() },
            ApiError::InvalidFields(vec![FieldError::envelope(
                "roles[0].role",
                EnvelopeProblem::NotOneOf { allowed: ROLE_NAMES },
            )]),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Creates a staff account with its roles and returns its first token, once.
#[utoipa::path(
    post,
    path = "/v1/staff",
    operation_id = "createStaff",
    tag = "access",
    summary = "Create a staff account",
    description = "Body: `staffId`, `displayName`, `roles` (each `{role, trialId?, siteId?}`) and optional \
        `expiresInDays` for the token (365 by default). admin takes no trial; data_manager and monitor a trial; \
        investigator and site_staff a trial and a site. The token is shown only in this reply. Needs \
        `manage_staff` (admin).",
    request_body(content((Object = "application/json"))),
    responses((status = 201, description = "The account and its token.", body = CreatedStaff), StaffErrors),
    security(("bearerToken" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<(StatusCode, Json<CreatedStaff>), ApiError> {
    auth::require_in(&state, &principal, Permission::ManageStaff, Scope::System)?;
    let fields = read_object(&state, &headers, request_body).await?;

    let mut errors = unknown_fields(&fields, &["staffId", "displayName", "roles", "expiresInDays"]);
    let staff_id = id_field(&fields, "staffId", &mut errors);
    let display_name = text_field(&fields, "displayName", &mut errors);
    let grants = grants_field(&state, &fields, &mut errors)?;
    let days = days_field(&fields, "expiresInDays", state.settings.staff_token_days, &mut errors);
    let (Some(staff_id), Some(display_name), Some(grants), Some(days), true) =
        (staff_id, display_name, grants, days, errors.is_empty())
    else {
        return Err(ApiError::InvalidFields(errors));
    };

    let (token, new_token) = issue(TokenKind::Staff, days)?;
    let change = AccessChange::CreateStaff { staff_id: staff_id.clone(), display_name, grants, token: new_token };
    match state.store.change_access(change, origin(&principal, &headers)).await {
        Ok(AccessOutcome::Done) => {}
        Ok(AccessOutcome::AlreadyExists) => return Err(ApiError::StaffExists { staff_id }),
        Ok(outcome) => return Err(anyhow::anyhow!("unexpected outcome {outcome:?} of creating staff").into()),
        Err(error) => return Err(ApiError::from_store(error, "failed to create staff account")),
    }
    tracing::info!(staff_id = %staff_id, actor = %principal.actor(), "Staff account created");

    let staff = read_member(&state, &staff_id).await?;
    Ok((StatusCode::CREATED, Json(CreatedStaff { staff, token })))
}

/// Lists every staff account with its roles.
#[utoipa::path(
    get,
    path = "/v1/staff",
    operation_id = "listStaff",
    tag = "access",
    summary = "List staff accounts",
    description = "Every account with its roles and number of active tokens; never a token. Needs \
        `manage_staff` (admin).",
    responses((status = 200, description = "The accounts, by staff id.", body = StaffList), StaffErrors),
    security(("bearerToken" = []))
)]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<StaffList>, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageStaff, Scope::System)?;
    let members = state
        .store
        .staff_members(None, OffsetDateTime::now_utc())
        .await
        .map_err(|error| ApiError::from_store(error, "failed to list staff accounts"))?;
    Ok(Json(StaffList { staff: members.into_iter().map(staff_body).collect() }))
}

/// Issues another token for a staff account.
#[utoipa::path(
    post,
    path = "/v1/staff/{staff_id}/tokens",
    operation_id = "issueStaffToken",
    tag = "access",
    summary = "Issue a staff token",
    description = "Optional body `{\"expiresInDays\": N}`. Earlier tokens keep working until revoked. Needs \
        `manage_staff` (admin).",
    params(("staff_id" = String, Path, description = "The staff member's id.")),
    responses((status = 201, description = "The new token, shown only here.", body = IssuedToken), StaffErrors),
    security(("bearerToken" = []))
)]
pub async fn issue_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(staff_id): Path<String>,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    auth::require_in(&state, &principal, Permission::ManageStaff, Scope::System)?;
    let days = optional_days(&state, &headers, request_body, state.settings.staff_token_days).await?;

    let (token, new_token) = issue(TokenKind::Staff, days)?;
    let change = AccessChange::IssueStaffToken { staff_id: staff_id.clone(), token: new_token };
    match state.store.change_access(change, origin(&principal, &headers)).await {
        Ok(AccessOutcome::Done) => Ok((StatusCode::CREATED, Json(token))),
        Ok(AccessOutcome::NotFound) => Err(ApiError::StaffNotFound { staff_id }),
        Ok(outcome) => Err(anyhow::anyhow!("unexpected outcome {outcome:?} of issuing a staff token").into()),
        Err(error) => Err(ApiError::from_store(error, "failed to issue staff token")),
    }
}

/// Revokes every active token of a staff account.
#[utoipa::path(
    delete,
    path = "/v1/staff/{staff_id}/tokens",
    operation_id = "revokeStaffTokens",
    tag = "access",
    summary = "Revoke a staff member's tokens",
    description = "Every active token stops working at once, on every instance. Needs `manage_staff` (admin).",
    params(("staff_id" = String, Path, description = "The staff member's id.")),
    responses((status = 200, description = "How many tokens were revoked.", body = Revoked), StaffErrors),
    security(("bearerToken" = []))
)]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path(staff_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Revoked>, ApiError> {
    auth::require_in(&state, &principal, Permission::ManageStaff, Scope::System)?;
    let change = AccessChange::RevokeStaffTokens { staff_id: staff_id.clone() };
    match state.store.change_access(change, origin(&principal, &headers)).await {
        Ok(AccessOutcome::Revoked(revoked)) => {
            tracing::info!(staff_id = %staff_id, revoked, actor = %principal.actor(), "Staff tokens revoked");
            Ok(Json(Revoked { revoked }))
        }
        Ok(AccessOutcome::NotFound) => Err(ApiError::StaffNotFound { staff_id }),
        Ok(outcome) => Err(anyhow::anyhow!("unexpected outcome {outcome:?} of revoking staff tokens").into()),
        Err(error) => Err(ApiError::from_store(error, "failed to revoke staff tokens")),
    }
}

/// Returns who the server takes the caller for.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "whoAmI",
    tag = "access",
    summary = "Describe the caller",
    description = "The kind of token, the actor audit rows record and, for staff, the roles; for a patient, \
        the trial and site. Any valid token.",
    responses((status = 200, description = "The caller.", body = MeBody), StaffErrors),
    security(("bearerToken" = []))
)]
pub async fn me(principal: Principal) -> Result<Json<MeBody>, ApiError> {
    let actor = principal.actor();
    match principal {
        Principal::Anonymous => Err(ApiError::Unauthorized),
        Principal::Staff(staff) => Ok(Json(MeBody {
            kind: "staff",
            actor,
            roles: staff.grants.into_iter().map(grant_body).collect(),
            trial_id: None,
            site_id: None,
        })),
        Principal::Patient(patient) => Ok(Json(MeBody {
            kind: "patient",
            actor,
            roles: Vec::new(),
            trial_id: Some(patient.trial_id),
            site_id: Some(patient.site_id),
        })),
    }
}

/// Generates a token of `kind` that expires in `days` days. Returns the reply part
/// with the token, and what the store keeps.
pub(crate) fn issue(kind: TokenKind, days: i64) -> Result<(IssuedToken, NewToken), ApiError> {
    let (token, digest) = auth::new_token(kind)?;
    let token_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let expires_at = Some(OffsetDateTime::now_utc() + time::Duration::days(days));
    let new_token = NewToken { token_id: token_id.clone(), digest, expires_at };
    Ok((IssuedToken { token, token_id, expires_at }, new_token))
}

/// Returns the audit origin of a change made by `principal` in this request.
pub(crate) fn origin(principal: &Principal, headers: &HeaderMap) -> ChangeOrigin {
    ChangeOrigin { actor: principal.actor(), request_id: request_id(headers) }
}

/// Reads a JSON object body.
pub(crate) async fn read_object(
    state: &AppState,
    headers: &HeaderMap,
    request_body: axum::body::Body,
) -> Result<Map<String, Value>, ApiError> {
    body::media_type(headers, SEED_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;
    match serde_json::from_slice(&bytes).map_err(|error| body::invalid_json(&error))? {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::InvalidEnvelope(vec![FieldError::envelope(
            "",
            EnvelopeProblem::WrongType { expected: "object" },
        )])),
    }
}

/// Reads an optional `{"expiresInDays": N}` body; an empty body takes the default.
pub(crate) async fn optional_days(
    state: &AppState,
    headers: &HeaderMap,
    request_body: axum::body::Body,
    default_days: u32,
) -> Result<i64, ApiError> {
    let has_body = headers.contains_key(axum::http::header::CONTENT_TYPE);
    if !has_body {
        return Ok(i64::from(default_days));
    }
    let fields = read_object(state, headers, request_body).await?;
    let mut errors = unknown_fields(&fields, &["expiresInDays"]);
    let days = days_field(&fields, "expiresInDays", default_days, &mut errors);
    match days {
        Some(days) if errors.is_empty() => Ok(days),
        _ => Err(ApiError::InvalidFields(errors)),
    }
}

pub(crate) fn unknown_fields(fields: &Map<String, Value>, known: &[&str]) -> Vec<FieldError> {
    fields
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .map(|name| FieldError::envelope(name, EnvelopeProblem::UnknownField))
        .collect()
}

/// Reads a required id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub(crate) fn id_field(fields: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let text = text_field(fields, name, errors)?;
    if epro_forms::trial::is_valid_id(&text) {
        Some(text)
    } else {
        errors.push(FieldError::envelope(name, EnvelopeProblem::InvalidId));
        None
    }
}

/// Reads a required, non-blank string, trimmed.
pub(crate) fn text_field(fields: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match fields.get(name) {
        Some(Value::String(text)) if text.trim().is_empty() => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::Blank));
            None
        }
        Some(Value::String(text)) if text.chars().count() > 200 => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::TooLong { max_length: 200 }));
            None
        }
        Some(Value::String(text)) => Some(text.trim().to_owned()),
        None | Some(Value::Null) => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::Missing));
            None
        }
        Some(_) => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::WrongType { expected: "string" }));
            None
        }
    }
}

/// Reads an optional token lifetime in days, or `default_days`.
pub(crate) fn days_field(
    fields: &Map<String, Value>,
    name: &str,
    default_days: u32,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    match fields.get(name) {
        None | Some(Value::Null) => Some(i64::from(default_days)),
        Some(value) => match value.as_i64() {
            Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => Some(days),
            _ => {
                errors.push(FieldError::envelope(name, EnvelopeProblem::OutOfRange { min: 1, max: MAX_TOKEN_DAYS }));
                None
            }
        },
    }
}

/// Reads `roles`: a non-empty array of `{role, trialId?, siteId?}` whose trials and
/// sites exist and fit each role.
/// Builds a finding on field `field` of entry `position` of `roles`, named
/// `roles[0].siteId` and pointing at `/roles/0/siteId`.
fn role_error(position: usize, field: Option<&str>, problem: EnvelopeProblem) -> FieldError {
    let (item, path) = match field {
        Some(field) => (format!("roles[{position}].{field}"), format!("/roles/{position}/{field}")),
        None => (format!("roles[{position}]"), format!("/roles/{position}")),
    };
    FieldError { item, path, detail: crate::error::Detail::Envelope(problem) }
}

fn grants_field(
    state: &AppState,
    fields: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Vec<RoleGrant>>, ApiError> {
    let entries = match fields.get("roles") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            errors.push(FieldError::envelope("roles", EnvelopeProblem::Missing));
            return Ok(None);
        }
        Some(_) => {
            errors.push(FieldError::envelope("roles", EnvelopeProblem::WrongType { expected: "array" }));
            return Ok(None);
        }
    };

    let before = errors.len();
    let mut grants = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            errors.push(role_error(position, None, EnvelopeProblem::WrongType { expected: "object" }));
            continue;
        };
        errors.extend(
            unknown_fields(entry, &["role", "trialId", "siteId"])
                .into_iter()
                .map(|error| role_error(position, Some(&error.item), EnvelopeProblem::UnknownField)),
        );
        let role = match entry.get("role").and_then(Value::as_str).map(str::parse::<Role>) {
            Some(Ok(role)) => role,
            _ => {
                errors.push(role_error(position, Some("role"), EnvelopeProblem::NotOneOf { allowed: ROLE_NAMES }));
                continue;
            }
        };
        let trial_id = entry.get("trialId").and_then(Value::as_str).map(str::to_owned);
        let site_id = entry.get("siteId").and_then(Value::as_str).map(str::to_owned);
        let scope = role.scope();
        let wants_trial = scope != epro_store::GrantScope::Global;
        let wants_site = scope == epro_store::GrantScope::Site;
        for (field, value, wanted) in [("trialId", &trial_id, wants_trial), ("siteId", &site_id, wants_site)] {
            if value.is_some() != wanted {
                let problem = EnvelopeProblem::RoleScope { role: role.as_str(), needed: wanted };
                errors.push(role_error(position, Some(field), problem));
            }
        }
        if let Some(trial_id) = &trial_id {
            let catalog = state.catalog();
            let Some(trial) = catalog.trial(trial_id) else {
                return Err(ApiError::UnknownTrial { trial_id: trial_id.clone() });
            };
            if let Some(site_id) = site_id.as_ref().filter(|site_id| trial.site(site_id).is_none()) {
                return Err(ApiError::UnknownSite { trial_id: trial_id.clone(), site_id: site_id.clone() });
            }
        }
        grants.push(RoleGrant { role, trial_id, site_id });
    }
    Ok((errors.len() == before).then_some(grants))
}

async fn read_member(state: &AppState, staff_id: &str) -> Result<StaffBody, ApiError> {
    let member = state
        .store
        .staff_members(Some(staff_id), OffsetDateTime::now_utc())
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read staff account"))?
        .pop()
        .ok_or_else(|| ApiError::StaffNotFound { staff_id: staff_id.to_owned() })?;
    Ok(staff_body(member))
}

fn staff_body(member: StaffMember) -> StaffBody {
    StaffBody {
        staff_id: member.staff_id,
        display_name: member.display_name,
        roles: member.grants.into_iter().map(grant_body).collect(),
        created_at: member.created_at,
        created_by: member.created_by,
        active_tokens: member.active_tokens,
    }
}

fn grant_body(grant: RoleGrant) -> GrantBody {
    GrantBody { role: grant.role.as_str(), trial_id: grant.trial_id, site_id: grant.site_id }
}
