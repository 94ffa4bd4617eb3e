//! One FHIR R4 `QuestionnaireResponse` per line, as FHIR Bulk Data writes
//! resources (`application/fhir+ndjson`).
//!
//! The resource carries the submission id as `id`, the submission's version as
//! `meta.versionId` (its correction time as `meta.lastUpdated`), the form's canonical URL
//! and version as `questionnaire` (or `Questionnaire/FORM` when the form has
//! no URL), the patient as `subject.identifier.value`, the completion time
//! with the device's offset as `authored`, and the answers as `item` with the
//! `value[x]` of each item type. Checking those items against the form gives
//! back the stored normalized answers.

use epro_store::ExportRow;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::layout::Layout;
use crate::ndjson::format_utc;

/// Returns the `QuestionnaireResponse` of one row.
pub(crate) fn record(layout: &Layout, row: &ExportRow) -> Value {
    let published = layout.form(&row.form_version);
    let answers: Value = serde_json::from_str(&row.normalized_answers).unwrap_or(Value::Null);
    let questionnaire = match &published.form.url {
        Some(url) => format!("{url}|{}", row.form_version),
        None => format!("Questionnaire/{}", layout.form_id),
    };
    // A version no longer published is written with the current version's
    // items, so answers to items it lacks are left out of `item`. The NDJSON
    // format keeps them.
    let items = epro_forms::fhir_response_items(&published.form, &answers);
    json!({
        "resourceType": "QuestionnaireResponse",
        "id": row.submission_id,
        "meta": {
            "versionId": row.version.to_string(),
            "lastUpdated": format_utc(row.corrected_at.unwrap_or(row.received_at)),
        },
        "questionnaire": questionnaire,
        // FHIR's status for a response changed after completion.
        "status": if row.version > 1 { "amended" } else { "completed" },
        "subject": { "identifier": { "value": row.patient_id } },
        "authored": row.completed_at.format(&Rfc3339).unwrap_or_default(),
        "item": items,
    })
}
