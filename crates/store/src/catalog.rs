//! The parts of the trial catalogue that both backends share: the audit actions, the audit
//! values of each change, the document hash and the comparisons that decide whether
//! a repeated request changes nothing or conflicts.

use sha2::{Digest, Sha256};

use crate::model::{FormVersion, NewFormVersion, NewSite, NewTrial, StoredSite, StoredTrial};

/// Audit action recorded when a trial is created.
pub const TRIAL_CREATED: &str = "trial.created";

/// Audit action recorded for each site added to a trial.
pub const SITE_ADDED: &str = "site.added";

/// Audit action recorded when a form version is published.
pub const FORM_PUBLISHED: &str = "form.published";

/// Audit action recorded when a form version is retired.
pub const FORM_RETIRED: &str = "form.retired";

/// Returns the SHA-256 of a form document's bytes.
pub(crate) fn source_sha256(source: &str) -> [u8; 32] {
    Sha256::digest(source.as_bytes()).into()
}

/// Returns the entity id of a form version in the audit trail: `FORM/VERSION`. The
/// row's `trial_id` names the trial.
pub(crate) fn form_entity_id(form_id: &str, version: &str) -> String {
    format!("{form_id}/{version}")
}

/// Returns the `after_value` of a `trial.created` row.
pub(crate) fn trial_after(trial: &NewTrial) -> String {
    serde_json::json!({
        "trialId": trial.trial_id,
        "title": { "en": trial.title_en, "zh-CN": trial.title_zh_cn },
        "acknowledgeWithinSeconds": trial.acknowledge_within_seconds,
    })
    .to_string()
}

/// Returns the `after_value` of a `site.added` row.
pub(crate) fn site_after(site: &NewSite) -> String {
    serde_json::json!({ "siteId": site.site_id, "name": site.name, "nameZhCn": site.name_zh_cn }).to_string()
}

/// Returns the `after_value` of a `form.published` row: the version's identity and
/// the hash of its document, never the document itself.
pub(crate) fn published_after(form: &NewFormVersion, sha256: &[u8; 32]) -> String {
    serde_json::json!({
        "formId": form.form_id,
        "version": form.version,
        "format": form.format.as_str(),
        "sourceSha256": hex(sha256),
    })
    .to_string()
}

/// Returns the `before_value` and `after_value` of a `form.retired` row.
pub(crate) fn retired_values(retired_at: &str) -> (String, String) {
    let before = serde_json::json!({ "status": "active" }).to_string();
    let after = serde_json::json!({ "status": "retired", "retiredAt": retired_at }).to_string();
    (before, after)
}

/// Returns true when a stored trial already matches the request `trial`: the same
/// title and alert deadline, and every requested site with the same name.
pub(crate) fn trial_matches(stored: &StoredTrial, trial: &NewTrial) -> bool {
    let same_trial = stored.title_en == trial.title_en
        && stored.title_zh_cn == trial.title_zh_cn
        && stored.acknowledge_within_seconds == trial.acknowledge_within_seconds;
    same_trial && trial.sites.iter().all(|site| stored.sites.iter().any(|existing| site_matches(existing, site)))
}

pub(crate) fn site_matches(stored: &StoredSite, site: &NewSite) -> bool {
    stored.site_id == site.site_id && stored.name == site.name && stored.name_zh_cn == site.name_zh_cn
}

/// Returns true when a stored version has the content that `form` would publish.
pub(crate) fn version_matches(stored: &FormVersion, form: &NewFormVersion) -> bool {
    stored.format == form.format
        && stored.source_sha256 == source_sha256(&form.source)
        && stored.source == form.source
        && same_json(&stored.rules, &form.rules)
}

/// Compares two JSON texts by value, because PostgreSQL's `json` keeps the text but
/// a caller may format the same rules differently.
fn same_json(left: &str, right: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(left), serde_json::from_str::<serde_json::Value>(right)) {
        (Ok(left), Ok(right)) => left == right,
        _ => left == right,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
