//! The expression engine on the real forms of `fixtures/real/` and on the
//! demo trial of `examples/trials/demo/`.

use epro_forms::{
    Checked, Form, FormFormat, Problem, PublishedForm, Severity, Trial, check_fhir_items, check_native, load_form,
    parse_trial_file,
};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::common::{codes, real_fixture, real_form};

/// PHQ-9 questions of the lforms form, in order, and the codes of their
/// options by score (0 to 3).
const PHQ9_QUESTIONS: [&str; 9] =
    ["/44250-9", "/44255-8", "/44259-0", "/44254-1", "/44251-7", "/44258-2", "/44252-5", "/44253-3", "/44260-8"];
const PHQ9_CODES: [&str; 4] = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"];
const PHQ9_TOTAL: &str = "/44261-6";

/// Native answers to the lforms PHQ-9: one score (0 to 3) per question,
/// `None` for a question left unanswered.
fn phq9_answers(scores: [Option<usize>; 9]) -> Value {
    let mut answers = Map::new();
    for (question, score) in PHQ9_QUESTIONS.iter().zip(scores) {
        if let Some(score) = score {
            answers.insert((*question).to_owned(), json!(PHQ9_CODES[score]));
        }
    }
    Value::Object(answers)
}

fn score<'c>(checked: &'c Checked, name: &str) -> &'c epro_forms::Score {
    checked.scores.iter().find(|score| score.name == name).unwrap_or_else(|| panic!("no score {name}"))
}

fn score_text(checked: &Checked, name: &str) -> Option<String> {
    score(checked, name).value.map(|value| value.to_string())
}

fn alert_ids(checked: &Checked) -> Vec<&str> {
    checked.alerts.iter().map(|alert| alert.rule.as_str()).collect()
}

/// Loads the demo trial from `examples/trials/demo/` as the binary does.
fn demo_trial() -> Trial {
    let folder = format!("{}/../../examples/trials/demo", env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(format!("{folder}/{name}")).expect("demo file is readable");
    let file = parse_trial_file(&read("trial.toml")).expect("the demo trial file is valid");
    let forms: Vec<Form> = file
        .forms
        .iter()
        .map(|entry| {
            let outcome = load_form(&read(&entry.file), FormFormat::FhirJson);
            outcome.form.unwrap_or_else(|| panic!("{} loads: {:#?}", entry.file, outcome.report.errors))
        })
        .collect();
    Trial::from_file(file, forms).expect("the demo trial's scores and alerts compile")
}

fn demo_form(form_id: &str) -> PublishedForm {
    demo_trial().form(form_id, None).expect("the demo trial has the form").clone()
}

#[test]
fn lforms_phq9_total_full_answer_set() {
    let form = real_form("lforms__phq9.json");
    let answers = phq9_answers([Some(0), Some(1), Some(2), Some(3), Some(0), Some(1), Some(2), Some(3), Some(1)]);

    let checked = check_native(&form, &answers, "/answers");

    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    assert_eq!(score_text(&checked, PHQ9_TOTAL).as_deref(), Some("13"));
    assert_eq!(score(&checked, PHQ9_TOTAL).sent, None);
}

/// lforms counts an unanswered question as 0 once any question is answered.
#[test]
fn lforms_phq9_total_partial_answer_set() {
    let form = real_form("lforms__phq9.json");
    let answers = phq9_answers([Some(3), None, Some(2), None, None, None, None, None, Some(1)]);

    let checked = check_native(&form, &answers, "/answers");

    // The questions are required, so the submission is rejected, but the
    // total is still computed for the answers given.
    assert!(codes(&checked).iter().all(|(code, _)| *code == "required"), "{:#?}", checked.findings);
    assert_eq!(score_text(&checked, PHQ9_TOTAL).as_deref(), Some("6"));
}

#[test]
fn lforms_phq9_total_none_when_unanswered() {
    let form = real_form("lforms__phq9.json");

    let checked = check_native(&form, &json!({}), "/answers");

    assert_eq!(score(&checked, PHQ9_TOTAL).value, None);
}

#[test]
fn lforms_phq9_sent_total_compared() {
    let form = real_form("lforms__phq9.json");
    let mut answers = phq9_answers([Some(1); 9]);

    answers[PHQ9_TOTAL] = json!(9);
    let checked = check_native(&form, &answers, "/answers");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    assert_eq!(score(&checked, PHQ9_TOTAL).sent, Some(json!(9)));

    answers[PHQ9_TOTAL] = json!(8);
    let checked = check_native(&form, &answers, "/answers");
    assert_eq!(codes(&checked), [("score_mismatch", "/answers/~144261-6".to_owned())]);
}

/// The SDC example response sends a total of 13 where its answers add up
/// to 10: the server's total is 10 and the difference is a data query.
#[test]
fn sdc_phq9_response_total_mismatch() {
    let form = real_form("hl7-sdc__Questionnaire-questionnaire-sdc-profile-example-PHQ9.json");
    let response: Value = serde_json::from_str(&real_fixture(
        "hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json",
    ))
    .expect("fixture is valid JSON");

    let checked = check_fhir_items(&form, &response["item"], "/item");

    let total = score(&checked, "H1/TS");
    assert_eq!(total.value, Some(Decimal::from(10)));
    assert_eq!(total.sent, Some(json!({ "value": 13, "unit": "{score}" })));
    assert_eq!(checked.findings.len(), 1, "{:#?}", checked.findings);
    let finding = &checked.findings[0];
    assert_eq!(finding.link_id, "H1/TS");
    assert_eq!(
        finding.problem,
        Problem::ScoreMismatch { score: "H1/TS".to_owned(), computed: "10".to_owned(), sent: "13".to_owned() }
    );
    assert_eq!(finding.problem.severity(), Severity::Query);
}

/// BMI = weight / (height in inches * 0.0254)^2, rounded to one decimal:
/// 70 / 1.7526^2 = 22.789... = 22.8.
#[test]
fn weight_height_bmi_computed() {
    let form = real_form("lforms__weightHeightQuestionnaire.json");

    let checked = check_native(&form, &json!({ "/29463-7": 70, "/8302-2": 69 }), "/answers");
    assert_eq!(score_text(&checked, "/39156-5").as_deref(), Some("22.8"));

    let checked = check_native(&form, &json!({ "/29463-7": 70 }), "/answers");
    assert_eq!(score(&checked, "/39156-5").value, None);

    let checked = check_native(&form, &json!({ "/29463-7": 70, "/8302-2": 0 }), "/answers");
    assert_eq!(score(&checked, "/39156-5").value, None, "division by zero is empty");
}

fn min_max_items(minimum: i64, maximum: i64) -> Value {
    json!([{ "linkId": "1", "item": [
        { "linkId": "1.1", "answer": [{ "valueInteger": minimum }] },
        { "linkId": "1.2", "answer": [{ "valueInteger": maximum }] }
    ] }])
}

#[test]
fn target_constraint_rejects_inverted_range() {
    let form = real_form("lforms__q-with-targetConstraint.json");

    let checked = check_fhir_items(&form, &min_max_items(5, 3), "/item");

    assert_eq!(codes(&checked), [("rule_violated", "/item/1/1.2".to_owned())]);
    let finding = &checked.findings[0];
    assert_eq!(finding.link_id, "1.2");
    let Problem::RuleViolated { rule, severity, message } = &finding.problem else {
        panic!("expected rule_violated: {finding:#?}");
    };
    assert_eq!(rule, "min-max-check");
    assert_eq!(*severity, Severity::Reject);
    assert_eq!(message.en, "The minimum value must be less than or equal to the maximum value.");
    assert!(message.zh_cn.contains("min-max-check"), "{}", message.zh_cn);
    assert!(message.zh_cn.contains(&message.en), "{}", message.zh_cn);

    let checked = check_fhir_items(&form, &min_max_items(3, 5), "/item");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
}

#[test]
fn hidden_item_copies_computed() {
    let form = real_form("lforms__hidden-item-questionnaire.R4.json");
    let response: Value = serde_json::from_str(&real_fixture("lforms__hidden-item-questionnaire-response.R4.json"))
        .expect("fixture is valid JSON");

    let checked = check_fhir_items(&form, &response["item"], "/item");

    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    let names: Vec<&str> = checked.scores.iter().map(|score| score.name.as_str()).collect();
    assert_eq!(
        names,
        ["CE-HIDDEN", "CE-VISIBLE", "GROUP-VISIBLE/CE-HIDDEN", "GROUP-VISIBLE/CE-VISIBLE", "GROUP-HIDDEN/CE-HIDDEN"]
    );
    assert!(checked.scores.iter().all(|score| score.value == Some(Decimal::from(2))), "{:#?}", checked.scores);

    let checked = check_native(&form, &json!({ "ITEM-VISIBLE": 3, "CE-VISIBLE": 2 }), "/answers");
    assert_eq!(codes(&checked), [("score_mismatch", "/answers/CE-VISIBLE".to_owned())]);
    assert_eq!(score_text(&checked, "GROUP-HIDDEN/CE-HIDDEN").as_deref(), Some("3"));
}

/// `Q10 & Q10b = 'chicken'` enables Q10-ewe.
#[test]
fn enable_when_expression_concatenation() {
    let form = real_form("lforms__enableWhen-test.R4.json");
    let group = |first: &str, second: &str| {
        json!([{ "linkId": "g10", "item": [
            { "linkId": "Q10", "answer": [{ "valueString": first }] },
            { "linkId": "Q10b", "answer": [{ "valueString": second }] },
            { "linkId": "Q10-ewe", "answer": [{ "valueString": "answered" }] }
        ] }])
    };

    let checked = check_fhir_items(&form, &group("chick", "en"), "/item");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);

    let checked = check_fhir_items(&form, &group("chick", "pea"), "/item");
    assert_eq!(codes(&checked), [("answered_while_disabled", "/item/0/item/2/answer/0/valueString".to_owned())]);
}

/// Every real form loads with all its expressions evaluated.
#[test]
fn real_forms_have_no_unevaluated_expressions() {
    let folder = format!("{}/../../fixtures/real", env!("CARGO_MANIFEST_DIR"));
    let mut checked_forms = 0;
    for entry in std::fs::read_dir(&folder).expect("fixtures/real is readable") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let is_questionnaire = name.ends_with(".json") && !name.contains("invalid") && !name.contains("response");
        if !is_questionnaire {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("fixture is readable");
        let value: Value = serde_json::from_str(&text).expect("fixture is valid JSON");
        if value["resourceType"] != "Questionnaire" {
            continue;
        }
        let outcome = load_form(&text, FormFormat::FhirJson);
        assert!(outcome.report.is_valid(), "{name}: {:#?}", outcome.report.errors);
        let expressions: Vec<_> = outcome
            .report
            .not_evaluated
            .iter()
            .filter(|notice| notice.message.contains("Expression") || notice.message.contains("variable"))
            .collect();
        assert!(expressions.is_empty(), "{name}: {expressions:#?}");
        checked_forms += 1;
    }
    assert_eq!(checked_forms, 11);
}

fn gad7_answers(score: usize) -> Value {
    let codes = ["Not-at-all", "Several-days", "More than half the days", "Nearly every day"];
    let group = "a2ae9518-55b5-41cc-928d-00132d1a3c1e";
    let form = demo_form("gad7").form;
    let questions = &form.item(group).expect("GAD-7 group").children;
    let answers: Map<String, Value> =
        questions.iter().map(|question| (question.link_id.clone(), json!(codes[score]))).collect();
    json!({ group: answers })
}

#[test]
fn gad7_total_and_severe_alert() {
    let published = demo_form("gad7");

    let checked = check_native(&published.form, &gad7_answers(3), "/answers");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    assert_eq!(score_text(&checked, "total").as_deref(), Some("21"));
    assert_eq!(alert_ids(&checked), ["gad7-severe"]);
    let alert = &checked.alerts[0];
    assert_eq!(alert.severity, "high");
    assert_eq!(alert.items, ["total"]);
    assert!(alert.message.zh_cn.contains("GAD-7"));

    let checked = check_native(&published.form, &gad7_answers(2), "/answers");
    assert_eq!(score_text(&checked, "total").as_deref(), Some("14"));
    assert!(checked.alerts.is_empty(), "{:#?}", checked.alerts);
}

#[test]
fn phq9_alerts_fire_at_thresholds() {
    let published = demo_form("phq9");
    let run = |scores: [Option<usize>; 9]| check_native(&published.form, &phq9_answers(scores), "/answers");

    let item9_only = run([Some(0), Some(0), Some(0), Some(0), Some(0), Some(0), Some(0), Some(0), Some(1)]);
    assert_eq!(alert_ids(&item9_only), ["phq9-item9-positive"]);
    assert_eq!(item9_only.alerts[0].items, ["/44260-8"]);

    let item9_zero = run([Some(3), Some(3), Some(3), Some(3), Some(3), Some(3), Some(1), Some(0), Some(0)]);
    assert_eq!(score_text(&item9_zero, PHQ9_TOTAL).as_deref(), Some("19"));
    assert!(item9_zero.alerts.is_empty(), "{:#?}", item9_zero.alerts);

    let severe = run([Some(3), Some(3), Some(3), Some(3), Some(3), Some(3), Some(2), Some(0), Some(0)]);
    assert_eq!(score_text(&severe, PHQ9_TOTAL).as_deref(), Some("20"));
    assert_eq!(alert_ids(&severe), ["phq9-severe"]);

    let both = run([Some(3); 9]);
    assert_eq!(alert_ids(&both), ["phq9-item9-positive", "phq9-severe"]);

    let none = run([None; 9]);
    assert!(none.alerts.is_empty(), "{:#?}", none.alerts);
}
