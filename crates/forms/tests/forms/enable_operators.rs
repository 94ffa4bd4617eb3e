//! Every `enableWhen` operator on every answer type: one small form per
//! case, with question `q` and a required string item `d` that the
//! condition controls.

use epro_forms::check_native;
use serde_json::{Value, json};

use crate::common::{codes, form};

/// One case: the question's fields, the condition, the answer sent for `q`
/// (`None` for no answer) and whether `d` must be enabled.
struct Case {
    question: Value,
    condition: Value,
    sent: Option<Value>,
    enabled: bool,
}

fn case(question: Value, condition: Value, sent: Option<Value>, enabled: bool) -> Case {
    Case { question, condition, sent, enabled }
}

/// Builds a Questionnaire with the question `q` and a required string item
/// `d` that has the one condition on `q`.
fn questionnaire(question: &Value, condition: &Value) -> String {
    let mut question = question.clone();
    question["linkId"] = json!("q");
    let mut condition = condition.clone();
    condition["question"] = json!("q");
    json!({
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [question, { "linkId": "d", "type": "string", "required": true, "enableWhen": [condition] }]
    })
    .to_string()
}

/// Returns whether `d` is enabled, seen two ways that must agree: without
/// `d` an enabled item is `required`, and with `d` a disabled one is
/// `answered_while_disabled`.
fn is_enabled(form_text: &str, sent: Option<&Value>) -> bool {
    let form = form(form_text);
    let mut answers = json!({});
    if let Some(sent) = sent {
        answers["q"] = sent.clone();
    }
    let without = codes(&check_native(&form, &answers, "/answers"));
    answers["d"] = json!("x");
    let with = codes(&check_native(&form, &answers, "/answers"));

    let required = without == [("required", "/answers/d".to_owned())];
    let rejected = with == [("answered_while_disabled", "/answers/d".to_owned())];
    assert!(required || without.is_empty(), "unexpected findings without d for {sent:?}: {without:?}");
    assert!(rejected || with.is_empty(), "unexpected findings with d for {sent:?}: {with:?}");
    assert_eq!(required, !rejected, "required and answered_while_disabled disagree for {sent:?}");
    required
}

fn run(cases: &[Case]) {
    for case in cases {
        let form_text = questionnaire(&case.question, &case.condition);
        let enabled = is_enabled(&form_text, case.sent.as_ref());
        assert_eq!(
            enabled, case.enabled,
            "condition {} on question {} with answer {:?}",
            case.condition, case.question, case.sent
        );
    }
}

#[test]
fn operators_on_boolean_answers() {
    let boolean = json!({ "type": "boolean" });
    let condition = |operator: &str, answer: bool| json!({ "operator": operator, "answerBoolean": answer });
    run(&[
        case(boolean.clone(), condition("=", true), Some(json!(true)), true),
        case(boolean.clone(), condition("=", true), Some(json!(false)), false),
        case(boolean.clone(), condition("=", true), None, false),
        case(boolean.clone(), condition("=", false), Some(json!(false)), true),
        case(boolean.clone(), condition("!=", true), Some(json!(false)), true),
        case(boolean.clone(), condition("!=", true), Some(json!(true)), false),
        case(boolean.clone(), condition("exists", true), Some(json!(false)), true),
        case(boolean.clone(), condition("exists", true), None, false),
        case(boolean.clone(), condition("exists", false), None, true),
        case(boolean, condition("exists", false), Some(json!(true)), false),
    ]);
}

#[test]
fn operators_on_integer_answers() {
    let integer = json!({ "type": "integer" });
    let condition = |operator: &str| json!({ "operator": operator, "answerInteger": 5 });
    run(&[
        case(integer.clone(), condition("="), Some(json!(5)), true),
        case(integer.clone(), condition("="), Some(json!(4)), false),
        case(integer.clone(), condition("!="), Some(json!(4)), true),
        case(integer.clone(), condition("!="), Some(json!(5)), false),
        case(integer.clone(), condition(">"), Some(json!(6)), true),
        case(integer.clone(), condition(">"), Some(json!(5)), false),
        case(integer.clone(), condition("<"), Some(json!(4)), true),
        case(integer.clone(), condition("<"), Some(json!(5)), false),
        case(integer.clone(), condition(">="), Some(json!(5)), true),
        case(integer.clone(), condition(">="), Some(json!(4)), false),
        case(integer.clone(), condition("<="), Some(json!(5)), true),
        case(integer.clone(), condition("<="), Some(json!(6)), false),
        case(integer.clone(), json!({ "operator": "=", "answerDecimal": 5.0 }), Some(json!(5)), true),
        case(integer, json!({ "operator": "<", "answerDecimal": 4.5 }), Some(json!(4)), true),
    ]);
}

#[test]
fn operators_on_decimal_answers() {
    let decimal = json!({ "type": "decimal" });
    run(&[
        case(decimal.clone(), json!({ "operator": "=", "answerDecimal": 5.6 }), Some(json!(5.6)), true),
        case(decimal.clone(), json!({ "operator": "=", "answerDecimal": 5.6 }), Some(json!(5.61)), false),
        case(decimal.clone(), json!({ "operator": "!=", "answerDecimal": 5.6 }), Some(json!(5.61)), true),
        case(decimal.clone(), json!({ "operator": ">=", "answerDecimal": 4.8 }), Some(json!(4.8)), true),
        case(decimal.clone(), json!({ "operator": ">=", "answerDecimal": 4.8 }), Some(json!(4.79)), false),
        case(decimal.clone(), json!({ "operator": ">", "answerDecimal": 4.8 }), Some(json!(4.81)), true),
        case(decimal.clone(), json!({ "operator": "<=", "answerDecimal": 4.8 }), Some(json!(4.81)), false),
        case(decimal.clone(), json!({ "operator": "<", "answerInteger": 2 }), Some(json!(1.5)), true),
        case(decimal, json!({ "operator": "<", "answerInteger": 2 }), Some(json!(2.0)), false),
    ]);
}

#[test]
fn operators_on_string_answers() {
    let string = json!({ "type": "string" });
    let condition = |operator: &str, answer: &str| json!({ "operator": operator, "answerString": answer });
    run(&[
        case(string.clone(), condition("=", "test"), Some(json!("test")), true),
        case(string.clone(), condition("=", "test"), Some(json!("Test")), false),
        case(string.clone(), condition("!=", "test"), Some(json!("other")), true),
        case(string.clone(), condition("!=", "test"), Some(json!("test")), false),
        case(string.clone(), condition(">", "tes"), Some(json!("test")), true),
        case(string.clone(), condition(">", "tes"), Some(json!("tes")), false),
        case(string.clone(), condition("<", "test"), Some(json!("tes")), true),
        case(string.clone(), condition(">=", "test"), Some(json!("test")), true),
        case(string.clone(), condition(">=", "test"), Some(json!("tesa")), false),
        case(string.clone(), condition("<=", "testing"), Some(json!("test")), true),
        case(string.clone(), condition("<=", "testing"), Some(json!("tex")), false),
        // An empty string is no answer.
        case(string, json!({ "operator": "exists", "answerBoolean": true }), Some(json!("")), false),
    ]);
}

#[test]
fn operators_on_date_answers() {
    let date = json!({ "type": "date" });
    let condition = |operator: &str| json!({ "operator": operator, "answerDate": "2020-05-01" });
    run(&[
        case(date.clone(), condition("="), Some(json!("2020-05-01")), true),
        case(date.clone(), condition("="), Some(json!("2020-05-02")), false),
        case(date.clone(), condition("!="), Some(json!("2020-05-02")), true),
        case(date.clone(), condition(">"), Some(json!("2020-05-02")), true),
        case(date.clone(), condition(">"), Some(json!("2020-05-01")), false),
        case(date.clone(), condition("<"), Some(json!("2020-04")), true),
        case(date.clone(), condition(">="), Some(json!("2020-05-01")), true),
        case(date.clone(), condition(">="), Some(json!("2021")), true),
        case(date.clone(), condition("<="), Some(json!("2019")), true),
        case(date.clone(), condition("<="), Some(json!("2020-05-02")), false),
    ]);
}

/// A partial date whose period overlaps the condition's date without being
/// the same is neither equal, unequal nor ordered.
#[test]
fn partial_date_overlap_satisfies_nothing() {
    let date = json!({ "type": "date" });
    for operator in ["=", "!=", ">", "<", ">=", "<="] {
        let condition = json!({ "operator": operator, "answerDate": "2020-05-01" });
        run(&[
            case(date.clone(), condition.clone(), Some(json!("2020-05")), false),
            case(date.clone(), condition, Some(json!("2020")), false),
        ]);
    }
    let month = json!({ "operator": "=", "answerDate": "2020-05" });
    run(&[case(date, month, Some(json!("2020-05")), true)]);
}

#[test]
fn operators_on_date_time_answers() {
    let date_time = json!({ "type": "dateTime" });
    let at = |operator: &str, moment: &str| json!({ "operator": operator, "answerDateTime": moment });
    run(&[
        // The same instant written with two offsets.
        case(date_time.clone(), at("=", "2024-01-01T08:00:00+08:00"), Some(json!("2024-01-01T00:00:00Z")), true),
        case(date_time.clone(), at("!=", "2024-01-01T08:00:00+08:00"), Some(json!("2024-01-01T00:00:00Z")), false),
        case(date_time.clone(), at(">", "2024-01-01T00:00:00Z"), Some(json!("2024-01-01T00:00:01Z")), true),
        case(date_time.clone(), at(">", "2024-01-01T00:00:00Z"), Some(json!("2024-01-01T07:59:59+08:00")), false),
        case(date_time.clone(), at("<=", "2024-01-01T00:00:00Z"), Some(json!("2024-01-01T07:59:59+08:00")), true),
        case(
            date_time.clone(),
            json!({ "operator": "<", "answerDate": "2024-01-02" }),
            Some(json!("2024-01-01T12:00:00Z")),
            true,
        ),
        case(
            date_time.clone(),
            json!({ "operator": "=", "answerDate": "2024-01-01" }),
            Some(json!("2024-01-01")),
            true,
        ),
        // A date covers its whole UTC day, so one instant in it is neither
        // equal to nor ordered against it.
        case(
            date_time,
            json!({ "operator": "=", "answerDate": "2024-01-01" }),
            Some(json!("2024-01-01T12:00:00Z")),
            false,
        ),
    ]);
}

#[test]
fn operators_on_time_answers() {
    let time = json!({ "type": "time" });
    let at = |operator: &str, value: &str| json!({ "operator": operator, "answerTime": value });
    run(&[
        case(time.clone(), at("=", "13:30:00"), Some(json!("13:30:00")), true),
        case(time.clone(), at("=", "13:30:00"), Some(json!("13:30:01")), false),
        case(time.clone(), at("!=", "13:30:00"), Some(json!("13:30:01")), true),
        case(time.clone(), at(">=", "08:00:00"), Some(json!("08:00:00")), true),
        case(time.clone(), at(">=", "08:00:00"), Some(json!("07:59:59")), false),
        case(time.clone(), at("<", "08:00:00"), Some(json!("07:00:00")), true),
        case(time, at(">", "08:00:00"), Some(json!("07:00:00")), false),
    ]);
}

#[test]
fn operators_on_coding_answers() {
    let option = |code: &str| json!({ "valueCoding": { "system": "urn:s", "code": code, "display": code } });
    let choice = json!({ "type": "choice", "answerOption": [option("A"), option("B"), option("C")] });
    let coding = |operator: &str, coding: Value| json!({ "operator": operator, "answerCoding": coding });
    let b = json!({ "system": "urn:s", "code": "B" });
    run(&[
        case(choice.clone(), coding("=", b.clone()), Some(json!("B")), true),
        case(choice.clone(), coding("=", b.clone()), Some(json!({ "code": "B" })), true),
        case(choice.clone(), coding("=", b.clone()), Some(json!("C")), false),
        case(choice.clone(), coding("=", b.clone()), None, false),
        // Without a system in the condition, the code alone decides.
        case(choice.clone(), coding("=", json!({ "code": "B" })), Some(json!("B")), true),
        // Systems are compared when both sides have one.
        case(choice.clone(), coding("=", json!({ "system": "urn:other", "code": "B" })), Some(json!("B")), false),
        case(choice.clone(), coding("!=", b.clone()), Some(json!("C")), true),
        case(choice, coding("!=", b), Some(json!("B")), false),
    ]);
}

#[test]
fn operators_on_plain_option_answers() {
    let integers = json!({
        "type": "choice",
        "answerOption": [{ "valueInteger": 12 }, { "valueInteger": 34 }]
    });
    let strings = json!({ "type": "open-choice", "answerOption": [{ "valueString": "A" }, { "valueString": "B" }] });
    let codings = json!({ "type": "open-choice", "answerOption": [{ "valueCoding": { "code": "B" } }] });
    run(&[
        case(integers.clone(), json!({ "operator": "=", "answerInteger": 34 }), Some(json!(34)), true),
        case(integers.clone(), json!({ "operator": ">", "answerInteger": 12 }), Some(json!(34)), true),
        case(integers, json!({ "operator": "!=", "answerInteger": 34 }), Some(json!(34)), false),
        case(strings.clone(), json!({ "operator": "=", "answerString": "B" }), Some(json!("B")), true),
        // Free text of an open-choice item compares as a string.
        case(strings, json!({ "operator": "=", "answerString": "other" }), Some(json!("other")), true),
        // Free text never equals a Coding.
        case(codings.clone(), json!({ "operator": "!=", "answerCoding": { "code": "B" } }), Some(json!("free")), true),
        case(codings, json!({ "operator": "=", "answerCoding": { "code": "B" } }), Some(json!("free")), false),
    ]);
}

#[test]
fn operators_on_quantity_answers() {
    let ucum = "http://unitsofmeasure.org";
    let unit = |code: &str| {
        json!({
            "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption",
            "valueCoding": { "system": ucum, "code": code, "display": code }
        })
    };
    let quantity = json!({ "type": "quantity", "extension": [unit("kg"), unit("g")] });
    let condition = |operator: &str, value: Value| json!({ "operator": operator, "answerQuantity": value });
    let seventy_kg = json!({ "value": 70, "system": ucum, "code": "kg" });
    run(&[
        case(quantity.clone(), condition("=", seventy_kg.clone()), Some(json!({ "value": 70, "unit": "kg" })), true),
        case(quantity.clone(), condition(">", seventy_kg.clone()), Some(json!({ "value": 71, "unit": "kg" })), true),
        case(quantity.clone(), condition(">", seventy_kg.clone()), Some(json!({ "value": 70, "unit": "kg" })), false),
        case(quantity.clone(), condition("<=", seventy_kg.clone()), Some(json!({ "value": 69.5, "code": "kg" })), true),
        // No unit conversion: grams never compare with kilograms.
        case(quantity.clone(), condition(">", seventy_kg.clone()), Some(json!({ "value": 80000, "code": "g" })), false),
        case(quantity.clone(), condition("!=", seventy_kg), Some(json!({ "value": 80000, "code": "g" })), false),
        // A condition without a unit compares the value alone, whatever
        // the answer's unit.
        case(
            quantity.clone(),
            condition("<", json!({ "value": 100 })),
            Some(json!({ "value": 90, "code": "kg" })),
            true,
        ),
        case(quantity, condition("<", json!({ "value": 100 })), Some(json!({ "value": 90000, "code": "g" })), false),
    ]);
}

/// R4 defines a condition as "the question has an answer that ...", so
/// `!=` is false when the question has no answer at all.
#[test]
fn not_equal_without_answer_disables() {
    for (question, condition) in [
        (json!({ "type": "boolean" }), json!({ "operator": "!=", "answerBoolean": true })),
        (json!({ "type": "integer" }), json!({ "operator": "!=", "answerInteger": 1 })),
        (json!({ "type": "string" }), json!({ "operator": "!=", "answerString": "x" })),
        (json!({ "type": "date" }), json!({ "operator": "!=", "answerDate": "2020" })),
    ] {
        run(&[case(question, condition, None, false)]);
    }
}

/// For operators other than `exists`, any one answer of a repeating
/// question is enough.
#[test]
fn repeating_question_any_answer_matches() {
    let option = |code: &str| json!({ "valueCoding": { "code": code } });
    let choice = json!({ "type": "choice", "repeats": true, "answerOption": [option("A"), option("B"), option("C")] });
    let b = json!({ "code": "B" });
    let integers = json!({ "type": "integer", "repeats": true });
    run(&[
        case(choice.clone(), json!({ "operator": "=", "answerCoding": b.clone() }), Some(json!(["A", "B"])), true),
        case(choice.clone(), json!({ "operator": "=", "answerCoding": b.clone() }), Some(json!(["A", "C"])), false),
        case(choice.clone(), json!({ "operator": "!=", "answerCoding": b.clone() }), Some(json!(["B"])), false),
        case(choice, json!({ "operator": "!=", "answerCoding": b }), Some(json!(["B", "C"])), true),
        case(integers.clone(), json!({ "operator": ">", "answerInteger": 5 }), Some(json!([1, 2, 9])), true),
        case(integers, json!({ "operator": ">", "answerInteger": 5 }), Some(json!([1, 2, 3])), false),
    ]);
}
