//! The lforms skip-logic test form (`lforms__enableWhen-test.R4.json`),
//! answered through QuestionnaireResponse items. Each of its groups contains
//! one question and string items whose conditions test it in one way.

use std::collections::BTreeSet;

use epro_forms::{Form, check_fhir_items};
use serde_json::{Value, json};

use crate::common::{KNOWN_CODES, check, codes, local_fixture, real_form};

const FIXTURE: &str = "lforms__enableWhen-test.R4.json";

/// Answers the first question of `group` with `answers` (none when empty)
/// and every other item of the group with a string, and returns the items
/// reported as `answered_while_disabled`.
fn disabled_items(form: &Form, group: &str, answers: Value) -> BTreeSet<String> {
    let group_item = form.item(group).unwrap_or_else(|| panic!("{group} is in the fixture"));
    let (question, dependents) = group_item.children.split_first().expect("the group has items");
    let mut entries = vec![json!({ "linkId": question.link_id, "answer": answers })];
    for dependent in dependents {
        entries.push(json!({ "linkId": dependent.link_id, "answer": [{ "valueString": "x" }] }));
    }
    let items = json!([{ "linkId": group, "item": entries }]);

    let checked = check_fhir_items(form, &items, "/item");

    let mut disabled = BTreeSet::new();
    for finding in &checked.findings {
        assert_eq!(finding.problem.code(), "answered_while_disabled", "{group} {answers}: {:#?}", checked.findings);
        disabled.insert(finding.link_id.clone());
    }
    disabled
}

/// Asserts the disabled items of `group` for each answer list.
fn assert_disabled(group: &str, cases: &[(Value, &[&str])]) {
    let form = real_form(FIXTURE);
    for (answers, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|link_id| (*link_id).to_owned()).collect();
        assert_eq!(disabled_items(&form, group, answers.clone()), expected, "{group} answered {answers}");
    }
}

#[test]
fn fixture_boolean_group() {
    assert_disabled(
        "g1",
        &[
            (json!([{ "valueBoolean": true }]), &["Q1-false", "Q1-not-exists", "Q1-not-true"]),
            (json!([{ "valueBoolean": false }]), &["Q1-not-exists", "Q1-true"]),
            (json!([]), &["Q1-exists", "Q1-false", "Q1-not-true", "Q1-true"]),
        ],
    );
}

#[test]
fn fixture_number_groups() {
    assert_disabled(
        "g2",
        &[
            (json!([{ "valueDecimal": 5.6 }]), &["Q2-not-exists"]),
            (json!([{ "valueDecimal": 4.8 }]), &["Q2-equal", "Q2-not-exists"]),
            (json!([{ "valueDecimal": 4.0 }]), &["Q2-equal", "Q2-ge", "Q2-not-exists"]),
        ],
    );
    assert_disabled(
        "g3",
        &[
            (json!([{ "valueInteger": 5 }]), &["Q3-not-exists"]),
            (json!([{ "valueInteger": 4 }]), &["Q3-equal", "Q3-not-exists"]),
            (json!([{ "valueInteger": 3 }]), &["Q3-equal", "Q3-ge", "Q3-not-exists"]),
        ],
    );
}

#[test]
fn fixture_temporal_groups() {
    assert_disabled(
        "g4",
        &[
            (json!([{ "valueDate": "2020-05-01" }]), &["Q4-not-exists"]),
            (json!([{ "valueDate": "2020-06" }]), &["Q4-equal", "Q4-not-exists"]),
            (json!([{ "valueDate": "2020-04-30" }]), &["Q4-equal", "Q4-ge", "Q4-not-exists"]),
        ],
    );
    assert_disabled(
        "g5",
        &[(json!([{ "valueDateTime": "2020-05-01T10:00:00+08:00" }]), &["Q5-not-exists"]), (json!([]), &["Q5-exists"])],
    );
    assert_disabled("g6", &[(json!([{ "valueTime": "10:30:00" }]), &["Q6-not-exists"]), (json!([]), &["Q6-exists"])]);
}

#[test]
fn fixture_string_group() {
    // Q7-lt tests > "testing" and Q7-le tests < "test", as the fixture has them.
    assert_disabled(
        "g7",
        &[
            (json!([{ "valueString": "test" }]), &["Q7-le", "Q7-lt", "Q7-not-exists", "Q7-notequals"]),
            (json!([{ "valueString": "tes" }]), &["Q7-equals", "Q7-ge", "Q7-gt", "Q7-lt", "Q7-not-exists"]),
            (
                json!([]),
                &["Q7-equals", "Q7-exists", "Q7-ge", "Q7-ge2", "Q7-gt", "Q7-le", "Q7-le2", "Q7-lt", "Q7-notequals"],
            ),
        ],
    );
}

/// Q8 repeats: `Q8-eq-B-and-C` needs both codes among the answers.
#[test]
fn fixture_repeating_choice_group() {
    let coding = |code: &str| json!({ "valueCoding": { "system": "test-coding", "code": code, "display": code } });
    assert_disabled(
        "g8",
        &[
            (json!([coding("B"), coding("C")]), &["Q8-not-exists"]),
            (json!([coding("B")]), &["Q8-eq-B-and-C", "Q8-not-exists"]),
            (json!([coding("C"), coding("A")]), &["Q8-eq-B", "Q8-eq-B-and-C", "Q8-not-exists"]),
            (json!([]), &["Q8-eq-B", "Q8-eq-B-and-C", "Q8-exists"]),
        ],
    );
}

#[test]
fn fixture_option_groups() {
    let coding = |code: &str| json!([{ "valueCoding": { "system": "test-coding", "code": code } }]);
    assert_disabled(
        "g9",
        &[(coding("B"), &["Q9-noteq-B", "Q9-not-exists"]), (coding("C"), &["Q9-eq-B", "Q9-not-exists"])],
    );
    assert_disabled("g9a", &[(json!([{ "valueString": "B" }]), &["Q9a-noteq-B", "Q9a-not-exists"])]);
    assert_disabled("g9b", &[(json!([{ "valueInteger": 12 }]), &["Q9b-eq-B", "Q9b-not-exists"])]);
    assert_disabled("g9d", &[(json!([{ "valueTime": "13:30:00" }]), &["Q9d-noteq-B", "Q9d-not-exists"])]);
}

/// Q9c's conditions are written as `answerInteger: "2022-09"` and read as
/// dates. The option `2022` overlaps that month without being the same
/// period, so it is neither equal nor unequal to it.
#[test]
fn fixture_partial_date_options() {
    assert_disabled(
        "g9c",
        &[
            (json!([{ "valueDate": "2022-09" }]), &["Q9c-noteq-B", "Q9c-not-exists"]),
            (json!([{ "valueDate": "2022-09-20" }]), &["Q9c-eq-B", "Q9c-noteq-B", "Q9c-not-exists"]),
            (json!([{ "valueDate": "2022" }]), &["Q9c-eq-B", "Q9c-noteq-B", "Q9c-not-exists"]),
        ],
    );
}

/// Q10-ewe has an `enableWhenExpression`, which the rule engine evaluates:
/// Q10 and Q10b joined must be "chicken".
#[test]
fn fixture_enable_expression_decides() {
    let form = real_form(FIXTURE);
    let answer = |link_id: &str, text: &str| json!({ "linkId": link_id, "answer": [{ "valueString": text }] });
    let group = |q10: &str, q10b: &str| json!([{ "linkId": "g10", "item": [answer("Q10", q10), answer("Q10b", q10b), answer("Q10-ewe", "x")] }]);

    let enabled = check_fhir_items(&form, &group("chic", "ken"), "/item");
    let disabled = check_fhir_items(&form, &group("chic", "kens"), "/item");

    assert_eq!(codes(&enabled), []);
    assert_eq!(enabled.normalized["g10"]["Q10-ewe"], json!("x"));
    assert_eq!(codes(&disabled), [("answered_while_disabled", "/item/0/item/2/answer/0/valueString".to_owned())]);
}

/// Odd values for every question that conditions test never panic, and
/// produce only known codes.
#[test]
fn fixture_odd_answers_never_panic() {
    let form = real_form(FIXTURE);
    let odd = [
        json!(null),
        json!(true),
        json!(5),
        json!(-0.0),
        json!(1e308),
        json!("x"),
        json!(""),
        json!("2020-05-01"),
        json!("13:30:00"),
        json!({}),
        json!([]),
        json!([null, 1, "B"]),
        json!({ "code": "B" }),
        json!({ "value": 1 }),
        json!([{ "system": "test-coding", "code": "B" }, { "code": "C" }]),
    ];
    for group in &form.items {
        let Some((question, dependents)) = group.children.split_first() else {
            continue;
        };
        for value in &odd {
            let mut occurrence = json!({ question.link_id.clone(): value });
            for dependent in dependents {
                occurrence[&dependent.link_id] = json!("x");
            }
            let answers = json!({ group.link_id.clone(): occurrence });

            let checked = epro_forms::check_native(&form, &answers, "/answers");

            for finding in &checked.findings {
                assert!(KNOWN_CODES.contains(&finding.problem.code()), "{answers}: {finding:?}");
            }
        }
    }
}

/// The native example form: `nausea_severity` is required when the
/// symptoms include nausea, and rejected when they do not.
#[test]
fn symptom_diary_nausea_severity() {
    let diary = local_fixture("symptom-diary.toml");
    let base = json!({ "pain": 3, "mood": "fair" });
    let with = |extra: Value| {
        let mut answers = base.clone();
        for (key, value) in extra.as_object().expect("an object") {
            answers[key] = value.clone();
        }
        answers
    };
    check(&diary, with(json!({ "symptoms": ["nausea"] })), &[("required", "/answers/nausea_severity")]);
    check(&diary, with(json!({ "symptoms": ["fatigue", "nausea"], "nausea_severity": 1 })), &[]);
    check(
        &diary,
        with(json!({ "symptoms": ["fatigue"], "nausea_severity": 1 })),
        &[("answered_while_disabled", "/answers/nausea_severity")],
    );
    check(&diary, with(json!({ "nausea_severity": 3 })), &[("answered_while_disabled", "/answers/nausea_severity")]);
}
