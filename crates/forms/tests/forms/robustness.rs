//! Odd inputs that must never panic: every item type against a fixed set
//! of awkward JSON values and shapes, in both submission formats, and
//! Questionnaires with single values replaced by awkward ones. The loops
//! are exhaustive over fixed lists, so every run checks the same cases.

use epro_forms::{Form, check_fhir_items, check_native, load_fhir_value};
use serde_json::{Value, json};

use crate::common::{KNOWN_CODES, form, real_fixture};

/// A form with one item of every type, plus a repeating variant and a
/// nested repeating group, with constraints on each.
const EVERY_TYPE: &str = r#"
[[items]]
link_id = "boolean"
type = "boolean"
required = true

[[items]]
link_id = "integer"
type = "integer"
min = -5
max = 5
options = [{ value = 1 }, { value = 2 }]

[[items]]
link_id = "decimal"
type = "decimal"
min = -1.5
max = 1e10
max_decimal_places = 3

[[items]]
link_id = "string"
type = "string"
repeats = true
min_occurs = 1
max_occurs = 2
max_length = 4
regex = "[a-z]*"

[[items]]
link_id = "text"
type = "text"

[[items]]
link_id = "date"
type = "date"
min = "2000"
max = "2030-06"

[[items]]
link_id = "dateTime"
type = "dateTime"
max = "2030-01-01T00:00:00Z"

[[items]]
link_id = "time"
type = "time"
min = "01:00:00"

[[items]]
link_id = "choice"
type = "choice"
options = [{ code = "a", system = "urn:x" }, { value = 3 }, { value = "s" }]

[[items]]
link_id = "open-choice"
type = "open-choice"
max_length = 3
options = [{ code = "a" }]

[[items]]
link_id = "quantity"
type = "quantity"
min = 0
max_decimal_places = 1
units = ["kg", { code = "g", system = "http://unitsofmeasure.org" }]

[[items]]
link_id = "display"
type = "display"
text = "Hello"

[[items]]
link_id = "group"
type = "group"
repeats = true
required = true

  [[items.items]]
  link_id = "group.value"
  type = "integer"
  required = true

  [[items.items]]
  link_id = "group.inner"
  type = "group"

    [[items.items.items]]
    link_id = "group.inner.value"
    type = "quantity"
"#;

/// Awkward JSON values: extreme and negative-zero numbers, huge integers,
/// empty and nested containers, objects where scalars belong and scalars
/// where objects belong.
fn odd_values() -> Vec<Value> {
    let numbers = [
        "0",
        "-0",
        "-0.0",
        "1e308",
        "-1e308",
        "1e-320",
        "5e-324",
        "1.7976931348623157e308",
        "123456789012345678901234567890",
        "-99999999999999999999999",
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775809",
        "0.1",
        "1.0000000000000002",
        "2147483648",
        "79228162514264337593543950336",
        "1e28",
        "1e29",
    ];
    let mut values: Vec<Value> =
        numbers.iter().map(|text| serde_json::from_str(text).expect("number literal parses")).collect();
    values.extend([
        Value::Null,
        json!(true),
        json!(""),
        json!(" "),
        json!("5"),
        json!("72,5"),
        json!("1e400"),
        json!("NaN"),
        json!("-"),
        json!("2024-02-30"),
        json!("2024-01-05T10:00:00"),
        json!("9999-12-31T23:59:60+14:00"),
        json!("0001-01-01T00:00:00-14:00"),
        json!("23:59:60.9999999999"),
        json!("a"),
        json!("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 e\u{301} \u{0}"),
        json!([]),
        json!([[]]),
        json!([[[1]]]),
        json!([null, null]),
        json!([1, "a", {}, []]),
        json!({}),
        json!({ "value": null }),
        json!({ "value": {} }),
        json!({ "value": "1e400", "unit": 5 }),
        json!({ "value": 1e308, "unit": "kg" }),
        json!({ "value": -0.0, "code": "g", "system": "http://unitsofmeasure.org" }),
        json!({ "code": null }),
        json!({ "code": 3 }),
        json!({ "code": "a", "system": ["urn:x"] }),
        json!({ "code": "a", "system": "urn:x" }),
        json!({ "group.value": {} }),
        json!({ "group.value": [1, 2], "group.inner": [[], {}] }),
        json!({ "group.inner": { "group.inner.value": 7 } }),
        json!({ "": "" }),
        json!({ "~0/1": 1 }),
    ]);
    values
}

fn assert_known_codes(form: &Form, input: &Value, checked: &epro_forms::Checked) {
    for finding in &checked.findings {
        let code = finding.problem.code();
        assert!(KNOWN_CODES.contains(&code), "unknown code {code} for input {input}");
        let is_pointer = finding.pointer.is_empty() || finding.pointer.starts_with('/');
        assert!(is_pointer, "pointer {} for input {input}", finding.pointer);
    }
    assert!(checked.normalized.is_object(), "normalized not an object for {input}");
    let _ = form;
}

/// Wraps `value` in every shape an answer can take: bare, in an array, in a
/// nested array and under the wrong kind of container.
fn shapes(value: &Value) -> Vec<Value> {
    vec![value.clone(), json!([value]), json!([value, value, value]), json!([[value]]), json!({ "nested": value })]
}

#[test]
fn native_odd_values_never_panic() {
    let form = form(EVERY_TYPE);
    let link_ids: Vec<String> = form.all_items().map(|item| item.link_id.clone()).collect();
    let mut cases = 0;
    for link_id in &link_ids {
        for value in odd_values() {
            for shaped in shapes(&value) {
                let answers = json!({ link_id.as_str(): shaped });
                let checked = check_native(&form, &answers, "/answers");
                assert_known_codes(&form, &answers, &checked);
                cases += 1;
            }
        }
    }
    assert!(cases > 3000, "only {cases} cases ran");
}

#[test]
fn native_odd_top_level_never_panics() {
    let form = form(EVERY_TYPE);
    for value in odd_values() {
        for shaped in shapes(&value) {
            let checked = check_native(&form, &shaped, "");
            assert_known_codes(&form, &shaped, &checked);
        }
    }
}

#[test]
fn native_odd_values_inside_groups_never_panic() {
    let form = form(EVERY_TYPE);
    for value in odd_values() {
        for key in ["group.value", "group.inner", "unknown"] {
            let answers = json!({ "group": [{ key: value }, { "group.inner": { "group.inner.value": value } }] });
            let checked = check_native(&form, &answers, "/answers");
            assert_known_codes(&form, &answers, &checked);
        }
    }
}

const VALUE_KINDS: &[&str] = &[
    "valueBoolean",
    "valueInteger",
    "valueDecimal",
    "valueString",
    "valueDate",
    "valueDateTime",
    "valueTime",
    "valueCoding",
    "valueQuantity",
    "valueUri",
    "valueAttachment",
];

#[test]
fn fhir_odd_answers_never_panic() {
    let form = form(EVERY_TYPE);
    let link_ids: Vec<String> = form.all_items().map(|item| item.link_id.clone()).collect();
    for link_id in &link_ids {
        for kind in VALUE_KINDS {
            for value in odd_values() {
                let items = json!([{ "linkId": link_id, "answer": [{ *kind: value }], "item": [{ "linkId": "x" }] }]);
                let checked = check_fhir_items(&form, &items, "/item");
                assert_known_codes(&form, &items, &checked);
            }
        }
    }
}

#[test]
fn fhir_odd_entry_shapes_never_panic() {
    let form = form(EVERY_TYPE);
    for value in odd_values() {
        let inputs = [
            value.clone(),
            json!([value]),
            json!([{ "linkId": value }]),
            json!([{ "linkId": "group", "item": value }]),
            json!([{ "linkId": "group", "item": [{ "linkId": "group.inner", "item": value }] }]),
            json!([{ "linkId": "integer", "answer": value }]),
            json!([{ "linkId": "integer", "answer": [value] }]),
            json!([{ "linkId": "display", "answer": [{ "valueString": value }] }]),
            json!([{ "linkId": "group", "answer": value }]),
        ];
        for items in inputs {
            let checked = check_fhir_items(&form, &items, "/item");
            assert_known_codes(&form, &items, &checked);
        }
    }
}

/// Calls `visit` with a copy of `root` in which one node, at each position
/// in turn, is replaced by `replacement`.
fn for_each_replacement(root: &Value, replacement: &Value, visit: &mut dyn FnMut(Value)) {
    fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<String>) {
        out.push(format!("/{}", prefix.join("/")));
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    prefix.push(key.replace('~', "~0").replace('/', "~1"));
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(list) => {
                for (position, child) in list.iter().enumerate() {
                    prefix.push(position.to_string());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    for path in all.iter().skip(1) {
        let mut copy = root.clone();
        if let Some(node) = copy.pointer_mut(path) {
            *node = replacement.clone();
        }
        visit(copy);
    }
}

#[test]
fn questionnaire_mutations_never_panic() {
    let replacements = [
        Value::Null,
        json!(-1),
        json!(1e308),
        json!("true"),
        json!("#missing"),
        json!("(["),
        json!([]),
        json!({}),
        json!([{ "url": 5 }]),
    ];
    let mut loads = 0;
    for name in ["rkof__NumberExample.json", "rkof__GAD-7.json", "lforms__q-with-minOccurs-maxOccurs.json"] {
        let original: Value = serde_json::from_str(&real_fixture(name)).expect("fixture is valid JSON");
        for replacement in &replacements {
            for_each_replacement(&original, replacement, &mut |mutated| {
                let outcome = load_fhir_value(&mutated);
                assert_eq!(outcome.form.is_some(), outcome.report.errors.is_empty(), "{name}");
                loads += 1;
            });
        }
    }
    assert!(loads > 1000, "only {loads} loads ran");
}

#[test]
fn native_form_text_mutations_never_panic() {
    let text = crate::common::local_fixture("symptom-diary.toml");
    // Cutting the file at every line boundary gives many partial files,
    // some valid, some with syntax errors at the end.
    let cut_points = text.match_indices('\n').map(|(position, _)| position);
    for end in cut_points {
        let outcome = epro_forms::load_form(&text[..end], epro_forms::FormFormat::NativeToml);
        assert_eq!(outcome.form.is_some(), outcome.report.errors.is_empty());
    }
}
