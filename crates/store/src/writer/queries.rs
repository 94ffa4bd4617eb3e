//! Data query writes: raising a query on a stored submission, and changing a query's
//! status together with its history row and audit row.
//!
//! Nothing here deletes a query or changes anything but its `status` and `updated_at`,
//! and the triggers of migration 0002 reject any statement that tries.

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{QUERY_STATUS_CHANGED, insert_audit_event};
use crate::audit::AuditEntry;
use crate::columns::format_utc;
use crate::model::{NewQuery, QueryOrigin, QueryRef, QueryStatusChange, QueryUpdate};
use crate::reader;

/// Copies trial, form and patient from the submission row, so that a query always
/// matches its submission. The conflict target is the unique index
/// `data_queries_finding`, so a repeated finding is skipped while every other
/// constraint (for example the CHECK on `params`) still fails the statement.
const INSERT_QUERY: &str = "
    INSERT INTO data_queries (
        query_id, submission_id, trial_id, form_id, form_version, patient_id,
        item, code, rule, params, status, origin, created_at, updated_at, version
    )
    SELECT ?1, submission_id, trial_id, form_id, ?2, patient_id,
           ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?8, ?10
    FROM submissions WHERE submission_id = ?9
    ON CONFLICT (submission_id, version, item, code, rule) DO NOTHING";

const UPDATE_STATUS: &str = "UPDATE data_queries SET status = ?2, updated_at = ?3 WHERE query_id = ?1";

const INSERT_QUERY_EVENT: &str = "
    INSERT INTO data_query_events (
        query_id, occurred_at, actor, from_status, to_status, comment, request_id
    ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The submission a query is raised on, and by what.
pub(super) struct QueryTarget<'a> {
    /// Must name a stored submission: for an unknown id the insert finds no row to copy
    /// from and raises nothing.
    pub(super) submission_id: &'a str,
    /// Version of the form definition whose rules raised the query.
    pub(super) form_version: &'a str,
    pub(super) origin: QueryOrigin,
    /// Version of the submission whose answers raised the query: 1 at intake and in
    /// revalidation, the new version's number for a correction.
    pub(super) version: u32,
}

/// Raises one open data query, or returns `None` when the submission's version already
/// has a query with the same item, code and rule, whatever its status.
///
/// # Errors
///
/// Fails when a CHECK rejects the row: an empty code, or `params` that is not a JSON
/// object.
pub(super) fn insert_query(
    connection: &Connection,
    target: &QueryTarget<'_>,
    query: &NewQuery,
    created_at: &str,
) -> anyhow::Result<Option<QueryRef>> {
    let submission_id = target.submission_id;
    let query_id = Uuid::now_v7().hyphenated().to_string();

    let inserted = connection
        .prepare_cached(INSERT_QUERY)?
        .execute(params![
            query_id,
            target.form_version,
            query.item,
            query.code,
            query.rule,
            query.params,
            target.origin.as_str(),
            created_at,
            submission_id,
            target.version,
        ])
        .with_context(|| {
            format!("failed to insert data query {} on item {:?} of submission {submission_id}", query.code, query.item)
        })?;

    let raised = inserted == 1;
    Ok(raised.then(|| QueryRef {
        query_id,
        item: query.item.clone(),
        code: query.code.clone(),
        rule: query.rule.clone(),
    }))
}

/// Changes a query's status and records the change in `data_query_events` and
/// `audit_events`. A query already in the requested status is returned unchanged, and
/// nothing is written.
///
/// # Errors
///
/// Fails when a CHECK rejects the history or audit row: a blank comment or an empty
/// actor. The savepoint then undoes the status change as well.
pub(super) fn update_query_status(
    connection: &Connection,
    change: &QueryStatusChange,
    now: OffsetDateTime,
) -> anyhow::Result<QueryUpdate> {
    let query_id = change.query_id.as_str();
    let Some(current) = reader::data_query(connection, query_id)? else {
        return Ok(QueryUpdate::NotFound);
    };
    if current.status == change.status {
        return Ok(QueryUpdate::Unchanged(current));
    }

    let occurred_at = format_utc(now)?;
    let from_status = current.status;
    let updated = connection
        .prepare_cached(UPDATE_STATUS)?
        .execute(params![query_id, change.status.as_str(), occurred_at])
        .with_context(|| format!("failed to set status of data query {query_id} to {}", change.status))?;
    ensure!(updated == 1, "failed to set status of data query {query_id}: {updated} rows changed");

    connection
        .prepare_cached(INSERT_QUERY_EVENT)?
        .execute(params![
            query_id,
            occurred_at,
            change.actor,
            from_status.as_str(),
            change.status.as_str(),
            change.comment,
            change.request_id,
        ])
        .with_context(|| format!("failed to insert status history of data query {query_id}"))?;

    let before = serde_json::json!({ "status": from_status.as_str() }).to_string();
    let after = serde_json::json!({ "status": change.status.as_str() }).to_string();
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&current.trial_id),
            patient_id: Some(&current.patient_id),
            submission_id: Some(&current.submission_id),
            before_value: Some(&before),
            after_value: Some(&after),
            reason: Some(&change.comment),
            request_id: change.request_id.as_deref(),
            ..AuditEntry::new(now, &change.actor, QUERY_STATUS_CHANGED, "data_query", query_id)
        },
    )?;

    let stored = reader::data_query(connection, query_id)?
        .with_context(|| format!("data query {query_id} not found after its status change"))?;
    Ok(QueryUpdate::Updated(stored))
}
