//! The CEL side of the engine: the shared environment with epro's helper
//! functions, the load-time analysis and rewriting of a parsed program,
//! and the conversions between JSON, CEL values and decimals.
//!
//! Every number in the environment is a CEL double, because cel-rust does
//! not mix int and double in arithmetic. The rewrite after parsing keeps
//! authors from tripping over that: an integer literal next to a double in
//! `+ - * /` or in the branches of `? :` becomes a double, so
//! `10 - answers['pain']` works. Division becomes `epro_divide`, which
//! fails on a zero divisor instead of returning an infinity, so that a
//! division by zero makes the result empty as documented.
//!
//! Once the form's items and slots are numbered, [`bind`] replaces every
//! read of the submission (`answers['X']`, `ordinal('X')`, `score('X')`,
//! a FHIRPath variable ...) by an identifier such as `@value/3`. Those
//! names cannot be written in CEL source, and `evaluate` resolves them by
//! position, so a submission needs no map lookups by linkId and no
//! functions registered per submission.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelDouble, DYN_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, Value};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{MAX_DEPTH, References};
use crate::model::{Form, ItemType};

/// The environment every program is compiled and evaluated with: the CEL
/// standard library and the helpers below. Built once per process.
pub(crate) static ENVIRONMENT: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(environment()));

/// Name of the checked division that `/` is rewritten to.
const DIVIDE: &str = "epro_divide";

/// Standard CEL functions that cel-rust provides without optional features.
const STANDARD_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "type",
    "dyn",
    "hasValue",
    "orValue",
    "value",
    "or",
];

/// Helpers registered in the environment, with their number of arguments.
const HELPERS: &[(&str, usize, cel::common::functions::Function)] = &[
    ("round", 2, round),
    (DIVIDE, 2, divide),
    ("fhirpath_add", 2, fhirpath_add),
    ("fhirpath_sub", 2, fhirpath_sub),
    ("fhirpath_mul", 2, fhirpath_mul),
    ("fhirpath_div", 2, fhirpath_div),
    ("fhirpath_concat", 2, fhirpath_concat),
    ("fhirpath_eq", 2, fhirpath_eq),
    ("fhirpath_ne", 2, fhirpath_ne),
    ("fhirpath_lt", 2, fhirpath_lt),
    ("fhirpath_le", 2, fhirpath_le),
    ("fhirpath_gt", 2, fhirpath_gt),
    ("fhirpath_ge", 2, fhirpath_ge),
    ("fhirpath_and", 2, fhirpath_and),
    ("fhirpath_or", 2, fhirpath_or),
    ("fhirpath_not", 1, fhirpath_not),
];

/// Type names that CEL expressions may use as identifiers, as in
/// `type(x) == double`.
const TYPE_NAMES: &[&str] = &["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"];

fn environment() -> Env {
    let mut env = Env::stdlib();
    for (name, arity, function) in HELPERS {
        let arguments = (0..*arity).map(|_| DYN_TYPE).collect();
        // The names are this module's own and registered once, so a
        // failure here is a programming error that every test run shows.
        env.add_overload(name, name, arguments, *function).expect("helper names are unique and not standard");
    }
    env
}

/// Reads of a CEL program, found by walking its tree.
#[derive(Default)]
pub(crate) struct Analysis {
    pub references: References,
    /// Identifiers of FHIRPath variables the program reads.
    pub variables: BTreeSet<String>,
}

/// Names of the form that the analysis checks a program against.
pub(crate) struct Names<'a> {
    pub form: &'a Form,
    /// linkIds of computed items.
    pub computed: &'a std::collections::HashSet<String>,
    /// Names `score()` accepts: computed items and trial scores.
    pub scores: &'a std::collections::HashSet<String>,
    /// CEL identifiers of FHIRPath variables, which only translated
    /// FHIRPath may read.
    pub variables: &'a std::collections::HashSet<String>,
}

/// Walks a parsed program, checks every name it uses, and returns what it
/// reads. Runs on the compiler thread, so it may recurse as deep as the
/// parser allowed.
///
/// # Errors
///
/// Returns one message per problem. A problem is an unknown linkId,
/// identifier or function, or a `score()` name that is neither a computed
/// item nor a trial score. It is also an `answers[...]` of a computed item,
/// or a linkId given as something other than a string literal.
pub(crate) fn analyze(expression: &IdedExpr, names: &Names<'_>) -> Result<Analysis, Vec<String>> {
    let mut walker = Walker { names, analysis: Analysis::default(), bound: Vec::new(), errors: Vec::new() };
    walker.visit(expression);
    if walker.errors.is_empty() { Ok(walker.analysis) } else { Err(walker.errors) }
}

struct Walker<'n, 'a> {
    names: &'n Names<'a>,
    analysis: Analysis,
    /// Variables bound by the comprehensions being walked.
    bound: Vec<String>,
    errors: Vec<String>,
}

impl Walker<'_, '_> {
    fn visit(&mut self, node: &IdedExpr) {
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => self.identifier(name),
            Expr::Select(select) => {
                if let Expr::Ident(name) = &select.operand.expr
                    && name == "answers"
                    && !self.is_bound(name)
                {
                    self.answers_key(&select.field, &format!("answers.{}", select.field));
                } else {
                    self.visit(&select.operand);
                }
            }
            Expr::Call(call) => self.call(call),
            Expr::List(list) => list.elements.iter().for_each(|element| self.visit(element)),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        cel::common::ast::EntryExpr::MapEntry(entry) => {
                            self.visit(&entry.key);
                            self.visit(&entry.value);
                        }
                        cel::common::ast::EntryExpr::StructField(field) => self.visit(&field.value),
                    }
                }
            }
            Expr::Struct(_) => self.errors.push("message construction is not supported".to_owned()),
            Expr::Comprehension(comprehension) => {
                self.visit(&comprehension.iter_range);
                self.visit(&comprehension.accu_init);
                let mark = self.bound.len();
                self.bound.push(comprehension.iter_var.clone());
                self.bound.extend(comprehension.iter_var2.clone());
                self.bound.push(comprehension.accu_var.clone());
                self.visit(&comprehension.loop_cond);
                self.visit(&comprehension.loop_step);
                self.visit(&comprehension.result);
                self.bound.truncate(mark);
            }
        }
    }

    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|bound| bound == name)
    }

    fn identifier(&mut self, name: &str) {
        if self.is_bound(name) || TYPE_NAMES.contains(&name) {
            return;
        }
        if name == "answers" {
            self.analysis.references.all_answers = true;
            self.analysis.references.answers_map = true;
            return;
        }
        if self.names.variables.contains(name) {
            self.analysis.variables.insert(name.to_owned());
            return;
        }
        self.errors.push(format!("unknown identifier \"{name}\"; answers are read as answers['linkId']"));
    }

    /// Records `answers['X']` or `answers.X`.
    fn answers_key(&mut self, link_id: &str, written: &str) {
        self.analysis.references.answers_map = true;
        if self.names.computed.contains(link_id) {
            self.errors.push(format!("{written} reads a computed item; use score('{link_id}') for its value"));
            return;
        }
        if self.check_question(link_id, written) {
            self.analysis.references.values.insert(link_id.to_owned());
        }
    }

    /// Checks that `link_id` names a question and reports it otherwise.
    fn check_question(&mut self, link_id: &str, written: &str) -> bool {
        match self.names.form.item(link_id) {
            Some(item) if item.item_type.is_question() => true,
            Some(item) => {
                self.errors.push(format!(
                    "{written} names a {} item, which has no answer; answers holds questions only",
                    item.item_type.code()
                ));
                false
            }
            None => {
                self.errors.push(format!("unknown linkId \"{link_id}\" in {written}"));
                false
            }
        }
    }

    fn call(&mut self, call: &CallExpr) {
        let name = call.func_name.as_str();
        let literal = |position: usize| match call.args.get(position).map(|argument| &argument.expr) {
            Some(Expr::Literal(LiteralValue::String(text))) => Some(text.inner().to_string()),
            _ => None,
        };

        match name {
            "_[_]" if call.target.is_none() && is_answers(&call.args[0], self) => {
                match literal(1) {
                    Some(link_id) => self.answers_key(&link_id, &format!("answers['{link_id}']")),
                    None => {
                        self.analysis.references.all_answers = true;
                        self.analysis.references.answers_map = true;
                        self.visit(&call.args[1]);
                    }
                }
                return;
            }
            "@in" if call.args.len() == 2 && is_answers(&call.args[1], self) => {
                match literal(0) {
                    Some(link_id) => self.answers_key(&link_id, &format!("'{link_id}' in answers")),
                    None => {
                        self.analysis.references.all_answers = true;
                        self.analysis.references.answers_map = true;
                        self.visit(&call.args[0]);
                    }
                }
                return;
            }
            "ordinal" | "answered" | "score" | "answer" if call.target.is_none() => {
                self.submission_call(name, call, literal(0));
                call.args.iter().skip(1).for_each(|argument| self.visit(argument));
                return;
            }
            "ordinal_sum" if call.target.is_none() => {
                if !call.args.is_empty() {
                    self.errors.push("ordinal_sum() takes no arguments".to_owned());
                }
                self.analysis.references.ordinal_sum = true;
                return;
            }
            "of" | "none" | "ofNonZeroValue" if matches!(call.target.as_deref().map(|target| &target.expr), Some(Expr::Ident(namespace)) if namespace == "optional") =>
            {
                call.args.iter().for_each(|argument| self.visit(argument));
                return;
            }
            _ => {}
        }

        let known = is_operator(name)
            || STANDARD_FUNCTIONS.contains(&name)
            || HELPERS.iter().any(|(helper, _, _)| *helper == name);
        if !known {
            self.errors.push(format!("unknown function {name}()"));
        }
        if let Some(target) = &call.target {
            self.visit(target);
        }
        call.args.iter().for_each(|argument| self.visit(argument));
    }

    fn submission_call(&mut self, name: &str, call: &CallExpr, link_id: Option<String>) {
        let arity_ok = match name {
            "answer" => matches!(call.args.len(), 1 | 2),
            _ => call.args.len() == 1,
        };
        if !arity_ok {
            self.errors.push(format!("{name}() takes {} argument", if name == "answer" { "1 or 2" } else { "1" }));
            return;
        }
        let field_is_literal =
            call.args.get(1).is_none_or(|field| matches!(field.expr, Expr::Literal(LiteralValue::String(_))));
        if !field_is_literal {
            self.errors.push("answer() takes a field name as a string literal".to_owned());
            return;
        }
        let Some(link_id) = link_id else {
            self.errors.push(format!("{name}() takes a linkId or score name as a string literal"));
            return;
        };
        let written = format!("{name}('{link_id}')");
        let references = &mut self.analysis.references;
        match name {
            "score" => {
                if self.names.scores.contains(&link_id) {
                    references.scores.insert(link_id);
                } else {
                    self.errors.push(format!("{written} names no computed item and no score of the trial file"));
                }
            }
            _ if self.names.computed.contains(&link_id) => {
                if name == "ordinal" {
                    self.errors.push(format!("{written} reads a computed item, which has no option scores"));
                } else {
                    references.scores.insert(link_id);
                }
            }
            "ordinal" => {
                let has_ordinals = self
                    .names
                    .form
                    .item(&link_id)
                    .is_some_and(|item| item.options.iter().any(|option| option.ordinal.is_some()));
                if !self.check_question(&link_id, &written) {
                    return;
                }
                if !has_ordinals {
                    self.errors.push(format!("{written}: item \"{link_id}\" has no option with an ordinalValue"));
                    return;
                }
                self.analysis.references.ordinals.insert(link_id);
            }
            "answered" => {
                if self.check_question(&link_id, &written) {
                    self.analysis.references.answered.insert(link_id);
                }
            }
            _ => {
                if self.check_question(&link_id, &written) {
                    self.analysis.references.values.insert(link_id);
                }
            }
        }
    }
}

fn is_answers(node: &IdedExpr, walker: &Walker<'_, '_>) -> bool {
    matches!(&node.expr, Expr::Ident(name) if name == "answers" && !walker.is_bound(name))
}

/// Returns true for the names the parser gives operators and macros, such
/// as `_+_`, `!_`, `@in` and `@not_strictly_false`.
fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_"
}

/// Kind of value a subtree produces, as far as the rewrite can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberKind {
    Double,
    Int,
    Other,
}

/// Rewrites a checked program for evaluation and returns its depth:
/// chains of `+` and `*` are rebalanced, integer literals next to doubles
/// become doubles, and `/` becomes the checked division.
pub(crate) fn rewrite(expression: &mut IdedExpr, form: &Form) -> usize {
    rebalance(expression);
    promote(expression, form);
    depth(expression)
}

/// Rebalances chains of one associative operator (`+` or `*`) into a tree
/// of depth log2(n), because the evaluator recurses once per level.
fn rebalance(node: &mut IdedExpr) {
    if let Expr::Call(call) = &node.expr
        && call.target.is_none()
        && matches!(call.func_name.as_str(), "_+_" | "_*_")
    {
        let operator = call.func_name.clone();
        let mut operands = Vec::new();
        collect_operands(std::mem::take(node), &operator, &mut operands);
        for operand in &mut operands {
            rebalance(operand);
        }
        *node = build_balanced(&operator, operands);
        return;
    }
    for child in children_mut(node) {
        rebalance(child);
    }
}

fn collect_operands(node: IdedExpr, operator: &str, operands: &mut Vec<IdedExpr>) {
    match node.expr {
        Expr::Call(call) if call.target.is_none() && call.func_name == operator && call.args.len() == 2 => {
            for argument in call.args {
                collect_operands(argument, operator, operands);
            }
        }
        expr => operands.push(IdedExpr { id: node.id, expr }),
    }
}

fn build_balanced(operator: &str, mut operands: Vec<IdedExpr>) -> IdedExpr {
    if operands.len() == 1 {
        return operands.swap_remove(0);
    }
    let right = operands.split_off(operands.len() / 2);
    let left = build_balanced(operator, operands);
    let right = build_balanced(operator, right);
    let id = left.id.max(right.id);
    IdedExpr {
        id,
        expr: Expr::Call(CallExpr { func_name: operator.to_owned(), target: None, args: vec![left, right] }),
    }
}

/// Turns integer literals next to doubles into doubles, bottom up, and
/// `/` into the checked division. Returns the kind of the subtree.
fn promote(node: &mut IdedExpr, form: &Form) -> NumberKind {
    let kinds: Vec<NumberKind> = children_mut(node).into_iter().map(|child| promote(child, form)).collect();
    match &mut node.expr {
        Expr::Literal(LiteralValue::Double(_)) => NumberKind::Double,
        Expr::Literal(LiteralValue::Int(_)) => NumberKind::Int,
        Expr::Call(call) if call.target.is_none() => {
            let name = call.func_name.as_str();
            match name {
                "_+_" | "_-_" | "_*_" | "_/_" if call.args.len() == 2 => {
                    let kind = promote_pair(&mut call.args, &kinds);
                    if name == "_/_" {
                        call.func_name = DIVIDE.to_owned();
                    }
                    kind
                }
                "_?_:_" if call.args.len() == 3 => promote_pair(&mut call.args[1..], &kinds[1..]),
                "-_" => kinds.first().copied().unwrap_or(NumberKind::Other),
                "ordinal" | "ordinal_sum" | "score" | "round" | "double" => NumberKind::Double,
                "size" | "int" => NumberKind::Int,
                "answer" => answer_kind(call, form),
                "_[_]" => index_kind(call, form),
                _ => NumberKind::Other,
            }
        }
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if name == "answers" && !select.test => item_kind(form, &select.field, None),
            _ if select.field == "value" && is_quantity_answer(&select.operand, form) => NumberKind::Double,
            _ => NumberKind::Other,
        },
        _ => NumberKind::Other,
    }
}

/// Promotes an integer literal among two operands when the other is a
/// double, and returns the kind of the pair.
fn promote_pair(operands: &mut [IdedExpr], kinds: &[NumberKind]) -> NumberKind {
    let (Some(left), Some(right)) = (kinds.first().copied(), kinds.get(1).copied()) else {
        return NumberKind::Other;
    };
    for (position, (own, other)) in [(left, right), (right, left)].into_iter().enumerate() {
        if own == NumberKind::Int && other == NumberKind::Double {
            promote_literal(&mut operands[position]);
        }
    }
    let promoted = |kind: NumberKind, other: NumberKind| {
        if kind == NumberKind::Int && other == NumberKind::Double { NumberKind::Double } else { kind }
    };
    let (left, right) = (promoted(left, right), promoted(right, left));
    if left == right { left } else { NumberKind::Other }
}

fn promote_literal(node: &mut IdedExpr) {
    match &mut node.expr {
        Expr::Literal(LiteralValue::Int(value)) => {
            let value = *value.inner() as f64;
            node.expr = Expr::Literal(LiteralValue::Double(CelDouble::from(value)));
        }
        Expr::Call(call) if call.func_name == "-_" => {
            if let Some(operand) = call.args.first_mut() {
                promote_literal(operand);
            }
        }
        _ => {}
    }
}

fn answer_kind(call: &CallExpr, form: &Form) -> NumberKind {
    let text = |position: usize| match call.args.get(position).map(|argument| &argument.expr) {
        Some(Expr::Literal(LiteralValue::String(text))) => Some(text.inner().to_string()),
        _ => None,
    };
    match text(0) {
        Some(link_id) => item_kind(form, &link_id, text(1).as_deref()),
        None => NumberKind::Other,
    }
}

fn index_kind(call: &CallExpr, form: &Form) -> NumberKind {
    match (call.args.first().map(|argument| &argument.expr), call.args.get(1).map(|argument| &argument.expr)) {
        (Some(Expr::Ident(name)), Some(Expr::Literal(LiteralValue::String(link_id)))) if name == "answers" => {
            item_kind(form, link_id.inner(), None)
        }
        _ => NumberKind::Other,
    }
}

fn is_quantity_answer(node: &IdedExpr, form: &Form) -> bool {
    let link_id = match &node.expr {
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if name == "answers" => Some(select.field.clone()),
            _ => None,
        },
        Expr::Call(call) if call.func_name == "_[_]" => match call.args.as_slice() {
            [
                IdedExpr { expr: Expr::Ident(name), .. },
                IdedExpr { expr: Expr::Literal(LiteralValue::String(key)), .. },
            ] if name == "answers" => Some(key.inner().to_string()),
            _ => None,
        },
        _ => None,
    };
    link_id.and_then(|link_id| form.item(&link_id)).is_some_and(|item| item.item_type == ItemType::Quantity)
}

/// Kind of an item's answer, or of its `field` when one is read.
fn item_kind(form: &Form, link_id: &str, field: Option<&str>) -> NumberKind {
    let Some(item) = form.item(link_id) else {
        return NumberKind::Other;
    };
    let numeric = match field {
        None => matches!(item.item_type, ItemType::Integer | ItemType::Decimal),
        Some("value") => item.item_type == ItemType::Quantity,
        Some(_) => false,
    };
    if numeric { NumberKind::Double } else { NumberKind::Other }
}

fn children_mut(node: &mut IdedExpr) -> Vec<&mut IdedExpr> {
    match &mut node.expr {
        Expr::Call(call) => call.target.as_deref_mut().into_iter().chain(call.args.iter_mut()).collect(),
        Expr::Select(select) => vec![select.operand.as_mut()],
        Expr::List(list) => list.elements.iter_mut().collect(),
        Expr::Map(map) => map
            .entries
            .iter_mut()
            .flat_map(|entry| match &mut entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => vec![&mut entry.key, &mut entry.value],
                cel::common::ast::EntryExpr::StructField(field) => vec![&mut field.value],
            })
            .collect(),
        Expr::Comprehension(comprehension) => {
            let comprehension = comprehension.as_mut();
            vec![
                &mut comprehension.iter_range,
                &mut comprehension.accu_init,
                &mut comprehension.loop_cond,
                &mut comprehension.loop_step,
                &mut comprehension.result,
            ]
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) => Vec::new(),
    }
}

fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    match &node.expr {
        Expr::Call(call) => call.target.as_deref().into_iter().chain(call.args.iter()).collect(),
        Expr::Select(select) => vec![select.operand.as_ref()],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
                cel::common::ast::EntryExpr::StructField(field) => vec![&field.value],
            })
            .collect(),
        Expr::Comprehension(comprehension) => vec![
            &comprehension.iter_range,
            &comprehension.accu_init,
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ],
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) => Vec::new(),
    }
}

/// Returns the depth of the tree: 1 for a leaf.
fn depth(node: &IdedExpr) -> usize {
    1 + children(node).into_iter().map(depth).max().unwrap_or(0)
}

/// Positions that [`bind`] writes into the programs.
pub(crate) struct Binding<'a> {
    /// Position of each item in `RuleSet::items`, by linkId.
    pub items: &'a std::collections::HashMap<String, usize>,
    /// Position in `RuleSet::slots` of each computed item and trial score.
    pub scores: &'a std::collections::HashMap<String, usize>,
    /// Position in `RuleSet::slots` of each FHIRPath variable, by CEL
    /// identifier.
    pub variables: &'a std::collections::HashMap<String, usize>,
    /// `(item position, field)` pairs read with `answer(linkId, field)`;
    /// `@field/N` names the N-th.
    pub fields: &'a mut Vec<(usize, String)>,
}

/// Replaces the reads of the submission in a checked program by bound
/// identifiers (see the module documentation). Names that `analyze`
/// accepted are always found; anything else is left as it is.
pub(crate) fn bind(node: &mut IdedExpr, binding: &mut Binding<'_>, bound: &mut Vec<String>) {
    if let Some(name) = bound_name(node, binding, bound) {
        node.expr = Expr::Ident(name);
        return;
    }
    if let Expr::Comprehension(comprehension) = &mut node.expr {
        bind(&mut comprehension.iter_range, binding, bound);
        bind(&mut comprehension.accu_init, binding, bound);
        let mark = bound.len();
        bound.push(comprehension.iter_var.clone());
        bound.extend(comprehension.iter_var2.clone());
        bound.push(comprehension.accu_var.clone());
        bind(&mut comprehension.loop_cond, binding, bound);
        bind(&mut comprehension.loop_step, binding, bound);
        bind(&mut comprehension.result, binding, bound);
        bound.truncate(mark);
        return;
    }
    for child in children_mut(node) {
        bind(child, binding, bound);
    }
}

fn bound_name(node: &IdedExpr, binding: &mut Binding<'_>, bound: &[String]) -> Option<String> {
    let free = |name: &str| !bound.iter().any(|variable| variable == name);
    let is_answers = |node: &IdedExpr| matches!(&node.expr, Expr::Ident(name) if name == "answers" && free(name));
    let literal = |node: Option<&IdedExpr>| match node.map(|node| &node.expr) {
        Some(Expr::Literal(LiteralValue::String(text))) => Some(text.inner().to_string()),
        _ => None,
    };
    let item = |link_id: &str| binding.items.get(link_id).copied();

    match &node.expr {
        Expr::Ident(name) if free(name) => binding.variables.get(name).map(|slot| format!("@var/{slot}")),
        Expr::Select(select) if is_answers(&select.operand) => {
            let position = item(&select.field)?;
            Some(if select.test { format!("@answered/{position}") } else { format!("@value/{position}") })
        }
        Expr::Call(call) if call.target.is_none() => {
            let first = literal(call.args.first());
            match (call.func_name.as_str(), call.args.len()) {
                ("_[_]", 2) if is_answers(&call.args[0]) => {
                    Some(format!("@value/{}", item(&literal(call.args.get(1))?)?))
                }
                ("@in", 2) if is_answers(&call.args[1]) => Some(format!("@answered/{}", item(&first?)?)),
                ("ordinal", 1) => Some(format!("@ordinal/{}", item(&first?)?)),
                ("ordinal_sum", 0) => Some("@ordinal_sum".to_owned()),
                ("score", 1) => Some(format!("@score/{}", binding.scores.get(&first?)?)),
                ("answered", 1) => {
                    let link_id = first?;
                    match binding.scores.get(&link_id) {
                        Some(slot) => Some(format!("@scored/{slot}")),
                        None => Some(format!("@answered/{}", item(&link_id)?)),
                    }
                }
                ("answer", 1) => {
                    let link_id = first?;
                    match binding.scores.get(&link_id) {
                        Some(slot) => Some(format!("@score/{slot}")),
                        None => Some(format!("@answer/{}", item(&link_id)?)),
                    }
                }
                ("answer", 2) => {
                    let (link_id, field) = (first?, literal(call.args.get(1))?);
                    if let Some(slot) = binding.scores.get(&link_id) {
                        let name = if field == "value" { format!("@score/{slot}") } else { "@null".to_owned() };
                        return Some(name);
                    }
                    let position = item(&link_id)?;
                    binding.fields.push((position, field));
                    Some(format!("@field/{}", binding.fields.len() - 1))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Returns true when the program's depth is within [`MAX_DEPTH`].
pub(crate) fn depth_allowed(depth: usize) -> bool {
    depth <= MAX_DEPTH
}

/// Converts a normalized JSON answer into a CEL value. Every number
/// becomes a double.
pub(crate) fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => number.as_f64().map_or(Value::Null, Value::Float),
        serde_json::Value::String(text) => Value::String(Arc::new(text.clone())),
        serde_json::Value::Array(values) => Value::List(Arc::new(values.iter().map(json_to_cel).collect())),
        serde_json::Value::Object(fields) => {
            let map: std::collections::HashMap<String, Value> =
                fields.iter().map(|(key, value)| (key.clone(), json_to_cel(value))).collect();
            Value::from(map)
        }
    }
}

/// Returns the number a CEL value holds, if it is one.
pub(crate) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Float(number) => Some(*number),
        Value::Int(number) => Some(*number as f64),
        Value::UInt(number) => Some(*number as f64),
        _ => None,
    }
}

/// Converts a double into a decimal rounded to 12 significant digits and
/// normalized, so that `0.1 + 0.2` is `0.3` and BMI is not
/// `22.789365453000002`. Returns `None` for an infinity, NaN or a
/// magnitude beyond the range of `Decimal` (about 7.9e28). Magnitudes below
/// 1e-28 become zero.
pub(crate) fn to_decimal(number: f64) -> Option<Decimal> {
    if !number.is_finite() {
        return None;
    }
    if number.abs() < 1e-28 {
        return Some(Decimal::ZERO);
    }
    // Most scores are whole numbers, which need no rounding below 1e12 and
    // convert without formatting the double.
    if number.fract() == 0.0 && number.abs() < 1e12 {
        return Some(Decimal::from(number as i64));
    }
    let scientific = format!("{number:.11e}");
    let decimal = Decimal::from_scientific(&scientific).ok()?.normalize();
    Some(if decimal.is_zero() { Decimal::ZERO } else { decimal })
}

/// Rounds `number` to `digits` decimal places, half away from zero, after
/// the 12-significant-digit conversion of [`to_decimal`].
fn round_number(number: f64, digits: u32) -> Option<f64> {
    let decimal = to_decimal(number)?;
    decimal.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero).to_f64()
}

type Arguments<'b, 'v> = Vec<CowVal<'b, 'v>>;
type Returned<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

fn values(arguments: &[CowVal<'_, '_>]) -> Result<Vec<Value>, ExecutionError> {
    arguments.iter().map(|argument| Value::try_from(argument.as_ref())).collect()
}

fn owned<'b, 'v>(value: Value) -> Returned<'b, 'v> {
    let boxed: Box<dyn Val> = value.try_into()?;
    Ok(CowVal::Owned(boxed))
}

fn pair(arguments: &[CowVal<'_, '_>], name: &str) -> Result<(Value, Value), ExecutionError> {
    let mut values = values(arguments)?;
    if values.len() != 2 {
        return Err(ExecutionError::function_error(name, "takes two arguments"));
    }
    let right = values.pop().unwrap_or(Value::Null);
    let left = values.pop().unwrap_or(Value::Null);
    Ok((left, right))
}

fn finite(number: f64) -> Value {
    if number.is_finite() { Value::Float(number) } else { Value::Null }
}

fn round<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let (value, digits) = pair(&arguments, "round")?;
    if value == Value::Null {
        return owned(Value::Null);
    }
    let digits = number(&digits)
        .filter(|digits| digits.fract() == 0.0 && (0.0..=12.0).contains(digits))
        .ok_or_else(|| ExecutionError::function_error("round", "digits must be a whole number from 0 to 12"))?;
    let number = number(&value).ok_or_else(|| ExecutionError::function_error("round", "not a number"))?;
    let rounded = round_number(number, digits as u32).map_or(Value::Null, Value::Float);
    owned(rounded)
}

fn divide<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let (left, right) = pair(&arguments, "/")?;
    let quotient = match (&left, &right) {
        (Value::Float(a), Value::Float(b)) if *b != 0.0 && (a / b).is_finite() => Value::Float(a / b),
        (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_div(*b).ok_or(ExecutionError::DivisionByZero(left))?),
        (Value::UInt(a), Value::UInt(b)) => Value::UInt(a.checked_div(*b).ok_or(ExecutionError::DivisionByZero(left))?),
        (Value::Float(_), Value::Float(_)) => return Err(ExecutionError::DivisionByZero(left)),
        _ => return Err(ExecutionError::UnsupportedBinaryOperator("div", left, right)),
    };
    owned(quotient)
}

/// Applies a numeric FHIRPath operator: null for a null operand, an error
/// for an operand that is not a number.
fn arithmetic<'b, 'v>(arguments: &[CowVal<'_, '_>], name: &str, operation: fn(f64, f64) -> Value) -> Returned<'b, 'v> {
    let (left, right) = pair(arguments, name)?;
    if left == Value::Null || right == Value::Null {
        return owned(Value::Null);
    }
    match (number(&left), number(&right)) {
        (Some(a), Some(b)) => owned(operation(a, b)),
        _ => Err(ExecutionError::function_error(name, "operands must be numbers")),
    }
}

fn fhirpath_add<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let (left, right) = pair(&arguments, "+")?;
    if let (Value::String(a), Value::String(b)) = (&left, &right) {
        return owned(Value::String(Arc::new(format!("{a}{b}"))));
    }
    arithmetic(&arguments, "+", |a, b| finite(a + b))
}

fn fhirpath_sub<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    arithmetic(&arguments, "-", |a, b| finite(a - b))
}

fn fhirpath_mul<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    arithmetic(&arguments, "*", |a, b| finite(a * b))
}

/// FHIRPath division: empty (null) when the divisor is zero.
fn fhirpath_div<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    arithmetic(&arguments, "/", |a, b| if b == 0.0 { Value::Null } else { finite(a / b) })
}

/// FHIRPath `&`: string concatenation that reads an empty operand as "".
fn fhirpath_concat<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let (left, right) = pair(&arguments, "&")?;
    let text = |value: &Value| match value {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text.as_ref().clone()),
        _ => Err(ExecutionError::function_error("&", "operands must be strings")),
    };
    owned(Value::String(Arc::new(format!("{}{}", text(&left)?, text(&right)?))))
}

fn equality<'b, 'v>(arguments: &[CowVal<'_, '_>], equal: bool) -> Returned<'b, 'v> {
    let (left, right) = pair(arguments, "=")?;
    if left == Value::Null || right == Value::Null {
        return owned(Value::Null);
    }
    owned(Value::Bool((left == right) == equal))
}

fn fhirpath_eq<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    equality(&arguments, true)
}

fn fhirpath_ne<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    equality(&arguments, false)
}

/// Compares two numbers or two strings; null for a null operand.
fn comparison<'b, 'v>(
    arguments: &[CowVal<'_, '_>],
    name: &str,
    accept: fn(std::cmp::Ordering) -> bool,
) -> Returned<'b, 'v> {
    let (left, right) = pair(arguments, name)?;
    if left == Value::Null || right == Value::Null {
        return owned(Value::Null);
    }
    let ordering = match (&left, &right) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => match (number(&left), number(&right)) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => None,
        },
    };
    match ordering {
        Some(ordering) => owned(Value::Bool(accept(ordering))),
        None => Err(ExecutionError::ValuesNotComparable(left, right)),
    }
}

fn fhirpath_lt<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    comparison(&arguments, "<", std::cmp::Ordering::is_lt)
}

fn fhirpath_le<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    comparison(&arguments, "<=", std::cmp::Ordering::is_le)
}

fn fhirpath_gt<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    comparison(&arguments, ">", std::cmp::Ordering::is_gt)
}

fn fhirpath_ge<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    comparison(&arguments, ">=", std::cmp::Ordering::is_ge)
}

/// Reads a FHIRPath Boolean operand: `Some(flag)`, or `None` for empty.
fn logical(value: &Value, name: &str) -> Result<Option<bool>, ExecutionError> {
    match value {
        Value::Bool(flag) => Ok(Some(*flag)),
        Value::Null => Ok(None),
        _ => Err(ExecutionError::function_error(name, "operands must be booleans")),
    }
}

fn three_valued(flag: Option<bool>) -> Value {
    flag.map_or(Value::Null, Value::Bool)
}

/// FHIRPath `and`: false when either side is false, empty when either is
/// empty and neither is false.
fn fhirpath_and<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let (left, right) = pair(&arguments, "and")?;
    let result = match (logical(&left, "and")?, logical(&right, "and")?) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    };
    owned(three_valued(result))
}

/// FHIRPath `or`: true when either side is true, empty when either is
/// empty and neither is true.
fn fhirpath_or<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let (left, right) = pair(&arguments, "or")?;
    let result = match (logical(&left, "or")?, logical(&right, "or")?) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    };
    owned(three_valued(result))
}

fn fhirpath_not<'b, 'v>(arguments: Arguments<'b, 'v>) -> Returned<'b, 'v> {
    let values = values(&arguments)?;
    let operand = values.first().unwrap_or(&Value::Null);
    owned(three_valued(logical(operand, "not")?.map(|flag| !flag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_decimal_rounds_binary_noise() {
        let cases = [
            (0.1 + 0.2, "0.3"),
            (14.290000000000001, "14.29"),
            (-0.0, "0"),
            (1.0 / 3.0, "0.333333333333"),
            (123456789012345.0, "123456789012000"),
            (2.5e-7, "0.00000025"),
        ];
        for (number, expected) in cases {
            let decimal = to_decimal(number).expect("finite");
            assert_eq!(decimal.to_string(), expected, "{number}");
        }
    }

    #[test]
    fn to_decimal_rejects_non_finite_and_huge() {
        assert_eq!(to_decimal(f64::INFINITY), None);
        assert_eq!(to_decimal(f64::NAN), None);
        assert_eq!(to_decimal(1e30), None);
        assert_eq!(to_decimal(1e-30), Some(Decimal::ZERO));
    }

    #[test]
    fn round_number_half_away_from_zero() {
        assert_eq!(round_number(2.5, 0), Some(3.0));
        assert_eq!(round_number(-2.5, 0), Some(-3.0));
        assert_eq!(round_number(0.125, 2), Some(0.13));
        assert_eq!(round_number(22.789365, 1), Some(22.8));
    }
}
