//! Reading the `item` tree of a FHIR R4 QuestionnaireResponse into the
//! validator's input tree.
//!
//! Entries are matched to form items by linkId at each level. Several
//! entries with the linkId of a group are occurrences of that group, and
//! the answers of several entries for one question are counted together.
//! Pointers point into the submitted array, such as
//! `/item/0/item/2/answer/0/valueCoding`.

use std::collections::HashMap;

use serde_json::Value;

use crate::model::{Item, ItemType};
use crate::validate::input::{Answer, Entry, MissingPointer, Occurrence, wrong_group};
use crate::validate::value;
use crate::validate::{Expected, Finding, Problem};

/// Reads one `item` array. `Value::Null` means the response has none.
pub(crate) fn read_items<'a>(
    items: &[Item],
    value: &'a Value,
    pointer: &str,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    read_level(items, value, pointer, pointer, findings)
}

/// Reads the `item` array at `array_pointer` of the occurrence at
/// `occurrence_pointer`.
fn read_level<'a>(
    items: &[Item],
    value: &'a Value,
    occurrence_pointer: &str,
    array_pointer: &str,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    let mut occurrence = Occurrence {
        pointer: occurrence_pointer.to_owned(),
        missing: MissingPointer::Array(array_pointer.to_owned()),
        entries: HashMap::new(),
    };
    let entries = match value {
        Value::Null => return occurrence,
        Value::Array(entries) => entries,
        _ => {
            findings.push(Finding {
                link_id: String::new(),
                pointer: array_pointer.to_owned(),
                problem: wrong_group(),
            });
            return occurrence;
        }
    };

    for (position, entry_value) in entries.iter().enumerate() {
        let entry_pointer = format!("{array_pointer}/{position}");
        let link_id = entry_value.get("linkId").and_then(Value::as_str);
        let item = link_id.and_then(|link_id| items.iter().find(|item| item.link_id == link_id));
        let Some(item) = item else {
            findings.push(Finding {
                link_id: link_id.unwrap_or_default().to_owned(),
                pointer: entry_pointer,
                problem: Problem::UnknownItem,
            });
            continue;
        };

        let entry = occurrence
            .entries
            .entry(item.link_id.clone())
            .or_insert_with(|| Entry { pointer: entry_pointer.clone(), ..Entry::default() });
        if item.item_type == ItemType::Group {
            read_group_entry(item, entry_value, &entry_pointer, entry, findings);
        } else {
            read_question_entry(item, entry_value, &entry_pointer, entry, findings);
        }
    }
    occurrence
}

fn read_group_entry<'a>(
    item: &Item,
    value: &'a Value,
    pointer: &str,
    entry: &mut Entry<'a>,
    findings: &mut Vec<Finding>,
) {
    if value.get("answer").is_some() {
        findings.push(Finding {
            link_id: item.link_id.clone(),
            pointer: format!("{pointer}/answer"),
            problem: Problem::NotAnswerable,
        });
    }
    let children = value.get("item").unwrap_or(&Value::Null);
    let array_pointer = format!("{pointer}/item");
    entry.occurrences.push(read_level(&item.children, children, pointer, &array_pointer, findings));
}

fn read_question_entry<'a>(
    item: &Item,
    value: &'a Value,
    pointer: &str,
    entry: &mut Entry<'a>,
    findings: &mut Vec<Finding>,
) {
    // Items nested directly under a question are not supported by the
    // model, so each one is unknown here.
    report_nested_items(value.get("item"), &format!("{pointer}/item"), findings);

    let answers = match value.get("answer") {
        None | Some(Value::Null) => return,
        Some(Value::Array(answers)) => answers,
        Some(_) => {
            findings.push(Finding {
                link_id: item.link_id.clone(),
                pointer: format!("{pointer}/answer"),
                problem: Problem::WrongType { expected: Expected::Answers, hint: None },
            });
            return;
        }
    };

    for (position, answer) in answers.iter().enumerate() {
        let answer_pointer = format!("{pointer}/answer/{position}");
        report_nested_items(answer.get("item"), &format!("{answer_pointer}/item"), findings);
        let values: Vec<(&String, &Value)> =
            answer.as_object().into_iter().flatten().filter(|(key, _)| key.starts_with("value")).collect();
        match values.as_slice() {
            [(kind, value)] => entry.answers.push(Answer {
                pointer: format!("{answer_pointer}/{kind}"),
                value,
                fhir_kind: Some(kind.as_str()),
            }),
            _ => findings.push(Finding {
                link_id: item.link_id.clone(),
                pointer: answer_pointer,
                problem: Problem::WrongType { expected: value::expected_for(item.item_type), hint: None },
            }),
        }
    }
}

fn report_nested_items(nested: Option<&Value>, pointer: &str, findings: &mut Vec<Finding>) {
    let nested = match nested {
        None | Some(Value::Null) => return,
        Some(Value::Array(nested)) => nested,
        Some(_) => {
            findings.push(Finding { link_id: String::new(), pointer: pointer.to_owned(), problem: wrong_group() });
            return;
        }
    };
    for (position, child) in nested.iter().enumerate() {
        findings.push(Finding {
            link_id: child.get("linkId").and_then(Value::as_str).unwrap_or_default().to_owned(),
            pointer: format!("{pointer}/{position}"),
            problem: Problem::UnknownItem,
        });
    }
}
