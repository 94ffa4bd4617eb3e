//! Catalogue writes on SQLite: creating trials, adding sites, publishing and retiring
//! form versions. Each runs in the writer's savepoint with its audit rows and one
//! step of `catalog_generation`, so a change and its trace commit together.
//!
//! The triggers of migration 0008 reject any delete and any update but the one
//! retirement of a form version.

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use super::insert_audit_event;
use crate::audit::{AuditEntry, format_audit_time};
use crate::catalog::{
    FORM_PUBLISHED, FORM_RETIRED, SITE_ADDED, TRIAL_CREATED, form_entity_id, published_after, retired_values,
    site_after, site_matches, source_sha256, trial_after, trial_matches, version_matches,
};
use crate::model::{
    FormRetirement, NewFormVersion, NewSite, NewTrial, PublishOutcome, RetireOutcome, SiteAddition, SiteOutcome,
    StoredSite, TrialOutcome,
};
use crate::reader::trials as reader;

/// Creates a trial with its sites, or reports the trial that has this id.
pub(super) fn create_trial(
    connection: &Connection,
    trial: &NewTrial,
    now: OffsetDateTime,
) -> anyhow::Result<TrialOutcome> {
    if let Some(stored) = reader::trial(connection, &trial.trial_id)? {
        return Ok(if trial_matches(&stored, trial) {
            TrialOutcome::Unchanged(stored)
        } else {
            TrialOutcome::Conflict(stored)
        });
    }

    let created_at = format_audit_time(now);
    connection
        .prepare_cached(
            "INSERT INTO trials (trial_id, title_en, title_zh_cn, acknowledge_within_seconds, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            trial.trial_id,
            trial.title_en,
            trial.title_zh_cn,
            trial.acknowledge_within_seconds,
            created_at,
            trial.actor
        ])
        .with_context(|| format!("failed to insert trial {}", trial.trial_id))?;
    bump_generation(connection)?;
    let after = trial_after(trial);
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&trial.trial_id),
            after_value: Some(&after),
            request_id: trial.request_id.as_deref(),
            ..AuditEntry::new(now, &trial.actor, TRIAL_CREATED, "trial", &trial.trial_id)
        },
    )?;
    for site in &trial.sites {
        insert_site(connection, &trial.trial_id, site, &trial.actor, trial.request_id.as_deref(), now)?;
    }

    let stored = reader::trial(connection, &trial.trial_id)?
        .with_context(|| format!("trial {} not found after its insert", trial.trial_id))?;
    Ok(TrialOutcome::Created(stored))
}

/// Adds a site to a trial, or reports the site that has this id.
pub(super) fn add_site(
    connection: &Connection,
    addition: &SiteAddition,
    now: OffsetDateTime,
) -> anyhow::Result<SiteOutcome> {
    let Some(trial) = reader::trial(connection, &addition.trial_id)? else {
        return Ok(SiteOutcome::UnknownTrial);
    };
    if let Some(stored) = trial.sites.into_iter().find(|site| site.site_id == addition.site.site_id) {
        return Ok(if site_matches(&stored, &addition.site) {
            SiteOutcome::Unchanged(stored)
        } else {
            SiteOutcome::Conflict(stored)
        });
    }
    let site = insert_site(
        connection,
        &addition.trial_id,
        &addition.site,
        &addition.actor,
        addition.request_id.as_deref(),
        now,
    )?;
    Ok(SiteOutcome::Added(site))
}

fn insert_site(
    connection: &Connection,
    trial_id: &str,
    site: &NewSite,
    actor: &str,
    request_id: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<StoredSite> {
    let added_at = format_audit_time(now);
    connection
        .prepare_cached(
            "INSERT INTO trial_sites (trial_id, site_id, name, name_zh_cn, added_at, added_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![trial_id, site.site_id, site.name, site.name_zh_cn, added_at, actor])
        .with_context(|| format!("failed to insert site {} of trial {trial_id}", site.site_id))?;
    bump_generation(connection)?;
    let after = site_after(site);
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(trial_id),
            after_value: Some(&after),
            request_id,
            ..AuditEntry::new(now, actor, SITE_ADDED, "trial_site", &site.site_id)
        },
    )?;
    Ok(StoredSite {
        site_id: site.site_id.clone(),
        name: site.name.clone(),
        name_zh_cn: site.name_zh_cn.clone(),
        added_at: crate::columns::parse_timestamp(&added_at)?,
        added_by: actor.to_owned(),
    })
}

/// Publishes a form version, or reports the version that has this id.
pub(super) fn publish_form(
    connection: &Connection,
    form: &NewFormVersion,
    now: OffsetDateTime,
) -> anyhow::Result<PublishOutcome> {
    if reader::trial(connection, &form.trial_id)?.is_none() {
        return Ok(PublishOutcome::UnknownTrial);
    }
    if let Some(stored) = reader::form_version(connection, &form.trial_id, &form.form_id, &form.version)? {
        return Ok(if version_matches(&stored, form) {
            PublishOutcome::Unchanged(stored)
        } else {
            PublishOutcome::Conflict(stored)
        });
    }

    let sha256 = source_sha256(&form.source);
    let published_at = format_audit_time(now);
    connection
        .prepare_cached(
            "INSERT INTO form_versions (trial_id, form_id, version, format, source, source_sha256, rules,
                                        published_at, published_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            form.trial_id,
            form.form_id,
            form.version,
            form.format.as_str(),
            form.source,
            &sha256[..],
            form.rules,
            published_at,
            form.actor,
        ])
        .with_context(|| format!("failed to insert form {} version {}", form.form_id, form.version))?;
    bump_generation(connection)?;
    let entity_id = form_entity_id(&form.form_id, &form.version);
    let after = published_after(form, &sha256);
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(&form.trial_id),
            after_value: Some(&after),
            request_id: form.request_id.as_deref(),
            ..AuditEntry::new(now, &form.actor, FORM_PUBLISHED, "form_version", &entity_id)
        },
    )?;

    let stored = reader::form_version(connection, &form.trial_id, &form.form_id, &form.version)?
        .with_context(|| format!("form {} version {} not found after its insert", form.form_id, form.version))?;
    Ok(PublishOutcome::Published(stored))
}

/// Retires an active form version.
pub(super) fn retire_form(
    connection: &Connection,
    retirement: &FormRetirement,
    now: OffsetDateTime,
) -> anyhow::Result<RetireOutcome> {
    let FormRetirement { trial_id, form_id, version, .. } = retirement;
    let Some(current) = reader::form_version(connection, trial_id, form_id, version)? else {
        return Ok(RetireOutcome::NotFound);
    };
    if current.is_retired() {
        return Ok(RetireOutcome::AlreadyRetired(current));
    }

    let retired_at = format_audit_time(now);
    let updated = connection
        .prepare_cached(
            "UPDATE form_versions SET retired_at = ?2, retired_by = ?3, retire_reason = ?4
             WHERE seq = ?1 AND retired_at IS NULL",
        )?
        .execute(params![current.seq, retired_at, retirement.actor, retirement.reason])
        .with_context(|| format!("failed to retire form {form_id} version {version}"))?;
    ensure!(updated == 1, "failed to retire form {form_id} version {version}: {updated} rows changed");
    bump_generation(connection)?;

    let entity_id = form_entity_id(form_id, version);
    let (before, after) = retired_values(&retired_at);
    insert_audit_event(
        connection,
        &AuditEntry {
            trial_id: Some(trial_id),
            before_value: Some(&before),
            after_value: Some(&after),
            reason: Some(&retirement.reason),
            request_id: retirement.request_id.as_deref(),
            ..AuditEntry::new(now, &retirement.actor, FORM_RETIRED, "form_version", &entity_id)
        },
    )?;

    let stored = reader::form_version(connection, trial_id, form_id, version)?
        .with_context(|| format!("form {form_id} version {version} not found after its retirement"))?;
    Ok(RetireOutcome::Retired(stored))
}

fn bump_generation(connection: &Connection) -> anyhow::Result<()> {
    connection
        .prepare_cached("UPDATE catalog_generation SET generation = generation + 1 WHERE singleton = 1")?
        .execute([])
        .context("failed to advance the catalogue generation")?;
    Ok(())
}

/// One catalogue write, sent to the writer thread as one command.
pub(crate) enum CatalogWrite {
    CreateTrial(NewTrial),
    AddSite(SiteAddition),
    Publish(NewFormVersion),
    Retire(FormRetirement),
}

/// The result of a [`CatalogWrite`], of the variant that matches it.
pub(crate) enum CatalogOutcome {
    Trial(TrialOutcome),
    Site(SiteOutcome),
    Publish(PublishOutcome),
    Retire(RetireOutcome),
}

/// Runs one catalogue write.
pub(super) fn apply(
    connection: &Connection,
    write: &CatalogWrite,
    now: OffsetDateTime,
) -> anyhow::Result<CatalogOutcome> {
    Ok(match write {
        CatalogWrite::CreateTrial(trial) => CatalogOutcome::Trial(create_trial(connection, trial, now)?),
        CatalogWrite::AddSite(addition) => CatalogOutcome::Site(add_site(connection, addition, now)?),
        CatalogWrite::Publish(form) => CatalogOutcome::Publish(publish_form(connection, form, now)?),
        CatalogWrite::Retire(retirement) => CatalogOutcome::Retire(retire_form(connection, retirement, now)?),
    })
}
