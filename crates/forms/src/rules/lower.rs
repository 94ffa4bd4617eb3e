//! Translation of a parsed FHIRPath expression into CEL source text.
//!
//! FHIRPath works on collections, and an empty collection propagates:
//! `{} + 1` is empty, `{} = 1` is empty, and `iif({}, a, b)` is `b`. The
//! translation represents empty as CEL `null` and keeps that meaning.
//! Where an operand may be null, the operator becomes a null-aware helper
//! (`fhirpath_add`, `fhirpath_eq` and so on) that returns null for a null
//! operand. Where both operands are known not to be null, the plain CEL
//! operator is used, because it is faster. Number literals become CEL
//! doubles, because every number in the CEL environment is a double.
//!
//! Paths must lead to one answer of one item, checked against the form:
//! `%resource.item.where(linkId='X').answer.value` becomes `answer('X')`,
//! and the lforms ordinal pattern becomes `ordinal('X')`.

use std::collections::HashSet;

use super::fhirpath::{Node, Operator};
use crate::model::{Form, Item, ItemType};

const ORDINAL_VALUE_URLS: &[&str] =
    &["http://hl7.org/fhir/StructureDefinition/ordinalValue", "http://hl7.org/fhir/StructureDefinition/itemWeight"];

/// Kind of value a translated expression produces, as far as the
/// translation can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Boolean,
    Number,
    String,
    /// A date, dateTime or time answer. CEL holds it as text, which does
    /// not compare like FHIRPath dates of different precision, so no
    /// operator may take it.
    Temporal,
    /// A Coding or quantity map, a list, or not known.
    Other,
}

/// A translated (sub)expression.
#[derive(Debug, Clone)]
pub(crate) struct Lowered {
    pub cel: String,
    /// True when the value may be null (FHIRPath empty).
    pub nullable: bool,
    pub kind: Kind,
    /// The text of a literal, also when a variable's value is one. Such a
    /// variable is inlined instead of evaluated.
    pub constant: Option<String>,
    /// Set on answer, ordinal and variable references: evaluating the same
    /// text twice gives the same value.
    pub reference: Option<String>,
    /// Set on `X.exists()` where X is a reference: the reference.
    pub exists_of: Option<String>,
}

/// A `%name` variable that an expression can see.
#[derive(Debug, Clone)]
pub(crate) struct VisibleVariable {
    pub name: String,
    pub value: VariableValue,
}

#[derive(Debug, Clone)]
pub(crate) enum VariableValue {
    /// A literal or a plain read: the translation is inlined wherever the
    /// variable is used.
    Constant(Lowered),
    /// Evaluated once per submission into the CEL variable `identifier`.
    Slot { identifier: String, kind: Kind },
    /// The variable itself could not be translated; its error was reported.
    Failed,
}

/// Everything a translation needs to know about where the expression is.
pub(crate) struct Lowering<'a> {
    pub form: &'a Form,
    /// The item the expression is attached to, which is the FHIRPath
    /// context, or `None` for a form-level expression.
    pub context: Option<&'a Item>,
    /// Variables in scope, outermost first. A later one with the same name
    /// shadows an earlier one.
    pub variables: &'a [VisibleVariable],
    /// linkIds of computed items, whose answers are their computed values.
    pub computed: &'a HashSet<String>,
}

/// Position of a path while its steps are followed.
enum Place<'a> {
    /// At the QuestionnaireResponse (or Questionnaire) itself.
    Root,
    /// Among the given items (the root's or a group's children, or the
    /// items a `where` kept).
    Items(Vec<&'a Item>),
    /// At the `answer` of one item.
    Answer(&'a Item),
}

impl Lowered {
    fn new(cel: String, nullable: bool, kind: Kind) -> Lowered {
        Lowered { cel, nullable, kind, constant: None, reference: None, exists_of: None }
    }

    fn null() -> Lowered {
        Lowered::new("null".to_owned(), true, Kind::Other)
    }

    fn is_null_literal(&self) -> bool {
        self.cel == "null"
    }
}

impl<'a> Lowering<'a> {
    /// Translates `node` into CEL.
    ///
    /// # Errors
    ///
    /// Returns why the expression is outside the subset, naming the
    /// construct.
    pub(crate) fn lower(&mut self, node: &Node) -> Result<Lowered, String> {
        match node {
            Node::String(text) => {
                let mut lowered = Lowered::new(cel_string(text), false, Kind::String);
                lowered.constant = Some(text.clone());
                Ok(lowered)
            }
            Node::Number(text) => {
                let mut lowered = Lowered::new(cel_double(text)?, false, Kind::Number);
                lowered.constant = Some(text.clone());
                Ok(lowered)
            }
            Node::Boolean(flag) => {
                let mut lowered = Lowered::new(flag.to_string(), false, Kind::Boolean);
                lowered.constant = Some(flag.to_string());
                Ok(lowered)
            }
            Node::Empty => Ok(Lowered::null()),
            Node::Variable(name) => self.variable(name),
            Node::Identifier(_) => self.path(node),
            Node::Call { name, arguments } => self.call(name, arguments),
            Node::Member { target, name, arguments: Some(arguments) } => self.method(node, target, name, arguments),
            Node::Member { .. } => self.path(node),
            Node::Negate(operand) => {
                let operand = self.lower(operand)?;
                if operand.kind == Kind::Temporal {
                    return Err("operators on date, dateTime and time answers are not supported".to_owned());
                }
                if !operand.nullable && operand.kind == Kind::Number {
                    return Ok(Lowered::new(format!("(-{})", operand.cel), false, Kind::Number));
                }
                Ok(Lowered::new(format!("fhirpath_sub(0.0, {})", operand.cel), true, Kind::Number))
            }
            Node::Binary { operator, .. } => self.binary(node, *operator),
        }
    }

    fn variable(&mut self, name: &str) -> Result<Lowered, String> {
        if matches!(name, "resource" | "questionnaire" | "context" | "rootResource") {
            return Err(format!(
                "%{name} must be followed by a path to an answer, such as .item.where(linkId = '...')"
            ));
        }
        let Some(variable) = self.variables.iter().rev().find(|variable| variable.name == name) else {
            return Err(format!("%{name} names no variable in scope; variables are defined by variable extensions"));
        };
        match &variable.value {
            VariableValue::Constant(lowered) => Ok(lowered.clone()),
            VariableValue::Slot { identifier, kind } => {
                let mut lowered = Lowered::new(identifier.clone(), true, *kind);
                lowered.reference = Some(identifier.clone());
                Ok(lowered)
            }
            VariableValue::Failed => Err(format!("%{name} cannot be evaluated (see the error on that variable)")),
        }
    }

    fn call(&mut self, name: &str, arguments: &[Node]) -> Result<Lowered, String> {
        match (name, arguments.len()) {
            ("iif", 2 | 3) => self.iif(arguments),
            ("iif", count) => Err(format!("iif() takes 2 or 3 arguments, not {count}")),
            ("answers", _) => Err("answers() is supported only as answers().sum(value.ordinal())".to_owned()),
            _ => Err(format!("the function {name}() is not supported")),
        }
    }

    fn iif(&mut self, arguments: &[Node]) -> Result<Lowered, String> {
        let condition = self.lower(&arguments[0])?;
        let then = self.lower(&arguments[1])?;
        let otherwise = match arguments.get(2) {
            Some(node) => self.lower(node)?,
            None => Lowered::null(),
        };

        // In `iif(X.exists(), X, ...)` the first branch is taken only when
        // X is not null.
        let guarded = condition.exists_of.is_some() && condition.exists_of == then.reference;
        let then_nullable = then.nullable && !guarded;
        let test = if condition.kind == Kind::Boolean && !condition.nullable {
            condition.cel
        } else {
            format!("{} == true", condition.cel)
        };
        let kind = if otherwise.is_null_literal() || then.kind == otherwise.kind { then.kind } else { Kind::Other };
        let cel = format!("({test} ? {} : {})", then.cel, otherwise.cel);
        Ok(Lowered::new(cel, then_nullable || otherwise.nullable, kind))
    }

    fn method(&mut self, node: &Node, target: &Node, name: &str, arguments: &[Node]) -> Result<Lowered, String> {
        match (name, arguments) {
            ("exists", []) => {
                let target = self.lower(target)?;
                let mut lowered = Lowered::new(format!("({} != null)", target.cel), false, Kind::Boolean);
                lowered.exists_of = target.reference;
                Ok(lowered)
            }
            ("empty", []) => {
                let target = self.lower(target)?;
                Ok(Lowered::new(format!("({} == null)", target.cel), false, Kind::Boolean))
            }
            ("not", []) => {
                let target = self.lower(target)?;
                if target.kind == Kind::Boolean && !target.nullable {
                    return Ok(Lowered::new(format!("(!{})", target.cel), false, Kind::Boolean));
                }
                Ok(Lowered::new(format!("fhirpath_not({})", target.cel), true, Kind::Boolean))
            }
            ("round", []) => self.round(target, 0),
            ("round", [Node::Number(digits)]) => {
                let digits = digits
                    .parse::<u32>()
                    .ok()
                    .filter(|digits| *digits <= 12)
                    .ok_or("round() takes a whole number of digits from 0 to 12")?;
                self.round(target, digits)
            }
            ("round", _) => Err("round() takes a whole number of digits from 0 to 12".to_owned()),
            ("sum", [argument]) if is_answers_call(target) && is_value_ordinal(argument) => {
                Ok(Lowered::new("ordinal_sum()".to_owned(), false, Kind::Number))
            }
            ("where", _) => self.path(node),
            ("exists" | "empty" | "not", _) => Err(format!("{name}() with arguments is not supported")),
            _ => Err(format!("the function {name}() is not supported")),
        }
    }

    fn round(&mut self, target: &Node, digits: u32) -> Result<Lowered, String> {
        let target = self.lower(target)?;
        Ok(Lowered::new(format!("round({}, {digits})", target.cel), target.nullable, Kind::Number))
    }

    fn binary(&mut self, node: &Node, operator: Operator) -> Result<Lowered, String> {
        // Chains of one associative operator are rebalanced, so that a sum
        // of many terms nests log2(n) levels deep instead of n.
        let associative = matches!(
            operator,
            Operator::Add | Operator::Multiply | Operator::Concatenate | Operator::And | Operator::Or
        );
        let mut operands = Vec::new();
        if associative {
            collect_chain(node, operator, &mut operands);
        } else if let Node::Binary { left, right, .. } = node {
            operands.push(left.as_ref());
            operands.push(right.as_ref());
        }
        let lowered = operands.into_iter().map(|operand| self.lower(operand)).collect::<Result<Vec<_>, _>>()?;
        if lowered.iter().any(|operand| operand.kind == Kind::Temporal) {
            return Err("operators on date, dateTime and time answers are not supported".to_owned());
        }
        Ok(balance(operator, lowered))
    }

    /// Follows the steps of a path from its root.
    fn path(&mut self, node: &Node) -> Result<Lowered, String> {
        let mut steps = Vec::new();
        let root = flatten(node, &mut steps)?;
        let (questionnaire, mut place, steps) = match root {
            Root::Resource => (false, Place::Root, &steps[1..]),
            Root::Questionnaire => (true, Place::Root, &steps[1..]),
            Root::Context => (false, self.context_place(), &steps[1..]),
            Root::Implicit => (false, self.context_place(), &steps[..]),
        };

        for (position, step) in steps.iter().enumerate() {
            place = match (place, step) {
                (Place::Root, Step::Name("item")) => Place::Items(self.form.items.iter().collect()),
                (Place::Items(items), Step::Name("item")) => Place::Items(children(items)),
                (Place::Items(items), Step::Where(predicate)) => {
                    let link_id = link_id_filter(predicate)?;
                    Place::Items(self.select(&items, link_id)?)
                }
                (Place::Items(items), Step::Name("answer")) => Place::Answer(one_item(&items)?),
                (Place::Items(items), Step::Name("answerOption")) if questionnaire => {
                    let item = one_item(&items)?;
                    return self.ordinal_pattern(item, &steps[position + 1..]);
                }
                (Place::Answer(item), _) => return self.answer(item, &steps[position..]),
                (_, step) => return Err(format!("the path step {} is not supported here", step.describe())),
            };
        }
        match place {
            Place::Answer(item) => self.answer(item, &[]),
            Place::Root | Place::Items(_) => Err("a path must end at an answer, such as .answer.value".to_owned()),
        }
    }

    /// Returns where an item-level path starts: at the context item, so
    /// that `item` steps go to its children and `answer` reads its own
    /// answer. A form-level path starts at the root.
    fn context_place(&self) -> Place<'a> {
        match self.context {
            Some(item) => Place::Items(vec![item]),
            None => Place::Root,
        }
    }

    /// Keeps the items with `link_id`, or explains why none is here.
    fn select<'f>(&self, items: &[&'f Item], link_id: &str) -> Result<Vec<&'f Item>, String> {
        let kept: Vec<&Item> = items.iter().copied().filter(|item| item.link_id == link_id).collect();
        if !kept.is_empty() {
            return Ok(kept);
        }
        if self.form.item(link_id).is_some() {
            return Err(format!(
                "item \"{link_id}\" is in the form but not at this place in the path; check the number of .item steps"
            ));
        }
        Err(format!("unknown linkId \"{link_id}\""))
    }

    /// Translates the steps after `answer`.
    fn answer(&mut self, item: &Item, steps: &[Step<'_>]) -> Result<Lowered, String> {
        let link_id = item.link_id.as_str();
        if !item.item_type.is_question() {
            return Err(format!("item \"{link_id}\" is a {}, which has no answer", item.item_type.code()));
        }
        let names: Vec<&str> = steps
            .iter()
            .map(|step| match step {
                Step::Name(name) => Ok(*name),
                Step::Where(_) => Err("where() after answer is not supported".to_owned()),
            })
            .collect::<Result<_, _>>()?;
        let (element, field) = match names.as_slice() {
            [] => return Err("a path must end at an answer value, such as .answer.value".to_owned()),
            [element] => (*element, None),
            [element, field] => (*element, Some(*field)),
            _ => return Err(format!("the path after answer ({}) is not supported", names.join("."))),
        };
        check_value_element(item, element)?;
        let field = check_field(item, element, field)?;

        if self.computed.contains(link_id) {
            if field.is_some_and(|field| field != "value") {
                return Err(format!("item \"{link_id}\" is computed, so only its number can be read"));
            }
            let cel = format!("score({})", cel_string(link_id));
            let mut lowered = Lowered::new(cel.clone(), true, Kind::Number);
            lowered.reference = Some(cel);
            return Ok(lowered);
        }

        let (cel, kind) = match field {
            Some(field) => {
                let kind = if field == "value" { Kind::Number } else { Kind::String };
                (format!("answer({}, {})", cel_string(link_id), cel_string(field)), kind)
            }
            None => (format!("answer({})", cel_string(link_id)), value_kind(item.item_type)),
        };
        let mut lowered = Lowered::new(cel.clone(), true, kind);
        lowered.reference = Some(cel);
        Ok(lowered)
    }

    /// Recognizes the lforms pattern that reads the score of the chosen
    /// option: `answerOption.where(valueCoding.code = <answer code of the
    /// same item>).extension.where(url = <ordinalValue URL>).valueDecimal`.
    fn ordinal_pattern(&mut self, item: &Item, steps: &[Step<'_>]) -> Result<Lowered, String> {
        let link_id = item.link_id.as_str();
        let unsupported = || {
            "only answerOption.where(valueCoding.code = <the item's answer code>).extension.where(url = \
             <ordinalValue URL>).valueDecimal is supported"
                .to_owned()
        };
        let [Step::Where(option_filter), Step::Name("extension"), Step::Where(url_filter), Step::Name(value)] = steps
        else {
            return Err(unsupported());
        };
        if !matches!(*value, "valueDecimal" | "valueInteger" | "value") {
            return Err(unsupported());
        }

        let Node::Binary { operator: Operator::Equal, left, right } = option_filter else {
            return Err(unsupported());
        };
        let answer_side = match (is_option_code(left), is_option_code(right)) {
            (true, false) => right,
            (false, true) => left,
            _ => return Err(unsupported()),
        };
        let answer = self.lower(answer_side)?;
        let expected = format!("answer({}, 'code')", cel_string(link_id));
        if answer.cel != expected {
            return Err(format!("the answerOption filter must compare with the answer code of item \"{link_id}\""));
        }

        let Node::Binary { operator: Operator::Equal, left, right } = url_filter else {
            return Err(unsupported());
        };
        let url_side = match (left.as_ref(), right.as_ref()) {
            (Node::Identifier(name), other) | (other, Node::Identifier(name)) if name == "url" => other,
            _ => return Err(unsupported()),
        };
        let url = self.lower(url_side)?.constant.ok_or_else(unsupported)?;
        if !ORDINAL_VALUE_URLS.contains(&url.as_str()) {
            return Err(format!("extension {url} is not an ordinalValue or itemWeight extension"));
        }

        let repeats = item.repeats || self.in_repeating_group(link_id);
        if repeats {
            return Err(format!("item \"{link_id}\" can have several answers, so its option score is not one value"));
        }
        let cel = format!("ordinal({})", cel_string(link_id));
        let mut lowered = Lowered::new(cel.clone(), true, Kind::Number);
        lowered.reference = Some(cel);
        Ok(lowered)
    }

    fn in_repeating_group(&self, link_id: &str) -> bool {
        let path = self.form.item_path(link_id).unwrap_or_default();
        path.iter().rev().skip(1).any(|ancestor| ancestor.repeats)
    }
}

/// The root of a path.
enum Root {
    Resource,
    Questionnaire,
    Context,
    /// A path that starts with a name, relative to the context.
    Implicit,
}

/// One step of a path.
enum Step<'n> {
    Name(&'n str),
    Where(&'n Node),
}

impl Step<'_> {
    fn describe(&self) -> String {
        match self {
            Step::Name(name) => format!(".{name}"),
            Step::Where(_) => ".where(...)".to_owned(),
        }
    }
}

/// Collects the steps of a path, root first, and returns its root. The
/// first step of a `%` root is a placeholder for the root itself.
fn flatten<'n>(node: &'n Node, steps: &mut Vec<Step<'n>>) -> Result<Root, String> {
    match node {
        Node::Variable(name) => {
            steps.push(Step::Name(""));
            match name.as_str() {
                "resource" | "rootResource" => Ok(Root::Resource),
                "questionnaire" => Ok(Root::Questionnaire),
                "context" => Ok(Root::Context),
                _ => Err(format!("a path on %{name} is not supported; variables hold values, not items")),
            }
        }
        Node::Identifier(name) => {
            steps.push(Step::Name(name));
            Ok(Root::Implicit)
        }
        Node::Member { target, name, arguments } => {
            let root = flatten(target, steps)?;
            match (name.as_str(), arguments.as_deref()) {
                (_, None) => steps.push(Step::Name(name)),
                ("where", Some([predicate])) => steps.push(Step::Where(predicate)),
                (name, Some(_)) => return Err(format!("the function {name}() is not supported inside a path")),
            }
            Ok(root)
        }
        _ => Err("a path must start at %resource, %questionnaire, %context or item".to_owned()),
    }
}

fn children(items: Vec<&Item>) -> Vec<&Item> {
    items.into_iter().flat_map(|item| item.children.iter()).collect()
}

fn one_item<'f>(items: &[&'f Item]) -> Result<&'f Item, String> {
    match items {
        [item] => Ok(item),
        _ => Err("select one item with .where(linkId = '...') before reading its answer".to_owned()),
    }
}

/// Reads the linkId of `where(linkId = 'X')`, in either order.
fn link_id_filter(predicate: &Node) -> Result<&str, String> {
    if let Node::Binary { operator: Operator::Equal, left, right } = predicate {
        match (left.as_ref(), right.as_ref()) {
            (Node::Identifier(name), Node::String(link_id)) | (Node::String(link_id), Node::Identifier(name))
                if name == "linkId" =>
            {
                return Ok(link_id);
            }
            _ => {}
        }
    }
    Err("where() is supported only as where(linkId = '...') with a string literal".to_owned())
}

/// Returns true for `valueCoding.code`, relative to an answerOption.
fn is_option_code(node: &Node) -> bool {
    matches!(node, Node::Member { target, name, arguments: None }
        if name == "code" && matches!(target.as_ref(), Node::Identifier(element) if element == "valueCoding"))
}

fn is_answers_call(node: &Node) -> bool {
    matches!(node, Node::Call { name, arguments } if name == "answers" && arguments.is_empty())
}

/// Returns true for `value.ordinal()`.
fn is_value_ordinal(node: &Node) -> bool {
    matches!(node, Node::Member { target, name, arguments: Some(arguments) }
        if name == "ordinal" && arguments.is_empty()
            && matches!(target.as_ref(), Node::Identifier(value) if value == "value"))
}

/// Checks that the `value[x]` element can hold an answer of the item, so
/// that a path that is always empty is reported instead of evaluated.
fn check_value_element(item: &Item, element: &str) -> Result<(), String> {
    let fits = match element {
        "value" => true,
        "valueBoolean" => item.item_type == ItemType::Boolean,
        "valueDecimal" => item.item_type == ItemType::Decimal,
        "valueInteger" => item.item_type == ItemType::Integer || has_option_kind(item, "integer"),
        "valueString" => {
            matches!(item.item_type, ItemType::String | ItemType::Text | ItemType::OpenChoice)
                || has_option_kind(item, "string")
        }
        "valueDate" => matches!(item.item_type, ItemType::Date | ItemType::DateTime) || has_option_kind(item, "date"),
        "valueDateTime" => item.item_type == ItemType::DateTime,
        "valueTime" => item.item_type == ItemType::Time || has_option_kind(item, "time"),
        "valueCoding" => matches!(item.item_type, ItemType::Choice | ItemType::OpenChoice),
        "valueQuantity" => item.item_type == ItemType::Quantity,
        other => return Err(format!("answer.{other} is not a value element of an answer")),
    };
    if !fits {
        return Err(format!(
            "item \"{}\" is of type {}, so answer.{element} is always empty",
            item.link_id,
            item.item_type.code()
        ));
    }
    Ok(())
}

fn has_option_kind(item: &Item, kind: &str) -> bool {
    use crate::model::OptionValue;
    item.options.iter().any(|option| {
        matches!(
            (&option.value, kind),
            (OptionValue::Integer(_), "integer")
                | (OptionValue::String(_), "string")
                | (OptionValue::Date(_), "date")
                | (OptionValue::Time(_), "time")
        )
    })
}

/// Checks the field read after the value element, such as `.code` of a
/// Coding, and returns it.
fn check_field<'s>(item: &Item, element: &str, field: Option<&'s str>) -> Result<Option<&'s str>, String> {
    let Some(field) = field else {
        return Ok(None);
    };
    let is_choice = matches!(item.item_type, ItemType::Choice | ItemType::OpenChoice);
    let is_coding = element == "valueCoding" || (element == "value" && is_choice);
    let is_quantity = element == "valueQuantity" || (element == "value" && item.item_type == ItemType::Quantity);
    let allowed = (is_coding && matches!(field, "code" | "system" | "display"))
        || (is_quantity && matches!(field, "value" | "unit" | "code" | "system"));
    if !allowed {
        return Err(format!("answer.{element}.{field} is not supported"));
    }
    Ok(Some(field))
}

fn value_kind(item_type: ItemType) -> Kind {
    match item_type {
        ItemType::Boolean => Kind::Boolean,
        ItemType::Integer | ItemType::Decimal => Kind::Number,
        ItemType::String | ItemType::Text => Kind::String,
        ItemType::Date | ItemType::DateTime | ItemType::Time => Kind::Temporal,
        _ => Kind::Other,
    }
}

fn collect_chain<'n>(node: &'n Node, operator: Operator, operands: &mut Vec<&'n Node>) {
    match node {
        Node::Binary { operator: found, left, right } if *found == operator => {
            collect_chain(left, operator, operands);
            collect_chain(right, operator, operands);
        }
        other => operands.push(other),
    }
}

/// Combines operands pairwise into a balanced tree.
fn balance(operator: Operator, mut operands: Vec<Lowered>) -> Lowered {
    if operands.len() == 1 {
        return operands.swap_remove(0);
    }
    let right = operands.split_off(operands.len() / 2);
    combine(operator, balance(operator, operands), balance(operator, right))
}

fn combine(operator: Operator, left: Lowered, right: Lowered) -> Lowered {
    let both_present = !left.nullable && !right.nullable;
    let both = |kind: Kind| left.kind == kind && right.kind == kind;
    let (a, b) = (&left.cel, &right.cel);
    match operator {
        Operator::Add | Operator::Subtract | Operator::Multiply => {
            let (symbol, helper) = match operator {
                Operator::Add => ("+", "fhirpath_add"),
                Operator::Subtract => ("-", "fhirpath_sub"),
                _ => ("*", "fhirpath_mul"),
            };
            let kind = if both(Kind::Number) {
                Kind::Number
            } else if both(Kind::String) && operator == Operator::Add {
                Kind::String
            } else {
                Kind::Other
            };
            if both_present && kind != Kind::Other {
                return Lowered::new(format!("({a} {symbol} {b})"), false, kind);
            }
            Lowered::new(format!("{helper}({a}, {b})"), true, kind)
        }
        Operator::Divide => Lowered::new(format!("fhirpath_div({a}, {b})"), true, Kind::Number),
        Operator::Concatenate => {
            if both_present && both(Kind::String) {
                return Lowered::new(format!("({a} + {b})"), false, Kind::String);
            }
            Lowered::new(format!("fhirpath_concat({a}, {b})"), false, Kind::String)
        }
        Operator::Less | Operator::LessOrEqual | Operator::Greater | Operator::GreaterOrEqual => {
            let (symbol, helper) = match operator {
                Operator::Less => ("<", "fhirpath_lt"),
                Operator::LessOrEqual => ("<=", "fhirpath_le"),
                Operator::Greater => (">", "fhirpath_gt"),
                _ => (">=", "fhirpath_ge"),
            };
            if both_present {
                return Lowered::new(format!("({a} {symbol} {b})"), false, Kind::Boolean);
            }
            Lowered::new(format!("{helper}({a}, {b})"), true, Kind::Boolean)
        }
        Operator::Equal | Operator::NotEqual => {
            let (symbol, helper) =
                if operator == Operator::Equal { ("==", "fhirpath_eq") } else { ("!=", "fhirpath_ne") };
            if both_present {
                return Lowered::new(format!("({a} {symbol} {b})"), false, Kind::Boolean);
            }
            Lowered::new(format!("{helper}({a}, {b})"), true, Kind::Boolean)
        }
        Operator::And | Operator::Or => {
            let (symbol, helper) =
                if operator == Operator::And { ("&&", "fhirpath_and") } else { ("||", "fhirpath_or") };
            if both_present && both(Kind::Boolean) {
                return Lowered::new(format!("({a} {symbol} {b})"), false, Kind::Boolean);
            }
            Lowered::new(format!("{helper}({a}, {b})"), true, Kind::Boolean)
        }
    }
}

/// Writes a CEL string literal.
pub(crate) fn cel_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('\'');
    for character in text.chars() {
        match character {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            '\t' => literal.push_str("\\t"),
            other if other.is_control() => literal.push_str(&format!("\\u{:04x}", u32::from(other))),
            other => literal.push(other),
        }
    }
    literal.push('\'');
    literal
}

/// Writes a FHIRPath number as a CEL double literal.
fn cel_double(text: &str) -> Result<String, String> {
    let finite = text.parse::<f64>().is_ok_and(f64::is_finite);
    if !finite {
        return Err(format!("the number {text} is out of range"));
    }
    if text.contains('.') { Ok(text.to_owned()) } else { Ok(format!("{text}.0")) }
}
