//! Data query status changes and revalidation records on PostgreSQL, each in its own
//! transaction on the pool, with the same rows and checks as the SQLite versions in
//! `crate::writer::queries` and `crate::writer::revalidation`.

use anyhow::{Context as _, ensure};
use deadpool_postgres::Object;
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit;
use super::batch::{JsonKind, QueryRow, check_json, distinct_findings, insert_queries};
use super::reader;
use crate::audit::AuditEntry;
use crate::model::{QueryOrigin, QueryRef, QueryStatusChange, QueryUpdate, Revalidation, RevalidationOutcome};
use crate::writer::{QUERY_STATUS_CHANGED, SUBMISSION_REVALIDATED};

/// Changes a query's status and records the change in `data_query_events` and
/// `audit_events`. A query already in the requested status is returned unchanged, and
/// nothing is written.
///
/// The query's row is locked (`FOR UPDATE`) before its status is compared, so that of
/// several concurrent changes to the same status exactly one is recorded: the others
/// wait for it and then find the status already set.
///
/// # Errors
///
/// Fails when a CHECK rejects the history or audit row: a blank comment or an empty
/// actor. The transaction then undoes the status change as well.
pub(super) async fn update_query_status(
    client: &mut Object,
    change: &QueryStatusChange,
) -> anyhow::Result<QueryUpdate> {
    let query_id = change.query_id.as_str();
    let transaction = client.transaction().await.context("failed to begin transaction")?;

    let locked = transaction
        .query_opt(
            "SELECT status, trial_id, patient_id, submission_id FROM data_queries WHERE query_id = $1 FOR UPDATE",
            &[&query_id],
        )
        .await
        .with_context(|| format!("failed to lock data query {query_id}"))?;
    let Some(locked) = locked else {
        return Ok(QueryUpdate::NotFound);
    };
    let from_status: String = locked.try_get(0).with_context(|| format!("failed to read data query {query_id}"))?;
    let trial_id: String = locked.try_get(1)?;
    let patient_id: String = locked.try_get(2)?;
    let submission_id: String = locked.try_get(3)?;
    if from_status == change.status.as_str() {
        let current = reader::data_query(&transaction, query_id)
            .await?
            .with_context(|| format!("data query {query_id} vanished while locked"))?;
        return Ok(QueryUpdate::Unchanged(current));
    }

    let updated = transaction
        .execute(
            "UPDATE data_queries SET status = $2, updated_at = now() WHERE query_id = $1",
            &[&query_id, &change.status.as_str()],
        )
        .await
        .with_context(|| format!("failed to set status of data query {query_id} to {}", change.status))?;
    ensure!(updated == 1, "failed to set status of data query {query_id}: {updated} rows changed");

    transaction
        .execute(
            "INSERT INTO data_query_events (query_id, occurred_at, actor, from_status, to_status, comment, request_id)
             VALUES ($1, now(), $2, $3, $4, $5, $6)",
            &[&query_id, &change.actor, &from_status, &change.status.as_str(), &change.comment, &change.request_id],
        )
        .await
        .with_context(|| format!("failed to insert status history of data query {query_id}"))?;
    let before = serde_json::json!({ "status": from_status }).to_string();
    let after = serde_json::json!({ "status": change.status.as_str() }).to_string();
    let entry = AuditEntry {
        trial_id: Some(&trial_id),
        patient_id: Some(&patient_id),
        submission_id: Some(&submission_id),
        before_value: Some(&before),
        after_value: Some(&after),
        reason: Some(&change.comment),
        request_id: change.request_id.as_deref(),
        ..AuditEntry::new(OffsetDateTime::now_utc(), &change.actor, QUERY_STATUS_CHANGED, "data_query", query_id)
    };
    audit::append(&transaction, &[entry])
        .await
        .with_context(|| format!("failed to insert audit event for data query {query_id}"))?;

    let stored = reader::data_query(&transaction, query_id)
        .await?
        .with_context(|| format!("data query {query_id} not found after its status change"))?;
    transaction.commit().await.with_context(|| format!("failed to commit status change of data query {query_id}"))?;
    Ok(QueryUpdate::Updated(stored))
}

/// Appends one `derived_records` row, raises the queries the submission does not have
/// yet (origin `revalidation`) and appends one audit row, all in one transaction.
///
/// # Errors
///
/// Fails when the submission does not exist, or when a check rejects a value: an empty
/// run id, scores that are not a JSON array, findings or query params that are not
/// valid JSON, or an empty actor. Nothing is recorded then.
pub(super) async fn record_revalidation(
    client: &mut Object,
    record: &Revalidation,
) -> anyhow::Result<RevalidationOutcome> {
    let submission_id = record.submission_id.as_str();
    check_json(&record.scores, JsonKind::Array)
        .with_context(|| format!("scores of revalidation of {submission_id}"))?;
    check_json(&record.findings, JsonKind::Any)
        .with_context(|| format!("findings of revalidation of {submission_id}"))?;
    for query in &record.queries {
        check_json(&query.params, JsonKind::Object).with_context(|| {
            format!("params of data query {} on item {:?} of submission {submission_id}", query.code, query.item)
        })?;
    }

    let transaction = client.transaction().await.context("failed to begin transaction")?;
    let submission = transaction
        .query_opt("SELECT trial_id, form_id, patient_id FROM submissions WHERE submission_id = $1", &[&submission_id])
        .await
        .with_context(|| format!("failed to look up submission {submission_id}"))?;
    let Some(submission) = submission else {
        anyhow::bail!("failed to record revalidation of submission {submission_id}: no such submission");
    };
    let trial_id: String = submission.try_get(0)?;
    let form_id: String = submission.try_get(1)?;
    let patient_id: String = submission.try_get(2)?;

    let derived = transaction
        .query_one(
            "INSERT INTO derived_records (submission_id, run_id, computed_at, form_version, scores, findings)
             VALUES ($1, $2, now(), $3, $4::text::jsonb, $5::text::jsonb)
             RETURNING seq",
            &[&submission_id, &record.run_id, &record.form_version, &record.scores, &record.findings],
        )
        .await
        .with_context(|| format!("failed to insert derived record of submission {submission_id}"))?;
    let record_seq: i64 = derived.try_get(0).context("failed to read derived record seq")?;

    let rows: Vec<QueryRow<'_>> = distinct_findings(&record.queries)
        .into_iter()
        .map(|query| QueryRow {
            query_id: Uuid::now_v7().hyphenated().to_string(),
            submission_id,
            trial_id: &trial_id,
            form_id: &form_id,
            form_version: &record.form_version,
            patient_id: &patient_id,
            query,
        })
        .collect();
    // Revalidation reruns the rules on the submission as received, version 1.
    let inserted = insert_queries(&transaction, &rows, QueryOrigin::Revalidation, 1).await?;
    let new_queries = rows
        .into_iter()
        .filter(|row| inserted.contains(&row.query_id))
        .map(|row| QueryRef {
            query_id: row.query_id,
            item: row.query.item.clone(),
            code: row.query.code.clone(),
            rule: row.query.rule.clone(),
        })
        .collect();

    let entry = AuditEntry {
        trial_id: Some(&trial_id),
        patient_id: Some(&patient_id),
        submission_id: Some(submission_id),
        ..AuditEntry::new(OffsetDateTime::now_utc(), &record.actor, SUBMISSION_REVALIDATED, "submission", submission_id)
    };
    audit::append(&transaction, &[entry])
        .await
        .with_context(|| format!("failed to insert audit event for submission {submission_id}"))?;
    transaction
        .commit()
        .await
        .with_context(|| format!("failed to commit revalidation of submission {submission_id}"))?;
    Ok(RevalidationOutcome { record_seq, new_queries })
}
