//! Trial files and the catalog of published forms.
//!
//! A trial file (TOML) names a trial and lists its forms by id, version and
//! file. The same form id may be listed with several versions. The last one
//! listed is the current version, which a submission gets when it names no
//! version. Reading the form files is the caller's job, because this crate
//! does no IO: the caller loads each listed file with `load_form` and
//! builds a [`Trial`] with [`Trial::from_file`].
//!
//! A form entry may add what the form file does not have.
//! `[[forms.scores]]` are CEL expressions computed on every submission,
//! such as the GAD-7 total. `[[forms.alerts]]` are CEL conditions that alert
//! site staff, such as a positive PHQ-9 item 9. `[[forms.messages]]` give
//! Simplified Chinese texts for the English-only messages of FHIR
//! `targetConstraint`s. [`attach_trial_rules`] compiles them into the form.
//!
//! The optional `[alerts]` table sets how long site staff have to
//! acknowledge an alert before it escalates ([`AlertPolicy`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use toml::{Table, Value};

use crate::load::{FormFormat, Notice};
use crate::model::Form;
use crate::{native, rules};

/// A parsed trial file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialFile {
    pub id: String,
    pub title: Localized,
    /// Forms in file order. For each form id, the last entry is current.
    pub forms: Vec<TrialFormEntry>,
    /// The `[alerts]` table, or the defaults when the file has none.
    pub alerts: AlertPolicy,
    /// The `[[sites]]` entries in file order: where patients are enrolled.
    pub sites: Vec<TrialSite>,
}

/// A `[[sites]]` entry: a hospital or clinic of the trial, where patients are
/// enrolled and whose staff see only that site's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialSite {
    pub id: String,
    pub name: Localized,
}

/// How site staff handle the alerts of one trial: the `[alerts]` table of a
/// trial file.
///
/// ```toml
/// [alerts]
/// acknowledge_within_minutes = 60
/// ```
///
/// `acknowledge_within_seconds` may stand in place of the minutes, for
/// tests and drills that cannot wait a minute. A file gives at most one of
/// the two, as a whole number from 1 up to a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// Time from raising an alert to its escalation, unless site staff
    /// acknowledge it first.
    pub acknowledge_within: Duration,
}

impl AlertPolicy {
    /// Deadline of a trial file without `[alerts]`: one hour, so an alert
    /// that nobody at the site has seen reaches the escalation contact on
    /// the same day.
    pub const DEFAULT_ACKNOWLEDGE_WITHIN: Duration = Duration::from_secs(60 * 60);

    /// Maximum deadline: one year. A longer one is a typo, and
    /// would push due times beyond what the store's timestamps hold.
    pub const MAX_ACKNOWLEDGE_WITHIN: Duration = Duration::from_secs(365 * 24 * 60 * 60);
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy { acknowledge_within: Self::DEFAULT_ACKNOWLEDGE_WITHIN }
    }
}

/// One `[[forms]]` entry of a trial file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialFormEntry {
    pub id: String,
    pub version: String,
    /// Path of the form file relative to the trial file. It ends in `.json`
    /// (FHIR Questionnaire) or `.toml` (native format), and cannot be
    /// absolute or contain `..`.
    pub file: String,
    /// Title shown for the form. When absent, the form file's title is used.
    pub title: Option<Localized>,
    /// Scores computed on every submission, in file order.
    pub scores: Vec<TrialScore>,
    /// Alert rules evaluated on every submission, in file order.
    pub alerts: Vec<TrialAlert>,
    /// Simplified Chinese texts for rules of the form.
    pub messages: Vec<RuleTranslation>,
}

/// A `[[forms.scores]]` entry: a score the form file does not compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialScore {
    /// Name of the score in `Checked::scores` and in `score(...)`.
    pub id: String,
    /// CEL expression of the score, such as `ordinal_sum()`.
    pub expression: String,
    /// Key path of the entry, such as `forms[1].scores[0]`.
    pub path: String,
}

/// A `[[forms.alerts]]` entry: a condition that alerts site staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialAlert {
    pub id: String,
    /// CEL expression; the alert fires when it is true.
    pub when: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    pub message: Localized,
    /// Key path of the entry, such as `forms[0].alerts[1]`.
    pub path: String,
}

/// A `[[forms.messages]]` entry: the Simplified Chinese text of a rule
/// whose form file has English only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTranslation {
    /// Key of the rule (a FHIR `targetConstraint` key).
    pub rule: String,
    pub zh_cn: String,
    /// Key path of the entry, such as `forms[0].messages[0]`.
    pub path: String,
}

/// Text in both languages that epro shows to patients and site staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    pub en: String,
    /// Simplified Chinese text, under the TOML key `zh-CN`.
    pub zh_cn: String,
}

/// The published trials, by id.
#[derive(Debug, Clone)]
pub struct Catalog {
    trials: Vec<Trial>,
    by_id: HashMap<String, usize>,
}

/// A trial with its loaded forms.
#[derive(Debug, Clone)]
pub struct Trial {
    pub id: String,
    pub title: Localized,
    /// Forms in trial-file order.
    pub forms: Vec<PublishedForm>,
    /// The trial's `[alerts]` table.
    pub alerts: AlertPolicy,
    /// The trial's sites in file order.
    pub sites: Vec<TrialSite>,
}

/// One version of a form as published in a trial.
#[derive(Debug, Clone)]
pub struct PublishedForm {
    pub id: String,
    pub version: String,
    pub title: Localized,
    pub form: Form,
    /// True for the version a submission gets when it names none: the newest
    /// version of this form id that is not retired. A form whose versions are
    /// all retired has none.
    pub current: bool,
    /// When the version was retired: it takes no new submissions, but what
    /// was stored for it stays readable. `None` while it is active.
    pub retired_at: Option<time::OffsetDateTime>,
}

/// Reason [`Trial::form`] found no form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("unknown form")]
    UnknownForm,
    #[error("unknown form version")]
    UnknownVersion,
}

const MAX_ID_LENGTH: usize = 64;

/// Severities an alert may have.
const ALERT_SEVERITIES: &[&str] = &["high", "medium", "low"];

/// Parses a trial file.
///
/// # Errors
///
/// Returns every problem found, each with the key path it concerns (such as
/// `forms[1].version`), or with line and column for a TOML syntax error.
pub fn parse_trial_file(text: &str) -> Result<TrialFile, Vec<Notice>> {
    let table = match text.parse::<Table>() {
        Ok(table) => table,
        Err(error) => return Err(vec![native::syntax_error(text, &error)]),
    };
    let mut parser = Parser::default();
    let file = parser.trial(&table);
    match file {
        Some(file) if parser.errors.is_empty() => Ok(file),
        _ => Err(parser.errors),
    }
}

/// Compiles the scores, alerts and messages of a trial's form entry into
/// `form`, replacing those of an earlier call. [`Trial::from_file`] calls it
/// for every entry, and so must any other code that builds
/// [`PublishedForm`]s from a trial file.
///
/// # Errors
///
/// Returns every problem with its key path, such as
/// `forms[0].alerts[1].when`: an expression that does not compile or names
/// an unknown item or score, a score id that is already a computed item,
/// or a message for a rule the form does not have.
pub fn attach_trial_rules(form: &mut Form, entry: &TrialFormEntry) -> Result<(), Vec<Notice>> {
    rules::attach_trial(form, entry)
}

/// Returns true when `id` has 1 to 64 characters, each an ASCII letter, a
/// digit, `.`, `_` or `-`.
pub fn is_valid_id(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !id.is_empty() && id.len() <= MAX_ID_LENGTH && id.chars().all(allowed)
}

impl TrialFormEntry {
    /// Returns the format of the form file, from its extension.
    pub fn format(&self) -> Option<FormFormat> {
        if self.file.ends_with(".json") {
            Some(FormFormat::FhirJson)
        } else if self.file.ends_with(".toml") {
            Some(FormFormat::NativeToml)
        } else {
            None
        }
    }
}

impl Trial {
    /// Builds a trial from its file and the forms loaded for its entries,
    /// given in the same order as `file.forms`. Marks the last version of
    /// each form id as current. An entry without a title takes the form
    /// file's title, in English for both languages when the file has no
    /// Chinese title, and the form id when the file has no title at all.
    ///
    /// # Errors
    ///
    /// Returns a message when the number of forms does not match the
    /// entries, or listing the problems [`attach_trial_rules`] found in an
    /// entry's scores, alerts and messages.
    pub fn from_file(file: TrialFile, forms: Vec<Form>) -> Result<Trial, String> {
        if file.forms.len() != forms.len() {
            return Err(format!("trial {} lists {} forms but {} were loaded", file.id, file.forms.len(), forms.len()));
        }
        let mut last_position = HashMap::new();
        for (position, entry) in file.forms.iter().enumerate() {
            last_position.insert(entry.id.clone(), position);
        }

        let published = file
            .forms
            .into_iter()
            .zip(forms)
            .enumerate()
            .map(|(position, (entry, mut form))| {
                attach_trial_rules(&mut form, &entry).map_err(|notices| {
                    let problems: Vec<String> = notices.iter().map(ToString::to_string).collect();
                    format!("trial {}: {}", file.id, problems.join("; "))
                })?;
                let title = entry.title.unwrap_or_else(|| title_from_form(&form, &entry.id));
                Ok(PublishedForm {
                    current: last_position.get(&entry.id) == Some(&position),
                    id: entry.id,
                    version: entry.version,
                    title,
                    form,
                    retired_at: None,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Trial { id: file.id, title: file.title, forms: published, alerts: file.alerts, sites: file.sites })
    }

    /// Finds a site by id.
    pub fn site(&self, site_id: &str) -> Option<&TrialSite> {
        self.sites.iter().find(|site| site.id == site_id)
    }

    /// Finds a form by id, and by version when one is given. Without a
    /// version it returns the current one, or the last version listed when
    /// every version is retired, so that the caller can say when.
    ///
    /// # Errors
    ///
    /// Returns [`LookupError::UnknownForm`] when the trial has no form with
    /// this id, and [`LookupError::UnknownVersion`] when it has the form but
    /// not the version.
    pub fn form(&self, form_id: &str, version: Option<&str>) -> Result<&PublishedForm, LookupError> {
        let mut versions = self.forms.iter().filter(|form| form.id == form_id).peekable();
        if versions.peek().is_none() {
            return Err(LookupError::UnknownForm);
        }
        let found = match version {
            Some(version) => versions.find(|form| form.version == version),
            None => {
                let all: Vec<&PublishedForm> = versions.collect();
                all.iter().find(|form| form.current).or(all.last()).copied()
            }
        };
        found.ok_or(LookupError::UnknownVersion)
    }

    /// Returns the active version a submission gets when it names none, or
    /// `None` when the trial has no such form or every version is retired.
    pub fn current_form(&self, form_id: &str) -> Option<&PublishedForm> {
        self.forms.iter().find(|form| form.id == form_id && form.current)
    }

    /// Returns the current version of the trial's only form (its last
    /// version when every one is retired), or `None` when the trial has
    /// several form ids.
    pub fn single_form(&self) -> Option<&PublishedForm> {
        let first = self.forms.first()?;
        let one_id = self.forms.iter().all(|form| form.id == first.id);
        if one_id { self.form(&first.id, None).ok() } else { None }
    }
}

fn title_from_form(form: &Form, form_id: &str) -> Localized {
    let en = form.title.clone().unwrap_or_else(|| form_id.to_owned());
    let zh_cn = form.title_zh_cn.clone().unwrap_or_else(|| en.clone());
    Localized { en, zh_cn }
}

impl Catalog {
    /// Builds the catalog.
    ///
    /// # Errors
    ///
    /// Returns a message naming the first duplicate trial id, duplicate
    /// (form id, version) pair, invalid id, retired version marked current,
    /// or form id that does not have exactly one current version while it
    /// has an active one.
    pub fn new(trials: Vec<Trial>) -> Result<Catalog, String> {
        let mut by_id = HashMap::new();
        for (position, trial) in trials.iter().enumerate() {
            if !is_valid_id(&trial.id) {
                return Err(format!("invalid trial id \"{}\"", trial.id));
            }
            if by_id.insert(trial.id.clone(), position).is_some() {
                return Err(format!("duplicate trial id \"{}\"", trial.id));
            }
            check_trial_forms(trial)?;
        }
        Ok(Catalog { trials, by_id })
    }

    /// Finds a trial by id.
    pub fn trial(&self, id: &str) -> Option<&Trial> {
        self.by_id.get(id).map(|position| &self.trials[*position])
    }

    /// Iterates over the trials in the order they were given.
    pub fn trials(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter()
    }
}

fn check_trial_forms(trial: &Trial) -> Result<(), String> {
    let mut versions = HashSet::new();
    let mut current_count: HashMap<&str, usize> = HashMap::new();
    let mut active_count: HashMap<&str, usize> = HashMap::new();
    for form in &trial.forms {
        if form.current && form.retired_at.is_some() {
            return Err(format!(
                "trial {} marks retired form {} version {} as current",
                trial.id, form.id, form.version
            ));
        }
        *active_count.entry(form.id.as_str()).or_default() += usize::from(form.retired_at.is_none());
        if !is_valid_id(&form.id) || !is_valid_id(&form.version) {
            return Err(format!(
                "trial {} has an invalid form id or version: \"{}\" version \"{}\"",
                trial.id, form.id, form.version
            ));
        }
        if !versions.insert((form.id.as_str(), form.version.as_str())) {
            return Err(format!("trial {} lists form {} version {} twice", trial.id, form.id, form.version));
        }
        *current_count.entry(form.id.as_str()).or_default() += usize::from(form.current);
    }
    for (form_id, count) in current_count {
        let expected = usize::from(active_count.get(form_id).is_some_and(|active| *active > 0));
        if count != expected {
            return Err(format!(
                "trial {} has {count} current versions of form {form_id}, expected exactly {expected}",
                trial.id
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Parser {
    errors: Vec<Notice>,
}

impl Parser {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Notice::new(path, message));
    }

    fn trial(&mut self, table: &Table) -> Option<TrialFile> {
        self.reject_unknown_keys(table, &["id", "title", "forms", "alerts", "sites"], "");
        let id = self.id(table, "id", "id");
        let title = self.required_localized(table.get("title"), "title");
        let forms = match table.get("forms") {
            Some(Value::Array(entries)) if !entries.is_empty() => self.forms(entries),
            Some(Value::Array(_)) | None => {
                self.error("forms", "the trial lists no forms; add a [[forms]] entry");
                Vec::new()
            }
            Some(_) => {
                self.error("forms", "forms must be an array of tables");
                Vec::new()
            }
        };
        let alerts = self.alert_policy(table.get("alerts"));
        let sites = self.sites(table.get("sites"));
        Some(TrialFile { id: id?, title: title?, forms, alerts: alerts?, sites })
    }

    /// Reads the `[[sites]]` entries; a trial without any has no sites yet, and
    /// nobody can be enrolled into it.
    fn sites(&mut self, value: Option<&Value>) -> Vec<TrialSite> {
        let Some(value) = value else {
            return Vec::new();
        };
        let Some(list) = value.as_array() else {
            self.error("sites", "sites must be an array of tables, written [[sites]]");
            return Vec::new();
        };
        let mut sites: Vec<TrialSite> = Vec::new();
        for (position, entry) in list.iter().enumerate() {
            let path = format!("sites[{position}]");
            let Some(table) = entry.as_table() else {
                self.error(path, "site entry must be a table");
                continue;
            };
            self.reject_unknown_keys(table, &["id", "name"], &path);
            let id = self.id(table, "id", &format!("{path}.id"));
            let name = self.required_localized(table.get("name"), &format!("{path}.name"));
            let (Some(id), Some(name)) = (id, name) else {
                continue;
            };
            if let Some(first) = sites.iter().position(|site| site.id == id) {
                self.error(path, format!("site {id} is already listed at sites[{first}]"));
                continue;
            }
            sites.push(TrialSite { id, name });
        }
        sites
    }

    /// Reads the `[alerts]` table, or returns the defaults when it is absent.
    fn alert_policy(&mut self, value: Option<&Value>) -> Option<AlertPolicy> {
        let Some(value) = value else {
            return Some(AlertPolicy::default());
        };
        let Some(table) = value.as_table() else {
            self.error("alerts", "alerts must be a table, written [alerts]");
            return None;
        };
        self.reject_unknown_keys(table, &["acknowledge_within_minutes", "acknowledge_within_seconds"], "alerts");

        let minutes = self.deadline(table, "acknowledge_within_minutes", 60);
        let seconds = self.deadline(table, "acknowledge_within_seconds", 1);
        match (minutes, seconds) {
            (Ok(Some(_)), Ok(Some(_))) => {
                self.error("alerts", "give acknowledge_within_minutes or acknowledge_within_seconds, not both");
                None
            }
            (Ok(Some(deadline)), Ok(None)) | (Ok(None), Ok(Some(deadline))) => {
                Some(AlertPolicy { acknowledge_within: deadline })
            }
            (Ok(None), Ok(None)) => Some(AlertPolicy::default()),
            _ => None,
        }
    }

    /// Reads the deadline under `key`, counted in units of `unit_seconds`:
    /// `Ok(None)` when absent, `Err(())` after reporting a value that is not
    /// a whole number from 1 up to [`AlertPolicy::MAX_ACKNOWLEDGE_WITHIN`].
    fn deadline(&mut self, table: &Table, key: &str, unit_seconds: u64) -> Result<Option<Duration>, ()> {
        let path = format!("alerts.{key}");
        let Some(value) = table.get(key) else {
            return Ok(None);
        };
        let Some(count) = value.as_integer() else {
            self.error(path, format!("{key} must be a whole number, such as {key} = 60"));
            return Err(());
        };
        let max = AlertPolicy::MAX_ACKNOWLEDGE_WITHIN.as_secs() / unit_seconds;
        match u64::try_from(count) {
            Ok(count) if (1..=max).contains(&count) => Ok(Some(Duration::from_secs(count * unit_seconds))),
            _ => {
                self.error(path, format!("{key} is {count}, but must be from 1 to {max} (one year)"));
                Err(())
            }
        }
    }

    fn forms(&mut self, entries: &[Value]) -> Vec<TrialFormEntry> {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let mut forms = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            let path = format!("forms[{position}]");
            let Some(entry) = self.form(entry, &path) else {
                continue;
            };
            let key = (entry.id.clone(), entry.version.clone());
            if let Some(first) = seen.insert(key, position) {
                self.error(
                    path,
                    format!("form {} version {} is already listed at forms[{first}]", entry.id, entry.version),
                );
            }
            forms.push(entry);
        }
        forms
    }

    fn form(&mut self, value: &Value, path: &str) -> Option<TrialFormEntry> {
        let Some(table) = value.as_table() else {
            self.error(path, "form entry must be a table");
            return None;
        };
        self.reject_unknown_keys(table, &["id", "version", "file", "title", "scores", "alerts", "messages"], path);
        let id = self.id(table, "id", &format!("{path}.id"));
        let version = self.id(table, "version", &format!("{path}.version"));
        let file = self.file(table.get("file"), &format!("{path}.file"));
        let title = match table.get("title") {
            Some(title) => Some(self.required_localized(Some(title), &format!("{path}.title"))?),
            None => None,
        };
        let scores = self.entries(table, "scores", path, Parser::score);
        let alerts = self.entries(table, "alerts", path, Parser::alert);
        let messages = self.entries(table, "messages", path, Parser::message);
        Some(TrialFormEntry { id: id?, version: version?, file: file?, title, scores, alerts, messages })
    }

    /// Reads the array of tables under `key` with `read`, one entry each.
    fn entries<T>(
        &mut self,
        table: &Table,
        key: &str,
        path: &str,
        read: fn(&mut Parser, &Table, &str) -> Option<T>,
    ) -> Vec<T> {
        let list_path = format!("{path}.{key}");
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let Some(list) = value.as_array() else {
            self.error(list_path, format!("{key} must be an array of tables, written [[forms.{key}]]"));
            return Vec::new();
        };
        let mut entries = Vec::new();
        for (position, entry) in list.iter().enumerate() {
            let entry_path = format!("{list_path}[{position}]");
            match entry.as_table() {
                Some(entry) => entries.extend(read(self, entry, &entry_path)),
                None => self.error(entry_path, "entry must be a table"),
            }
        }
        entries
    }

    fn score(&mut self, table: &Table, path: &str) -> Option<TrialScore> {
        self.reject_unknown_keys(table, &["id", "expression"], path);
        let id = self.id(table, "id", &format!("{path}.id"));
        let expression = self.text(table, "expression", path);
        Some(TrialScore { id: id?, expression: expression?, path: path.to_owned() })
    }

    fn alert(&mut self, table: &Table, path: &str) -> Option<TrialAlert> {
        self.reject_unknown_keys(table, &["id", "when", "severity", "message"], path);
        let id = self.id(table, "id", &format!("{path}.id"));
        let when = self.text(table, "when", path);
        let severity = self.text(table, "severity", path);
        let severity = severity.filter(|severity| {
            let known = ALERT_SEVERITIES.contains(&severity.as_str());
            if !known {
                self.error(format!("{path}.severity"), format!("\"{severity}\" is not one of high, medium, low"));
            }
            known
        });
        let message = self.required_localized(table.get("message"), &format!("{path}.message"));
        Some(TrialAlert { id: id?, when: when?, severity: severity?, message: message?, path: path.to_owned() })
    }

    fn message(&mut self, table: &Table, path: &str) -> Option<RuleTranslation> {
        self.reject_unknown_keys(table, &["rule", "zh-CN"], path);
        let rule = self.text(table, "rule", path);
        let zh_cn = self.text(table, "zh-CN", path);
        Some(RuleTranslation { rule: rule?, zh_cn: zh_cn?, path: path.to_owned() })
    }

    /// Reads a required, non-empty string under `key` of the table at
    /// `path`.
    fn text(&mut self, table: &Table, key: &str, path: &str) -> Option<String> {
        let key_path = format!("{path}.{key}");
        match table.get(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
            Some(Value::String(_)) => {
                self.error(key_path, format!("{key} is empty"));
                None
            }
            Some(_) => {
                self.error(key_path, format!("{key} must be a string"));
                None
            }
            None => {
                self.error(path, format!("{key} is missing"));
                None
            }
        }
    }

    fn id(&mut self, table: &Table, key: &str, path: &str) -> Option<String> {
        let Some(value) = table.get(key) else {
            self.error(path, format!("{key} is missing"));
            return None;
        };
        let Some(id) = value.as_str() else {
            self.error(path, format!("{key} must be a string"));
            return None;
        };
        if !is_valid_id(id) {
            self.error(path, format!("\"{id}\" is not a valid {key}: use 1 to 64 of A-Z a-z 0-9 . _ -"));
            return None;
        }
        Some(id.to_owned())
    }

    fn file(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        let Some(file) = value.and_then(Value::as_str) else {
            self.error(path, "file is missing or not a string");
            return None;
        };
        let escapes =
            file.starts_with('/') || file.starts_with('\\') || file.split(['/', '\\']).any(|part| part == "..");
        if escapes || file.contains(':') {
            self.error(path, format!("\"{file}\" must be a relative path inside the trial folder"));
            return None;
        }
        let known_format = file.ends_with(".json") || file.ends_with(".toml");
        if !known_format {
            self.error(path, format!("\"{file}\" must end in .json (FHIR Questionnaire) or .toml (native form)"));
            return None;
        }
        Some(file.to_owned())
    }

    fn required_localized(&mut self, value: Option<&Value>, path: &str) -> Option<Localized> {
        let Some(table) = value.and_then(Value::as_table) else {
            self.error(path, "must be a table with en and zh-CN, such as { en = \"...\", zh-CN = \"...\" }");
            return None;
        };
        self.reject_unknown_keys(table, &["en", "zh-CN"], path);
        let mut text = |key: &str| match table.get(key).and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => Some(text.to_owned()),
            _ => {
                self.error(format!("{path}.{key}"), format!("{key} text is missing or empty"));
                None
            }
        };
        let en = text("en");
        let zh_cn = text("zh-CN");
        Some(Localized { en: en?, zh_cn: zh_cn? })
    }

    fn reject_unknown_keys(&mut self, table: &Table, known: &[&str], path: &str) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let key_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                self.error(key_path, format!("unknown key \"{key}\""));
            }
        }
    }
}
