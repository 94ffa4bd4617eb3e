//! Reads of the trial catalogue: one trial with its sites, one form version, the
//! catalogue generation, and the whole catalogue in one read transaction.

use anyhow::{Context as _, anyhow};
use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::columns::parse_timestamp;
use crate::model::{CatalogSnapshot, FormVersion, Retirement, StoredSite, StoredTrial};

const TRIAL_COLUMNS: &str = "trial_id, title_en, title_zh_cn, acknowledge_within_seconds, created_at, created_by";

const FORM_COLUMNS: &str = "seq, trial_id, form_id, version, format, source, source_sha256, rules, published_at,
    published_by, retired_at, retired_by, retire_reason";

/// Reads one trial with its sites.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn trial(connection: &Connection, trial_id: &str) -> anyhow::Result<Option<StoredTrial>> {
    let trial = connection
        .prepare_cached(&format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE trial_id = ?1"))?
        .query_row([trial_id], decode_trial)
        .optional()
        .with_context(|| format!("failed to read trial {trial_id}"))?;
    let Some(trial) = trial else {
        return Ok(None);
    };
    let mut trial = trial?;
    trial.sites = sites(connection, Some(trial_id))?.into_iter().map(|(_, site)| site).collect();
    Ok(Some(trial))
}

/// Reads one form version of a trial.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn form_version(
    connection: &Connection,
    trial_id: &str,
    form_id: &str,
    version: &str,
) -> anyhow::Result<Option<FormVersion>> {
    let row = connection
        .prepare_cached(&format!(
            "SELECT {FORM_COLUMNS} FROM form_versions WHERE trial_id = ?1 AND form_id = ?2 AND version = ?3"
        ))?
        .query_row([trial_id, form_id, version], decode_form)
        .optional()
        .with_context(|| format!("failed to read form {form_id} version {version} of trial {trial_id}"))?;
    row.transpose()
}

/// Reads the catalogue generation, which grows by one with every change.
///
/// # Errors
///
/// Fails on a database error.
pub(crate) fn catalog_generation(connection: &Connection) -> anyhow::Result<i64> {
    connection
        .prepare_cached("SELECT generation FROM catalog_generation WHERE singleton = 1")?
        .query_row([], |row| row.get(0))
        .context("failed to read the catalogue generation")
}

/// Reads every trial and form version in one read transaction, so that the snapshot
/// matches its generation.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn catalog_snapshot(connection: &Connection) -> anyhow::Result<CatalogSnapshot> {
    let snapshot = connection.unchecked_transaction().context("failed to begin read transaction")?;
    let generation = catalog_generation(&snapshot)?;

    let mut trials = Vec::new();
    {
        let mut statement =
            snapshot.prepare_cached(&format!("SELECT {TRIAL_COLUMNS} FROM trials ORDER BY trial_id"))?;
        let rows = statement.query_map([], decode_trial).context("failed to read trials")?;
        for row in rows {
            trials.push(row.context("failed to read trial")??);
        }
    }
    for (trial_id, site) in sites(&snapshot, None)? {
        let trial = trials
            .iter_mut()
            .find(|trial| trial.trial_id == trial_id)
            .ok_or_else(|| anyhow!("site {} names unknown trial {trial_id}", site.site_id))?;
        trial.sites.push(site);
    }

    let mut forms = Vec::new();
    {
        let mut statement =
            snapshot.prepare_cached(&format!("SELECT {FORM_COLUMNS} FROM form_versions ORDER BY seq"))?;
        let rows = statement.query_map([], decode_form).context("failed to read form versions")?;
        for row in rows {
            forms.push(row.context("failed to read form version")??);
        }
    }
    snapshot.finish().context("failed to end read transaction")?;
    Ok(CatalogSnapshot { generation, trials, forms })
}

/// Reads the sites of one trial, or of every trial, in trial and site order.
fn sites(connection: &Connection, trial_id: Option<&str>) -> anyhow::Result<Vec<(String, StoredSite)>> {
    let mut statement = connection.prepare_cached(
        "SELECT trial_id, site_id, name, added_at, added_by, name_zh_cn FROM trial_sites
         WHERE ?1 IS NULL OR trial_id = ?1 ORDER BY trial_id, site_id",
    )?;
    let rows = statement
        .query_map([trial_id], |row| {
            let added_at: String = row.get(3)?;
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                added_at,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        })
        .context("failed to read trial sites")?;
    let mut sites = Vec::new();
    for row in rows {
        let (trial_id, site_id, name, added_at, added_by, name_zh_cn) = row.context("failed to read trial site")?;
        let added_at = parse_timestamp(&added_at)?;
        sites.push((trial_id, StoredSite { site_id, name, name_zh_cn, added_at, added_by }));
    }
    Ok(sites)
}

fn decode_trial(row: &Row<'_>) -> rusqlite::Result<anyhow::Result<StoredTrial>> {
    let created_at: String = row.get(4)?;
    let trial = StoredTrial {
        trial_id: row.get(0)?,
        title_en: row.get(1)?,
        title_zh_cn: row.get(2)?,
        acknowledge_within_seconds: row.get(3)?,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        created_by: row.get(5)?,
        sites: Vec::new(),
    };
    Ok(parse_timestamp(&created_at).map(|created_at| StoredTrial { created_at, ..trial }))
}

fn decode_form(row: &Row<'_>) -> rusqlite::Result<anyhow::Result<FormVersion>> {
    let format: String = row.get(4)?;
    let sha256: Vec<u8> = row.get(6)?;
    let published_at: String = row.get(8)?;
    let retired_at: Option<String> = row.get(10)?;
    let retired_by: Option<String> = row.get(11)?;
    let reason: Option<String> = row.get(12)?;
    let seq: i64 = row.get(0)?;
    let trial_id: String = row.get(1)?;
    let form_id: String = row.get(2)?;
    let version: String = row.get(3)?;
    let source: String = row.get(5)?;
    let rules: String = row.get(7)?;
    let published_by: String = row.get(9)?;
    Ok((|| {
        let retirement = match (retired_at, retired_by, reason) {
            (None, None, None) => None,
            (Some(retired_at), Some(retired_by), Some(reason)) => {
                Some(Retirement { retired_at: parse_timestamp(&retired_at)?, retired_by, reason })
            }
            _ => anyhow::bail!("form version {seq} has an incomplete retirement"),
        };
        Ok(FormVersion {
            seq,
            trial_id,
            form_id,
            version,
            format: format.parse()?,
            source,
            source_sha256: <[u8; 32]>::try_from(sha256.as_slice())
                .map_err(|_| anyhow!("form version {seq} has a hash of {} bytes", sha256.len()))?,
            rules,
            published_at: parse_timestamp(&published_at)?,
            published_by,
            retirement,
        })
    })())
}
