//! Access reads on SQLite: the credential a token digest belongs to, enrolments and
//! staff accounts with their grants.

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use crate::audit::format_audit_time;
use crate::columns::parse_timestamp;
use crate::model::{Credential, Enrolment, EnrolmentFilter, RoleGrant, StaffMember, TokenDigest};

/// Finds the staff or patient token with this digest, revoked and expired ones
/// included.
pub(crate) fn credential(connection: &Connection, digest: &TokenDigest) -> anyhow::Result<Option<Credential>> {
    let staff: Option<(String, String, Option<String>, Option<String>)> = connection
        .prepare_cached("SELECT token_id, staff_id, expires_at, revoked_at FROM staff_tokens WHERE token_sha256 = ?1")?
        .query_row([&digest.0[..]], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .optional()
        .context("failed to look up a staff token")?;
    if let Some((token_id, staff_id, expires_at, revoked_at)) = staff {
        let grants = grants(connection, &staff_id)?;
        return Ok(Some(Credential::Staff {
            token_id,
            staff_id,
            grants,
            expires_at: expires_at.as_deref().map(parse_timestamp).transpose()?,
            revoked_at: revoked_at.as_deref().map(parse_timestamp).transpose()?,
        }));
    }

    let patient: Option<(String, String, String, String, String, Option<String>)> = connection
        .prepare_cached(
            "SELECT t.token_id, t.trial_id, t.patient_id, p.site_id, t.expires_at, t.revoked_at
             FROM patient_tokens t JOIN patients p USING (trial_id, patient_id)
             WHERE t.token_sha256 = ?1",
        )?
        .query_row([&digest.0[..]], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
        })
        .optional()
        .context("failed to look up a patient token")?;
    let Some((token_id, trial_id, patient_id, site_id, expires_at, revoked_at)) = patient else {
        return Ok(None);
    };
    Ok(Some(Credential::Patient {
        token_id,
        trial_id,
        patient_id,
        site_id,
        expires_at: parse_timestamp(&expires_at)?,
        revoked_at: revoked_at.as_deref().map(parse_timestamp).transpose()?,
    }))
}

/// Reads up to `filter.limit` enrolments of a trial in patient id order after the
/// cursor.
pub(crate) fn enrolments(
    connection: &Connection,
    filter: &EnrolmentFilter,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Enrolment>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(
        "SELECT p.trial_id, p.patient_id, p.site_id, p.enrolled_at, p.enrolled_by,
                (SELECT count(*) FROM patient_tokens t
                 WHERE t.trial_id = p.trial_id AND t.patient_id = p.patient_id
                   AND t.revoked_at IS NULL AND t.expires_at > ?5)
         FROM patients p
         WHERE p.trial_id = ?1 AND (?2 IS NULL OR p.site_id = ?2) AND (?3 IS NULL OR p.patient_id = ?3)
           AND (?4 IS NULL OR p.patient_id > ?4)
         ORDER BY p.patient_id LIMIT ?6",
    )?;
    let rows = statement
        .query_map(
            params![filter.trial_id, filter.site_id, filter.patient_id, filter.after, format_audit_time(now), limit],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            },
        )
        .with_context(|| format!("failed to list the patients of trial {}", filter.trial_id))?;

    let mut enrolments = Vec::new();
    for row in rows {
        let (trial_id, patient_id, site_id, enrolled_at, enrolled_by, active_tokens) = row?;
        enrolments.push(Enrolment {
            trial_id,
            patient_id,
            site_id,
            enrolled_at: parse_timestamp(&enrolled_at)?,
            enrolled_by,
            active_tokens: u32::try_from(active_tokens).unwrap_or(u32::MAX),
        });
    }
    Ok(enrolments)
}

/// Reads every staff account in staff id order, or only `staff_id`.
pub(crate) fn staff_members(
    connection: &Connection,
    staff_id: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<StaffMember>> {
    let mut statement = connection.prepare_cached(
        "SELECT s.staff_id, s.display_name, s.created_at, s.created_by,
                (SELECT count(*) FROM staff_tokens t WHERE t.staff_id = s.staff_id
                   AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2))
         FROM staff s WHERE (?1 IS NULL OR s.staff_id = ?1) ORDER BY s.staff_id",
    )?;
    let rows = statement
        .query_map(params![staff_id, format_audit_time(now)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .context("failed to list staff accounts")?;

    let mut members = Vec::new();
    for row in rows {
        let (staff_id, display_name, created_at, created_by, active_tokens) = row?;
        members.push(StaffMember {
            grants: grants(connection, &staff_id)?,
            staff_id,
            display_name,
            created_at: parse_timestamp(&created_at)?,
            created_by,
            active_tokens: u32::try_from(active_tokens).unwrap_or(u32::MAX),
        });
    }
    Ok(members)
}

fn grants(connection: &Connection, staff_id: &str) -> anyhow::Result<Vec<RoleGrant>> {
    let mut statement = connection.prepare_cached(
        "SELECT role, trial_id, site_id FROM staff_grants WHERE staff_id = ?1 ORDER BY role, trial_id, site_id",
    )?;
    let rows = statement
        .query_map([staff_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)))
        .with_context(|| format!("failed to read the roles of staff member {staff_id}"))?;
    let mut grants = Vec::new();
    for row in rows {
        let (role, trial_id, site_id) = row?;
        grants.push(RoleGrant {
            role: role.parse()?,
            trial_id: Some(trial_id).filter(|id| !id.is_empty()),
            site_id: Some(site_id).filter(|id| !id.is_empty()),
        });
    }
    Ok(grants)
}
