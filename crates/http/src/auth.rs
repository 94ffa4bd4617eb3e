//! Authentication of callers and the permission check of every handler.
//!
//! Authentication turns the `Authorization: Bearer` header into a [`Principal`]
//! through the [`Authenticator`] in the application state. The one built in,
//! [`TokenAuthenticator`], looks up epro's own API tokens by their SHA-256 in the
//! store. Another scheme (OpenID Connect, say) is another `Authenticator` that maps
//! its claims to the same principal, and no handler changes.
//!
//! Authorization is one function, [`require`]: every handler names the
//! [`Permission`] it needs and the [`Scope`] of the data it touches, and the role
//! table in [`role_permits`] decides. A staff grant covers a scope by its trial and
//! site: admin grants cover every trial, data manager and monitor grants one trial
//! with all its sites, investigator and site staff grants one site. A patient token
//! may only submit as its own patient to its own trial and read that patient's
//! receipts.
//!
//! Every rejected token and every forbidden request is logged on the
//! `epro::security` target and counted in `security_events_total`, never with the
//! token itself.

use std::fmt;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use epro_store::{Credential, Role, RoleGrant, Store, StoreError, TokenDigest};
use futures_util::future::BoxFuture;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of staff tokens.
pub const STAFF_TOKEN_PREFIX: &str = "epro_s_";
/// Prefix of patient tokens.
pub const PATIENT_TOKEN_PREFIX: &str = "epro_p_";
/// Random bytes in a token, written as twice as many hex digits after the prefix.
const TOKEN_BYTES: usize = 32;

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No `Authorization` header.
    Anonymous,
    Staff(StaffPrincipal),
    Patient(PatientPrincipal),
}

/// A staff member signed in with one of their tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffPrincipal {
    pub staff_id: String,
    pub token_id: String,
    pub grants: Vec<RoleGrant>,
}

/// A patient signed in with one of their tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientPrincipal {
    pub trial_id: String,
    pub patient_id: String,
    pub site_id: String,
    pub token_id: String,
}

impl Principal {
    /// Returns the actor recorded in audit rows: `staff:ID`, `patient:ID`, or
    /// `anonymous`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::Staff(staff) => format!("staff:{}", staff.staff_id),
            Principal::Patient(patient) => format!("patient:{}", patient.patient_id),
        }
    }
}

/// Something a caller may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Submit questionnaire answers for a patient.
    Submit,
    /// Read stored submissions and receipts.
    ReadSubmissions,
    /// List data queries.
    ViewQueries,
    /// Change a data query's status: answered, closed or open again.
    ChangeQueryStatus,
    /// List alerts.
    ViewAlerts,
    /// Acknowledge alerts.
    AcknowledgeAlerts,
    /// Export a form's submissions and read its codebook.
    Export,
    /// Read the audit trail.
    ReadAudit,
    /// Correct a submission: store a new version with a reason.
    Correct,
    /// Sign a submission version as investigator.
    Sign,
    /// Enrol patients and issue or revoke their tokens.
    EnrolPatients,
    /// Create staff accounts and issue or revoke their tokens.
    ManageStaff,
    /// Read a trial's sites and form versions.
    ViewTrials,
    /// Create trials and publish or retire forms.
    ManageTrials,
    /// Inspect and replay the outbox's dead letters.
    ManageOutbox,
}

impl Permission {
    /// Every permission, in the order the role table in the README lists them.
    pub const ALL: [Permission; 15] = [
        Permission::Submit,
        Permission::ReadSubmissions,
        Permission::ViewQueries,
        Permission::ChangeQueryStatus,
        Permission::ViewAlerts,
        Permission::AcknowledgeAlerts,
        Permission::Export,
        Permission::ReadAudit,
        Permission::Correct,
        Permission::Sign,
        Permission::EnrolPatients,
        Permission::ManageStaff,
        Permission::ViewTrials,
        Permission::ManageTrials,
        Permission::ManageOutbox,
    ];

    /// Returns the permission's name, as the error messages and the README show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Submit => "submit",
            Permission::ReadSubmissions => "read_submissions",
            Permission::ViewQueries => "view_queries",
            Permission::ChangeQueryStatus => "change_query_status",
            Permission::ViewAlerts => "view_alerts",
            Permission::AcknowledgeAlerts => "acknowledge_alerts",
            Permission::Export => "export",
            Permission::ReadAudit => "read_audit",
            Permission::Correct => "correct",
            Permission::Sign => "sign",
            Permission::EnrolPatients => "enrol_patients",
            Permission::ManageStaff => "manage_staff",
            Permission::ViewTrials => "view_trials",
            Permission::ManageTrials => "manage_trials",
            Permission::ManageOutbox => "manage_outbox",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returns whether `role` grants `permission` (within the scope of the grant).
///
/// admin runs the system and sees no patient data; data_manager works on every site
/// of a trial; investigator and site_staff on their own site, and only an
/// investigator signs; monitor reads and changes nothing.
pub fn role_permits(role: Role, permission: Permission) -> bool {
    use Permission as P;
    if permission == P::ViewTrials {
        return true;
    }
    match role {
        Role::Admin => matches!(permission, P::ManageStaff | P::ManageTrials | P::ManageOutbox | P::ReadAudit),
        Role::DataManager => matches!(
            permission,
            P::ReadSubmissions
                | P::ViewQueries
                | P::ChangeQueryStatus
                | P::ViewAlerts
                | P::Export
                | P::ReadAudit
                | P::Correct
                | P::EnrolPatients
        ),
        // An investigator may do what site staff do, and sign.
        Role::Investigator => permission == P::Sign || role_permits(Role::SiteStaff, permission),
        Role::SiteStaff => matches!(
            permission,
            P::Submit
                | P::ReadSubmissions
                | P::ViewQueries
                | P::ChangeQueryStatus
                | P::ViewAlerts
                | P::AcknowledgeAlerts
                | P::Correct
                | P::EnrolPatients
        ),
        Role::Monitor => matches!(permission, P::ReadSubmissions | P::ViewQueries | P::ViewAlerts | P::ReadAudit),
    }
}

/// The data a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Nothing of one trial: staff accounts, the outbox, every trial's audit trail.
    System,
    /// A whole trial, all its sites.
    Trial(&'a str),
    /// One site of a trial.
    Site { trial_id: &'a str, site_id: &'a str },
    /// One patient's data. `site_id` is the patient's enrolment site, or `None` for a
    /// patient who was never enrolled (accepted while patient tokens are not
    /// required); only trial-wide grants cover such a patient.
    Patient { trial_id: &'a str, patient_id: &'a str, site_id: Option<&'a str> },
}

impl Scope<'_> {
    fn trial_id(&self) -> Option<&str> {
        match self {
            Scope::System => None,
            Scope::Trial(trial_id) | Scope::Site { trial_id, .. } | Scope::Patient { trial_id, .. } => Some(trial_id),
        }
    }
}

/// Returns whether `grant` reaches the data of `scope`.
fn covers(grant: &RoleGrant, scope: &Scope<'_>) -> bool {
    let Some(grant_trial) = &grant.trial_id else {
        return true;
    };
    let (trial_id, site_id) = match scope {
        Scope::System => return false,
        Scope::Trial(trial_id) => (*trial_id, None),
        Scope::Site { trial_id, site_id } => (*trial_id, Some(*site_id)),
        Scope::Patient { trial_id, site_id, .. } => (*trial_id, *site_id),
    };
    if grant_trial != trial_id {
        return false;
    }
    match (&grant.site_id, scope) {
        (None, _) => true,
        (Some(_), Scope::Trial(_)) => false,
        (Some(grant_site), _) => site_id == Some(grant_site.as_str()),
    }
}

/// Checks that `principal` holds `permission` for `scope`.
///
/// # Errors
///
/// [`ApiError::Unauthorized`] for an anonymous caller, and [`ApiError::Forbidden`]
/// (logged as a security event) when the caller's roles or patient token do not
/// allow it.
pub fn require(principal: &Principal, permission: Permission, scope: Scope<'_>) -> Result<(), ApiError> {
    let allowed = match principal {
        Principal::Anonymous => return Err(ApiError::Unauthorized),
        Principal::Staff(staff) => staff.grants.iter().any(|grant| {
            // A trial's definition is no patient data: a role at one site reads the
            // whole trial's sites and forms.
            let reaches = match (permission, &scope) {
                (Permission::ViewTrials, Scope::Trial(trial_id)) => {
                    grant.trial_id.as_deref().is_none_or(|granted| granted == *trial_id)
                }
                _ => covers(grant, &scope),
            };
            role_permits(grant.role, permission) && reaches
        }),
        Principal::Patient(patient) => {
            matches!(permission, Permission::Submit | Permission::ReadSubmissions)
                && matches!(scope, Scope::Patient { trial_id, patient_id, .. }
                    if trial_id == patient.trial_id && patient_id == patient.patient_id)
        }
    };
    if allowed {
        return Ok(());
    }

    tracing::warn!(
        target: "epro::security",
        actor = %principal.actor(),
        permission = permission.as_str(),
        trial_id = scope.trial_id(),
        "Request forbidden"
    );
    Err(ApiError::Forbidden { permission })
}

/// The sites of a trial whose data a caller may list with a permission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteAccess {
    /// Every site, and patients never enrolled anywhere.
    All,
    /// Only these sites' enrolled patients.
    Sites(Vec<String>),
}

/// Returns which sites of `trial_id` `principal` may list with `permission`.
///
/// # Errors
///
/// As [`require`], when no grant of the caller allows `permission` anywhere in the
/// trial.
pub fn site_access(principal: &Principal, permission: Permission, trial_id: &str) -> Result<SiteAccess, ApiError> {
    if let Principal::Staff(staff) = principal {
        let mut sites = Vec::new();
        for grant in staff.grants.iter().filter(|grant| role_permits(grant.role, permission)) {
            match (&grant.trial_id, &grant.site_id) {
                (None, _) => return Ok(SiteAccess::All),
                (Some(trial), None) if trial == trial_id => return Ok(SiteAccess::All),
                (Some(trial), Some(site)) if trial == trial_id => sites.push(site.clone()),
                _ => {}
            }
        }
        if !sites.is_empty() {
            sites.sort();
            sites.dedup();
            return Ok(SiteAccess::Sites(sites));
        }
    }
    require(principal, permission, Scope::Trial(trial_id))?;
    Ok(SiteAccess::All)
}

/// Rejects a submission before its body is read when patient tokens are required
/// and the request has no token.
///
/// # Errors
///
/// [`ApiError::Unauthorized`] for an anonymous caller while
/// `auth.require_patient_token` is on.
pub(crate) fn check_submitter(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    if *principal == Principal::Anonymous && state.settings.require_patient_token {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

/// Checks that `principal` may submit for `patient_id` in `trial_id`, and returns
/// the actor of the submission's audit row: the patient, or the staff member who
/// entered the answers for them.
///
/// A patient token must belong to this patient and trial. A staff token needs the
/// submit permission at the site where the patient is enrolled, so staff can enter
/// a paper questionnaire only for their own site's patients. An anonymous caller
/// passes only while patient tokens are not required.
///
/// # Errors
///
/// As [`require`], and [`ApiError::Unavailable`] when the enrolment cannot be read.
pub(crate) async fn authorize_submission(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    patient_id: &str,
) -> Result<String, ApiError> {
    match principal {
        Principal::Anonymous => {
            check_submitter(state, principal)?;
            Ok(format!("patient:{patient_id}"))
        }
        Principal::Patient(_) => {
            let scope = Scope::Patient { trial_id, patient_id, site_id: None };
            require_in(state, principal, Permission::Submit, scope)?;
            Ok(principal.actor())
        }
        Principal::Staff(_) => {
            let enrolment = state
                .store
                .enrolment(trial_id, patient_id)
                .await
                .map_err(|error| ApiError::from_store(error, "failed to read the patient's enrolment"))?;
            let site_id = enrolment.as_ref().map(|enrolment| enrolment.site_id.as_str());
            let scope = Scope::Patient { trial_id, patient_id, site_id };
            require_in(state, principal, Permission::Submit, scope)?;
            Ok(principal.actor())
        }
    }
}

/// Checks that `principal` may use `permission` on one patient's data, looking up
/// the site the patient is enrolled at.
///
/// # Errors
///
/// As [`require`], and [`ApiError::Unavailable`] when the enrolment cannot be read.
pub(crate) async fn require_for_patient(
    state: &AppState,
    principal: &Principal,
    permission: Permission,
    trial_id: &str,
    patient_id: &str,
) -> Result<(), ApiError> {
    if *principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    let site_id = match principal {
        Principal::Staff(_) => state
            .store
            .enrolment(trial_id, patient_id)
            .await
            .map_err(|error| ApiError::from_store(error, "failed to read the patient's enrolment"))?
            .map(|enrolment| enrolment.site_id),
        _ => None,
    };
    let scope = Scope::Patient { trial_id, patient_id, site_id: site_id.as_deref() };
    require_in(state, principal, permission, scope)
}

/// Rejects an anonymous caller with 401, then a trial id no trial has with 404,
/// before the caller's roles are checked: trial ids are not secret, and a 404
/// tells a client with a typo more than a 403 would.
///
/// # Errors
///
/// [`ApiError::Unauthorized`] and [`ApiError::UnknownTrial`].
pub(crate) fn require_known_trial(state: &AppState, principal: &Principal, trial_id: &str) -> Result<(), ApiError> {
    if *principal == Principal::Anonymous {
        return Err(ApiError::Unauthorized);
    }
    if state.catalog().trial(trial_id).is_none() {
        return Err(ApiError::UnknownTrial { trial_id: trial_id.to_owned() });
    }
    Ok(())
}

/// Checks `permission` for a scope that needs no lookup, counting a refusal as a
/// security event.
///
/// # Errors
///
/// As [`require`].
pub(crate) fn require_in(
    state: &AppState,
    principal: &Principal,
    permission: Permission,
    scope: Scope<'_>,
) -> Result<(), ApiError> {
    require(principal, permission, scope).inspect_err(|error| {
        if matches!(error, ApiError::Forbidden { .. }) {
            state.metrics.record_security_event("forbidden");
        }
    })
}

/// The reason a presented token was rejected.
#[derive(Debug)]
pub enum AuthFailure {
    /// Not `Bearer <token>`, or a token that no epro token looks like.
    Malformed,
    /// A well-formed token that no account has.
    Unknown,
    Expired,
    Revoked,
    /// The credential store could not be read.
    Store(StoreError),
}

impl AuthFailure {
    fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Malformed => "malformed_token",
            AuthFailure::Unknown => "unknown_token",
            AuthFailure::Expired => "expired_token",
            AuthFailure::Revoked => "revoked_token",
            AuthFailure::Store(_) => "store_unavailable",
        }
    }
}

/// Turns a bearer token into a principal. Handlers never call it: they take a
/// [`Principal`] argument, whose extractor calls the application's authenticator.
pub trait Authenticator: Send + Sync {
    /// Returns the principal `token` belongs to.
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, AuthFailure>>;
}

/// Authenticates epro's own staff and patient tokens against the store.
pub struct TokenAuthenticator {
    store: Store,
}

impl TokenAuthenticator {
    pub fn new(store: Store) -> Self {
        TokenAuthenticator { store }
    }
}

impl Authenticator for TokenAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, AuthFailure>> {
        Box::pin(async move {
            if !is_well_formed(token) {
                return Err(AuthFailure::Malformed);
            }
            let credential =
                self.store.credential(digest(token)).await.map_err(AuthFailure::Store)?.ok_or(AuthFailure::Unknown)?;
            match credential.invalid_reason(OffsetDateTime::now_utc()) {
                Some("revoked") => return Err(AuthFailure::Revoked),
                Some(_) => return Err(AuthFailure::Expired),
                None => {}
            }
            Ok(match credential {
                Credential::Staff { token_id, staff_id, grants, .. } => {
                    Principal::Staff(StaffPrincipal { staff_id, token_id, grants })
                }
                Credential::Patient { token_id, trial_id, patient_id, site_id, .. } => {
                    Principal::Patient(PatientPrincipal { trial_id, patient_id, site_id, token_id })
                }
            })
        })
    }
}

/// Returns whether `token` has the shape of an epro token: a known prefix and 64
/// lowercase hex digits.
fn is_well_formed(token: &str) -> bool {
    let Some(random) = token.strip_prefix(STAFF_TOKEN_PREFIX).or_else(|| token.strip_prefix(PATIENT_TOKEN_PREFIX))
    else {
        return false;
    };
    random.len() == TOKEN_BYTES * 2 && random.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Returns the digest under which the store keeps `token`.
pub fn digest(token: &str) -> TokenDigest {
    TokenDigest(Sha256::digest(token.as_bytes()).into())
}

/// The kind of a new token, which decides its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Staff,
    Patient,
}

/// Generates a new token from the operating system's random source: the prefix of
/// its kind and 32 random bytes in hex. Returns the token, to show once, and its
/// digest, to store.
///
/// # Errors
///
/// Fails when the operating system has no random bytes to give.
pub fn new_token(kind: TokenKind) -> anyhow::Result<(String, TokenDigest)> {
    let mut random = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut random).map_err(|error| anyhow::anyhow!("failed to read random bytes: {error}"))?;
    let prefix = match kind {
        TokenKind::Staff => STAFF_TOKEN_PREFIX,
        TokenKind::Patient => PATIENT_TOKEN_PREFIX,
    };
    let token = format!("{prefix}{}", hex::encode(random));
    let digest = digest(&token);
    Ok((token, digest))
}

/// Reads the principal of a request: anonymous without an `Authorization` header,
/// otherwise whoever the bearer token belongs to.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Principal::Anonymous);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let result = match token {
            Some(token) => state.authenticator.authenticate(token).await,
            None => Err(AuthFailure::Malformed),
        };
        result.map_err(|failure| {
            if let AuthFailure::Store(error) = failure {
                return ApiError::from_store(error, "failed to look up a token");
            }
            state.metrics.record_security_event(failure.reason());
            tracing::warn!(target: "epro::security", reason = failure.reason(), "Token rejected");
            ApiError::Unauthorized
        })
    }
}

/// The authenticator of an application, shared by every request.
pub type SharedAuthenticator = Arc<dyn Authenticator>;

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(grants: &[(Role, Option<&str>, Option<&str>)]) -> Principal {
        Principal::Staff(StaffPrincipal {
            staff_id: "s1".to_owned(),
            token_id: "t1".to_owned(),
            grants: grants
                .iter()
                .map(|(role, trial, site)| RoleGrant {
                    role: *role,
                    trial_id: trial.map(str::to_owned),
                    site_id: site.map(str::to_owned),
                })
                .collect(),
        })
    }

    #[test]
    fn site_grant_stays_in_its_site() {
        let investigator = staff(&[(Role::Investigator, Some("demo"), Some("site-01"))]);
        let own = Scope::Patient { trial_id: "demo", patient_id: "p1", site_id: Some("site-01") };
        let other = Scope::Patient { trial_id: "demo", patient_id: "p2", site_id: Some("site-02") };
        let unenrolled = Scope::Patient { trial_id: "demo", patient_id: "p3", site_id: None };

        assert!(require(&investigator, Permission::ReadSubmissions, own).is_ok());
        assert!(require(&investigator, Permission::ReadSubmissions, other).is_err());
        assert!(require(&investigator, Permission::ReadSubmissions, unenrolled).is_err());
        assert!(require(&investigator, Permission::ReadSubmissions, Scope::Trial("demo")).is_err());
        assert!(require(&investigator, Permission::ReadSubmissions, Scope::Trial("other")).is_err());
    }

    #[test]
    fn trial_grant_covers_every_site() {
        let manager = staff(&[(Role::DataManager, Some("demo"), None)]);
        let scope = Scope::Patient { trial_id: "demo", patient_id: "p2", site_id: Some("site-02") };

        assert!(require(&manager, Permission::Export, Scope::Trial("demo")).is_ok());
        assert!(require(&manager, Permission::ReadSubmissions, scope).is_ok());
        assert!(require(&manager, Permission::Export, Scope::Trial("other")).is_err());
        assert!(require(&manager, Permission::ManageStaff, Scope::System).is_err());
    }

    #[test]
    fn admin_sees_no_patient_data() {
        let admin = staff(&[(Role::Admin, None, None)]);
        let scope = Scope::Patient { trial_id: "demo", patient_id: "p1", site_id: Some("site-01") };

        assert!(require(&admin, Permission::ManageStaff, Scope::System).is_ok());
        assert!(require(&admin, Permission::ReadSubmissions, scope).is_err());
        assert!(require(&admin, Permission::Export, Scope::Trial("demo")).is_err());
    }

    #[test]
    fn patient_token_reaches_only_its_patient() {
        let patient = Principal::Patient(PatientPrincipal {
            trial_id: "demo".to_owned(),
            patient_id: "p1".to_owned(),
            site_id: "site-01".to_owned(),
            token_id: "t".to_owned(),
        });
        let own = Scope::Patient { trial_id: "demo", patient_id: "p1", site_id: None };
        let other_patient = Scope::Patient { trial_id: "demo", patient_id: "p2", site_id: None };
        let other_trial = Scope::Patient { trial_id: "other", patient_id: "p1", site_id: None };

        assert!(require(&patient, Permission::Submit, own).is_ok());
        assert!(matches!(require(&patient, Permission::Submit, other_patient), Err(ApiError::Forbidden { .. })));
        assert!(matches!(require(&patient, Permission::Submit, other_trial), Err(ApiError::Forbidden { .. })));
        assert!(matches!(require(&patient, Permission::ViewAlerts, own), Err(ApiError::Forbidden { .. })));
    }

    #[test]
    fn site_access_lists_granted_sites() {
        let two_sites = staff(&[
            (Role::SiteStaff, Some("demo"), Some("site-02")),
            (Role::Investigator, Some("demo"), Some("site-01")),
            (Role::Investigator, Some("other"), Some("site-09")),
        ]);
        let sites = site_access(&two_sites, Permission::ViewAlerts, "demo").unwrap();
        assert_eq!(sites, SiteAccess::Sites(vec!["site-01".to_owned(), "site-02".to_owned()]));

        let monitor = staff(&[(Role::Monitor, Some("demo"), None)]);
        assert_eq!(site_access(&monitor, Permission::ViewAlerts, "demo").unwrap(), SiteAccess::All);
        assert!(site_access(&monitor, Permission::ViewAlerts, "other").is_err());
        assert!(site_access(&Principal::Anonymous, Permission::ViewAlerts, "demo").is_err());
    }

    #[test]
    fn new_tokens_are_well_formed_and_distinct() {
        let (first, first_digest) = new_token(TokenKind::Patient).unwrap();
        let (second, _) = new_token(TokenKind::Staff).unwrap();

        assert!(first.starts_with(PATIENT_TOKEN_PREFIX));
        assert!(second.starts_with(STAFF_TOKEN_PREFIX));
        assert!(is_well_formed(&first));
        assert!(is_well_formed(&second));
        assert_ne!(first[PATIENT_TOKEN_PREFIX.len()..], second[STAFF_TOKEN_PREFIX.len()..]);
        assert_eq!(digest(&first), first_digest);
        assert!(!is_well_formed("epro_p_0123"));
        assert!(!is_well_formed(&first.to_uppercase()));
    }
}
