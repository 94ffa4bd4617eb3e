//! The form model that both importers compile into: a tree of items with
//! their types, answer options and constraints.
//!
//! Nothing here knows JSON or TOML. Skip logic (`enableWhen`), expressions
//! and rules are kept as data, and `rules` compiles the expressions when the
//! form loads and keeps the compiled programs in the form.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use regex::Regex;
use rust_decimal::Decimal;

use crate::primitive::{FhirDate, FhirDateTime, FhirTime};
use crate::rules::RuleSet;
use crate::validate::Severity;

/// Media type of FHIRPath expressions, the language of FHIR forms.
pub const FHIRPATH: &str = "text/fhirpath";

/// Media type of CEL expressions, the language of native forms and trial
/// files.
pub const CEL: &str = "text/cel";

/// A compiled form: the items a patient answers and the rules their answers
/// must follow.
#[derive(Debug, Clone)]
pub struct Form {
    /// Canonical URL of the form (`Questionnaire.url`), if the file has one.
    pub url: Option<String>,
    /// Title in the form's default language (English for native forms).
    pub title: Option<String>,
    /// Simplified Chinese title, when the file provides one.
    pub title_zh_cn: Option<String>,
    /// Version string written in the file (`Questionnaire.version`). The
    /// trial file, not this value, decides which version is published.
    pub declared_version: Option<String>,
    /// Top-level items in file order.
    pub items: Vec<Item>,
    /// Form-level expressions, such as `variable` extensions on the root.
    pub expressions: Vec<Expression>,
    /// Cross-item rules: FHIR `targetConstraint`s and native `[[rules]]`.
    pub rules: Vec<RuleDefinition>,
    /// Path of item indexes from `items` down to each linkId.
    index: HashMap<String, Vec<usize>>,
    /// The compiled expressions, rules, scores and alerts. Empty until the
    /// loader compiles the form, and replaced when a trial attaches its
    /// scores and alerts.
    pub(crate) rule_set: Arc<RuleSet>,
    /// Skip-logic plan, built from `items` on the first validation and not rebuilt if they change.
    pub(crate) enable_plan: std::sync::OnceLock<crate::enable::Plan>,
}

/// One question, display text or group of a form.
#[derive(Debug, Clone)]
pub struct Item {
    /// The item's linkId, unique within the form.
    pub link_id: String,
    /// Text in the form's default language (English for native forms when
    /// given, otherwise the only text the file has).
    pub text: Option<String>,
    /// Simplified Chinese text, when the file provides one.
    pub text_zh_cn: Option<String>,
    pub item_type: ItemType,
    pub required: bool,
    pub repeats: bool,
    /// Minimum number of answers (question) or occurrences (group).
    pub min_occurs: Option<u32>,
    /// Maximum number of answers or occurrences. Only meaningful when
    /// `repeats` is true, because a non-repeating item allows one.
    pub max_occurs: Option<u32>,
    pub read_only: bool,
    /// Set by the `questionnaire-hidden` extension. The item is not shown to
    /// the patient, so it is not checked for `required`.
    pub hidden: bool,
    /// Allowed answers. Empty for items that accept any value of their type.
    pub options: Vec<AnswerOption>,
    /// External value set of a choice item whose codes are not checked.
    /// Such an item accepts any Coding.
    pub answer_value_set: Option<String>,
    pub constraints: Constraints,
    /// Allowed units of a quantity item (`questionnaire-unit` or
    /// `questionnaire-unitOption`). On integer and decimal items the unit is
    /// display information only.
    pub units: Vec<Unit>,
    pub children: Vec<Item>,
    /// Skip-logic conditions, evaluated on each submission by `validate`.
    pub enable_when: Vec<EnableWhen>,
    pub enable_behavior: Option<EnableBehavior>,
    /// FHIRPath, CEL and other expressions attached to the item. The
    /// loader compiles the kinds that `rules` evaluates and reports the
    /// others as not evaluated.
    pub expressions: Vec<Expression>,
    /// Location of the item in its source file, such as
    /// `$.item[0].item[3]` or `items[2]`.
    pub source_path: String,
}

/// Type of an item, named as in FHIR R4 `Questionnaire.item.type`.
///
/// The FHIR types `url`, `attachment` and `reference` are not supported and
/// make a form fail to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemType {
    Boolean,
    Integer,
    Decimal,
    String,
    Text,
    Date,
    DateTime,
    Time,
    Choice,
    OpenChoice,
    Quantity,
    Display,
    Group,
}

/// One allowed answer of an item.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerOption {
    pub value: OptionValue,
    /// Label in the form's default language. For a Coding this is its
    /// display. For other values it is set only when the file gives one.
    pub display: Option<String>,
    /// Score weight from the `ordinalValue` or `itemWeight` extension, kept
    /// for scoring.
    pub ordinal: Option<Decimal>,
    pub initial_selected: bool,
    /// Simplified Chinese label of the option, when the file provides one.
    pub display_zh_cn: Option<String>,
}

/// Value of an answer option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Coding {
        system: Option<String>,
        code: String,
        display: Option<String>,
    },
    Integer(i64),
    String(String),
    /// A FHIR date as written, such as `2022-09`.
    Date(String),
    /// A FHIR time as written, such as `13:30:00`.
    Time(String),
}

/// Value constraints of an item. Each applies only to the item types listed
/// on the field, and the importers report a constraint placed on another
/// type.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// Lowest allowed value (integer, decimal, quantity, date, dateTime, time).
    pub min: Option<Bound>,
    /// Highest allowed value (integer, decimal, quantity, date, dateTime, time).
    pub max: Option<Bound>,
    /// Maximum length in Unicode scalar values (string, text, open-choice).
    pub max_length: Option<usize>,
    /// Pattern that the whole answer must match (string, text, open-choice).
    pub regex: Option<Pattern>,
    /// Maximum digits after the decimal point (decimal, quantity).
    pub max_decimal_places: Option<u32>,
}

/// A range bound, typed by the item it belongs to. Quantity items use
/// `Decimal` for the quantity's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Integer(i64),
    Decimal(Decimal),
    Date(FhirDate),
    DateTime(FhirDateTime),
    Time(FhirTime),
}

/// A regular expression from a form, with the source text kept for
/// messages.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The expression as written in the form.
    pub source: String,
    /// The expression anchored at both ends, because FHIR's `regex`
    /// extension requires the whole value to match.
    pub anchored: Regex,
}

/// An allowed unit, as a FHIR Coding (usually UCUM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

/// One skip-logic condition (`Questionnaire.item.enableWhen`).
#[derive(Debug, Clone, PartialEq)]
pub struct EnableWhen {
    /// linkId of the item whose answer is tested.
    pub question: String,
    pub operator: EnableWhenOperator,
    /// The `answer[x]` element name, such as `answerBoolean`.
    pub answer_kind: String,
    /// The `answer[x]` value exactly as written in the file.
    pub answer: serde_json::Value,
    /// Location of the condition in its source file.
    pub json_path: String,
}

/// Comparison operator of an `enableWhen` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableWhenOperator {
    Exists,
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterOrEqual,
    LessOrEqual,
}

/// Rule that combines several `enableWhen` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableBehavior {
    All,
    Any,
}

/// An expression attached to a form or item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    pub kind: ExpressionKind,
    /// Media type of the expression language: [`FHIRPATH`] in FHIR forms,
    /// [`CEL`] for the native `calculated` and `enable_when_expression`
    /// keys.
    pub language: Option<String>,
    pub expression: String,
    /// Variable name, or the key of a target constraint.
    pub name: Option<String>,
    /// Description, or the human message of a target constraint.
    pub description: Option<String>,
    /// Location of the expression in its source file.
    pub json_path: String,
}

/// A cross-item rule: a FHIR `targetConstraint` or a native `[[rules]]`
/// entry. Its expression is true when the answers are consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefinition {
    /// Identifier of the rule, such as `min-max-check`, unique in the form.
    pub key: String,
    pub expression: String,
    /// Media type of the expression language: [`FHIRPATH`] or [`CEL`].
    pub language: String,
    /// `Reject` (FHIR `error`) or `Query` (FHIR `warning`).
    pub severity: Severity,
    /// English text for site staff (FHIR `human`).
    pub message_en: String,
    /// Simplified Chinese text. FHIR has none, so a trial file may add one.
    pub message_zh_cn: Option<String>,
    /// linkIds the rule is about. A violation is reported on the first.
    pub items: Vec<String>,
    /// linkId of the item a FHIR `targetConstraint` is attached to, which
    /// is the context of its FHIRPath. `None` for form-level rules.
    pub context: Option<String>,
    /// Location of the rule in its source file.
    pub json_path: String,
}

/// Purpose of an expression, named after the SDC extension that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpressionKind {
    CalculatedExpression,
    Variable,
    EnableWhenExpression,
    InitialExpression,
    AnswerExpression,
    TargetConstraint,
    CandidateExpression,
    ContextExpression,
    /// Any other extension whose value is an Expression, by its URL.
    Other(String),
}

/// Language of text shown to patients and site staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    ZhCn,
}

impl Form {
    /// Builds a form and its linkId index.
    ///
    /// When a linkId occurs more than once, the index keeps the first
    /// occurrence. The importers reject such forms before calling this.
    pub fn new(
        url: Option<String>,
        title: Option<String>,
        title_zh_cn: Option<String>,
        declared_version: Option<String>,
        items: Vec<Item>,
        expressions: Vec<Expression>,
    ) -> Form {
        let mut index = HashMap::new();
        build_index(&items, &mut Vec::new(), &mut index);
        Form {
            url,
            title,
            title_zh_cn,
            declared_version,
            items,
            expressions,
            rules: Vec::new(),
            index,
            rule_set: Arc::default(),
            enable_plan: Default::default(),
        }
    }

    /// Returns the text for site staff of the alert rule `rule` that a
    /// trial file attached to this form, or `None` when it has no such rule.
    pub fn alert_message(&self, rule: &str) -> Option<&crate::trial::Localized> {
        self.rule_set.alert_message(rule)
    }

    /// Finds an item anywhere in the form by its linkId.
    pub fn item(&self, link_id: &str) -> Option<&Item> {
        let path = self.index.get(link_id)?;
        let (first, rest) = path.split_first()?;
        let mut item = self.items.get(*first)?;
        for position in rest {
            item = item.children.get(*position)?;
        }
        Some(item)
    }

    /// Returns the item indexes from `items` down to the item with
    /// `link_id`: its position in each enclosing group, then its own.
    pub(crate) fn item_positions(&self, link_id: &str) -> Option<&[usize]> {
        self.index.get(link_id).map(Vec::as_slice)
    }

    /// Returns the items from a top-level item down to the item with
    /// `link_id`, which comes last.
    pub fn item_path(&self, link_id: &str) -> Option<Vec<&Item>> {
        let positions = self.index.get(link_id)?;
        let (first, rest) = positions.split_first()?;
        let mut item = self.items.get(*first)?;
        let mut path = vec![item];
        for position in rest {
            item = item.children.get(*position)?;
            path.push(item);
        }
        Some(path)
    }

    /// Returns the title in `language`, falling back to the default title.
    pub fn title_in(&self, language: Language) -> Option<&str> {
        localized(self.title.as_deref(), self.title_zh_cn.as_deref(), language)
    }

    /// Returns the names of the scores computed for each submission, in the order
    /// they are reported: computed items by linkId, then the trial's scores by id.
    /// Empty until the loader compiles the form.
    pub fn score_names(&self) -> Vec<&str> {
        self.rule_set.score_names()
    }

    /// Iterates over every item of the form, parents before their children.
    pub fn all_items(&self) -> impl Iterator<Item = &Item> {
        let mut stack: Vec<&Item> = self.items.iter().rev().collect();
        std::iter::from_fn(move || {
            let item = stack.pop()?;
            stack.extend(item.children.iter().rev());
            Some(item)
        })
    }
}

fn build_index(items: &[Item], prefix: &mut Vec<usize>, index: &mut HashMap<String, Vec<usize>>) {
    for (position, item) in items.iter().enumerate() {
        prefix.push(position);
        index.entry(item.link_id.clone()).or_insert_with(|| prefix.clone());
        build_index(&item.children, prefix, index);
        prefix.pop();
    }
}

impl Item {
    /// Creates an item with no text, flags, options or constraints.
    pub fn new(link_id: impl Into<String>, item_type: ItemType) -> Item {
        Item {
            link_id: link_id.into(),
            text: None,
            text_zh_cn: None,
            item_type,
            required: false,
            repeats: false,
            min_occurs: None,
            max_occurs: None,
            read_only: false,
            hidden: false,
            options: Vec::new(),
            answer_value_set: None,
            constraints: Constraints::default(),
            units: Vec::new(),
            children: Vec::new(),
            enable_when: Vec::new(),
            enable_behavior: None,
            expressions: Vec::new(),
            source_path: String::new(),
        }
    }

    /// Returns the text in `language`, falling back to the default text.
    pub fn text_in(&self, language: Language) -> Option<&str> {
        localized(self.text.as_deref(), self.text_zh_cn.as_deref(), language)
    }

    /// Returns true when a rule decides at answer time whether the item is
    /// shown (`enableWhen` or `enableWhenExpression`).
    pub fn has_skip_logic(&self) -> bool {
        let has_expression =
            self.expressions.iter().any(|expression| expression.kind == ExpressionKind::EnableWhenExpression);
        !self.enable_when.is_empty() || has_expression
    }

    /// Returns true when the item's value comes from a `calculatedExpression`.
    pub fn is_calculated(&self) -> bool {
        self.expressions.iter().any(|expression| expression.kind == ExpressionKind::CalculatedExpression)
    }

    /// Returns the maximum number of answers or occurrences, or `None` when
    /// unbounded.
    pub fn effective_max_occurs(&self) -> Option<u32> {
        if self.repeats { self.max_occurs } else { Some(1) }
    }
}

fn localized<'a>(default: Option<&'a str>, zh_cn: Option<&'a str>, language: Language) -> Option<&'a str> {
    match language {
        Language::ZhCn => zh_cn.or(default),
        Language::En => default.or(zh_cn),
    }
}

impl ItemType {
    /// Parses a FHIR R4 item type code such as `open-choice`.
    ///
    /// # Errors
    ///
    /// Returns [`ItemTypeError::Unsupported`] for `url`, `attachment`,
    /// `reference` and `question`, and [`ItemTypeError::Unknown`] for any
    /// other code that is not an R4 item type.
    pub fn from_code(code: &str) -> Result<ItemType, ItemTypeError> {
        let item_type = match code {
            "boolean" => ItemType::Boolean,
            "integer" => ItemType::Integer,
            "decimal" => ItemType::Decimal,
            "string" => ItemType::String,
            "text" => ItemType::Text,
            "date" => ItemType::Date,
            "dateTime" => ItemType::DateTime,
            "time" => ItemType::Time,
            "choice" => ItemType::Choice,
            "open-choice" => ItemType::OpenChoice,
            "quantity" => ItemType::Quantity,
            "display" => ItemType::Display,
            "group" => ItemType::Group,
            "url" | "attachment" | "reference" | "question" => return Err(ItemTypeError::Unsupported),
            _ => return Err(ItemTypeError::Unknown),
        };
        Ok(item_type)
    }

    /// Returns the FHIR R4 code of the type.
    pub fn code(self) -> &'static str {
        match self {
            ItemType::Boolean => "boolean",
            ItemType::Integer => "integer",
            ItemType::Decimal => "decimal",
            ItemType::String => "string",
            ItemType::Text => "text",
            ItemType::Date => "date",
            ItemType::DateTime => "dateTime",
            ItemType::Time => "time",
            ItemType::Choice => "choice",
            ItemType::OpenChoice => "open-choice",
            ItemType::Quantity => "quantity",
            ItemType::Display => "display",
            ItemType::Group => "group",
        }
    }

    /// Returns true for types that take answers: everything but display and
    /// group.
    pub fn is_question(self) -> bool {
        !matches!(self, ItemType::Display | ItemType::Group)
    }
}

/// Reason an item type code was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItemTypeError {
    #[error("unsupported item type")]
    Unsupported,
    #[error("unknown item type")]
    Unknown,
}

impl OptionValue {
    /// Returns the option as the text shown in `not_an_option` findings:
    /// the code of a Coding, otherwise the value.
    pub fn as_text(&self) -> String {
        match self {
            OptionValue::Coding { code, .. } => code.clone(),
            OptionValue::Integer(value) => value.to_string(),
            OptionValue::String(value) | OptionValue::Date(value) | OptionValue::Time(value) => value.clone(),
        }
    }

    /// Returns true when this kind of option may appear on an item of
    /// `item_type`. Choice items take any kind. String, text, integer, date
    /// and time items take options of their own type.
    pub fn fits(&self, item_type: ItemType) -> bool {
        match item_type {
            ItemType::Choice | ItemType::OpenChoice => true,
            ItemType::String | ItemType::Text => matches!(self, OptionValue::String(_)),
            ItemType::Integer => matches!(self, OptionValue::Integer(_)),
            ItemType::Date => matches!(self, OptionValue::Date(_)),
            ItemType::Time => matches!(self, OptionValue::Time(_)),
            _ => false,
        }
    }
}

impl Bound {
    /// Returns true when this kind of bound may limit an item of `item_type`.
    /// Importers turn integer bounds of decimal and quantity items into
    /// `Decimal` before asking.
    pub fn fits(&self, item_type: ItemType) -> bool {
        match self {
            Bound::Integer(_) => item_type == ItemType::Integer,
            Bound::Decimal(_) => matches!(item_type, ItemType::Decimal | ItemType::Quantity),
            Bound::Date(_) => matches!(item_type, ItemType::Date | ItemType::DateTime),
            Bound::DateTime(_) => item_type == ItemType::DateTime,
            Bound::Time(_) => item_type == ItemType::Time,
        }
    }

    /// Returns true when `self` is greater than `other`, for bounds of the
    /// same kind. Bounds of different kinds never compare as greater.
    pub fn exceeds(&self, other: &Bound) -> bool {
        match (self, other) {
            (Bound::Integer(a), Bound::Integer(b)) => a > b,
            (Bound::Decimal(a), Bound::Decimal(b)) => a > b,
            (Bound::Date(a), Bound::Date(b)) => a.first_day() > b.last_day(),
            (Bound::DateTime(a), Bound::DateTime(b)) => a.earliest() > b.latest(),
            (Bound::Date(a), Bound::DateTime(b)) => FhirDateTime::from_date(a).earliest() > b.latest(),
            (Bound::DateTime(a), Bound::Date(b)) => a.earliest() > FhirDateTime::from_date(b).latest(),
            (Bound::Time(a), Bound::Time(b)) => a.value() > b.value(),
            _ => false,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Integer(value) => write!(formatter, "{value}"),
            Bound::Decimal(value) => write!(formatter, "{value}"),
            Bound::Date(value) => write!(formatter, "{value}"),
            Bound::DateTime(value) => write!(formatter, "{value}"),
            Bound::Time(value) => write!(formatter, "{value}"),
        }
    }
}

impl Pattern {
    /// Compiles a FHIR `regex` value so that it must match the whole answer.
    ///
    /// # Errors
    ///
    /// Returns the regex crate's error when the expression is invalid or
    /// too large to compile.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let anchored = Regex::new(&format!("^(?:{source})$"))?;
        Ok(Pattern { source: source.to_owned(), anchored })
    }

    /// Returns true when the whole of `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }
}

impl Unit {
    /// Returns the text used in `unit_not_allowed` findings: the code,
    /// otherwise the display.
    pub fn label(&self) -> String {
        self.code.clone().or_else(|| self.display.clone()).unwrap_or_default()
    }
}

impl EnableWhenOperator {
    /// Parses a FHIR `enableWhen.operator` code.
    pub fn from_code(code: &str) -> Option<EnableWhenOperator> {
        let operator = match code {
            "exists" => EnableWhenOperator::Exists,
            "=" => EnableWhenOperator::Equal,
            "!=" => EnableWhenOperator::NotEqual,
            ">" => EnableWhenOperator::Greater,
            "<" => EnableWhenOperator::Less,
            ">=" => EnableWhenOperator::GreaterOrEqual,
            "<=" => EnableWhenOperator::LessOrEqual,
            _ => return None,
        };
        Some(operator)
    }
}

impl EnableBehavior {
    /// Parses a FHIR `enableBehavior` code (`all` or `any`).
    pub fn from_code(code: &str) -> Option<EnableBehavior> {
        match code {
            "all" => Some(EnableBehavior::All),
            "any" => Some(EnableBehavior::Any),
            _ => None,
        }
    }
}

impl ExpressionKind {
    /// Returns the name used in load reports, such as `calculatedExpression`.
    pub fn name(&self) -> &str {
        match self {
            ExpressionKind::CalculatedExpression => "calculatedExpression",
            ExpressionKind::Variable => "variable",
            ExpressionKind::EnableWhenExpression => "enableWhenExpression",
            ExpressionKind::InitialExpression => "initialExpression",
            ExpressionKind::AnswerExpression => "answerExpression",
            ExpressionKind::TargetConstraint => "targetConstraint",
            ExpressionKind::CandidateExpression => "candidateExpression",
            ExpressionKind::ContextExpression => "contextExpression",
            ExpressionKind::Other(url) => url,
        }
    }
}
