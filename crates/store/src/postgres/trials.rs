//! The trial catalogue on PostgreSQL, with the same rows, checks and audit rows as
//! the SQLite versions in `crate::writer::trials` and `crate::reader::trials`.
//!
//! Every write first locks the one `catalog_generation` row, so catalogue writes of
//! all instances run one at a time: the check for an existing trial, site or version
//! and the insert after it see the same state. The audit row is appended last, as
//! `audit::append` requires.

use anyhow::{Context as _, anyhow, ensure};
use deadpool_postgres::{GenericClient, Object, Transaction};
use time::OffsetDateTime;
use tokio_postgres::{IsolationLevel, Row};

use super::audit;
use crate::audit::{AuditEntry, format_audit_time};
use crate::catalog::{
    FORM_PUBLISHED, FORM_RETIRED, SITE_ADDED, TRIAL_CREATED, form_entity_id, published_after, retired_values,
    site_after, site_matches, source_sha256, trial_after, trial_matches, version_matches,
};
use crate::columns::truncate_to_micros;
use crate::model::{
    CatalogSnapshot, FormRetirement, FormVersion, NewFormVersion, NewSite, NewTrial, PublishOutcome, RetireOutcome,
    Retirement, SiteAddition, SiteOutcome, StoredSite, StoredTrial, TrialOutcome,
};

const TRIAL_COLUMNS: &str = "trial_id, title_en, title_zh_cn, acknowledge_within_seconds, created_at, created_by";

const FORM_COLUMNS: &str = "seq, trial_id, form_id, version, format, source, source_sha256, rules::text,
    published_at, published_by, retired_at, retired_by, retire_reason";

/// Creates a trial with its sites, or reports the trial that has this id.
pub(super) async fn create_trial(client: &mut Object, trial: &NewTrial) -> anyhow::Result<TrialOutcome> {
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = begin_write(client).await?;
    if let Some(stored) = read_trial(&transaction, &trial.trial_id).await? {
        let outcome = if trial_matches(&stored, trial) {
            TrialOutcome::Unchanged(stored)
        } else {
            TrialOutcome::Conflict(stored)
        };
        return Ok(outcome);
    }

    transaction
        .execute(
            "INSERT INTO trials (trial_id, title_en, title_zh_cn, acknowledge_within_seconds, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &trial.trial_id,
                &trial.title_en,
                &trial.title_zh_cn,
                &trial.acknowledge_within_seconds,
                &now,
                &trial.actor,
            ],
        )
        .await
        .with_context(|| format!("failed to insert trial {}", trial.trial_id))?;
    for site in &trial.sites {
        insert_site(&transaction, &trial.trial_id, site, &trial.actor, now).await?;
    }
    bump_generation(&transaction, 1 + trial.sites.len() as i64).await?;

    let after = trial_after(trial);
    let site_values: Vec<String> = trial.sites.iter().map(site_after).collect();
    let mut entries = vec![AuditEntry {
        trial_id: Some(&trial.trial_id),
        after_value: Some(&after),
        request_id: trial.request_id.as_deref(),
        ..AuditEntry::new(now, &trial.actor, TRIAL_CREATED, "trial", &trial.trial_id)
    }];
    for (site, after) in trial.sites.iter().zip(&site_values) {
        entries.push(AuditEntry {
            trial_id: Some(&trial.trial_id),
            after_value: Some(after),
            request_id: trial.request_id.as_deref(),
            ..AuditEntry::new(now, &trial.actor, SITE_ADDED, "trial_site", &site.site_id)
        });
    }
    audit::append(&transaction, &entries).await?;

    let stored = read_trial(&transaction, &trial.trial_id)
        .await?
        .with_context(|| format!("trial {} not found after its insert", trial.trial_id))?;
    transaction.commit().await.with_context(|| format!("failed to commit trial {}", trial.trial_id))?;
    Ok(TrialOutcome::Created(stored))
}

/// Adds a site to a trial, or reports the site that has this id.
pub(super) async fn add_site(client: &mut Object, addition: &SiteAddition) -> anyhow::Result<SiteOutcome> {
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = begin_write(client).await?;
    let Some(trial) = read_trial(&transaction, &addition.trial_id).await? else {
        return Ok(SiteOutcome::UnknownTrial);
    };
    if let Some(stored) = trial.sites.into_iter().find(|site| site.site_id == addition.site.site_id) {
        let outcome = if site_matches(&stored, &addition.site) {
            SiteOutcome::Unchanged(stored)
        } else {
            SiteOutcome::Conflict(stored)
        };
        return Ok(outcome);
    }

    let site = insert_site(&transaction, &addition.trial_id, &addition.site, &addition.actor, now).await?;
    bump_generation(&transaction, 1).await?;
    let after = site_after(&addition.site);
    let entry = AuditEntry {
        trial_id: Some(&addition.trial_id),
        after_value: Some(&after),
        request_id: addition.request_id.as_deref(),
        ..AuditEntry::new(now, &addition.actor, SITE_ADDED, "trial_site", &addition.site.site_id)
    };
    audit::append(&transaction, &[entry]).await?;
    transaction.commit().await.with_context(|| format!("failed to commit site {}", addition.site.site_id))?;
    Ok(SiteOutcome::Added(site))
}

async fn insert_site(
    transaction: &Transaction<'_>,
    trial_id: &str,
    site: &NewSite,
    actor: &str,
    now: OffsetDateTime,
) -> anyhow::Result<StoredSite> {
    transaction
        .execute(
            "INSERT INTO trial_sites (trial_id, site_id, name, name_zh_cn, added_at, added_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&trial_id, &site.site_id, &site.name, &site.name_zh_cn, &now, &actor],
        )
        .await
        .with_context(|| format!("failed to insert site {} of trial {trial_id}", site.site_id))?;
    Ok(StoredSite {
        site_id: site.site_id.clone(),
        name: site.name.clone(),
        name_zh_cn: site.name_zh_cn.clone(),
        added_at: now,
        added_by: actor.to_owned(),
    })
}

/// Publishes a form version, or reports the version that has this id.
pub(super) async fn publish_form(client: &mut Object, form: &NewFormVersion) -> anyhow::Result<PublishOutcome> {
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let transaction = begin_write(client).await?;
    if read_trial(&transaction, &form.trial_id).await?.is_none() {
        return Ok(PublishOutcome::UnknownTrial);
    }
    if let Some(stored) = form_version(&transaction, &form.trial_id, &form.form_id, &form.version).await? {
        let outcome = if version_matches(&stored, form) {
            PublishOutcome::Unchanged(stored)
        } else {
            PublishOutcome::Conflict(stored)
        };
        return Ok(outcome);
    }

    let sha256 = source_sha256(&form.source);
    transaction
        .execute(
            "INSERT INTO form_versions (trial_id, form_id, version, format, source, source_sha256, rules,
                                        published_at, published_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::json, $8, $9)",
            &[
                &form.trial_id,
                &form.form_id,
                &form.version,
                &form.format.as_str(),
                &form.source,
                &&sha256[..],
                &form.rules,
                &now,
                &form.actor,
            ],
        )
        .await
        .with_context(|| format!("failed to insert form {} version {}", form.form_id, form.version))?;
    bump_generation(&transaction, 1).await?;

    let entity_id = form_entity_id(&form.form_id, &form.version);
    let after = published_after(form, &sha256);
    let entry = AuditEntry {
        trial_id: Some(&form.trial_id),
        after_value: Some(&after),
        request_id: form.request_id.as_deref(),
        ..AuditEntry::new(now, &form.actor, FORM_PUBLISHED, "form_version", &entity_id)
    };
    audit::append(&transaction, &[entry]).await?;

    let stored = form_version(&transaction, &form.trial_id, &form.form_id, &form.version)
        .await?
        .with_context(|| format!("form {} version {} not found after its insert", form.form_id, form.version))?;
    transaction
        .commit()
        .await
        .with_context(|| format!("failed to commit form {} version {}", form.form_id, form.version))?;
    Ok(PublishOutcome::Published(stored))
}

/// Retires an active form version.
pub(super) async fn retire_form(client: &mut Object, retirement: &FormRetirement) -> anyhow::Result<RetireOutcome> {
    let now = truncate_to_micros(OffsetDateTime::now_utc());
    let FormRetirement { trial_id, form_id, version, .. } = retirement;
    let transaction = begin_write(client).await?;
    let Some(current) = form_version(&transaction, trial_id, form_id, version).await? else {
        return Ok(RetireOutcome::NotFound);
    };
    if current.is_retired() {
        return Ok(RetireOutcome::AlreadyRetired(current));
    }

    let updated = transaction
        .execute(
            "UPDATE form_versions SET retired_at = $2, retired_by = $3, retire_reason = $4
             WHERE seq = $1 AND retired_at IS NULL",
            &[&current.seq, &now, &retirement.actor, &retirement.reason],
        )
        .await
        .with_context(|| format!("failed to retire form {form_id} version {version}"))?;
    ensure!(updated == 1, "failed to retire form {form_id} version {version}: {updated} rows changed");
    bump_generation(&transaction, 1).await?;

    let entity_id = form_entity_id(form_id, version);
    let (before, after) = retired_values(&format_audit_time(now));
    let entry = AuditEntry {
        trial_id: Some(trial_id),
        before_value: Some(&before),
        after_value: Some(&after),
        reason: Some(&retirement.reason),
        request_id: retirement.request_id.as_deref(),
        ..AuditEntry::new(now, &retirement.actor, FORM_RETIRED, "form_version", &entity_id)
    };
    audit::append(&transaction, &[entry]).await?;

    let stored = form_version(&transaction, trial_id, form_id, version)
        .await?
        .with_context(|| format!("form {form_id} version {version} not found after its retirement"))?;
    transaction.commit().await.with_context(|| format!("failed to commit retirement of form {form_id} {version}"))?;
    Ok(RetireOutcome::Retired(stored))
}

/// Reads the catalogue generation.
pub(super) async fn catalog_generation(client: &impl GenericClient) -> anyhow::Result<i64> {
    let row = client
        .query_one("SELECT generation FROM catalog_generation WHERE singleton = 1", &[])
        .await
        .context("failed to read the catalogue generation")?;
    Ok(row.try_get(0)?)
}

/// Reads every trial and form version in one repeatable-read transaction, so that
/// the snapshot matches its generation.
pub(super) async fn catalog_snapshot(client: &mut Object) -> anyhow::Result<CatalogSnapshot> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("failed to begin read transaction")?;
    let generation = catalog_generation(&transaction).await?;

    let rows = transaction
        .query(&format!("SELECT {TRIAL_COLUMNS} FROM trials ORDER BY trial_id"), &[])
        .await
        .context("failed to read trials")?;
    let mut trials = rows.iter().map(decode_trial).collect::<anyhow::Result<Vec<_>>>()?;
    for (trial_id, site) in sites(&transaction, None).await? {
        let trial = trials
            .iter_mut()
            .find(|trial| trial.trial_id == trial_id)
            .ok_or_else(|| anyhow!("site {} names unknown trial {trial_id}", site.site_id))?;
        trial.sites.push(site);
    }

    let rows = transaction
        .query(&format!("SELECT {FORM_COLUMNS} FROM form_versions ORDER BY seq"), &[])
        .await
        .context("failed to read form versions")?;
    let forms = rows.iter().map(decode_form).collect::<anyhow::Result<Vec<_>>>()?;
    transaction.commit().await.context("failed to end read transaction")?;
    Ok(CatalogSnapshot { generation, trials, forms })
}

/// Begins a catalogue write: locks the generation row, so that catalogue writes of
/// every instance run one at a time.
async fn begin_write(client: &mut Object) -> anyhow::Result<Transaction<'_>> {
    let transaction = client.transaction().await.context("failed to begin transaction")?;
    transaction
        .execute("SELECT generation FROM catalog_generation WHERE singleton = 1 FOR UPDATE", &[])
        .await
        .context("failed to lock the catalogue generation")?;
    Ok(transaction)
}

/// Advances the generation by `changes`, one step per changed row, as the trigger
/// that checks each step requires.
async fn bump_generation(transaction: &Transaction<'_>, changes: i64) -> anyhow::Result<()> {
    for _ in 0..changes {
        transaction
            .execute("UPDATE catalog_generation SET generation = generation + 1 WHERE singleton = 1", &[])
            .await
            .context("failed to advance the catalogue generation")?;
    }
    Ok(())
}

async fn read_trial(client: &impl GenericClient, trial_id: &str) -> anyhow::Result<Option<StoredTrial>> {
    let row = client
        .query_opt(&format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE trial_id = $1"), &[&trial_id])
        .await
        .with_context(|| format!("failed to read trial {trial_id}"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut trial = decode_trial(&row)?;
    trial.sites = sites(client, Some(trial_id)).await?.into_iter().map(|(_, site)| site).collect();
    Ok(Some(trial))
}

async fn form_version(
    client: &impl GenericClient,
    trial_id: &str,
    form_id: &str,
    version: &str,
) -> anyhow::Result<Option<FormVersion>> {
    let row = client
        .query_opt(
            &format!("SELECT {FORM_COLUMNS} FROM form_versions WHERE trial_id = $1 AND form_id = $2 AND version = $3"),
            &[&trial_id, &form_id, &version],
        )
        .await
        .with_context(|| format!("failed to read form {form_id} version {version} of trial {trial_id}"))?;
    row.as_ref().map(decode_form).transpose()
}

async fn sites(client: &impl GenericClient, trial_id: Option<&str>) -> anyhow::Result<Vec<(String, StoredSite)>> {
    let rows = client
        .query(
            "SELECT trial_id, site_id, name, added_at, added_by, name_zh_cn FROM trial_sites
             WHERE $1::text IS NULL OR trial_id = $1 ORDER BY trial_id, site_id",
            &[&trial_id],
        )
        .await
        .context("failed to read trial sites")?;
    rows.iter()
        .map(|row| {
            let site = StoredSite {
                site_id: row.try_get(1)?,
                name: row.try_get(2)?,
                name_zh_cn: row.try_get(5)?,
                added_at: row.try_get(3)?,
                added_by: row.try_get(4)?,
            };
            Ok((row.try_get(0)?, site))
        })
        .collect()
}

fn decode_trial(row: &Row) -> anyhow::Result<StoredTrial> {
    Ok(StoredTrial {
        trial_id: row.try_get(0)?,
        title_en: row.try_get(1)?,
        title_zh_cn: row.try_get(2)?,
        acknowledge_within_seconds: row.try_get(3)?,
        created_at: row.try_get(4)?,
        created_by: row.try_get(5)?,
        sites: Vec::new(),
    })
}

fn decode_form(row: &Row) -> anyhow::Result<FormVersion> {
    let seq: i64 = row.try_get(0)?;
    let format: String = row.try_get(4)?;
    let sha256: Vec<u8> = row.try_get(6)?;
    let retired_at: Option<OffsetDateTime> = row.try_get(10)?;
    let retired_by: Option<String> = row.try_get(11)?;
    let reason: Option<String> = row.try_get(12)?;
    let retirement = match (retired_at, retired_by, reason) {
        (None, None, None) => None,
        (Some(retired_at), Some(retired_by), Some(reason)) => Some(Retirement { retired_at, retired_by, reason }),
        _ => anyhow::bail!("form version {seq} has an incomplete retirement"),
    };
    Ok(FormVersion {
        seq,
        trial_id: row.try_get(1)?,
        form_id: row.try_get(2)?,
        version: row.try_get(3)?,
        format: format.parse()?,
        source: row.try_get(5)?,
        source_sha256: <[u8; 32]>::try_from(sha256.as_slice())
            .map_err(|_| anyhow!("form version {seq} has a hash of {} bytes", sha256.len()))?,
        rules: row.try_get(7)?,
        published_at: row.try_get(8)?,
        published_by: row.try_get(9)?,
        retirement,
    })
}
