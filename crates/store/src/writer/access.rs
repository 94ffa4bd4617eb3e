//! Access writes on SQLite: staff accounts with their grants, enrolments, and issuing
//! and revoking tokens, each with its audit row in the same savepoint.

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::insert_audit_event;
use crate::access::audit_of;
use crate::audit::{AuditEntry, format_audit_time};
use crate::model::{AccessChange, AccessOutcome, ChangeOrigin, NewToken, RoleGrant};

/// Applies one access change and appends its audit row. A change that finds its
/// account or enrolment missing, or already there, writes nothing.
///
/// # Errors
///
/// Fails when a grant does not fit its role, a name is blank, or on a database error;
/// the savepoint then undoes the whole change.
pub(super) fn change_access(
    connection: &Connection,
    change: &AccessChange,
    origin: &ChangeOrigin,
    now: OffsetDateTime,
) -> anyhow::Result<AccessOutcome> {
    let at = format_audit_time(now);
    let mut revoked = Vec::new();

    match change {
        AccessChange::CreateStaff { staff_id, display_name, grants, token } => {
            if staff_exists(connection, staff_id)? {
                return Ok(AccessOutcome::AlreadyExists);
            }
            ensure!(!grants.is_empty(), "staff member {staff_id} needs at least one role");
            connection
                .prepare_cached(
                    "INSERT INTO staff (staff_id, display_name, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![staff_id, display_name, at, origin.actor])
                .with_context(|| format!("failed to insert staff member {staff_id}"))?;
            for grant in grants {
                insert_grant(connection, staff_id, grant)?;
            }
            insert_staff_token(connection, staff_id, token, &at)?;
        }
        AccessChange::IssueStaffToken { staff_id, token } => {
            if !staff_exists(connection, staff_id)? {
                return Ok(AccessOutcome::NotFound);
            }
            insert_staff_token(connection, staff_id, token, &at)?;
        }
        AccessChange::RevokeStaffTokens { staff_id } => {
            if !staff_exists(connection, staff_id)? {
                return Ok(AccessOutcome::NotFound);
            }
            revoked = active_token_ids(connection, "staff_tokens", "staff_id = ?1", &[staff_id], &at)?;
            connection
                .prepare_cached(
                    "UPDATE staff_tokens SET revoked_at = ?2
                     WHERE staff_id = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .execute(params![staff_id, at])
                .with_context(|| format!("failed to revoke the tokens of staff member {staff_id}"))?;
        }
        AccessChange::EnrolPatient { trial_id, patient_id, site_id, token } => {
            if patient_exists(connection, trial_id, patient_id)? {
                return Ok(AccessOutcome::AlreadyExists);
            }
            connection
                .prepare_cached(
                    "INSERT INTO patients (trial_id, patient_id, site_id, enrolled_at, enrolled_by)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![trial_id, patient_id, site_id, at, origin.actor])
                .with_context(|| format!("failed to enrol a patient into trial {trial_id}"))?;
            insert_patient_token(connection, trial_id, patient_id, token, &at)?;
        }
        AccessChange::IssuePatientToken { trial_id, patient_id, token } => {
            if !patient_exists(connection, trial_id, patient_id)? {
                return Ok(AccessOutcome::NotFound);
            }
            insert_patient_token(connection, trial_id, patient_id, token, &at)?;
        }
        AccessChange::RevokePatientTokens { trial_id, patient_id } => {
            if !patient_exists(connection, trial_id, patient_id)? {
                return Ok(AccessOutcome::NotFound);
            }
            revoked = active_token_ids(
                connection,
                "patient_tokens",
                "trial_id = ?1 AND patient_id = ?2",
                &[trial_id, patient_id],
                &at,
            )?;
            connection
                .prepare_cached(
                    "UPDATE patient_tokens SET revoked_at = ?3
                     WHERE trial_id = ?1 AND patient_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
                )?
                .execute(params![trial_id, patient_id, at])
                .with_context(|| format!("failed to revoke a patient's tokens in trial {trial_id}"))?;
        }
    }

    let is_revocation =
        matches!(change, AccessChange::RevokeStaffTokens { .. } | AccessChange::RevokePatientTokens { .. });
    if is_revocation && revoked.is_empty() {
        return Ok(AccessOutcome::Revoked(0));
    }

    let audit = audit_of(change, &revoked);
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: audit.trial_id,
            patient_id: audit.patient_id,
            before_value: audit.before_value.as_deref(),
            after_value: audit.after_value.as_deref(),
            request_id: origin.request_id.as_deref(),
            ..AuditEntry::new(now, &origin.actor, audit.action, audit.entity, &audit.entity_id)
        },
    )?;

    if is_revocation { Ok(AccessOutcome::Revoked(revoked.len() as u64)) } else { Ok(AccessOutcome::Done) }
}

fn staff_exists(connection: &Connection, staff_id: &str) -> anyhow::Result<bool> {
    let found = connection
        .prepare_cached("SELECT 1 FROM staff WHERE staff_id = ?1")?
        .query_row([staff_id], |_| Ok(()))
        .optional()
        .with_context(|| format!("failed to look up staff member {staff_id}"))?;
    Ok(found.is_some())
}

fn patient_exists(connection: &Connection, trial_id: &str, patient_id: &str) -> anyhow::Result<bool> {
    let found = connection
        .prepare_cached("SELECT 1 FROM patients WHERE trial_id = ?1 AND patient_id = ?2")?
        .query_row([trial_id, patient_id], |_| Ok(()))
        .optional()
        .with_context(|| format!("failed to look up a patient of trial {trial_id}"))?;
    Ok(found.is_some())
}

fn insert_grant(connection: &Connection, staff_id: &str, grant: &RoleGrant) -> anyhow::Result<()> {
    grant.check().with_context(|| format!("invalid role grant for staff member {staff_id}"))?;
    connection
        .prepare_cached(
            "INSERT OR IGNORE INTO staff_grants (staff_id, role, trial_id, site_id) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            staff_id,
            grant.role.as_str(),
            grant.trial_id.as_deref().unwrap_or(""),
            grant.site_id.as_deref().unwrap_or(""),
        ])
        .with_context(|| format!("failed to grant role {} to staff member {staff_id}", grant.role))?;
    Ok(())
}

fn insert_staff_token(connection: &Connection, staff_id: &str, token: &NewToken, at: &str) -> anyhow::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO staff_tokens (token_id, staff_id, token_sha256, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![token.token_id, staff_id, &token.digest.0[..], at, token.expires_at.map(format_audit_time)])
        .with_context(|| format!("failed to store a token of staff member {staff_id}"))?;
    Ok(())
}

fn insert_patient_token(
    connection: &Connection,
    trial_id: &str,
    patient_id: &str,
    token: &NewToken,
    at: &str,
) -> anyhow::Result<()> {
    let expires_at = token.expires_at.context("a patient token needs an expiry")?;
    connection
        .prepare_cached(
            "INSERT INTO patient_tokens (token_id, trial_id, patient_id, token_sha256, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![token.token_id, trial_id, patient_id, &token.digest.0[..], at, format_audit_time(expires_at)])
        .with_context(|| format!("failed to store a patient token in trial {trial_id}"))?;
    Ok(())
}

/// Lists the ids of the tokens that are neither revoked nor expired at `at`, for the
/// audit row of a revocation. `condition` uses `?1`, `?2`, ... for `keys`.
fn active_token_ids(
    connection: &Connection,
    table: &str,
    condition: &str,
    keys: &[&String],
    at: &str,
) -> anyhow::Result<Vec<String>> {
    let at_parameter = keys.len() + 1;
    let sql = format!(
        "SELECT token_id FROM {table} WHERE {condition} AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > ?{at_parameter}) ORDER BY token_id"
    );
    let mut values: Vec<&dyn rusqlite::ToSql> = keys.iter().map(|key| *key as &dyn rusqlite::ToSql).collect();
    values.push(&at);
    let mut statement = connection.prepare_cached(&sql)?;
    let ids = statement
        .query_map(values.as_slice(), |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()
        .with_context(|| format!("failed to list active tokens in {table}"))?;
    Ok(ids)
}
