//! Enrolment: `POST /v1/trials/{trialId}/patients` enrols a patient into one
//! of the trial's sites and returns the patient's first token, `GET` lists the
//! trial's patients, and `POST`/`DELETE .../patients/{patientId}/tokens`
//! issue another token (a new phone) or revoke every active one (a lost phone).
//!
//! A patient is known only by the pseudonymous id the site gave them. Enrolling
//! and tokens need `enrol_patients` at the patient's site; listing needs
//! `read_submissions`, and site roles see only their sites' patients.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use epro_store::{AccessChange, AccessOutcome, Enrolment, EnrolmentFilter};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::auth::{self, Permission, Principal, Scope, SiteAccess, TokenKind};
use crate::body::SEED_MEDIA_TYPES;
use crate::error::{ApiError, ErrorShape, FieldError};
use crate::openapi::errors::{self, Layers};
use crate::routes::staff::{
    IssuedToken, days_field, id_field, issue, optional_days, origin, read_object, unknown_fields,
};
use crate::state::AppState;

/// The query parameters of the list endpoint, as named in error messages.
const LIST_PARAMETERS: &[&str] = &["siteId", "after", "limit"];

/// Most patients returned by one list request.
const MAX_PAGE: usize = 1000;

/// An enrolled patient.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatientBody {
    trial_id: String,
    patient_id: String,
    site_id: String,
    #[serde(with = "time::serde::rfc3339")]
    enrolled_at: OffsetDateTime,
    enrolled_by: String,
    /// Tokens neither revoked nor expired.
    active_tokens: u32,
}

/// The reply to an enrolment: the patient and their first token.
#[derive(Serialize, ToSchema)]
pub(crate) struct EnrolledBody {
    patient: PatientBody,
    /// Shown only here. The text is ASCII and fits a QR code for the app to scan.
    token: IssuedToken,
}

/// One page of patients.
#[derive(Serialize, ToSchema)]
pub(crate) struct PatientList {
    patients: Vec<PatientBody>,
    /// Pass as `after` for the next page; `null` on the last.
    next: Option<String>,
}

/// How many tokens a revocation revoked.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevokedBody {
    revoked: u64,
}

/// The query parameters of the list endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListParams {
    /// Only this site's patients.
    site_id: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Page size, 1 to 1000; 100 by default.
    limit: Option<usize>,
}

/// The errors of the enrolment endpoints.
pub(crate) struct PatientErrors;

impl IntoResponses for PatientErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors = errors::body_errors(SEED_MEDIA_TYPES);
        errors.extend([
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: Permission::EnrolPatients },
            ApiError::UnknownTrial { trial_id: "demo".to_owned() },
            ApiError::UnknownSite { trial_id: "demo".to_owned(), site_id: "site-99".to_owned() },
            ApiError::PatientAlreadyEnrolled { patient_id: "P-0042".to_owned() },
            ApiError::PatientNotEnrolled { patient_id: "P-0042".to_owned() },
            ApiError::InvalidFields(vec![FieldError::envelope("siteId", crate::error::EnvelopeProblem::Missing)]),
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Enrols a patient into a site of the trial and returns their first token, once.
#[utoipa::path(
    post,
    path = "/v1/trials/{trial_id}/patients",
    operation_id = "enrolPatient",
    tag = "access",
    summary = "Enrol a patient",
    description = "Body: `patientId` (the site's pseudonym, never a name), `siteId` (a site of the trial file) \
        and optional `expiresInDays` for the token (`auth.patient_token_days` by default). Needs \
        `enrol_patients` at that site.",
    params(("trial_id" = String, Path, description = "The trial's id.")),
    request_body(content((Object = "application/json"))),
    responses((status = 201, description = "The patient and their token.", body = EnrolledBody), PatientErrors),
    security(("bearerToken" = []))
)]
pub async fn enrol(
    State(state): State<AppState>,
    principal: Principal,
    Path(trial_id): Path<String>,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<(StatusCode, Json<EnrolledBody>), ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let fields = read_object(&state, &headers, request_body).await?;
    let mut errors = unknown_fields(&fields, &["patientId", "siteId", "expiresInDays"]);
    let patient_id = id_field(&fields, "patientId", &mut errors);
    let site_id = id_field(&fields, "siteId", &mut errors);
    let days = days_field(&fields, "expiresInDays", state.settings.patient_token_days, &mut errors);
    let (Some(patient_id), Some(site_id), Some(days), true) = (patient_id, site_id, days, errors.is_empty()) else {
        return Err(ApiError::InvalidFields(errors));
    };

    auth::require_in(
        &state,
        &principal,
        Permission::EnrolPatients,
        Scope::Site { trial_id: &trial_id, site_id: &site_id },
    )?;
    let catalog = state.catalog();
    let trial = catalog.trial(&trial_id).ok_or_else(|| ApiError::UnknownTrial { trial_id: trial_id.clone() })?;
    if trial.site(&site_id).is_none() {
        return Err(ApiError::UnknownSite { trial_id, site_id });
    }

    let (token, new_token) = issue(TokenKind::Patient, days)?;
    let change = AccessChange::EnrolPatient {
        trial_id: trial_id.clone(),
        patient_id: patient_id.clone(),
        site_id,
        token: new_token,
    };
    match state.store.change_access(change, origin(&principal, &headers)).await {
        Ok(AccessOutcome::Done) => {}
        Ok(AccessOutcome::AlreadyExists) => return Err(ApiError::PatientAlreadyEnrolled { patient_id }),
        Ok(outcome) => return Err(anyhow::anyhow!("unexpected outcome {outcome:?} of an enrolment").into()),
        Err(error) => return Err(ApiError::from_store(error, "failed to enrol patient")),
    }
    tracing::info!(trial_id = %trial_id, actor = %principal.actor(), "Patient enrolled");

    let patient = read_enrolment(&state, &trial_id, &patient_id).await?;
    Ok((StatusCode::CREATED, Json(EnrolledBody { patient, token })))
}

/// Lists the trial's enrolled patients.
#[utoipa::path(
    get,
    path = "/v1/trials/{trial_id}/patients",
    operation_id = "listPatients",
    tag = "access",
    summary = "List enrolled patients",
    description = "In patient id order; never a token. Needs `read_submissions`; site roles see their own \
        sites' patients only.",
    params(("trial_id" = String, Path, description = "The trial's id."), ListParams),
    responses((status = 200, description = "One page of patients.", body = PatientList), PatientErrors),
    security(("bearerToken" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(trial_id): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PatientList>, ApiError> {
    auth::require_known_trial(&state, &principal, &trial_id)?;
    let sites = auth::site_access(&principal, Permission::ReadSubmissions, &trial_id)
        .inspect_err(|_| state.metrics.record_security_event("forbidden"))?;
    let Query(params) = params
        .map_err(|_| ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE))]))?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE))]));
    }
    if state.catalog().trial(&trial_id).is_none() {
        return Err(ApiError::UnknownTrial { trial_id });
    }

    // A site-bound caller asking for another site, or for none, sees only their own.
    let site_filter = match (&sites, params.site_id) {
        (SiteAccess::All, requested) => vec![requested],
        (SiteAccess::Sites(allowed), Some(requested)) if allowed.contains(&requested) => vec![Some(requested)],
        (SiteAccess::Sites(_), Some(_)) => {
            return Err(ApiError::Forbidden { permission: Permission::ReadSubmissions });
        }
        (SiteAccess::Sites(allowed), None) => allowed.iter().cloned().map(Some).collect(),
    };
    let mut patients = Vec::new();
    for site_id in site_filter {
        let filter = EnrolmentFilter {
            trial_id: trial_id.clone(),
            site_id,
            patient_id: None,
            after: params.after.clone(),
            limit,
        };
        let page = state
            .store
            .enrolments(filter, OffsetDateTime::now_utc())
            .await
            .map_err(|error| ApiError::from_store(error, "failed to list patients"))?;
        patients.extend(page);
    }
    patients.sort_by(|left, right| left.patient_id.cmp(&right.patient_id));
    patients.truncate(limit);

    let next = (patients.len() == limit).then(|| patients.last().map(|patient| patient.patient_id.clone())).flatten();
    Ok(Json(PatientList { patients: patients.into_iter().map(patient_body).collect(), next }))
}

/// Issues another token for an enrolled patient.
#[utoipa::path(
    post,
    path = "/v1/trials/{trial_id}/patients/{patient_id}/tokens",
    operation_id = "issuePatientToken",
    tag = "access",
    summary = "Issue a patient token",
    description = "Optional body `{\"expiresInDays\": N}`. Earlier tokens keep working until revoked. Needs \
        `enrol_patients` at the patient's site.",
    params(
        ("trial_id" = String, Path, description = "The trial's id."),
        ("patient_id" = String, Path, description = "The patient's id."),
    ),
    responses((status = 201, description = "The new token, shown only here.", body = IssuedToken), PatientErrors),
    security(("bearerToken" = []))
)]
pub async fn issue_token(
    State(state): State<AppState>,
    principal: Principal,
    Path((trial_id, patient_id)): Path<(String, String)>,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    require_enrolled(&state, &principal, &trial_id, &patient_id).await?;
    let days = optional_days(&state, &headers, request_body, state.settings.patient_token_days).await?;

    let (token, new_token) = issue(TokenKind::Patient, days)?;
    let change = AccessChange::IssuePatientToken { trial_id, patient_id: patient_id.clone(), token: new_token };
    match state.store.change_access(change, origin(&principal, &headers)).await {
        Ok(AccessOutcome::Done) => Ok((StatusCode::CREATED, Json(token))),
        Ok(AccessOutcome::NotFound) => Err(ApiError::PatientNotEnrolled { patient_id }),
        Ok(outcome) => Err(anyhow::anyhow!("unexpected outcome {outcome:?} of issuing a patient token").into()),
        Err(error) => Err(ApiError::from_store(error, "failed to issue patient token")),
    }
}

/// Revokes every active token of an enrolled patient.
#[utoipa::path(
    delete,
    path = "/v1/trials/{trial_id}/patients/{patient_id}/tokens",
    operation_id = "revokePatientTokens",
    tag = "access",
    summary = "Revoke a patient's tokens",
    description = "Every active token of the patient stops working at once, on every instance. Needs \
        `enrol_patients` at the patient's site.",
    params(
        ("trial_id" = String, Path, description = "The trial's id."),
        ("patient_id" = String, Path, description = "The patient's id."),
    ),
    responses((status = 200, description = "How many tokens were revoked.", body = RevokedBody), PatientErrors),
    security(("bearerToken" = []))
)]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path((trial_id, patient_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RevokedBody>, ApiError> {
    require_enrolled(&state, &principal, &trial_id, &patient_id).await?;
    let change = AccessChange::RevokePatientTokens { trial_id: trial_id.clone(), patient_id: patient_id.clone() };
    match state.store.change_access(change, origin(&principal, &headers)).await {
        Ok(AccessOutcome::Revoked(revoked)) => {
            tracing::info!(trial_id = %trial_id, revoked, actor = %principal.actor(), "Patient tokens revoked");
            Ok(Json(RevokedBody { revoked }))
        }
        Ok(AccessOutcome::NotFound) => Err(ApiError::PatientNotEnrolled { patient_id }),
        Ok(outcome) => Err(anyhow::anyhow!("unexpected outcome {outcome:?} of revoking patient tokens").into()),
        Err(error) => Err(ApiError::from_store(error, "failed to revoke patient tokens")),
    }
}

/// Checks `enrol_patients` at the site of an enrolled patient.
async fn require_enrolled(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    patient_id: &str,
) -> Result<(), ApiError> {
    if *principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let enrolment = state
        .store
        .enrolment(trial_id, patient_id)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read enrolment"))?;
    let Some(enrolment) = enrolment else {
        // Only a caller who may enrol in this trial at all learns that the patient is missing.
        auth::site_access(principal, Permission::EnrolPatients, trial_id)?;
        return Err(ApiError::PatientNotEnrolled { patient_id: patient_id.to_owned() });
    };
    let scope = Scope::Site { trial_id, site_id: &enrolment.site_id };
    auth::require_in(state, principal, Permission::EnrolPatients, scope)
}

async fn read_enrolment(state: &AppState, trial_id: &str, patient_id: &str) -> Result<PatientBody, ApiError> {
    let enrolment = state
        .store
        .enrolment(trial_id, patient_id)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read enrolment"))?
        .ok_or_else(|| ApiError::PatientNotEnrolled { patient_id: patient_id.to_owned() })?;
    Ok(patient_body(enrolment))
}

fn patient_body(enrolment: Enrolment) -> PatientBody {
    PatientBody {
        trial_id: enrolment.trial_id,
        patient_id: enrolment.patient_id,
        site_id: enrolment.site_id,
        enrolled_at: enrolment.enrolled_at,
        enrolled_by: enrolment.enrolled_by,
        active_tokens: enrolment.active_tokens,
    }
}
