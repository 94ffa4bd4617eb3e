//! The input tree that both submission shapes are read into before
//! checking, and the reader for the native shape.
//!
//! Readers match submitted entries to form items by linkId, one level at a
//! time, and report what cannot be matched (`unknown_item`) or has the wrong
//! container shape. They do not check values, which `walk` and `value` do.
//!
//! Pointers into the submission are kept as [`Pointer`] parts and turned
//! into strings only for findings, because most answers have none.

use std::fmt::Write as _;
use std::rc::Rc;

use serde_json::Value;

use super::{Expected, Finding, Problem, escape_pointer_segment};
use crate::model::{Form, Item, ItemType};

/// The entries sent for the child items of one group occurrence, or for the
/// top-level items of the form.
#[derive(Debug)]
pub(crate) struct Occurrence<'a> {
    /// Pointer of the occurrence itself.
    pub pointer: Pointer<'a>,
    /// How to point at a child item that was not sent.
    pub missing: MissingPointer<'a>,
    /// Entries in the order they were sent.
    entries: Vec<Entry<'a>>,
    /// Index in `entries` of the entry of each form item at this level, by
    /// the item's position, so that the walk over the form finds each
    /// entry without a lookup by linkId. Indexes, not the entries
    /// themselves, fill the table, so that it stays cheap to allocate for
    /// a form of hundreds of items.
    entry_of_item: Vec<Option<usize>>,
}

/// Target of findings about items that were not sent.
#[derive(Debug)]
pub(crate) enum MissingPointer<'a> {
    /// At the key the item would have under this pointer (native shape).
    Keyed(Pointer<'a>),
    /// At this pointer, the `item` array the item would be in (FHIR shape).
    Array(Pointer<'a>),
}

/// Answers or group occurrences sent for one form item.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// Pointer of the item's value (native) or its first entry (FHIR).
    pub pointer: Pointer<'a>,
    /// Answers of a question or display item, in order.
    pub answers: Vec<Answer<'a>>,
    /// Occurrences of a group, in order.
    pub occurrences: Vec<Occurrence<'a>>,
}

/// One submitted answer value.
#[derive(Debug)]
pub(crate) struct Answer<'a> {
    pub pointer: Pointer<'a>,
    pub value: &'a Value,
    /// The `value[x]` element name of a FHIR answer, such as
    /// `valueCoding`, or `None` for a native answer.
    pub fhir_kind: Option<&'a str>,
}

/// An RFC 6901 JSON Pointer into the submission, kept in parts. Most
/// answers get no finding, so [`Pointer::render`] builds the string only
/// when a finding needs it, and pointers below one object or array share
/// its base.
#[derive(Debug, Clone)]
pub(crate) struct Pointer<'a> {
    /// Escaped pointer of the enclosing object or `item` array, shared by
    /// every pointer below it.
    base: Rc<str>,
    tail: Tail<'a>,
}

/// Segments of a [`Pointer`] after its base.
#[derive(Debug, Clone, Copy)]
enum Tail<'a> {
    /// No segment: the pointer is its base.
    Empty,
    /// `/key`, escaped when rendered: a native value.
    Key(&'a str),
    /// `/key/index`: an element of a native array.
    KeyIndex(&'a str, usize),
    /// `/index`: an entry of a FHIR `item` array.
    Index(usize),
    /// `/{entry}/answer/{answer}/{kind}`: the `value[x]` of a FHIR answer.
    /// The element name is written as sent, without escaping.
    FhirValue { entry: usize, answer: usize, kind: &'a str },
}

impl<'a> Pointer<'a> {
    /// Returns the pointer `base`, which must be escaped already.
    pub(crate) fn new(base: &str) -> Pointer<'a> {
        Pointer { base: Rc::from(base), tail: Tail::Empty }
    }

    /// Returns the pointer of the native value at `key` of this object.
    pub(crate) fn key(&self, key: &'a str) -> Pointer<'a> {
        self.below(Tail::Key(key))
    }

    /// Returns the pointer of entry `entry` of the FHIR `item` array at
    /// this pointer.
    pub(crate) fn fhir_entry(&self, entry: usize) -> Pointer<'a> {
        self.below(Tail::Index(entry))
    }

    /// Returns the pointer of the `value[x]` element `kind` of answer
    /// `answer` of entry `entry` of the FHIR `item` array at this pointer.
    pub(crate) fn fhir_value(&self, entry: usize, answer: usize, kind: &'a str) -> Pointer<'a> {
        self.below(Tail::FhirValue { entry, answer, kind })
    }

    /// Returns the pointer of element `index` of the native array at this
    /// pointer, which must be a key's pointer.
    fn element(&self, index: usize) -> Pointer<'a> {
        match self.tail {
            Tail::Key(key) => Pointer { base: Rc::clone(&self.base), tail: Tail::KeyIndex(key, index) },
            _ => Pointer::new(&format!("{}/{index}", self.render())),
        }
    }

    /// Appends `tail` to this pointer. Only a pointer without a tail shares
    /// its base, so a deeper one renders its string first.
    fn below(&self, tail: Tail<'a>) -> Pointer<'a> {
        match self.tail {
            Tail::Empty => Pointer { base: Rc::clone(&self.base), tail },
            _ => Pointer { base: Rc::from(self.render()), tail },
        }
    }

    /// Builds the pointer's string.
    pub(crate) fn render(&self) -> String {
        let mut pointer = String::with_capacity(self.base.len() + 16);
        pointer.push_str(&self.base);
        // Writing to a String cannot fail.
        let _ = match self.tail {
            Tail::Empty => Ok(()),
            Tail::Key(key) => write!(pointer, "/{}", escape_pointer_segment(key)),
            Tail::KeyIndex(key, index) => write!(pointer, "/{}/{index}", escape_pointer_segment(key)),
            Tail::Index(index) => write!(pointer, "/{index}"),
            Tail::FhirValue { entry, answer, kind } => write!(pointer, "/{entry}/answer/{answer}/{kind}"),
        };
        pointer
    }
}

impl<'a> Occurrence<'a> {
    /// Creates an occurrence of `item_count` items with nothing sent yet.
    pub(crate) fn new(pointer: Pointer<'a>, missing: MissingPointer<'a>, item_count: usize) -> Occurrence<'a> {
        Occurrence { pointer, missing, entries: Vec::new(), entry_of_item: vec![None; item_count] }
    }

    /// Returns what was sent for the item at `position` of this level.
    pub(crate) fn entry(&self, position: usize) -> Option<&Entry<'a>> {
        let index = (*self.entry_of_item.get(position)?)?;
        self.entries.get(index)
    }

    /// Returns the entry of the item at `position`, which must be a
    /// position at this level, creating it with `pointer` when nothing was
    /// sent for the item yet.
    pub(crate) fn entry_mut(&mut self, position: usize, pointer: impl FnOnce() -> Pointer<'a>) -> &mut Entry<'a> {
        let index = *self.entry_of_item[position].get_or_insert_with(|| {
            self.entries.push(Entry { pointer: pointer(), answers: Vec::new(), occurrences: Vec::new() });
            self.entries.len() - 1
        });
        &mut self.entries[index]
    }

    /// Stores what was sent for the item at `position`, which must be a
    /// position at this level and have nothing stored yet.
    fn insert(&mut self, position: usize, entry: Entry<'a>) {
        self.entry_of_item[position] = Some(self.entries.len());
        self.entries.push(entry);
    }

    /// Returns the pointer for a finding about the item at `position`,
    /// which is `item`.
    pub(crate) fn pointer_for(&self, position: usize, item: &Item) -> String {
        if let Some(entry) = self.entry(position) {
            return entry.pointer.render();
        }
        match &self.missing {
            MissingPointer::Keyed(pointer) => format!("{}/{}", pointer.render(), escape_pointer_segment(&item.link_id)),
            MissingPointer::Array(pointer) => pointer.render(),
        }
    }
}

/// Finds the item with `link_id` among `items`, the items at `level` (the
/// positions of the enclosing groups), and returns its position too.
///
/// The form's linkId index finds it without comparing every linkId. A
/// linkId the index places elsewhere is searched for one by one, which
/// keeps the result the first match at this level even for a form whose
/// index does not fit it (built in code with a repeated linkId).
pub(crate) fn find_item<'f>(
    form: &Form,
    level: &[usize],
    items: &'f [Item],
    link_id: &str,
) -> Option<(usize, &'f Item)> {
    let indexed = form.item_positions(link_id).and_then(|positions| match positions.split_last() {
        Some((position, groups)) if groups == level => Some(*position),
        _ => None,
    });
    if let Some(position) = indexed
        && let Some(item) = items.get(position).filter(|item| item.link_id == link_id)
    {
        return Some((position, item));
    }
    items.iter().enumerate().find(|(_, item)| item.link_id == link_id)
}

/// Reads native answers: a JSON object keyed by linkId, where a group is an
/// object or an array of objects, and a question is a value or an array of
/// values. `null` means not answered.
pub(crate) fn read_native<'a>(
    form: &Form,
    answers: &'a Value,
    pointer: &str,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    read_native_level(form, &mut Vec::new(), &form.items, answers, Pointer::new(pointer), findings)
}

/// Reads the object `answers` for `items`, the items at `level`.
fn read_native_level<'a>(
    form: &Form,
    level: &mut Vec<usize>,
    items: &[Item],
    answers: &'a Value,
    pointer: Pointer<'a>,
    findings: &mut Vec<Finding>,
) -> Occurrence<'a> {
    let Some(object) = answers.as_object() else {
        findings.push(Finding { link_id: String::new(), pointer: pointer.render(), problem: wrong_group() });
        let missing = MissingPointer::Keyed(pointer.clone());
        return Occurrence::new(pointer, missing, items.len());
    };
    // Keys of this object are written under its own pointer, so they share
    // one base string.
    let base = match pointer.tail {
        Tail::Empty => pointer.clone(),
        _ => Pointer::new(&pointer.render()),
    };
    let mut occurrence = Occurrence::new(pointer, MissingPointer::Keyed(base.clone()), items.len());
    occurrence.entries.reserve(object.len());

    for (key, value) in object {
        let key_pointer = base.key(key);
        let Some((position, item)) = find_item(form, level, items, key) else {
            findings.push(Finding {
                link_id: key.clone(),
                pointer: key_pointer.render(),
                problem: Problem::UnknownItem,
            });
            continue;
        };
        let entry = if item.item_type == ItemType::Group {
            level.push(position);
            let entry = read_native_group(form, level, item, value, key_pointer, findings);
            level.pop();
            entry
        } else {
            read_native_answers(value, key_pointer)
        };
        occurrence.insert(position, entry);
    }
    occurrence
}

fn read_native_group<'a>(
    form: &Form,
    level: &mut Vec<usize>,
    item: &Item,
    value: &'a Value,
    pointer: Pointer<'a>,
    findings: &mut Vec<Finding>,
) -> Entry<'a> {
    let mut entry = Entry { pointer: pointer.clone(), answers: Vec::new(), occurrences: Vec::new() };
    let wrong_shape = |pointer: String| Finding { link_id: item.link_id.clone(), pointer, problem: wrong_group() };
    match value {
        Value::Null => {}
        Value::Object(_) => {
            entry.occurrences.push(read_native_level(form, level, &item.children, value, pointer, findings));
        }
        Value::Array(elements) => {
            for (position, element) in elements.iter().enumerate() {
                let element_pointer = pointer.element(position);
                if element.is_object() {
                    let occurrence = read_native_level(form, level, &item.children, element, element_pointer, findings);
                    entry.occurrences.push(occurrence);
                } else {
                    findings.push(wrong_shape(element_pointer.render()));
                }
            }
        }
        _ => findings.push(wrong_shape(pointer.render())),
    }
    entry
}

fn read_native_answers<'a>(value: &'a Value, pointer: Pointer<'a>) -> Entry<'a> {
    let answers = match value {
        Value::Null => Vec::new(),
        Value::Array(elements) => elements
            .iter()
            .enumerate()
            .filter(|(_, element)| !element.is_null())
            .map(|(position, element)| Answer { pointer: pointer.element(position), value: element, fhir_kind: None })
            .collect(),
        _ => vec![Answer { pointer: pointer.clone(), value, fhir_kind: None }],
    };
    Entry { pointer, answers, occurrences: Vec::new() }
}

pub(crate) fn wrong_group() -> Problem {
    Problem::WrongType { expected: Expected::Group, hint: None }
}
