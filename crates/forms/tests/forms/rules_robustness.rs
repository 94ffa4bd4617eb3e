//! Generated expressions and answers: loading never panics, and evaluation
//! of whatever loads never panics and reports only known codes.

use epro_forms::{FormFormat, check_native, load_form};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::KNOWN_CODES;

const CEL_TOKENS: &[&str] = &[
    "answers['a']",
    "answers['s']",
    "answers.a",
    "answers",
    "answer('a')",
    "answer('q', 'value')",
    "ordinal('c')",
    "ordinal_sum()",
    "answered('a')",
    "score('out')",
    "round(",
    "size(",
    "int(",
    ")",
    "(",
    "[",
    "]",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "!",
    "?",
    ":",
    "1",
    "0",
    "2.5",
    "-3",
    "'x'",
    "null",
    "true",
    ".code",
    ".value",
    "in",
];

const FHIRPATH_TOKENS: &[&str] = &[
    "%resource.item.where(linkId='a').answer.value",
    "%resource.item.where(linkId='s').answer.value",
    "%resource.item.where(linkId='c').answer.valueCoding.code",
    "%v",
    "%resource",
    "item",
    ".where(",
    "linkId",
    "iif(",
    ",",
    ")",
    "(",
    "+",
    "-",
    "*",
    "/",
    "&",
    "=",
    "!=",
    "<",
    "and",
    "or",
    ".exists()",
    ".empty()",
    ".not()",
    ".round(1)",
    "1",
    "0",
    "'s'",
    "{}",
    "true",
    "answers().sum(value.ordinal())",
];

fn expression(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..16).prop_map(|parts| parts.join(" "))
}

fn answer() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i32>().prop_map(|number| json!(number)),
        (-1e6f64..1e6).prop_map(|number| json!(number)),
        Just(json!(1e300)),
        "[a-z]{0,3}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        Just(json!({ "value": 2, "unit": "kg" })),
        Just(json!(["no", "yes"])),
    ]
}

fn answers() -> impl Strategy<Value = Value> {
    (answer(), answer(), answer(), answer()).prop_map(|(a, s, c, q)| json!({ "a": a, "s": s, "c": c, "q": q }))
}

fn native_form(calculated: &str, rule: &str) -> String {
    format!(
        "[[items]]\nlink_id = \"a\"\ntype = \"decimal\"\n\n[[items]]\nlink_id = \"s\"\ntype = \"string\"\n\n\
         [[items]]\nlink_id = \"c\"\ntype = \"choice\"\noptions = [{{ code = \"no\", ordinal = 0 }}, {{ code = \"yes\", ordinal = 2 }}]\n\n\
         [[items]]\nlink_id = \"q\"\ntype = \"quantity\"\n\n\
         [[items]]\nlink_id = \"out\"\ntype = \"decimal\"\ncalculated = {}\n\n\
         [[rules]]\nkey = \"r\"\nexpression = {}\nseverity = \"query\"\nmessage = {{ en = \"e\", zh-CN = \"z\" }}\n",
        toml_string(calculated),
        toml_string(rule)
    )
}

fn fhir_form(calculated: &str, enable: &str) -> String {
    let extension = |url: &str, text: &str| json!({ "url": url, "valueExpression": { "language": "text/fhirpath", "expression": text } });
    json!({
        "resourceType": "Questionnaire",
        "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/variable",
            "valueExpression": { "name": "v", "language": "text/fhirpath", "expression": "%resource.item.where(linkId='a').answer.value * 2" } }],
        "item": [
            { "linkId": "a", "type": "decimal" },
            { "linkId": "s", "type": "string",
              "extension": [extension("http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-enableWhenExpression", enable)] },
            { "linkId": "c", "type": "choice", "answerOption": [
                { "valueCoding": { "code": "no" }, "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 0 }] }] },
            { "linkId": "q", "type": "quantity" },
            { "linkId": "out", "type": "decimal",
              "extension": [extension("http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression", calculated)] }
        ]
    })
    .to_string()
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn assert_known_codes(text: &str, format: FormFormat, answers: &Value) {
    let outcome = load_form(text, format);
    let Some(form) = outcome.form else {
        assert!(!outcome.report.errors.is_empty(), "a form that does not load has errors");
        return;
    };
    let checked = check_native(&form, answers, "/answers");
    for finding in &checked.findings {
        assert!(KNOWN_CODES.contains(&finding.problem.code()), "{:?}", finding.problem);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_cel_never_panics(calculated in expression(CEL_TOKENS), rule in expression(CEL_TOKENS), answers in answers()) {
        assert_known_codes(&native_form(&calculated, &rule), FormFormat::NativeToml, &answers);
    }

    #[test]
    fn generated_fhirpath_never_panics(calculated in expression(FHIRPATH_TOKENS), enable in expression(FHIRPATH_TOKENS), answers in answers()) {
        assert_known_codes(&fhir_form(&calculated, &enable), FormFormat::FhirJson, &answers);
    }

    #[test]
    fn arbitrary_text_never_panics(calculated in "\\PC{0,40}", answers in answers()) {
        assert_known_codes(&native_form(&calculated, "true"), FormFormat::NativeToml, &answers);
        assert_known_codes(&fhir_form(&calculated, "true"), FormFormat::FhirJson, &answers);
    }
}
