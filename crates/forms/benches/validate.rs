//! Benchmarks of one submission's check: validation, skip logic, scores,
//! rules and alerts.
//!
//! - `phq9_demo`: the demo trial's PHQ-9 (lforms, 11 FHIRPath variables and
//!   a calculated total) with the trial's two alerts attached, answered in
//!   full.
//! - `phq9_without_expressions`: the same form and answers with the
//!   variables, the calculation and the alerts removed, which measures
//!   validation alone.
//! - `generated_300_items`: a native form with 300 integer items, 100 of
//!   them behind an `enable_when` condition, and 100 CEL rules.
//!
//! Run with `cargo bench -p epro-forms --bench validate`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use epro_forms::{Form, FormFormat, attach_trial_rules, check_native, load_form, parse_trial_file};
use serde_json::{Map, Value, json};

/// Returns the demo PHQ-9 form text without its expression extensions.
fn phq9_without_expressions(text: &str) -> String {
    let mut questionnaire: Value = serde_json::from_str(text).expect("PHQ-9 is valid JSON");
    for item in questionnaire["item"].as_array_mut().expect("PHQ-9 has items") {
        if let Some(extensions) = item.get_mut("extension").and_then(Value::as_array_mut) {
            extensions.retain(|extension| !extension.to_string().contains("Expression"));
        }
    }
    questionnaire.to_string()
}

fn demo_phq9() -> (Form, Form, Value) {
    let folder = format!("{}/../../examples/trials/demo", env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(format!("{folder}/{name}")).expect("demo file is readable");
    let trial = parse_trial_file(&read("trial.toml")).expect("the demo trial file is valid");
    let entry = trial.forms.iter().find(|entry| entry.id == "phq9").expect("the demo trial has phq9");
    let text = read(&entry.file);
    let mut form = load_form(&text, FormFormat::FhirJson).form.expect("PHQ-9 loads");
    attach_trial_rules(&mut form, entry).expect("the PHQ-9 alerts compile");
    let bare = phq9_without_expressions(&text);
    let bare = load_form(&bare, FormFormat::FhirJson).form.expect("PHQ-9 without expressions loads");

    let codes = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"];
    let questions = form.items.iter().filter(|item| item.options.iter().any(|option| option.ordinal.is_some()));
    let answers: Map<String, Value> = questions
        .enumerate()
        .map(|(position, item)| (item.link_id.clone(), json!(codes[(position + 1) % 4])))
        .collect();
    (form, bare, Value::Object(answers))
}

/// Builds a form of 300 integer items. Items 200 to 299 are enabled when
/// item n - 200 is at least 3. Rule k requires items k and k + 1 to add up
/// to at most 20.
fn generated_form() -> (Form, Value) {
    let mut text = String::new();
    for index in 0..300 {
        text.push_str(&format!("[[items]]\nlink_id = \"i{index}\"\ntype = \"integer\"\nmin = 0\nmax = 10\n"));
        if index >= 200 {
            let question = index - 200;
            text.push_str(&format!(
                "enable_when = [{{ question = \"i{question}\", operator = \">=\", answer = 3 }}]\n"
            ));
        }
        text.push('\n');
    }
    for rule in 0..100 {
        text.push_str(&format!(
            "[[rules]]\nkey = \"pair-{rule}\"\nexpression = \"answers['i{rule}'] + answers['i{next}'] <= 20\"\n\
             severity = \"query\"\nmessage = {{ en = \"Too high.\", zh-CN = \"过高。\" }}\n\n",
            next = rule + 1
        ));
    }
    let outcome = load_form(&text, FormFormat::NativeToml);
    let form = outcome.form.unwrap_or_else(|| panic!("generated form loads: {:#?}", outcome.report.errors));
    let answers: Map<String, Value> = (0..300).map(|index| (format!("i{index}"), json!(5))).collect();
    (form, Value::Object(answers))
}

fn benchmarks(criterion: &mut Criterion) {
    let (phq9, phq9_bare, phq9_answers) = demo_phq9();
    let checked = check_native(&phq9, &phq9_answers, "/answers");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    assert!(!checked.alerts.is_empty(), "the answers fire the item 9 alert");
    criterion.bench_function("phq9_demo", |bencher| {
        bencher.iter(|| check_native(black_box(&phq9), black_box(&phq9_answers), "/answers"))
    });
    let checked = check_native(&phq9_bare, &phq9_answers, "/answers");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    assert!(checked.scores.is_empty(), "{:#?}", checked.scores);
    criterion.bench_function("phq9_without_expressions", |bencher| {
        bencher.iter(|| check_native(black_box(&phq9_bare), black_box(&phq9_answers), "/answers"))
    });

    let (generated, generated_answers) = generated_form();
    let checked = check_native(&generated, &generated_answers, "/answers");
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    criterion.bench_function("generated_300_items", |bencher| {
        bencher.iter(|| check_native(black_box(&generated), black_box(&generated_answers), "/answers"))
    });
}

criterion_group!(validate, benchmarks);
criterion_main!(validate);
