//! Access on PostgreSQL: staff accounts, enrolments and tokens, with the same rows,
//! checks and audit rows as the SQLite versions in `crate::writer::access` and
//! `crate::reader::access`. Each change runs in its own transaction on the pool and
//! appends its audit row last, as `audit::append` requires.
//!
//! Two instances creating the same account or enrolment at once both insert with
//! `ON CONFLICT DO NOTHING`: exactly one inserts a row, and the other reports
//! [`AccessOutcome::AlreadyExists`].

use anyhow::{Context as _, ensure};
use deadpool_postgres::{GenericClient, Object};
use time::OffsetDateTime;

use super::audit;
use crate::access::audit_of;
use crate::audit::AuditEntry;
use crate::columns::truncate_to_micros;
use crate::model::{
    AccessChange, AccessOutcome, ChangeOrigin, Credential, Enrolment, EnrolmentFilter, NewToken, RoleGrant,
    StaffMember, TokenDigest,
};

pub(super) async fn change_access(
    client: &mut Object,
    change: &AccessChange,
    origin: &ChangeOrigin,
) -> anyhow::Result<AccessOutcome> {
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = client.transaction().await.context("failed to begin transaction")?;
    let mut revoked = Vec::new();

    match change {
        AccessChange::CreateStaff { staff_id, display_name, grants, token } => {
            ensure!(!grants.is_empty(), "staff member {staff_id} needs at least one role");
            let inserted = transaction
                .execute(
                    "INSERT INTO staff (staff_id, display_name, created_at, created_by) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (staff_id) DO NOTHING",
                    &[staff_id, display_name, &now, &origin.actor],
                )
                .await
                .with_context(|| format!("failed to insert staff member {staff_id}"))?;
            if inserted == 0 {
                return Ok(AccessOutcome::AlreadyExists);
            }
            for grant in grants {
                insert_grant(&transaction, staff_id, grant).await?;
            }
            insert_staff_token(&transaction, staff_id, token, now).await?;
        }
        AccessChange::IssueStaffToken { staff_id, token } => {
            if !staff_exists(&transaction, staff_id).await? {
                return Ok(AccessOutcome::NotFound);
            }
            insert_staff_token(&transaction, staff_id, token, now).await?;
        }
        AccessChange::RevokeStaffTokens { staff_id } => {
            if !staff_exists(&transaction, staff_id).await? {
                return Ok(AccessOutcome::NotFound);
            }
            let rows = transaction
                .query(
                    "UPDATE staff_tokens SET revoked_at = $2
                     WHERE staff_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
                     RETURNING token_id",
                    &[staff_id, &now],
                )
                .await
                .with_context(|| format!("failed to revoke the tokens of staff member {staff_id}"))?;
            revoked = token_ids(&rows)?;
        }
        AccessChange::EnrolPatient { trial_id, patient_id, site_id, token } => {
            let inserted = transaction
                .execute(
                    "INSERT INTO patients (trial_id, patient_id, site_id, enrolled_at, enrolled_by)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trial_id, patient_id) DO NOTHING",
                    &[trial_id, patient_id, site_id, &now, &origin.actor],
                )
                .await
                .with_context(|| format!("failed to enrol a patient into trial {trial_id}"))?;
            if inserted == 0 {
                return Ok(AccessOutcome::AlreadyExists);
            }
            insert_patient_token(&transaction, trial_id, patient_id, token, now).await?;
        }
        AccessChange::IssuePatientToken { trial_id, patient_id, token } => {
            if !patient_exists(&transaction, trial_id, patient_id).await? {
                return Ok(AccessOutcome::NotFound);
            }
            insert_patient_token(&transaction, trial_id, patient_id, token, now).await?;
        }
        AccessChange::RevokePatientTokens { trial_id, patient_id } => {
            if !patient_exists(&transaction, trial_id, patient_id).await? {
                return Ok(AccessOutcome::NotFound);
            }
            let rows = transaction
                .query(
                    "UPDATE patient_tokens SET revoked_at = $3
                     WHERE trial_id = $1 AND patient_id = $2 AND revoked_at IS NULL AND expires_at > $3
                     RETURNING token_id",
                    &[trial_id, patient_id, &now],
                )
                .await
                .with_context(|| format!("failed to revoke a patient's tokens in trial {trial_id}"))?;
            revoked = token_ids(&rows)?;
        }
    }

    let is_revocation =
        matches!(change, AccessChange::RevokeStaffTokens { .. } | AccessChange::RevokePatientTokens { .. });
    if is_revocation && revoked.is_empty() {
        return Ok(AccessOutcome::Revoked(0));
    }

    revoked.sort();
    let audit = audit_of(change, &revoked);
    let entry = AuditEntry {
        trial_id: audit.trial_id,
        patient_id: audit.patient_id,
        before_value: audit.before_value.as_deref(),
        after_value: audit.after_value.as_deref(),
        request_id: origin.request_id.as_deref(),
        ..AuditEntry::new(now, &origin.actor, audit.action, audit.entity, &audit.entity_id)
    };
    audit::append(&transaction, &[entry])
        .await
        .with_context(|| format!("failed to insert audit event for {} {}", audit.entity, audit.entity_id))?;
    transaction.commit().await.context("failed to commit access change")?;

    if is_revocation { Ok(AccessOutcome::Revoked(revoked.len() as u64)) } else { Ok(AccessOutcome::Done) }
}

fn token_ids(rows: &[tokio_postgres::Row]) -> anyhow::Result<Vec<String>> {
    rows.iter().map(|row| row.try_get::<_, String>(0).context("failed to read a revoked token id")).collect()
}

async fn staff_exists(client: &impl GenericClient, staff_id: &str) -> anyhow::Result<bool> {
    let row = client
        .query_opt("SELECT 1 FROM staff WHERE staff_id = $1", &[&staff_id])
        .await
        .with_context(|| format!("failed to look up staff member {staff_id}"))?;
    Ok(row.is_some())
}

async fn patient_exists(client: &impl GenericClient, trial_id: &str, patient_id: &str) -> anyhow::Result<bool> {
    let row = client
        .query_opt("SELECT 1 FROM patients WHERE trial_id = $1 AND patient_id = $2", &[&trial_id, &patient_id])
        .await
        .with_context(|| format!("failed to look up a patient of trial {trial_id}"))?;
    Ok(row.is_some())
}

async fn insert_grant(client: &impl GenericClient, staff_id: &str, grant: &RoleGrant) -> anyhow::Result<()> {
    grant.check().with_context(|| format!("invalid role grant for staff member {staff_id}"))?;
    client
        .execute(
            "INSERT INTO staff_grants (staff_id, role, trial_id, site_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[
                &staff_id,
                &grant.role.as_str(),
                &grant.trial_id.as_deref().unwrap_or(""),
                &grant.site_id.as_deref().unwrap_or(""),
            ],
        )
        .await
        .with_context(|| format!("failed to grant role {} to staff member {staff_id}", grant.role))?;
    Ok(())
}

async fn insert_staff_token(
    client: &impl GenericClient,
    staff_id: &str,
    token: &NewToken,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO staff_tokens (token_id, staff_id, token_sha256, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&token.token_id, &staff_id, &&token.digest.0[..], &now, &token.expires_at.map(truncate_to_micros)],
        )
        .await
        .with_context(|| format!("failed to store a token of staff member {staff_id}"))?;
    Ok(())
}

async fn insert_patient_token(
    client: &impl GenericClient,
    trial_id: &str,
    patient_id: &str,
    token: &NewToken,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let expires_at = token.expires_at.context("a patient token needs an expiry")?;
    client
        .execute(
            "INSERT INTO patient_tokens (token_id, trial_id, patient_id, token_sha256, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&token.token_id, &trial_id, &patient_id, &&token.digest.0[..], &now, &truncate_to_micros(expires_at)],
        )
        .await
        .with_context(|| format!("failed to store a patient token in trial {trial_id}"))?;
    Ok(())
}

/// Finds the staff or patient token with this digest, revoked and expired ones
/// included.
pub(super) async fn credential(client: &Object, digest: &TokenDigest) -> anyhow::Result<Option<Credential>> {
    let digest = &digest.0[..];
    let statement = client
        .prepare_cached("SELECT token_id, staff_id, expires_at, revoked_at FROM staff_tokens WHERE token_sha256 = $1")
        .await?;
    if let Some(row) = client.query_opt(&statement, &[&digest]).await.context("failed to look up a staff token")? {
        let staff_id: String = row.try_get(1)?;
        return Ok(Some(Credential::Staff {
            token_id: row.try_get(0)?,
            grants: grants(client, &staff_id).await?,
            staff_id,
            expires_at: row.try_get(2)?,
            revoked_at: row.try_get(3)?,
        }));
    }

    let statement = client
        .prepare_cached(
            "SELECT t.token_id, t.trial_id, t.patient_id, p.site_id, t.expires_at, t.revoked_at
             FROM patient_tokens t JOIN patients p USING (trial_id, patient_id)
             WHERE t.token_sha256 = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&digest]).await.context("failed to look up a patient token")? else {
        return Ok(None);
    };
    Ok(Some(Credential::Patient {
        token_id: row.try_get(0)?,
        trial_id: row.try_get(1)?,
        patient_id: row.try_get(2)?,
        site_id: row.try_get(3)?,
        expires_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
    }))
}

pub(super) async fn enrolments(
    client: &Object,
    filter: &EnrolmentFilter,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Enrolment>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let statement = client
        .prepare_cached(
            "SELECT p.trial_id, p.patient_id, p.site_id, p.enrolled_at, p.enrolled_by,
                    (SELECT count(*) FROM patient_tokens t
                     WHERE t.trial_id = p.trial_id AND t.patient_id = p.patient_id
                       AND t.revoked_at IS NULL AND t.expires_at > $5)
             FROM patients p
             WHERE p.trial_id = $1 AND ($2::text IS NULL OR p.site_id = $2)
               AND ($3::text IS NULL OR p.patient_id = $3) AND ($4::text IS NULL OR p.patient_id > $4)
             ORDER BY p.patient_id COLLATE \"C\" LIMIT $6",
        )
        .await?;
    let rows = client
        .query(&statement, &[&filter.trial_id, &filter.site_id, &filter.patient_id, &filter.after, &now, &limit])
        .await
        .with_context(|| format!("failed to list the patients of trial {}", filter.trial_id))?;
    rows.iter()
        .map(|row| {
            let active_tokens: i64 = row.try_get(5)?;
            Ok(Enrolment {
                trial_id: row.try_get(0)?,
                patient_id: row.try_get(1)?,
                site_id: row.try_get(2)?,
                enrolled_at: row.try_get(3)?,
                enrolled_by: row.try_get(4)?,
                active_tokens: u32::try_from(active_tokens).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

pub(super) async fn staff_members(
    client: &Object,
    staff_id: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<StaffMember>> {
    let rows = client
        .query(
            "SELECT s.staff_id, s.display_name, s.created_at, s.created_by,
                    (SELECT count(*) FROM staff_tokens t WHERE t.staff_id = s.staff_id
                       AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2))
             FROM staff s WHERE ($1::text IS NULL OR s.staff_id = $1) ORDER BY s.staff_id COLLATE \"C\"",
            &[&staff_id, &now],
        )
        .await
        .context("failed to list staff accounts")?;
    let mut members = Vec::with_capacity(rows.len());
    for row in rows {
        let staff_id: String = row.try_get(0)?;
        let active_tokens: i64 = row.try_get(4)?;
        members.push(StaffMember {
            grants: grants(client, &staff_id).await?,
            staff_id,
            display_name: row.try_get(1)?,
            created_at: row.try_get(2)?,
            created_by: row.try_get(3)?,
            active_tokens: u32::try_from(active_tokens).unwrap_or(u32::MAX),
        });
    }
    Ok(members)
}

async fn grants(client: &Object, staff_id: &str) -> anyhow::Result<Vec<RoleGrant>> {
    let statement = client
        .prepare_cached(
            "SELECT role, trial_id, site_id FROM staff_grants WHERE staff_id = $1
             ORDER BY role COLLATE \"C\", trial_id COLLATE \"C\", site_id COLLATE \"C\"",
        )
        .await?;
    let rows = client
        .query(&statement, &[&staff_id])
        .await
        .with_context(|| format!("failed to read the roles of staff member {staff_id}"))?;
    rows.iter()
        .map(|row| {
            let role: String = row.try_get(0)?;
            let trial_id: String = row.try_get(1)?;
            let site_id: String = row.try_get(2)?;
            Ok(RoleGrant {
                role: role.parse()?,
                trial_id: Some(trial_id).filter(|id| !id.is_empty()),
                site_id: Some(site_id).filter(|id| !id.is_empty()),
            })
        })
        .collect()
}
