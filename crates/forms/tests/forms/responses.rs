//! The real QuestionnaireResponse fixtures checked against their
//! Questionnaires.

use std::collections::BTreeSet;

use epro_forms::{Problem, check_fhir_items};
use serde_json::{Value, json};

use crate::common::{codes, real_fixture, real_form};

fn response_items(name: &str) -> Value {
    let response: Value = serde_json::from_str(&real_fixture(name)).expect("fixture is valid JSON");
    assert_eq!(response["resourceType"], json!("QuestionnaireResponse"));
    response.get("item").cloned().unwrap_or(Value::Null)
}

#[test]
fn sdc_phq9_response_passes() {
    let form = real_form("hl7-sdc__Questionnaire-questionnaire-sdc-profile-example-PHQ9.json");
    let items = response_items("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");

    let checked = check_fhir_items(&form, &items, "/item");

    // The answers sum to 10 but the response sends a total of 13, which
    // raises a data query; everything else is valid.
    assert_eq!(codes(&checked), [("score_mismatch", "/item/H1~1T1/H1~1TS".to_owned())], "{:#?}", checked.findings);
    let group = &checked.normalized["H1/T1"];
    // The response's codings have no system; the normalized coding takes it
    // from the form's contained ValueSet.
    let first = json!({
        "system": "http://hl7.org/fhir/uv/sdc/CodeSystem/CSPHQ9",
        "code": "Not-at-all",
        "display": "Not at all"
    });
    assert_eq!(group["H1/T1/Q1"], first);
    assert_eq!(group["H1/T1/Q5"]["code"], json!("More than half the days"));
    // The client's total is stored as sent; the computed one is a score.
    assert_eq!(group["H1/TS"], json!({ "value": 13, "unit": "{score}" }));
    let answered = group.as_object().expect("group is an object").len();
    assert_eq!(answered, 10);
}

#[test]
fn hidden_item_response_passes() {
    let form = real_form("lforms__hidden-item-questionnaire.R4.json");
    let items = response_items("lforms__hidden-item-questionnaire-response.R4.json");

    let checked = check_fhir_items(&form, &items, "/item");

    assert!(checked.findings.is_empty(), "findings: {:#?}", checked.findings);
    let expected = json!({
        "CE-HIDDEN": 2,
        "CE-VISIBLE": 2,
        "ITEM-VISIBLE": 2,
        "GROUP-VISIBLE": { "GROUP-VISIBLE/CE-VISIBLE": 2, "GROUP-VISIBLE/CE-HIDDEN": 2 },
        "GROUP-HIDDEN": { "GROUP-HIDDEN/CE-HIDDEN": 2 }
    });
    assert_eq!(checked.normalized, expected);
}

#[test]
fn exceeded_max_occurs_response_fails() {
    let form = real_form("lforms__q-with-minOccurs-maxOccurs.json");
    let items = response_items("lforms__qr-with-repeating-group-exceed-maxOccurs.json");

    let checked = check_fhir_items(&form, &items, "/item");

    let too_many: Vec<_> =
        checked.findings.iter().filter(|finding| finding.problem.code() == "too_many_repeats").collect();
    assert_eq!(too_many.len(), 1, "findings: {:#?}", checked.findings);
    assert_eq!(too_many[0].link_id, "1");
    assert_eq!(too_many[0].pointer, "/item/3");
    assert_eq!(too_many[0].problem, Problem::TooManyRepeats { max: 3, count: 4 });

    let required: BTreeSet<&str> = checked
        .findings
        .iter()
        .filter(|finding| finding.problem == Problem::Required)
        .map(|finding| finding.link_id.as_str())
        .collect();
    assert_eq!(required, BTreeSet::from(["1.1", "1.3"]));
    // Each of the four occurrences misses both required items.
    let required_pointers: Vec<(&str, String)> =
        codes(&checked).into_iter().filter(|(code, _)| *code == "required").collect();
    assert_eq!(required_pointers.len(), 8);
    assert!(required_pointers.contains(&("required", "/item/3/item".to_owned())));
}

#[test]
fn exceeded_max_occurs_every_code_known() {
    let form = real_form("lforms__q-with-minOccurs-maxOccurs.json");
    let items = response_items("lforms__qr-with-repeating-group-exceed-maxOccurs.json");
    let checked = check_fhir_items(&form, &items, "/item");
    let found: BTreeSet<&str> = checked.findings.iter().map(|finding| finding.problem.code()).collect();
    assert_eq!(found, BTreeSet::from(["required", "too_many_repeats"]));
}

/// Writing normalized answers back as response items and checking those
/// again gives the same normalized answers, for every item type the native
/// example form has, a repeating group included.
#[test]
fn response_items_round_trip() {
    let cases = [
        (
            crate::common::form(&crate::common::local_fixture("symptom-diary.toml")),
            json!({
                "pain": 4,
                "mood": "poor",
                "temperature": 37.5,
                "weight": { "value": 71.5, "unit": "kg" },
                "symptoms": ["headache", "耳鸣 😵"],
                "slept_well": false,
                "bedtime": "22:30:00",
                "onset": "2026-11",
                "recorded_at": "2026-12-04T20:15:00+08:00",
                "country": { "system": "urn:iso:std:iso:3166", "code": "CN" },
                "notes": "=1+1",
                "meds": [
                    { "meds.name": "布洛芬", "meds.dose": { "value": 200, "unit": "mg" } },
                    { "meds.name": "paracetamol", "meds.dose": { "value": 500, "unit": "mg" } },
                ],
            }),
        ),
        (
            real_form("hl7-sdc__Questionnaire-questionnaire-sdc-profile-example-PHQ9.json"),
            json!({ "H1/T1": { "H1/T1/Q1": { "code": "Not-at-all" }, "H1/T1/Q2": { "code": "Several-days" } } }),
        ),
    ];
    for (form, answers) in cases {
        let first = epro_forms::check_native(&form, &answers, "");
        assert!(first.findings.is_empty(), "{answers}: {:#?}", first.findings);

        let items = epro_forms::fhir_response_items(&form, &first.normalized);
        let again = check_fhir_items(&form, &items, "/item");

        assert!(again.findings.is_empty(), "{items}: {:#?}", again.findings);
        assert_eq!(again.normalized, first.normalized, "items: {items}");
    }
}

#[test]
fn response_items_skip_unknown_link_ids() {
    let form = real_form("lforms__hidden-item-questionnaire.R4.json");

    let items = epro_forms::fhir_response_items(&form, &json!({ "CE-VISIBLE": 2, "no-such-item": 1 }));

    assert_eq!(items, json!([{ "linkId": "CE-VISIBLE", "answer": [{ "valueDecimal": 2 }] }]));
}
