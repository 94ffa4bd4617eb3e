//! Load-time checks of skip logic: what a condition may name, answer types
//! that fit the question, operators that fit the answer, cycles and limits.

use epro_forms::Notice;
use serde_json::{Value, json};

use crate::common::load;

/// Builds a Questionnaire from its items.
fn questionnaire(items: Value) -> String {
    json!({ "resourceType": "Questionnaire", "status": "draft", "item": items }).to_string()
}

/// Builds a Questionnaire with the question `q` and an item `d` with one
/// condition on `q`.
fn one_condition(question: Value, condition: Value) -> String {
    let mut question = question;
    question["linkId"] = json!("q");
    let mut condition = condition;
    condition["question"] = json!("q");
    questionnaire(json!([question, { "linkId": "d", "type": "string", "enableWhen": [condition] }]))
}

fn pairs(notices: &[Notice]) -> Vec<(&str, &str)> {
    notices.iter().map(|notice| (notice.path.as_str(), notice.message.as_str())).collect()
}

/// Asserts that loading fails with exactly one error, at `path`, whose
/// message contains `message`.
fn assert_one_error(text: &str, path: &str, message: &str) {
    let outcome = load(text);
    let errors = pairs(&outcome.report.errors);
    assert_eq!(errors.len(), 1, "errors: {errors:#?}");
    assert_eq!(errors[0].0, path, "errors: {errors:#?}");
    assert!(errors[0].1.contains(message), "expected \"{message}\" in {errors:#?}");
    assert!(outcome.form.is_none());
}

fn assert_loads(text: &str) -> Vec<(String, String)> {
    let outcome = load(text);
    assert!(outcome.report.errors.is_empty(), "errors: {:#?}", outcome.report.errors);
    outcome.report.warnings.iter().map(|notice| (notice.path.clone(), notice.message.clone())).collect()
}

#[test]
fn unknown_question_still_rejected() {
    let text = questionnaire(json!([
        { "linkId": "d", "type": "string", "enableWhen": [{ "question": "ghost", "operator": "exists", "answerBoolean": true }] }
    ]));
    assert_one_error(&text, "$.item[0].enableWhen[0]", "unknown linkId \"ghost\"");
}

#[test]
fn condition_on_itself_rejected() {
    let text = questionnaire(json!([
        { "linkId": "d", "type": "string", "enableWhen": [{ "question": "d", "operator": "exists", "answerBoolean": true }] }
    ]));
    assert_one_error(&text, "$.item[0].enableWhen[0]", "enableWhen refers to the item itself");
}

#[test]
fn condition_on_group_or_display_rejected() {
    let group = one_condition(
        json!({ "type": "group", "item": [{ "linkId": "q.a", "type": "string" }] }),
        json!({ "operator": "exists", "answerBoolean": true }),
    );
    assert_one_error(&group, "$.item[1].enableWhen[0]", "refers to \"q\", a group item");
    let display = one_condition(json!({ "type": "display" }), json!({ "operator": "exists", "answerBoolean": true }));
    assert_one_error(&display, "$.item[1].enableWhen[0]", "refers to \"q\", a display item");
}

#[test]
fn answer_type_misfit_rejected() {
    let cases = [
        (
            json!({ "type": "integer" }),
            "answerCoding",
            json!({ "code": "a" }),
            "a Coding answer does not fit question \"q\" of type integer; use an integer or a decimal",
        ),
        (
            json!({ "type": "boolean" }),
            "answerString",
            json!("true"),
            "a string answer does not fit question \"q\" of type boolean; use a boolean",
        ),
        (json!({ "type": "string" }), "answerInteger", json!(5), "use a string"),
        (json!({ "type": "date" }), "answerString", json!("yesterday"), "use a date"),
        (json!({ "type": "quantity" }), "answerDecimal", json!(5), "use a Quantity"),
        (
            json!({ "type": "choice", "answerOption": [{ "valueCoding": { "code": "a" } }] }),
            "answerString",
            json!("a"),
            "use a Coding",
        ),
    ];
    for (question, kind, answer, message) in cases {
        let mut condition = json!({ "operator": "=" });
        condition[kind] = answer;
        let text = one_condition(question, condition);
        assert_one_error(&text, &format!("$.item[1].enableWhen[0].{kind}"), message);
    }
}

#[test]
fn integer_and_decimal_answers_mix() {
    for (question, kind, answer) in [
        (json!({ "type": "integer" }), "answerDecimal", json!(2.5)),
        (json!({ "type": "decimal" }), "answerInteger", json!(2)),
        (json!({ "type": "dateTime" }), "answerDate", json!("2024-01")),
        (
            json!({ "type": "open-choice", "answerOption": [{ "valueCoding": { "code": "a" } }] }),
            "answerString",
            json!("other"),
        ),
    ] {
        let mut condition = json!({ "operator": "<" });
        condition[kind] = answer;
        let warnings = assert_loads(&one_condition(question, condition));
        assert_eq!(warnings, [], "{kind}");
    }
}

/// A FHIR answer of the wrong type whose text is a valid value of the
/// question's type is read as that type, with a warning.
#[test]
fn fhir_date_text_read_leniently() {
    let text = one_condition(json!({ "type": "date" }), json!({ "operator": "=", "answerString": "2024-05-01" }));
    let warnings = assert_loads(&text);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].0, "$.item[1].enableWhen[0].answerString");
    assert!(warnings[0].1.contains("read as a date because question \"q\" is a date item"), "{warnings:?}");
}

/// In the native format a string is the documented way to write a date or
/// time answer, so it loads without a warning.
#[test]
fn native_date_string_accepted() {
    let text = r#"
[[items]]
link_id = "q"
type = "date"

[[items]]
link_id = "t"
type = "time"

[[items]]
link_id = "d"
type = "string"
enable_behavior = "any"
enable_when = [
  { question = "q", operator = ">=", answer = "2024-05" },
  { question = "q", operator = "<", answer = 2025-01-01 },
  { question = "t", operator = "<", answer = "08:00:00" },
]
"#;
    assert_eq!(assert_loads(text), []);
    let invalid = text.replace("\"2024-05\"", "\"May 2024\"");
    assert_one_error(
        &invalid,
        "items[2].enable_when[0].answer",
        "a string answer does not fit question \"q\" of type date",
    );
}

#[test]
fn invalid_answer_values_rejected() {
    let cases = [
        (json!({ "type": "date" }), "answerDate", json!("2020-13-01"), "is not a valid FHIR date"),
        (json!({ "type": "dateTime" }), "answerDateTime", json!("2020-01-01T10:00:00"), "has a time but no UTC offset"),
        (json!({ "type": "time" }), "answerTime", json!("25:00:00"), "is not a valid FHIR time"),
        (json!({ "type": "integer" }), "answerInteger", json!(1.5), "is not a valid integer"),
        (json!({ "type": "quantity" }), "answerQuantity", json!({ "unit": "kg" }), "needs a numeric value"),
        (
            json!({ "type": "choice", "answerOption": [{ "valueCoding": { "code": "a" } }] }),
            "answerCoding",
            json!({ "display": "A" }),
            "a Coding answer needs a code",
        ),
    ];
    for (question, kind, answer, message) in cases {
        let mut condition = json!({ "operator": "=" });
        condition[kind] = answer;
        assert_one_error(&one_condition(question, condition), &format!("$.item[1].enableWhen[0].{kind}"), message);
    }
}

#[test]
fn unsupported_answer_type_rejected() {
    let text = one_condition(json!({ "type": "string" }), json!({ "operator": "=", "answerUri": "urn:x" }));
    assert_one_error(&text, "$.item[1].enableWhen[0].answerUri", "answerUri is not a supported enableWhen answer type");
}

#[test]
fn ordered_operator_on_boolean_rejected() {
    let text = one_condition(json!({ "type": "boolean" }), json!({ "operator": ">", "answerBoolean": true }));
    assert_one_error(&text, "$.item[1].enableWhen[0].operator", "operator \">\" cannot order boolean answers");
}

#[test]
fn ordered_operator_on_coding_rejected() {
    let question = json!({ "type": "choice", "answerOption": [{ "valueCoding": { "code": "a" } }] });
    let text = one_condition(question, json!({ "operator": "<=", "answerCoding": { "code": "a" } }));
    assert_one_error(&text, "$.item[1].enableWhen[0].operator", "operator \"<=\" cannot order Coding answers");
}

#[test]
fn exists_needs_boolean_answer() {
    for (kind, answer) in [("answerString", json!("x")), ("answerBoolean", json!("true")), ("answerInteger", json!(1))]
    {
        let mut condition = json!({ "operator": "exists" });
        condition[kind] = answer;
        let text = one_condition(json!({ "type": "string" }), condition);
        assert_one_error(
            &text,
            &format!("$.item[1].enableWhen[0].{kind}"),
            "the exists operator needs a boolean answer",
        );
    }
}

#[test]
fn coding_not_an_option_warned() {
    let question = json!({ "type": "choice", "answerOption": [{ "valueCoding": { "system": "urn:s", "code": "a" } }] });
    let text = one_condition(question, json!({ "operator": "=", "answerCoding": { "system": "urn:s", "code": "b" } }));
    let warnings = assert_loads(&text);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].0, "$.item[1].enableWhen[0].answerCoding");
    assert!(warnings[0].1.contains("Coding \"b\" is not an option of question \"q\""));
}

#[test]
fn two_items_in_cycle_rejected() {
    let condition = |question: &str| json!([{ "question": question, "operator": "exists", "answerBoolean": true }]);
    let text = questionnaire(json!([
        { "linkId": "a", "type": "string", "enableWhen": condition("b") },
        { "linkId": "b", "type": "string", "enableWhen": condition("a") }
    ]));
    assert_one_error(
        &text,
        "$.item[0].enableWhen[0]",
        "enableWhen conditions form a cycle: \"a\" depends on \"b\", \"b\" depends on \"a\"",
    );
}

#[test]
fn longer_cycle_named_in_order() {
    let condition = |question: &str| json!([{ "question": question, "operator": "exists", "answerBoolean": true }]);
    let text = questionnaire(json!([
        { "linkId": "start", "type": "boolean" },
        { "linkId": "c", "type": "string", "enableWhen": condition("a") },
        { "linkId": "a", "type": "string", "enableWhen": condition("b") },
        { "linkId": "b", "type": "string", "enableWhen": condition("c") }
    ]));
    assert_one_error(
        &text,
        "$.item[1].enableWhen[0]",
        "cycle: \"c\" depends on \"a\", \"a\" depends on \"b\", \"b\" depends on \"c\"",
    );
}

/// A group cannot depend on a question inside it, because the question is
/// enabled only when the group is.
#[test]
fn group_on_own_question_is_cycle() {
    let text = r#"
[[items]]
link_id = "g"
type = "group"
enable_when = [{ question = "g.q", operator = "=", answer = true }]

  [[items.items]]
  link_id = "g.q"
  type = "boolean"
"#;
    assert_one_error(text, "items[0].enable_when[0]", "cycle: \"g\" depends on \"g.q\", \"g.q\" is inside \"g\"");
}

#[test]
fn too_many_conditions_rejected() {
    let conditions: Vec<Value> =
        (0..65).map(|value| json!({ "question": "q", "operator": "=", "answerInteger": value })).collect();
    let text = questionnaire(json!([
        { "linkId": "q", "type": "integer" },
        { "linkId": "d", "type": "string", "enableBehavior": "any", "enableWhen": conditions }
    ]));
    assert_one_error(&text, "$.item[1].enableWhen", "at most 64 enableWhen conditions, this one has 65");

    let conditions: Vec<Value> =
        (0..64).map(|value| json!({ "question": "q", "operator": "=", "answerInteger": value })).collect();
    let text = questionnaire(json!([
        { "linkId": "q", "type": "integer" },
        { "linkId": "d", "type": "string", "enableBehavior": "any", "enableWhen": conditions }
    ]));
    assert_loads(&text);
}

#[test]
fn long_dependency_chain_rejected() {
    let chain = |length: usize| {
        let mut items = vec![json!({ "linkId": "i0", "type": "string" })];
        for index in 1..=length {
            items.push(json!({
                "linkId": format!("i{index}"),
                "type": "string",
                "enableWhen": [{ "question": format!("i{}", index - 1), "operator": "exists", "answerBoolean": true }]
            }));
        }
        questionnaire(Value::Array(items))
    };
    assert_loads(&chain(64));
    assert_one_error(
        &chain(65),
        "$.item[65].enableWhen",
        "depends on a chain of 65 conditions and enclosing groups; the limit is 64",
    );
}

#[test]
fn behavior_missing_warned() {
    let text = r#"
[[items]]
link_id = "a"
type = "boolean"

[[items]]
link_id = "d"
type = "string"
enable_when = [
  { question = "a", operator = "=", answer = true },
  { question = "a", operator = "exists", answer = true },
]
"#;
    let warnings = assert_loads(text);
    assert_eq!(
        warnings,
        [(
            "items[1].enable_when".to_owned(),
            "2 enable_when conditions but no enable_behavior; they are combined as \"all\"".to_owned()
        )]
    );
}

#[test]
fn behavior_without_conditions_ignored() {
    let text = questionnaire(json!([{ "linkId": "d", "type": "string", "enableBehavior": "any" }]));
    let outcome = load(&text);
    assert!(outcome.report.errors.is_empty());
    assert_eq!(
        pairs(&outcome.report.ignored),
        [("$.item[0].enableBehavior", "enableBehavior has no effect without enableWhen")]
    );
}

#[test]
fn every_problem_reported_together() {
    let text = questionnaire(json!([
        { "linkId": "flag", "type": "boolean" },
        { "linkId": "n", "type": "integer" },
        {
            "linkId": "d",
            "type": "string",
            "enableBehavior": "all",
            "enableWhen": [
                { "question": "flag", "operator": "<", "answerBoolean": true },
                { "question": "n", "operator": "=", "answerString": "5" },
                { "question": "d", "operator": "exists", "answerBoolean": true }
            ]
        }
    ]));
    let outcome = load(&text);
    let paths: Vec<&str> = outcome.report.errors.iter().map(|notice| notice.path.as_str()).collect();
    assert_eq!(
        paths,
        ["$.item[2].enableWhen[0].operator", "$.item[2].enableWhen[1].answerString", "$.item[2].enableWhen[2]"]
    );
}
