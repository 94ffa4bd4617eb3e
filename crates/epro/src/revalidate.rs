//! `epro revalidate`: re-runs a form's current rules over its stored
//! submissions. Each submission gets a new derived record with the
//! recomputed scores and findings (the original row never changes), and the
//! queries that are new are raised. Rerunning is safe: a query already
//! raised for the same item, code and rule is not raised again.

use std::time::Duration;

use anyhow::Context;
use epro_forms::Catalog;
use epro_store::{Revalidation, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// Submissions read per page; memory stays bounded by one page.
const PAGE_SIZE: usize = 500;

/// Counts of one revalidation run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub run_id: String,
    pub submissions: u64,
    pub new_queries: u64,
    /// Submissions whose form version is no longer published.
    pub skipped: u64,
}

/// The submissions a revalidation run covers.
#[derive(Debug, Clone)]
pub struct Scope {
    pub trial_id: String,
    pub form_id: String,
    /// Only this version; all stored versions when `None`.
    pub form_version: Option<String>,
}

/// Re-runs the current rules over every stored submission in `scope`.
///
/// A progress line with the count and rate is drawn on a terminal and
/// left out when stderr is not one.
///
/// # Errors
///
/// Fails when the trial or form is not published, or on a database error.
/// Records written before the error stay, so a rerun continues safely.
pub async fn run(store: &Store, catalog: &Catalog, scope: &Scope) -> anyhow::Result<Summary> {
    let trial =
        catalog.trial(&scope.trial_id).with_context(|| format!("no trial {:?} is published", scope.trial_id))?;
    anyhow::ensure!(
        trial.forms.iter().any(|form| form.id == scope.form_id),
        "trial {:?} has no form {:?}",
        scope.trial_id,
        scope.form_id
    );

    if let Some(version) = &scope.form_version {
        anyhow::ensure!(
            trial.form(&scope.form_id, Some(version)).is_ok(),
            "form {:?} of trial {:?} has no published version {version:?}",
            scope.form_id,
            scope.trial_id
        );
    }

    let run_id = uuid::Uuid::now_v7().to_string();
    let mut summary = Summary { run_id: run_id.clone(), ..Summary::default() };
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos} submissions revalidated ({per_sec}), {msg}")
            .expect("the progress template is valid"),
    );
    progress.enable_steady_tick(Duration::from_millis(200));

    let mut after = None;
    loop {
        let page = store
            .submissions_page(&scope.trial_id, &scope.form_id, scope.form_version.as_deref(), after, PAGE_SIZE)
            .await
            .context("failed to read stored submissions")?;
        let Some((last_rowid, _)) = page.last() else {
            break;
        };
        after = Some(*last_rowid);

        for (_, stored) in page {
            let Ok(published) = trial.form(&scope.form_id, Some(&stored.form_version)) else {
                summary.skipped += 1;
                continue;
            };
            let checked = epro_http::recheck(&published.form, stored.source, &stored.raw_answers)
                .with_context(|| format!("failed to re-read submission {}", stored.submission_id))?;
            let findings = serde_json::to_string(
                &checked
                    .findings
                    .iter()
                    .map(|finding| serde_json::json!({ "item": finding.link_id, "code": finding.problem.code() }))
                    .collect::<Vec<_>>(),
            )?;
            let record = Revalidation {
                run_id: run_id.clone(),
                submission_id: stored.submission_id.clone(),
                form_version: stored.form_version.clone(),
                scores: epro_http::scores_json(&checked.scores),
                findings,
                queries: epro_http::new_queries(checked.findings),
                actor: "operator:revalidate".to_owned(),
            };
            let outcome = store
                .record_revalidation(record)
                .await
                .with_context(|| format!("failed to record revalidation of {}", stored.submission_id))?;
            summary.submissions += 1;
            summary.new_queries += outcome.new_queries.len() as u64;
            progress.inc(1);
            progress.set_message(format!("{} new queries", summary.new_queries));
        }
    }

    progress.finish_and_clear();
    Ok(summary)
}
