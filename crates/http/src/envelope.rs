//! The request envelopes: everything around the answers. This module parses
//! each accepted shape once into an [`Intake`] whose fields are valid. The
//! shapes are the native JSON envelope, a FHIR `QuestionnaireResponse` and
//! the seed-compatible `formContent` envelope.
//!
//! Every envelope problem is collected, so one 400 reply lists them all.
//! The answers themselves are validated later, against the form.

use std::collections::BTreeMap;

use epro_store::SourceFormat;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body::{check_keys_and_numbers, invalid_json};

/// Namespace of the UUID v5 ids derived for seed requests that carry no id.
const SEED_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5c1d_0e8a_3b7f_4f4e_9d2a_6e0b_8c71_a4f3);
use crate::error::{ApiError, EnvelopeProblem, FieldError};

/// The fields of the native envelope; any other is `unknown_field`.
pub(crate) const NATIVE_FIELDS: &[&str] = &["submissionId", "patientId", "formVersion", "completedAt", "answers"];

/// The fields of the seed-compatible envelope; any other is `unknown_field`.
pub(crate) const SEED_FIELDS: &[&str] =
    &["patientId", "trialId", "formContent", "formId", "formVersion", "submissionId", "completedAt"];

/// A submission whose envelope parsed and whose ids are valid.
#[derive(Debug)]
pub struct Intake {
    pub submission_id: String,
    pub patient_id: String,
    /// The form version the app filled in; `None` means the current one.
    pub form_version: Option<String>,
    /// When the patient finished, with the device's UTC offset.
    pub completed_at: OffsetDateTime,
    /// Whether the client sent no completion time, so `completed_at` is the
    /// server's receipt time. The content hash then leaves the time out, so
    /// a retry of the same request matches the stored submission.
    pub completed_at_stamped: bool,
    pub answers: Answers,
    /// The answers exactly as received, as JSON text, kept byte for byte:
    /// the `answers` object, the `formContent` string's content, or the
    /// whole `QuestionnaireResponse`.
    pub raw: String,
    pub source: SourceFormat,
    /// The `questionnaire` a FHIR response names, without its `|version`.
    pub questionnaire: Option<String>,
}

/// The answers of an intake, in the format the form library reads.
#[derive(Debug)]
pub enum Answers {
    /// An object keyed by item `linkId`.
    Native(Value),
    /// The `item` array of a `QuestionnaireResponse` (`Null` when absent).
    Fhir(Value),
}

/// The seed envelope's extra routing fields.
#[derive(Debug)]
pub struct SeedRouting {
    pub trial_id: String,
    pub form_id: Option<String>,
}

/// Parses the native envelope: `submissionId`, `patientId`, `formVersion`,
/// `completedAt` and `answers`.
///
/// # Errors
///
/// 400 errors for invalid JSON or any envelope field problem, all listed.
pub fn parse_native(body: &[u8]) -> Result<Intake, ApiError> {
    let fields = parse_object(body)?;
    if fields.contains_key("resourceType") {
        return Err(ApiError::InvalidEnvelope(vec![FieldError::envelope(
            "resourceType",
            EnvelopeProblem::FhirResourceAsJson,
        )]));
    }
    let mut errors = Vec::new();
    reject_unknown(&fields, NATIVE_FIELDS, &mut errors);

    let submission_id = required_string(&fields, "submissionId", &mut errors)
        .and_then(|id| check_submission_id("submissionId", id, true, &mut errors));
    let patient_id =
        required_string(&fields, "patientId", &mut errors).and_then(|id| check_id("patientId", id, &mut errors));
    let form_version = optional_string(&fields, "formVersion", &mut errors)
        .and_then(|version| check_id("formVersion", version, &mut errors));
    let completed_at = required_string(&fields, "completedAt", &mut errors)
        .and_then(|text| check_completed_at("completedAt", &text, &mut errors));
    let answers = match fields.get("answers") {
        None => {
            errors.push(FieldError::envelope("answers", EnvelopeProblem::Missing));
            None
        }
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(map)) => Some((raw.get().to_owned(), Value::Object(map))),
            Ok(Value::Null) => {
                errors.push(FieldError::envelope("answers", EnvelopeProblem::Missing));
                None
            }
            Ok(_) => {
                errors.push(FieldError::envelope("answers", EnvelopeProblem::WrongType { expected: "object" }));
                None
            }
            Err(error) => {
                return Err(ApiError::Unexpected(anyhow::anyhow!(
                    "failed to parse answers that were valid JSON: {error}"
                )));
            }
        },
    };

    match (submission_id, patient_id, completed_at, answers) {
        (Some(submission_id), Some(patient_id), Some(completed_at), Some((raw, answers))) if errors.is_empty() => {
            Ok(Intake {
                submission_id,
                patient_id,
                form_version,
                completed_at,
                completed_at_stamped: false,
                answers: Answers::Native(answers),
                questionnaire: None,
                raw,
                source: SourceFormat::Native,
            })
        }
        _ => Err(ApiError::InvalidEnvelope(errors)),
    }
}

/// Parses a FHIR R4 `QuestionnaireResponse`.
///
/// The submission id is `identifier.value` (without a `urn:uuid:` prefix)
/// or else `id`, and the completion time is `authored`. The patient is the
/// last segment of `subject.reference`, or `subject.identifier.value`, or
/// else the `patientId` query parameter. A `|version` suffix on the
/// `questionnaire` canonical selects the form version.
///
/// # Errors
///
/// 400 errors for invalid JSON or any envelope field problem, all listed.
pub fn parse_fhir(body: &[u8], patient_query: Option<&str>) -> Result<Intake, ApiError> {
    let resource: Value = serde_json::from_slice(body).map_err(|error| classify(&error))?;
    let Value::Object(fields) = &resource else {
        return Err(ApiError::InvalidEnvelope(vec![body_not_object()]));
    };
    let mut errors = Vec::new();

    if fields.get("resourceType").and_then(Value::as_str) != Some("QuestionnaireResponse") {
        errors.push(FieldError::envelope("resourceType", EnvelopeProblem::NotQuestionnaireResponse));
    }

    let identifier = fields.get("identifier").and_then(|identifier| match identifier {
        Value::Array(list) => list.first(),
        other => Some(other),
    });
    let submission_id = match identifier.and_then(|i| i.get("value")).and_then(Value::as_str) {
        Some(value) => {
            let value = value.strip_prefix("urn:uuid:").unwrap_or(value);
            check_submission_id("identifier.value", value.to_owned(), false, &mut errors)
        }
        None => match fields.get("id").and_then(Value::as_str) {
            Some(id) => check_submission_id("id", id.to_owned(), false, &mut errors),
            None => {
                errors.push(FieldError::envelope("id", EnvelopeProblem::Missing));
                None
            }
        },
    };

    match fields.get("status").and_then(Value::as_str) {
        Some("completed" | "amended") => {}
        Some(other) => {
            errors.push(FieldError::envelope("status", EnvelopeProblem::UnsupportedStatus { status: other.to_owned() }))
        }
        None => errors.push(FieldError::envelope("status", EnvelopeProblem::Missing)),
    }

    let completed_at = match fields.get("authored").and_then(Value::as_str) {
        Some(text) => check_completed_at("authored", text, &mut errors),
        None => {
            errors.push(FieldError::envelope("authored", EnvelopeProblem::Missing));
            None
        }
    };

    let subject = fields.get("subject");
    let from_reference = subject
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str)
        .and_then(|reference| reference.rsplit('/').next());
    let from_identifier =
        subject.and_then(|s| s.get("identifier")).and_then(|i| i.get("value")).and_then(Value::as_str);
    let from_subject = from_reference.or(from_identifier);
    if let (Some(subject), Some(query)) = (from_subject, patient_query)
        && subject != query
    {
        errors.push(FieldError::envelope("subject", EnvelopeProblem::PatientMismatch));
    }
    let patient_id = match from_subject.or(patient_query) {
        Some(id) => check_id("subject", id.to_owned(), &mut errors),
        None => {
            errors.push(FieldError::envelope("subject", EnvelopeProblem::Missing));
            None
        }
    };

    let canonical = fields.get("questionnaire").and_then(Value::as_str);
    let form_version = canonical.and_then(|canonical| canonical.split_once('|')).map(|(_, version)| version.to_owned());
    let questionnaire = canonical.map(|canonical| canonical.split('|').next().unwrap_or(canonical).to_owned());

    let items = match fields.get("item") {
        None | Some(Value::Null) => Value::Null,
        Some(items @ Value::Array(_)) => items.clone(),
        Some(_) => {
            errors.push(FieldError::envelope("item", EnvelopeProblem::WrongType { expected: "array" }));
            Value::Null
        }
    };

    match (submission_id, patient_id, completed_at) {
        (Some(submission_id), Some(patient_id), Some(completed_at)) if errors.is_empty() => Ok(Intake {
            submission_id,
            patient_id,
            form_version,
            completed_at,
            completed_at_stamped: false,
            answers: Answers::Fhir(items),
            questionnaire,
            raw: String::from_utf8_lossy(body).into_owned(),
            source: SourceFormat::Fhir,
        }),
        _ => Err(ApiError::InvalidEnvelope(errors)),
    }
}

/// Parses the seed-compatible envelope `{patientId, trialId, formContent}`
/// with the optional `formId`, `formVersion`, `submissionId` and
/// `completedAt`.
///
/// `formContent` is a JSON string holding the answers object. The
/// submission id may come from the `Idempotency-Key` header instead; with
/// neither, a fresh UUID is generated, so such a request is not
/// idempotent. `completedAt` may sit in the envelope or inside the answers
/// object (the old clients put it there); without it the receipt time is
/// used.
///
/// # Errors
///
/// 400 errors for invalid JSON or any envelope field problem, all listed.
pub fn parse_seed(
    body: &[u8],
    idempotency_key: Option<&str>,
    received_at: OffsetDateTime,
) -> Result<(SeedRouting, Intake), ApiError> {
    let fields = parse_object(body)?;
    let mut errors = Vec::new();
    reject_unknown(&fields, SEED_FIELDS, &mut errors);

    let patient_id =
        required_string(&fields, "patientId", &mut errors).and_then(|id| check_id("patientId", id, &mut errors));
    let trial_id = required_string(&fields, "trialId", &mut errors).and_then(|id| check_id("trialId", id, &mut errors));
    let form_id = optional_string(&fields, "formId", &mut errors).and_then(|id| check_id("formId", id, &mut errors));
    let form_version = optional_string(&fields, "formVersion", &mut errors)
        .and_then(|version| check_id("formVersion", version, &mut errors));
    let sent_id = match optional_string(&fields, "submissionId", &mut errors) {
        Some(id) => check_submission_id("submissionId", id, true, &mut errors),
        None => match idempotency_key {
            Some(key) => {
                let checked = check_submission_id("Idempotency-Key", key.to_owned(), true, &mut errors);
                if checked.is_none()
                    && let Some(last) = errors.last_mut()
                {
                    *last =
                        FieldError::header("Idempotency-Key", EnvelopeProblem::InvalidSubmissionId { uuid_only: true });
                }
                checked
            }
            None => None,
        },
    };
    let has_sent_id = sent_id.is_some() || fields.contains_key("submissionId") || idempotency_key.is_some();

    let mut completed_at = optional_string(&fields, "completedAt", &mut errors)
        .map(|text| check_completed_at("completedAt", &text, &mut errors));

    let content = required_string(&fields, "formContent", &mut errors).and_then(|text| {
        if let Err(ApiError::InvalidEnvelope(found)) = check_keys_and_numbers(text.as_bytes(), "/formContent") {
            errors.extend(found);
            return None;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(mut answers)) => {
                let inner = answers.remove("completedAt");
                if let (Some(Value::String(inner)), None) = (inner, &completed_at) {
                    completed_at = Some(check_completed_at("formContent.completedAt", &inner, &mut errors));
                }
                Some((text, Value::Object(answers)))
            }
            _ => {
                errors.push(FieldError::envelope("formContent", EnvelopeProblem::FormContentNotObject));
                None
            }
        }
    });
    let completion_was_sent = completed_at.is_some();
    let completed_at = completed_at.unwrap_or(Some(received_at));

    // Old clients send no id. When they send the completion time, the
    // content identifies the submission, so a retry maps to the same id;
    // without it, a retry cannot be distinguished from a new diary entry.
    let submission_id = match (sent_id, &content, &trial_id, &patient_id) {
        (Some(id), ..) => Some(id),
        (None, Some((text, _)), Some(trial), Some(patient)) if !has_sent_id && completion_was_sent => {
            let form = form_id.as_deref().unwrap_or("");
            let completed = completed_at.and_then(|moment| moment.format(&Rfc3339).ok()).unwrap_or_default();
            let name = format!("seed\u{0}{trial}\u{0}{form}\u{0}{patient}\u{0}{completed}\u{0}{text}");
            Some(uuid::Uuid::new_v5(&SEED_NAMESPACE, name.as_bytes()).to_string())
        }
        (None, ..) if !has_sent_id => Some(uuid::Uuid::new_v4().to_string()),
        (None, ..) => None,
    };

    match (patient_id, trial_id, submission_id, completed_at, content) {
        (Some(patient_id), Some(trial_id), Some(submission_id), Some(completed_at), Some((raw, answers)))
            if errors.is_empty() =>
        {
            let routing = SeedRouting { trial_id, form_id };
            let intake = Intake {
                submission_id,
                patient_id,
                form_version,
                completed_at,
                completed_at_stamped: !completion_was_sent,
                answers: Answers::Native(answers),
                questionnaire: None,
                raw,
                source: SourceFormat::Seed,
            };
            Ok((routing, intake))
        }
        _ => Err(ApiError::InvalidEnvelope(errors)),
    }
}

/// Parses a date-time that must be RFC 3339 with an offset, and names the
/// exact mistake when it is not.
///
/// # Errors
///
/// [`EnvelopeProblem::MissingOffset`] for a local time,
/// [`EnvelopeProblem::OffsetWithoutColon`] for `+0530` or `+05`, and
/// [`EnvelopeProblem::InvalidDateTime`] for anything else.
pub fn parse_offset_date_time(text: &str) -> Result<OffsetDateTime, EnvelopeProblem> {
    // RFC 3339 section 4.3: -00:00 means the local offset is unknown.
    if text.ends_with("-00:00") {
        return Err(EnvelopeProblem::MissingOffset);
    }
    if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(moment);
    }

    // Diagnose the common mistakes in the part after the date, but only for
    // text shaped like `YYYY-MM-DDThh:mm...`.
    let bytes = text.as_bytes();
    let date_shape = b"dddd-dd-dd";
    let is_date_time_shaped = bytes.len() > 11
        && bytes
            .iter()
            .zip(date_shape)
            .all(|(byte, shape)| if *shape == b'd' { byte.is_ascii_digit() } else { byte == shape })
        && matches!(bytes[10], b'T' | b't' | b' ');
    if !is_date_time_shaped {
        return Err(EnvelopeProblem::InvalidDateTime);
    }
    let time = &text[11..];
    let offset_start = time.find(['+', '-', 'Z', 'z']);
    match offset_start {
        None => Err(EnvelopeProblem::MissingOffset),
        Some(start) => {
            let offset = &time[start..];
            let digits = offset.get(1..).unwrap_or("");
            let is_colonless = (digits.len() == 2 || digits.len() == 4) && digits.bytes().all(|b| b.is_ascii_digit());
            if is_colonless { Err(EnvelopeProblem::OffsetWithoutColon) } else { Err(EnvelopeProblem::InvalidDateTime) }
        }
    }
}

fn parse_object(body: &[u8]) -> Result<BTreeMap<String, &RawValue>, ApiError> {
    serde_json::from_slice::<BTreeMap<String, &RawValue>>(body).map_err(|error| classify(&error))
}

/// Tells a body that is not JSON (syntax, 400 `invalid_json`) from JSON
/// that is not an object (400 with a field error on the body).
fn classify(error: &serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => ApiError::InvalidEnvelope(vec![body_not_object()]),
        _ => invalid_json(error),
    }
}

fn body_not_object() -> FieldError {
    FieldError {
        item: String::new(),
        path: String::new(),
        detail: crate::error::Detail::Envelope(EnvelopeProblem::WrongType { expected: "object" }),
    }
}

fn reject_unknown(fields: &BTreeMap<String, &RawValue>, known: &[&str], errors: &mut Vec<FieldError>) {
    for name in fields.keys().filter(|name| !known.contains(&name.as_str())) {
        errors.push(FieldError::envelope(name, EnvelopeProblem::UnknownField));
    }
}

fn optional_string(fields: &BTreeMap<String, &RawValue>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let raw = fields.get(name)?;
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(text)) => Some(text),
        Ok(Value::Null) => None,
        _ => {
            errors.push(FieldError::envelope(name, EnvelopeProblem::WrongType { expected: "string" }));
            None
        }
    }
}

fn required_string(fields: &BTreeMap<String, &RawValue>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = optional_string(fields, name, errors);
    let is_missing = value.is_none() && !errors.iter().any(|e| e.item == name);
    if is_missing {
        errors.push(FieldError::envelope(name, EnvelopeProblem::Missing));
    }
    value
}

/// Accepts a trial, form, version or patient id by the same rule as the trial
/// files: 1 to 64 ASCII letters, digits, `.`, `_` and `-`.
fn check_id(field: &str, id: String, errors: &mut Vec<FieldError>) -> Option<String> {
    if epro_forms::trial::is_valid_id(&id) {
        Some(id)
    } else {
        errors.push(FieldError::envelope(field, EnvelopeProblem::InvalidId));
        None
    }
}

/// Accepts a UUID (normalised to lower case) or, unless `uuid_only`, a FHIR
/// id: 1 to 64 ASCII letters, digits, `-` and `.`.
fn check_submission_id(field: &str, id: String, uuid_only: bool, errors: &mut Vec<FieldError>) -> Option<String> {
    if let Ok(uuid) = uuid::Uuid::parse_str(&id) {
        return Some(uuid.hyphenated().to_string());
    }
    let is_fhir_id =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    if !uuid_only && is_fhir_id {
        Some(id)
    } else {
        errors.push(FieldError::envelope(field, EnvelopeProblem::InvalidSubmissionId { uuid_only }));
        None
    }
}

fn check_completed_at(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    match parse_offset_date_time(text) {
        Ok(moment) => Some(moment),
        Err(problem) => {
            errors.push(FieldError::envelope(field, problem));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_date_time_accepts_rfc3339_offsets() {
        for text in ["2026-12-04T20:15:00+08:00", "2026-12-04T20:15:00Z", "2026-12-04T20:15:00.123+05:45"] {
            assert!(parse_offset_date_time(text).is_ok(), "{text}");
        }
        let nepal = parse_offset_date_time("2026-12-04T20:15:00+05:45").unwrap();
        assert_eq!(nepal.offset().whole_minutes(), 5 * 60 + 45);
    }

    #[test]
    fn offset_date_time_names_each_mistake() {
        let cases = [
            ("2026-12-04T20:15:00", "missing_offset"),
            ("2026-12-04T20:15:00.5", "missing_offset"),
            ("2026-12-04T20:15:00+05", "offset_without_colon"),
            ("2026-12-04T20:15:00+0530", "offset_without_colon"),
            ("2026-12-04", "invalid_datetime"),
            ("yesterday", "invalid_datetime"),
            ("2026-02-30T20:15:00+08:00", "invalid_datetime"),
        ];
        for (text, code) in cases {
            let problem = parse_offset_date_time(text).unwrap_err();
            assert_eq!(problem.code(), code, "{text}");
        }
    }
}
