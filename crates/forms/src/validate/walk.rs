//! The walk over the form's item tree: presence (`required`), answer and
//! occurrence counts, display items, and the normalized output.
//!
//! The walk follows the form, not the submission, so that items that were
//! not sent are found. What was sent but is not in the form was reported by
//! the readers in `input` and `fhir::response`.

use serde_json::{Map, Value};

use super::input::{Entry, Occurrence};
use super::value::{check_answer, is_unanswered};
use super::{Finding, Problem};
use crate::model::{Item, ItemType};

/// Normalized answers of one occurrence.
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    /// Valid answers keyed by linkId.
    pub answers: Map<String, Value>,
    /// True when any item below was answered, validly or not.
    pub answered: bool,
}

/// Checks the items of one occurrence and returns their normalized answers.
pub(crate) fn check_occurrence(items: &[Item], occurrence: &Occurrence<'_>, findings: &mut Vec<Finding>) -> Normalized {
    check_level(items, occurrence, false, findings)
}

/// `in_hidden_group` is true inside a hidden group. Its items are not shown
/// to the patient, so they are never required.
fn check_level(
    items: &[Item],
    occurrence: &Occurrence<'_>,
    in_hidden_group: bool,
    findings: &mut Vec<Finding>,
) -> Normalized {
    let mut normalized = Normalized::default();
    for item in items {
        let entry = occurrence.entries.get(&item.link_id);
        let required = item.required && !in_hidden_group && !is_exempt_from_required(item);
        match item.item_type {
            ItemType::Display => check_display(item, entry, findings),
            ItemType::Group => {
                check_group(item, entry, occurrence, required, in_hidden_group, findings, &mut normalized)
            }
            _ => check_question(item, entry, occurrence, required, findings, &mut normalized),
        }
    }
    normalized
}

/// Items whose presence a rule or a calculation decides, or that the
/// patient cannot see, are not checked for `required`.
fn is_exempt_from_required(item: &Item) -> bool {
    item.has_skip_logic() || item.is_calculated() || item.hidden
}

fn check_display(item: &Item, entry: Option<&Entry<'_>>, findings: &mut Vec<Finding>) {
    let Some(answer) = entry.and_then(|entry| entry.answers.first()) else {
        return;
    };
    findings.push(Finding {
        link_id: item.link_id.clone(),
        pointer: answer.pointer.clone(),
        problem: Problem::NotAnswerable,
    });
}

fn check_question(
    item: &Item,
    entry: Option<&Entry<'_>>,
    occurrence: &Occurrence<'_>,
    required: bool,
    findings: &mut Vec<Finding>,
    normalized: &mut Normalized,
) {
    let answers: Vec<_> =
        entry.into_iter().flat_map(|entry| &entry.answers).filter(|answer| !is_unanswered(item, answer)).collect();
    let Some(entry) = entry.filter(|_| !answers.is_empty()) else {
        if required {
            findings.push(finding(item, occurrence.pointer_for(item), Problem::Required));
        }
        return;
    };
    normalized.answered = true;

    let pointers: Vec<&str> = answers.iter().map(|answer| answer.pointer.as_str()).collect();
    let mut complete = check_count(item, &entry.pointer, &pointers, findings);
    let mut values = Vec::new();
    for answer in &answers {
        match check_answer(item, answer) {
            Ok(value) => values.push(value),
            Err(problems) => {
                complete = false;
                for (pointer, problem) in problems {
                    findings.push(finding(item, pointer, problem));
                }
            }
        }
    }

    if complete {
        let value = if item.repeats { Value::Array(values) } else { values.swap_remove(0) };
        normalized.answers.insert(item.link_id.clone(), value);
    }
}

fn check_group(
    item: &Item,
    entry: Option<&Entry<'_>>,
    occurrence: &Occurrence<'_>,
    required: bool,
    in_hidden_group: bool,
    findings: &mut Vec<Finding>,
    normalized: &mut Normalized,
) {
    let Some(entry) = entry.filter(|entry| !entry.occurrences.is_empty()) else {
        if required {
            findings.push(finding(item, occurrence.pointer_for(item), Problem::Required));
        }
        return;
    };

    let pointers: Vec<&str> = entry.occurrences.iter().map(|child| child.pointer.as_str()).collect();
    let complete = check_count(item, &entry.pointer, &pointers, findings);
    let mut occurrences = Vec::new();
    for child in &entry.occurrences {
        let hidden = in_hidden_group || item.hidden;
        let child_answers = check_level(&item.children, child, hidden, findings);
        if !child_answers.answered && required {
            findings.push(finding(item, child.pointer.clone(), Problem::Required));
        }
        normalized.answered |= child_answers.answered;
        if !child_answers.answers.is_empty() {
            occurrences.push(Value::Object(child_answers.answers));
        }
    }

    if complete && !occurrences.is_empty() {
        let value = if item.repeats { Value::Array(occurrences) } else { occurrences.swap_remove(0) };
        normalized.answers.insert(item.link_id.clone(), value);
    }
}

/// Checks the number of answers or occurrences against `min_occurs` and
/// the maximum. `pointers` has one pointer per answer or occurrence, and a
/// `too_many_repeats` finding points at the first one over the maximum.
/// Returns false when a limit is broken.
fn check_count(item: &Item, entry_pointer: &str, pointers: &[&str], findings: &mut Vec<Finding>) -> bool {
    let count = u32::try_from(pointers.len()).unwrap_or(u32::MAX);
    let mut within_limits = true;
    if let Some(min) = item.min_occurs
        && count < min
    {
        findings.push(finding(item, entry_pointer.to_owned(), Problem::TooFewRepeats { min, count }));
        within_limits = false;
    }
    if let Some(max) = item.effective_max_occurs()
        && count > max
    {
        let first_extra = usize::try_from(max).ok().and_then(|max| pointers.get(max)).unwrap_or(&entry_pointer);
        findings.push(finding(item, (*first_extra).to_owned(), Problem::TooManyRepeats { max, count }));
        within_limits = false;
    }
    within_limits
}

fn finding(item: &Item, pointer: String, problem: Problem) -> Finding {
    Finding { link_id: item.link_id.clone(), pointer, problem }
}
