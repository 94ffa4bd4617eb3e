//! Shapes in the OpenAPI document that no Rust type serializes or
//! deserializes, and the request examples.
//!
//! The envelope parsers in `envelope` read each field by hand, so that one
//! reply can name every problem. The request types here only describe the
//! shapes they take. A unit test compares each schema's properties with the
//! fields its parser accepts. [`Score`] describes the scores that
//! `intake::scores_json` writes for storage, and [`AuditPage`] the reply
//! that `routes::audit` streams piece by piece.

// The parsers never build these types; only their schemas are used.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::errors::EXAMPLE_SUBMISSION_ID;

/// One answer set in the native envelope (`application/json`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NativeSubmission {
    /// A UUID the app generates once per filled-in form and sends again on
    /// every retry: the same id with the same content returns the original
    /// receipt, with other content 409.
    #[schema(format = Uuid)]
    submission_id: String,
    /// The patient's pseudonym.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    patient_id: String,
    /// The form version the app shows; the current version when absent.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    form_version: Option<String>,
    /// When the patient finished, RFC 3339 with the device's UTC offset
    /// (`+08:00`, `Z`); at most `http.clock_skew_seconds` in the future.
    #[schema(format = DateTime)]
    completed_at: String,
    /// The answers, keyed by item `linkId`. A choice answer is the option
    /// code or a Coding `{system, code}`; a repeating item is an array; a
    /// group is an object (an array of objects when it repeats); a
    /// quantity is `{value, unit}`.
    #[schema(value_type = Object)]
    answers: Value,
}

/// The parts of a FHIR R4 `QuestionnaireResponse` epro reads
/// (`application/fhir+json`). Other elements are allowed and stored with
/// the resource.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FhirQuestionnaireResponse {
    /// Must be `QuestionnaireResponse`.
    #[schema(pattern = "^QuestionnaireResponse$")]
    resource_type: String,
    /// The submission id when `identifier` has no `value`: a UUID or a FHIR
    /// id.
    id: Option<String>,
    /// Its `value` (a `urn:uuid:` prefix is dropped) is the submission id.
    /// An array is accepted too, and its first entry counts.
    #[schema(value_type = Option<Object>)]
    identifier: Option<Value>,
    /// The questionnaire's canonical URL; a `|version` suffix selects the
    /// form version.
    questionnaire: Option<String>,
    /// `completed` or `amended`.
    #[schema(pattern = "^(completed|amended)$")]
    status: String,
    /// The patient: the last segment of `reference`, or
    /// `identifier.value`. Without it, the `patientId` query parameter.
    #[schema(value_type = Option<Object>)]
    subject: Option<Value>,
    /// When the patient finished, with a UTC offset.
    #[schema(format = DateTime)]
    authored: String,
    /// The answers, as FHIR `item` entries with `linkId` and `answer`.
    #[schema(value_type = Option<Vec<Object>>)]
    item: Option<Value>,
}

/// The request of the seed-compatible endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SeedSubmission {
    /// The patient's pseudonym.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    patient_id: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    trial_id: String,
    /// A JSON string holding the answers object, which may carry
    /// `completedAt`.
    form_content: String,
    /// Required when the trial has several forms.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    form_id: Option<String>,
    /// The current version when absent.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    form_version: Option<String>,
    /// A UUID, as in the native envelope; the `Idempotency-Key` header may
    /// carry it instead. Without either, a request with `completedAt` gets
    /// an id derived from its content, and one without is new every time.
    #[schema(format = Uuid)]
    submission_id: Option<String>,
    /// When the patient finished, with a UTC offset; the receipt time when
    /// absent here and in `formContent`.
    #[schema(format = DateTime)]
    completed_at: Option<String>,
}

/// A data query's new status, with the reason.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryStatusChange {
    /// `open`, `answered` or `closed`.
    #[schema(pattern = "^(open|answered|closed)$")]
    status: String,
    /// Why the status changes; kept with the change. Must not be blank.
    #[schema(min_length = 1)]
    comment: String,
}

/// A score computed on the server at intake.
#[derive(Deserialize, ToSchema)]
pub(crate) struct Score {
    /// The computed item's `linkId`, or the score id of the trial file.
    name: String,
    /// The value as an exact decimal string, or `null` when these answers
    /// do not give one.
    #[schema(required = true)]
    value: Option<String>,
    /// The value the app sent for the computed item, kept as sent; `null`
    /// when it sent none.
    #[schema(required = true, schema_with = super::any_json_value)]
    sent: Option<Value>,
}

/// A page of the audit trail.
#[derive(ToSchema)]
pub(crate) struct AuditPage {
    #[schema(value_type = Vec<crate::routes::audit::AuditEntryBody>)]
    entries: Vec<Value>,
    /// Pass as `after` to read the next page; `null` when the trail has no
    /// more rows.
    #[schema(required = true)]
    next: Option<i64>,
}

/// The answers of the README's PHQ-9 example, keyed by LOINC `linkId`.
fn phq9_answers() -> Value {
    json!({
        "/44250-9": "LA6568-5", "/44255-8": "LA6569-3", "/44259-0": "LA6568-5",
        "/44254-1": "LA6570-1", "/44251-7": "LA6568-5", "/44258-2": "LA6568-5",
        "/44252-5": "LA6569-3", "/44253-3": "LA6568-5", "/44260-8": "LA6568-5"
    })
}

/// A PHQ-9 answer set for the demo trial in the native envelope.
pub(crate) fn native_example() -> Value {
    json!({
        "submissionId": EXAMPLE_SUBMISSION_ID,
        "patientId": "P-0001",
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": phq9_answers(),
    })
}

/// The same answers as a FHIR `QuestionnaireResponse`.
pub(crate) fn fhir_example() -> Value {
    let items: Vec<Value> = phq9_answers()
        .as_object()
        .into_iter()
        .flatten()
        .map(|(link_id, code)| {
            json!({"linkId": link_id, "answer": [{"valueCoding": {"system": "http://loinc.org", "code": code}}]})
        })
        .collect();
    json!({
        "resourceType": "QuestionnaireResponse",
        "identifier": {"value": "urn:uuid:5e0c8f1a-4d7b-4b8e-8f3a-2c6d1e9b7a40"},
        "status": "completed",
        "subject": {"reference": "Patient/P-0001"},
        "authored": "2026-12-04T20:15:00+08:00",
        "item": items,
    })
}

/// The same answers through the seed-compatible endpoint.
pub(crate) fn seed_example() -> Value {
    let mut answers = phq9_answers();
    answers["completedAt"] = json!("2026-12-04T20:15:00+08:00");
    json!({
        "patientId": "P-0001",
        "trialId": "demo",
        "formId": "phq9",
        "submissionId": "9a1d6c3b-7e2f-4a85-b0c4-1f3e5d7a9b26",
        "formContent": answers.to_string(),
    })
}

/// Closing a data query.
pub(crate) fn query_status_example() -> Value {
    json!({"status": "closed", "comment": "Confirmed with the patient by phone."})
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    use super::*;

    fn properties<T: PartialSchema>() -> Vec<String> {
        let RefOr::T(Schema::Object(object)) = T::schema() else { panic!("not an object schema") };
        let mut names: Vec<String> = object.properties.keys().cloned().collect();
        names.sort();
        names
    }

    fn sorted(fields: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = fields.iter().map(|name| (*name).to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn schemas_match_parser_fields() {
        assert_eq!(properties::<NativeSubmission>(), sorted(crate::envelope::NATIVE_FIELDS));
        assert_eq!(properties::<SeedSubmission>(), sorted(crate::envelope::SEED_FIELDS));
        assert_eq!(properties::<QueryStatusChange>(), sorted(crate::routes::queries::STATUS_CHANGE_FIELDS));
    }

    #[test]
    fn examples_fit_request_types() {
        serde_json::from_value::<NativeSubmission>(native_example()).unwrap();
        serde_json::from_value::<FhirQuestionnaireResponse>(fhir_example()).unwrap();
        serde_json::from_value::<SeedSubmission>(seed_example()).unwrap();
        serde_json::from_value::<QueryStatusChange>(query_status_example()).unwrap();
    }
}
