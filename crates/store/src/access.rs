//! What both backends share about access changes: the audit action and content each
//! change records, and the actions' names.
//!
//! Audit rows of access changes name token ids, never tokens or their digests.

use serde_json::json;

use crate::model::{AccessChange, RoleGrant};

/// Audit action recorded when a staff account is created.
pub const STAFF_CREATED: &str = "staff.created";
/// Audit action recorded when a staff member gets a new token.
pub const STAFF_TOKEN_ISSUED: &str = "staff.token_issued";
/// Audit action recorded when a staff member's tokens are revoked.
pub const STAFF_TOKENS_REVOKED: &str = "staff.tokens_revoked";
/// Audit action recorded when a patient is enrolled into a trial's site.
pub const PATIENT_ENROLLED: &str = "patient.enrolled";
/// Audit action recorded when a patient gets a new token.
pub const PATIENT_TOKEN_ISSUED: &str = "patient.token_issued";
/// Audit action recorded when a patient's tokens are revoked.
pub const PATIENT_TOKENS_REVOKED: &str = "patient.tokens_revoked";

/// The audit row of one access change, apart from who and when.
pub(crate) struct AccessAudit<'a> {
    pub(crate) action: &'static str,
    pub(crate) entity: &'static str,
    pub(crate) entity_id: String,
    pub(crate) trial_id: Option<&'a str>,
    pub(crate) patient_id: Option<&'a str>,
    pub(crate) before_value: Option<String>,
    pub(crate) after_value: Option<String>,
}

/// Describes `change` for its audit row. `revoked` lists the token ids a revocation
/// revoked.
pub(crate) fn audit_of<'a>(change: &'a AccessChange, revoked: &[String]) -> AccessAudit<'a> {
    match change {
        AccessChange::CreateStaff { staff_id, display_name, grants, token } => AccessAudit {
            action: STAFF_CREATED,
            entity: "staff",
            entity_id: staff_id.clone(),
            trial_id: None,
            patient_id: None,
            before_value: None,
            after_value: Some(
                json!({
                    "displayName": display_name,
                    "grants": grants_json(grants),
                    "tokenId": token.token_id,
                })
                .to_string(),
            ),
        },
        AccessChange::IssueStaffToken { staff_id, token } => AccessAudit {
            action: STAFF_TOKEN_ISSUED,
            entity: "staff",
            entity_id: staff_id.clone(),
            trial_id: None,
            patient_id: None,
            before_value: None,
            after_value: Some(json!({ "tokenId": token.token_id, "expiresAt": expiry(token) }).to_string()),
        },
        AccessChange::RevokeStaffTokens { staff_id } => AccessAudit {
            action: STAFF_TOKENS_REVOKED,
            entity: "staff",
            entity_id: staff_id.clone(),
            trial_id: None,
            patient_id: None,
            before_value: Some(json!({ "activeTokenIds": revoked }).to_string()),
            after_value: Some(json!({ "activeTokenIds": [] }).to_string()),
        },
        AccessChange::EnrolPatient { trial_id, patient_id, site_id, token } => AccessAudit {
            action: PATIENT_ENROLLED,
            entity: "patient",
            entity_id: patient_id.clone(),
            trial_id: Some(trial_id),
            patient_id: Some(patient_id),
            before_value: None,
            after_value: Some(
                json!({ "siteId": site_id, "tokenId": token.token_id, "expiresAt": expiry(token) }).to_string(),
            ),
        },
        AccessChange::IssuePatientToken { trial_id, patient_id, token } => AccessAudit {
            action: PATIENT_TOKEN_ISSUED,
            entity: "patient",
            entity_id: patient_id.clone(),
            trial_id: Some(trial_id),
            patient_id: Some(patient_id),
            before_value: None,
            after_value: Some(json!({ "tokenId": token.token_id, "expiresAt": expiry(token) }).to_string()),
        },
        AccessChange::RevokePatientTokens { trial_id, patient_id } => AccessAudit {
            action: PATIENT_TOKENS_REVOKED,
            entity: "patient",
            entity_id: patient_id.clone(),
            trial_id: Some(trial_id),
            patient_id: Some(patient_id),
            before_value: Some(json!({ "activeTokenIds": revoked }).to_string()),
            after_value: Some(json!({ "activeTokenIds": [] }).to_string()),
        },
    }
}

fn grants_json(grants: &[RoleGrant]) -> serde_json::Value {
    grants
        .iter()
        .map(|grant| json!({ "role": grant.role.as_str(), "trialId": grant.trial_id, "siteId": grant.site_id }))
        .collect()
}

fn expiry(token: &crate::model::NewToken) -> Option<String> {
    token.expires_at.map(crate::audit::format_audit_time)
}
