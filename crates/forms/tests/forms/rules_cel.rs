//! CEL expressions of native forms: each function of the environment,
//! empty results, rounding, number literals, rules and enable expressions,
//! and the checks made when a form loads.

use epro_forms::{FormFormat, Problem, Severity, check_native, load_form};
use serde_json::{Value, json};

use crate::common::{check, codes};

/// Items every case can read, before the item under test.
const ITEMS: &str = r#"
[[items]]
link_id = "a"
type = "decimal"

[[items]]
link_id = "b"
type = "decimal"

[[items]]
link_id = "i"
type = "integer"

[[items]]
link_id = "s"
type = "string"

[[items]]
link_id = "c"
type = "choice"
options = [{ code = "no", ordinal = 0 }, { code = "yes", ordinal = 2 }]

[[items]]
link_id = "r"
type = "choice"
repeats = true
options = [{ code = "x", ordinal = 1 }, { code = "y", ordinal = 3 }]

[[items]]
link_id = "q"
type = "quantity"
units = ["kg"]

[[items]]
link_id = "g"
type = "group"

  [[items.items]]
  link_id = "n"
  type = "decimal"
"#;

fn with_computed(expression: &str) -> String {
    format!("{ITEMS}\n[[items]]\nlink_id = \"out\"\ntype = \"decimal\"\ncalculated = '''{expression}'''\n")
}

/// Returns the computed value of `out` for `answers`, as text.
fn computed(expression: &str, answers: Value) -> Option<String> {
    let outcome = load_form(&with_computed(expression), FormFormat::NativeToml);
    let form = outcome.form.unwrap_or_else(|| panic!("{expression} does not load: {:#?}", outcome.report.errors));
    let checked = check_native(&form, &answers, "/answers");
    let score = checked.scores.iter().find(|score| score.name == "out").expect("out is a score");
    score.value.map(|value| value.to_string())
}

/// Returns the load errors of a native form, as `path: message` lines.
fn load_errors(text: &str) -> String {
    let outcome = load_form(text, FormFormat::NativeToml);
    assert!(outcome.form.is_none(), "form loads:\n{text}");
    outcome
        .report
        .errors
        .iter()
        .map(|notice| format!("{}: {}", notice.path, notice.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn computed_reads_answers_and_functions() {
    let cases = [
        ("answers['a'] + answers['b']", json!({ "a": 1, "b": 2 }), Some("3")),
        ("answers.a * 2", json!({ "a": 1.5 }), Some("3")),
        ("10 - answers['i']", json!({ "i": 3 }), Some("7")),
        ("answers['q'].value + 1", json!({ "q": { "value": 70, "unit": "kg" } }), Some("71")),
        ("answers['n'] * 2", json!({ "g": { "n": 4 } }), Some("8")),
        ("answers['c'].code == 'yes' ? 1 : 0", json!({ "c": "yes" }), Some("1")),
        ("answers['s'] == 'hi' ? 1 : 0", json!({ "s": "hi" }), Some("1")),
        ("size(answers['r'])", json!({ "r": ["x", "y"] }), Some("2")),
        ("ordinal('c') + ordinal('r')", json!({ "c": "yes", "r": ["x", "y"] }), Some("6")),
        ("ordinal_sum()", json!({ "c": "yes", "r": ["x"] }), Some("3")),
        ("ordinal_sum()", json!({}), Some("0")),
        ("answered('a') ? 1 : 0", json!({ "a": 0 }), Some("1")),
        ("answered('a') ? 1 : 0", json!({}), Some("0")),
        ("answer('a') == null ? -1 : answer('a')", json!({}), Some("-1")),
        ("answer('q', 'value')", json!({ "q": { "value": 2, "unit": "kg" } }), Some("2")),
        ("0.1 + 0.2", json!({}), Some("0.3")),
        ("has(answers.a) ? 1 : 0", json!({ "a": 1 }), Some("1")),
        ("'a' in answers ? 1 : 0", json!({}), Some("0")),
        ("size(answers.filter(key, key != 'c'))", json!({ "a": 1, "c": "yes" }), Some("1")),
        ("[2.0].map(answers, answers * 2.0)[0]", json!({ "a": 1 }), Some("4")),
    ];
    for (expression, answers, expected) in cases {
        assert_eq!(computed(expression, answers.clone()).as_deref(), expected, "{expression} with {answers}");
    }
}

#[test]
fn round_half_away_from_zero() {
    let cases = [
        ("round(2.5, 0)", Some("3")),
        ("round(-2.5, 0)", Some("-3")),
        ("round(1.005, 2)", Some("1.01")),
        ("round(answers['a'] / 3, 2)", Some("0.33")),
        ("round(answer('b'), 1)", None),
        ("round(1.5, 13)", None),
    ];
    for (expression, expected) in cases {
        assert_eq!(computed(expression, json!({ "a": 1 })).as_deref(), expected, "{expression}");
    }
}

/// An evaluation error (a missing answer in arithmetic, a division by
/// zero, a type mismatch) leaves the computed item without a value.
#[test]
fn evaluation_errors_make_empty() {
    let cases = [
        ("answers['a'] + 1", json!({})),
        ("ordinal('c') + 1", json!({})),
        ("answers['a'] / answers['b']", json!({ "a": 1, "b": 0 })),
        ("answers['s'] + 1", json!({ "s": "x" })),
        ("1 / 0", json!({})),
        ("answers['a'] > 1", json!({ "a": 2 })),
        ("'text'", json!({})),
    ];
    for (expression, answers) in cases {
        assert_eq!(computed(expression, answers.clone()), None, "{expression} with {answers}");
    }
}

const RULES: &str = r#"
[[rules]]
key = "a-not-above-b"
expression = "answers['a'] <= answers['b']"
severity = "reject"
message = { en = "a must not exceed b.", zh-CN = "a 不得大于 b。" }
items = ["b", "a"]

[[rules]]
key = "n-positive"
expression = "answers['n'] > 0"
severity = "query"
message = { en = "n should be positive.", zh-CN = "n 应为正数。" }
"#;

#[test]
fn rules_report_violations_with_severity() {
    let form = format!("{ITEMS}\n{RULES}");

    let checked = check(&form, json!({ "a": 5, "b": 3 }), &[("rule_violated", "/answers/b")]);
    let Problem::RuleViolated { rule, severity, message } = &checked.findings[0].problem else {
        panic!("expected rule_violated: {:#?}", checked.findings);
    };
    assert_eq!(rule, "a-not-above-b");
    assert_eq!(*severity, Severity::Reject);
    assert_eq!(message.zh_cn, "a 不得大于 b。");
    assert_eq!(checked.findings[0].link_id, "b");

    let checked = check(&form, json!({ "g": { "n": -1 } }), &[("rule_violated", "/answers/g/n")]);
    assert_eq!(checked.findings[0].problem.severity(), Severity::Query);

    check(&form, json!({ "a": 1, "b": 3, "g": { "n": 2 } }), &[]);
}

/// A rule whose expression is empty is not violated, and a rule that reads
/// an invalid answer is not evaluated.
#[test]
fn rules_skip_empty_and_invalid() {
    let form = format!("{ITEMS}\n{RULES}");
    check(&form, json!({ "a": 5 }), &[]);
    check(&form, json!({ "a": "5", "b": 3 }), &[("wrong_type", "/answers/a")]);
}

#[test]
fn enable_when_expression_controls_item() {
    let form = format!(
        "{ITEMS}\n[[items]]\nlink_id = \"e\"\ntype = \"string\"\nrequired = true\nenable_when_expression = \"answers['a'] > 5\"\n"
    );
    check(&form, json!({ "a": 9, "e": "x" }), &[]);
    check(&form, json!({ "a": 9 }), &[("required", "/answers/e")]);
    check(&form, json!({ "a": 1, "e": "x" }), &[("answered_while_disabled", "/answers/e")]);
    check(&form, json!({}), &[]);
}

#[test]
fn computed_items_read_each_other_through_score() {
    let form = format!(
        "{ITEMS}\n[[items]]\nlink_id = \"double\"\ntype = \"decimal\"\ncalculated = \"score('sum') * 2\"\n\
         [[items]]\nlink_id = \"sum\"\ntype = \"decimal\"\ncalculated = \"answers['a'] + answers['b']\"\n"
    );
    let outcome = load_form(&form, FormFormat::NativeToml);
    let form = outcome.form.expect("form loads");
    let checked = check_native(&form, &json!({ "a": 1, "b": 2, "sum": 4 }), "/answers");

    let scores: Vec<(&str, Option<String>)> =
        checked.scores.iter().map(|score| (score.name.as_str(), score.value.map(|v| v.to_string()))).collect();
    assert_eq!(scores, [("double", Some("6".to_owned())), ("sum", Some("3".to_owned()))]);
    assert_eq!(codes(&checked), [("score_mismatch", "/answers/sum".to_owned())]);
    assert_eq!(
        checked.findings[0].problem,
        Problem::ScoreMismatch { score: "sum".to_owned(), computed: "3".to_owned(), sent: "4".to_owned() }
    );
}

#[test]
fn long_sum_rebalanced_within_depth() {
    let terms = vec!["answers['a']"; 100].join(" + ");
    assert_eq!(computed(&terms, json!({ "a": 1 })).as_deref(), Some("100"));
}

#[test]
fn load_errors_name_the_problem_and_path() {
    let too_long = format!("1{}", " + 1".repeat(1100));
    let nested = format!("{}1{}", "(".repeat(33), ")".repeat(33));
    let deep = vec!["1"; 40].join(" - ");
    let cases = [
        ("answers['zz'] > 1".to_owned(), "unknown linkId \"zz\" in answers['zz']"),
        ("answers['g']".to_owned(), "names a group item"),
        ("answer['a']".to_owned(), "unknown identifier \"answer\""),
        ("max(1, 2)".to_owned(), "unknown function max()"),
        ("score('zz')".to_owned(), "names no computed item"),
        ("ordinal(answers['s'])".to_owned(), "string literal"),
        ("ordinal('a')".to_owned(), "no option with an ordinalValue"),
        ("answers['a'] +".to_owned(), "invalid CEL expression"),
        (too_long, "bytes long; at most 4096"),
        (nested, "nests brackets 33 levels deep"),
        (deep, "nests 40 levels deep when compiled"),
    ];
    for (expression, expected) in cases {
        let errors = load_errors(&with_computed(&expression));
        assert!(errors.contains(expected), "{expression}: {errors}");
        assert!(errors.starts_with("items[8].calculated: "), "{expression}: {errors}");
    }
}

#[test]
fn load_errors_in_rules_and_references() {
    let cycle = format!(
        "{ITEMS}\n[[items]]\nlink_id = \"x\"\ntype = \"decimal\"\ncalculated = \"score('y') + 1\"\n\
         [[items]]\nlink_id = \"y\"\ntype = \"decimal\"\ncalculated = \"score('x') + 1\"\n"
    );
    let errors = load_errors(&cycle);
    assert!(errors.contains("cycle: item \"x\" → item \"y\" → item \"x\""), "{errors}");

    let computed_by_key = format!(
        "{ITEMS}\n[[items]]\nlink_id = \"x\"\ntype = \"decimal\"\ncalculated = \"1\"\n\
         [[rules]]\nkey = \"k\"\nexpression = \"answers['x'] > 0\"\nseverity = \"query\"\n\
         message = {{ en = \"e\", zh-CN = \"z\" }}\n"
    );
    let errors = load_errors(&computed_by_key);
    assert!(errors.contains("rules[0]: answers['x'] reads a computed item; use score('x')"), "{errors}");

    let bad_rule =
        format!("{ITEMS}\n[[rules]]\nkey = \"k\"\nexpression = \"true\"\nseverity = \"fatal\"\nitems = [\"nope\"]\n");
    let errors = load_errors(&bad_rule);
    assert!(errors.contains("rules[0].severity: \"fatal\" must be reject or query"), "{errors}");
    assert!(errors.contains("rules[0].message: message must be a table"), "{errors}");

    let duplicate = format!("{ITEMS}\n{RULES}\n{}", RULES.replace("n-positive", "other"));
    let errors = load_errors(&duplicate);
    assert!(errors.contains("rule key \"a-not-above-b\" is used twice"), "{errors}");

    let cel_variable = format!(
        "expressions = [{{ kind = \"variable\", name = \"v\", language = \"text/cel\", expression = \"1\" }}]\n{ITEMS}"
    );
    let errors = load_errors(&cel_variable);
    assert!(errors.contains("expressions[0]: a variable must be written in FHIRPath"), "{errors}");
}

/// A computed item of a type that has no number is kept, not evaluated,
/// and its value is stored as sent.
#[test]
fn computed_text_item_not_evaluated() {
    let text = format!("{ITEMS}\n[[items]]\nlink_id = \"label\"\ntype = \"string\"\ncalculated = \"'x'\"\n");
    let outcome = load_form(&text, FormFormat::NativeToml);
    assert!(outcome.report.is_valid(), "{:#?}", outcome.report.errors);
    let notice = outcome.report.not_evaluated.iter().find(|notice| notice.path == "items[8].calculated");
    let notice = notice.expect("the calculation is reported");
    assert!(notice.message.contains("stored as sent"), "{}", notice.message);
    let checked = check(&text, json!({ "label": "y" }), &[]);
    assert!(checked.scores.is_empty());
}
