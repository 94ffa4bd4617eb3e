//! Compilation of a form's expressions, and of its trial entry's scores and
//! alerts, into a [`RuleSet`].
//!
//! Compilation runs on a thread of its own with a 64 MiB stack, because
//! the CEL parser recurses deeply on nested input and a stack overflow
//! would abort the process instead of reporting an error.
//!
//! Each check made here is reported with the path of its expression. The
//! checks are: text over 4096 bytes, nesting over 32 levels, FHIRPath
//! outside the subset and CEL syntax errors. Unknown linkIds, identifiers,
//! functions and score names are errors too, and so are cycles between
//! variables, computed items and scores.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ::cel::common::ast::IdedExpr;

use super::cel::{self as engine, Binding, ENVIRONMENT, Names};
use super::fhirpath;
use super::lower::{Lowered, Lowering, VariableValue, VisibleVariable};
use super::{AlertRule, ItemFact, MAX_DEPTH, MAX_EXPRESSION_BYTES, Program, References, Rule, RuleSet, Slot, SlotKind};
use crate::load::{LoadReport, Notice};
use crate::model::{CEL, Expression, ExpressionKind, FHIRPATH, Form, Item, ItemType, RuleDefinition};
use crate::trial::{Localized, TrialFormEntry};
use crate::validate::Severity;

/// Stack of the compiler thread. Only the pages it touches are committed.
const COMPILER_STACK_BYTES: usize = 64 << 20;

/// Compiles the form's own expressions and stores the result in the form.
/// Errors, kept-but-not-evaluated parts and a summary go into `report`.
pub(crate) fn compile_form(form: &mut Form, report: &mut LoadReport) {
    let outcome = compile_on_thread(form, None);
    report.errors.extend(outcome.errors);
    report.not_evaluated.extend(outcome.not_evaluated);
    report.supported.extend(outcome.supported);
    form.rule_set = Arc::new(outcome.rule_set);
}

/// Compiles the form's expressions together with a trial entry's scores,
/// alerts and messages, and stores the result in the form.
///
/// # Errors
///
/// Returns every problem with its key path in the trial file; the form is
/// left unchanged then.
pub(crate) fn attach_trial(form: &mut Form, entry: &TrialFormEntry) -> Result<(), Vec<Notice>> {
    let outcome = compile_on_thread(form, Some(entry));
    if !outcome.errors.is_empty() {
        return Err(outcome.errors);
    }
    form.rule_set = Arc::new(outcome.rule_set);
    Ok(())
}

#[derive(Default)]
struct Outcome {
    rule_set: RuleSet,
    errors: Vec<Notice>,
    not_evaluated: Vec<Notice>,
    supported: Vec<String>,
}

fn compile_on_thread(form: &Form, trial: Option<&TrialFormEntry>) -> Outcome {
    if !has_expressions(form, trial) {
        return Outcome::default();
    }
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("epro-rules-compiler".to_owned())
            .stack_size(COMPILER_STACK_BYTES)
            .spawn_scoped(scope, || compile(form, trial));
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| failed("the expression compiler failed unexpectedly")),
            Err(error) => failed(&format!("failed to start the expression compiler thread: {error}")),
        }
    })
}

fn failed(message: &str) -> Outcome {
    Outcome { errors: vec![Notice::new("$", message)], ..Outcome::default() }
}

fn has_expressions(form: &Form, trial: Option<&TrialFormEntry>) -> bool {
    let in_trial =
        trial.is_some_and(|entry| !entry.scores.is_empty() || !entry.alerts.is_empty() || !entry.messages.is_empty());
    let in_items = form.all_items().any(|item| item.expressions.iter().any(|e| super::is_evaluated_kind(&e.kind)));
    let in_form = form.expressions.iter().any(|e| super::is_evaluated_kind(&e.kind));
    in_trial || in_items || in_form || !form.rules.is_empty()
}

/// A program that compiled, with what it reads by name.
struct Pending {
    expression: IdedExpr,
    references: References,
    /// CEL identifiers of the FHIRPath variables it reads.
    variables: BTreeSet<String>,
}

struct PendingSlot {
    kind: SlotKind,
    /// Name of the slot in a cycle message, such as `%q1_value`.
    label: String,
    json_path: String,
    pending: Pending,
}

struct PendingRule {
    key: String,
    severity: Severity,
    message: Localized,
    link_id: String,
    pending: Pending,
}

struct PendingAlert {
    id: String,
    severity: String,
    message: Localized,
    pending: Pending,
}

/// Text, language and location of an expression, for translation and
/// messages.
struct Source<'a> {
    text: &'a str,
    language: &'a str,
    json_path: &'a str,
    context: Option<&'a Item>,
}

struct Compiler<'f> {
    form: &'f Form,
    /// linkIds of the computed items the engine evaluates.
    computed: HashSet<String>,
    /// Names `score()` accepts.
    score_names: HashSet<String>,
    /// CEL identifiers of the variables compiled so far.
    variable_identifiers: HashSet<String>,
    slots: Vec<PendingSlot>,
    rules: Vec<PendingRule>,
    alerts: Vec<PendingAlert>,
    enable: Vec<(String, Pending)>,
    rule_keys: HashSet<String>,
    /// Variables compiled, whether inlined or evaluated into a slot.
    variable_count: usize,
    outcome: Outcome,
}

fn compile(form: &Form, trial: Option<&TrialFormEntry>) -> Outcome {
    let mut compiler = Compiler {
        form,
        computed: HashSet::new(),
        score_names: HashSet::new(),
        variable_identifiers: HashSet::new(),
        slots: Vec::new(),
        rules: Vec::new(),
        alerts: Vec::new(),
        enable: Vec::new(),
        rule_keys: HashSet::new(),
        variable_count: 0,
        outcome: Outcome::default(),
    };

    compiler.find_computed_items();
    if let Some(entry) = trial {
        compiler.declare_trial_scores(entry);
    }

    let mut visible = Vec::new();
    compiler.form_level(&mut visible);
    compiler.visit_items(&form.items, &mut visible);
    if let Some(entry) = trial {
        compiler.trial(entry);
    }

    compiler.summarize();
    compiler.finish()
}

impl<'f> Compiler<'f> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.outcome.errors.push(Notice::new(path, message));
    }

    fn find_computed_items(&mut self) {
        for item in self.form.all_items() {
            let calculations: Vec<&Expression> = item
                .expressions
                .iter()
                .filter(|expression| expression.kind == ExpressionKind::CalculatedExpression)
                .collect();
            let Some(first) = calculations.first() else {
                continue;
            };
            for extra in &calculations[1..] {
                self.error(&extra.json_path, "an item can have only one calculatedExpression");
            }
            let type_code = item.item_type.code();
            let numeric = matches!(item.item_type, ItemType::Integer | ItemType::Decimal | ItemType::Quantity);
            if !item.item_type.is_question() {
                self.error(&first.json_path, format!("a {type_code} item has no value to calculate"));
            } else if !numeric {
                self.outcome.not_evaluated.push(Notice::new(
                    &first.json_path,
                    format!(
                        "calculatedExpression on a {type_code} item is not evaluated: epro computes integer, decimal \
                         and quantity items only; a value sent by the client is stored as sent"
                    ),
                ));
            } else if item.repeats || in_repeating_group(self.form, &item.link_id) {
                self.outcome.not_evaluated.push(Notice::new(
                    &first.json_path,
                    "calculatedExpression on an item that can have several values is not evaluated; \
                     a value sent by the client is stored as sent",
                ));
            } else {
                self.computed.insert(item.link_id.clone());
                self.score_names.insert(item.link_id.clone());
            }
        }
    }

    fn declare_trial_scores(&mut self, entry: &TrialFormEntry) {
        for score in &entry.scores {
            let taken = self.score_names.contains(&score.id);
            if taken {
                let owner = if self.computed.contains(&score.id) { "a computed item" } else { "another score" };
                self.error(&format!("{}.id", score.path), format!("score id \"{}\" is already {owner}", score.id));
            }
            self.score_names.insert(score.id.clone());
        }
    }

    fn form_level(&mut self, visible: &mut Vec<VisibleVariable>) {
        let form = self.form;
        for expression in &form.expressions {
            match expression.kind {
                ExpressionKind::Variable => self.variable(expression, None, visible, 0),
                ExpressionKind::CalculatedExpression | ExpressionKind::EnableWhenExpression => {
                    self.outcome.not_evaluated.push(Notice::new(
                        &expression.json_path,
                        format!(
                            "{} on the form itself applies to no item and is not evaluated",
                            expression.kind.name()
                        ),
                    ));
                }
                _ => {}
            }
        }
        for definition in form.rules.iter().filter(|definition| definition.context.is_none()) {
            self.rule(definition, None, visible);
        }
    }

    fn visit_items(&mut self, items: &'f [Item], visible: &mut Vec<VisibleVariable>) {
        for item in items {
            let mark = visible.len();
            for expression in item.expressions.iter().filter(|e| e.kind == ExpressionKind::Variable) {
                self.variable(expression, Some(item), visible, mark);
            }
            let calculation = item.expressions.iter().find(|e| e.kind == ExpressionKind::CalculatedExpression);
            if let Some(expression) = calculation
                && self.computed.contains(&item.link_id)
            {
                self.computed_item(item, expression, visible);
            }
            self.enable_expression(item, visible);
            let form = self.form;
            for definition in form.rules.iter().filter(|rule| rule.context.as_deref() == Some(&item.link_id)) {
                self.rule(definition, Some(item), visible);
            }

            self.visit_items(&item.children, visible);
            visible.truncate(mark);
        }
    }

    /// Compiles a variable and makes it visible. `level_start` is where the
    /// variables of the same item (or of the form) begin in `visible`.
    fn variable(
        &mut self,
        expression: &Expression,
        context: Option<&Item>,
        visible: &mut Vec<VisibleVariable>,
        level_start: usize,
    ) {
        let path = expression.json_path.as_str();
        let Some(name) = expression.name.clone() else {
            self.error(path, "a variable needs a name");
            return;
        };
        if visible[level_start..].iter().any(|variable| variable.name == name) {
            self.error(path, format!("variable %{name} is already defined at this level"));
        }
        let language = expression.language.as_deref().unwrap_or(FHIRPATH);
        if language != FHIRPATH {
            self.error(path, "a variable must be written in FHIRPath; CEL expressions read answers directly");
            visible.push(VisibleVariable { name, value: VariableValue::Failed });
            return;
        }

        let source = Source { text: &expression.expression, language, json_path: path, context };
        let value = match self.translate(&source, visible) {
            // A literal, or a plain read of an answer, option score or
            // other variable, gives the same value wherever it is read, so
            // it is inlined instead of evaluated into a slot.
            Some(lowered) if lowered.constant.is_some() || lowered.reference.is_some() => {
                VariableValue::Constant(lowered)
            }
            Some(lowered) => {
                let identifier = format!("fhirpath_var_{}", self.slots.len());
                match self.build(&lowered.cel, &source) {
                    Some(pending) => {
                        self.variable_identifiers.insert(identifier.clone());
                        self.slots.push(PendingSlot {
                            kind: SlotKind::Variable { identifier: identifier.clone() },
                            label: format!("%{name}"),
                            json_path: path.to_owned(),
                            pending,
                        });
                        VariableValue::Slot { identifier, kind: lowered.kind }
                    }
                    None => VariableValue::Failed,
                }
            }
            None => VariableValue::Failed,
        };
        if !matches!(value, VariableValue::Failed) {
            self.variable_count += 1;
        }
        visible.push(VisibleVariable { name, value });
    }

    fn computed_item(&mut self, item: &Item, expression: &Expression, visible: &[VisibleVariable]) {
        let language = expression.language.as_deref().unwrap_or(FHIRPATH);
        let source =
            Source { text: &expression.expression, language, json_path: &expression.json_path, context: Some(item) };
        if let Some(pending) = self.program(&source, visible) {
            self.slots.push(PendingSlot {
                kind: SlotKind::Computed { link_id: item.link_id.clone() },
                label: format!("item \"{}\"", item.link_id),
                json_path: expression.json_path.clone(),
                pending,
            });
        }
    }

    fn enable_expression(&mut self, item: &Item, visible: &[VisibleVariable]) {
        let expressions: Vec<&Expression> =
            item.expressions.iter().filter(|e| e.kind == ExpressionKind::EnableWhenExpression).collect();
        let Some(expression) = expressions.first() else {
            return;
        };
        for extra in &expressions[1..] {
            self.error(&extra.json_path, "an item can have only one enableWhenExpression");
        }
        let language = expression.language.as_deref().unwrap_or(FHIRPATH);
        let source =
            Source { text: &expression.expression, language, json_path: &expression.json_path, context: Some(item) };
        if let Some(pending) = self.program(&source, visible) {
            self.enable.push((item.link_id.clone(), pending));
        }
    }

    fn rule(&mut self, definition: &RuleDefinition, context: Option<&Item>, visible: &[VisibleVariable]) {
        let path = definition.json_path.as_str();
        if !self.rule_keys.insert(definition.key.clone()) {
            self.error(path, format!("rule key \"{}\" is used twice", definition.key));
        }
        for link_id in &definition.items {
            if self.form.item(link_id).is_none() {
                self.error(path, format!("rule items name unknown linkId \"{link_id}\""));
            }
        }
        let source = Source { text: &definition.expression, language: &definition.language, json_path: path, context };
        let Some(pending) = self.program(&source, visible) else {
            return;
        };

        let link_id = definition
            .items
            .first()
            .cloned()
            .or_else(|| definition.context.clone())
            .or_else(|| read_items(&pending.references).into_iter().next())
            .unwrap_or_default();
        let zh_cn = definition
            .message_zh_cn
            .clone()
            .unwrap_or_else(|| generic_message_zh_cn(&definition.key, &definition.message_en));
        let message = Localized { en: definition.message_en.clone(), zh_cn };
        self.rules.push(PendingRule {
            key: definition.key.clone(),
            severity: definition.severity,
            message,
            link_id,
            pending,
        });
    }

    fn trial(&mut self, entry: &TrialFormEntry) {
        for score in &entry.scores {
            let path = format!("{}.expression", score.path);
            let source = Source { text: &score.expression, language: CEL, json_path: &path, context: None };
            if let Some(pending) = self.program(&source, &[]) {
                self.slots.push(PendingSlot {
                    kind: SlotKind::Score { id: score.id.clone() },
                    label: format!("score \"{}\"", score.id),
                    json_path: path.clone(),
                    pending,
                });
            }
        }

        let mut alert_ids = HashSet::new();
        for alert in &entry.alerts {
            if !alert_ids.insert(alert.id.as_str()) {
                self.error(&format!("{}.id", alert.path), format!("alert id \"{}\" is used twice", alert.id));
            }
            let path = format!("{}.when", alert.path);
            let source = Source { text: &alert.when, language: CEL, json_path: &path, context: None };
            if let Some(pending) = self.program(&source, &[]) {
                self.alerts.push(PendingAlert {
                    id: alert.id.clone(),
                    severity: alert.severity.clone(),
                    message: alert.message.clone(),
                    pending,
                });
            }
        }

        for translation in &entry.messages {
            match self.rules.iter_mut().find(|rule| rule.key == translation.rule) {
                Some(rule) => rule.message.zh_cn = translation.zh_cn.clone(),
                None => {
                    let path = format!("{}.rule", translation.path);
                    self.error(&path, format!("the form has no rule with key \"{}\"", translation.rule));
                }
            }
        }
    }

    /// Checks, translates if needed, and compiles one expression.
    fn program(&mut self, source: &Source<'_>, visible: &[VisibleVariable]) -> Option<Pending> {
        match source.language {
            FHIRPATH => {
                let lowered = self.translate(source, visible)?;
                self.build(&lowered.cel, source)
            }
            CEL => {
                self.check_text(source)?;
                self.build(source.text, source)
            }
            other => {
                self.error(
                    source.json_path,
                    format!("expression language \"{other}\" cannot be evaluated by epro; use {FHIRPATH} or {CEL}"),
                );
                None
            }
        }
    }

    /// Checks the length and nesting of the text before any parser reads it.
    fn check_text(&mut self, source: &Source<'_>) -> Option<()> {
        let length = source.text.len();
        if length > MAX_EXPRESSION_BYTES {
            let message = format!("expression is {length} bytes long; at most {MAX_EXPRESSION_BYTES} are allowed");
            self.error(source.json_path, message);
            return None;
        }
        let nesting = bracket_nesting(source.text);
        if nesting > MAX_DEPTH {
            let message = format!("expression nests brackets {nesting} levels deep; at most {MAX_DEPTH} are allowed");
            self.error(source.json_path, message);
            return None;
        }
        Some(())
    }

    fn translate(&mut self, source: &Source<'_>, visible: &[VisibleVariable]) -> Option<Lowered> {
        self.check_text(source)?;
        let per_occurrence =
            source.context.is_some_and(|item| item.repeats || in_repeating_group(self.form, &item.link_id));
        if per_occurrence {
            self.error(
                source.json_path,
                "FHIRPath expression cannot be evaluated by epro: FHIR evaluates an expression on an item that \
                 repeats or sits in a repeating group once per occurrence, and epro evaluates it once per submission",
            );
            return None;
        }
        let form = self.form;
        let computed = self.computed.clone();
        let mut lowering = Lowering { form, context: source.context, variables: visible, computed: &computed };
        let lowered = fhirpath::parse(source.text).and_then(|node| lowering.lower(&node));
        match lowered {
            Ok(lowered) => Some(lowered),
            Err(reason) => {
                self.error(source.json_path, format!("FHIRPath expression cannot be evaluated by epro: {reason}"));
                None
            }
        }
    }

    /// Parses CEL text, checks every name in it and rewrites it for
    /// evaluation.
    fn build(&mut self, cel_text: &str, source: &Source<'_>) -> Option<Pending> {
        let translated = source.language == FHIRPATH;
        let prefix = if translated { "FHIRPath expression cannot be evaluated by epro: " } else { "" };
        let program = match ENVIRONMENT.compile(cel_text) {
            Ok(program) => program,
            Err(error) => {
                let detail = error.to_string();
                let message = if translated {
                    format!("{prefix}its translation into CEL does not parse: {detail}")
                } else {
                    format!("invalid CEL expression: {}", detail.trim_end())
                };
                self.error(source.json_path, message);
                return None;
            }
        };
        let mut expression = program.expression().clone();

        let names = Names {
            form: self.form,
            computed: &self.computed,
            scores: &self.score_names,
            variables: &self.variable_identifiers,
        };
        let analysis = match engine::analyze(&expression, &names) {
            Ok(analysis) => analysis,
            Err(problems) => {
                for problem in problems {
                    self.error(source.json_path, format!("{prefix}{problem}"));
                }
                return None;
            }
        };

        let depth = engine::rewrite(&mut expression, self.form);
        if !engine::depth_allowed(depth) {
            let message =
                format!("{prefix}expression nests {depth} levels deep when compiled; at most {MAX_DEPTH} are allowed");
            self.error(source.json_path, message);
            return None;
        }
        Some(Pending { expression, references: analysis.references, variables: analysis.variables })
    }

    fn summarize(&mut self) {
        let variables = self.variable_count;
        let computed = self.slots.iter().filter(|slot| matches!(slot.kind, SlotKind::Computed { .. })).count();
        let lines = [
            (variables, "FHIRPath variable evaluated", "FHIRPath variables evaluated"),
            (
                computed,
                "calculated item computed on the server; a value sent by the client is compared with it",
                "calculated items computed on the server; a value sent by the client is compared with them",
            ),
            (
                self.enable.len(),
                "enableWhenExpression evaluated as skip logic",
                "enableWhenExpressions evaluated as skip logic",
            ),
            (
                self.rules.len(),
                "rule checked (targetConstraint or [[rules]])",
                "rules checked (targetConstraint or [[rules]])",
            ),
        ];
        for (count, one, many) in lines {
            match count {
                0 => {}
                1 => self.outcome.supported.push(format!("1 {one}")),
                count => self.outcome.supported.push(format!("{count} {many}")),
            }
        }
    }

    /// Orders the slots, resolves dependencies, binds every program to
    /// positions and builds the rule set.
    fn finish(mut self) -> Outcome {
        if !self.outcome.errors.is_empty() {
            return self.outcome;
        }

        let mut slot_by_name: HashMap<String, usize> = HashMap::new();
        for (position, slot) in self.slots.iter().enumerate() {
            slot_by_name.insert(slot_name(&slot.kind).to_owned(), position);
        }
        let direct_slots = |pending: &Pending| -> Vec<usize> {
            let names = pending.variables.iter().chain(pending.references.scores.iter());
            names.filter_map(|name| slot_by_name.get(name).copied()).collect()
        };
        let dependencies: Vec<Vec<usize>> = self.slots.iter().map(|slot| direct_slots(&slot.pending)).collect();

        let order = match topological_order(&dependencies) {
            Ok(order) => order,
            Err(cycle) => {
                let labels: Vec<&str> = cycle.iter().map(|position| self.slots[*position].label.as_str()).collect();
                let path = self.slots[cycle[0]].json_path.clone();
                self.error(&path, format!("expressions depend on each other in a cycle: {}", labels.join(" → ")));
                return self.outcome;
            }
        };
        let mut new_position = vec![0; self.slots.len()];
        for (position, old) in order.iter().enumerate() {
            new_position[*old] = position;
        }
        let mut score_index = HashMap::new();
        let mut variable_index = HashMap::new();
        for (old, slot) in self.slots.iter().enumerate() {
            let index = match &slot.kind {
                SlotKind::Variable { .. } => &mut variable_index,
                SlotKind::Computed { .. } | SlotKind::Score { .. } => &mut score_index,
            };
            index.insert(slot_name(&slot.kind).to_owned(), new_position[old]);
        }

        let items = self.item_facts();
        let item_index: HashMap<String, usize> =
            items.iter().enumerate().map(|(position, fact)| (fact.link_id.clone(), position)).collect();
        let mut fields = Vec::new();
        let mut binding =
            Binding { items: &item_index, scores: &score_index, variables: &variable_index, fields: &mut fields };

        // Transitive reads of each slot, computed in evaluation order so
        // that every dependency is ready before its dependents.
        let mut closures: Vec<Closure> = (0..self.slots.len()).map(|_| Closure::default()).collect();
        for old in &order {
            let mut closure = Closure::own(&self.slots[*old].pending, &item_index);
            for dependency in &dependencies[*old] {
                let inherited = closures[*dependency].clone();
                closure.merge(&inherited);
                closure.slots.insert(new_position[*dependency]);
            }
            closures[*old] = closure;
        }
        let closure_of = |pending: &Pending| -> Closure {
            let mut closure = Closure::own(pending, &item_index);
            for dependency in direct_slots(pending) {
                closure.merge(&closures[dependency]);
                closure.slots.insert(new_position[dependency]);
            }
            closure
        };

        let trial_scores: Vec<String> = self
            .slots
            .iter()
            .filter_map(|slot| match &slot.kind {
                SlotKind::Score { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let answers_map = self.references().any(|references| references.all_answers);
        let ordinal_sum = self.references().any(|references| references.ordinal_sum);
        let mut pending_slots: Vec<Option<PendingSlot>> =
            std::mem::take(&mut self.slots).into_iter().map(Some).collect();
        let mut slots = Vec::with_capacity(order.len());
        for old in &order {
            let Some(slot) = pending_slots[*old].take() else {
                continue;
            };
            let closure = closures[*old].clone();
            slots.push(Slot { kind: slot.kind, program: closure.into_program(slot.pending.expression, &mut binding) });
        }

        let mut scores: Vec<usize> = self
            .form
            .all_items()
            .filter_map(|item| self.computed.contains(&item.link_id).then(|| score_index.get(&item.link_id)).flatten())
            .copied()
            .collect();
        scores.extend(trial_scores.iter().filter_map(|id| score_index.get(id)).copied());

        let mut rules = Vec::new();
        for rule in std::mem::take(&mut self.rules) {
            let program = closure_of(&rule.pending).into_program(rule.pending.expression, &mut binding);
            rules.push(Rule {
                key: rule.key,
                severity: rule.severity,
                message: rule.message,
                link_id: rule.link_id,
                program,
            });
        }
        let mut alerts = Vec::new();
        for alert in std::mem::take(&mut self.alerts) {
            let mut read = read_items(&alert.pending.references);
            read.extend(alert.pending.references.scores.iter().cloned());
            read.sort();
            read.dedup();
            let program = closure_of(&alert.pending).into_program(alert.pending.expression, &mut binding);
            alerts.push(AlertRule {
                id: alert.id,
                severity: alert.severity,
                message: alert.message,
                items: read,
                program,
            });
        }
        let mut enable = HashMap::new();
        for (link_id, pending) in std::mem::take(&mut self.enable) {
            let program = closure_of(&pending).into_program(pending.expression, &mut binding);
            enable.insert(link_id, program);
        }

        self.outcome.rule_set =
            RuleSet { items, item_index, fields, slots, scores, rules, alerts, enable, answers_map, ordinal_sum };
        self.outcome
    }

    fn references(&self) -> impl Iterator<Item = &References> {
        let slots = self.slots.iter().map(|slot| &slot.pending.references);
        let rules = self.rules.iter().map(|rule| &rule.pending.references);
        let alerts = self.alerts.iter().map(|alert| &alert.pending.references);
        let enable = self.enable.iter().map(|(_, pending)| &pending.references);
        slots.chain(rules).chain(alerts).chain(enable)
    }

    /// Lists the items some program reads, in form order, with what each
    /// submission must extract from them.
    fn item_facts(&self) -> Vec<ItemFact> {
        let mut values = HashSet::new();
        let mut ordinals = HashSet::new();
        let mut every_value = false;
        let mut every_ordinal = false;
        for references in self.references() {
            values.extend(references.values.iter().chain(references.answered.iter()));
            ordinals.extend(references.ordinals.iter());
            every_value |= references.all_answers;
            every_ordinal |= references.ordinal_sum;
        }

        let mut facts = Vec::new();
        for item in self.form.all_items() {
            let link_id = &item.link_id;
            let is_input = item.item_type.is_question() && !self.computed.contains(link_id);
            let scored: Vec<_> = item
                .options
                .iter()
                .filter_map(|option| {
                    let ordinal =
                        option.ordinal.and_then(|ordinal| rust_decimal::prelude::ToPrimitive::to_f64(&ordinal));
                    ordinal.map(|ordinal| (option.value.clone(), ordinal))
                })
                .collect();
            let needs_value = is_input && (every_value || values.contains(link_id));
            let needs_ordinal = is_input && !scored.is_empty() && (every_ordinal || ordinals.contains(link_id));
            if needs_value || needs_ordinal {
                let path = self.form.item_path(link_id).unwrap_or_default();
                let groups = path[..path.len().saturating_sub(1)]
                    .iter()
                    .map(|group| (group.link_id.clone(), group.repeats))
                    .collect();
                facts.push(ItemFact {
                    link_id: link_id.clone(),
                    groups,
                    repeats: item.repeats,
                    needs_value,
                    needs_ordinal,
                    ordinals: scored,
                    many: item.repeats || in_repeating_group(self.form, link_id),
                });
            }
        }
        facts
    }
}

/// Reads of a program, followed through the slots it reads.
#[derive(Debug, Clone, Default)]
struct Closure {
    items: BTreeSet<usize>,
    all_items: bool,
    slots: BTreeSet<usize>,
}

impl Closure {
    fn own(pending: &Pending, item_index: &HashMap<String, usize>) -> Closure {
        let references = &pending.references;
        let names = references.values.iter().chain(references.ordinals.iter()).chain(references.answered.iter());
        Closure {
            items: names.filter_map(|name| item_index.get(name).copied()).collect(),
            all_items: references.all_answers || references.ordinal_sum,
            slots: BTreeSet::new(),
        }
    }

    fn merge(&mut self, other: &Closure) {
        self.items.extend(other.items.iter().copied());
        self.all_items |= other.all_items;
        self.slots.extend(other.slots.iter().copied());
    }

    fn into_program(self, mut expression: IdedExpr, binding: &mut Binding<'_>) -> Program {
        engine::bind(&mut expression, binding, &mut Vec::new());
        Program {
            expression,
            items: self.items.into_iter().collect(),
            all_items: self.all_items,
            slots: self.slots.into_iter().collect(),
        }
    }
}

/// Returns the slots in an order where each comes after its dependencies,
/// keeping declaration order where dependencies allow, or the slots of a
/// cycle.
fn topological_order(dependencies: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    fn visit(
        node: usize,
        dependencies: &[Vec<usize>],
        states: &mut [State],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match states[node] {
            State::Done => return Ok(()),
            State::Active => {
                let start = stack.iter().position(|entry| *entry == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node);
                return Err(cycle);
            }
            State::New => {}
        }
        states[node] = State::Active;
        stack.push(node);
        for dependency in &dependencies[node] {
            visit(*dependency, dependencies, states, stack, order)?;
        }
        stack.pop();
        states[node] = State::Done;
        order.push(node);
        Ok(())
    }

    let mut states = vec![State::New; dependencies.len()];
    let mut order = Vec::with_capacity(dependencies.len());
    for node in 0..dependencies.len() {
        visit(node, dependencies, &mut states, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Returns the name a slot is read by: a variable's CEL identifier, a
/// computed item's linkId or a trial score's id.
fn slot_name(kind: &SlotKind) -> &str {
    match kind {
        SlotKind::Variable { identifier } => identifier,
        SlotKind::Computed { link_id } => link_id,
        SlotKind::Score { id } => id,
    }
}

/// Returns the items a program reads directly, sorted.
fn read_items(references: &References) -> Vec<String> {
    let mut items: Vec<String> =
        references.values.iter().chain(references.ordinals.iter()).chain(references.answered.iter()).cloned().collect();
    items.sort();
    items.dedup();
    items
}

fn in_repeating_group(form: &Form, link_id: &str) -> bool {
    let path = form.item_path(link_id).unwrap_or_default();
    path.iter().rev().skip(1).any(|ancestor| ancestor.repeats)
}

/// Returns the deepest nesting of `( [ {` in the text, outside string
/// literals.
fn bracket_nesting(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut deepest = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for character in text.chars() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == open {
                quote = None;
            }
            continue;
        }
        match character {
            '\'' | '"' | '`' => quote = Some(character),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Builds the Simplified Chinese message of a FHIR rule that has English
/// text only and no translation in the trial file. The message names the
/// rule and quotes the English text.
fn generic_message_zh_cn(key: &str, message_en: &str) -> String {
    format!("表单规则“{key}”未通过（英文原文：“{message_en}”）")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_nesting_ignores_strings() {
        assert_eq!(bracket_nesting("f(g(1), [2])"), 2);
        assert_eq!(bracket_nesting("'((((' + \"[[\""), 0);
        assert_eq!(bracket_nesting(r"'it\'s (' + (1)"), 1);
    }

    #[test]
    fn topological_order_reports_cycle() {
        let dependencies = vec![vec![1], vec![2], vec![0], vec![]];
        assert_eq!(topological_order(&dependencies), Err(vec![0, 1, 2, 0]));
    }

    #[test]
    fn topological_order_puts_dependencies_first() {
        let dependencies = vec![vec![2], vec![], vec![1]];
        assert_eq!(topological_order(&dependencies), Ok(vec![1, 2, 0]));
    }
}
