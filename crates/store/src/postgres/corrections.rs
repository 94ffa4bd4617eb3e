//! Corrections and signatures on PostgreSQL, each write in its own transaction on the
//! pool, with the same rows and checks as the SQLite versions in
//! `crate::writer::corrections`, and the read of a submission with all its versions.
//!
//! A correction or signature locks the submission's row first (`FOR NO KEY UPDATE`,
//! which does not block the inserts of rows that reference the submission). So the
//! check that the base version is still the latest and the insert of the next version
//! run without another correction or signature of the same submission in between, also
//! across epro instances. Both append their audit rows last, as `audit::append`
//! requires.

use anyhow::{Context as _, anyhow, bail, ensure};
use deadpool_postgres::{GenericClient, Object, Transaction};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use super::audit;
use super::batch::{INSERT_OUTBOX_EVENTS, JsonKind, QueryRow, check_json, distinct_findings, insert_queries};
use super::reader::{begin_snapshot, compact_json, read_submission};
use crate::audit::{AuditEntry, format_audit_time};
use crate::columns::truncate_to_micros;
use crate::model::{
    CorrectionOutcome, CorrectionReceipt, NewCorrection, NewSignature, QueryOrigin, QueryRef, SignOutcome, Signature,
    SubmissionHistory, SubmissionVersion, corrected_alert_payload,
};
use crate::writer::{
    ALERT_RAISED, SIGNATURE_APPLIED, SIGNATURE_VOIDED, SUBMISSION_CORRECTED, SUBMISSION_CREATED, corrected_payload,
};

/// Column list of every read of `signatures`, in the order [`decode_signature`]
/// expects.
const SIGNATURE_COLUMNS: &str =
    "signature_id, submission_id, version, signer, meaning, signed_at, voided_at, voided_by_version";

/// The submission columns a correction or signature copies.
struct Owner {
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
}

/// Stores the next version of a submission, or classifies a retry or an outdated base,
/// in one transaction. See `crate::writer::corrections::insert_correction` for what
/// it writes.
///
/// # Errors
///
/// Fails when `changes` is empty, when a check rejects a value (a blank reason, an
/// empty actor, answers, scores or query params that are not the JSON expected), or
/// on a database error. The transaction then rolls back.
pub(super) async fn correct(client: &mut Object, correction: &NewCorrection) -> anyhow::Result<CorrectionOutcome> {
    let submission_id = correction.submission_id.as_str();
    ensure!(!correction.changes.is_empty(), "correction of submission {submission_id} changes no item");
    ensure!(correction.base_version >= 1, "correction of submission {submission_id} has base version 0");
    check_json(&correction.normalized_answers, JsonKind::Object)
        .with_context(|| format!("normalized_answers of the correction of {submission_id}"))?;
    check_json(&correction.scores, JsonKind::Array)
        .with_context(|| format!("scores of the correction of {submission_id}"))?;
    for query in &correction.queries {
        check_json(&query.params, JsonKind::Object).with_context(|| {
            format!("params of data query {} on item {:?} of submission {submission_id}", query.code, query.item)
        })?;
    }

    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = client.transaction().await.context("failed to begin transaction")?;
    let Some(owner) = lock_submission(&transaction, submission_id).await? else {
        return Ok(CorrectionOutcome::NotFound);
    };
    let latest = latest_version(&transaction, submission_id).await?;
    let version = correction.base_version + 1;
    if version <= latest {
        return classify_retry(&transaction, correction, latest).await;
    }
    if correction.base_version != latest {
        return Ok(CorrectionOutcome::Conflict { current_version: latest });
    }

    let status = correction.status();
    let changed_items =
        serde_json::to_string(&correction.changed_items()).context("failed to encode the changed items")?;
    let version_number = to_i32(version)?;
    transaction
        .execute(
            "INSERT INTO submission_versions (
                 submission_id, version, base_version, trial_id, form_id, form_version, patient_id,
                 normalized_answers, changed_items, scores, status, reason, actor, corrected_at, request_id,
                 content_sha256
             ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::json, $9::text::jsonb, $10::text::jsonb, $11, $12, $13,
                       $14, $15, $16)",
            &[
                &submission_id,
                &version_number,
                &to_i32(correction.base_version)?,
                &owner.trial_id,
                &owner.form_id,
                &owner.form_version,
                &owner.patient_id,
                &correction.normalized_answers,
                &changed_items,
                &correction.scores,
                &status.as_str(),
                &correction.reason,
                &correction.actor,
                &now,
                &correction.request_id,
                &&correction.content_sha256[..],
            ],
        )
        .await
        .with_context(|| format!("failed to insert version {version} of submission {submission_id}"))?;

    let rows: Vec<QueryRow<'_>> = distinct_findings(&correction.queries)
        .into_iter()
        .map(|query| QueryRow {
            query_id: Uuid::now_v7().hyphenated().to_string(),
            submission_id,
            trial_id: &owner.trial_id,
            form_id: &owner.form_id,
            form_version: &owner.form_version,
            patient_id: &owner.patient_id,
            query,
        })
        .collect();
    let inserted = insert_queries(&transaction, &rows, QueryOrigin::Intake, version).await?;
    let queries = rows
        .into_iter()
        .filter(|row| inserted.contains(&row.query_id))
        .map(|row| QueryRef {
            query_id: row.query_id,
            item: row.query.item.clone(),
            code: row.query.code.clone(),
            rule: row.query.rule.clone(),
        })
        .collect();

    let voided = transaction
        .query(
            "UPDATE signatures SET voided_at = $2, voided_by_version = $3
             WHERE submission_id = $1 AND voided_at IS NULL
             RETURNING signature_id, version",
            &[&submission_id, &now, &version_number],
        )
        .await
        .with_context(|| format!("failed to void the signatures of submission {submission_id}"))?;
    let mut voided: Vec<(String, i32)> = voided
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .context("failed to read voided signatures")?;
    voided.sort();

    let corrected_at = format_audit_time(now);
    let payload = corrected_payload(&owner.form_id, &owner.form_version, correction, &corrected_at);
    let statement = transaction.prepare_cached(INSERT_OUTBOX_EVENTS).await?;
    transaction
        .execute(
            &statement,
            &[
                &vec![Uuid::now_v7()],
                &vec![SUBMISSION_CORRECTED],
                &vec![owner.trial_id.as_str()],
                &vec![owner.patient_id.as_str()],
                &vec![submission_id],
                &vec![payload.to_string()],
            ],
        )
        .await
        .with_context(|| format!("failed to insert the {SUBMISSION_CORRECTED} event of {submission_id}"))?;
    for alert in &correction.alerts {
        ensure!(
            alert.due_at > now,
            "alert {:?} of version {version} of submission {submission_id} is due at {}, not after the correction",
            alert.rule,
            format_audit_time(alert.due_at)
        );
        let alert_id = Uuid::now_v7().hyphenated().to_string();
        let items = serde_json::to_value(&alert.items).context("failed to encode alert items")?;
        transaction
            .execute(
                "INSERT INTO alerts (
                     alert_id, submission_id, trial_id, form_id, form_version, patient_id,
                     rule, severity, items, raised_at, due_at, version
                 ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &alert_id,
                    &submission_id,
                    &owner.trial_id,
                    &owner.form_id,
                    &owner.form_version,
                    &owner.patient_id,
                    &alert.rule,
                    &alert.severity,
                    &items,
                    &now,
                    &truncate_to_micros(alert.due_at),
                    &version_number,
                ],
            )
            .await
            .with_context(|| {
                format!("failed to insert alert {:?} of version {version} of {submission_id}", alert.rule)
            })?;
        let payload = corrected_alert_payload(&owner.form_id, &owner.form_version, version, alert, &alert_id);
        transaction
            .execute(
                &statement,
                &[
                    &vec![Uuid::now_v7()],
                    &vec![ALERT_RAISED],
                    &vec![owner.trial_id.as_str()],
                    &vec![owner.patient_id.as_str()],
                    &vec![submission_id],
                    &vec![payload.to_string()],
                ],
            )
            .await
            .with_context(|| format!("failed to insert the {ALERT_RAISED} event of {submission_id}"))?;
    }

    let (before, after) = correction.audit_values();
    let void_values: Vec<(String, String)> = voided
        .iter()
        .map(|(_, signed_version)| {
            let before = serde_json::json!({ "version": signed_version, "voided": false }).to_string();
            let after = serde_json::json!({ "version": signed_version, "voided": true, "voidedByVersion": version })
                .to_string();
            (before, after)
        })
        .collect();
    let mut entries = vec![AuditEntry {
        trial_id: Some(&owner.trial_id),
        patient_id: Some(&owner.patient_id),
        submission_id: Some(submission_id),
        before_value: Some(&before),
        after_value: Some(&after),
        reason: Some(&correction.reason),
        request_id: correction.request_id.as_deref(),
        ..AuditEntry::new(now, &correction.actor, SUBMISSION_CORRECTED, "submission", submission_id)
    }];
    for ((signature_id, _), (before, after)) in voided.iter().zip(&void_values) {
        entries.push(AuditEntry {
            trial_id: Some(&owner.trial_id),
            patient_id: Some(&owner.patient_id),
            submission_id: Some(submission_id),
            before_value: Some(before),
            after_value: Some(after),
            reason: Some(&correction.reason),
            request_id: correction.request_id.as_deref(),
            ..AuditEntry::new(now, &correction.actor, SIGNATURE_VOIDED, "signature", signature_id)
        });
    }
    audit::append(&transaction, &entries)
        .await
        .with_context(|| format!("failed to insert audit events for the correction of {submission_id}"))?;
    transaction
        .commit()
        .await
        .with_context(|| format!("failed to commit version {version} of submission {submission_id}"))?;

    Ok(CorrectionOutcome::Created(CorrectionReceipt {
        submission_id: submission_id.to_owned(),
        version,
        replaces: correction.base_version,
        status,
        queries,
        corrected_at: now,
    }))
}

/// Classifies a correction whose base version already has a successor: the same
/// content is a replay with the stored receipt, other content a conflict.
async fn classify_retry(
    transaction: &Transaction<'_>,
    correction: &NewCorrection,
    latest: u32,
) -> anyhow::Result<CorrectionOutcome> {
    let submission_id = correction.submission_id.as_str();
    let version = correction.base_version + 1;
    let stored = transaction
        .query_opt(
            "SELECT content_sha256, status, corrected_at FROM submission_versions
             WHERE submission_id = $1 AND version = $2",
            &[&submission_id, &to_i32(version)?],
        )
        .await
        .with_context(|| format!("failed to read version {version} of submission {submission_id}"))?;
    let Some(stored) = stored else {
        bail!("version {version} of submission {submission_id} is below the latest {latest} but not stored");
    };
    let stored_sha256: Vec<u8> = stored.try_get(0)?;
    if stored_sha256 != correction.content_sha256 {
        return Ok(CorrectionOutcome::Conflict { current_version: latest });
    }
    let status: String = stored.try_get(1)?;

    let rows = transaction
        .query(
            "SELECT query_id, item, code, rule FROM data_queries
             WHERE submission_id = $1 AND version = $2 AND origin = 'intake'
             ORDER BY query_id",
            &[&submission_id, &to_i32(version)?],
        )
        .await
        .with_context(|| format!("failed to read the queries of version {version} of submission {submission_id}"))?;
    let queries = rows
        .iter()
        .map(|row| {
            Ok(QueryRef {
                query_id: row.try_get(0)?,
                item: row.try_get(1)?,
                code: row.try_get(2)?,
                rule: row.try_get(3)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .context("failed to read the queries of a version")?;
    Ok(CorrectionOutcome::Replayed(CorrectionReceipt {
        submission_id: submission_id.to_owned(),
        version,
        replaces: correction.base_version,
        status: status.parse()?,
        queries,
        corrected_at: stored.try_get(2)?,
    }))
}

/// Signs the latest version of a submission and appends the `signature.applied` audit
/// row, in one transaction. A valid signature by the same signer with the same meaning
/// on that version is returned unchanged, and nothing is written.
///
/// # Errors
///
/// Fails when a CHECK rejects the row (an empty signer or a blank meaning) or on a
/// database error. The transaction then rolls back.
pub(super) async fn sign(client: &mut Object, request: &NewSignature) -> anyhow::Result<SignOutcome> {
    let submission_id = request.submission_id.as_str();
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = client.transaction().await.context("failed to begin transaction")?;
    let Some(owner) = lock_submission(&transaction, submission_id).await? else {
        return Ok(SignOutcome::SubmissionNotFound);
    };
    let latest = latest_version(&transaction, submission_id).await?;
    if request.version == 0 || request.version > latest {
        return Ok(SignOutcome::VersionNotFound);
    }
    if request.version < latest {
        return Ok(SignOutcome::NotLatest { current_version: latest });
    }
    let version = to_i32(request.version)?;

    let existing = transaction
        .query_opt(
            &format!(
                "SELECT {SIGNATURE_COLUMNS} FROM signatures
                 WHERE submission_id = $1 AND version = $2 AND signer = $3 AND meaning = $4 AND voided_at IS NULL"
            ),
            &[&submission_id, &version, &request.signer, &request.meaning],
        )
        .await
        .with_context(|| format!("failed to read the signatures of submission {submission_id}"))?;
    if let Some(existing) = existing {
        return Ok(SignOutcome::AlreadySigned(decode_signature(&existing)?));
    }

    let signature_id = Uuid::now_v7().hyphenated().to_string();
    let row = transaction
        .query_one(
            &format!(
                "INSERT INTO signatures (signature_id, submission_id, version, signer, meaning, signed_at, request_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING {SIGNATURE_COLUMNS}"
            ),
            &[&signature_id, &submission_id, &version, &request.signer, &request.meaning, &now, &request.request_id],
        )
        .await
        .with_context(|| format!("failed to insert a signature on submission {submission_id}"))?;
    let signature = decode_signature(&row)?;

    let after = serde_json::json!({ "version": request.version, "meaning": request.meaning }).to_string();
    let entry = AuditEntry {
        trial_id: Some(&owner.trial_id),
        patient_id: Some(&owner.patient_id),
        submission_id: Some(submission_id),
        after_value: Some(&after),
        request_id: request.request_id.as_deref(),
        ..AuditEntry::new(now, &request.signer, SIGNATURE_APPLIED, "signature", &signature_id)
    };
    audit::append(&transaction, &[entry])
        .await
        .with_context(|| format!("failed to insert audit event for signature {signature_id}"))?;
    transaction.commit().await.with_context(|| format!("failed to commit signature {signature_id}"))?;
    Ok(SignOutcome::Signed(signature))
}

/// Reads a submission with the data queries of every version, every version and every
/// signature, in one snapshot.
///
/// # Errors
///
/// Fails on a database error, a row that this crate could not have written, or a
/// submission without its `submission.created` audit row.
pub(super) async fn submission_history(
    client: &mut Object,
    submission_id: &str,
) -> anyhow::Result<Option<SubmissionHistory>> {
    let snapshot = begin_snapshot(client).await?;
    let Some(submission) = read_submission(&snapshot, submission_id).await? else {
        return Ok(None);
    };

    let creator = snapshot
        .query_opt(
            "SELECT actor FROM audit_events
             WHERE entity = 'submission' AND entity_id = $1 AND action = $2
             ORDER BY seq LIMIT 1",
            &[&submission_id, &SUBMISSION_CREATED],
        )
        .await
        .with_context(|| format!("failed to read the audit row of submission {submission_id}"))?
        .ok_or_else(|| anyhow!("submission {submission_id} has no {SUBMISSION_CREATED} audit row"))?;
    let mut versions = vec![SubmissionVersion {
        version: 1,
        replaces: None,
        normalized_answers: submission.normalized_answers.clone(),
        scores: submission.scores.clone(),
        status: submission.status,
        changed_items: Vec::new(),
        reason: None,
        actor: creator.try_get(0)?,
        recorded_at: submission.received_at,
        request_id: submission.request_id.clone(),
    }];

    let rows = snapshot
        .query(
            "SELECT version, base_version, normalized_answers::text, scores::text, status, changed_items::text,
                    reason, actor, corrected_at, request_id
             FROM submission_versions WHERE submission_id = $1 ORDER BY version",
            &[&submission_id],
        )
        .await
        .with_context(|| format!("failed to read the versions of submission {submission_id}"))?;
    for row in &rows {
        let version: i32 = row.try_get(0)?;
        versions.push(
            decode_version(row)
                .with_context(|| format!("invalid stored version {version} of submission {submission_id}"))?,
        );
    }

    let rows = snapshot
        .query(
            &format!("SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE submission_id = $1 ORDER BY signature_id"),
            &[&submission_id],
        )
        .await
        .with_context(|| format!("failed to read the signatures of submission {submission_id}"))?;
    let signatures = rows.iter().map(decode_signature).collect::<anyhow::Result<_>>()?;
    snapshot.commit().await.context("failed to end read transaction")?;

    Ok(Some(SubmissionHistory { submission, versions, signatures }))
}

/// Locks the submission's row for the rest of the transaction and reads the columns a
/// version or signature copies, or `None` when no submission has this id.
async fn lock_submission(transaction: &Transaction<'_>, submission_id: &str) -> anyhow::Result<Option<Owner>> {
    let row = transaction
        .query_opt(
            "SELECT trial_id, form_id, form_version, patient_id FROM submissions
             WHERE submission_id = $1 FOR NO KEY UPDATE",
            &[&submission_id],
        )
        .await
        .with_context(|| format!("failed to lock submission {submission_id}"))?;
    row.map(|row| {
        Ok(Owner {
            trial_id: row.try_get(0)?,
            form_id: row.try_get(1)?,
            form_version: row.try_get(2)?,
            patient_id: row.try_get(3)?,
        })
    })
    .transpose()
}

/// Returns the latest version of a submission: 1 until a correction is stored.
async fn latest_version(client: &impl GenericClient, submission_id: &str) -> anyhow::Result<u32> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 1) FROM submission_versions WHERE submission_id = $1",
            &[&submission_id],
        )
        .await
        .with_context(|| format!("failed to read the latest version of submission {submission_id}"))?;
    let latest: i32 = row.try_get(0)?;
    u32::try_from(latest).context("version out of range")
}

fn to_i32(version: u32) -> anyhow::Result<i32> {
    i32::try_from(version).with_context(|| format!("version {version} out of range"))
}

fn decode_version(row: &Row) -> anyhow::Result<SubmissionVersion> {
    let version: i32 = row.try_get(0)?;
    let base_version: i32 = row.try_get(1)?;
    let scores: String = row.try_get(3)?;
    let status: String = row.try_get(4)?;
    let changed_items: String = row.try_get(5)?;
    Ok(SubmissionVersion {
        version: u32::try_from(version)?,
        replaces: Some(u32::try_from(base_version)?),
        normalized_answers: row.try_get(2)?,
        scores: compact_json(&scores),
        status: status.parse()?,
        changed_items: serde_json::from_str(&changed_items).context("changed_items is not a JSON array of strings")?,
        reason: Some(row.try_get(6)?),
        actor: row.try_get(7)?,
        recorded_at: row.try_get(8)?,
        request_id: row.try_get(9)?,
    })
}

/// Decodes a row read with [`SIGNATURE_COLUMNS`].
fn decode_signature(row: &Row) -> anyhow::Result<Signature> {
    let signature_id: String = row.try_get(0).context("failed to read signature")?;
    let fields = || -> anyhow::Result<Signature> {
        let version: i32 = row.try_get(2)?;
        let voided_by_version: Option<i32> = row.try_get(7)?;
        Ok(Signature {
            signature_id: signature_id.clone(),
            submission_id: row.try_get(1)?,
            version: u32::try_from(version)?,
            signer: row.try_get(3)?,
            meaning: row.try_get(4)?,
            signed_at: row.try_get(5)?,
            voided_at: row.try_get(6)?,
            voided_by_version: voided_by_version.map(u32::try_from).transpose()?,
        })
    };
    fields().with_context(|| format!("invalid stored signature {signature_id}"))
}
