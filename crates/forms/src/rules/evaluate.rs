//! Evaluation of a form's [`RuleSet`] on one submission.
//!
//! One CEL context is built per submission. Its variable resolver reads a
//! [`Facts`] value extracted once from the normalized answers: the bound
//! names of `cel::bind` (`@value/3`, `@ordinal/0`, `@score/2` ...) are
//! looked up by position and borrowed, so evaluation allocates little.
//! Slots are evaluated in the order the compiler chose, so every variable
//! and score is ready before a program reads it.
//!
//! A program that reads an item whose sent value was rejected is skipped:
//! the value is missing from the normalized answers, so the program would
//! read the item as unanswered, which it is not. Missing answers
//! (`required`) and answers to disabled items are not such a reason,
//! because for them unanswered is right.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ::cel::common::types::{CelBool, CelDouble, CelNull};
use ::cel::common::value::{CowVal, Val};
use ::cel::context::VariableResolver;
use ::cel::{Context, Value};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value as Json;

use super::cel::{ENVIRONMENT, json_to_cel, number, to_decimal};
use super::{ItemFact, Program, RuleSet, SlotKind};
use crate::model::{Form, Item, OptionValue};
use crate::primitive;
use crate::validate::{Alert, Checked, Finding, Problem, Score, Severity, escape_pointer_segment};

/// Computes the scores, checks the rules and fires the alerts of `form` on
/// a checked submission. Appends to `checked.scores`, `checked.alerts` and
/// `checked.findings` (`rule_violated` and `score_mismatch`).
///
/// `pointer_base` is the JSON Pointer of the answers in the request body,
/// as given to the check. Findings point at the item's key in the native
/// shape: the pointer base, then the linkIds of the enclosing groups and of
/// the item.
pub(crate) fn evaluate(form: &Form, checked: &mut Checked, pointer_base: &str) {
    let rule_set = form.rule_set.as_ref();
    if rule_set.has_nothing_after_validation() {
        return;
    }
    let rejected = Rejected::from_findings(rule_set, &checked.findings);
    let facts = Facts::collect(rule_set, &checked.normalized);
    let resolver = Resolver { facts: &facts };
    let mut context = Context::with_env(Arc::clone(&ENVIRONMENT));
    context.set_variable_resolver(&resolver);

    for (position, slot) in rule_set.slots.iter().enumerate() {
        run_slot(rule_set, &context, &facts, position, rejected.blocks(&slot.program));
    }

    for position in &rule_set.scores {
        let slot = &rule_set.slots[*position];
        let value = facts.score(*position);
        match &slot.kind {
            SlotKind::Computed { link_id } => {
                let sent = sent_value(form, link_id, &checked.normalized).cloned();
                let checkable = !rejected.blocks(&slot.program);
                if let Some(sent) = sent.as_ref().filter(|_| checkable)
                    && let Some(problem) = mismatch(link_id, value, sent)
                {
                    let pointer = item_pointer(form, link_id, pointer_base);
                    checked.findings.push(Finding { link_id: link_id.clone(), pointer, problem });
                }
                checked.scores.push(Score { name: link_id.clone(), value, sent });
            }
            SlotKind::Score { id } => checked.scores.push(Score { name: id.clone(), value, sent: None }),
            SlotKind::Variable { .. } => {}
        }
    }

    for rule in &rule_set.rules {
        let violated = !rejected.blocks(&rule.program) && run(&context, &rule.program) == Some(Value::Bool(false));
        if violated {
            let problem = Problem::RuleViolated {
                rule: rule.key.clone(),
                severity: rule.severity,
                message: rule.message.clone(),
            };
            let pointer = item_pointer(form, &rule.link_id, pointer_base);
            checked.findings.push(Finding { link_id: rule.link_id.clone(), pointer, problem });
        }
    }

    for alert in &rule_set.alerts {
        let fired = !rejected.blocks(&alert.program) && run(&context, &alert.program) == Some(Value::Bool(true));
        if fired {
            checked.alerts.push(Alert {
                rule: alert.id.clone(),
                severity: alert.severity.clone(),
                message: alert.message.clone(),
                items: alert.items.clone(),
            });
        }
    }
}

/// Evaluates the `enableWhenExpression` of `item`, for skip logic.
///
/// `answers` are normalized answers: an object keyed by linkId, where a
/// group is an object (an array of objects when it repeats), a repeating
/// question is an array, a Coding is `{system, code, display}` and a
/// quantity is `{value, unit, ...}`. Returns `None` when the item has no
/// such expression, and `Some(false)` when the expression is false or
/// empty (an evaluation error included).
pub(crate) fn enabled_by_expression(form: &Form, item: &Item, answers: &Json) -> Option<bool> {
    let rule_set = form.rule_set.as_ref();
    let program = rule_set.enable.get(&item.link_id)?;
    let facts = Facts::collect(rule_set, answers);
    let resolver = Resolver { facts: &facts };
    let mut context = Context::with_env(Arc::clone(&ENVIRONMENT));
    context.set_variable_resolver(&resolver);
    for position in &program.slots {
        run_slot(rule_set, &context, &facts, *position, false);
    }
    Some(run(&context, program) == Some(Value::Bool(true)))
}

/// Runs a program; `None` when it fails, which makes its result empty.
fn run(context: &Context<'_, '_>, program: &Program) -> Option<Value> {
    context.resolve(&program.expression).ok()
}

/// Evaluates the slot at `position` into `facts`, or leaves it empty when
/// `skip` is set.
fn run_slot(rule_set: &RuleSet, context: &Context<'_, '_>, facts: &Facts, position: usize, skip: bool) {
    let slot = &rule_set.slots[position];
    let value = if skip { None } else { run(context, &slot.program) };
    let computed = match &slot.kind {
        SlotKind::Variable { .. } => {
            let value: Option<Box<dyn Val>> = value.and_then(|value| value.try_into().ok());
            SlotValue::Variable(value)
        }
        SlotKind::Computed { .. } | SlotKind::Score { .. } => {
            let decimal = value.as_ref().and_then(number).and_then(to_decimal);
            let double = decimal.and_then(|decimal| decimal.to_f64()).map(CelDouble::from);
            SlotValue::Number(decimal, double)
        }
    };
    // Each slot is evaluated once per submission, so its cell is empty.
    let _ = facts.slots[position].set(computed);
}

/// The value of a slot for one submission.
enum SlotValue {
    /// A FHIRPath variable; `None` when it is empty.
    Variable(Option<Box<dyn Val>>),
    /// A computed item or trial score, as the decimal reported to the
    /// caller and the double that programs read.
    Number(Option<Decimal>, Option<CelDouble>),
}

/// The answers of one submission, extracted for the resolver.
struct Facts {
    /// The answer of each `RuleSet::items` entry, when it has one and a
    /// program reads its value: a list for an item with several answers.
    values: Vec<Option<Box<dyn Val>>>,
    answered: Vec<CelBool>,
    /// Score of the chosen option (summed over several answers), or
    /// `None` when no chosen option has one.
    ordinals: Vec<Option<CelDouble>>,
    ordinal_sum: CelDouble,
    /// Values of `RuleSet::fields`.
    fields: Vec<Option<Box<dyn Val>>>,
    /// The `answers` map, built only when a program reads it as a whole.
    answers_map: Option<Box<dyn Val>>,
    slots: Vec<OnceLock<SlotValue>>,
    /// `false` and `true`, to lend for `@scored/N`.
    booleans: [CelBool; 2],
}

/// Lends the bound names of a program the values of one submission.
struct Resolver<'f> {
    facts: &'f Facts,
}

static NULL: CelNull = CelNull;

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let facts = self.facts;
        if name == "answers" {
            return facts.answers_map.as_deref().map(CowVal::Borrowed);
        }
        let bound = name.strip_prefix('@')?;
        // A byte search, because `split_once` costs more than the rest of
        // the lookup on names this short.
        let (kind, position) = match bound.bytes().position(|byte| byte == b'/') {
            Some(slash) => (&bound[..slash], bound[slash + 1..].parse::<usize>().ok()?),
            None => (bound, 0),
        };
        let null = || CowVal::Borrowed(&NULL as &dyn Val);
        let lend = |value: Option<&'b (dyn Val + 'static)>| value.map_or_else(null, CowVal::Borrowed);
        let resolved = match kind {
            // An unanswered `answers['X']` is not defined, so reading it is
            // an error, as reading a missing map key is.
            "value" => return facts.values.get(position)?.as_deref().map(CowVal::Borrowed),
            "answer" => lend(facts.values.get(position)?.as_deref()),
            "field" => lend(facts.fields.get(position)?.as_deref()),
            "answered" => CowVal::Borrowed(facts.answered.get(position)?),
            "ordinal" => facts.ordinals.get(position)?.as_ref().map_or_else(null, |ordinal| CowVal::Borrowed(ordinal)),
            "ordinal_sum" => CowVal::Borrowed(&facts.ordinal_sum),
            "null" => null(),
            "score" | "scored" | "var" => match facts.slots.get(position)?.get() {
                Some(SlotValue::Number(_, double)) if kind == "scored" => {
                    CowVal::Borrowed(&facts.booleans[usize::from(double.is_some())])
                }
                Some(SlotValue::Number(_, double)) => {
                    double.as_ref().map_or_else(null, |double| CowVal::Borrowed(double))
                }
                Some(SlotValue::Variable(value)) => lend(value.as_deref()),
                None => null(),
            },
            _ => return None,
        };
        Some(resolved)
    }
}

impl Facts {
    fn collect(rule_set: &RuleSet, normalized: &Json) -> Facts {
        let count = rule_set.items.len();
        let mut values = Vec::with_capacity(count);
        let mut answered = Vec::with_capacity(count);
        let mut ordinals = Vec::with_capacity(count);
        let mut answers = Vec::new();
        let mut map_entries = HashMap::new();
        for fact in &rule_set.items {
            answers.clear();
            collect_answers(fact, &fact.groups, normalized, &mut answers);
            answered.push(CelBool::from(!answers.is_empty()));
            let ordinal = if fact.needs_ordinal {
                answers.iter().filter_map(|answer| option_ordinal(fact, answer)).reduce(|a, b| a + b)
            } else {
                None
            };
            ordinals.push(ordinal.map(CelDouble::from));

            let value = match answers.as_slice() {
                [] => None,
                _ if !fact.needs_value => None,
                [answer] if !fact.many => Some(json_to_cel(answer)),
                many => Some(Value::List(Arc::new(many.iter().map(|answer| json_to_cel(answer)).collect()))),
            };
            if rule_set.answers_map
                && let Some(value) = &value
            {
                map_entries.insert(fact.link_id.clone(), value.clone());
            }
            values.push(value.and_then(|value| value.try_into().ok()));
        }

        let fields = rule_set
            .fields
            .iter()
            .map(|(position, field)| {
                let value = values.get(*position).and_then(Option::as_deref)?;
                let value = Value::try_from(value).ok()?;
                let Value::Map(map) = value else {
                    return None;
                };
                let field = map.get(&::cel::objects::KeyRef::String(field))?.clone();
                field.try_into().ok()
            })
            .collect();
        let ordinal_sum = if rule_set.ordinal_sum {
            ordinals.iter().flatten().map(|ordinal: &CelDouble| *ordinal.inner()).sum()
        } else {
            0.0
        };
        let answers_map = rule_set.answers_map.then(|| Value::from(map_entries).try_into().ok()).flatten();

        Facts {
            values,
            answered,
            ordinals,
            ordinal_sum: CelDouble::from(ordinal_sum),
            fields,
            answers_map,
            slots: (0..rule_set.slots.len()).map(|_| OnceLock::new()).collect(),
            booleans: [CelBool::from(false), CelBool::from(true)],
        }
    }

    fn score(&self, position: usize) -> Option<Decimal> {
        match self.slots.get(position)?.get()? {
            SlotValue::Number(decimal, _) => *decimal,
            SlotValue::Variable(_) => None,
        }
    }
}

/// Collects the answers of one item from the normalized answers, through
/// its groups; a repeating group contributes each occurrence's answers.
fn collect_answers<'j>(fact: &ItemFact, groups: &[(String, bool)], level: &'j Json, answers: &mut Vec<&'j Json>) {
    let Some(object) = level.as_object() else {
        return;
    };
    let Some(((group, _), rest)) = groups.split_first() else {
        match object.get(&fact.link_id) {
            None | Some(Json::Null) => {}
            Some(Json::Array(values)) if fact.repeats => answers.extend(values.iter()),
            Some(value) => answers.push(value),
        }
        return;
    };
    match object.get(group) {
        Some(Json::Array(occurrences)) => {
            for occurrence in occurrences {
                collect_answers(fact, rest, occurrence, answers);
            }
        }
        Some(occurrence) => collect_answers(fact, rest, occurrence, answers),
        None => {}
    }
}

/// Returns the score of the option an answer chose, if it has one. A
/// Coding matches by code, and by system when both have one.
fn option_ordinal(fact: &ItemFact, answer: &Json) -> Option<f64> {
    // A Coding's fields are read once here, not once per option.
    let (answer_code, answer_system) = match answer {
        Json::Object(coding) => {
            (coding.get("code").and_then(Json::as_str), coding.get("system").and_then(Json::as_str))
        }
        _ => (None, None),
    };
    let chosen = |option: &OptionValue| match (option, answer) {
        (OptionValue::Coding { system, code, .. }, Json::Object(_)) => {
            let same_code = answer_code == Some(code.as_str());
            let same_system = match (system.as_deref(), answer_system) {
                (Some(expected), Some(found)) => expected == found,
                _ => true,
            };
            same_code && same_system
        }
        (OptionValue::Integer(expected), Json::Number(found)) => found.as_i64() == Some(*expected),
        (
            OptionValue::String(expected) | OptionValue::Date(expected) | OptionValue::Time(expected),
            Json::String(found),
        ) => expected == found,
        _ => false,
    };
    fact.ordinals.iter().find(|(option, _)| chosen(option)).map(|(_, ordinal)| *ordinal)
}

/// Items whose sent value was rejected, which programs reading them skip.
struct Rejected {
    items: Vec<bool>,
    any: bool,
}

impl Rejected {
    fn from_findings(rule_set: &RuleSet, findings: &[Finding]) -> Rejected {
        let mut rejected = Rejected { items: vec![false; rule_set.items.len()], any: false };
        let invalid_value = |problem: &Problem| {
            let unanswered =
                matches!(problem, Problem::Required | Problem::AnsweredWhileDisabled | Problem::UnknownItem);
            problem.severity() == Severity::Reject && !unanswered
        };
        for finding in findings.iter().filter(|finding| invalid_value(&finding.problem)) {
            rejected.any = true;
            if let Some(position) = rule_set.item_index.get(&finding.link_id) {
                rejected.items[*position] = true;
            }
        }
        rejected
    }

    fn blocks(&self, program: &Program) -> bool {
        (program.all_items && self.any) || program.items.iter().any(|position| self.items[*position])
    }
}

/// Finds the value sent for an item in the normalized answers, through
/// its enclosing groups. An item in a repeating group has no single value.
fn sent_value<'j>(form: &Form, link_id: &str, normalized: &'j Json) -> Option<&'j Json> {
    let path = form.item_path(link_id)?;
    let mut value = normalized;
    for item in path {
        value = value.as_object()?.get(&item.link_id)?;
    }
    Some(value)
}

/// Compares the value a client sent for a computed item with the computed
/// one, as decimals (a quantity by its value).
fn mismatch(link_id: &str, computed: Option<Decimal>, sent: &Json) -> Option<Problem> {
    let sent_number = match sent {
        Json::Number(number) => primitive::decimal_from_json(number),
        Json::Object(quantity) => {
            quantity.get("value").and_then(Json::as_number).and_then(primitive::decimal_from_json)
        }
        _ => None,
    };
    if sent_number.is_some() && sent_number == computed {
        return None;
    }
    let sent_text = sent_number.map_or_else(|| sent.to_string(), |number| number.normalize().to_string());
    Some(Problem::ScoreMismatch {
        score: link_id.to_owned(),
        computed: computed.map(|number| number.to_string()).unwrap_or_default(),
        sent: sent_text,
    })
}

/// Builds the pointer of an item in the native shape: the base, then the
/// escaped linkIds of its groups and of the item. An empty linkId points
/// at the base.
fn item_pointer(form: &Form, link_id: &str, pointer_base: &str) -> String {
    let Some(path) = form.item_path(link_id) else {
        return pointer_base.to_owned();
    };
    let mut pointer = pointer_base.to_owned();
    for item in path {
        pointer.push('/');
        pointer.push_str(&escape_pointer_segment(&item.link_id));
    }
    pointer
}
