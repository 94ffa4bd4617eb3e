//! The walk over the form's item tree: skip logic, presence (`required`),
//! answer and occurrence counts, display items, and the normalized output.
//!
//! The walk follows the form, not the submission, so that items that were
//! not sent are found. What was sent but is not in the form was reported by
//! the readers in `input` and `fhir::response`. Each item's state comes
//! from `enable` before the item is checked: a disabled item gets only
//! `answered_while_disabled` findings for what was sent, and none of its
//! answers reach the normalized output.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::input::{Entry, Occurrence, Pointer};
use super::value::{check_answer, is_unanswered};
use super::{Finding, Problem};
use crate::enable::{self, Evaluator, Scope, State};
use crate::model::{Form, Item, ItemType};
use crate::rules;

/// Normalized answers of one occurrence.
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    /// Valid answers keyed by linkId.
    pub answers: Map<String, Value>,
    /// True when any enabled item below was answered, validly or not.
    pub answered: bool,
}

/// Checks the top-level occurrence of a submission and returns its
/// normalized answers.
pub(crate) fn check_occurrence(form: &Form, occurrence: &Occurrence<'_>, findings: &mut Vec<Finding>) -> Normalized {
    let expressions = evaluate_enable_expressions(form, occurrence);
    let mut walk = Walk { evaluator: Evaluator::new(form, expressions), findings };
    walk.check_level(&Scope::top(occurrence), false)
}

/// Evaluates the form's `enableWhenExpression`s with the rule engine and
/// returns their results by linkId. The expressions read the normalized
/// answers of a first walk, in which every item they control counts as
/// enabled. Forms without such expressions skip that walk.
///
/// NOTE: this is one pass, not a fixed point, so an expression that reads
/// an item controlled by another expression reads that item's answer even
/// when the other expression disables it. Each item gets one result for
/// all its occurrences, because the engine evaluates an expression once
/// per submission.
fn evaluate_enable_expressions(form: &Form, occurrence: &Occurrence<'_>) -> HashMap<String, bool> {
    let link_ids = enable::plan(form).expression_items();
    if link_ids.is_empty() {
        return HashMap::new();
    }
    let mut discarded = Vec::new();
    let mut first_walk = Walk { evaluator: Evaluator::new(form, HashMap::new()), findings: &mut discarded };
    let answers = Value::Object(first_walk.check_level(&Scope::top(occurrence), false).answers);

    let mut results = HashMap::new();
    for link_id in link_ids {
        let Some(item) = form.item(link_id) else {
            continue;
        };
        if let Some(enabled) = rules::enabled_by_expression(form, item, &answers) {
            results.insert(link_id.clone(), enabled);
        }
    }
    results
}

struct Walk<'f, 'w> {
    evaluator: Evaluator<'f>,
    findings: &'w mut Vec<Finding>,
}

/// Properties that a question or group inherits from the walk above it.
#[derive(Clone, Copy)]
struct Context {
    state: State,
    required: bool,
    /// True inside a hidden group. Its items are not shown to the patient,
    /// so they are never required.
    in_hidden_group: bool,
}

impl Walk<'_, '_> {
    fn check_level(&mut self, scope: &Scope<'_, '_>, in_hidden_group: bool) -> Normalized {
        let mut normalized = Normalized::default();
        for (position, item) in scope.items(self.evaluator.form()).iter().enumerate() {
            let entry = scope.occurrence().entry(position);
            let state = self.evaluator.state(item, scope);
            if state == State::Disabled {
                self.report_disabled(item, entry);
                continue;
            }

            // An undecided item depends on an answer that has a finding
            // already, so a `required` finding would only repeat it. An
            // expression without a result, a calculation, or hiding from
            // the patient exempts an item too.
            let exempt = !self.evaluator.is_decided(item) || item.is_calculated() || item.hidden;
            let required = item.required && state == State::Enabled && !in_hidden_group && !exempt;
            let context = Context { state, required, in_hidden_group };
            match item.item_type {
                ItemType::Display => self.check_display(item, entry),
                ItemType::Group => self.check_group(position, item, entry, scope, context, &mut normalized),
                _ => self.check_question(position, item, entry, scope, context, &mut normalized),
            }
        }
        normalized
    }

    fn check_display(&mut self, item: &Item, entry: Option<&Entry<'_>>) {
        let Some(answer) = entry.and_then(|entry| entry.answers.first()) else {
            return;
        };
        self.findings.push(finding(item, answer.pointer.render(), Problem::NotAnswerable));
    }

    fn check_question<'e>(
        &mut self,
        position: usize,
        item: &Item,
        entry: Option<&'e Entry<'_>>,
        scope: &Scope<'_, '_>,
        context: Context,
        normalized: &mut Normalized,
    ) {
        let given_answers = |entry: &'e Entry<'_>| entry.answers.iter().filter(|answer| !is_unanswered(item, answer));
        let Some(entry) = entry.filter(|entry| given_answers(entry).next().is_some()) else {
            if context.required {
                self.findings.push(finding(item, scope.occurrence().pointer_for(position, item), Problem::Required));
            }
            return;
        };
        normalized.answered = true;

        let pointer_of = |index: usize| given_answers(entry).nth(index).map(|answer| &answer.pointer);
        let mut complete = check_count(item, &entry.pointer, given_answers(entry).count(), pointer_of, self.findings);
        let mut values = Vec::new();
        for answer in given_answers(entry) {
            match check_answer(item, answer) {
                Ok(value) => values.push(value),
                Err(problems) => {
                    complete = false;
                    for (pointer, problem) in problems {
                        self.findings.push(finding(item, pointer, problem));
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
        &mut self,
        position: usize,
        item: &Item,
        entry: Option<&Entry<'_>>,
        scope: &Scope<'_, '_>,
        context: Context,
        normalized: &mut Normalized,
    ) {
        let Some(entry) = entry.filter(|entry| !entry.occurrences.is_empty()) else {
            if context.required {
                self.findings.push(finding(item, scope.occurrence().pointer_for(position, item), Problem::Required));
            }
            return;
        };

        let pointer_of = |index: usize| entry.occurrences.get(index).map(|child| &child.pointer);
        let complete = check_count(item, &entry.pointer, entry.occurrences.len(), pointer_of, self.findings);
        let hidden = context.in_hidden_group || item.hidden;
        let mut occurrences = Vec::new();
        for child in &entry.occurrences {
            let child_scope = scope.child(item, child, context.state);
            let child_answers = self.check_level(&child_scope, hidden);
            if !child_answers.answered && context.required {
                self.findings.push(finding(item, child.pointer.render(), Problem::Required));
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

    /// Reports every answer sent for a disabled item, or anywhere inside a
    /// disabled group, with one `answered_while_disabled` finding each.
    /// A value sent for a display item stays `not_answerable`.
    fn report_disabled(&mut self, item: &Item, entry: Option<&Entry<'_>>) {
        let Some(entry) = entry else {
            return;
        };
        match item.item_type {
            ItemType::Display => self.check_display(item, Some(entry)),
            ItemType::Group => {
                for occurrence in &entry.occurrences {
                    for (position, child) in item.children.iter().enumerate() {
                        self.report_disabled(child, occurrence.entry(position));
                    }
                }
            }
            _ => {
                for answer in entry.answers.iter().filter(|answer| !is_unanswered(item, answer)) {
                    self.findings.push(finding(item, answer.pointer.render(), Problem::AnsweredWhileDisabled));
                }
            }
        }
    }
}

/// Checks the number of answers or occurrences against `min_occurs` and
/// the maximum. `pointer_of` returns the pointer of an answer or occurrence
/// by its index, and a `too_many_repeats` finding points at the first one
/// over the maximum. Returns false when a limit is broken.
fn check_count<'p>(
    item: &Item,
    entry_pointer: &'p Pointer<'_>,
    count: usize,
    pointer_of: impl Fn(usize) -> Option<&'p Pointer<'p>>,
    findings: &mut Vec<Finding>,
) -> bool {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let mut within_limits = true;
    if let Some(min) = item.min_occurs
        && count < min
    {
        findings.push(finding(item, entry_pointer.render(), Problem::TooFewRepeats { min, count }));
        within_limits = false;
    }
    if let Some(max) = item.effective_max_occurs()
        && count > max
    {
        let first_extra = usize::try_from(max).ok().and_then(&pointer_of).unwrap_or(entry_pointer);
        findings.push(finding(item, first_extra.render(), Problem::TooManyRepeats { max, count }));
        within_limits = false;
    }
    within_limits
}

fn finding(item: &Item, pointer: String, problem: Problem) -> Finding {
    Finding { link_id: item.link_id.clone(), pointer, problem }
}
