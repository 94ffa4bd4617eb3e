//! Helpers shared by the test modules: fixture reading, form loading and
//! the data-driven `check` helpers.

use epro_forms::{Checked, Form, FormFormat, LoadOutcome, check_fhir_items, check_native, load_form};
use serde_json::Value;

/// Every code `Problem::code` may return.
pub const KNOWN_CODES: &[&str] = &[
    "required",
    "unknown_item",
    "wrong_type",
    "out_of_range",
    "not_an_option",
    "too_long",
    "pattern_mismatch",
    "too_many_decimals",
    "too_few_repeats",
    "too_many_repeats",
    "not_answerable",
    "unit_not_allowed",
    "answered_while_disabled",
    "rule_violated",
    "score_mismatch",
];

/// Reads a file from `fixtures/real/` at the workspace root.
pub fn real_fixture(name: &str) -> String {
    let path = format!("{}/../../fixtures/real/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// Reads a file from this crate's `tests/fixtures/`.
pub fn local_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// Loads a form from JSON (FHIR) or TOML (native) text, chosen by the
/// first character.
pub fn load(text: &str) -> LoadOutcome {
    let format = if text.trim_start().starts_with('{') { FormFormat::FhirJson } else { FormFormat::NativeToml };
    load_form(text, format)
}

/// Loads a form that must be valid.
pub fn form(text: &str) -> Form {
    let outcome = load(text);
    assert!(outcome.report.errors.is_empty(), "form has errors: {:#?}", outcome.report.errors);
    outcome.form.expect("a form without errors is built")
}

/// Loads a real FHIR fixture that must be valid.
pub fn real_form(name: &str) -> Form {
    form(&real_fixture(name))
}

/// Returns the findings as `(code, pointer)` pairs, in report order.
pub fn codes(checked: &Checked) -> Vec<(&'static str, String)> {
    checked.findings.iter().map(|finding| (finding.problem.code(), finding.pointer.clone())).collect()
}

/// Checks native `answers` against the form in `form_text` under the
/// pointer base `/answers`, and asserts the `(code, pointer)` findings.
pub fn check(form_text: &str, answers: Value, expected: &[(&str, &str)]) -> Checked {
    let checked = check_native(&form(form_text), &answers, "/answers");
    assert_findings(&checked, expected, &answers);
    checked
}

/// Like [`check`], but compares the findings sorted by code and pointer,
/// for inputs with several object keys whose reading order is not fixed.
pub fn check_sorted(form_text: &str, answers: Value, expected: &[(&str, &str)]) -> Checked {
    let checked = check_native(&form(form_text), &answers, "/answers");
    let mut actual: Vec<(&str, &str)> =
        checked.findings.iter().map(|finding| (finding.problem.code(), finding.pointer.as_str())).collect();
    actual.sort_unstable();
    assert_eq!(actual, expected, "sorted findings for input {answers}: {:#?}", checked.findings);
    checked
}

/// Checks a QuestionnaireResponse `item` array under the pointer base
/// `/item`, and asserts the `(code, pointer)` findings.
pub fn check_fhir(form_text: &str, items: Value, expected: &[(&str, &str)]) -> Checked {
    let checked = check_fhir_items(&form(form_text), &items, "/item");
    assert_findings(&checked, expected, &items);
    checked
}

fn assert_findings(checked: &Checked, expected: &[(&str, &str)], input: &Value) {
    let actual: Vec<(&str, &str)> =
        checked.findings.iter().map(|finding| (finding.problem.code(), finding.pointer.as_str())).collect();
    assert_eq!(actual, expected, "findings for input {input}: {:#?}", checked.findings);
}
