//! The expression engine: computed items, cross-item rules, enable
//! expressions, trial scores and alerts, all evaluated as CEL programs.
//!
//! When a form loads, `compile` turns every expression into one CEL
//! program: native and trial-file expressions are CEL already, and FHIRPath
//! is translated by `fhirpath` (parser) and `lower` (translation) when it
//! stays inside the documented subset. Anything else is a load error with
//! its path, so nothing is evaluated approximately. The programs, their
//! dependencies and their evaluation order are kept in a [`RuleSet`] on
//! the form.
//!
//! On each submission, `evaluate` builds one CEL context from the valid,
//! enabled answers and runs every program against it: variables and
//! computed values first (in dependency order), then rules and alerts.
//! There is no IO and no async. An evaluation error (an empty operand in
//! arithmetic, a division by zero, a type mismatch) makes a result empty:
//! a computed item gets no value, a rule is not violated, an alert does not
//! fire. `EXPRESSIONS.md` documents the environment for form authors.

mod cel;
mod compile;
mod evaluate;
mod fhirpath;
mod lower;

use std::collections::{BTreeSet, HashMap};

use ::cel::common::ast::IdedExpr;

use crate::model::{ExpressionKind, OptionValue};
use crate::trial::Localized;
use crate::validate::Severity;

pub(crate) use compile::{attach_trial, compile_form};
pub(crate) use evaluate::{enabled_by_expression, evaluate};

/// Maximum length of an expression's text, in bytes.
pub(crate) const MAX_EXPRESSION_BYTES: usize = 4096;

/// Deepest nesting accepted: of brackets in the text, and of the compiled
/// tree. The CEL evaluator recurses once per level of the tree, and 32
/// levels stay well inside a 2 MiB thread stack even in debug builds.
pub(crate) const MAX_DEPTH: usize = 32;

/// Returns true for the expression kinds the engine evaluates. The loader
/// reports the others as not evaluated. Target constraints are not
/// expressions of the model but [`crate::model::RuleDefinition`]s.
pub(crate) fn is_evaluated_kind(kind: &ExpressionKind) -> bool {
    matches!(
        kind,
        ExpressionKind::CalculatedExpression | ExpressionKind::Variable | ExpressionKind::EnableWhenExpression
    )
}

/// Returns the linkId that a FHIR `targetConstraint` location such as
/// `item.where(linkId='1.2')` names, if it names one that way.
pub(crate) fn location_link_id(location: &str) -> Option<String> {
    fhirpath::last_link_id(location)
}

/// Reads of one program, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct References {
    /// Items whose answer value is read (`answers['X']`, `answer('X')`).
    pub values: BTreeSet<String>,
    /// Items whose option score is read (`ordinal('X')`).
    pub ordinals: BTreeSet<String>,
    /// Items whose presence is read (`answered('X')`).
    pub answered: BTreeSet<String>,
    /// Computed items and trial scores that are read.
    pub scores: BTreeSet<String>,
    /// True when `ordinal_sum()` is called.
    pub ordinal_sum: bool,
    /// True when `answers` is read other than with a literal key, so that
    /// every answer may be read.
    pub all_answers: bool,
    /// True when the `answers` map is read at all.
    pub answers_map: bool,
}

/// The compiled expressions of one form, shared by every submission.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    /// Items some program reads, with what each submission must extract.
    items: Vec<ItemFact>,
    item_index: HashMap<String, usize>,
    /// `(item position, field)` pairs that programs read as `@field/N`.
    fields: Vec<(usize, String)>,
    /// Variables, computed items and trial scores, in evaluation order:
    /// each comes after everything it reads.
    slots: Vec<Slot>,
    /// Positions in `slots` of the scores reported to the caller: computed
    /// items in form order, then trial scores in trial-file order.
    scores: Vec<usize>,
    rules: Vec<Rule>,
    alerts: Vec<AlertRule>,
    /// `enableWhenExpression` programs by the linkId of their item.
    enable: HashMap<String, Program>,
    /// True when a program reads the `answers` map as a whole (iterates
    /// it, or indexes it with a computed key), so that it must be built.
    answers_map: bool,
    /// True when a program calls `ordinal_sum()`.
    ordinal_sum: bool,
}

/// An item whose answer some program reads.
#[derive(Debug)]
struct ItemFact {
    link_id: String,
    /// The groups the item is in, outermost first, with whether each
    /// repeats: the way to its answers in the normalized answers.
    groups: Vec<(String, bool)>,
    repeats: bool,
    /// The answer is converted into a CEL value.
    needs_value: bool,
    /// The score of the chosen option is looked up.
    needs_ordinal: bool,
    /// Options that have a score, with the score as a double.
    ordinals: Vec<(OptionValue, f64)>,
    /// The item repeats or sits in a repeating group, so its answers are
    /// a list.
    many: bool,
}

/// A value computed once per submission.
#[derive(Debug)]
struct Slot {
    kind: SlotKind,
    program: Program,
}

#[derive(Debug)]
enum SlotKind {
    /// A FHIRPath variable, stored in the CEL context under `identifier`.
    Variable { identifier: String },
    /// The value of a computed item.
    Computed { link_id: String },
    /// A score declared in the trial file.
    Score { id: String },
}

/// A compiled expression and what it depends on, followed transitively.
#[derive(Debug)]
struct Program {
    expression: IdedExpr,
    /// Positions in `RuleSet::items` of the items it reads.
    items: Vec<usize>,
    /// True when it may read any answer (`ordinal_sum()`, `answers` read
    /// with a computed key).
    all_items: bool,
    /// Positions in `RuleSet::slots` of the slots it reads, in evaluation
    /// order.
    slots: Vec<usize>,
}

/// A cross-item rule.
#[derive(Debug)]
struct Rule {
    key: String,
    severity: Severity,
    message: Localized,
    /// linkId the finding is reported on, or "" for the whole submission.
    link_id: String,
    program: Program,
}

/// An alert rule of the trial file.
#[derive(Debug)]
struct AlertRule {
    id: String,
    severity: String,
    message: Localized,
    /// Items and score names the rule reads.
    items: Vec<String>,
    program: Program,
}

impl RuleSet {
    /// Returns the names of the scores reported for each submission, in the order
    /// [`evaluate`] reports them: computed items by linkId, then trial scores by id.
    pub(crate) fn score_names(&self) -> Vec<&str> {
        self.scores
            .iter()
            .filter_map(|position| match &self.slots.get(*position)?.kind {
                SlotKind::Computed { link_id } => Some(link_id.as_str()),
                SlotKind::Score { id } => Some(id.as_str()),
                SlotKind::Variable { .. } => None,
            })
            .collect()
    }

    /// Returns the message of the alert rule `id`, or `None` when the form
    /// has no such alert rule.
    pub(crate) fn alert_message(&self, id: &str) -> Option<&Localized> {
        self.alerts.iter().find(|alert| alert.id == id).map(|alert| &alert.message)
    }

    /// Returns true when a checked submission has nothing to compute:
    /// enable expressions run during validation, not after it.
    fn has_nothing_after_validation(&self) -> bool {
        self.slots.is_empty() && self.rules.is_empty() && self.alerts.is_empty()
    }
}
