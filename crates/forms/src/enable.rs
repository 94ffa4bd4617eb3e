//! Evaluation of skip logic (`enableWhen`) on a submission: which item
//! occurrences are enabled, following FHIR R4 `Questionnaire.item.enableWhen`.
//!
//! The rules, which `NATIVE_FORMAT.md` documents for form authors:
//!
//! - `exists` with `true` holds when the question has an answer, and with
//!   `false` when it has none. Every other operator holds when ANY answer of
//!   the question satisfies it, so a repeating question needs one matching
//!   answer. A question without an answer satisfies no other operator,
//!   `!=` included: R4 defines the condition as "the question has an
//!   answer that ...", while some clients (lforms) treat a missing answer
//!   as not equal. epro follows R4.
//! - Integer and decimal values compare as numbers. Strings compare by
//!   Unicode code point, case-sensitively. Booleans and Codings support
//!   only `=` and `!=`, and two Codings are equal when their codes are
//!   equal and, when both have a system, their systems are equal.
//! - Dates and dateTimes compare as the periods they cover: a full
//!   dateTime is one instant (offsets are applied), a date is its UTC day,
//!   month or year. Two values are equal when their periods are the same,
//!   and one is before the other when its period ends before the other
//!   starts. Values whose periods overlap without being the same, such as
//!   `2024` and `2024-05`, are neither equal nor ordered, so every
//!   operator but `exists` is false for them.
//! - Quantities compare by value when their units match (by code and
//!   system, otherwise by unit text). There is no unit conversion, so an
//!   answer in another unit satisfies no operator but `exists`.
//! - `enableBehavior` `any` needs one condition to hold and `all` (also
//!   used when the form gives none) needs every condition.
//! - A disabled group disables everything inside it, and a condition on a
//!   disabled question sees that question as unanswered, whatever was sent.
//! - Inside a repeating group, a condition on a question of the same group
//!   reads the occurrence the item is in (the nearest-ancestor rule). A
//!   question inside repeating groups that do not contain the item is read
//!   in every occurrence, so any occurrence's answer can satisfy it.
//! - An answer with a finding (of wrong type, out of range ...) cannot be
//!   compared. A condition that depends on one is undecided unless another
//!   answer decides it, and so are the items it controls: they are checked
//!   like enabled items but not reported as `required`. The submission is
//!   rejected for the first finding anyway, so this only avoids follow-on
//!   findings.
//!
//! The [`Plan`] is built once per form: it locates every condition's
//! question relative to the conditional item and reads its `answer[x]`.
//! The [`Evaluator`] then decides each item occurrence of one submission
//! on demand, remembering what it decided, so conditions may refer to
//! items later in the form and to items that are conditional themselves.

use std::collections::HashMap;
use std::ops::Not;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::enable_check::{Graph, Target};
use crate::model::{EnableBehavior, EnableWhen, EnableWhenOperator, ExpressionKind, Form, Item, ItemType, OptionValue};
use crate::primitive::{self, DateTimeError, FhirDate, FhirDateTime, FhirTime};
use crate::validate::input::{Answer, Occurrence};
use crate::validate::value::{check_answer, is_unanswered};

/// Whether an item occurrence is shown to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Enabled,
    Disabled,
    /// A condition depends on an answer that has a finding, so the state is
    /// not known. Such an item is checked as enabled but not required.
    Undecided,
}

/// The type of a condition's `answer[x]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerType {
    Boolean,
    Integer,
    Decimal,
    String,
    Date,
    DateTime,
    Time,
    Coding,
    Quantity,
}

/// The value a condition compares answers with, read from its `answer[x]`
/// for the type of its question.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Boolean(bool),
    Number(Decimal),
    String(String),
    /// A date or dateTime, as the period of moments it covers.
    Moment(FhirDateTime),
    Time(FhirTime),
    Coding {
        system: Option<String>,
        code: String,
    },
    Quantity {
        value: Decimal,
        unit: QuantityUnit,
    },
}

/// The unit fields of a quantity operand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct QuantityUnit {
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
}

/// A condition's answer read for its question.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadAnswer {
    pub operand: Operand,
    /// The type the answer was read as, when its `answer[x]` type does not
    /// fit the question but its text is a valid value of the question's
    /// type, such as `answerInteger: "2022-09"` on a date question.
    pub reread_as: Option<AnswerType>,
}

/// Why a condition's answer cannot be used. `on_operator` tells whether
/// the operator, rather than the answer, is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnswerError {
    pub message: String,
    pub on_operator: bool,
}

/// Conditions of every item of a form that has `enableWhen`, ready to be
/// evaluated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Rules by the linkId of the conditional item.
    rules: HashMap<String, Rule>,
    /// Items with an `enableWhenExpression`, which the rule engine decides.
    expression_items: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    behavior: EnableBehavior,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Condition {
    operator: EnableWhenOperator,
    /// `None` when the answer does not fit the question, which the loader
    /// reports as an error.
    operand: Option<Operand>,
    /// `None` when the question is not a question item of the form, which
    /// the loader reports as an error too.
    route: Option<Route>,
}

/// Path from the occurrence that contains a conditional item to the
/// question of one of its conditions.
#[derive(Debug, Clone)]
struct Route {
    /// Number of group occurrences to go up, to the innermost group that
    /// contains both the item and the question (or the form's top level).
    up: usize,
    /// Child positions from there down to the question: the groups in
    /// between, then the question itself.
    down: Vec<usize>,
}

/// One occurrence on the path from the form's top level down to an item,
/// linked to the occurrences above it.
pub(crate) struct Scope<'s, 'i> {
    /// The group this is an occurrence of, or `None` at the top level.
    group: Option<&'s Item>,
    occurrence: &'s Occurrence<'i>,
    parent: Option<&'s Scope<'s, 'i>>,
    /// State of the group, which every item inside inherits.
    state: State,
}

/// Decides item states for one submission.
pub(crate) struct Evaluator<'f> {
    form: &'f Form,
    plan: &'f Plan,
    /// States decided so far, keyed by the addresses of the item and of the
    /// occurrence that contains it. Both are borrowed for the whole
    /// evaluation, so the addresses stay unique.
    decided: HashMap<(usize, usize), State>,
    /// Results of `enableWhenExpression`s by linkId, one per item whatever
    /// its occurrence. An item that has an expression but no result here is
    /// checked like an enabled item but not required.
    expressions: HashMap<String, bool>,
}

/// Kleene three-valued logic for conditions whose inputs may be undecided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

/// Answers of a condition's question seen so far, over every occurrence
/// the question is read in.
struct Seen {
    answered: Truth,
    matched: Truth,
}

/// Result of comparing an answer with an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Less,
    Equal,
    Greater,
    /// Different values of a kind without order, or of different kinds.
    Unequal,
    /// Values that cannot be compared: overlapping periods that are not the
    /// same, or quantities in different units.
    Incomparable,
}

impl Plan {
    /// Builds the plan of a form. Never fails: a condition whose question
    /// or answer is unusable stays undecided, and the loader has reported
    /// it already.
    ///
    /// `Form::new` does not run the loader's checks, so a form built in
    /// code may have cycles. A condition whose question depends on the
    /// conditional item again is undecided too, which keeps the result
    /// independent of the order items are evaluated in.
    pub(crate) fn build(form: &Form) -> Plan {
        let graph = Graph::new(form);
        let components = graph.components();

        let mut rules = HashMap::new();
        let mut expression_items = Vec::new();
        for (node, entry) in graph.nodes.iter().enumerate() {
            let item = entry.item;
            if has_enable_expression(item) {
                expression_items.push(item.link_id.clone());
            }
            if item.enable_when.is_empty() || rules.contains_key(&item.link_id) {
                continue;
            }
            let conditions = item
                .enable_when
                .iter()
                .map(|condition| {
                    let question = match graph.target(node, condition) {
                        Target::Question(question) if components[question] != components[node] => Some(question),
                        _ => None,
                    };
                    let question_item = question.map(|question| graph.nodes[question].item);
                    Condition {
                        operator: condition.operator,
                        operand: question_item
                            .and_then(|item| read_answer(item, condition).ok())
                            .map(|read| read.operand),
                        route: question.map(|question| route(&graph, node, question)),
                    }
                })
                .collect();
            let behavior = item.enable_behavior.unwrap_or(EnableBehavior::All);
            rules.insert(item.link_id.clone(), Rule { behavior, conditions });
        }
        Plan { rules, expression_items }
    }

    /// Returns the linkIds of the items that have an `enableWhenExpression`.
    pub(crate) fn expression_items(&self) -> &[String] {
        &self.expression_items
    }
}

/// Returns true when the item has an `enableWhenExpression`.
pub(crate) fn has_enable_expression(item: &Item) -> bool {
    item.expressions.iter().any(|expression| expression.kind == ExpressionKind::EnableWhenExpression)
}

/// Finds the way from the occurrence holding the item at `node` to its
/// `question`, through their innermost common group.
fn route(graph: &Graph<'_>, node: usize, question: usize) -> Route {
    let item_groups = graph.ancestors(node);
    let question_groups = graph.ancestors(question);
    let common = item_groups.iter().zip(&question_groups).take_while(|(left, right)| left == right).count();
    let down = question_groups[common..].iter().chain([&question]).map(|node| graph.nodes[*node].position).collect();
    Route { up: item_groups.len() - common, down }
}

/// Returns the skip-logic plan of a form, building it on first use.
pub(crate) fn plan(form: &Form) -> &Plan {
    form.enable_plan.get_or_init(|| Plan::build(form))
}

impl<'s, 'i> Scope<'s, 'i> {
    /// Returns the scope of the form's top-level items, which are enabled
    /// unless their own conditions disable them.
    pub(crate) fn top(occurrence: &'s Occurrence<'i>) -> Scope<'s, 'i> {
        Scope { group: None, occurrence, parent: None, state: State::Enabled }
    }

    /// Returns the scope of one occurrence of `group`, an item of this
    /// scope whose state is `state`.
    pub(crate) fn child<'c>(&'c self, group: &'c Item, occurrence: &'c Occurrence<'i>, state: State) -> Scope<'c, 'i> {
        Scope { group: Some(group), occurrence, parent: Some(self), state }
    }

    /// Returns the items of this occurrence in form order.
    pub(crate) fn items<'f>(&self, form: &'f Form) -> &'f [Item]
    where
        's: 'f,
    {
        self.group.map_or(form.items.as_slice(), |group| group.children.as_slice())
    }

    pub(crate) fn occurrence(&self) -> &'s Occurrence<'i> {
        self.occurrence
    }
}

impl<'f> Evaluator<'f> {
    /// Creates an evaluator for one submission, building the form's plan
    /// the first time the form is used. `expressions` contains the results
    /// of the `enableWhenExpression`s that were evaluated.
    pub(crate) fn new(form: &'f Form, expressions: HashMap<String, bool>) -> Evaluator<'f> {
        let plan = plan(form);
        Evaluator { form, plan, decided: HashMap::new(), expressions }
    }

    pub(crate) fn form(&self) -> &'f Form {
        self.form
    }

    /// Returns true when the item's state does not depend on an
    /// `enableWhenExpression` that has no result.
    pub(crate) fn is_decided(&self, item: &Item) -> bool {
        !has_enable_expression(item) || self.expressions.contains_key(&item.link_id)
    }

    /// Returns the state of `item`, one of the items of `scope`.
    pub(crate) fn state(&mut self, item: &Item, scope: &Scope<'_, '_>) -> State {
        let plan = self.plan;
        let mut inherited = scope.state;
        // Most items have no skip logic of their own, and checking that
        // first saves two lookups by linkId for each of them.
        let unconditional = item.enable_when.is_empty() && !has_enable_expression(item);
        if inherited == State::Disabled || unconditional || (plan.rules.is_empty() && self.expressions.is_empty()) {
            return inherited;
        }
        if let Some(enabled) = self.expressions.get(&item.link_id) {
            inherited = State::from(Truth::from(inherited).and(Truth::from(*enabled)));
        }
        let Some(rule) = plan.rules.get(item.link_id.as_str()).filter(|_| inherited != State::Disabled) else {
            return inherited;
        };

        let key = (std::ptr::from_ref(item).addr(), std::ptr::from_ref(scope.occurrence).addr());
        if let Some(state) = self.decided.get(&key) {
            return *state;
        }
        // Reaching this item again while its own conditions are evaluated
        // means a cycle. The loader rejects cycles, but `Form::new` does
        // not, so the entry also ends the recursion.
        self.decided.insert(key, State::Undecided);
        let state = State::from(Truth::from(inherited).and(self.rule(rule, scope)));
        self.decided.insert(key, state);
        state
    }

    fn rule(&mut self, rule: &Rule, scope: &Scope<'_, '_>) -> Truth {
        let (mut combined, decisive) = match rule.behavior {
            EnableBehavior::All => (Truth::True, Truth::False),
            EnableBehavior::Any => (Truth::False, Truth::True),
        };
        for condition in &rule.conditions {
            let truth = self.condition(condition, scope);
            combined = match rule.behavior {
                EnableBehavior::All => combined.and(truth),
                EnableBehavior::Any => combined.or(truth),
            };
            if combined == decisive {
                break;
            }
        }
        combined
    }

    fn condition(&mut self, condition: &Condition, scope: &Scope<'_, '_>) -> Truth {
        let (Some(route), Some(operand)) = (&condition.route, &condition.operand) else {
            return Truth::Unknown;
        };
        let mut base = scope;
        for _ in 0..route.up {
            let Some(parent) = base.parent else {
                return Truth::Unknown;
            };
            base = parent;
        }

        let mut seen = Seen { answered: Truth::False, matched: Truth::False };
        self.read_question(condition, operand, base, &route.down, &mut seen);
        match (condition.operator, operand) {
            (EnableWhenOperator::Exists, Operand::Boolean(true)) => seen.answered,
            (EnableWhenOperator::Exists, _) => !seen.answered,
            _ => seen.matched,
        }
    }

    /// Follows `down` from `scope` to the question, through every
    /// occurrence of the groups in between, and adds what its answers show
    /// to `seen`.
    fn read_question(
        &mut self,
        condition: &Condition,
        operand: &Operand,
        scope: &Scope<'_, '_>,
        down: &[usize],
        seen: &mut Seen,
    ) {
        let form = self.form;
        let Some((position, rest)) = down.split_first() else {
            return;
        };
        let Some(item) = scope.items(form).get(*position) else {
            seen.answered = seen.answered.or(Truth::Unknown);
            seen.matched = seen.matched.or(Truth::Unknown);
            return;
        };
        let state = self.state(item, scope);
        let entry = scope.occurrence.entry(*position);

        if !rest.is_empty() {
            let occurrences = entry.map(|entry| entry.occurrences.as_slice()).unwrap_or_default();
            for occurrence in occurrences {
                let child = scope.child(item, occurrence, state);
                self.read_question(condition, operand, &child, rest, seen);
            }
            return;
        }

        let answers = entry.map(|entry| entry.answers.as_slice()).unwrap_or_default();
        let (answered, matched) = match_answers(item, answers, condition.operator, operand);
        let visible = Truth::from(state);
        seen.answered = seen.answered.or(visible.and(answered));
        seen.matched = seen.matched.or(visible.and(matched));
    }
}

/// Returns whether the question has an answer, and whether an answer
/// satisfies the operator. An answer with a finding makes the second
/// `Unknown` unless another answer satisfies the operator.
fn match_answers(
    question: &Item,
    answers: &[Answer<'_>],
    operator: EnableWhenOperator,
    operand: &Operand,
) -> (Truth, Truth) {
    let mut answered = false;
    let mut unreadable = false;
    for answer in answers.iter().filter(|answer| !is_unanswered(question, answer)) {
        answered = true;
        if operator == EnableWhenOperator::Exists {
            break;
        }
        match check_answer(question, answer) {
            Ok(value) if satisfies(operator, compare(&value, operand)) => return (Truth::True, Truth::True),
            Ok(_) => {}
            Err(_) => unreadable = true,
        }
    }
    let matched = if unreadable { Truth::Unknown } else { Truth::False };
    (Truth::from(answered), matched)
}

fn satisfies(operator: EnableWhenOperator, comparison: Comparison) -> bool {
    use Comparison::{Equal, Greater, Less, Unequal};
    match operator {
        EnableWhenOperator::Exists => false,
        EnableWhenOperator::Equal => comparison == Equal,
        EnableWhenOperator::NotEqual => matches!(comparison, Less | Greater | Unequal),
        EnableWhenOperator::Greater => comparison == Greater,
        EnableWhenOperator::Less => comparison == Less,
        EnableWhenOperator::GreaterOrEqual => matches!(comparison, Greater | Equal),
        EnableWhenOperator::LessOrEqual => matches!(comparison, Less | Equal),
    }
}

/// Compares a normalized answer (as `validate` stores it) with an operand,
/// so `Less` means the answer is less than the operand.
fn compare(answer: &Value, operand: &Operand) -> Comparison {
    let compared = match operand {
        Operand::Boolean(expected) => answer.as_bool().map(|flag| equality(flag == *expected)),
        Operand::Number(expected) => {
            answer.as_number().and_then(primitive::decimal_from_json).map(|number| number.cmp(expected).into())
        }
        Operand::String(expected) => answer.as_str().map(|text| text.cmp(expected.as_str()).into()),
        Operand::Moment(expected) => {
            let moment = answer.as_str().and_then(|text| FhirDateTime::parse(text).ok());
            moment.map(|moment| compare_moments(&moment, expected))
        }
        Operand::Time(expected) => {
            answer.as_str().and_then(FhirTime::parse).map(|time| time.value().cmp(&expected.value()).into())
        }
        Operand::Coding { system, code } => answer.as_object().map(|coding| {
            let text = |key: &str| coding.get(key).and_then(Value::as_str);
            let same_system = match (text("system"), system) {
                (Some(sent), Some(expected)) => sent == expected,
                _ => true,
            };
            equality(text("code") == Some(code.as_str()) && same_system)
        }),
        Operand::Quantity { value, unit } => answer.as_object().map(|quantity| {
            let number = quantity.get("value").and_then(Value::as_number).and_then(primitive::decimal_from_json);
            match number {
                Some(number) if same_unit(quantity, unit) => number.cmp(value).into(),
                _ => Comparison::Incomparable,
            }
        }),
    };
    compared.unwrap_or(Comparison::Unequal)
}

fn equality(equal: bool) -> Comparison {
    if equal { Comparison::Equal } else { Comparison::Unequal }
}

fn compare_moments(answer: &FhirDateTime, operand: &FhirDateTime) -> Comparison {
    let same_period = answer.earliest() == operand.earliest() && answer.latest() == operand.latest();
    if same_period {
        Comparison::Equal
    } else if answer.latest() < operand.earliest() {
        Comparison::Less
    } else if answer.earliest() > operand.latest() {
        Comparison::Greater
    } else {
        Comparison::Incomparable
    }
}

/// Returns true when a quantity answer has the operand's unit: the same
/// code (and system when both have one), otherwise the same unit text. An
/// operand without any unit matches every answer.
fn same_unit(quantity: &Map<String, Value>, unit: &QuantityUnit) -> bool {
    let text = |key: &str| quantity.get(key).and_then(Value::as_str);
    if unit.code.is_none() && unit.unit.is_none() {
        return true;
    }
    if let (Some(expected), Some(code)) = (&unit.code, text("code")) {
        let same_system = match (&unit.system, text("system")) {
            (Some(expected), Some(system)) => expected == system,
            _ => true,
        };
        return expected == code && same_system;
    }
    matches!((&unit.unit, text("unit")), (Some(expected), Some(sent)) if expected == sent)
}

/// Reads a condition's `answer[x]` for its question.
///
/// # Errors
///
/// Returns an [`AnswerError`] when:
///
/// - the operator is `exists` and the answer is not a boolean;
/// - the answer's type does not fit the question, and its text is not a
///   valid value of the question's type either;
/// - the value is invalid for its type;
/// - an ordered operator (`>`, `<`, `>=`, `<=`) compares booleans or
///   Codings.
pub(crate) fn read_answer(question: &Item, condition: &EnableWhen) -> Result<ReadAnswer, AnswerError> {
    let kind = condition.answer_kind.as_str();
    let value = &condition.answer;
    if condition.operator == EnableWhenOperator::Exists {
        return match value {
            Value::Bool(flag) if kind == "answerBoolean" => {
                Ok(ReadAnswer { operand: Operand::Boolean(*flag), reread_as: None })
            }
            _ => Err(answer_error("the exists operator needs a boolean answer: true or false")),
        };
    }

    let Some(answer_type) = AnswerType::from_kind(kind) else {
        return Err(answer_error(format!("{kind} is not a supported enableWhen answer type")));
    };
    let accepted = accepted_types(question);
    let read = if accepted.contains(&answer_type) {
        ReadAnswer { operand: read_typed(answer_type, value)?, reread_as: None }
    } else if let Some((read_as, operand)) = reread(&accepted, value) {
        ReadAnswer { operand, reread_as: Some(read_as) }
    } else {
        let expected: Vec<&str> = accepted.iter().map(|accepted| accepted.with_article()).collect();
        return Err(answer_error(format!(
            "{} answer does not fit question \"{}\" of type {}; use {}",
            answer_type.with_article(),
            question.link_id,
            question.item_type.code(),
            expected.join(" or "),
        )));
    };

    let ordered = !matches!(condition.operator, EnableWhenOperator::Equal | EnableWhenOperator::NotEqual);
    let unordered_kind = match read.operand {
        Operand::Boolean(_) => Some("boolean"),
        Operand::Coding { .. } => Some("Coding"),
        _ => None,
    };
    if let (true, Some(unordered_kind)) = (ordered, unordered_kind) {
        return Err(AnswerError {
            message: format!(
                "operator \"{}\" cannot order {unordered_kind} answers; use \"=\" or \"!=\"",
                operator_code(condition.operator)
            ),
            on_operator: true,
        });
    }
    Ok(read)
}

fn answer_error(message: impl Into<String>) -> AnswerError {
    AnswerError { message: message.into(), on_operator: false }
}

/// Returns the `answer[x]` types a condition on `question` may use. Integer
/// and decimal answers mix, a dateTime question also takes dates, and a
/// choice question takes the types of its options.
pub(crate) fn accepted_types(question: &Item) -> Vec<AnswerType> {
    match question.item_type {
        ItemType::Boolean => vec![AnswerType::Boolean],
        ItemType::Integer | ItemType::Decimal => vec![AnswerType::Integer, AnswerType::Decimal],
        ItemType::String | ItemType::Text => vec![AnswerType::String],
        ItemType::Date => vec![AnswerType::Date],
        ItemType::DateTime => vec![AnswerType::DateTime, AnswerType::Date],
        ItemType::Time => vec![AnswerType::Time],
        ItemType::Quantity => vec![AnswerType::Quantity],
        ItemType::Choice | ItemType::OpenChoice => {
            let mut types = Vec::new();
            for option in &question.options {
                let option_type = match option.value {
                    OptionValue::Coding { .. } => AnswerType::Coding,
                    OptionValue::Integer(_) => AnswerType::Integer,
                    OptionValue::String(_) => AnswerType::String,
                    OptionValue::Date(_) => AnswerType::Date,
                    OptionValue::Time(_) => AnswerType::Time,
                };
                if !types.contains(&option_type) {
                    types.push(option_type);
                }
            }
            let takes_any_coding = question.answer_value_set.is_some() || types.is_empty();
            if takes_any_coding && !types.contains(&AnswerType::Coding) {
                types.push(AnswerType::Coding);
            }
            if question.item_type == ItemType::OpenChoice && !types.contains(&AnswerType::String) {
                types.push(AnswerType::String);
            }
            types
        }
        ItemType::Display | ItemType::Group => Vec::new(),
    }
}

/// Reads a string answer of another type as a date, dateTime or time when
/// the question takes that type and the text is valid for it.
fn reread(accepted: &[AnswerType], value: &Value) -> Option<(AnswerType, Operand)> {
    accepted.iter().find_map(|accepted| match accepted {
        AnswerType::Date | AnswerType::DateTime | AnswerType::Time if value.is_string() => {
            read_typed(*accepted, value).ok().map(|operand| (*accepted, operand))
        }
        _ => None,
    })
}

fn read_typed(answer_type: AnswerType, value: &Value) -> Result<Operand, AnswerError> {
    let invalid = |what: &str| answer_error(format!("{value} is not a valid {what}"));
    let text = value.as_str();
    match answer_type {
        AnswerType::Boolean => value.as_bool().map(Operand::Boolean).ok_or_else(|| invalid("boolean")),
        AnswerType::Integer => {
            value.as_i64().map(|integer| Operand::Number(integer.into())).ok_or_else(|| invalid("integer"))
        }
        AnswerType::Decimal => value
            .as_number()
            .and_then(primitive::decimal_from_json)
            .map(Operand::Number)
            .ok_or_else(|| invalid("decimal")),
        AnswerType::String => text.map(|text| Operand::String(text.to_owned())).ok_or_else(|| invalid("string")),
        AnswerType::Date => text
            .and_then(FhirDate::parse)
            .map(|date| Operand::Moment(FhirDateTime::from_date(&date)))
            .ok_or_else(|| invalid("FHIR date")),
        AnswerType::DateTime => match text.map(FhirDateTime::parse) {
            Some(Ok(moment)) => Ok(Operand::Moment(moment)),
            Some(Err(DateTimeError::MissingOffset)) => {
                Err(answer_error(format!("{value} has a time but no UTC offset; add Z or +hh:mm")))
            }
            _ => Err(invalid("FHIR dateTime")),
        },
        AnswerType::Time => text.and_then(FhirTime::parse).map(Operand::Time).ok_or_else(|| invalid("FHIR time")),
        AnswerType::Coding => {
            let coding = value.as_object();
            let field = |key: &str| coding.and_then(|coding| coding.get(key));
            let code = field("code").and_then(Value::as_str).filter(|code| !code.is_empty());
            let system = field("system");
            match (code, system) {
                (Some(code), None | Some(Value::String(_))) => Ok(Operand::Coding {
                    system: system.and_then(Value::as_str).map(str::to_owned),
                    code: code.to_owned(),
                }),
                _ => Err(answer_error("a Coding answer needs a code, and its system must be a string")),
            }
        }
        AnswerType::Quantity => {
            let quantity = value.as_object();
            let field = |key: &str| quantity.and_then(|quantity| quantity.get(key));
            let number = field("value").and_then(Value::as_number).and_then(primitive::decimal_from_json);
            let text_field = |key: &str| field(key).and_then(Value::as_str).map(str::to_owned);
            let unit =
                QuantityUnit { system: text_field("system"), code: text_field("code"), unit: text_field("unit") };
            number
                .map(|value| Operand::Quantity { value, unit })
                .ok_or_else(|| answer_error("a Quantity answer needs a numeric value"))
        }
    }
}

/// Returns the FHIR code of an operator, such as `>=`.
pub(crate) fn operator_code(operator: EnableWhenOperator) -> &'static str {
    match operator {
        EnableWhenOperator::Exists => "exists",
        EnableWhenOperator::Equal => "=",
        EnableWhenOperator::NotEqual => "!=",
        EnableWhenOperator::Greater => ">",
        EnableWhenOperator::Less => "<",
        EnableWhenOperator::GreaterOrEqual => ">=",
        EnableWhenOperator::LessOrEqual => "<=",
    }
}

impl AnswerType {
    /// Parses an `answer[x]` element name such as `answerCoding`.
    fn from_kind(kind: &str) -> Option<AnswerType> {
        let answer_type = match kind {
            "answerBoolean" => AnswerType::Boolean,
            "answerInteger" => AnswerType::Integer,
            "answerDecimal" => AnswerType::Decimal,
            "answerString" => AnswerType::String,
            "answerDate" => AnswerType::Date,
            "answerDateTime" => AnswerType::DateTime,
            "answerTime" => AnswerType::Time,
            "answerCoding" => AnswerType::Coding,
            "answerQuantity" => AnswerType::Quantity,
            _ => return None,
        };
        Some(answer_type)
    }

    /// Returns the type's name with an article, such as `an integer`.
    pub(crate) fn with_article(self) -> &'static str {
        match self {
            AnswerType::Boolean => "a boolean",
            AnswerType::Integer => "an integer",
            AnswerType::Decimal => "a decimal",
            AnswerType::String => "a string",
            AnswerType::Date => "a date",
            AnswerType::DateTime => "a dateTime",
            AnswerType::Time => "a time",
            AnswerType::Coding => "a Coding",
            AnswerType::Quantity => "a Quantity",
        }
    }
}

impl Truth {
    fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, Truth::True) => Truth::True,
            _ => Truth::Unknown,
        }
    }

    fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, Truth::False) => Truth::False,
            _ => Truth::Unknown,
        }
    }
}

impl Not for Truth {
    type Output = Truth;

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }
}

impl From<bool> for Truth {
    fn from(value: bool) -> Truth {
        if value { Truth::True } else { Truth::False }
    }
}

impl From<State> for Truth {
    fn from(state: State) -> Truth {
        match state {
            State::Enabled => Truth::True,
            State::Disabled => Truth::False,
            State::Undecided => Truth::Unknown,
        }
    }
}

impl From<Truth> for State {
    fn from(truth: Truth) -> State {
        match truth {
            Truth::True => State::Enabled,
            Truth::False => State::Disabled,
            Truth::Unknown => State::Undecided,
        }
    }
}

impl From<std::cmp::Ordering> for Comparison {
    fn from(ordering: std::cmp::Ordering) -> Comparison {
        match ordering {
            std::cmp::Ordering::Less => Comparison::Less,
            std::cmp::Ordering::Equal => Comparison::Equal,
            std::cmp::Ordering::Greater => Comparison::Greater,
        }
    }
}
