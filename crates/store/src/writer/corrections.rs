//! Correction and signature writes on SQLite. A correction writes a new version of a
//! submission with its data queries, the signatures it voids, its
//! `submission.corrected` event and its audit rows. A signature writes its row and
//! its audit row.
//!
//! The writer thread runs one command at a time, so the check that the base version is
//! still the latest and the insert of the next version cannot interleave with another
//! correction or signature of the same submission.

use anyhow::{Context as _, bail, ensure};
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::queries::{QueryTarget, insert_query};
use super::submission::{EventOwner, insert_outbox_event};
use super::{ALERT_RAISED, SIGNATURE_APPLIED, SIGNATURE_VOIDED, SUBMISSION_CORRECTED, insert_audit_event};
use crate::audit::{AuditEntry, format_audit_time};
use crate::columns::parse_timestamp;
use crate::model::{
    CorrectionOutcome, CorrectionReceipt, NewAlert, NewCorrection, NewSignature, QueryOrigin, QueryRef, SignOutcome,
    Signature, corrected_alert_payload,
};
use crate::reader;

const SELECT_SUBMISSION: &str = "
    SELECT trial_id, form_id, form_version, patient_id FROM submissions WHERE submission_id = ?1";

/// Copies trial, form, form version and patient from the submission row, so that a
/// version always matches its submission.
const INSERT_VERSION: &str = "
    INSERT INTO submission_versions (
        submission_id, version, base_version, trial_id, form_id, form_version, patient_id,
        normalized_answers, changed_items, scores, status, reason, actor, corrected_at, request_id, content_sha256
    )
    SELECT submission_id, ?2, ?3, trial_id, form_id, form_version, patient_id,
           ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
    FROM submissions WHERE submission_id = ?1";

const SELECT_VERSION: &str = "
    SELECT content_sha256, status, corrected_at FROM submission_versions
    WHERE submission_id = ?1 AND version = ?2";

const SELECT_VERSION_QUERIES: &str = "
    SELECT query_id, item, code, rule FROM data_queries
    WHERE submission_id = ?1 AND version = ?2 AND origin = 'intake'
    ORDER BY query_id";

const SELECT_VALID_SIGNATURES: &str = "
    SELECT signature_id, version FROM signatures
    WHERE submission_id = ?1 AND voided_at IS NULL
    ORDER BY signature_id";

/// The condition on `voided_at` makes a second void change nothing; the trigger of
/// migration 0008 would reject it anyway.
const VOID_SIGNATURE: &str = "
    UPDATE signatures SET voided_at = ?2, voided_by_version = ?3
    WHERE signature_id = ?1 AND voided_at IS NULL";

const SELECT_SIGNATURE: &str = "
    SELECT signature_id, submission_id, version, signer, meaning, signed_at, voided_at, voided_by_version
    FROM signatures WHERE signature_id = ?1";

const SELECT_VALID_SIGNATURE_BY: &str = "
    SELECT signature_id FROM signatures
    WHERE submission_id = ?1 AND version = ?2 AND signer = ?3 AND meaning = ?4 AND voided_at IS NULL";

const INSERT_SIGNATURE: &str = "
    INSERT INTO signatures (signature_id, submission_id, version, signer, meaning, signed_at, request_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The submission columns a correction or signature copies.
struct Owner {
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
}

/// Stores the next version of a submission, or classifies a retry or an outdated base.
///
/// In one savepoint: the version row, its data queries, the voiding of every valid
/// signature with one `signature.voided` audit row each, the `submission.corrected`
/// outbox event and its audit row, whose before and after values hold the changed
/// items' answers and whose reason is the correction's.
///
/// # Errors
///
/// Fails when `changes` is empty, when a CHECK rejects a value (a blank reason, an
/// empty actor, answers or scores that are not the JSON expected), or on a database
/// error. The savepoint then undoes everything.
pub(super) fn insert_correction(
    connection: &Connection,
    correction: &NewCorrection,
    now: OffsetDateTime,
) -> anyhow::Result<CorrectionOutcome> {
    let submission_id = correction.submission_id.as_str();
    ensure!(!correction.changes.is_empty(), "correction of submission {submission_id} changes no item");
    ensure!(correction.base_version >= 1, "correction of submission {submission_id} has base version 0");
    let Some(owner) = owner(connection, submission_id)? else {
        return Ok(CorrectionOutcome::NotFound);
    };

    let latest = reader::latest_version(connection, submission_id)?;
    let version = correction.base_version + 1;
    if version <= latest {
        return classify_retry(connection, correction, latest);
    }
    if correction.base_version != latest {
        return Ok(CorrectionOutcome::Conflict { current_version: latest });
    }

    let corrected_at = format_audit_time(now);
    let status = correction.status();
    let changed_items =
        serde_json::to_string(&correction.changed_items()).context("failed to encode the changed items")?;
    let inserted = connection
        .prepare_cached(INSERT_VERSION)?
        .execute(params![
            submission_id,
            version,
            correction.base_version,
            correction.normalized_answers,
            changed_items,
            correction.scores,
            status.as_str(),
            correction.reason,
            correction.actor,
            corrected_at,
            correction.request_id,
            &correction.content_sha256[..],
        ])
        .with_context(|| format!("failed to insert version {version} of submission {submission_id}"))?;
    ensure!(inserted == 1, "failed to insert version {version} of submission {submission_id}: no row inserted");

    let target = QueryTarget { submission_id, form_version: &owner.form_version, origin: QueryOrigin::Intake, version };
    let mut queries = Vec::with_capacity(correction.queries.len());
    for query in &correction.queries {
        queries.extend(insert_query(connection, &target, query, &corrected_at)?);
    }

    let voided = void_signatures(connection, submission_id, version, &corrected_at)?;

    let event_owner = EventOwner { trial_id: &owner.trial_id, patient_id: &owner.patient_id, submission_id };
    let payload = corrected_payload(&owner.form_id, &owner.form_version, correction, &corrected_at);
    insert_outbox_event(connection, &event_owner, SUBMISSION_CORRECTED, &corrected_at, &payload)?;
    for alert in &correction.alerts {
        let alert_id = insert_version_alert(connection, &owner, submission_id, version, alert, &corrected_at)?;
        let payload = corrected_alert_payload(&owner.form_id, &owner.form_version, version, alert, &alert_id);
        insert_outbox_event(connection, &event_owner, ALERT_RAISED, &corrected_at, &payload)?;
    }

    // The correction's row and one row per voided signature share the patient, the
    // submission, the reason and the request.
    let audit_row = |action, entity, entity_id, before: &str, after: &str| {
        insert_audit_event(
            connection,
            &AuditEntry {
                trial_id: Some(&owner.trial_id),
                patient_id: Some(&owner.patient_id),
                submission_id: Some(submission_id),
                before_value: Some(before),
                after_value: Some(after),
                reason: Some(&correction.reason),
                request_id: correction.request_id.as_deref(),
                ..AuditEntry::new(now, &correction.actor, action, entity, entity_id)
            },
        )
    };
    let (before, after) = correction.audit_values();
    audit_row(SUBMISSION_CORRECTED, "submission", submission_id, &before, &after)?;
    for (signature_id, signed_version) in &voided {
        let before = serde_json::json!({ "version": signed_version, "voided": false }).to_string();
        let after =
            serde_json::json!({ "version": signed_version, "voided": true, "voidedByVersion": version }).to_string();
        audit_row(SIGNATURE_VOIDED, "signature", signature_id, &before, &after)?;
    }

    Ok(CorrectionOutcome::Created(CorrectionReceipt {
        submission_id: submission_id.to_owned(),
        version,
        replaces: correction.base_version,
        status,
        queries,
        corrected_at: parse_timestamp(&corrected_at)?,
    }))
}

/// Builds the `submission.corrected` payload: which version replaced which, the
/// linkIds it changed and its status. Never answers or the reason, which site staff
/// write freely and which may name the patient.
pub(crate) fn corrected_payload(
    form_id: &str,
    form_version: &str,
    correction: &NewCorrection,
    corrected_at: &str,
) -> serde_json::Value {
    serde_json::json!({
        "formId": form_id,
        "formVersion": form_version,
        "version": correction.base_version + 1,
        "replaces": correction.base_version,
        "changedItems": correction.changed_items(),
        "status": correction.status().as_str(),
        "correctedAt": corrected_at,
    })
}

/// Classifies a correction whose base version already has a successor: the same
/// content is a replay with the stored receipt, other content a conflict.
fn classify_retry(
    connection: &Connection,
    correction: &NewCorrection,
    latest: u32,
) -> anyhow::Result<CorrectionOutcome> {
    let submission_id = correction.submission_id.as_str();
    let version = correction.base_version + 1;
    let stored: Option<(Vec<u8>, String, String)> = connection
        .prepare_cached(SELECT_VERSION)?
        .query_row(params![submission_id, version], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .with_context(|| format!("failed to read version {version} of submission {submission_id}"))?;
    let Some((stored_sha256, status, corrected_at)) = stored else {
        bail!("version {version} of submission {submission_id} is below the latest {latest} but not stored");
    };
    if stored_sha256 != correction.content_sha256 {
        return Ok(CorrectionOutcome::Conflict { current_version: latest });
    }

    let mut statement = connection.prepare_cached(SELECT_VERSION_QUERIES)?;
    let queries = statement
        .query_map(params![submission_id, version], |row| {
            Ok(QueryRef { query_id: row.get(0)?, item: row.get(1)?, code: row.get(2)?, rule: row.get(3)? })
        })?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("failed to read the queries of version {version} of submission {submission_id}"))?;
    Ok(CorrectionOutcome::Replayed(CorrectionReceipt {
        submission_id: submission_id.to_owned(),
        version,
        replaces: correction.base_version,
        status: status.parse()?,
        queries,
        corrected_at: parse_timestamp(&corrected_at)?,
    }))
}

/// Voids every valid signature of the submission on behalf of the new version `version`
/// and returns each voided signature's id with its signed version.
fn void_signatures(
    connection: &Connection,
    submission_id: &str,
    version: u32,
    voided_at: &str,
) -> anyhow::Result<Vec<(String, u32)>> {
    let valid: Vec<(String, u32)> = connection
        .prepare_cached(SELECT_VALID_SIGNATURES)?
        .query_map([submission_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("failed to read the signatures of submission {submission_id}"))?;
    for (signature_id, _) in &valid {
        let updated = connection
            .prepare_cached(VOID_SIGNATURE)?
            .execute(params![signature_id, voided_at, version])
            .with_context(|| format!("failed to void signature {signature_id}"))?;
        ensure!(updated == 1, "failed to void signature {signature_id}: {updated} rows changed");
    }
    Ok(valid)
}

/// Signs the latest version of a submission and appends the `signature.applied` audit
/// row. A valid signature by the same signer with the same meaning on that version is
/// returned unchanged, and nothing is written.
///
/// # Errors
///
/// Fails when a CHECK rejects the row (an empty signer or a blank meaning) or on a
/// database error. The savepoint then undoes the signature.
pub(super) fn sign(
    connection: &Connection,
    request: &NewSignature,
    now: OffsetDateTime,
) -> anyhow::Result<SignOutcome> {
    let submission_id = request.submission_id.as_str();
    let Some(owner) = owner(connection, submission_id)? else {
        return Ok(SignOutcome::SubmissionNotFound);
    };
    let latest = reader::latest_version(connection, submission_id)?;
    if request.version == 0 || request.version > latest {
        return Ok(SignOutcome::VersionNotFound);
    }
    if request.version < latest {
        return Ok(SignOutcome::NotLatest { current_version: latest });
    }

    let existing: Option<String> = connection
        .prepare_cached(SELECT_VALID_SIGNATURE_BY)?
        .query_row(params![submission_id, request.version, request.signer, request.meaning], |row| row.get(0))
        .optional()
        .with_context(|| format!("failed to read the signatures of submission {submission_id}"))?;
    if let Some(signature_id) = existing {
        return Ok(SignOutcome::AlreadySigned(signature(connection, &signature_id)?));
    }

    let signature_id = Uuid::now_v7().hyphenated().to_string();
    let signed_at = format_audit_time(now);
    connection
        .prepare_cached(INSERT_SIGNATURE)?
        .execute(params![
            signature_id,
            submission_id,
            request.version,
            request.signer,
            request.meaning,
            signed_at,
            request.request_id,
        ])
        .with_context(|| format!("failed to insert a signature on submission {submission_id}"))?;

    let after = serde_json::json!({ "version": request.version, "meaning": request.meaning }).to_string();
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&owner.trial_id),
            patient_id: Some(&owner.patient_id),
            submission_id: Some(submission_id),
            after_value: Some(&after),
            request_id: request.request_id.as_deref(),
            ..AuditEntry::new(now, &request.signer, SIGNATURE_APPLIED, "signature", &signature_id)
        },
    )?;
    Ok(SignOutcome::Signed(signature(connection, &signature_id)?))
}

/// Inserts one open alert raised by the rules on a corrected version and returns its
/// id, a UUID v7. It is due `alert.due_at`, which must lie after the correction.
fn insert_version_alert(
    connection: &Connection,
    owner: &Owner,
    submission_id: &str,
    version: u32,
    alert: &NewAlert,
    raised_at: &str,
) -> anyhow::Result<String> {
    let due_at = format_audit_time(alert.due_at);
    ensure!(
        due_at.as_str() > raised_at,
        "alert {:?} of version {version} of submission {submission_id} is due at {due_at}, not after {raised_at}",
        alert.rule
    );
    let alert_id = Uuid::now_v7().hyphenated().to_string();
    let items = serde_json::to_string(&alert.items).context("failed to encode alert items")?;
    connection
        .prepare_cached(
            "INSERT INTO alerts (
                 alert_id, submission_id, trial_id, form_id, form_version, patient_id,
                 rule, severity, items, raised_at, due_at, version
             ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            alert_id,
            submission_id,
            owner.trial_id,
            owner.form_id,
            owner.form_version,
            owner.patient_id,
            alert.rule,
            alert.severity,
            items,
            raised_at,
            due_at,
            version,
        ])
        .with_context(|| format!("failed to insert alert {:?} of version {version} of {submission_id}", alert.rule))?;
    Ok(alert_id)
}

fn owner(connection: &Connection, submission_id: &str) -> anyhow::Result<Option<Owner>> {
    connection
        .prepare_cached(SELECT_SUBMISSION)?
        .query_row([submission_id], |row| {
            Ok(Owner {
                trial_id: row.get(0)?,
                form_id: row.get(1)?,
                form_version: row.get(2)?,
                patient_id: row.get(3)?,
            })
        })
        .optional()
        .with_context(|| format!("failed to read submission {submission_id}"))
}

fn signature(connection: &Connection, signature_id: &str) -> anyhow::Result<Signature> {
    let columns = connection
        .prepare_cached(SELECT_SIGNATURE)?
        .query_row([signature_id], reader::SignatureColumns::from_row)
        .optional()
        .with_context(|| format!("failed to read signature {signature_id}"))?;
    let Some(columns) = columns else {
        bail!("signature {signature_id} not found after it was written");
    };
    columns.decode()
}
