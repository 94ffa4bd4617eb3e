//! Reads of corrections and signatures on SQLite: the latest version of a submission,
//! and a submission with every version and signature in one read transaction.

use anyhow::{Context as _, anyhow};
use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::columns::parse_timestamp;
use crate::model::{Signature, SubmissionHistory, SubmissionVersion};
use crate::writer::SUBMISSION_CREATED;

const SELECT_VERSIONS: &str = "
    SELECT version, base_version, normalized_answers, scores, status, changed_items, reason, actor,
           corrected_at, request_id
    FROM submission_versions WHERE submission_id = ?1 ORDER BY version";

const SELECT_SIGNATURES: &str = "
    SELECT signature_id, submission_id, version, signer, meaning, signed_at, voided_at, voided_by_version
    FROM signatures WHERE submission_id = ?1 ORDER BY signature_id";

/// The actor of version 1 is the one its `submission.created` audit row recorded.
const SELECT_CREATOR: &str = "
    SELECT actor FROM audit_events
    WHERE entity = 'submission' AND entity_id = ?1 AND action = ?2
    ORDER BY seq LIMIT 1";

/// Returns the latest version of a submission: 1 until a correction is stored.
///
/// # Errors
///
/// Fails on a database error.
pub(crate) fn latest_version(connection: &Connection, submission_id: &str) -> anyhow::Result<u32> {
    connection
        .prepare_cached("SELECT coalesce(max(version), 1) FROM submission_versions WHERE submission_id = ?1")?
        .query_row([submission_id], |row| row.get(0))
        .with_context(|| format!("failed to read the latest version of submission {submission_id}"))
}

/// Reads a submission with its data queries, every version and every signature, all
/// as of one commit.
///
/// # Errors
///
/// Fails on a database error, a row that this crate could not have written, or a
/// submission without its `submission.created` audit row.
pub(crate) fn submission_history(
    connection: &Connection,
    submission_id: &str,
) -> anyhow::Result<Option<SubmissionHistory>> {
    let snapshot = connection.unchecked_transaction().context("failed to begin read transaction")?;
    let Some(submission) = super::read_submission(&snapshot, submission_id)? else {
        return Ok(None);
    };

    let creator: Option<String> = snapshot
        .prepare_cached(SELECT_CREATOR)?
        .query_row(rusqlite::params![submission_id, SUBMISSION_CREATED], |row| row.get(0))
        .optional()
        .with_context(|| format!("failed to read the audit row of submission {submission_id}"))?;
    let creator = creator.ok_or_else(|| anyhow!("submission {submission_id} has no {SUBMISSION_CREATED} audit row"))?;
    let mut versions = vec![SubmissionVersion {
        version: 1,
        replaces: None,
        normalized_answers: submission.normalized_answers.clone(),
        scores: submission.scores.clone(),
        status: submission.status,
        changed_items: Vec::new(),
        reason: None,
        actor: creator,
        recorded_at: submission.received_at,
        request_id: submission.request_id.clone(),
    }];

    let mut statement = snapshot.prepare_cached(SELECT_VERSIONS)?;
    let rows = statement
        .query_map([submission_id], VersionColumns::from_row)
        .with_context(|| format!("failed to read the versions of submission {submission_id}"))?;
    for row in rows {
        let columns = row.context("failed to read submission version")?;
        let version = columns.version;
        versions.push(
            columns
                .decode()
                .with_context(|| format!("invalid stored version {version} of submission {submission_id}"))?,
        );
    }

    let mut statement = snapshot.prepare_cached(SELECT_SIGNATURES)?;
    let rows = statement
        .query_map([submission_id], SignatureColumns::from_row)
        .with_context(|| format!("failed to read the signatures of submission {submission_id}"))?;
    let mut signatures = Vec::new();
    for row in rows {
        signatures.push(row.context("failed to read signature")?.decode()?);
    }

    Ok(Some(SubmissionHistory { submission, versions, signatures }))
}

/// A `submission_versions` row as [`SELECT_VERSIONS`] reads it, before decoding.
struct VersionColumns {
    version: u32,
    base_version: u32,
    normalized_answers: String,
    scores: String,
    status: String,
    changed_items: String,
    reason: String,
    actor: String,
    corrected_at: String,
    request_id: Option<String>,
}

impl VersionColumns {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(VersionColumns {
            version: row.get(0)?,
            base_version: row.get(1)?,
            normalized_answers: row.get(2)?,
            scores: row.get(3)?,
            status: row.get(4)?,
            changed_items: row.get(5)?,
            reason: row.get(6)?,
            actor: row.get(7)?,
            corrected_at: row.get(8)?,
            request_id: row.get(9)?,
        })
    }

    fn decode(self) -> anyhow::Result<SubmissionVersion> {
        Ok(SubmissionVersion {
            version: self.version,
            replaces: Some(self.base_version),
            normalized_answers: self.normalized_answers,
            scores: self.scores,
            status: self.status.parse()?,
            changed_items: serde_json::from_str(&self.changed_items)
                .context("changed_items is not a JSON array of strings")?,
            reason: Some(self.reason),
            actor: self.actor,
            recorded_at: parse_timestamp(&self.corrected_at)?,
            request_id: self.request_id,
        })
    }
}

/// A `signatures` row, before decoding.
pub(crate) struct SignatureColumns {
    signature_id: String,
    submission_id: String,
    version: u32,
    signer: String,
    meaning: String,
    signed_at: String,
    voided_at: Option<String>,
    voided_by_version: Option<u32>,
}

impl SignatureColumns {
    /// Reads `signature_id, submission_id, version, signer, meaning, signed_at,
    /// voided_at, voided_by_version`, in that order.
    pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(SignatureColumns {
            signature_id: row.get(0)?,
            submission_id: row.get(1)?,
            version: row.get(2)?,
            signer: row.get(3)?,
            meaning: row.get(4)?,
            signed_at: row.get(5)?,
            voided_at: row.get(6)?,
            voided_by_version: row.get(7)?,
        })
    }

    pub(crate) fn decode(self) -> anyhow::Result<Signature> {
        let signature_id = self.signature_id.clone();
        self.decode_fields().with_context(|| format!("invalid stored signature {signature_id}"))
    }

    fn decode_fields(self) -> anyhow::Result<Signature> {
        Ok(Signature {
            signature_id: self.signature_id,
            submission_id: self.submission_id,
            version: self.version,
            signer: self.signer,
            meaning: self.meaning,
            signed_at: parse_timestamp(&self.signed_at)?,
            voided_at: self.voided_at.as_deref().map(parse_timestamp).transpose()?,
            voided_by_version: self.voided_by_version,
        })
    }
}
