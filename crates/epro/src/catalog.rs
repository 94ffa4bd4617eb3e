//! Loading trials and their forms from the trials directory: one folder per
//! trial, each with a `trial.toml` and the form files it lists.
//!
//! Reading is all or nothing. Every problem in every file is collected and
//! reported with its file, line and column (or JSON path), and nothing is
//! imported while any remains, so the database never gets a half-read trial.
//! [`read`] returns each trial with the text of its form files, which
//! `trials_cli::import` stores; [`load`] compiles them into a catalogue
//! directly.

use std::fmt;
use std::path::{Path, PathBuf};

use epro_forms::{Catalog, Form, FormFormat, Notice, PublishedForm, Trial, TrialFile, TrialFormEntry};

/// The name of the trial file in each trial folder.
pub const TRIAL_FILE: &str = "trial.toml";

/// Every problem found while loading a trials directory.
#[derive(Debug)]
pub struct CatalogError {
    pub problems: Vec<String>,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to load trials ({} problem(s))", self.problems.len())?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogError {}

/// One trial folder as read: its trial file and each listed form file.
#[derive(Debug)]
pub struct TrialSource {
    /// The folder's `trial.toml`.
    pub trial_path: PathBuf,
    pub trial_file: TrialFile,
    /// The forms in trial-file order.
    pub forms: Vec<FormSource>,
}

/// One form file of a trial folder, loaded with the trial's additions.
#[derive(Debug)]
pub struct FormSource {
    pub entry: TrialFormEntry,
    pub path: PathBuf,
    pub format: FormFormat,
    /// The file's text byte for byte.
    pub text: String,
    /// The compiled form with the trial's scores, alerts and messages.
    pub form: Form,
}

/// Loads every trial folder under `directory` into a catalogue.
///
/// # Errors
///
/// As [`read`], and when two folders hold the same trial id.
pub fn load(directory: &Path) -> Result<Catalog, CatalogError> {
    let trials = read(directory)?.into_iter().map(published_trial).collect();
    Catalog::new(trials).map_err(|error| CatalogError { problems: vec![format!("{}: {error}", directory.display())] })
}

fn published_trial(source: TrialSource) -> Trial {
    let trial_file = source.trial_file;
    let last_version_of = |id: &str| trial_file.forms.iter().rev().find(|e| e.id == id).map(|e| e.version.clone());
    let forms = source
        .forms
        .into_iter()
        .map(|loaded| PublishedForm {
            current: last_version_of(&loaded.entry.id).as_deref() == Some(loaded.entry.version.as_str()),
            id: loaded.entry.id.clone(),
            version: loaded.entry.version.clone(),
            title: loaded.entry.title.clone().unwrap_or_else(|| trial_file.title.clone()),
            form: loaded.form,
            retired_at: None,
        })
        .collect();
    Trial { id: trial_file.id, title: trial_file.title, forms, alerts: trial_file.alerts, sites: trial_file.sites }
}

/// Reads and checks every trial folder under `directory`.
///
/// # Errors
///
/// Returns all problems at once: unreadable files, invalid trial files,
/// forms that fail to load, and a directory without any trial.
pub fn read(directory: &Path) -> Result<Vec<TrialSource>, CatalogError> {
    let mut problems = Vec::new();
    let mut trials = Vec::new();

    let mut folders: Vec<PathBuf> = match std::fs::read_dir(directory) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.join(TRIAL_FILE).is_file())
            .collect(),
        Err(error) => {
            return Err(CatalogError {
                problems: vec![format!("{}: failed to read trials directory: {error}", directory.display())],
            });
        }
    };
    folders.sort();
    if folders.is_empty() {
        problems
            .push(format!("{}: no trial found; each trial is a folder holding a {TRIAL_FILE}", directory.display()));
    }

    for folder in folders {
        if let Some(trial) = load_trial(&folder, &mut problems) {
            trials.push(trial);
        }
    }

    if !problems.is_empty() {
        return Err(CatalogError { problems });
    }
    Ok(trials)
}

fn load_trial(folder: &Path, problems: &mut Vec<String>) -> Option<TrialSource> {
    let trial_path = folder.join(TRIAL_FILE);
    let text = read_file(&trial_path, problems)?;
    let trial_file = match epro_forms::parse_trial_file(&text) {
        Ok(trial_file) => trial_file,
        Err(notices) => {
            problems.extend(notices.iter().map(|notice| describe(&trial_path, notice)));
            return None;
        }
    };

    let mut forms = Vec::new();
    let count_before = problems.len();
    for entry in &trial_file.forms {
        let form_path = folder.join(&entry.file);
        let format = match form_path.extension().and_then(|e| e.to_str()) {
            Some("json") => FormFormat::FhirJson,
            Some("toml") => FormFormat::NativeToml,
            _ => {
                problems.push(format!(
                    "{}: form file {:?} must end in .json (FHIR Questionnaire) or .toml (native format)",
                    trial_path.display(),
                    entry.file
                ));
                continue;
            }
        };
        let Some(text) = read_file(&form_path, problems) else {
            continue;
        };
        let outcome = epro_forms::load_form(&text, format);
        problems.extend(outcome.report.errors.iter().map(|notice| describe(&form_path, notice)));
        if let Some(mut form) = outcome.form {
            // The trial file may add scores, alerts and rule translations
            // that the form file itself does not carry.
            match epro_forms::trial::attach_trial_rules(&mut form, entry) {
                Ok(()) => forms.push(FormSource { entry: entry.clone(), path: form_path, format, text, form }),
                Err(notices) => problems.extend(notices.iter().map(|notice| describe(&trial_path, notice))),
            }
        }
    }
    if problems.len() > count_before {
        return None;
    }
    Some(TrialSource { trial_path, trial_file, forms })
}

fn read_file(path: &Path, problems: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) => {
            problems.push(format!("{}: failed to read: {error}", path.display()));
            None
        }
    }
}

/// Formats a notice as `file:line:column: message (at path)`, the form
/// editors and terminals turn into a link.
pub fn describe(file: &Path, notice: &Notice) -> String {
    match (notice.line, notice.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}: {}", file.display(), message_with_path(notice)),
        _ => format!("{}: {}", file.display(), message_with_path(notice)),
    }
}

/// Formats a notice under a heading that already names its file:
/// `line L, column C: message` or `message (at path)`.
pub fn describe_in_file(notice: &Notice) -> String {
    match (notice.line, notice.column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: {}", message_with_path(notice)),
        _ => message_with_path(notice),
    }
}

fn message_with_path(notice: &Notice) -> String {
    if notice.path.is_empty() || notice.path == "$" {
        notice.message.clone()
    } else {
        format!("{} (at {})", notice.message, notice.path)
    }
}
