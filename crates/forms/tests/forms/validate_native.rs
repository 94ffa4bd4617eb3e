//! One small case per validation rule, hint, item type and answer shape,
//! using native answers (a JSON object keyed by linkId).

use epro_forms::{Expected, Hint, Problem};
use serde_json::json;

use crate::common::{check, check_sorted};

const INTEGER_0_TO_10: &str = r#"
[[items]]
link_id = "pain"
type = "integer"
required = true
min = 0
max = 10
"#;

const DECIMAL: &str = r#"
[[items]]
link_id = "weight"
type = "decimal"
min = 1
max = 100
max_decimal_places = 2
"#;

const STRINGS: &str = r#"
[[items]]
link_id = "name"
type = "string"
required = true
max_length = 3

[[items]]
link_id = "code"
type = "string"
regex = "[A-Z]{2}"

[[items]]
link_id = "notes"
type = "text"
"#;

const CHOICE: &str = r#"
[[items]]
link_id = "mood"
type = "choice"
required = true
options = [
  { code = "good", system = "urn:mood", ordinal = 0, text = { en = "Good", zh-CN = "好" } },
  { code = "poor", system = "urn:mood", ordinal = 1, text = { en = "Poor", zh-CN = "差" } },
]
"#;

const TEMPORAL: &str = r#"
[[items]]
link_id = "day"
type = "date"
min = "2001-01-01"
max = "2024-06-30"

[[items]]
link_id = "moment"
type = "dateTime"

[[items]]
link_id = "clock"
type = "time"
min = "08:00:00"
max = "20:00:00"
"#;

const QUANTITY: &str = r#"
[[items]]
link_id = "weight"
type = "quantity"
min = 1
max = 200
max_decimal_places = 1
units = [
  { code = "kg", system = "http://unitsofmeasure.org", display = "kilogram" },
  { code = "[lb_av]", system = "http://unitsofmeasure.org", display = "lb" },
]

[[items]]
link_id = "dose"
type = "quantity"
units = [{ code = "mg", system = "http://unitsofmeasure.org" }]
"#;

const GROUPS: &str = r#"
[[items]]
link_id = "visit"
type = "group"

  [[items.items]]
  link_id = "visit.reason"
  type = "string"
  required = true

  [[items.items]]
  link_id = "visit.note"
  type = "string"

[[items]]
link_id = "meds"
type = "group"
repeats = true
max_occurs = 2

  [[items.items]]
  link_id = "meds.name"
  type = "string"
  required = true

  [[items.items]]
  link_id = "meds.detail"
  type = "group"

    [[items.items.items]]
    link_id = "meds.detail.route"
    type = "string"
"#;

fn wrong_type(checked: &epro_forms::Checked) -> (Expected, Option<Hint>) {
    match &checked.findings[0].problem {
        Problem::WrongType { expected, hint } => (*expected, hint.clone()),
        other => panic!("expected wrong_type, got {other:?}"),
    }
}

#[test]
fn required_missing_item_reported() {
    check(INTEGER_0_TO_10, json!({}), &[("required", "/answers/pain")]);
}

#[test]
fn required_null_and_empty_array_count_as_missing() {
    check(INTEGER_0_TO_10, json!({ "pain": null }), &[("required", "/answers/pain")]);
    check(INTEGER_0_TO_10, json!({ "pain": [] }), &[("required", "/answers/pain")]);
}

#[test]
fn required_empty_string_counts_as_missing() {
    let checked = check(STRINGS, json!({ "name": "" }), &[("required", "/answers/name")]);
    assert_eq!(checked.normalized, json!({}));
}

#[test]
fn optional_empty_string_is_left_out() {
    let checked = check(STRINGS, json!({ "name": "Ann", "notes": "" }), &[]);
    assert_eq!(checked.normalized, json!({ "name": "Ann" }));
}

#[test]
fn unknown_item_at_top_level() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": 1, "bogus": 2 }), &[("unknown_item", "/answers/bogus")]);
    assert_eq!(checked.findings[0].link_id, "bogus");
}

#[test]
fn unknown_item_inside_groups() {
    let answers = json!({
        "visit": { "visit.reason": "checkup", "extra": 1 },
        "meds": [
            { "meds.name": "a", "meds.detail": { "meds.detail.route": "oral", "deep": true } },
            { "meds.name": "b", "nope": null }
        ]
    });
    // Object keys may be read in any order, so compare sorted findings.
    check_sorted(
        GROUPS,
        answers,
        &[
            ("unknown_item", "/answers/meds/0/meds.detail/deep"),
            ("unknown_item", "/answers/meds/1/nope"),
            ("unknown_item", "/answers/visit/extra"),
        ],
    );
}

#[test]
fn unknown_item_pointer_escapes_link_id() {
    check(INTEGER_0_TO_10, json!({ "pain": 1, "a/b~c": 1 }), &[("unknown_item", "/answers/a~1b~0c")]);
}

#[test]
fn required_pointer_escapes_link_id() {
    let form = r#"
[[items]]
link_id = "/44250-9"
type = "boolean"
required = true
"#;
    check(form, json!({}), &[("required", "/answers/~144250-9")]);
}

#[test]
fn answers_must_be_object() {
    let checked = check(INTEGER_0_TO_10, json!([1, 2]), &[("wrong_type", "/answers"), ("required", "/answers/pain")]);
    assert_eq!(checked.findings[0].link_id, "");
    assert_eq!(wrong_type(&checked), (Expected::Group, None));
}

#[test]
fn boolean_accepts_only_true_false() {
    let form = "[[items]]\nlink_id = \"ok\"\ntype = \"boolean\"\n";
    let checked = check(form, json!({ "ok": false }), &[]);
    assert_eq!(checked.normalized, json!({ "ok": false }));
    let checked = check(form, json!({ "ok": "yes" }), &[("wrong_type", "/answers/ok")]);
    assert_eq!(wrong_type(&checked), (Expected::Boolean, None));
}

#[test]
fn integer_valid_value_normalized() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": 7 }), &[]);
    assert_eq!(checked.normalized, json!({ "pain": 7 }));
}

#[test]
fn integer_bounds_are_inclusive() {
    check(INTEGER_0_TO_10, json!({ "pain": 0 }), &[]);
    check(INTEGER_0_TO_10, json!({ "pain": 10 }), &[]);
}

#[test]
fn integer_out_of_range_reports_bounds() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": 11 }), &[("out_of_range", "/answers/pain")]);
    let expected = Problem::OutOfRange { min: Some("0".to_owned()), max: Some("10".to_owned()) };
    assert_eq!(checked.findings[0].problem, expected);
    check(INTEGER_0_TO_10, json!({ "pain": -1 }), &[("out_of_range", "/answers/pain")]);
}

#[test]
fn integer_beyond_32_bits_out_of_range() {
    let form = "[[items]]\nlink_id = \"n\"\ntype = \"integer\"\n";
    let checked = check(form, json!({ "n": 2_147_483_648_i64 }), &[("out_of_range", "/answers/n")]);
    let expected = Problem::OutOfRange { min: Some("-2147483648".to_owned()), max: Some("2147483647".to_owned()) };
    assert_eq!(checked.findings[0].problem, expected);
    check(form, json!({ "n": 2_147_483_647_i64 }), &[]);
}

#[test]
fn integer_fraction_hints_fractional_integer() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": 1.5 }), &[("wrong_type", "/answers/pain")]);
    assert_eq!(wrong_type(&checked), (Expected::Integer, Some(Hint::FractionalInteger)));
}

#[test]
fn integer_written_as_float_accepted() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": 5.0 }), &[]);
    assert_eq!(checked.normalized, json!({ "pain": 5 }));
}

#[test]
fn integer_quoted_hints_quoted_number() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": "5" }), &[("wrong_type", "/answers/pain")]);
    assert_eq!(wrong_type(&checked), (Expected::Integer, Some(Hint::QuotedNumber)));
}

#[test]
fn integer_non_numeric_string_has_no_hint() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": "five" }), &[("wrong_type", "/answers/pain")]);
    assert_eq!(wrong_type(&checked), (Expected::Integer, None));
}

#[test]
fn decimal_valid_value_keeps_number() {
    let checked = check(DECIMAL, json!({ "weight": 72.5 }), &[]);
    assert_eq!(checked.normalized, json!({ "weight": 72.5 }));
}

#[test]
fn decimal_accepts_integer_json() {
    let checked = check(DECIMAL, json!({ "weight": 72 }), &[]);
    assert_eq!(checked.normalized, json!({ "weight": 72 }));
}

#[test]
fn decimal_comma_hints_decimal_comma() {
    let checked = check(DECIMAL, json!({ "weight": "72,5" }), &[("wrong_type", "/answers/weight")]);
    assert_eq!(wrong_type(&checked), (Expected::Decimal, Some(Hint::DecimalComma)));
}

#[test]
fn decimal_quoted_hints_quoted_number() {
    let checked = check(DECIMAL, json!({ "weight": "72.5" }), &[("wrong_type", "/answers/weight")]);
    assert_eq!(wrong_type(&checked), (Expected::Decimal, Some(Hint::QuotedNumber)));
}

#[test]
fn decimal_out_of_range() {
    check(DECIMAL, json!({ "weight": 100.01 }), &[("out_of_range", "/answers/weight")]);
    check(DECIMAL, json!({ "weight": 0.99 }), &[("out_of_range", "/answers/weight")]);
    check(DECIMAL, json!({ "weight": 100 }), &[]);
}

#[test]
fn decimal_huge_value_out_of_range() {
    let answers: serde_json::Value = serde_json::from_str(r#"{ "weight": 1e300 }"#).expect("valid JSON");
    check(DECIMAL, answers, &[("out_of_range", "/answers/weight")]);
}

#[test]
fn decimal_too_many_decimals() {
    let checked = check(DECIMAL, json!({ "weight": 72.125 }), &[("too_many_decimals", "/answers/weight")]);
    assert_eq!(checked.findings[0].problem, Problem::TooManyDecimals { max_decimal_places: 2 });
    check(DECIMAL, json!({ "weight": 72.12 }), &[]);
}

#[test]
fn decimal_reports_places_and_range_together() {
    check(
        DECIMAL,
        json!({ "weight": 100.125 }),
        &[("too_many_decimals", "/answers/weight"), ("out_of_range", "/answers/weight")],
    );
}

#[test]
fn string_too_long_counts_characters() {
    let checked = check(STRINGS, json!({ "name": "Anna" }), &[("too_long", "/answers/name")]);
    assert_eq!(checked.findings[0].problem, Problem::TooLong { max_length: 3, length: 4 });
    check(STRINGS, json!({ "name": "张小明" }), &[]);
    check(STRINGS, json!({ "name": "张小明。" }), &[("too_long", "/answers/name")]);
}

#[test]
fn string_pattern_must_match_whole_value() {
    let checked = check(STRINGS, json!({ "name": "Al", "code": "ABC" }), &[("pattern_mismatch", "/answers/code")]);
    let expected = Problem::PatternMismatch { pattern: "[A-Z]{2}".to_owned() };
    assert_eq!(checked.findings[0].problem, expected);
    check(STRINGS, json!({ "name": "Al", "code": "AB" }), &[]);
}

#[test]
fn string_rejects_number() {
    let checked = check(STRINGS, json!({ "name": 42 }), &[("wrong_type", "/answers/name")]);
    assert_eq!(wrong_type(&checked), (Expected::String, None));
}

#[test]
fn text_item_accepts_long_string() {
    let long = "很长的文字".repeat(500);
    let checked = check(STRINGS, json!({ "name": "Al", "notes": long }), &[]);
    assert_eq!(checked.normalized["notes"], json!(long));
}

#[test]
fn unicode_passes_through_unchanged() {
    // Precomposed and combining forms of "é" must stay distinct: no
    // Unicode normalization happens anywhere.
    let text = "疼痛 👋🏽 caf\u{e9} cafe\u{301} \u{200d}";
    let form = "[[items]]\nlink_id = \"note\"\ntype = \"text\"\n";
    let checked = check(form, json!({ "note": text }), &[]);
    let stored = checked.normalized["note"].as_str().expect("note is a string");
    assert_eq!(stored.as_bytes(), text.as_bytes());
}

#[test]
fn choice_code_becomes_full_coding() {
    let checked = check(CHOICE, json!({ "mood": "good" }), &[]);
    let coding = json!({ "system": "urn:mood", "code": "good", "display": "Good" });
    assert_eq!(checked.normalized, json!({ "mood": coding }));
}

#[test]
fn choice_coding_object_matches() {
    let checked = check(CHOICE, json!({ "mood": { "system": "urn:mood", "code": "poor" } }), &[]);
    assert_eq!(checked.normalized["mood"]["display"], json!("Poor"));
}

#[test]
fn choice_coding_without_system_matches() {
    check(CHOICE, json!({ "mood": { "code": "poor", "display": "whatever" } }), &[]);
}

#[test]
fn choice_coding_other_system_not_an_option() {
    let checked = check(
        CHOICE,
        json!({ "mood": { "system": "urn:other", "code": "poor" } }),
        &[("not_an_option", "/answers/mood")],
    );
    let expected = Problem::NotAnOption { allowed: vec!["good".to_owned(), "poor".to_owned()] };
    assert_eq!(checked.findings[0].problem, expected);
}

#[test]
fn choice_unknown_code_not_an_option() {
    check(CHOICE, json!({ "mood": "great" }), &[("not_an_option", "/answers/mood")]);
}

#[test]
fn choice_coding_without_code_wrong_type() {
    let checked = check(CHOICE, json!({ "mood": { "system": "urn:mood" } }), &[("wrong_type", "/answers/mood")]);
    assert_eq!(wrong_type(&checked), (Expected::Option, None));
}

#[test]
fn choice_boolean_wrong_type() {
    let checked = check(CHOICE, json!({ "mood": true }), &[("wrong_type", "/answers/mood")]);
    assert_eq!(wrong_type(&checked), (Expected::Option, None));
}

#[test]
fn choice_integer_options_take_plain_values() {
    let form = "[[items]]\nlink_id = \"n\"\ntype = \"choice\"\noptions = [{ value = 12 }, { value = 34 }]\n";
    let checked = check(form, json!({ "n": 34 }), &[]);
    assert_eq!(checked.normalized, json!({ "n": 34 }));
    check(form, json!({ "n": 35 }), &[("not_an_option", "/answers/n")]);
    let checked = check(form, json!({ "n": "34" }), &[("wrong_type", "/answers/n")]);
    assert_eq!(wrong_type(&checked), (Expected::Integer, Some(Hint::QuotedNumber)));
}

#[test]
fn choice_string_date_time_options() {
    let form = r#"
[[items]]
link_id = "fruit"
type = "choice"
options = [{ value = "Apple" }, { value = "Pear" }]

[[items]]
link_id = "when"
type = "date"
options = [{ value = "2022-09" }, { value = "2022-09-20" }]

[[items]]
link_id = "slot"
type = "time"
options = [{ value = "10:30:00" }]
"#;
    let answers = json!({ "fruit": "Pear", "when": "2022-09", "slot": "10:30:00" });
    let checked = check(form, answers.clone(), &[]);
    assert_eq!(checked.normalized, answers);
    check(
        form,
        json!({ "fruit": "pear", "when": "2022-10", "slot": "11:00:00" }),
        &[("not_an_option", "/answers/fruit"), ("not_an_option", "/answers/when"), ("not_an_option", "/answers/slot")],
    );
}

#[test]
fn open_choice_accepts_free_text() {
    let form = r#"
[[items]]
link_id = "symptom"
type = "open-choice"
repeats = true
max_length = 10
options = [{ code = "nausea", system = "urn:s", text = "Nausea" }]
"#;
    let checked = check(form, json!({ "symptom": ["nausea", "头晕"] }), &[]);
    let coding = json!({ "system": "urn:s", "code": "nausea", "display": "Nausea" });
    assert_eq!(checked.normalized, json!({ "symptom": [coding, "头晕"] }));
    check(form, json!({ "symptom": ["x".repeat(11)] }), &[("too_long", "/answers/symptom/0")]);
    check(form, json!({ "symptom": [{ "code": "other" }] }), &[("not_an_option", "/answers/symptom/0")]);
}

#[test]
fn external_value_set_accepts_any_coding() {
    let form = "[[items]]\nlink_id = \"c\"\ntype = \"choice\"\nanswer_value_set = \"http://example.org/vs\"\n";
    let coding = json!({ "system": "urn:iso:3166", "code": "CN", "display": "China" });
    let checked = check(form, json!({ "c": coding.clone() }), &[]);
    assert_eq!(checked.normalized, json!({ "c": coding }));
    let checked = check(form, json!({ "c": "CN" }), &[]);
    assert_eq!(checked.normalized, json!({ "c": { "code": "CN" } }));
}

#[test]
fn date_valid_forms_kept_as_sent() {
    for day in ["2010", "2010-05", "2024-02-29"] {
        let checked = check(TEMPORAL, json!({ "day": day }), &[]);
        assert_eq!(checked.normalized, json!({ "day": day }), "date {day}");
    }
}

#[test]
fn date_bad_format_hints_date_format() {
    for day in ["2024/01/05", "05.01.2024", "2023-02-29", "2024-13", "0000", "2024-1-5", "2024-01-05T10:00:00Z"] {
        let checked = check(TEMPORAL, json!({ "day": day }), &[("wrong_type", "/answers/day")]);
        assert_eq!(wrong_type(&checked), (Expected::Date, Some(Hint::DateFormat)), "date {day}");
    }
}

#[test]
fn date_partial_value_must_fit_range() {
    check(TEMPORAL, json!({ "day": "2001" }), &[]);
    check(TEMPORAL, json!({ "day": "2024" }), &[("out_of_range", "/answers/day")]);
    check(TEMPORAL, json!({ "day": "2000-12-31" }), &[("out_of_range", "/answers/day")]);
    check(TEMPORAL, json!({ "day": "2024-06-30" }), &[]);
}

#[test]
fn date_time_keeps_offset_as_sent() {
    for moment in ["2024-01-05T10:00:00+08:00", "2024-01-05T02:00:00.123Z", "2024-01", "2024-01-05"] {
        let checked = check(TEMPORAL, json!({ "moment": moment }), &[]);
        assert_eq!(checked.normalized, json!({ "moment": moment }), "dateTime {moment}");
    }
}

#[test]
fn date_time_without_offset_hints_missing_offset() {
    let checked = check(TEMPORAL, json!({ "moment": "2024-01-05T10:00:00" }), &[("wrong_type", "/answers/moment")]);
    assert_eq!(wrong_type(&checked), (Expected::DateTime, Some(Hint::MissingOffset)));
}

#[test]
fn date_time_bad_format_hints_date_time_format() {
    for moment in
        ["2024-01-05T10:00Z", "2024-01-05 10:00:00Z", "2024-01-05T25:00:00Z", "2024-01-05T10:00:00+15:00", "now"]
    {
        let checked = check(TEMPORAL, json!({ "moment": moment }), &[("wrong_type", "/answers/moment")]);
        assert_eq!(wrong_type(&checked), (Expected::DateTime, Some(Hint::DateTimeFormat)), "dateTime {moment}");
    }
}

#[test]
fn date_time_range_compares_instants() {
    let form = r#"
[[items]]
link_id = "at"
type = "dateTime"
min = "2024-01-01T00:00:00+08:00"
"#;
    check(form, json!({ "at": "2023-12-31T16:00:00Z" }), &[]);
    check(form, json!({ "at": "2023-12-31T15:59:59Z" }), &[("out_of_range", "/answers/at")]);
}

#[test]
fn time_valid_and_range() {
    let checked = check(TEMPORAL, json!({ "clock": "08:30:00.5" }), &[]);
    assert_eq!(checked.normalized, json!({ "clock": "08:30:00.5" }));
    check(TEMPORAL, json!({ "clock": "07:59:59" }), &[("out_of_range", "/answers/clock")]);
}

#[test]
fn time_bad_format_hints_time_format() {
    for clock in ["10:00", "24:00:00", "9:00:00", "10:00:00+08:00"] {
        let checked = check(TEMPORAL, json!({ "clock": clock }), &[("wrong_type", "/answers/clock")]);
        assert_eq!(wrong_type(&checked), (Expected::Time, Some(Hint::TimeFormat)), "time {clock}");
    }
}

#[test]
fn quantity_normalized_with_form_unit() {
    let checked = check(QUANTITY, json!({ "weight": { "value": 72.5, "unit": "kg" } }), &[]);
    let expected = json!({ "value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg" });
    assert_eq!(checked.normalized, json!({ "weight": expected }));
}

#[test]
fn quantity_matches_unit_by_code() {
    let quantity = json!({ "value": 150, "code": "[lb_av]", "system": "http://unitsofmeasure.org" });
    let checked = check(QUANTITY, json!({ "weight": quantity }), &[]);
    assert_eq!(checked.normalized["weight"]["unit"], json!("lb"));
}

#[test]
fn quantity_single_unit_filled_in() {
    let checked = check(QUANTITY, json!({ "dose": { "value": 200 } }), &[]);
    let expected = json!({ "value": 200, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg" });
    assert_eq!(checked.normalized, json!({ "dose": expected }));
}

#[test]
fn quantity_unit_not_allowed() {
    let checked = check(
        QUANTITY,
        json!({ "weight": { "value": 72.5, "unit": "stone" } }),
        &[("unit_not_allowed", "/answers/weight")],
    );
    let expected = Problem::UnitNotAllowed { allowed: vec!["kg".to_owned(), "[lb_av]".to_owned()] };
    assert_eq!(checked.findings[0].problem, expected);
    check(QUANTITY, json!({ "weight": { "value": 72.5 } }), &[("unit_not_allowed", "/answers/weight")]);
}

#[test]
fn quantity_bare_number_hints_quantity_object() {
    let checked = check(QUANTITY, json!({ "weight": 72.5 }), &[("wrong_type", "/answers/weight")]);
    assert_eq!(wrong_type(&checked), (Expected::Quantity, Some(Hint::QuantityObject)));
}

#[test]
fn quantity_value_checked_at_value_pointer() {
    check(
        QUANTITY,
        json!({ "weight": { "value": 250.25, "unit": "kg" } }),
        &[("too_many_decimals", "/answers/weight/value"), ("out_of_range", "/answers/weight/value")],
    );
    let checked = check(
        QUANTITY,
        json!({ "weight": { "value": "72.5", "unit": "kg" } }),
        &[("wrong_type", "/answers/weight/value")],
    );
    assert_eq!(wrong_type(&checked), (Expected::Decimal, Some(Hint::QuotedNumber)));
}

#[test]
fn quantity_comparator_rejected() {
    let quantity = json!({ "value": 5, "unit": "kg", "comparator": "<" });
    check(QUANTITY, json!({ "weight": quantity }), &[("wrong_type", "/answers/weight")]);
}

#[test]
fn quantity_without_units_kept_as_sent() {
    let form = "[[items]]\nlink_id = \"score\"\ntype = \"quantity\"\n";
    let sent = json!({ "value": 13, "unit": "{score}" });
    let checked = check(form, json!({ "score": sent.clone() }), &[]);
    assert_eq!(checked.normalized, json!({ "score": sent }));
}

#[test]
fn display_item_not_answerable() {
    let form = "[[items]]\nlink_id = \"intro\"\ntype = \"display\"\ntext = \"Welcome\"\n";
    check(form, json!({ "intro": "seen" }), &[("not_answerable", "/answers/intro")]);
    let checked = check(form, json!({ "intro": null }), &[]);
    assert_eq!(checked.normalized, json!({}));
}

#[test]
fn repeating_item_always_array() {
    let form = "[[items]]\nlink_id = \"tags\"\ntype = \"string\"\nrepeats = true\n";
    let checked = check(form, json!({ "tags": "one" }), &[]);
    assert_eq!(checked.normalized, json!({ "tags": ["one"] }));
    let checked = check(form, json!({ "tags": ["one", null, "two"] }), &[]);
    assert_eq!(checked.normalized, json!({ "tags": ["one", "two"] }));
}

#[test]
fn non_repeating_item_single_element_array() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": [3] }), &[]);
    assert_eq!(checked.normalized, json!({ "pain": 3 }));
}

#[test]
fn non_repeating_item_two_values_too_many() {
    let checked = check(INTEGER_0_TO_10, json!({ "pain": [3, 4] }), &[("too_many_repeats", "/answers/pain/1")]);
    assert_eq!(checked.findings[0].problem, Problem::TooManyRepeats { max: 1, count: 2 });
    assert_eq!(checked.normalized, json!({}));
}

#[test]
fn repeating_item_occurrence_limits() {
    let form = r#"
[[items]]
link_id = "fruit"
type = "string"
repeats = true
required = true
min_occurs = 2
max_occurs = 3
"#;
    let checked = check(form, json!({ "fruit": ["apple"] }), &[("too_few_repeats", "/answers/fruit")]);
    assert_eq!(checked.findings[0].problem, Problem::TooFewRepeats { min: 2, count: 1 });
    check(form, json!({ "fruit": ["a", "b", "c", "d"] }), &[("too_many_repeats", "/answers/fruit/3")]);
    check(form, json!({ "fruit": ["a", "b"] }), &[]);
    check(form, json!({ "fruit": [] }), &[("required", "/answers/fruit")]);
}

#[test]
fn nested_array_value_wrong_type() {
    let form = "[[items]]\nlink_id = \"tags\"\ntype = \"string\"\nrepeats = true\n";
    check(form, json!({ "tags": [["nested"]] }), &[("wrong_type", "/answers/tags/0")]);
}

#[test]
fn group_object_normalized() {
    let answers = json!({ "visit": { "visit.reason": "checkup", "visit.note": "无" } });
    let checked = check(GROUPS, answers.clone(), &[]);
    assert_eq!(checked.normalized, answers);
}

#[test]
fn group_required_child_checked_when_present() {
    check(GROUPS, json!({ "visit": { "visit.note": "x" } }), &[("required", "/answers/visit/visit.reason")]);
}

#[test]
fn group_absent_skips_required_children() {
    let checked = check(GROUPS, json!({}), &[]);
    assert_eq!(checked.normalized, json!({}));
}

#[test]
fn group_scalar_wrong_type() {
    let checked = check(GROUPS, json!({ "visit": "checkup" }), &[("wrong_type", "/answers/visit")]);
    assert_eq!(wrong_type(&checked), (Expected::Group, None));
    check(GROUPS, json!({ "meds": [{ "meds.name": "a" }, 5] }), &[("wrong_type", "/answers/meds/1")]);
}

#[test]
fn repeating_group_always_array() {
    let checked = check(GROUPS, json!({ "meds": { "meds.name": "a" } }), &[]);
    assert_eq!(checked.normalized, json!({ "meds": [{ "meds.name": "a" }] }));
}

#[test]
fn repeating_group_checks_each_occurrence() {
    let answers = json!({
        "meds": [
            { "meds.name": "a", "meds.detail": { "meds.detail.route": "oral" } },
            { "meds.detail": { "meds.detail.route": 5 } }
        ]
    });
    check(
        GROUPS,
        answers,
        &[("required", "/answers/meds/1/meds.name"), ("wrong_type", "/answers/meds/1/meds.detail/meds.detail.route")],
    );
}

#[test]
fn repeating_group_too_many_occurrences() {
    let occurrence = json!({ "meds.name": "a" });
    let answers = json!({ "meds": [occurrence.clone(), occurrence.clone(), occurrence] });
    check(GROUPS, answers, &[("too_many_repeats", "/answers/meds/2")]);
}

#[test]
fn required_group_needs_an_answer_inside() {
    let form = r#"
[[items]]
link_id = "g"
type = "group"
required = true

  [[items.items]]
  link_id = "g.a"
  type = "string"
"#;
    check(form, json!({}), &[("required", "/answers/g")]);
    check(form, json!({ "g": {} }), &[("required", "/answers/g")]);
    check(form, json!({ "g": { "g.a": null } }), &[("required", "/answers/g")]);
    check(form, json!({ "g": { "g.a": "x" } }), &[]);
}

#[test]
fn skip_logic_item_required_when_enabled() {
    let form = r#"
[[items]]
link_id = "smoker"
type = "boolean"

[[items]]
link_id = "packs"
type = "integer"
required = true
enable_when = [{ question = "smoker", operator = "=", answer = true }]
"#;
    check(form, json!({ "smoker": false }), &[]);
    check(form, json!({}), &[]);
    check(form, json!({ "smoker": true }), &[("required", "/answers/packs")]);
    check(form, json!({ "smoker": true, "packs": "2" }), &[("wrong_type", "/answers/packs")]);
}

#[test]
fn enable_when_expression_decides_required() {
    let form = |expression: &str| {
        format!(
            r#"
[[items]]
link_id = "x"
type = "string"
required = true
expressions = [{{ kind = "enableWhenExpression", expression = "{expression}" }}]
"#
        )
    };
    check(&form("true"), json!({}), &[("required", "/answers/x")]);
    check(&form("false"), json!({}), &[]);
    check(&form("false"), json!({ "x": "y" }), &[("answered_while_disabled", "/answers/x")]);
}

/// A value sent for a calculated item is stored as sent; a different value
/// raises a data query, and the computed value is reported as a score.
#[test]
fn calculated_item_value_stored_as_sent() {
    let form = r#"
[[items]]
link_id = "score"
type = "decimal"
required = true
calculated = "1 + 1"
"#;
    check(form, json!({}), &[]);
    check(form, json!({ "score": 2 }), &[]);
    let checked = check(form, json!({ "score": 13 }), &[("score_mismatch", "/answers/score")]);
    assert_eq!(checked.normalized, json!({ "score": 13 }));
    assert_eq!(checked.scores[0].value, Some(rust_decimal::Decimal::from(2)));
    check(form, json!({ "score": "13" }), &[("wrong_type", "/answers/score")]);
}

#[test]
fn hidden_items_not_required() {
    let form = r#"
[[items]]
link_id = "device"
type = "string"
required = true
hidden = true

[[items]]
link_id = "internal"
type = "group"
hidden = true

  [[items.items]]
  link_id = "internal.code"
  type = "string"
  required = true
"#;
    check(form, json!({}), &[]);
    check(form, json!({ "internal": { "internal.code": null } }), &[]);
    let checked = check(form, json!({ "device": "AB-1234" }), &[]);
    assert_eq!(checked.normalized, json!({ "device": "AB-1234" }));
}

#[test]
fn every_finding_reported_not_first() {
    let form = format!("{INTEGER_0_TO_10}\n{STRINGS}\n{CHOICE}");
    check_sorted(
        &form,
        json!({ "name": "Anna", "code": "x", "mood": "meh", "extra": 1 }),
        &[
            ("not_an_option", "/answers/mood"),
            ("pattern_mismatch", "/answers/code"),
            ("required", "/answers/pain"),
            ("too_long", "/answers/name"),
            ("unknown_item", "/answers/extra"),
        ],
    );
}

#[test]
fn symptom_diary_example_submission_valid() {
    let diary = crate::common::local_fixture("symptom-diary.toml");
    let answers = json!({
        "pain": 3,
        "mood": "fair",
        "temperature": 37.2,
        "weight": { "value": 61.5, "unit": "kg" },
        "symptoms": ["nausea", "dizzy after lunch"],
        "nausea_severity": 2,
        "bedtime": "22:30:00",
        "onset": "2026-11",
        "recorded_at": "2026-12-04T20:15:00+08:00",
        "notes": "今天感觉好多了 🙂",
        "meds": [
            { "meds.name": "Ibuprofen", "meds.dose": { "value": 200, "unit": "mg" } }
        ]
    });
    let checked = check(&diary, answers, &[]);
    assert_eq!(checked.normalized["mood"]["system"], json!("https://example.org/epro/mood"));
    assert_eq!(checked.normalized["meds"][0]["meds.dose"]["code"], json!("mg"));
}
