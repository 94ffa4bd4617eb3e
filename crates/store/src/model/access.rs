//! Staff accounts, their role grants and tokens, and patients enrolled into a trial's
//! site with theirs.
//!
//! The store never sees a token in clear: callers pass and look up the SHA-256 of the
//! whole token text ([`TokenDigest`]). Generating tokens and checking permissions
//! belong to the HTTP layer.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use time::OffsetDateTime;

/// SHA-256 of a token's whole text, the only form in which the store keeps a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// A staff role. What each role may do is decided by the HTTP layer's permission
/// table; the store only keeps which scope each role is granted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages trials, forms and staff accounts, across all trials.
    Admin,
    /// Manages queries, exports and corrections in every site of one trial.
    DataManager,
    /// Sees, corrects and signs the data of one site of one trial.
    Investigator,
    /// Sees and corrects the data of one site of one trial.
    SiteStaff,
    /// Reads everything of one trial and changes nothing.
    Monitor,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 5] = [Role::Admin, Role::DataManager, Role::Investigator, Role::SiteStaff, Role::Monitor];

    /// Returns the name stored in the `role` column and used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::DataManager => "data_manager",
            Role::Investigator => "investigator",
            Role::SiteStaff => "site_staff",
            Role::Monitor => "monitor",
        }
    }

    /// Returns the scope this role is granted in: none, a trial, or a site of a trial.
    pub fn scope(self) -> GrantScope {
        match self {
            Role::Admin => GrantScope::Global,
            Role::DataManager | Role::Monitor => GrantScope::Trial,
            Role::Investigator | Role::SiteStaff => GrantScope::Site,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Role> {
        match Role::ALL.into_iter().find(|role| role.as_str() == text) {
            Some(role) => Ok(role),
            None => bail!("unknown role {text:?}, expected admin, data_manager, investigator, site_staff or monitor"),
        }
    }
}

/// The reach of a role grant: every trial, one trial, or one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantScope {
    /// Every trial: the grant names no trial and no site.
    Global,
    /// One trial with all its sites: the grant names a trial and no site.
    Trial,
    /// One site of one trial: the grant names both.
    Site,
}

/// One role held by a staff member, with the trial and site it covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleGrant {
    pub role: Role,
    pub trial_id: Option<String>,
    pub site_id: Option<String>,
}

impl RoleGrant {
    /// Checks that the grant names exactly the trial and site its role's scope needs.
    ///
    /// # Errors
    ///
    /// Names the role and what is missing or too much.
    pub fn check(&self) -> anyhow::Result<()> {
        let role = self.role;
        match (role.scope(), &self.trial_id, &self.site_id) {
            (GrantScope::Global, None, None)
            | (GrantScope::Trial, Some(_), None)
            | (GrantScope::Site, Some(_), Some(_)) => Ok(()),
            (GrantScope::Global, _, _) => bail!("role {role} applies to every trial and takes no trial or site"),
            (GrantScope::Trial, None, _) => bail!("role {role} needs a trial"),
            (GrantScope::Trial, Some(_), Some(_)) => {
                bail!("role {role} covers every site of its trial and takes no site")
            }
            (GrantScope::Site, _, _) => bail!("role {role} needs a trial and a site"),
        }
    }
}

/// A staff account as stored, with its grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffMember {
    pub staff_id: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
    /// Actor who created the account, for example `staff:admin-1` or `cli`.
    pub created_by: String,
    pub grants: Vec<RoleGrant>,
    /// Tokens neither revoked nor expired at the time of reading.
    pub active_tokens: u32,
}

/// A patient enrolled into a trial's site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolment {
    pub trial_id: String,
    pub patient_id: String,
    pub site_id: String,
    pub enrolled_at: OffsetDateTime,
    pub enrolled_by: String,
    /// Tokens neither revoked nor expired at the time of reading.
    pub active_tokens: u32,
}

/// A token to store: its id, digest and expiry. The token text itself never reaches
/// the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Public id of the token, a UUID, shown in listings and audit rows.
    pub token_id: String,
    pub digest: TokenDigest,
    /// When the token stops working. Patient tokens always expire; staff tokens may not.
    pub expires_at: Option<OffsetDateTime>,
}

/// The actor and request of an access change, for its audit row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeOrigin {
    /// For example `staff:admin-1`, or `cli` for the command line.
    pub actor: String,
    pub request_id: Option<String>,
}

/// A change to staff accounts, enrolments or tokens, for
/// [`Store::change_access`](crate::Store::change_access). Each writes one audit row in
/// the same transaction; none of them writes a token in clear, and audit rows hold
/// only token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessChange {
    /// Creates a staff account with its grants and first token.
    CreateStaff { staff_id: String, display_name: String, grants: Vec<RoleGrant>, token: NewToken },
    /// Adds a token to an existing staff account.
    IssueStaffToken { staff_id: String, token: NewToken },
    /// Revokes every active token of a staff account.
    RevokeStaffTokens { staff_id: String },
    /// Enrols a patient into a trial's site with a first token.
    EnrolPatient { trial_id: String, patient_id: String, site_id: String, token: NewToken },
    /// Adds a token to an enrolled patient, for example for a new phone.
    IssuePatientToken { trial_id: String, patient_id: String, token: NewToken },
    /// Revokes every active token of an enrolled patient.
    RevokePatientTokens { trial_id: String, patient_id: String },
}

/// Result of [`Store::change_access`](crate::Store::change_access).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessOutcome {
    /// The change is stored with its audit row.
    Done,
    /// Tokens revoked, with how many. Zero writes no audit row.
    Revoked(u64),
    /// The staff member or patient exists already. Nothing was written.
    AlreadyExists,
    /// The staff member or patient does not exist. Nothing was written.
    NotFound,
}

/// The staff member or patient a token digest belongs to, as found by
/// [`Store::credential`](crate::Store::credential). Revoked and expired tokens are
/// returned too, so that the caller can tell why it rejects them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Staff {
        token_id: String,
        staff_id: String,
        grants: Vec<RoleGrant>,
        expires_at: Option<OffsetDateTime>,
        revoked_at: Option<OffsetDateTime>,
    },
    Patient {
        token_id: String,
        trial_id: String,
        patient_id: String,
        site_id: String,
        expires_at: OffsetDateTime,
        revoked_at: Option<OffsetDateTime>,
    },
}

impl Credential {
    /// Returns why the credential no longer works at `now`, or `None` while it does.
    pub fn invalid_reason(&self, now: OffsetDateTime) -> Option<&'static str> {
        let (expires_at, revoked_at) = match self {
            Credential::Staff { expires_at, revoked_at, .. } => (*expires_at, *revoked_at),
            Credential::Patient { expires_at, revoked_at, .. } => (Some(*expires_at), *revoked_at),
        };
        if revoked_at.is_some() {
            Some("revoked")
        } else if expires_at.is_some_and(|expires_at| expires_at <= now) {
            Some("expired")
        } else {
            None
        }
    }
}

/// The selection of enrolments that [`Store::enrolments`](crate::Store::enrolments) lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolmentFilter {
    pub trial_id: String,
    /// Only this site's patients.
    pub site_id: Option<String>,
    /// Only this patient.
    pub patient_id: Option<String>,
    /// Only patients whose id sorts after this one: the last id of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}
