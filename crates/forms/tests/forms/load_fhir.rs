//! Import of the real FHIR fixtures, and the errors and notices of the
//! Questionnaire importer.

use epro_forms::{Bound, ExpressionKind, FormFormat, ItemType, Language, LoadReport, OptionValue, load_form};
use rust_decimal::Decimal;

use crate::common::{load, real_fixture, real_form};

/// Every Questionnaire in `fixtures/real/`. The malformed file and the
/// QuestionnaireResponse files are tested separately.
const QUESTIONNAIRES: &[&str] = &[
    "hl7-sdc__Questionnaire-questionnaire-sdc-profile-example-PHQ9.json",
    "lforms__enableWhen-test.R4.json",
    "lforms__hidden-item-questionnaire.R4.json",
    "lforms__phq9.json",
    "lforms__q-with-minOccurs-maxOccurs.json",
    "lforms__q-with-targetConstraint.json",
    "lforms__weightHeightQuestionnaire.json",
    "rkof__DateTimeExample.json",
    "rkof__GAD-7.json",
    "rkof__NumberExample.json",
    "rkof__SliderExample.json",
];

const RESPONSES: &[&str] = &[
    "hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json",
    "lforms__hidden-item-questionnaire-response.R4.json",
    "lforms__qr-with-repeating-group-exceed-maxOccurs.json",
];

fn messages(notices: &[epro_forms::Notice]) -> Vec<String> {
    notices.iter().map(|notice| format!("{}: {}", notice.path, notice.message)).collect()
}

fn has_error(report: &LoadReport, path: &str, fragment: &str) -> bool {
    report.errors.iter().any(|notice| notice.path == path && notice.message.contains(fragment))
}

fn ordinal(value: i64) -> Option<Decimal> {
    Some(Decimal::from(value))
}

#[test]
fn real_questionnaires_all_load() {
    for name in QUESTIONNAIRES {
        let outcome = load_form(&real_fixture(name), FormFormat::FhirJson);
        assert!(outcome.report.is_valid(), "{name}: {:#?}", outcome.report.errors);
        assert!(outcome.form.is_some(), "{name} has no form");
        assert!(!outcome.report.supported.is_empty(), "{name} reports no supported features");
    }
}

#[test]
fn real_responses_rejected_as_forms() {
    for name in RESPONSES {
        let outcome = load_form(&real_fixture(name), FormFormat::FhirJson);
        assert!(outcome.form.is_none(), "{name} loaded as a form");
        let expected = "resourceType is \"QuestionnaireResponse\", expected \"Questionnaire\"";
        assert!(has_error(&outcome.report, "$.resourceType", expected), "{name}: {:#?}", outcome.report.errors);
    }
}

#[test]
fn trailing_comma_fixture_reports_position() {
    let outcome = load_form(&real_fixture("rkof__SkipLogicExample.invalid.json"), FormFormat::FhirJson);

    assert!(outcome.form.is_none());
    assert_eq!(outcome.report.errors.len(), 1, "{:#?}", outcome.report.errors);
    let error = &outcome.report.errors[0];
    assert_eq!(error.line, Some(82));
    assert_eq!(error.column, Some(7));
    assert_eq!(error.message, "invalid JSON: trailing comma");
}

#[test]
fn lforms_phq9_items_and_ordinals() {
    let form = real_form("lforms__phq9.json");

    assert_eq!(form.items.len(), 11);
    assert_eq!(form.title.as_deref(), Some("PHQ-9 quick depression assessment panel"));
    let choices: Vec<_> = form.items.iter().filter(|item| item.item_type == ItemType::Choice).collect();
    assert_eq!(choices.len(), 10);
    for item in &choices {
        assert_eq!(item.options.len(), 4, "options of {}", item.link_id);
    }
    for item in &form.items[..9] {
        let ordinals: Vec<_> = item.options.iter().map(|option| option.ordinal).collect();
        assert_eq!(ordinals, vec![ordinal(0), ordinal(1), ordinal(2), ordinal(3)], "{}", item.link_id);
    }
    let first = &form.items[0].options[0].value;
    let expected = OptionValue::Coding {
        system: Some("http://loinc.org".to_owned()),
        code: "LA6568-5".to_owned(),
        display: Some("Not at all".to_owned()),
    };
    assert_eq!(first, &expected);
}

#[test]
fn lforms_phq9_item9_not_required() {
    let form = real_form("lforms__phq9.json");
    let item9 = form.item("/44260-8").expect("item 9 exists");
    assert!(!item9.required);
    let required = form.items.iter().filter(|item| item.required).count();
    assert_eq!(required, 8);
    assert_eq!(form.items[0].min_occurs, Some(1));
}

#[test]
fn lforms_phq9_total_is_calculated() {
    let form = real_form("lforms__phq9.json");
    let total = form.item("/44261-6").expect("total exists");
    assert_eq!(total.item_type, ItemType::Decimal);
    assert!(total.is_calculated());
    let variables = total.expressions.iter().filter(|expression| expression.kind == ExpressionKind::Variable);
    assert_eq!(variables.count(), 11);
}

#[test]
fn lforms_phq9_presentation_extensions_ignored() {
    let outcome = load(&real_fixture("lforms__phq9.json"));
    let ignored = messages(&outcome.report.ignored);
    let prefixes = ignored.iter().filter(|line| line.contains("questionnaire-optionPrefix")).count();
    assert_eq!(prefixes, 36);
    assert!(ignored.iter().any(|line| line.starts_with("$.item[0].extension[1]: questionnaire-itemControl")));
    assert!(ignored.iter().any(|line| line.contains("observationLinkPeriod")));
    assert!(ignored.iter().any(|line| line.contains("questionnaire-displayCategory")));
}

#[test]
fn gad7_options_from_contained_value_set() {
    let form = real_form("rkof__GAD-7.json");

    assert_eq!(form.items.len(), 1);
    let group = &form.items[0];
    assert_eq!(group.item_type, ItemType::Group);
    assert!(group.required);
    assert_eq!(group.children.len(), 7);
    for item in &group.children {
        assert_eq!(item.item_type, ItemType::Choice);
        assert!(item.required);
        let codes: Vec<String> = item.options.iter().map(|option| option.value.as_text()).collect();
        assert_eq!(codes, ["Not-at-all", "Several-days", "More than half the days", "Nearly every day"]);
        let ordinals: Vec<_> = item.options.iter().map(|option| option.ordinal).collect();
        assert_eq!(ordinals, vec![ordinal(0), ordinal(1), ordinal(2), ordinal(3)]);
        let OptionValue::Coding { system, .. } = &item.options[0].value else {
            panic!("GAD-7 options are codings");
        };
        assert_eq!(system.as_deref(), Some("http://biodesign.stanford.edu/fhir/uv/sdc/CodeSystem/CSGAD7"));
    }
}

#[test]
fn sdc_phq9_value_set_and_score() {
    let outcome = load(&real_fixture("hl7-sdc__Questionnaire-questionnaire-sdc-profile-example-PHQ9.json"));
    let form = outcome.form.expect("valid form");

    assert_eq!(form.declared_version.as_deref(), Some("2.8.0"));
    let group = &form.items[0];
    assert_eq!(group.children.len(), 10);
    for item in &group.children[..9] {
        assert_eq!(item.options.len(), 4, "{}", item.link_id);
    }
    let score = form.item("H1/TS").expect("score item exists");
    assert_eq!(score.item_type, ItemType::Quantity);
    assert_eq!(score.expressions[0].kind, ExpressionKind::CalculatedExpression);
    assert_eq!(score.expressions[0].expression, "answers().sum(value.ordinal())");
    assert_eq!(score.expressions[0].json_path, "$.item[0].item[9].extension[0]");
    let supported = outcome.report.supported.join("\n");
    assert!(supported.contains("answerValueSet #VSPHQ9"), "{supported}");
    assert!(supported.contains("1 calculated item computed on the server"), "{supported}");
    assert!(outcome.report.not_evaluated.is_empty(), "{:#?}", outcome.report.not_evaluated);
}

#[test]
fn number_example_ranges() {
    let form = real_form("rkof__NumberExample.json");

    let integer = &form.items[0];
    assert_eq!(integer.constraints.min, Some(Bound::Integer(1)));
    assert_eq!(integer.constraints.max, Some(Bound::Integer(100)));
    let decimal = &form.items[1];
    assert_eq!(decimal.constraints.min, Some(Bound::Decimal(Decimal::from(1))));
    assert_eq!(decimal.constraints.max, Some(Bound::Decimal(Decimal::from(100))));
    assert_eq!(decimal.constraints.max_decimal_places, Some(3));
    let quantity = &form.items[2];
    assert_eq!(quantity.item_type, ItemType::Quantity);
    assert_eq!(quantity.constraints.min, Some(Bound::Decimal(Decimal::from(1))));
    assert_eq!(quantity.constraints.max, Some(Bound::Decimal(Decimal::from(100))));
    assert_eq!(quantity.units.len(), 1);
    assert_eq!(quantity.units[0].code.as_deref(), Some("g"));
}

#[test]
fn date_time_example_date_range() {
    let form = real_form("rkof__DateTimeExample.json");

    let types: Vec<ItemType> = form.items.iter().map(|item| item.item_type).collect();
    assert_eq!(types, [ItemType::Date, ItemType::DateTime, ItemType::Time]);
    let min = form.items[0].constraints.min.as_ref().expect("date has a minimum");
    let max = form.items[0].constraints.max.as_ref().expect("date has a maximum");
    assert_eq!(min.to_string(), "2001-01-01");
    assert_eq!(max.to_string(), "2024-01-01");
    assert!(matches!(min, Bound::Date(_)));
}

#[test]
fn enable_when_test_reports_each_condition_list() {
    let outcome = load(&real_fixture("lforms__enableWhen-test.R4.json"));
    let form = outcome.form.expect("valid form");

    let enable_when_notices =
        outcome.report.not_evaluated.iter().filter(|notice| notice.path.contains(".enableWhen")).count();
    assert_eq!(enable_when_notices, 0);
    assert!(
        outcome.report.supported.contains(&"enableWhen (evaluated on every submission): 55 items".to_owned()),
        "supported: {:?}",
        outcome.report.supported
    );
    let conditions: usize = form.all_items().map(|item| item.enable_when.len()).sum();
    assert_eq!(conditions, 56);
    let expressions = form
        .all_items()
        .flat_map(|item| &item.expressions)
        .filter(|expression| expression.kind == ExpressionKind::EnableWhenExpression)
        .count();
    assert_eq!(expressions, 1);
    let groups = form.all_items().filter(|item| item.item_type == ItemType::Group).count();
    assert_eq!(groups, 14);
}

#[test]
fn enable_when_test_lenient_reads_warned() {
    let outcome = load(&real_fixture("lforms__enableWhen-test.R4.json"));
    let form = outcome.form.expect("valid form");
    assert!(form.item("Q8").expect("Q8 exists").repeats);
    let paths: Vec<&str> = outcome.report.warnings.iter().map(|notice| notice.path.as_str()).collect();
    // The form compares its date and time questions with answerInteger
    // holding a date or time string, which is read as a date or time.
    assert_eq!(
        paths,
        [
            "$.item[7].item[0].repeats",
            "$.item[11].item[3].enableWhen[0].answerInteger",
            "$.item[11].item[4].enableWhen[0].answerInteger",
            "$.item[12].item[3].enableWhen[0].answerInteger",
            "$.item[12].item[4].enableWhen[0].answerInteger",
        ]
    );
    assert!(outcome.report.warnings[1].message.contains("read as a date"));
    assert!(outcome.report.warnings[3].message.contains("read as a time"));
}

#[test]
fn enable_when_test_nothing_not_evaluated() {
    let outcome = load(&real_fixture("lforms__enableWhen-test.R4.json"));
    let messages: Vec<&str> = outcome
        .report
        .not_evaluated
        .iter()
        .filter(|notice| notice.message.contains("enableWhen"))
        .map(|notice| notice.message.as_str())
        .collect();
    assert_eq!(messages, Vec::<&str>::new());
}

#[test]
fn hidden_item_questionnaire_flags() {
    let form = real_form("lforms__hidden-item-questionnaire.R4.json");
    assert!(form.item("CE-HIDDEN").expect("exists").hidden);
    assert!(!form.item("CE-VISIBLE").expect("exists").hidden);
    assert!(form.item("GROUP-HIDDEN").expect("exists").hidden);
    assert!(form.item("GROUP-VISIBLE/CE-HIDDEN").expect("exists").hidden);
    let calculated = form.all_items().filter(|item| item.is_calculated()).count();
    assert_eq!(calculated, 5);
}

#[test]
fn weight_height_units_and_variables() {
    let form = real_form("lforms__weightHeightQuestionnaire.json");
    assert_eq!(form.declared_version.as_deref(), Some("2.56"));
    assert_eq!(form.item("/29463-7").expect("weight").units[0].code.as_deref(), Some("kg"));
    assert_eq!(form.item("/8302-2").expect("height").units[0].code.as_deref(), Some("[in_i]"));
    let names: Vec<_> = form.expressions.iter().filter_map(|expression| expression.name.as_deref()).collect();
    assert_eq!(names, ["weight", "height"]);
}

#[test]
fn target_constraint_read_as_rule() {
    let form = real_form("lforms__q-with-targetConstraint.json");
    let rule = &form.rules[0];
    assert_eq!(rule.key, "min-max-check");
    assert_eq!(rule.severity, epro_forms::Severity::Reject);
    assert!(rule.expression.contains("linkId='1.1'"));
    assert_eq!(rule.message_en, "The minimum value must be less than or equal to the maximum value.");
    assert_eq!(rule.items, ["1.2"]);
    assert_eq!(rule.context.as_deref(), Some("1"));
    assert!(form.items[0].expressions.is_empty());
}

#[test]
fn min_max_occurs_on_group_and_questions() {
    let form = real_form("lforms__q-with-minOccurs-maxOccurs.json");
    let group = &form.items[0];
    assert!(group.repeats);
    assert!(group.required);
    assert_eq!((group.min_occurs, group.max_occurs), (Some(2), Some(3)));
    let fruits = form.item("1.1").expect("1.1 exists");
    assert_eq!(fruits.options.len(), 5);
    assert_eq!(fruits.options[0].value, OptionValue::String("Apple".to_owned()));
}

#[test]
fn slider_id_with_space_loads() {
    let outcome = load(&real_fixture("rkof__SliderExample.json"));
    let form = outcome.form.expect("valid form");
    assert_eq!(form.items[0].constraints.max, Some(Bound::Integer(10)));
    let ignored = messages(&outcome.report.ignored);
    assert!(ignored.iter().any(|line| line.contains("questionnaire-sliderStepValue")), "{ignored:?}");
}

const BROKEN: &str = r##"{
  "resourceType": "Questionnaire",
  "contained": [ { "resourceType": "ValueSet", "id": "vs", "compose": { "include": [ { "system": "urn:x", "concept": [ { "code": "a" } ] } ] } } ],
  "item": [
    { "linkId": "dup", "type": "string" },
    { "linkId": "dup", "type": "string" },
    { "type": "string" },
    { "linkId": "weird", "type": "question-mark" },
    { "linkId": "link", "type": "url" },
    { "linkId": "range", "type": "integer", "extension": [
        { "url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 10 },
        { "url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 1 } ] },
    { "linkId": "pattern", "type": "string", "extension": [
        { "url": "http://hl7.org/fhir/StructureDefinition/regex", "valueString": "([a-z" } ] },
    { "linkId": "missing-vs", "type": "choice", "answerValueSet": "#nothere" },
    { "linkId": "bad-option", "type": "integer", "answerOption": [ { "valueDate": "2024-01-01" } ] },
    { "linkId": "empty-group", "type": "group" },
    { "linkId": "both", "type": "choice", "answerValueSet": "#vs", "answerOption": [ { "valueCoding": { "code": "a" } } ] },
    { "linkId": "skip", "type": "string", "enableWhen": [ { "question": "ghost", "operator": "=", "answerString": "x" } ] },
    { "linkId": "operator", "type": "string", "enableWhen": [ { "question": "dup", "operator": "~", "answerString": "x" } ] },
    { "linkId": "modifier", "type": "string", "modifierExtension": [ { "url": "http://example.org/negate", "valueBoolean": true } ] },
    { "linkId": "no-options", "type": "choice" }
  ]
}"##;

#[test]
fn questionnaire_errors_all_collected() {
    let outcome = load(BROKEN);
    let report = &outcome.report;

    assert!(outcome.form.is_none());
    let expected = [
        ("$.item[1]", "duplicate linkId \"dup\""),
        ("$.item[2]", "item has no linkId"),
        ("$.item[3].type", "unknown item type \"question-mark\""),
        ("$.item[4].type", "item type \"url\" is not supported"),
        ("$.item[5]", "minimum 10 is greater than maximum 1"),
        ("$.item[6].extension[0]", "invalid regex"),
        ("$.item[7].answerValueSet", "names no contained ValueSet"),
        ("$.item[8].answerOption[0]", "does not fit an item of type integer"),
        ("$.item[9]", "group has no child items"),
        ("$.item[10]", "both answerValueSet and answerOption"),
        ("$.item[11].enableWhen[0]", "unknown linkId \"ghost\""),
        ("$.item[12].enableWhen[0].operator", "unknown enableWhen operator"),
        ("$.item[13].modifierExtension[0]", "http://example.org/negate"),
        ("$.item[14]", "choice item has no answerOption and no answerValueSet"),
    ];
    for (path, fragment) in expected {
        assert!(has_error(report, path, fragment), "missing error {path}: {fragment}\n{:#?}", messages(&report.errors));
    }
    assert_eq!(report.errors.len(), expected.len(), "{:#?}", messages(&report.errors));
}

#[test]
fn questionnaire_not_an_object_rejected() {
    let outcome = load_form("[1, 2]", FormFormat::FhirJson);
    assert!(has_error(&outcome.report, "$", "must be a JSON object"));
}

#[test]
fn questionnaire_without_items_rejected() {
    let outcome = load(r#"{ "resourceType": "Questionnaire" }"#);
    assert!(has_error(&outcome.report, "$.item", "no items"));
}

#[test]
fn unknown_extension_not_evaluated_with_url() {
    let text = r#"{ "resourceType": "Questionnaire", "item": [ { "linkId": "a", "type": "string",
        "extension": [ { "url": "http://example.org/fhir/custom-rule", "valueString": "x" } ] } ] }"#;
    let outcome = load(text);
    assert!(outcome.report.is_valid());
    let notice = &outcome.report.not_evaluated[0];
    assert_eq!(notice.path, "$.item[0].extension[0]");
    assert!(notice.message.contains("http://example.org/fhir/custom-rule"));
}

#[test]
fn unknown_expression_extension_kept() {
    let text = r#"{ "resourceType": "Questionnaire", "item": [ { "linkId": "a", "type": "integer",
        "extension": [ { "url": "http://example.org/fhir/scoreRule",
          "valueExpression": { "language": "text/fhirpath", "expression": "%a + 1" } } ] } ] }"#;
    let outcome = load(text);
    let form = outcome.form.expect("valid form");
    let expression = &form.items[0].expressions[0];
    assert_eq!(expression.kind, ExpressionKind::Other("http://example.org/fhir/scoreRule".to_owned()));
    assert_eq!(expression.expression, "%a + 1");
    let notice = &outcome.report.not_evaluated[0];
    assert_eq!(notice.path, "$.item[0].extension[0]");
    assert!(notice.message.contains("unknown expression extension http://example.org/fhir/scoreRule"));
}

#[test]
fn external_value_set_not_evaluated() {
    let text = r#"{ "resourceType": "Questionnaire", "item": [ { "linkId": "c", "type": "choice",
        "answerValueSet": "http://loinc.org/vs/LL358-3" } ] }"#;
    let outcome = load(text);
    let form = outcome.form.expect("valid form");
    assert_eq!(form.items[0].answer_value_set.as_deref(), Some("http://loinc.org/vs/LL358-3"));
    let notice = &outcome.report.not_evaluated[0];
    assert_eq!(notice.path, "$.item[0].answerValueSet");
    assert!(notice.message.contains("codes are not checked"));
}

#[test]
fn translation_extension_gives_chinese_text() {
    let text = r#"{ "resourceType": "Questionnaire", "title": "Diary",
      "_title": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/translation",
          "extension": [ { "url": "lang", "valueCode": "zh-CN" }, { "url": "content", "valueString": "日记" } ] } ] },
      "item": [ { "linkId": "a", "type": "string", "text": "Pain",
        "_text": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/translation",
          "extension": [ { "url": "lang", "valueCode": "zh-CN" }, { "url": "content", "valueString": "疼痛" } ] } ] } } ] }"#;
    let form = crate::common::form(text);
    assert_eq!(form.title_in(Language::ZhCn), Some("日记"));
    assert_eq!(form.title_in(Language::En), Some("Diary"));
    assert_eq!(form.items[0].text_in(Language::ZhCn), Some("疼痛"));
    assert_eq!(form.items[0].text_in(Language::En), Some("Pain"));
}

#[test]
fn initial_value_reported_ignored() {
    let text = r#"{ "resourceType": "Questionnaire", "item": [ { "linkId": "a", "type": "boolean",
        "initial": [ { "valueBoolean": true } ] } ] }"#;
    let outcome = load(text);
    assert_eq!(outcome.report.ignored[0].path, "$.item[0].initial");
}

#[test]
fn load_fhir_value_matches_text_loading() {
    let text = real_fixture("rkof__GAD-7.json");
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let from_value = epro_forms::load_fhir_value(&value);
    let from_text = load(&text);
    assert_eq!(from_value.report, from_text.report);
    assert_eq!(from_value.form.map(|form| form.items.len()), Some(1));
}
