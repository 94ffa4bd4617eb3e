//! Corrections and signatures: a correction going in, its receipt, the versions of a
//! submission read back, and an investigator's signature on one version.
//!
//! Version 1 of a submission is its row in `submissions`; each correction adds the
//! next version. Version N+1 is always made from version N, which is what makes a
//! correction from an outdated version fail and a retried one find its first result.

use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;

use super::{NewAlert, NewQuery, QueryRef, Redacted, StoredSubmission, SubmissionStatus};

/// One item whose answer a correction changes, with its answer before and after in
/// epro's normalized shape. `None` is no answer: a correction that clears an item has
/// `after: None`, one that answers an unanswered item `before: None`.
#[derive(Clone, PartialEq)]
pub struct AnswerChange {
    /// linkId of the item.
    pub link_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl fmt::Debug for AnswerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerChange")
            .field("link_id", &self.link_id)
            .field("before", &Redacted(self.before.as_ref().map_or(0, |value| value.to_string().len())))
            .field("after", &Redacted(self.after.as_ref().map_or(0, |value| value.to_string().len())))
            .finish()
    }
}

/// A validated correction of a stored submission, for
/// [`Store::correct`](crate::Store::correct).
///
/// The caller has merged the changes into the base version's answers and checked the
/// result against the submission's form version with its rules, as at intake. The
/// store checks that `base_version` is still the latest version, in the transaction
/// that writes the new one.
#[derive(Clone)]
pub struct NewCorrection {
    pub submission_id: String,
    /// The version the changes apply to, at least 1. The correction becomes version
    /// `base_version + 1`.
    pub base_version: u32,
    /// Every answer of the new version in epro's normalized shape, a JSON object.
    pub normalized_answers: String,
    /// The items whose answers differ from the base version, in the order to report
    /// them. Must not be empty.
    pub changes: Vec<AnswerChange>,
    /// Scores computed by the rules on the new version, a JSON array.
    pub scores: String,
    /// Data queries the rules raised on the new version. They are stored for that
    /// version, open and with origin `intake`.
    pub queries: Vec<NewQuery>,
    /// Alerts the rules raised on the new version, each stored open for that version
    /// with an `alert.raised` event, as at intake. `due_at` must lie after the
    /// correction's time.
    pub alerts: Vec<NewAlert>,
    /// The reason the data changes. Must not be blank.
    pub reason: String,
    /// The actor making the correction, for example `operator` or `staff:S-017`.
    pub actor: String,
    pub request_id: Option<String>,
    /// SHA-256 that identifies the correction's content: a second request with the same
    /// base version and the same hash is the same correction sent again.
    pub content_sha256: [u8; 32],
}

impl NewCorrection {
    /// Returns the status the new version is stored with, which depends only on
    /// whether the rules raised data queries on it.
    pub fn status(&self) -> SubmissionStatus {
        if self.queries.is_empty() { SubmissionStatus::Accepted } else { SubmissionStatus::AcceptedWithQueries }
    }

    /// Returns the linkIds of the changed items, in order.
    pub fn changed_items(&self) -> Vec<&str> {
        self.changes.iter().map(|change| change.link_id.as_str()).collect()
    }

    /// Builds the audit row's `before_value` and `after_value`: the base and the new
    /// version with the answers of the changed items, `null` for no answer.
    pub(crate) fn audit_values(&self) -> (String, String) {
        let mut before = serde_json::Map::new();
        let mut after = serde_json::Map::new();
        for change in &self.changes {
            before.insert(change.link_id.clone(), change.before.clone().unwrap_or(Value::Null));
            after.insert(change.link_id.clone(), change.after.clone().unwrap_or(Value::Null));
        }
        let before = serde_json::json!({ "version": self.base_version, "answers": before });
        let after = serde_json::json!({ "version": self.base_version + 1, "answers": after });
        (before.to_string(), after.to_string())
    }
}

impl fmt::Debug for NewCorrection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCorrection")
            .field("submission_id", &self.submission_id)
            .field("base_version", &self.base_version)
            .field("normalized_answers", &Redacted(self.normalized_answers.len()))
            .field("changes", &self.changes)
            .field("scores", &Redacted(self.scores.len()))
            .field("queries", &self.queries)
            .field("alerts", &self.alerts)
            .field("reason", &Redacted(self.reason.len()))
            .field("actor", &self.actor)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// Proof that a correction is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrectionReceipt {
    pub submission_id: String,
    /// The new version's number.
    pub version: u32,
    /// The version it was made from, always `version - 1`.
    pub replaces: u32,
    pub status: SubmissionStatus,
    /// Data queries the rules raised on the new version, in the order raised.
    pub queries: Vec<QueryRef>,
    pub corrected_at: OffsetDateTime,
}

/// Result of [`Store::correct`](crate::Store::correct).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorrectionOutcome {
    /// The new version is committed with its data queries, the voided signatures, the
    /// `submission.corrected` event and the audit rows.
    Created(CorrectionReceipt),
    /// The base version already has a successor with the same content hash: the same
    /// correction sent again. Nothing was written, and the receipt is the first one.
    Replayed(CorrectionReceipt),
    /// The base version is not the latest version, and its successor (if any) has
    /// other content. Nothing was written.
    Conflict {
        /// The latest version of the submission.
        current_version: u32,
    },
    /// No submission has this id. Nothing was written.
    NotFound,
}

/// One version of a submission as stored, read by
/// [`Store::submission_history`](crate::Store::submission_history).
#[derive(Clone, PartialEq)]
pub struct SubmissionVersion {
    pub version: u32,
    /// The version this one corrects, `None` for version 1.
    pub replaces: Option<u32>,
    /// Every answer of this version, in epro's normalized shape.
    pub normalized_answers: String,
    /// Scores computed on this version, a JSON array.
    pub scores: String,
    pub status: SubmissionStatus,
    /// linkIds changed from the version before, empty for version 1.
    pub changed_items: Vec<String>,
    /// The correction reason, `None` for version 1.
    pub reason: Option<String>,
    /// The actor that stored the version: the actor of the `submission.created` audit row for
    /// version 1 (for example `patient:P-001`), the correction's actor otherwise.
    pub actor: String,
    /// When the version was stored: the receipt time for version 1, the correction
    /// time otherwise.
    pub recorded_at: OffsetDateTime,
    pub request_id: Option<String>,
}

impl fmt::Debug for SubmissionVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmissionVersion")
            .field("version", &self.version)
            .field("replaces", &self.replaces)
            .field("normalized_answers", &Redacted(self.normalized_answers.len()))
            .field("scores", &Redacted(self.scores.len()))
            .field("status", &self.status)
            .field("changed_items", &self.changed_items)
            .field("reason", &self.reason.as_ref().map(|reason| Redacted(reason.len())))
            .field("actor", &self.actor)
            .field("recorded_at", &self.recorded_at)
            .finish_non_exhaustive()
    }
}

/// A stored submission with every version and signature, read in one snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmissionHistory {
    /// Version 1 as received, with the data queries of every version.
    pub submission: StoredSubmission,
    /// Every version, version 1 first. Never empty.
    pub versions: Vec<SubmissionVersion>,
    /// Every signature on any version, oldest first.
    pub signatures: Vec<Signature>,
}

impl SubmissionHistory {
    /// Returns the latest version.
    pub fn latest(&self) -> &SubmissionVersion {
        // `versions` always contains version 1.
        self.versions.last().expect("a submission has version 1")
    }

    /// Returns version `version`, or `None` when the submission has no such version.
    pub fn version(&self, version: u32) -> Option<&SubmissionVersion> {
        self.versions.iter().find(|stored| stored.version == version)
    }
}

/// An investigator's signature request on one version, for
/// [`Store::sign`](crate::Store::sign).
#[derive(Clone, PartialEq, Eq)]
pub struct NewSignature {
    pub submission_id: String,
    pub version: u32,
    /// The signer, for example `operator` or `staff:S-017`. Must not be empty.
    pub signer: String,
    /// The meaning of the signature, for example `reviewed and approved`. Must not
    /// be blank.
    pub meaning: String,
    pub request_id: Option<String>,
}

impl fmt::Debug for NewSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSignature")
            .field("submission_id", &self.submission_id)
            .field("version", &self.version)
            .field("signer", &self.signer)
            .field("meaning", &Redacted(self.meaning.len()))
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// A signature as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// UUID v7, so signature ids sort in creation order.
    pub signature_id: String,
    pub submission_id: String,
    pub version: u32,
    pub signer: String,
    pub meaning: String,
    pub signed_at: OffsetDateTime,
    /// When a correction voided the signature, `None` while it is valid.
    pub voided_at: Option<OffsetDateTime>,
    /// The version of that correction.
    pub voided_by_version: Option<u32>,
}

/// Result of [`Store::sign`](crate::Store::sign).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignOutcome {
    /// The signature is committed with its `signature.applied` audit row.
    Signed(Signature),
    /// The signer signed this version with this meaning before, and the signature is
    /// still valid. Nothing was written.
    AlreadySigned(Signature),
    /// The version exists but a later one does: only the latest version can be signed.
    /// Nothing was written.
    NotLatest {
        /// The latest version of the submission.
        current_version: u32,
    },
    /// The submission has no such version. Nothing was written.
    VersionNotFound,
    /// No submission has this id. Nothing was written.
    SubmissionNotFound,
}

/// The payload of the `alert.raised` event of an alert raised on a corrected
/// version: the intake payload's fields and the version.
pub(crate) fn corrected_alert_payload(
    form_id: &str,
    form_version: &str,
    version: u32,
    alert: &NewAlert,
    alert_id: &str,
) -> serde_json::Value {
    serde_json::json!({
        "alertId": alert_id,
        "alertRule": alert.rule,
        "severity": alert.severity,
        "items": alert.items,
        "formId": form_id,
        "formVersion": form_version,
        "version": version,
        "dueAt": crate::audit::format_audit_time(alert.due_at),
    })
}
