//! Alerts for site staff: `GET /v1/trials/{trialId}/alerts` lists a trial's
//! alerts, `POST /v1/alerts/{alertId}/acknowledge` records that site staff
//! saw one, with a comment on what they did.
//!
//! An alert is raised at intake when an alert rule of the trial file fires,
//! such as a positive PHQ-9 item 9. Site staff must acknowledge it within
//! the trial's deadline, or the escalation task of `epro serve` escalates it.
//! An acknowledgement is final, and alerts are never deleted.
//!
//! Listing needs `view_alerts`: trial-wide roles see every alert of the
//! trial, site roles only their sites' patients. Acknowledging needs
//! `acknowledge_alerts` at the site of the alert's patient.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use epro_store::{AcknowledgeOutcome, Alert, AlertAcknowledgement, AlertFilter, AlertStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::{self, Permission, Principal, SiteAccess};
use crate::body::{self, SEED_MEDIA_TYPES};
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response as ResponseDoc;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::error::{ApiError, EnvelopeProblem, ErrorShape, FieldError};
use crate::language::Language;
use crate::messages;
use crate::openapi::errors::{self, Layers};
use crate::routes::submissions::request_id;
use crate::state::AppState;

/// The query parameters of the list endpoint, as named in error messages.
const LIST_PARAMETERS: &[&str] = &["status", "patientId", "after", "limit"];

/// Most alerts returned by one list request.
const MAX_PAGE: usize = 500;

/// Alerts returned by a list request without `limit`.
const DEFAULT_PAGE: usize = 100;

/// Maximum length of an acknowledgement comment, in characters: room for a
/// clinical note, not for a document.
const MAX_COMMENT_CHARS: usize = 2000;

/// Filters of the list endpoint, all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `open` or `acknowledged`.
    status: Option<String>,
    /// Only alerts of this patient.
    patient_id: Option<String>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// Most alerts in the reply, 1 to 500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One alert as site staff read it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Alert)]
pub struct AlertBody {
    alert_id: String,
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    /// Id of the alert rule in the trial file.
    rule: String,
    severity: String,
    /// linkIds and score names the rule read.
    items: Vec<String>,
    /// The rule's text for site staff in the caller's language.
    message: String,
    /// `open` or `acknowledged`.
    status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    raised_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    due_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    escalated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    acknowledged_at: Option<OffsetDateTime>,
    #[schema(required = true)]
    acknowledged_by: Option<String>,
    /// The comment given with the acknowledgement.
    #[schema(required = true)]
    comment: Option<String>,
}

/// A page of alerts.
#[derive(Serialize, ToSchema)]
#[schema(as = AlertPage)]
pub struct ListBody {
    alerts: Vec<AlertBody>,
    /// Pass as `after` to read the next page; `null` on the last page.
    #[schema(required = true)]
    next: Option<String>,
}

/// The body of an acknowledgement, for the OpenAPI document; the handler
/// reads it field by field to name each problem.
#[derive(ToSchema)]
#[schema(as = AlertAcknowledgement)]
#[allow(dead_code)]
pub(crate) struct AcknowledgeRequest {
    /// What site staff did about the alert, 1 to 2000 characters, kept in the audit trail.
    comment: String,
}

/// The errors of [`list`].
pub(crate) struct ListErrors;

impl IntoResponses for ListErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let errors = vec![
            ApiError::Unauthorized,
            ApiError::Forbidden { permission: crate::auth::Permission::ViewAlerts },
            ApiError::InvalidEnvelope(vec![
                FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE)),
                FieldError::query_value("status", EnvelopeProblem::InvalidAlertStatus),
            ]),
            errors::unknown_trial(),
            ApiError::Unavailable,
        ];
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// The errors of [`acknowledge`].
pub(crate) struct AcknowledgeErrors;

impl IntoResponses for AcknowledgeErrors {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let mut errors =
            vec![ApiError::Unauthorized, ApiError::Forbidden { permission: crate::auth::Permission::ViewAlerts }];
        errors.extend(errors::body_errors(SEED_MEDIA_TYPES));
        errors.extend([
            ApiError::InvalidFields(vec![FieldError::envelope("comment", EnvelopeProblem::Missing)]),
            ApiError::AlertNotFound,
            ApiError::AlertAlreadyAcknowledged { acknowledged_at: None },
        ]);
        errors.extend(errors::store_write_errors());
        errors::responses(ErrorShape::Standard, Layers::Limited, errors)
    }
}

/// Lists a trial's alerts, oldest first, with optional filters.
#[utoipa::path(
    get,
    path = "/v1/trials/{trial_id}/alerts",
    operation_id = "listAlerts",
    tag = "alerts",
    summary = "List a trial's alerts",
    description = "Oldest first, with each alert's text in the caller's language. Needs the operator token.",
    params(("trial_id" = String, Path, description = "The trial's id."), ListParams),
    responses(
        (status = 200, description = "One page of alerts; pass `next` as `after` for the next.", body = ListBody),
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
    let sites = auth::site_access(&principal, Permission::ViewAlerts, &trial_id)
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
        Some(text) => Some(text.parse::<AlertStatus>().map_err(|_| {
            ApiError::InvalidEnvelope(vec![FieldError::query_value("status", EnvelopeProblem::InvalidAlertStatus)])
        })?),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::query_parameter(LIST_PARAMETERS, Some(MAX_PAGE))]));
    }
    let site_ids = match sites {
        SiteAccess::All => None,
        SiteAccess::Sites(site_ids) => Some(site_ids),
    };
    let filter = AlertFilter { trial_id, status, patient_id: params.patient_id, site_ids, after: params.after, limit };

    let alerts =
        state.store.alerts(filter).await.map_err(|error| ApiError::from_store(error, "failed to list alerts"))?;
    let language = Language::negotiate(&headers, state.settings.default_language);
    let next = (alerts.len() == limit).then(|| alerts.last().map(|alert| alert.alert_id.clone())).flatten();
    let alerts = alerts.into_iter().map(|alert| alert_body(&state, alert, language)).collect();
    Ok(Json(ListBody { alerts, next }))
}

/// Acknowledges an open alert with a comment. Replies 200 with the alert,
/// 409 `alert_already_acknowledged` for an alert acknowledged before, and
/// 422 when the comment is missing or blank.
#[utoipa::path(
    post,
    path = "/v1/alerts/{alert_id}/acknowledge",
    operation_id = "acknowledgeAlert",
    tag = "alerts",
    summary = "Acknowledge an alert",
    description = "Records who acknowledged the alert, when and why, in the alert and the audit trail. An \
        acknowledgement is final. Needs `acknowledge_alerts` (investigator or site staff) at the patient's site.",
    params(("alert_id" = String, Path, description = "The alert's id from a list or an `alert.raised` event.")),
    request_body(content((AcknowledgeRequest = "application/json"))),
    responses(
        (status = 200, description = "The acknowledged alert.", body = AlertBody),
        AcknowledgeErrors,
    ),
    security(("bearerToken" = []))
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    principal: Principal,
    Path(alert_id): Path<String>,
    headers: HeaderMap,
    request_body: axum::body::Body,
) -> Result<Json<AlertBody>, ApiError> {
    if principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let alert = state
        .store
        .alert(&alert_id)
        .await
        .map_err(|error| ApiError::from_store(error, "failed to read alert"))?
        .ok_or(ApiError::AlertNotFound)?;
    auth::require_for_patient(&state, &principal, Permission::AcknowledgeAlerts, &alert.trial_id, &alert.patient_id)
        .await?;
    let actor = principal.actor();

    body::media_type(&headers, SEED_MEDIA_TYPES)?;
    let bytes = body::read_limited(request_body, state.settings.max_body_bytes).await?;
    body::check_depth(&bytes, state.settings.max_json_depth)?;
    body::check_keys_and_numbers(&bytes, "")?;
    let comment = parse_acknowledgement(&bytes)?;

    let acknowledgement = AlertAcknowledgement { alert_id, comment, actor, request_id: request_id(&headers) };
    let language = Language::negotiate(&headers, state.settings.default_language);
    match state.store.acknowledge_alert(acknowledgement).await {
        Ok(AcknowledgeOutcome::Acknowledged(alert)) => {
            state.metrics.record_alert_acknowledged(&alert.trial_id);
            tracing::info!(alert_id = %alert.alert_id, trial_id = %alert.trial_id, "Alert acknowledged");
            Ok(Json(alert_body(&state, alert, language)))
        }
        Ok(AcknowledgeOutcome::AlreadyAcknowledged(alert)) => {
            Err(ApiError::AlertAlreadyAcknowledged { acknowledged_at: alert.acknowledged_at })
        }
        Ok(AcknowledgeOutcome::NotFound) => Err(ApiError::AlertNotFound),
        Err(error) => Err(ApiError::from_store(error, "failed to acknowledge alert")),
    }
}

/// Reads `{"comment": "..."}` and returns the comment without its surrounding
/// whitespace. A body that is not a JSON object is a 400; each missing,
/// mistyped, blank, too long or unknown field is a 422 finding.
fn parse_acknowledgement(bytes: &[u8]) -> Result<String, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| body::invalid_json(&error))?;
    let Some(fields) = value.as_object() else {
        let problem = EnvelopeProblem::WrongType { expected: "object" };
        return Err(ApiError::InvalidEnvelope(vec![FieldError::envelope("", problem)]));
    };

    let mut errors: Vec<FieldError> = fields
        .keys()
        .filter(|name| name.as_str() != "comment")
        .map(|name| FieldError::envelope(name, EnvelopeProblem::UnknownField))
        .collect();
    let comment = match fields.get("comment") {
        Some(serde_json::Value::String(text)) => Some(text.trim()),
        None | Some(serde_json::Value::Null) => {
            errors.push(FieldError::envelope("comment", EnvelopeProblem::Missing));
            None
        }
        Some(_) => {
            errors.push(FieldError::envelope("comment", EnvelopeProblem::WrongType { expected: "string" }));
            None
        }
    };
    let comment = comment.filter(|comment| {
        let problem = if comment.is_empty() {
            Some(EnvelopeProblem::Blank)
        } else if comment.chars().count() > MAX_COMMENT_CHARS {
            Some(EnvelopeProblem::TooLong { max_length: MAX_COMMENT_CHARS })
        } else {
            None
        };
        let valid = problem.is_none();
        errors.extend(problem.map(|problem| FieldError::envelope("comment", problem)));
        valid
    });

    match comment {
        Some(comment) if errors.is_empty() => Ok(comment.to_owned()),
        _ => Err(ApiError::InvalidFields(errors)),
    }
}

/// Shapes a stored alert for site staff, with its rule's text from the
/// published form in `language`.
fn alert_body(state: &AppState, alert: Alert, language: Language) -> AlertBody {
    let catalog = state.catalog();
    let published =
        catalog.trial(&alert.trial_id).and_then(|trial| trial.form(&alert.form_id, Some(&alert.form_version)).ok());
    let rule_message = published.and_then(|published| published.form.alert_message(&alert.rule));
    let message = messages::alert_message(language, rule_message, &alert.rule, &alert.severity);
    AlertBody {
        alert_id: alert.alert_id,
        submission_id: alert.submission_id,
        trial_id: alert.trial_id,
        form_id: alert.form_id,
        form_version: alert.form_version,
        patient_id: alert.patient_id,
        rule: alert.rule,
        severity: alert.severity,
        items: alert.items,
        message,
        status: alert.status.as_str(),
        raised_at: alert.raised_at,
        due_at: alert.due_at,
        escalated_at: alert.escalated_at,
        acknowledged_at: alert.acknowledged_at,
        acknowledged_by: alert.acknowledged_by,
        comment: alert.acknowledge_comment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding_codes(error: &ApiError) -> Vec<(String, &'static str)> {
        error.field_errors().iter().map(|field| (field.path.clone(), field.code())).collect()
    }

    #[test]
    fn acknowledgement_keeps_trimmed_comment() {
        let comment = parse_acknowledgement(br#"{"comment": "  Called the patient.\n"}"#).expect("valid body");

        assert_eq!(comment, "Called the patient.");
    }

    #[test]
    fn acknowledgement_field_problems_are_422() {
        let long = format!(r#"{{"comment": "{}"}}"#, "x".repeat(MAX_COMMENT_CHARS + 1));
        // Each case: the body, then the path and code of every finding.
        type Case<'a> = (&'a [u8], Vec<(&'a str, &'a str)>);
        let cases: [Case<'_>; 6] = [
            (b"{}", vec![("/comment", "required")]),
            (br#"{"comment": null}"#, vec![("/comment", "required")]),
            (br#"{"comment": " \t\n "}"#, vec![("/comment", "blank")]),
            (br#"{"comment": 5}"#, vec![("/comment", "wrong_type")]),
            (long.as_bytes(), vec![("/comment", "too_long")]),
            (br#"{"comment": "ok", "status": "closed"}"#, vec![("/status", "unknown_field")]),
        ];
        for (body, expected) in cases {
            let text = String::from_utf8_lossy(body);
            let error = parse_acknowledgement(body).expect_err(&text);

            assert_eq!(error.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY, "{text}");
            assert_eq!(error.code(), "invalid_fields", "{text}");
            let found = finding_codes(&error);
            let found: Vec<(&str, &str)> = found.iter().map(|(path, code)| (path.as_str(), *code)).collect();
            assert_eq!(found, expected, "{text}");
        }
    }

    #[test]
    fn acknowledgement_of_non_object_is_400() {
        for body in [&b"[\"comment\"]"[..], b"\"comment\"", b"{not json"] {
            let error = parse_acknowledgement(body).expect_err("not an object");

            assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn acknowledgement_comment_limit_counts_characters() {
        let chinese = format!(r#"{{"comment": "{}"}}"#, "已".repeat(MAX_COMMENT_CHARS));

        let comment = parse_acknowledgement(chinese.as_bytes()).expect("2000 characters are allowed");

        assert_eq!(comment.chars().count(), MAX_COMMENT_CHARS);
    }
}
