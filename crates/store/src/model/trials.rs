//! Values of the trial catalogue: trials with their sites, form versions published
//! into them, retirements, and the snapshot an instance builds its catalogue from.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

/// A trial to create, with its first sites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTrial {
    pub trial_id: String,
    pub title_en: String,
    pub title_zh_cn: String,
    /// Time from raising an alert to its escalation, in seconds. At least 1.
    pub acknowledge_within_seconds: i64,
    pub sites: Vec<NewSite>,
    /// The actor creating the trial, for example `operator` or `system`.
    pub actor: String,
    pub request_id: Option<String>,
}

/// A site to add to a trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSite {
    pub site_id: String,
    /// The name in English, or the only name.
    pub name: String,
    /// The name in Simplified Chinese, when it differs from `name`.
    pub name_zh_cn: Option<String>,
}

/// A trial as stored, with its sites in `site_id` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTrial {
    pub trial_id: String,
    pub title_en: String,
    pub title_zh_cn: String,
    pub acknowledge_within_seconds: i64,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub sites: Vec<StoredSite>,
}

/// A site as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSite {
    pub site_id: String,
    /// The name in English, or the only name.
    pub name: String,
    /// The name in Simplified Chinese, when it has one of its own.
    pub name_zh_cn: Option<String>,
    pub added_at: OffsetDateTime,
    pub added_by: String,
}

/// The result of [`Store::create_trial`](crate::Store::create_trial).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrialOutcome {
    /// The trial was created with its sites; the audit trail has a `trial.created` row
    /// and a `site.added` row per site.
    Created(StoredTrial),
    /// A trial with this id, title and alert deadline exists and has every requested
    /// site, with the same names. Nothing was written.
    Unchanged(StoredTrial),
    /// A trial with this id exists with another title or deadline, or a requested site
    /// is missing or has another name. Nothing was written.
    Conflict(StoredTrial),
}

/// The result of [`Store::add_site`](crate::Store::add_site).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteOutcome {
    Added(StoredSite),
    /// The trial has this site with the same name. Nothing was written.
    Unchanged(StoredSite),
    /// The trial has this site under another name. Nothing was written.
    Conflict(StoredSite),
    UnknownTrial,
}

/// The source format of a form document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormSourceFormat {
    /// A FHIR R4 Questionnaire resource in JSON.
    FhirJson,
    /// epro's native TOML format.
    NativeToml,
}

impl FormSourceFormat {
    /// Returns the name stored in `form_versions.format`.
    pub fn as_str(self) -> &'static str {
        match self {
            FormSourceFormat::FhirJson => "fhir-json",
            FormSourceFormat::NativeToml => "native-toml",
        }
    }
}

impl fmt::Display for FormSourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FormSourceFormat {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fhir-json" => Ok(FormSourceFormat::FhirJson),
            "native-toml" => Ok(FormSourceFormat::NativeToml),
            other => anyhow::bail!("unknown form format {other:?} in database"),
        }
    }
}

/// A form version to publish. The caller has checked the document; the store keeps
/// it as given.
#[derive(Clone, PartialEq, Eq)]
pub struct NewFormVersion {
    pub trial_id: String,
    pub form_id: String,
    pub version: String,
    pub format: FormSourceFormat,
    /// The form document byte for byte.
    pub source: String,
    /// The trial's additions to the document (title, scores, alerts, rule messages), a
    /// JSON object. Part of the version's content, like the document.
    pub rules: String,
    pub actor: String,
    pub request_id: Option<String>,
}

impl fmt::Debug for NewFormVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewFormVersion")
            .field("trial_id", &self.trial_id)
            .field("form_id", &self.form_id)
            .field("version", &self.version)
            .field("format", &self.format)
            .field("source_bytes", &self.source.len())
            .field("rules_bytes", &self.rules.len())
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// A published form version as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct FormVersion {
    /// Publication order across all trials.
    pub seq: i64,
    pub trial_id: String,
    pub form_id: String,
    pub version: String,
    pub format: FormSourceFormat,
    /// The form document byte for byte as published.
    pub source: String,
    pub source_sha256: [u8; 32],
    /// The trial's additions, a JSON object, as published.
    pub rules: String,
    pub published_at: OffsetDateTime,
    pub published_by: String,
    pub retirement: Option<Retirement>,
}

impl fmt::Debug for FormVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormVersion")
            .field("seq", &self.seq)
            .field("trial_id", &self.trial_id)
            .field("form_id", &self.form_id)
            .field("version", &self.version)
            .field("format", &self.format)
            .field("source_bytes", &self.source.len())
            .field("published_at", &self.published_at)
            .field("retirement", &self.retirement)
            .finish_non_exhaustive()
    }
}

impl FormVersion {
    /// Returns true when this version takes no new submissions.
    pub fn is_retired(&self) -> bool {
        self.retirement.is_some()
    }
}

/// The retirement of a form version: its time, actor and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retirement {
    pub retired_at: OffsetDateTime,
    pub retired_by: String,
    pub reason: String,
}

/// The result of [`Store::publish_form`](crate::Store::publish_form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version is new and stored, with its `form.published` audit row.
    Published(FormVersion),
    /// The trial has this form id and version with the same format, document and
    /// rules, retired or not. Nothing was written.
    Unchanged(FormVersion),
    /// The trial has this form id and version with other content. A version is never
    /// reused: publish the change as a new version. Nothing was written.
    Conflict(FormVersion),
    UnknownTrial,
}

/// A request to retire one form version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormRetirement {
    pub trial_id: String,
    pub form_id: String,
    pub version: String,
    /// Why; required, kept in the row and in the audit trail.
    pub reason: String,
    pub actor: String,
    pub request_id: Option<String>,
}

/// The result of [`Store::retire_form`](crate::Store::retire_form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetireOutcome {
    /// The version is retired now, with its `form.retired` audit row.
    Retired(FormVersion),
    /// The version was retired before; a retirement is final. Nothing was written.
    AlreadyRetired(FormVersion),
    NotFound,
}

/// Every trial and form version, read in one transaction, with the catalogue
/// generation they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogSnapshot {
    /// [`Store::catalog_generation`](crate::Store::catalog_generation) at the time of
    /// the read.
    pub generation: i64,
    /// Trials in `trial_id` order.
    pub trials: Vec<StoredTrial>,
    /// Form versions of every trial in publication order.
    pub forms: Vec<FormVersion>,
}

/// A request to add one site to a trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteAddition {
    pub trial_id: String,
    pub site: NewSite,
    pub actor: String,
    pub request_id: Option<String>,
}
