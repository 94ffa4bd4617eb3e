//! Revalidation records: the results of re-running the current rules over a stored
//! submission, written beside it. The submission row itself is never touched, and its
//! intake scores and status stay as they were.

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::queries::{QueryTarget, insert_query};
use super::{SUBMISSION_REVALIDATED, insert_audit_event};
use crate::audit::AuditEntry;
use crate::columns::format_utc;
use crate::model::{QueryOrigin, Revalidation, RevalidationOutcome};

const INSERT_DERIVED_RECORD: &str = "
    INSERT INTO derived_records (submission_id, run_id, computed_at, form_version, scores, findings)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Appends one `derived_records` row, raises the queries the submission does not have
/// yet (origin `revalidation`) and appends one audit row.
///
/// # Errors
///
/// Fails when the submission does not exist, or when a CHECK rejects a row: an empty
/// run id, scores that are not a JSON array, findings or query params that are not
/// valid JSON, or an empty actor. The savepoint then undoes every row of the record.
pub(super) fn record_revalidation(
    connection: &Connection,
    record: &Revalidation,
    now: OffsetDateTime,
) -> anyhow::Result<RevalidationOutcome> {
    let submission_id = record.submission_id.as_str();
    let owner: Option<(String, String)> = connection
        .prepare_cached("SELECT trial_id, patient_id FROM submissions WHERE submission_id = ?1")?
        .query_row([submission_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .with_context(|| format!("failed to look up submission {submission_id}"))?;
    let Some((trial_id, patient_id)) = owner else {
        bail!("failed to record revalidation of submission {submission_id}: no such submission");
    };

    let computed_at = format_utc(now)?;
    connection
        .prepare_cached(INSERT_DERIVED_RECORD)?
        .execute(params![
            submission_id,
            record.run_id,
            computed_at,
            record.form_version,
            record.scores,
            record.findings
        ])
        .with_context(|| format!("failed to insert derived record of submission {submission_id}"))?;
    let record_seq = connection.last_insert_rowid();

    // Revalidation reruns the rules on the submission as received, version 1.
    let target = QueryTarget {
        submission_id,
        form_version: &record.form_version,
        origin: QueryOrigin::Revalidation,
        version: 1,
    };
    let mut new_queries = Vec::new();
    for query in &record.queries {
        new_queries.extend(insert_query(connection, &target, query, &computed_at)?);
    }

    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&trial_id),
            patient_id: Some(&patient_id),
            submission_id: Some(submission_id),
            ..AuditEntry::new(now, &record.actor, SUBMISSION_REVALIDATED, "submission", submission_id)
        },
    )?;

    Ok(RevalidationOutcome { record_seq, new_queries })
}
