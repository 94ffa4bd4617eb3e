//! Import of the native TOML format: the documented example, every key,
//! and errors with their key paths.

use epro_forms::{
    Bound, EnableWhenOperator, ExpressionKind, FormFormat, ItemType, Language, LoadReport, OptionValue, load_form,
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{load, local_fixture};

fn native(text: &str) -> epro_forms::LoadOutcome {
    load_form(text, FormFormat::NativeToml)
}

fn error_paths(report: &LoadReport) -> Vec<(&str, &str)> {
    report.errors.iter().map(|notice| (notice.path.as_str(), notice.message.as_str())).collect()
}

#[test]
fn symptom_diary_loads() {
    let outcome = native(&local_fixture("symptom-diary.toml"));
    assert!(outcome.report.is_valid(), "{:#?}", outcome.report.errors);
    let form = outcome.form.expect("valid form");

    assert_eq!(form.title_in(Language::ZhCn), Some("每日症状日记"));
    assert_eq!(form.title_in(Language::En), Some("Daily symptom diary"));
    assert_eq!(form.declared_version.as_deref(), Some("1.2"));
    assert_eq!(form.items.len(), 17);
    assert_eq!(form.all_items().count(), 20);
    assert_eq!(form.rules[0].key, "strong-pain-described");
    assert_eq!(form.expressions[0].kind, ExpressionKind::Variable);
}

#[test]
fn symptom_diary_every_type_present() {
    let form = native(&local_fixture("symptom-diary.toml")).form.expect("valid form");
    let all_types = [
        ItemType::Boolean,
        ItemType::Integer,
        ItemType::Decimal,
        ItemType::String,
        ItemType::Text,
        ItemType::Date,
        ItemType::DateTime,
        ItemType::Time,
        ItemType::Choice,
        ItemType::OpenChoice,
        ItemType::Quantity,
        ItemType::Display,
        ItemType::Group,
    ];
    for item_type in all_types {
        assert!(form.all_items().any(|item| item.item_type == item_type), "no {item_type:?} item");
    }
}

#[test]
fn symptom_diary_constraints_compiled() {
    let form = native(&local_fixture("symptom-diary.toml")).form.expect("valid form");

    let pain = form.item("pain").expect("pain");
    assert!(pain.required);
    assert_eq!(pain.constraints.min, Some(Bound::Integer(0)));
    assert_eq!(pain.text_in(Language::ZhCn), Some("您现在的疼痛程度如何（0 = 无痛，10 = 最痛）？"));

    let mood = form.item("mood").expect("mood");
    assert_eq!(mood.options[1].ordinal, Some(Decimal::from(1)));
    assert!(mood.options[1].initial_selected);
    assert_eq!(mood.options[2].display_zh_cn.as_deref(), Some("差"));

    let temperature = form.item("temperature").expect("temperature");
    assert_eq!(temperature.constraints.min, Some(Bound::Decimal(Decimal::from(34))));
    assert_eq!(temperature.constraints.max_decimal_places, Some(1));

    let symptoms = form.item("symptoms").expect("symptoms");
    assert!(symptoms.repeats);
    assert_eq!((symptoms.max_occurs, symptoms.constraints.max_length), (Some(5), Some(200)));

    let severity = form.item("nausea_severity").expect("nausea_severity");
    assert_eq!(severity.enable_when[0].operator, EnableWhenOperator::Equal);
    assert_eq!(severity.enable_when[0].answer_kind, "answerCoding");
    assert_eq!(
        severity.enable_when[0].answer,
        json!({ "code": "nausea", "system": "https://example.org/epro/symptom" })
    );
    assert_eq!(severity.options[0].value, OptionValue::Integer(1));

    let bedtime = form.item("bedtime").expect("bedtime");
    assert_eq!(bedtime.constraints.max.as_ref().map(ToString::to_string).as_deref(), Some("23:59:59"));
    let onset = form.item("onset").expect("onset");
    assert_eq!(onset.constraints.min.as_ref().map(ToString::to_string).as_deref(), Some("2020-01-01"));

    let device = form.item("device_id").expect("device_id");
    assert!(device.hidden);
    assert!(device.read_only);
    assert!(device.constraints.regex.as_ref().is_some_and(|pattern| pattern.matches("AB-1234")));

    assert!(form.item("wellbeing_score").expect("score").is_calculated());
    assert_eq!(
        form.item("country").expect("country").answer_value_set.as_deref(),
        Some("http://hl7.org/fhir/ValueSet/iso3166-1-2")
    );
    let dose = form.item("meds.dose").expect("dose");
    assert_eq!(dose.units[0].code.as_deref(), Some("mg"));
}

#[test]
fn symptom_diary_report_lists_kept_rules() {
    let report = native(&local_fixture("symptom-diary.toml")).report;
    let paths: Vec<&str> = report.not_evaluated.iter().map(|notice| notice.path.as_str()).collect();
    assert_eq!(paths, ["items[11].answer_value_set", "items[15].items[2].expressions[0]"]);
    let supported = report.supported.join("\n");
    for line in [
        "1 FHIRPath variable evaluated",
        "1 calculated item computed on the server",
        "1 enableWhenExpression evaluated as skip logic",
        "1 rule checked",
    ] {
        assert!(supported.contains(line), "{line} not in {supported}");
    }
    assert!(!paths.iter().any(|path| path.contains("enable_")), "skip logic is evaluated: {paths:?}");
    assert!(report.supported.contains(&"enableWhen (evaluated on every submission): 1 item".to_owned()));
}

#[test]
fn documentation_example_matches_fixture() {
    let documentation = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/NATIVE_FORMAT.md"))
        .expect("NATIVE_FORMAT.md is readable");
    let start = documentation.find("```toml\n").expect("the document has a TOML example") + "```toml\n".len();
    let length = documentation[start..].find("```").expect("the example block is closed");
    assert_eq!(&documentation[start..start + length], local_fixture("symptom-diary.toml"));
}

#[test]
fn unknown_keys_rejected_with_path() {
    let text = r#"
titel = "Typo"

[[items]]
link_id = "a"
type = "string"
max_lenght = 5

[[items]]
link_id = "g"
type = "group"

  [[items.items]]
  link_id = "g.a"
  type = "integer"
  bogus = 1
  options = [{ value = 1, colour = "red" }]
"#;
    let outcome = native(text);
    assert!(outcome.form.is_none());
    assert_eq!(
        error_paths(&outcome.report),
        [
            ("titel", "unknown key \"titel\""),
            ("items[0].max_lenght", "unknown key \"max_lenght\""),
            ("items[1].items[0].bogus", "unknown key \"bogus\""),
            ("items[1].items[0].options[0].colour", "unknown key \"colour\""),
        ]
    );
}

#[test]
fn syntax_error_has_line_and_column() {
    let text = "title = \"Diary\"\n[[items]]\nlink_id = \"a\"\ntype = = \"string\"\n";
    let outcome = native(text);
    assert_eq!(outcome.report.errors.len(), 1);
    let error = &outcome.report.errors[0];
    assert_eq!((error.line, error.column), (Some(4), Some(8)));
    assert!(error.message.starts_with("invalid TOML"), "{}", error.message);
}

#[test]
fn syntax_error_column_counts_characters() {
    let text = "title = { en = \"日记\", zh-CN = }\n";
    let error = &native(text).report.errors[0];
    assert_eq!(error.line, Some(1));
    assert_eq!(error.column, Some(30));
}

#[test]
fn semantic_errors_all_collected() {
    let text = r#"
[[items]]
link_id = "n"
type = "integer"
min = 10
max = 1

[[items]]
link_id = "n"
type = "decimal"
min = "low"

[[items]]
link_id = "c"
type = "choice"

[[items]]
link_id = "g"
type = "group"

[[items]]
link_id = "r"
type = "string"
regex = "(["

[[items]]
link_id = "u"
type = "attachment"

[[items]]
link_id = "w"
type = "string"
enable_when = [{ question = "ghost", operator = "=", answer = "x" }]

[[items]]
link_id = "o"
type = "integer"
options = [{ value = "text" }, { code = "a", value = 1 }]

[[items]]
type = "string"
required = "yes"
"#;
    let outcome = native(text);
    let expected = [
        ("items[0].min", "minimum 10 is greater than maximum 1"),
        ("items[1]", "duplicate linkId \"n\""),
        ("items[1].min", "must be a number for an item of type decimal"),
        ("items[2]", "choice item has no options and no answer_value_set"),
        ("items[3]", "group has no child items"),
        ("items[4].regex", "invalid regex"),
        ("items[5].type", "item type \"attachment\" is not supported"),
        ("items[6].enable_when[0]", "unknown linkId \"ghost\""),
        ("items[7].options[1]", "option has both code and value"),
        ("items[7].options[0]", "does not fit an item of type integer"),
        ("items[8]", "item has no link_id"),
    ];
    for (path, fragment) in expected {
        let found = outcome.report.errors.iter().any(|notice| notice.path == path && notice.message.contains(fragment));
        assert!(found, "missing error {path}: {fragment}\n{:#?}", error_paths(&outcome.report));
    }
    assert_eq!(outcome.report.errors.len(), expected.len(), "{:#?}", error_paths(&outcome.report));
}

#[test]
fn form_without_items_rejected() {
    let outcome = native("title = \"Empty\"\n");
    assert_eq!(error_paths(&outcome.report), [("items", "the form has no items")]);
}

#[test]
fn date_time_bound_needs_offset() {
    let text = "[[items]]\nlink_id = \"t\"\ntype = \"dateTime\"\nmin = 2024-01-01T10:00:00\n";
    let outcome = native(text);
    assert_eq!(
        error_paths(&outcome.report),
        [("items[0].min", "\"2024-01-01T10:00:00\" has a time but no UTC offset")]
    );
}

#[test]
fn non_repeating_max_occurs_ignored() {
    let text = "[[items]]\nlink_id = \"a\"\ntype = \"string\"\nmax_occurs = 3\n";
    let outcome = native(text);
    assert!(outcome.report.is_valid());
    assert_eq!(outcome.report.ignored[0].path, "items[0]");
    assert!(outcome.report.ignored[0].message.contains("does not repeat"));
}

#[test]
fn plain_string_text_is_default_language() {
    let form = crate::common::form("[[items]]\nlink_id = \"a\"\ntype = \"string\"\ntext = \"Name\"\n");
    assert_eq!(form.items[0].text.as_deref(), Some("Name"));
    assert_eq!(form.items[0].text_in(Language::ZhCn), Some("Name"));
}

#[test]
fn chinese_only_text_used_for_both() {
    let form = crate::common::form("[[items]]\nlink_id = \"a\"\ntype = \"string\"\ntext = { zh-CN = \"姓名\" }\n");
    assert_eq!(form.items[0].text_in(Language::En), Some("姓名"));
    assert_eq!(form.items[0].text_zh_cn.as_deref(), Some("姓名"));
}

#[test]
fn format_detection_helper_loads_toml() {
    let outcome = load("[[items]]\nlink_id = \"a\"\ntype = \"boolean\"\n");
    assert!(outcome.report.is_valid());
}
