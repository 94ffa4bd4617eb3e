//! The audit trail as it comes out of the store: rows, the filter for reading them and
//! the result of checking their hash chain.

use std::fmt;

use time::OffsetDateTime;

/// One row of the audit trail: who did what to which entity, when, and why.
///
/// `Debug` prints only ids and the action: the before and after values of a data
/// change may contain answers.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps for rows written by this version.
    pub seq: i64,
    /// When the action happened, RFC 3339 in UTC, as stored.
    pub occurred_at: String,
    /// The actor: `patient:ID`, `staff:ID`, `operator` or `system`.
    pub actor: String,
    /// The action, for example `submission.created`.
    pub action: String,
    /// Kind of the entity acted on, for example `submission` or `data_query`.
    pub entity: String,
    pub entity_id: String,
    pub trial_id: Option<String>,
    pub patient_id: Option<String>,
    pub submission_id: Option<String>,
    /// The changed values before the action, as JSON text.
    pub before_value: Option<String>,
    /// The changed values after the action, as JSON text.
    pub after_value: Option<String>,
    /// The reason given for the change, where the action needs one.
    pub reason: Option<String>,
    /// Request id of the HTTP request that made the change.
    pub request_id: Option<String>,
    /// Hash of the row before, or 32 zero bytes for the first row. `None` only for a
    /// row written before the chain existed and not hashed yet.
    pub prev_hash: Option<[u8; 32]>,
    /// SHA-256 over `prev_hash` and the row's canonical content.
    pub hash: Option<[u8; 32]>,
}

impl fmt::Debug for AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditRecord")
            .field("seq", &self.seq)
            .field("action", &self.action)
            .field("entity", &self.entity)
            .field("entity_id", &self.entity_id)
            .finish_non_exhaustive()
    }
}

/// The selection of audit rows to read. Every filter that is set must match. Rows come in `seq`
/// order, starting after `after_seq`.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub trial_id: Option<String>,
    pub patient_id: Option<String>,
    pub submission_id: Option<String>,
    pub actor: Option<String>,
    /// Only rows at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Only rows before this instant.
    pub to: Option<OffsetDateTime>,
    /// Only rows with a larger `seq`: the cursor of the previous page.
    pub after_seq: i64,
    /// Maximum number of rows to return.
    pub limit: usize,
}

/// The result of walking the whole audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditVerification {
    /// Every row links to the one before and matches its hash.
    Intact {
        /// Number of rows checked.
        entries: u64,
        /// The newest row's `seq` and hash, or `None` for an empty trail.
        head: Option<(i64, [u8; 32])>,
    },
    /// The first row where the chain breaks.
    Broken(AuditBreak),
}

/// The first break in the audit chain and its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first row that fails the check.
    pub seq: i64,
    pub kind: AuditBreakKind,
    /// Number of rows before it that passed.
    pub entries_checked: u64,
}

/// The way a row fails the chain check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditBreakKind {
    /// The row's content no longer matches its hash: it was changed after it was
    /// written.
    ContentChanged,
    /// The row's `prev_hash` is not the hash of the row before it (`previous_seq`,
    /// `None` when it is the first row): a row before it was changed and rehashed,
    /// inserted or deleted.
    LinkBroken { previous_seq: Option<i64> },
    /// The row has no hash, which the store never writes.
    Unsealed,
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match self.kind {
            AuditBreakKind::ContentChanged => {
                write!(f, "audit row {seq} does not match its hash: the row was changed after it was written")
            }
            AuditBreakKind::LinkBroken { previous_seq: Some(previous) } => write!(
                f,
                "audit row {seq} does not link to row {previous}: a row at or before {previous} was changed, \
                 inserted or deleted"
            ),
            AuditBreakKind::LinkBroken { previous_seq: None } => {
                write!(f, "audit row {seq} is the first row but does not start the chain: rows before it were deleted")
            }
            AuditBreakKind::Unsealed => write!(f, "audit row {seq} has no hash: it was not written by epro"),
        }
    }
}
