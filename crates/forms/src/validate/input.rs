//! The input tree that both submission shapes are read into before
//! checking, and the reader for the native shape.
//!
//! Readers match submitted entries to form items by linkId, one level at a
//! time, and report what cannot be matched (`unknown_item`) or has the wrong
//! container shape. They do not check values, which `walk` and `value` do.

use std::collections::HashMap;

use serde_json::Value;

use super::{Expected, Finding, Problem, escape_pointer_segment};
use crate::model::{Item, ItemType};

/// The entries sent for the child items of one group occurrence, or for the
/// top-level items of the form.
#[derive(Debug, Default)]
pub(crate) struct Occurrence<'a> {
    /// Pointer of the occurrence itself.
    pub pointer: String,
    /// How to point at a child item that was not sent.
    pub missing: MissingPointer,
    /// Entries by the linkId of a form item at this level.
    pub entries: HashMap<String, Entry<'a>>,
}

/// Target of findings about items that were not sent.
#[derive(Debug, Default)]
pub(crate) enum MissingPointer {
    /// At the key the item would have under this pointer (native shape).
    #[default]
    Keyed,
    /// At this pointer, the `item` array the item would be in (FHIR shape).
    Array(String),
}

/// Answers or group occurrences sent for one form item.
#[derive(Debug, Default)]
pub(crate) struct Entry<'a> {
    /// Pointer of the item's value (native) or its first entry (FHIR).
    pub pointer: String,
    /// Answers of a question or display item, in order.
    pub answers: Vec<Answer<'a>>,
    /// Occurrences of a group, in order.
    pub occurrences: Vec<Occurrence<'a>>,
}

/// One submitted answer value.
#[derive(Debug)]
pub(crate) struct Answer<'a> {
    pub pointer: String,
    pub value: &'a Value,
    /// The `value[x]` element name of a FHIR answer, such as
    /// `valueCoding`, or `None` for a native answer.
    pub fhir_kind: Option<&'a str>,
}

impl Occurrence<'_> {
    /// Returns the pointer for a finding about `item` at this level.
    pub(crate) fn pointer_for(&self, item: &Item) -> String {
        if let Some(entry) = self.entries.get(&item.link_id) {
            return entry.pointer.clone();
        }
        match &self.missing {
            MissingPointer::Keyed => format!("{}/{}", self.pointer, escape_pointer_segment(&item.link_id)),
            MissingPointer::Array(pointer) => pointer.clone(),
        }
    }
}

/// Reads native answers: a JSON object keyed by linkId, where a group is an
/// object or an array of objects, and a question is a value or an array of
/// values. `null` means not answered.
pub(crate) fn read_native<'a>(
    items: &[Item],
    answers: &'a Value,
    pointer: &str,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    let mut occurrence =
        Occurrence { pointer: pointer.to_owned(), missing: MissingPointer::Keyed, entries: HashMap::new() };
    let Some(object) = answers.as_object() else {
        findings.push(Finding { link_id: String::new(), pointer: pointer.to_owned(), problem: wrong_group() });
        return occurrence;
    };

    for (key, value) in object {
        let key_pointer = format!("{pointer}/{}", escape_pointer_segment(key));
        let Some(item) = items.iter().find(|item| &item.link_id == key) else {
            findings.push(Finding { link_id: key.clone(), pointer: key_pointer, problem: Problem::UnknownItem });
            continue;
        };
        let entry = if item.item_type == ItemType::Group {
            read_native_group(item, value, &key_pointer, findings)
        } else {
            read_native_answers(value, &key_pointer)
        };
        occurrence.entries.insert(key.clone(), entry);
    }
    occurrence
}

fn read_native_group<'a>(item: &Item, value: &'a Value, pointer: &str, findings: &mut Vec<Finding>) -> Entry<'a> {
    let mut entry = Entry { pointer: pointer.to_owned(), ..Entry::default() };
    let wrong_shape = |pointer: String| Finding { link_id: item.link_id.clone(), pointer, problem: wrong_group() };
    match value {
        Value::Null => {}
        Value::Object(_) => entry.occurrences.push(read_native(&item.children, value, pointer, findings)),
        Value::Array(elements) => {
            for (position, element) in elements.iter().enumerate() {
                let element_pointer = format!("{pointer}/{position}");
                if element.is_object() {
                    entry.occurrences.push(read_native(&item.children, element, &element_pointer, findings));
                } else {
                    findings.push(wrong_shape(element_pointer));
                }
            }
        }
        _ => findings.push(wrong_shape(pointer.to_owned())),
    }
    entry
}

fn read_native_answers<'a>(value: &'a Value, pointer: &str) -> Entry<'a> {
    let answer = |value: &'a Value, pointer: String| Answer { pointer, value, fhir_kind: None };
    let answers = match value {
        Value::Null => Vec::new(),
        Value::Array(elements) => elements
            .iter()
            .enumerate()
            .filter(|(_, element)| !element.is_null())
            .map(|(position, element)| answer(element, format!("{pointer}/{position}")))
            .collect(),
        _ => vec![answer(value, pointer.to_owned())],
    };
    Entry { pointer: pointer.to_owned(), answers, occurrences: Vec::new() }
}

pub(crate) fn wrong_group() -> Problem {
    Problem::WrongType { expected: Expected::Group, hint: None }
}
