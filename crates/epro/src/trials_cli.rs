//! `epro trials import DIR` and `epro trials list`: the trials directory
//! loaded into the database, and what the database holds.
//!
//! An import reads and checks the whole directory first (see
//! [`catalog::read`]) and compares every form with the database before it
//! writes anything. A trial, site or form version already stored with the same
//! content is left as it is, so importing the same directory again changes
//! nothing. A form whose id and version are stored with other content stops the
//! import with a message naming the file, because a published version never
//! changes. Forms missing from the directory stay in the database, and a
//! retired version stays retired.
//!
//! `epro serve` imports its configured trials directory the same way at
//! startup.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use epro_forms::FormFormat;
use epro_store::{
    CatalogSnapshot, FormSourceFormat, NewFormVersion, NewSite, NewTrial, PublishOutcome, Store, TrialOutcome,
};

use crate::catalog::{self, TrialSource};
use crate::cli::TrialsCommand;
use crate::config::Config;

/// Actor of the audit rows an import writes.
pub const IMPORT_ACTOR: &str = "system";

/// The counts of what an import wrote and left unchanged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub trials_created: usize,
    pub trials_unchanged: usize,
    pub forms_published: usize,
    pub forms_unchanged: usize,
}

/// Runs `epro trials import` or `epro trials list`.
///
/// # Errors
///
/// Fails when the configuration or the database cannot be opened, or as
/// [`import`].
pub fn run(command: TrialsCommand) -> anyhow::Result<()> {
    let config_path = match &command {
        TrialsCommand::Import { config, .. } | TrialsCommand::List { config } => config,
    };
    let config = Config::load_database(config_path)?;
    crate::telemetry::init(&config.telemetry)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = Store::open(config.store_config()?).await?;
        let result = match &command {
            TrialsCommand::Import { directory, .. } => import(&store, directory).await.map(|summary| {
                println!(
                    "imported {}: {} trial(s) created, {} unchanged; {} form version(s) published, {} unchanged",
                    directory.display(),
                    summary.trials_created,
                    summary.trials_unchanged,
                    summary.forms_published,
                    summary.forms_unchanged
                );
            }),
            TrialsCommand::List { .. } => list(&store).await.map(|text| print!("{text}")),
        };
        store.close().await;
        result
    })
}

/// Imports every trial folder under `directory` into the store.
///
/// # Errors
///
/// Fails without writing anything on any problem in the directory, on a trial
/// stored with another title or alert deadline, and on a form version stored
/// with other content. The error then lists every such problem. Fails on a store error
/// after writing the trials and forms before it.
pub async fn import(store: &Store, directory: &Path) -> anyhow::Result<ImportSummary> {
    let trials = catalog::read(directory)?;
    import_read(store, directory, &trials).await
}

/// Imports trials that [`catalog::read`] has read from `directory`.
///
/// # Errors
///
/// As [`import`], without the problems of reading the directory.
pub async fn import_read(store: &Store, directory: &Path, trials: &[TrialSource]) -> anyhow::Result<ImportSummary> {
    let snapshot = store.catalog_snapshot().await.context("failed to read the stored trials")?;
    let conflicts = conflicts(trials, &snapshot);
    if !conflicts.is_empty() {
        anyhow::bail!(
            "failed to import {} ({} problem(s)):\n  {}",
            directory.display(),
            conflicts.len(),
            conflicts.join("\n  ")
        );
    }

    let mut summary = ImportSummary::default();
    for trial in trials {
        let file = &trial.trial_file;
        let outcome = store
            .create_trial(NewTrial {
                trial_id: file.id.clone(),
                title_en: file.title.en.clone(),
                title_zh_cn: file.title.zh_cn.clone(),
                acknowledge_within_seconds: deadline_seconds(file),
                sites: file
                    .sites
                    .iter()
                    .map(|site| NewSite {
                        site_id: site.id.clone(),
                        name: site.name.en.clone(),
                        name_zh_cn: Some(site.name.zh_cn.clone()),
                    })
                    .collect(),
                actor: IMPORT_ACTOR.to_owned(),
                request_id: None,
            })
            .await
            .with_context(|| format!("failed to store trial {}", file.id))?;
        match outcome {
            TrialOutcome::Created(_) => summary.trials_created += 1,
            TrialOutcome::Unchanged(_) => summary.trials_unchanged += 1,
            TrialOutcome::Conflict(_) => anyhow::bail!("{}", trial_conflict(trial)),
        }

        for form in &trial.forms {
            let outcome = store
                .publish_form(new_version(trial, form))
                .await
                .with_context(|| format!("failed to store {}", form.path.display()))?;
            match outcome {
                PublishOutcome::Published(_) => summary.forms_published += 1,
                PublishOutcome::Unchanged(_) => summary.forms_unchanged += 1,
                PublishOutcome::Conflict(_) => anyhow::bail!("{}", version_conflict(form)),
                PublishOutcome::UnknownTrial => anyhow::bail!("trial {} vanished during the import", file.id),
            }
        }
    }
    Ok(summary)
}

/// Lists every trial, site and form version in the store, one line each.
///
/// # Errors
///
/// Fails when the store cannot be read.
pub async fn list(store: &Store) -> anyhow::Result<String> {
    let snapshot = store.catalog_snapshot().await.context("failed to read the stored trials")?;
    let mut out = String::new();
    for trial in &snapshot.trials {
        let _ = writeln!(
            out,
            "trial {}  {} / {}  alerts due in {} s",
            trial.trial_id, trial.title_en, trial.title_zh_cn, trial.acknowledge_within_seconds
        );
        for site in &trial.sites {
            let _ = writeln!(out, "  site {}  {}", site.site_id, site.name);
        }
        let versions: Vec<_> = snapshot.forms.iter().filter(|form| form.trial_id == trial.trial_id).collect();
        for version in &versions {
            let newest_active = versions
                .iter()
                .filter(|other| other.form_id == version.form_id && !other.is_retired())
                .map(|other| other.seq)
                .max();
            let status = match &version.retirement {
                Some(retirement) => format!("retired {} ({})", rfc3339(retirement.retired_at), retirement.reason),
                None if newest_active == Some(version.seq) => "active, current".to_owned(),
                None => "active".to_owned(),
            };
            let _ = writeln!(
                out,
                "  form {} version {}  {}  published {}  {status}",
                version.form_id,
                version.version,
                version.format,
                rfc3339(version.published_at)
            );
        }
    }
    Ok(out)
}

fn rfc3339(instant: time::OffsetDateTime) -> String {
    instant
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| instant.to_string())
}

/// Lists what the directory would change in stored trials and versions, which
/// never change.
fn conflicts(trials: &[TrialSource], snapshot: &CatalogSnapshot) -> Vec<String> {
    let mut problems = Vec::new();
    for trial in trials {
        let file = &trial.trial_file;
        let stored = snapshot.trials.iter().find(|stored| stored.trial_id == file.id);
        if let Some(stored) = stored {
            let same = stored.title_en == file.title.en
                && stored.title_zh_cn == file.title.zh_cn
                && stored.acknowledge_within_seconds == deadline_seconds(file);
            if !same {
                problems.push(trial_conflict(trial));
            }
        }
        for form in &trial.forms {
            let stored = snapshot.forms.iter().find(|stored| {
                stored.trial_id == file.id && stored.form_id == form.entry.id && stored.version == form.entry.version
            });
            let Some(stored) = stored else { continue };
            let new = new_version(trial, form);
            let same_rules = serde_json::from_str::<serde_json::Value>(&stored.rules).ok()
                == serde_json::from_str::<serde_json::Value>(&new.rules).ok();
            if stored.format != new.format || stored.source != new.source || !same_rules {
                problems.push(version_conflict(form));
            }
        }
    }
    problems
}

fn trial_conflict(trial: &TrialSource) -> String {
    format!(
        "{}: trial {} is stored with another title or alert deadline, and a stored trial never changes; \
         restore the stored values in this file",
        trial.trial_path.display(),
        trial.trial_file.id
    )
}

fn version_conflict(form: &catalog::FormSource) -> String {
    format!(
        "{}: form {} version {} is already published with other content (the file or its [[forms]] entry \
         changed), and a published version never changes; give the changed form a new version in trial.toml",
        form.path.display(),
        form.entry.id,
        form.entry.version
    )
}

fn new_version(trial: &TrialSource, form: &catalog::FormSource) -> NewFormVersion {
    // A form entry without a title has always been shown under the trial's
    // title, so the import stores that title with the form.
    let mut entry = form.entry.clone();
    entry.title = entry.title.or_else(|| Some(trial.trial_file.title.clone()));
    NewFormVersion {
        trial_id: trial.trial_file.id.clone(),
        form_id: form.entry.id.clone(),
        version: form.entry.version.clone(),
        format: match form.format {
            FormFormat::FhirJson => FormSourceFormat::FhirJson,
            FormFormat::NativeToml => FormSourceFormat::NativeToml,
        },
        source: form.text.clone(),
        rules: epro_http::catalog::rules_json(&entry),
        actor: IMPORT_ACTOR.to_owned(),
        request_id: None,
    }
}

fn deadline_seconds(file: &epro_forms::TrialFile) -> i64 {
    i64::try_from(file.alerts.acknowledge_within.as_secs()).unwrap_or(i64::MAX)
}
