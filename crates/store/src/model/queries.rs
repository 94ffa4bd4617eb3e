//! Data queries and revalidation: queries going in with a submission or a revalidation
//! record, stored queries and their status changes, and the listing filter.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Redacted;

/// Workflow state of a data query. A new query is `Open`. Site staff answer it and a
/// data manager closes it, but the store allows every change between two different
/// states, so that a closed query can be reopened. Who may make which change is the
/// caller's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryStatus {
    /// Raised and waiting for site staff.
    Open,
    /// Site staff have responded, and the response waits for review.
    Answered,
    /// Resolved. No further action is expected unless the query is reopened.
    Closed,
}

impl QueryStatus {
    /// Returns the name stored in the `status` column: `open`, `answered` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryStatus::Open => "open",
            QueryStatus::Answered => "answered",
            QueryStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for QueryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueryStatus {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "open" => Ok(QueryStatus::Open),
            "answered" => Ok(QueryStatus::Answered),
            "closed" => Ok(QueryStatus::Closed),
            other => bail!("unknown query status {other:?}, expected open, answered or closed"),
        }
    }
}

/// Source of a data query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryOrigin {
    /// The rule engine, when the submission arrived.
    Intake,
    /// A revalidation run over stored submissions.
    Revalidation,
}

impl QueryOrigin {
    /// Returns the name stored in the `origin` column: `intake` or `revalidation`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryOrigin::Intake => "intake",
            QueryOrigin::Revalidation => "revalidation",
        }
    }
}

impl fmt::Display for QueryOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueryOrigin {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "intake" => Ok(QueryOrigin::Intake),
            "revalidation" => Ok(QueryOrigin::Revalidation),
            other => bail!("unknown query origin {other:?}, expected intake or revalidation"),
        }
    }
}

/// A data query to raise on a submission, from a rule engine finding of severity
/// `query`.
///
/// A submission has at most one query per `(item, code, rule)`. Raising the same one
/// again is a no-op.
#[derive(Clone, PartialEq, Eq)]
pub struct NewQuery {
    /// linkId of the item the query is about, or `""` for the whole form.
    pub item: String,
    /// Finding code, for example `rule_violated`, `score_mismatch` or
    /// `stale_form_version`. Must not be empty.
    pub code: String,
    /// Rule key or score name, or `""` when the code alone identifies the finding.
    pub rule: String,
    /// Parameters of the message shown to site staff, as JSON object text. Never
    /// answers: the store cannot check this, so the rule engine must not put them here.
    pub params: String,
}

impl fmt::Debug for NewQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewQuery")
            .field("item", &self.item)
            .field("code", &self.code)
            .field("rule", &self.rule)
            .field("params", &Redacted(self.params.len()))
            .finish()
    }
}

/// Identity of a raised data query, returned in a [`Receipt`](crate::Receipt).
///
/// Serializes with camelCase keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRef {
    /// UUID v7 chosen by the store, so query ids sort in creation order: exactly within
    /// one process, and to the millisecond between processes.
    pub query_id: String,
    pub item: String,
    pub code: String,
    pub rule: String,
}

/// A data query as stored, read by [`Store::query`](crate::Store::query) and
/// [`Store::queries`](crate::Store::queries).
#[derive(Clone, PartialEq, Eq)]
pub struct DataQuery {
    /// UUID v7, so query ids sort in creation order: exactly within one process, and to
    /// the millisecond between processes.
    pub query_id: String,
    pub submission_id: String,
    pub trial_id: String,
    pub form_id: String,
    /// Version of the form definition whose rules raised the query: the submission's
    /// own version at intake, the version revalidated against otherwise.
    pub form_version: String,
    pub patient_id: String,
    /// The version of the submission whose answers raised the query: 1 for the
    /// submission as received, a later number for a correction.
    pub version: u32,
    /// linkId of the item, or `""` for the whole form.
    pub item: String,
    pub code: String,
    /// Rule key or score name, or `""`.
    pub rule: String,
    /// Message parameters, a JSON object text.
    pub params: String,
    pub status: QueryStatus,
    pub origin: QueryOrigin,
    pub created_at: OffsetDateTime,
    /// Time of the last status change, or `created_at` if there was none.
    pub updated_at: OffsetDateTime,
}

impl fmt::Debug for DataQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataQuery")
            .field("query_id", &self.query_id)
            .field("submission_id", &self.submission_id)
            .field("trial_id", &self.trial_id)
            .field("form_id", &self.form_id)
            .field("form_version", &self.form_version)
            .field("version", &self.version)
            .field("item", &self.item)
            .field("code", &self.code)
            .field("rule", &self.rule)
            .field("params", &Redacted(self.params.len()))
            .field("status", &self.status)
            .field("origin", &self.origin)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// Filters and cursor of [`Store::queries`](crate::Store::queries). `None` fields do
/// not filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryFilter {
    pub trial_id: String,
    pub status: Option<QueryStatus>,
    pub form_id: Option<String>,
    pub patient_id: Option<String>,
    /// Only patients enrolled at one of these sites (a site-bound caller's view).
    /// `None` lists every patient, enrolled or not.
    pub site_ids: Option<Vec<String>>,
    /// linkId of the item. `Some("")` lists only whole-form queries.
    pub item: Option<String>,
    /// Cursor: only queries with a greater `query_id` are listed. Pass the last
    /// `query_id` of the previous page.
    pub after: Option<String>,
    /// Maximum number of queries returned.
    pub limit: usize,
}

impl QueryFilter {
    /// Creates a filter for the first `limit` queries of a trial, in any status.
    pub fn new(trial_id: impl Into<String>, limit: usize) -> Self {
        QueryFilter {
            trial_id: trial_id.into(),
            status: None,
            form_id: None,
            patient_id: None,
            site_ids: None,
            item: None,
            after: None,
            limit,
        }
    }
}

/// A status change of one data query, for
/// [`Store::update_query_status`](crate::Store::update_query_status).
#[derive(Clone, PartialEq, Eq)]
pub struct QueryStatusChange {
    pub query_id: String,
    /// The new status.
    pub status: QueryStatus,
    /// Reason for the change, kept in the query's history. Must not be blank.
    pub comment: String,
    /// User making the change, for example `staff:S-017`, recorded in the history and
    /// the audit trail. Must not be empty.
    pub actor: String,
    /// Request id of the HTTP request that asked for the change.
    pub request_id: Option<String>,
}

impl fmt::Debug for QueryStatusChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Site staff write free text into the comment, which may name the patient.
        f.debug_struct("QueryStatusChange")
            .field("query_id", &self.query_id)
            .field("status", &self.status)
            .field("comment", &Redacted(self.comment.len()))
            .field("actor", &self.actor)
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// Result of [`Store::update_query_status`](crate::Store::update_query_status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryUpdate {
    /// The status changed, with its history and audit rows. Contains the query as
    /// stored after the change.
    Updated(DataQuery),
    /// No data query has this id. Nothing was written.
    NotFound,
    /// The query already had the requested status. Nothing was written.
    Unchanged(DataQuery),
}

/// The results of re-running the current rules over one stored submission, for
/// [`Store::record_revalidation`](crate::Store::record_revalidation).
#[derive(Clone, PartialEq, Eq)]
pub struct Revalidation {
    /// Identifier of the run, shared by every record it writes. Must not be empty.
    pub run_id: String,
    pub submission_id: String,
    /// Version of the form definition whose rules were run.
    pub form_version: String,
    /// Scores computed by this run, a JSON array.
    pub scores: String,
    /// The rule engine's findings, as JSON. Never answers.
    pub findings: String,
    /// Data queries to raise. Queries the submission already has, with the same item,
    /// code and rule, are skipped whatever their status.
    pub queries: Vec<NewQuery>,
    /// Operator or job running the revalidation, for example `operator:cli`, recorded
    /// in the audit trail.
    pub actor: String,
}

impl fmt::Debug for Revalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revalidation")
            .field("run_id", &self.run_id)
            .field("submission_id", &self.submission_id)
            .field("form_version", &self.form_version)
            .field("scores", &Redacted(self.scores.len()))
            .field("findings", &Redacted(self.findings.len()))
            .field("queries", &self.queries)
            .field("actor", &self.actor)
            .finish()
    }
}

/// Result of [`Store::record_revalidation`](crate::Store::record_revalidation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevalidationOutcome {
    /// `seq` of the `derived_records` row written.
    pub record_seq: i64,
    /// The queries this run raised, in the order given. Queries the submission already
    /// had are not listed, so a rerun with the same findings returns an empty list.
    pub new_queries: Vec<QueryRef>,
}
