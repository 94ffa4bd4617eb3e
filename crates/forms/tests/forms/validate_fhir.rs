//! Validation of QuestionnaireResponse `item` arrays: value[x] kinds,
//! entry shapes, repeated group entries, pointers into the submitted array,
//! and normalized output equal to the native shape.

use epro_forms::{Expected, Hint, Problem, check_native};
use serde_json::{Value, json};

use crate::common::{check_fhir, form};

const FORM: &str = r#"{
  "resourceType": "Questionnaire",
  "item": [
    { "linkId": "age", "type": "integer", "required": true },
    { "linkId": "weight", "type": "decimal" },
    { "linkId": "mood", "type": "choice", "answerOption": [
        { "valueCoding": { "system": "urn:mood", "code": "good", "display": "Good" } },
        { "valueCoding": { "system": "urn:mood", "code": "poor", "display": "Poor" } } ] },
    { "linkId": "other", "type": "open-choice", "answerOption": [ { "valueString": "Apple" } ] },
    { "linkId": "seen", "type": "dateTime" },
    { "linkId": "intro", "type": "display", "text": "Hello" },
    { "linkId": "meds", "type": "group", "repeats": true, "item": [
        { "linkId": "meds.name", "type": "string", "required": true },
        { "linkId": "meds.dose", "type": "quantity" } ] }
  ]
}"#;

fn answer(link_id: &str, kind: &str, value: Value) -> Value {
    json!({ "linkId": link_id, "answer": [{ kind: value }] })
}

fn hint(checked: &epro_forms::Checked, position: usize) -> Option<Hint> {
    match &checked.findings[position].problem {
        Problem::WrongType { hint, .. } => hint.clone(),
        other => panic!("expected wrong_type, got {other:?}"),
    }
}

#[test]
fn fhir_valid_items_normalized() {
    let items = json!([
        answer("age", "valueInteger", json!(42)),
        answer("weight", "valueDecimal", json!(72.5)),
        answer("mood", "valueCoding", json!({ "code": "good" })),
        answer("other", "valueString", json!("Kiwi")),
        answer("seen", "valueDateTime", json!("2024-01-05T10:00:00+08:00")),
        { "linkId": "meds", "item": [
            answer("meds.name", "valueString", json!("Ibuprofen")),
            answer("meds.dose", "valueQuantity", json!({ "value": 200, "unit": "mg" })) ] },
        { "linkId": "meds", "item": [ answer("meds.name", "valueString", json!("Paracetamol")) ] }
    ]);
    let checked = check_fhir(FORM, items, &[]);
    let expected = json!({
        "age": 42,
        "weight": 72.5,
        "mood": { "system": "urn:mood", "code": "good", "display": "Good" },
        "other": "Kiwi",
        "seen": "2024-01-05T10:00:00+08:00",
        "meds": [
            { "meds.name": "Ibuprofen", "meds.dose": { "value": 200, "unit": "mg" } },
            { "meds.name": "Paracetamol" }
        ]
    });
    assert_eq!(checked.normalized, expected);
}

#[test]
fn fhir_and_native_normalize_alike() {
    let items = json!([
        answer("age", "valueInteger", json!(42)),
        answer("mood", "valueCoding", json!({ "system": "urn:mood", "code": "poor" })),
        { "linkId": "meds", "item": [ answer("meds.name", "valueString", json!("A")) ] }
    ]);
    let fhir = check_fhir(FORM, items, &[]);
    let native_answers = json!({ "age": 42, "mood": "poor", "meds": { "meds.name": "A" } });
    let native = check_native(&form(FORM), &native_answers, "/answers");
    assert!(native.findings.is_empty(), "native findings: {:?}", native.findings);
    assert_eq!(fhir.normalized, native.normalized);
}

#[test]
fn fhir_value_kind_mismatch_hints_value_type() {
    let checked = check_fhir(
        FORM,
        json!([answer("age", "valueString", json!("42"))]),
        &[("wrong_type", "/item/0/answer/0/valueString")],
    );
    let expected = Hint::FhirValueType { expected: "valueInteger", found: "valueString".to_owned() };
    assert_eq!(hint(&checked, 0), Some(expected));
}

#[test]
fn fhir_choice_requires_value_coding() {
    let checked = check_fhir(
        FORM,
        json!([answer("age", "valueInteger", json!(1)), answer("mood", "valueString", json!("good"))]),
        &[("wrong_type", "/item/1/answer/0/valueString")],
    );
    let expected = Hint::FhirValueType { expected: "valueCoding", found: "valueString".to_owned() };
    assert_eq!(hint(&checked, 0), Some(expected));
}

#[test]
fn fhir_integer_on_decimal_item_accepted() {
    let items = json!([answer("age", "valueInteger", json!(1)), answer("weight", "valueInteger", json!(70))]);
    let checked = check_fhir(FORM, items, &[]);
    assert_eq!(checked.normalized["weight"], json!(70));
}

#[test]
fn fhir_value_integer_content_checked() {
    let checked = check_fhir(
        FORM,
        json!([answer("age", "valueInteger", json!("42"))]),
        &[("wrong_type", "/item/0/answer/0/valueInteger")],
    );
    assert_eq!(hint(&checked, 0), Some(Hint::QuotedNumber));
}

#[test]
fn fhir_missing_required_points_at_array() {
    let checked = check_fhir(FORM, json!([]), &[("required", "/item")]);
    assert_eq!(checked.findings[0].link_id, "age");
    check_fhir(FORM, Value::Null, &[("required", "/item")]);
}

#[test]
fn fhir_required_in_group_points_at_group_items() {
    let items = json!([
        answer("age", "valueInteger", json!(1)),
        { "linkId": "meds", "item": [ answer("meds.dose", "valueQuantity", json!({ "value": 1 })) ] }
    ]);
    let checked = check_fhir(FORM, items, &[("required", "/item/1/item")]);
    assert_eq!(checked.findings[0].link_id, "meds.name");
}

#[test]
fn fhir_unknown_link_id_reported() {
    let items = json!([
        answer("age", "valueInteger", json!(1)),
        answer("nope", "valueString", json!("x")),
        { "linkId": "meds", "item": [ answer("meds.name", "valueString", json!("a")), { "linkId": "deep" } ] },
        { "answer": [] },
        "not an object"
    ]);
    let checked = check_fhir(
        FORM,
        items,
        &[
            ("unknown_item", "/item/1"),
            ("unknown_item", "/item/2/item/1"),
            ("unknown_item", "/item/3"),
            ("unknown_item", "/item/4"),
        ],
    );
    assert_eq!(checked.findings[0].link_id, "nope");
    assert_eq!(checked.findings[1].link_id, "deep");
    assert_eq!(checked.findings[2].link_id, "");
}

#[test]
fn fhir_answer_not_array_wrong_type() {
    let items = json!([{ "linkId": "age", "answer": { "valueInteger": 1 } }]);
    let checked = check_fhir(FORM, items, &[("wrong_type", "/item/0/answer"), ("required", "/item/0")]);
    let expected = Problem::WrongType { expected: Expected::Answers, hint: None };
    assert_eq!(checked.findings[0].problem, expected);
}

#[test]
fn fhir_answer_without_value_wrong_type() {
    let items = json!([{ "linkId": "age", "answer": [{ "item": [] }] }]);
    check_fhir(FORM, items, &[("wrong_type", "/item/0/answer/0"), ("required", "/item/0")]);
}

#[test]
fn fhir_items_not_array_wrong_type() {
    let checked = check_fhir(FORM, json!({ "linkId": "age" }), &[("wrong_type", "/item"), ("required", "/item")]);
    assert_eq!(checked.findings[0].link_id, "");
}

#[test]
fn fhir_too_many_answers_for_single_item() {
    let items = json!([{ "linkId": "age", "answer": [{ "valueInteger": 1 }, { "valueInteger": 2 }] }]);
    let checked = check_fhir(FORM, items, &[("too_many_repeats", "/item/0/answer/1/valueInteger")]);
    assert_eq!(checked.findings[0].problem, Problem::TooManyRepeats { max: 1, count: 2 });
}

#[test]
fn fhir_display_answer_not_answerable() {
    let items = json!([answer("age", "valueInteger", json!(1)), answer("intro", "valueString", json!("hi"))]);
    check_fhir(FORM, items, &[("not_answerable", "/item/1/answer/0/valueString")]);
}

#[test]
fn fhir_group_with_answer_not_answerable() {
    let items = json!([
        answer("age", "valueInteger", json!(1)),
        { "linkId": "meds", "answer": [{ "valueString": "x" }], "item": [ answer("meds.name", "valueString", json!("a")) ] }
    ]);
    check_fhir(FORM, items, &[("not_answerable", "/item/1/answer")]);
}

#[test]
fn fhir_items_under_answer_unknown() {
    let items = json!([
        { "linkId": "age", "answer": [{ "valueInteger": 1, "item": [{ "linkId": "child" }] }] }
    ]);
    check_fhir(FORM, items, &[("unknown_item", "/item/0/answer/0/item/0")]);
}

#[test]
fn fhir_date_time_missing_offset_hint() {
    let items =
        json!([answer("age", "valueInteger", json!(1)), answer("seen", "valueDateTime", json!("2024-01-05T10:00:00"))]);
    let checked = check_fhir(FORM, items, &[("wrong_type", "/item/1/answer/0/valueDateTime")]);
    assert_eq!(hint(&checked, 0), Some(Hint::MissingOffset));
}

#[test]
fn fhir_value_date_on_date_time_item_accepted() {
    let items = json!([answer("age", "valueInteger", json!(1)), answer("seen", "valueDate", json!("2024-01-05"))]);
    check_fhir(FORM, items, &[]);
}

#[test]
fn fhir_open_choice_string_option_and_free_text() {
    let items = json!([
        answer("age", "valueInteger", json!(1)),
        { "linkId": "other", "answer": [{ "valueString": "Apple" }] }
    ]);
    let checked = check_fhir(FORM, items, &[]);
    assert_eq!(checked.normalized["other"], json!("Apple"));
}
