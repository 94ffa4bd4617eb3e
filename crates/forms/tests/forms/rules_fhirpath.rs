//! The FHIRPath subset, one construct per case: each expression is the
//! `calculatedExpression` of item `out` in a small Questionnaire, and the
//! case checks the score the server computes for some answers.

use epro_forms::{FormFormat, check_native, load_form};
use serde_json::{Value, json};

const ORDINAL: &str = "http://hl7.org/fhir/StructureDefinition/ordinalValue";
const CALCULATED: &str = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression";
const VARIABLE: &str = "http://hl7.org/fhir/StructureDefinition/variable";

fn option(code: &str, ordinal: u32) -> Value {
    json!({ "valueCoding": { "system": "urn:test", "code": code }, "extension": [{ "url": ORDINAL, "valueDecimal": ordinal }] })
}

fn expression_extension(url: &str, name: Option<&str>, expression: &str) -> Value {
    let mut value = json!({ "language": "text/fhirpath", "expression": expression });
    if let Some(name) = name {
        value["name"] = json!(name);
    }
    json!({ "url": url, "valueExpression": value })
}

/// Builds a Questionnaire with one item of each kind the cases read, and
/// `out` computed by `expression`. `variables` are form-level (name,
/// FHIRPath).
fn questionnaire(expression: &str, variables: &[(&str, &str)]) -> String {
    let root_extensions: Vec<Value> =
        variables.iter().map(|(name, text)| expression_extension(VARIABLE, Some(name), text)).collect();
    json!({
        "resourceType": "Questionnaire",
        "status": "active",
        "extension": root_extensions,
        "item": [
            { "linkId": "a", "type": "decimal" },
            { "linkId": "b", "type": "decimal" },
            { "linkId": "i", "type": "integer" },
            { "linkId": "s", "type": "string" },
            { "linkId": "t", "type": "string" },
            { "linkId": "f", "type": "boolean" },
            { "linkId": "c", "type": "choice", "answerOption": [option("no", 0), option("yes", 2)] },
            { "linkId": "q", "type": "quantity" },
            { "linkId": "g", "type": "group", "item": [{ "linkId": "n", "type": "decimal" }] },
            { "linkId": "out", "type": "decimal", "extension": [expression_extension(CALCULATED, None, expression)] },
            { "linkId": "d", "type": "date" }
        ]
    })
    .to_string()
}

/// Returns the computed value of `out` for `answers`, as text.
fn computed_with(expression: &str, variables: &[(&str, &str)], answers: Value) -> Option<String> {
    let outcome = load_form(&questionnaire(expression, variables), FormFormat::FhirJson);
    let form = outcome.form.unwrap_or_else(|| panic!("{expression} does not load: {:#?}", outcome.report.errors));
    let checked = check_native(&form, &answers, "/answers");
    let score = checked.scores.iter().find(|score| score.name == "out").expect("out is a score");
    score.value.map(|value| value.to_string())
}

fn computed(expression: &str, answers: Value) -> Option<String> {
    computed_with(expression, &[], answers)
}

/// Returns the load errors of `expression`, joined.
fn load_errors(expression: &str) -> String {
    let outcome = load_form(&questionnaire(expression, &[]), FormFormat::FhirJson);
    assert!(outcome.form.is_none(), "{expression} loads");
    outcome
        .report
        .errors
        .iter()
        .map(|notice| format!("{}: {}", notice.path, notice.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wraps a Boolean expression so that the score shows its value: 1 for
/// true, 0 for false and -1 for empty.
fn boolean(expression: &str) -> String {
    format!("iif({expression}, 1, iif(({expression}).exists(), 0, -1))")
}

fn check_cases(cases: &[(&str, Value, Option<&str>)]) {
    for (expression, answers, expected) in cases {
        let actual = computed(expression, answers.clone());
        assert_eq!(actual.as_deref(), *expected, "{expression} with {answers}");
    }
}

#[test]
fn answer_paths_read_values() {
    let a = "%resource.item.where(linkId='a').answer";
    check_cases(&[
        (&format!("{a}.value"), json!({ "a": 2.5 }), Some("2.5")),
        (&format!("{a}.valueDecimal"), json!({ "a": 2.5 }), Some("2.5")),
        ("%resource.item.where(linkId='i').answer.valueInteger * 2", json!({ "i": 4 }), Some("8")),
        (
            "%resource.item.where(linkId='q').answer.valueQuantity.value",
            json!({ "q": { "value": 72.5, "unit": "kg" } }),
            Some("72.5"),
        ),
        ("%resource.item.where(linkId='q').answer.value.value", json!({ "q": { "value": 3 } }), Some("3")),
        ("%resource.item.where(linkId='g').item.where(linkId='n').answer.value", json!({ "g": { "n": 7 } }), Some("7")),
        ("%resource.item.item.where(linkId='n').answer.value", json!({ "g": { "n": 7 } }), Some("7")),
        (&format!("{a}.value"), json!({}), None),
    ]);
}

#[test]
fn coding_paths_read_code_and_ordinal() {
    let ordinal = format!(
        "%questionnaire.item.where(linkId = 'c').answerOption.where(valueCoding.code=%resource.item.where(linkId = 'c').answer.valueCoding.code).extension.where(url='{ORDINAL}').valueDecimal"
    );
    check_cases(&[
        (&ordinal, json!({ "c": "yes" }), Some("2")),
        (&ordinal, json!({ "c": "no" }), Some("0")),
        (&ordinal, json!({}), None),
        (
            &boolean("%resource.item.where(linkId='c').answer.valueCoding.code = 'yes'"),
            json!({ "c": "yes" }),
            Some("1"),
        ),
        (
            &boolean("%resource.item.where(linkId='c').answer.value.system = 'urn:test'"),
            json!({ "c": "no" }),
            Some("1"),
        ),
        ("answers().sum(value.ordinal())", json!({ "c": "yes" }), Some("2")),
        ("answers().sum(value.ordinal())", json!({}), Some("0")),
    ]);
}

#[test]
fn arithmetic_and_literals() {
    let a = "%resource.item.where(linkId='a').answer.value";
    let b = "%resource.item.where(linkId='b').answer.value";
    check_cases(&[
        (&format!("{a} + {b}"), json!({ "a": 0.1, "b": 0.2 }), Some("0.3")),
        (&format!("{a} - {b} * 2"), json!({ "a": 10, "b": 3 }), Some("4")),
        (&format!("({a} - {b}) * 2"), json!({ "a": 10, "b": 3 }), Some("14")),
        (&format!("{a} / {b}"), json!({ "a": 1, "b": 3 }), Some("0.333333333333")),
        (&format!("{a} / {b}"), json!({ "a": 1, "b": 0 }), None),
        (&format!("-{a}"), json!({ "a": 4 }), Some("-4")),
        (&format!("{a} + 1"), json!({}), None),
        ("2.5 * 2", json!({}), Some("5")),
        (&format!("({a} * 0.0254).round(2)"), json!({ "a": 69 }), Some("1.75")),
        (&format!("{a}.round()"), json!({ "a": 2.5 }), Some("3")),
        (&format!("{a}.round()"), json!({ "a": -2.5 }), Some("-3")),
    ]);
}

#[test]
fn comparison_equality_and_logic() {
    let a = "%resource.item.where(linkId='a').answer.value";
    let b = "%resource.item.where(linkId='b').answer.value";
    let f = "%resource.item.where(linkId='f').answer.value";
    check_cases(&[
        (&boolean(&format!("{a} <= {b}")), json!({ "a": 1, "b": 2 }), Some("1")),
        (&boolean(&format!("{a} > {b}")), json!({ "a": 1, "b": 2 }), Some("0")),
        (&boolean(&format!("{a} >= {b}")), json!({ "b": 2 }), Some("-1")),
        (&boolean(&format!("{a} = {b}")), json!({ "a": 2, "b": 2 }), Some("1")),
        (&boolean(&format!("{a} != {b}")), json!({ "a": 2 }), Some("-1")),
        (&boolean(&format!("{a} < 3 and {f}")), json!({ "a": 1, "f": true }), Some("1")),
        (&boolean(&format!("{a} < 3 and {f}")), json!({ "a": 5 }), Some("0")),
        (&boolean(&format!("{a} < 3 and {f}")), json!({ "a": 1 }), Some("-1")),
        (&boolean(&format!("{a} < 3 or {f}")), json!({ "a": 1 }), Some("1")),
        (&boolean(&format!("{a} > 3 or {f}")), json!({ "a": 1 }), Some("-1")),
        (&boolean(&format!("{f}.not()")), json!({ "f": false }), Some("1")),
        (&boolean(&format!("{f}.not()")), json!({}), Some("-1")),
        (&boolean(&format!("{a}.exists()")), json!({ "a": 0 }), Some("1")),
        (&boolean(&format!("{a}.empty()")), json!({ "a": 0 }), Some("0")),
        (&boolean("true"), json!({}), Some("1")),
        (&boolean("{}"), json!({}), Some("-1")),
    ]);
}

#[test]
fn iif_and_string_concatenation() {
    let a = "%resource.item.where(linkId='a').answer.value";
    let s = "%resource.item.where(linkId='s').answer.value";
    let t = "%resource.item.where(linkId='t').answer.value";
    check_cases(&[
        (&format!("iif({a} > 5, 1, 2)"), json!({ "a": 9 }), Some("1")),
        (&format!("iif({a} > 5, 1, 2)"), json!({ "a": 1 }), Some("2")),
        (&format!("iif({a} > 5, 1, 2)"), json!({}), Some("2")),
        (&format!("iif({a} > 5, 1)"), json!({ "a": 1 }), None),
        (&format!("iif({a}.exists(), {a}, 0) + 1"), json!({}), Some("1")),
        (&boolean(&format!("{s} & {t} = 'chicken'")), json!({ "s": "chick", "t": "en" }), Some("1")),
        (&boolean(&format!("{s} & {t} = 'chicken'")), json!({ "s": "chicken" }), Some("1")),
        (&boolean(&format!("{s} + {t} = 'chicken'")), json!({ "s": "chicken" }), Some("-1")),
    ]);
}

#[test]
fn variables_evaluated_in_order() {
    let variables = [
        ("factor", "0.0254"),
        ("height", "%resource.item.where(linkId='a').answer.value * %factor"),
        ("unit", "'http://example.org/unit'"),
    ];
    let cases = [
        ("%height.round(4)", json!({ "a": 69 }), Some("1.7526")),
        ("iif(%height.exists(), 1, 0)", json!({}), Some("0")),
        ("iif(%unit = 'http://example.org/unit', 1, 0)", json!({}), Some("1")),
    ];
    for (expression, answers, expected) in cases {
        let actual = computed_with(expression, &variables, answers.clone());
        assert_eq!(actual.as_deref(), expected, "{expression} with {answers}");
    }
}

/// FHIR evaluates an expression on an item in a repeating group once per
/// occurrence, which epro does not do, so such a form does not load.
#[test]
fn expression_in_repeating_group_rejected() {
    let enable = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-enableWhenExpression";
    let text = json!({
        "resourceType": "Questionnaire",
        "item": [{ "linkId": "meds", "type": "group", "repeats": true, "item": [
            { "linkId": "dose", "type": "decimal" },
            { "linkId": "why", "type": "string",
              "extension": [expression_extension(enable, None, "%context.answer.value.exists()")] }
        ] }]
    })
    .to_string();
    let outcome = load_form(&text, FormFormat::FhirJson);
    let errors: Vec<_> =
        outcome.report.errors.iter().map(|notice| (notice.path.as_str(), notice.message.as_str())).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].0, "$.item[0].item[1].extension[0]");
    assert!(errors[0].1.contains("once per occurrence"), "{}", errors[0].1);
}

#[test]
fn unsupported_fhirpath_is_load_error() {
    let cases = [
        ("%resource.item.where(linkId='a').answer.value | 1", "union operator"),
        ("%resource.descendants()", "not supported"),
        ("today()", "function today() is not supported"),
        ("%resource.item.where(text = 'x').answer.value", "where(linkId = '...')"),
        ("%resource.item.where(linkId='n').answer.value", "not at this place"),
        ("item.where(linkId = 'a').answer.value", "not at this place"),
        ("%resource.item.where(linkId='zz').answer.value", "unknown linkId \"zz\""),
        ("%resource.item.where(linkId='a').answer.valueString", "always empty"),
        ("%resource.item.where(linkId='a')", "must end at an answer"),
        ("%unknown + 1", "%unknown names no variable"),
        ("%resource.item.where(linkId='a').answer.value.round(20)", "round()"),
        ("'a' ~ 'b'", "equivalence"),
        ("1 div 2", "\"div\" is not supported"),
        ("%resource.item.where(linkId='out').answer.value", "cycle"),
        ("iif(%resource.item.where(linkId='d').answer.value > '2020', 1, 0)", "date, dateTime and time"),
    ];
    for (expression, expected) in cases {
        let errors = load_errors(expression);
        assert!(errors.contains(expected), "{expression}: {errors}");
        assert!(errors.contains("$.item[9].extension[0]"), "{expression} error has the JSON path: {errors}");
    }
}
