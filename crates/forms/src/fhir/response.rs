//! Reading the `item` tree of a FHIR R4 QuestionnaireResponse into the
//! validator's input tree.
//!
//! Entries are matched to form items by linkId at each level. Several
//! entries with the linkId of a group are occurrences of that group, and
//! the answers of several entries for one question are counted together.
//! Pointers point into the submitted array, such as
//! `/item/0/item/2/answer/0/valueCoding`.

use serde_json::Value;

use crate::model::{Form, Item, ItemType};
use crate::validate::input::{self, Answer, Entry, MissingPointer, Occurrence, Pointer, wrong_group};
use crate::validate::value;
use crate::validate::{Expected, Finding, Problem};

/// Reads one `item` array. `Value::Null` means the response has none.
pub(crate) fn read_items<'a>(
    form: &Form,
    value: &'a Value,
    pointer: &str,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    let pointer = Pointer::new(pointer);
    read_level(form, &mut Vec::new(), &form.items, value, pointer.clone(), pointer, findings)
}

/// Reads the `item` array at `array_pointer` of the occurrence at
/// `occurrence_pointer`, for `items`, the items at `level` (the positions
/// of the enclosing groups).
fn read_level<'a>(
    form: &Form,
    level: &mut Vec<usize>,
    items: &[Item],
    value: &'a Value,
    occurrence_pointer: Pointer<'a>,
    array_pointer: Pointer<'a>,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    let mut occurrence = Occurrence::new(occurrence_pointer, MissingPointer::Array(array_pointer.clone()), items.len());
    let entries = match value {
        Value::Null => return occurrence,
        Value::Array(entries) => entries,
        _ => {
            findings.push(Finding { link_id: String::new(), pointer: array_pointer.render(), problem: wrong_group() });
            return occurrence;
        }
    };

    for (position, entry_value) in entries.iter().enumerate() {
        let entry_pointer = array_pointer.fhir_entry(position);
        let link_id = entry_value.get("linkId").and_then(Value::as_str);
        let found = link_id.and_then(|link_id| input::find_item(form, level, items, link_id));
        let Some((item_position, item)) = found else {
            findings.push(Finding {
                link_id: link_id.unwrap_or_default().to_owned(),
                pointer: entry_pointer.render(),
                problem: Problem::UnknownItem,
            });
            continue;
        };

        let entry = occurrence.entry_mut(item_position, || entry_pointer.clone());
        if item.item_type == ItemType::Group {
            level.push(item_position);
            read_group_entry(form, level, item, entry_value, entry_pointer, entry, findings);
            level.pop();
        } else {
            read_question_entry(item, entry_value, &array_pointer, position, entry, findings);
        }
    }
    occurrence
}

fn read_group_entry<'a>(
    form: &Form,
    level: &mut Vec<usize>,
    item: &Item,
    value: &'a Value,
    pointer: Pointer<'a>,
    entry: &mut Entry<'a>,
    findings: &mut Vec<Finding>,
) {
    let pointer_text = pointer.render();
    if value.get("answer").is_some() {
        findings.push(Finding {
            link_id: item.link_id.clone(),
            pointer: format!("{pointer_text}/answer"),
            problem: Problem::NotAnswerable,
        });
    }
    let children = value.get("item").unwrap_or(&Value::Null);
    let array_pointer = Pointer::new(&format!("{pointer_text}/item"));
    entry.occurrences.push(read_level(form, level, &item.children, children, pointer, array_pointer, findings));
}

/// Reads the answers of the question entry at `position` of the `item`
/// array at `array_pointer`.
fn read_question_entry<'a>(
    item: &Item,
    value: &'a Value,
    array_pointer: &Pointer<'a>,
    position: usize,
    entry: &mut Entry<'a>,
    findings: &mut Vec<Finding>,
) {
    // Items nested directly under a question are not supported by the
    // model, so each one is unknown here.
    let pointer = || array_pointer.fhir_entry(position).render();
    if let Some(nested) = value.get("item") {
        report_nested_items(nested, &format!("{}/item", pointer()), findings);
    }

    let answers = match value.get("answer") {
        None | Some(Value::Null) => return,
        Some(Value::Array(answers)) => answers,
        Some(_) => {
            findings.push(Finding {
                link_id: item.link_id.clone(),
                pointer: format!("{}/answer", pointer()),
                problem: Problem::WrongType { expected: Expected::Answers, hint: None },
            });
            return;
        }
    };

    for (answer_position, answer) in answers.iter().enumerate() {
        let answer_pointer = || format!("{}/answer/{answer_position}", pointer());
        if let Some(nested) = answer.get("item") {
            report_nested_items(nested, &format!("{}/item", answer_pointer()), findings);
        }
        let mut values = answer.as_object().into_iter().flatten().filter(|(key, _)| key.starts_with("value"));
        match (values.next(), values.next()) {
            (Some((kind, value)), None) => entry.answers.push(Answer {
                pointer: array_pointer.fhir_value(position, answer_position, kind),
                value,
                fhir_kind: Some(kind.as_str()),
            }),
            _ => findings.push(Finding {
                link_id: item.link_id.clone(),
                pointer: answer_pointer(),
                problem: Problem::WrongType { expected: value::expected_for(item.item_type), hint: None },
            }),
        }
    }
}

fn report_nested_items(nested: &Value, pointer: &str, findings: &mut Vec<Finding>) {
    let nested = match nested {
        Value::Null => return,
        Value::Array(nested) => nested,
        _ => {
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
