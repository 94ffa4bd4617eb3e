//! How skip logic shapes a submission's findings and normalized answers:
//! `enableBehavior`, nested groups, chains of conditional items, repeating
//! groups, and answers sent for disabled items in both input formats.

use epro_forms::{EnableWhen, EnableWhenOperator, Form, Item, ItemType, Problem, Severity, check_native};
use serde_json::json;

use crate::common::{check, check_fhir, check_sorted, codes};

const BEHAVIOR_ALL: &str = r#"
[[items]]
link_id = "a"
type = "boolean"

[[items]]
link_id = "b"
type = "boolean"

[[items]]
link_id = "d"
type = "string"
required = true
enable_behavior = "all"
enable_when = [
  { question = "a", operator = "=", answer = true },
  { question = "b", operator = "=", answer = true },
]
"#;

#[test]
fn behavior_all_needs_every_condition() {
    check(BEHAVIOR_ALL, json!({ "a": true, "b": true }), &[("required", "/answers/d")]);
    check(BEHAVIOR_ALL, json!({ "a": true, "b": false }), &[]);
    check(BEHAVIOR_ALL, json!({ "a": true }), &[]);
    check(BEHAVIOR_ALL, json!({ "a": true, "d": "x" }), &[("answered_while_disabled", "/answers/d")]);
}

#[test]
fn behavior_any_needs_one_condition() {
    let form = BEHAVIOR_ALL.replace("enable_behavior = \"all\"", "enable_behavior = \"any\"");
    check(&form, json!({ "a": true, "b": false }), &[("required", "/answers/d")]);
    check(&form, json!({ "b": true }), &[("required", "/answers/d")]);
    check(&form, json!({ "a": false, "b": false }), &[]);
    check(&form, json!({}), &[]);
}

#[test]
fn behavior_missing_reads_as_all() {
    let form = BEHAVIOR_ALL.replace("enable_behavior = \"all\"\n", "");
    check(&form, json!({ "a": true, "b": true }), &[("required", "/answers/d")]);
    check(&form, json!({ "a": true, "b": false }), &[]);
}

const NESTED: &str = r#"
[[items]]
link_id = "smoker"
type = "boolean"

[[items]]
link_id = "smoking"
type = "group"
required = true
enable_when = [{ question = "smoker", operator = "=", answer = true }]

  [[items.items]]
  link_id = "packs"
  type = "integer"
  required = true
  max = 10

  [[items.items]]
  link_id = "history"
  type = "group"

    [[items.items.items]]
    link_id = "since"
    type = "date"
    required = true
"#;

#[test]
fn disabled_group_disables_descendants() {
    let answers = json!({
        "smoker": false,
        "smoking": { "packs": 40, "history": { "since": "not a date" } }
    });
    let checked = check(
        NESTED,
        answers,
        &[
            ("answered_while_disabled", "/answers/smoking/packs"),
            ("answered_while_disabled", "/answers/smoking/history/since"),
        ],
    );
    assert_eq!(checked.normalized, json!({ "smoker": false }));
    for finding in &checked.findings {
        assert_eq!(finding.problem, Problem::AnsweredWhileDisabled);
        assert_eq!(finding.problem.severity(), Severity::Reject);
    }
}

#[test]
fn disabled_group_not_required() {
    check(NESTED, json!({ "smoker": false }), &[]);
    check(NESTED, json!({}), &[]);
    check(NESTED, json!({ "smoker": false, "smoking": {} }), &[]);
}

#[test]
fn enabled_group_checks_children() {
    check(NESTED, json!({ "smoker": true }), &[("required", "/answers/smoking")]);
    check(
        NESTED,
        json!({ "smoker": true, "smoking": { "history": {} } }),
        &[
            ("required", "/answers/smoking/packs"),
            ("required", "/answers/smoking/history/since"),
            ("required", "/answers/smoking"),
        ],
    );
    let checked = check(
        NESTED,
        json!({ "smoker": true, "smoking": { "packs": 11, "history": { "since": "2001" } } }),
        &[("out_of_range", "/answers/smoking/packs")],
    );
    assert_eq!(checked.normalized, json!({ "smoker": true, "smoking": { "history": { "since": "2001" } } }));
}

/// `c` depends on `b`, which depends on `a`, and `c` comes first in the
/// form, so order does not matter.
const CHAIN: &str = r#"
[[items]]
link_id = "c"
type = "string"
required = true
enable_when = [{ question = "b", operator = "exists", answer = true }]

[[items]]
link_id = "a"
type = "boolean"

[[items]]
link_id = "b"
type = "string"
enable_when = [{ question = "a", operator = "=", answer = true }]
"#;

#[test]
fn chain_follows_conditional_question() {
    check(CHAIN, json!({ "a": true, "b": "x" }), &[("required", "/answers/c")]);
    check(CHAIN, json!({ "a": true, "b": "x", "c": "y" }), &[]);
    check(CHAIN, json!({ "a": true }), &[]);
}

/// A disabled question counts as unanswered for the conditions on it,
/// whatever was sent for it.
#[test]
fn chain_disabled_question_reads_empty() {
    let checked = check_sorted(
        CHAIN,
        json!({ "a": false, "b": "x", "c": "y" }),
        &[("answered_while_disabled", "/answers/b"), ("answered_while_disabled", "/answers/c")],
    );
    assert_eq!(checked.normalized, json!({ "a": false }));
    check(CHAIN, json!({ "a": false, "b": "x" }), &[("answered_while_disabled", "/answers/b")]);
}

const REPEATING: &str = r#"
[[items]]
link_id = "on_treatment"
type = "boolean"

[[items]]
link_id = "meds"
type = "group"
repeats = true

  [[items.items]]
  link_id = "meds.taken"
  type = "boolean"

  [[items.items]]
  link_id = "meds.dose"
  type = "integer"
  required = true
  enable_when = [{ question = "meds.taken", operator = "=", answer = true }]

  [[items.items]]
  link_id = "meds.reason"
  type = "string"
  required = true
  enable_when = [{ question = "on_treatment", operator = "=", answer = false }]

[[items]]
link_id = "side_effects"
type = "string"
required = true
enable_when = [{ question = "meds.taken", operator = "=", answer = true }]
"#;

/// A condition on a question of the same repeating group reads the
/// occurrence the item is in.
#[test]
fn repeating_group_reads_own_occurrence() {
    let answers = json!({
        "on_treatment": true,
        "meds": [{ "meds.taken": true }, { "meds.taken": false, "meds.dose": 2 }],
        "side_effects": "none"
    });
    check(
        REPEATING,
        answers,
        &[("required", "/answers/meds/0/meds.dose"), ("answered_while_disabled", "/answers/meds/1/meds.dose")],
    );
}

/// A question inside a repeating group, read from outside it, is true when
/// any occurrence satisfies the condition.
#[test]
fn repeating_group_read_from_outside() {
    let taken_once = json!({ "meds": [{ "meds.taken": false }, { "meds.taken": true, "meds.dose": 1 }] });
    check(REPEATING, taken_once, &[("required", "/answers/side_effects")]);
    let never_taken = json!({ "meds": [{ "meds.taken": false }, { "meds.taken": false }], "side_effects": "x" });
    check(REPEATING, never_taken, &[("answered_while_disabled", "/answers/side_effects")]);
}

/// A condition inside a repeating group on a question outside it applies
/// the same way in every occurrence.
#[test]
fn repeating_group_reads_outer_question() {
    let answers = json!({ "on_treatment": false, "meds": [{}, { "meds.reason": "cost" }] });
    check(REPEATING, answers, &[("required", "/answers/meds/0/meds.reason")]);
    let answers = json!({ "on_treatment": true, "meds": [{ "meds.reason": "cost" }, { "meds.reason": "x" }] });
    check(
        REPEATING,
        answers,
        &[
            ("answered_while_disabled", "/answers/meds/0/meds.reason"),
            ("answered_while_disabled", "/answers/meds/1/meds.reason"),
        ],
    );
}

const CONSTRAINED: &str = r#"
[[items]]
link_id = "pain"
type = "boolean"

[[items]]
link_id = "where"
type = "choice"
required = true
repeats = true
max_occurs = 1
min_occurs = 1
options = [{ code = "head" }, { code = "back" }]
enable_when = [{ question = "pain", operator = "=", answer = true }]
"#;

/// Constraints of a disabled item do not apply: each answer sent gets one
/// `answered_while_disabled` finding and nothing else.
#[test]
fn disabled_item_constraints_skipped() {
    let checked = check(
        CONSTRAINED,
        json!({ "pain": false, "where": ["knee", 5, "back"] }),
        &[
            ("answered_while_disabled", "/answers/where/0"),
            ("answered_while_disabled", "/answers/where/1"),
            ("answered_while_disabled", "/answers/where/2"),
        ],
    );
    assert!(checked.findings.iter().all(|finding| finding.link_id == "where"));
    check(CONSTRAINED, json!({ "pain": false, "where": [] }), &[]);
    check(CONSTRAINED, json!({ "pain": false, "where": null }), &[]);
}

#[test]
fn enabled_item_constraints_apply() {
    check(
        CONSTRAINED,
        json!({ "pain": true, "where": ["knee", "back"] }),
        &[("too_many_repeats", "/answers/where/1"), ("not_an_option", "/answers/where/0")],
    );
    check(CONSTRAINED, json!({ "pain": true }), &[("required", "/answers/where")]);
    let checked = check(CONSTRAINED, json!({ "pain": true, "where": ["back"] }), &[]);
    assert_eq!(checked.normalized, json!({ "pain": true, "where": [{ "code": "back" }] }));
}

const UNDECIDED: &str = r#"
[[items]]
link_id = "score"
type = "integer"
repeats = true
max = 10

[[items]]
link_id = "detail"
type = "string"
required = true
enable_when = [{ question = "score", operator = ">", answer = 5 }]
"#;

/// An answer with a finding cannot be compared, so the items it controls
/// get neither `required` nor `answered_while_disabled`: the submission is
/// rejected for the first finding already.
#[test]
fn invalid_controlling_answer_adds_nothing() {
    check(UNDECIDED, json!({ "score": [50] }), &[("out_of_range", "/answers/score/0")]);
    check(UNDECIDED, json!({ "score": ["7"] }), &[("wrong_type", "/answers/score/0")]);
    check(UNDECIDED, json!({ "score": ["7"], "detail": "x" }), &[("wrong_type", "/answers/score/0")]);
}

/// A valid answer that satisfies the condition decides it, even next to an
/// invalid one.
#[test]
fn valid_answer_decides_despite_invalid() {
    check(
        UNDECIDED,
        json!({ "score": [50, 7] }),
        &[("out_of_range", "/answers/score/0"), ("required", "/answers/detail")],
    );
}

#[test]
fn hidden_enabled_item_not_required() {
    let form = r#"
[[items]]
link_id = "a"
type = "boolean"

[[items]]
link_id = "device"
type = "string"
required = true
hidden = true
enable_when = [{ question = "a", operator = "=", answer = true }]
"#;
    check(form, json!({ "a": true }), &[]);
    check(form, json!({ "a": false, "device": "x" }), &[("answered_while_disabled", "/answers/device")]);
}

#[test]
fn disabled_display_value_not_answerable() {
    let form = r#"
[[items]]
link_id = "a"
type = "boolean"

[[items]]
link_id = "note"
type = "display"
text = "Shown when a is true"
enable_when = [{ question = "a", operator = "=", answer = true }]
"#;
    check(form, json!({ "a": false, "note": "x" }), &[("not_answerable", "/answers/note")]);
    check(form, json!({ "a": false }), &[]);
}

/// An item that its `enableWhenExpression` disables counts as unanswered
/// for the `enableWhen` conditions on it, like any disabled question.
#[test]
fn expression_disabled_question_reads_empty() {
    let form = |expression: &str| {
        format!(
            r#"
[[items]]
link_id = "a"
type = "string"
enable_when_expression = "{expression}"

[[items]]
link_id = "b"
type = "string"
required = true
enable_when = [{{ question = "a", operator = "exists", answer = true }}]
"#
        )
    };
    check(&form("true"), json!({ "a": "x" }), &[("required", "/answers/b")]);
    check_sorted(
        &form("false"),
        json!({ "a": "x", "b": "y" }),
        &[("answered_while_disabled", "/answers/a"), ("answered_while_disabled", "/answers/b")],
    );
}

const FHIR_FORM: &str = r#"{
  "resourceType": "Questionnaire",
  "status": "draft",
  "item": [
    { "linkId": "a", "type": "boolean" },
    { "linkId": "b", "type": "string", "required": true,
      "enableWhen": [{ "question": "a", "operator": "=", "answerBoolean": true }] },
    { "linkId": "g", "type": "group",
      "enableWhen": [{ "question": "a", "operator": "=", "answerBoolean": true }],
      "item": [{ "linkId": "g.x", "type": "integer", "repeats": true }] }
  ]
}"#;

#[test]
fn fhir_disabled_answer_points_at_value() {
    let items = json!([
        { "linkId": "a", "answer": [{ "valueBoolean": false }] },
        { "linkId": "b", "answer": [{ "valueString": "x" }] },
        { "linkId": "g", "item": [{ "linkId": "g.x", "answer": [{ "valueInteger": 1 }, { "valueInteger": 2 }] }] }
    ]);
    let checked = check_fhir(
        FHIR_FORM,
        items,
        &[
            ("answered_while_disabled", "/item/1/answer/0/valueString"),
            ("answered_while_disabled", "/item/2/item/0/answer/0/valueInteger"),
            ("answered_while_disabled", "/item/2/item/0/answer/1/valueInteger"),
        ],
    );
    assert_eq!(checked.normalized, json!({ "a": false }));
}

#[test]
fn fhir_enabled_item_required() {
    let items = json!([{ "linkId": "a", "answer": [{ "valueBoolean": true }] }]);
    check_fhir(FHIR_FORM, items, &[("required", "/item")]);
    let items = json!([
        { "linkId": "a", "answer": [{ "valueBoolean": true }] },
        { "linkId": "b", "answer": [{ "valueString": "x" }] },
        { "linkId": "g", "item": [{ "linkId": "g.x", "answer": [{ "valueInteger": 1 }] }] }
    ]);
    let checked = check_fhir(FHIR_FORM, items, &[]);
    assert_eq!(checked.normalized, json!({ "a": true, "b": "x", "g": { "g.x": [1] } }));
}

/// `Form::new` does not run the load checks, so a form built in code may
/// have a cycle. Its items are undecided: checked, never required.
#[test]
fn cycle_built_in_code_terminates() {
    let condition = |question: &str| EnableWhen {
        question: question.to_owned(),
        operator: EnableWhenOperator::Exists,
        answer_kind: "answerBoolean".to_owned(),
        answer: json!(true),
        json_path: String::new(),
    };
    let mut first = Item::new("first", ItemType::String);
    first.required = true;
    first.enable_when = vec![condition("second")];
    let mut second = Item::new("second", ItemType::String);
    second.required = true;
    second.enable_when = vec![condition("first")];
    let form = Form::new(None, None, None, None, vec![first, second], Vec::new());

    let checked = check_native(&form, &json!({ "first": "x" }), "/answers");

    assert_eq!(codes(&checked), []);
    assert_eq!(checked.normalized, json!({ "first": "x" }));
    let checked = check_native(&form, &json!({ "first": 5 }), "/answers");
    assert_eq!(codes(&checked), [("wrong_type", "/answers/first".to_owned())]);
}
