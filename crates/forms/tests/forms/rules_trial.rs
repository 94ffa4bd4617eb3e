//! Scores, alerts and rule messages declared in trial files, and their
//! attachment to forms.

use epro_forms::{Problem, Trial, attach_trial_rules, check_fhir_items, check_native, parse_trial_file};
use serde_json::json;

use crate::common::{form, real_form};

const DIARY: &str = r#"
[[items]]
link_id = "pain"
type = "integer"

[[items]]
link_id = "mood"
type = "choice"
options = [{ code = "good", ordinal = 0 }, { code = "poor", ordinal = 2 }]
"#;

fn trial_text(entry: &str) -> String {
    format!(
        "id = \"t\"\ntitle = {{ en = \"T\", zh-CN = \"试验\" }}\n\n[[forms]]\nid = \"diary\"\nversion = \"1\"\nfile = \"diary.toml\"\n{entry}"
    )
}

const ENTRY: &str = r#"
  [[forms.scores]]
  id = "burden"
  expression = "answers['pain'] + ordinal('mood')"

  [[forms.alerts]]
  id = "high-burden"
  when = "score('burden') >= 10"
  severity = "medium"
  message = { en = "Symptom burden is high.", zh-CN = "症状负担较重。" }
"#;

#[test]
fn trial_scores_and_alerts_parse() {
    let file = parse_trial_file(&trial_text(ENTRY)).expect("valid trial file");
    let entry = &file.forms[0];
    assert_eq!(entry.scores[0].id, "burden");
    assert_eq!(entry.scores[0].path, "forms[0].scores[0]");
    assert_eq!(entry.alerts[0].severity, "medium");
    assert_eq!(entry.alerts[0].message.zh_cn, "症状负担较重。");
}

#[test]
fn trial_score_feeds_alert() {
    let file = parse_trial_file(&trial_text(ENTRY)).expect("valid trial file");
    let trial = Trial::from_file(file, vec![form(DIARY)]).expect("scores and alerts compile");
    let published = trial.form("diary", None).expect("diary is published");

    let checked = check_native(&published.form, &json!({ "pain": 8, "mood": "poor" }), "/answers");
    assert_eq!(checked.scores[0].name, "burden");
    assert_eq!(checked.scores[0].value.map(|value| value.to_string()).as_deref(), Some("10"));
    assert_eq!(checked.alerts.len(), 1);
    assert_eq!(checked.alerts[0].rule, "high-burden");
    assert_eq!(checked.alerts[0].items, ["burden"]);

    let checked = check_native(&published.form, &json!({ "pain": 7, "mood": "poor" }), "/answers");
    assert!(checked.alerts.is_empty());
    let checked = check_native(&published.form, &json!({ "mood": "poor" }), "/answers");
    assert_eq!(checked.scores[0].value, None);
    assert!(checked.alerts.is_empty());
}

#[test]
fn trial_alert_message_found_by_rule() {
    let file = parse_trial_file(&trial_text(ENTRY)).expect("valid trial file");
    let trial = Trial::from_file(file, vec![form(DIARY)]).expect("scores and alerts compile");
    let published = trial.form("diary", None).expect("diary is published");

    let message = published.form.alert_message("high-burden").expect("the trial attached this alert");

    assert_eq!(message.en, "Symptom burden is high.");
    assert_eq!(message.zh_cn, "症状负担较重。");
    assert!(published.form.alert_message("no-such-rule").is_none());
}

/// Scores are reported in trial-file order even when one is computed from
/// a later one.
#[test]
fn trial_scores_keep_file_order() {
    let entry = "[[forms.scores]]\nid = \"double\"\nexpression = \"score('base') * 2\"\n\
                 [[forms.scores]]\nid = \"base\"\nexpression = \"answers['pain'] + 1\"\n";
    let file = parse_trial_file(&trial_text(entry)).expect("valid trial file");
    let trial = Trial::from_file(file, vec![form(DIARY)]).expect("scores compile");
    let published = trial.form("diary", None).expect("diary is published");

    let checked = check_native(&published.form, &json!({ "pain": 4 }), "/answers");

    let scores: Vec<(&str, Option<String>)> =
        checked.scores.iter().map(|score| (score.name.as_str(), score.value.map(|value| value.to_string()))).collect();
    assert_eq!(scores, [("double", Some("10".to_owned())), ("base", Some("5".to_owned()))]);
}

#[test]
fn trial_entry_errors_have_key_paths() {
    let cases = [
        ("[[forms.scores]]\nid = \"s\"\n", "forms[0].scores[0]: expression is missing"),
        (
            "[[forms.alerts]]\nid = \"a\"\nwhen = \"true\"\nseverity = \"urgent\"\nmessage = { en = \"x\", zh-CN = \"y\" }\n",
            "forms[0].alerts[0].severity: \"urgent\" is not one of high, medium, low",
        ),
        ("[[forms.alerts]]\nid = \"a\"\nwhen = \"true\"\nseverity = \"low\"\n", "forms[0].alerts[0].message"),
        ("[[forms.messages]]\nrule = \"r\"\n", "forms[0].messages[0]: zh-CN is missing"),
        ("[[forms.scores]]\nid = \"s\"\nexpression = \"1\"\nweight = 2\n", "forms[0].scores[0].weight: unknown key"),
    ];
    for (entry, expected) in cases {
        let errors = parse_trial_file(&trial_text(entry)).expect_err(entry);
        let lines: Vec<String> = errors.iter().map(|notice| format!("{}: {}", notice.path, notice.message)).collect();
        assert!(lines.iter().any(|line| line.contains(expected)), "{entry}: {lines:#?}");
    }
}

#[test]
fn attach_rejects_bad_expressions() {
    let cases = [
        (
            "[[forms.scores]]\nid = \"s\"\nexpression = \"1\"\n[[forms.scores]]\nid = \"s\"\nexpression = \"2\"\n",
            "forms[0].scores[1].id",
            "already another score",
        ),
        (
            "[[forms.scores]]\nid = \"s\"\nexpression = \"answers['nope']\"\n",
            "forms[0].scores[0].expression",
            "unknown linkId",
        ),
        (
            "[[forms.alerts]]\nid = \"a\"\nwhen = \"score('missing') > 1\"\nseverity = \"low\"\nmessage = { en = \"x\", zh-CN = \"y\" }\n",
            "forms[0].alerts[0].when",
            "names no computed item",
        ),
        ("[[forms.messages]]\nrule = \"r\"\nzh-CN = \"规则\"\n", "forms[0].messages[0].rule", "no rule with key \"r\""),
        (
            "[[forms.scores]]\nid = \"a\"\nexpression = \"score('b')\"\n[[forms.scores]]\nid = \"b\"\nexpression = \"score('a')\"\n",
            "forms[0].scores[0].expression",
            "cycle: score \"a\" → score \"b\" → score \"a\"",
        ),
    ];
    for (entry, path, expected) in cases {
        let file = parse_trial_file(&trial_text(entry)).expect("the entry parses");
        let mut diary = form(DIARY);
        let errors = attach_trial_rules(&mut diary, &file.forms[0]).expect_err(entry);
        let found = errors.iter().any(|notice| notice.path == path && notice.message.contains(expected));
        assert!(found, "{entry}: {errors:#?}");
    }
}

/// A score id that is also the linkId of a computed item is rejected.
#[test]
fn attach_rejects_score_named_like_computed_item() {
    let file = parse_trial_file(&trial_text("[[forms.scores]]\nid = \"total\"\nexpression = \"1\"\n")).expect("parses");
    let mut with_total =
        form(&format!("{DIARY}\n[[items]]\nlink_id = \"total\"\ntype = \"decimal\"\ncalculated = \"1\"\n"));
    let errors = attach_trial_rules(&mut with_total, &file.forms[0]).expect_err("the id is taken");
    assert_eq!(errors[0].path, "forms[0].scores[0].id");
    assert!(errors[0].message.contains("already a computed item"), "{errors:#?}");
}

#[test]
fn trial_message_translates_fhir_rule() {
    let entry = "[[forms.messages]]\nrule = \"min-max-check\"\nzh-CN = \"最小值不得大于最大值。\"\n";
    let file = parse_trial_file(&trial_text(entry)).expect("valid trial file");
    let mut constrained = real_form("lforms__q-with-targetConstraint.json");
    attach_trial_rules(&mut constrained, &file.forms[0]).expect("the rule exists");

    let items = json!([{ "linkId": "1", "item": [
        { "linkId": "1.1", "answer": [{ "valueInteger": 5 }] },
        { "linkId": "1.2", "answer": [{ "valueInteger": 3 }] }
    ] }]);
    let checked = check_fhir_items(&constrained, &items, "/item");
    let Problem::RuleViolated { message, .. } = &checked.findings[0].problem else {
        panic!("expected rule_violated: {:#?}", checked.findings);
    };
    assert_eq!(message.zh_cn, "最小值不得大于最大值。");
}
