//! The runtime catalogue: the trials and form versions stored in the database,
//! compiled into an [`epro_forms::Catalog`] that handlers read without a lock.
//!
//! [`LiveCatalog`] holds the compiled catalogue behind an [`ArcSwap`]. A publish or
//! retirement on this instance reloads it before the handler replies, so the change
//! takes effect at once here. Other instances on the same PostgreSQL database call
//! [`LiveCatalog::refresh_if_changed`] every few seconds: it reads the store's
//! catalogue generation, one row, and reloads only when that number moved.
//!
//! A form version's content never changes, so a reload compiles only the versions it
//! has not compiled before and reuses the others.
//!
//! This module also defines how a trial file's additions to a form (title, scores,
//! alerts and Chinese rule messages) are kept in `form_versions.rules`: a JSON object
//! that [`rules_json`] writes and [`check_form`] reads back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use epro_forms::{
    AlertPolicy, Catalog, Form, FormFormat, Localized, Notice, PublishedForm, RuleTranslation, Trial, TrialAlert,
    TrialFormEntry, TrialScore, TrialSite,
};
use epro_store::{CatalogSnapshot, FormSourceFormat, FormVersion, Store, StoredTrial};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The compiled catalogue of one instance and the generation it was built from.
pub struct LiveCatalog {
    current: ArcSwap<Catalog>,
    /// The store's catalogue generation of `current`, or `None` for a catalogue that
    /// did not come from the store (tests that build one by hand).
    generation: std::sync::Mutex<Option<i64>>,
    /// Held while a reload runs, so that two reloads never race to swap.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for LiveCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCatalog").field("generation", &self.generation()).finish_non_exhaustive()
    }
}

impl From<Arc<Catalog>> for LiveCatalog {
    fn from(catalog: Arc<Catalog>) -> Self {
        LiveCatalog {
            current: ArcSwap::new(catalog),
            generation: std::sync::Mutex::new(None),
            reloading: Mutex::new(()),
        }
    }
}

impl LiveCatalog {
    /// Reads the whole catalogue from the store and compiles it.
    ///
    /// # Errors
    ///
    /// Fails when the store cannot be read, or lists every stored form version that
    /// no longer loads.
    pub async fn load(store: &Store) -> anyhow::Result<LiveCatalog> {
        let snapshot = store.catalog_snapshot().await.map_err(anyhow::Error::from)?;
        let generation = snapshot.generation;
        let catalog = build(&snapshot, None).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        Ok(LiveCatalog {
            current: ArcSwap::from_pointee(catalog),
            generation: std::sync::Mutex::new(Some(generation)),
            reloading: Mutex::new(()),
        })
    }

    /// Returns the catalogue as it is now. Later reloads do not change the value
    /// returned, so a request sees one catalogue from start to end.
    pub fn get(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Returns the store generation of the current catalogue.
    pub fn generation(&self) -> Option<i64> {
        *self.generation.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reloads the catalogue from the store when the store's generation differs from
    /// the one loaded. Returns whether it reloaded.
    ///
    /// # Errors
    ///
    /// Fails when the store cannot be read or a stored version no longer loads; the
    /// current catalogue then stays in place.
    pub async fn refresh_if_changed(&self, store: &Store) -> anyhow::Result<bool> {
        let stored = store.catalog_generation().await?;
        if self.generation() == Some(stored) {
            return Ok(false);
        }
        self.reload(store).await
    }

    /// Reloads the catalogue from the store, unless another reload has already
    /// loaded this generation or a newer one. Returns whether it swapped.
    ///
    /// # Errors
    ///
    /// As [`refresh_if_changed`](Self::refresh_if_changed).
    pub async fn reload(&self, store: &Store) -> anyhow::Result<bool> {
        let _reloading = self.reloading.lock().await;
        let snapshot = store.catalog_snapshot().await?;
        if self.generation().is_some_and(|loaded| loaded >= snapshot.generation) {
            return Ok(false);
        }
        let previous = self.get();
        let catalog = build(&snapshot, Some(&previous)).map_err(|problems| {
            anyhow::anyhow!("failed to compile catalogue generation {}: {}", snapshot.generation, problems.join("; "))
        })?;
        self.current.store(Arc::new(catalog));
        *self.generation.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(snapshot.generation);
        tracing::info!(generation = snapshot.generation, "Catalogue reloaded");
        Ok(true)
    }
}

/// Builds the compiled catalogue of a snapshot. Versions that `previous` has already
/// compiled are reused, because a version's content never changes.
///
/// # Errors
///
/// Returns one line per stored version that fails to load, naming trial, form and
/// version.
pub fn build(snapshot: &CatalogSnapshot, previous: Option<&Catalog>) -> Result<Catalog, Vec<String>> {
    let mut problems = Vec::new();
    let mut by_trial: HashMap<&str, Vec<&FormVersion>> = HashMap::new();
    for form in &snapshot.forms {
        by_trial.entry(form.trial_id.as_str()).or_default().push(form);
    }

    let mut trials = Vec::new();
    for stored in &snapshot.trials {
        let versions = by_trial.remove(stored.trial_id.as_str()).unwrap_or_default();
        let previous_trial = previous.and_then(|catalog| catalog.trial(&stored.trial_id));
        trials.push(build_trial(stored, &versions, previous_trial, &mut problems));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Catalog::new(trials).map_err(|error| vec![error])
}

fn build_trial(
    stored: &StoredTrial,
    versions: &[&FormVersion],
    previous: Option<&Trial>,
    problems: &mut Vec<String>,
) -> Trial {
    // The newest active version of each form is current; `versions` is in
    // publication order.
    let mut current: HashMap<&str, i64> = HashMap::new();
    for version in versions.iter().filter(|version| !version.is_retired()) {
        current.insert(version.form_id.as_str(), version.seq);
    }

    let mut forms = Vec::with_capacity(versions.len());
    for version in versions {
        let compiled = previous
            .and_then(|trial| {
                trial.forms.iter().find(|form| form.id == version.form_id && form.version == version.version)
            })
            .map(|form| (form.form.clone(), form.title.clone()));
        let (form, title) = match compiled {
            Some(compiled) => compiled,
            None => match check_form(version.format, &version.source, &version.rules) {
                Ok(checked) => (checked.form, checked.title),
                Err(notices) => {
                    problems.extend(notices.iter().map(|notice| {
                        format!(
                            "trial {} form {} version {}: {}",
                            stored.trial_id,
                            version.form_id,
                            version.version,
                            describe(notice)
                        )
                    }));
                    continue;
                }
            },
        };
        forms.push(PublishedForm {
            id: version.form_id.clone(),
            version: version.version.clone(),
            title,
            form,
            current: current.get(version.form_id.as_str()) == Some(&version.seq),
            retired_at: version.retirement.as_ref().map(|retirement| retirement.retired_at),
        });
    }

    let seconds = u64::try_from(stored.acknowledge_within_seconds).unwrap_or(1);
    Trial {
        id: stored.trial_id.clone(),
        title: Localized { en: stored.title_en.clone(), zh_cn: stored.title_zh_cn.clone() },
        forms,
        alerts: AlertPolicy { acknowledge_within: Duration::from_secs(seconds) },
        sites: stored
            .sites
            .iter()
            .map(|site| TrialSite {
                id: site.site_id.clone(),
                name: Localized {
                    en: site.name.clone(),
                    zh_cn: site.name_zh_cn.clone().unwrap_or_else(|| site.name.clone()),
                },
            })
            .collect(),
    }
}

/// A form document checked the way publishing and loading check it.
#[derive(Debug)]
pub struct CheckedForm {
    pub form: Form,
    /// The title of the rules, or else the document's.
    pub title: Localized,
}

/// Loads a form document with the trial's additions: every check of `epro forms
/// check`, then the scores, alerts and messages of `rules` compiled into the form.
///
/// # Errors
///
/// Returns every problem, each with its path: a JSONPath into a FHIR document, a key
/// path into a TOML document or into the rules (`scores[0].expression`), and line and
/// column for a syntax error.
pub fn check_form(format: FormSourceFormat, source: &str, rules: &str) -> Result<CheckedForm, Vec<Notice>> {
    let format = match format {
        FormSourceFormat::FhirJson => FormFormat::FhirJson,
        FormSourceFormat::NativeToml => FormFormat::NativeToml,
    };
    let outcome = epro_forms::load_form(source, format);
    let Some(mut form) = outcome.form else {
        return Err(outcome.report.errors);
    };
    let entry = entry_from_rules(rules, format)?;
    epro_forms::attach_trial_rules(&mut form, &entry)?;
    let title = entry.title.unwrap_or_else(|| title_from_form(&form, &entry.id));
    Ok(CheckedForm { form, title })
}

/// Encodes what a trial file's `[[forms]]` entry adds to its form document, for
/// `form_versions.rules`. Paths are left out: they are rebuilt on reading.
pub fn rules_json(entry: &TrialFormEntry) -> String {
    let mut rules = serde_json::Map::new();
    if let Some(title) = &entry.title {
        rules.insert("title".to_owned(), localized_json(title));
    }
    if !entry.scores.is_empty() {
        let scores = entry.scores.iter().map(|score| json!({ "id": score.id, "expression": score.expression }));
        rules.insert("scores".to_owned(), scores.collect());
    }
    if !entry.alerts.is_empty() {
        let alerts = entry.alerts.iter().map(|alert| {
            json!({
                "id": alert.id,
                "when": alert.when,
                "severity": alert.severity,
                "message": localized_json(&alert.message),
            })
        });
        rules.insert("alerts".to_owned(), alerts.collect());
    }
    if !entry.messages.is_empty() {
        let messages = entry.messages.iter().map(|message| json!({ "rule": message.rule, "zh-CN": message.zh_cn }));
        rules.insert("messages".to_owned(), messages.collect());
    }
    Value::Object(rules).to_string()
}

fn localized_json(text: &Localized) -> Value {
    json!({ "en": text.en, "zh-CN": text.zh_cn })
}

/// Rebuilds a trial-file entry from `rules`, with key paths into the rules object.
fn entry_from_rules(rules: &str, format: FormFormat) -> Result<TrialFormEntry, Vec<Notice>> {
    let invalid = |path: &str, message: &str| vec![rules_notice(path, message)];
    let value: Value = serde_json::from_str(rules).map_err(|error| invalid("rules", &format!("not JSON: {error}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid("rules", "must be a JSON object"));
    };
    let text = |value: &Value, path: &str| -> Result<String, Vec<Notice>> {
        value.as_str().map(str::to_owned).ok_or_else(|| invalid(path, "must be a string"))
    };
    let localized = |value: &Value, path: &str| -> Result<Localized, Vec<Notice>> {
        Ok(Localized {
            en: text(&value["en"], &format!("{path}.en"))?,
            zh_cn: text(&value["zh-CN"], &format!("{path}.zh-CN"))?,
        })
    };
    let list = |key: &str| object.get(key).and_then(Value::as_array).cloned().unwrap_or_default();

    let title = object.get("title").map(|title| localized(title, "title")).transpose()?;
    let mut scores = Vec::new();
    for (position, score) in list("scores").iter().enumerate() {
        let path = format!("scores[{position}]");
        scores.push(TrialScore {
            id: text(&score["id"], &format!("{path}.id"))?,
            expression: text(&score["expression"], &format!("{path}.expression"))?,
            path,
        });
    }
    let mut alerts = Vec::new();
    for (position, alert) in list("alerts").iter().enumerate() {
        let path = format!("alerts[{position}]");
        alerts.push(TrialAlert {
            id: text(&alert["id"], &format!("{path}.id"))?,
            when: text(&alert["when"], &format!("{path}.when"))?,
            severity: text(&alert["severity"], &format!("{path}.severity"))?,
            message: localized(&alert["message"], &format!("{path}.message"))?,
            path,
        });
    }
    let mut messages = Vec::new();
    for (position, message) in list("messages").iter().enumerate() {
        let path = format!("messages[{position}]");
        messages.push(RuleTranslation {
            rule: text(&message["rule"], &format!("{path}.rule"))?,
            zh_cn: text(&message["zh-CN"], &format!("{path}.zh-CN"))?,
            path,
        });
    }

    let file = match format {
        FormFormat::FhirJson => "form.json",
        FormFormat::NativeToml => "form.toml",
    };
    Ok(TrialFormEntry {
        id: String::new(),
        version: String::new(),
        file: file.to_owned(),
        title,
        scores,
        alerts,
        messages,
    })
}

fn rules_notice(path: &str, message: &str) -> Notice {
    Notice { path: path.to_owned(), line: None, column: None, message: message.to_owned() }
}

fn title_from_form(form: &Form, form_id: &str) -> Localized {
    let en = form.title.clone().unwrap_or_else(|| form_id.to_owned());
    let zh_cn = form.title_zh_cn.clone().unwrap_or_else(|| en.clone());
    Localized { en, zh_cn }
}

/// Formats a notice as `message (at path)` or `line L, column C: message`.
pub fn describe(notice: &Notice) -> String {
    match (notice.line, notice.column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: {}", notice.message),
        _ if notice.path.is_empty() || notice.path == "$" => notice.message.clone(),
        _ => format!("{} (at {})", notice.message, notice.path),
    }
}
