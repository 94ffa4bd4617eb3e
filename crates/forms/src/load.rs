//! Loading a form file into the model, with a report of what the file uses
//! and how each part is treated: evaluated, kept but not evaluated,
//! ignored, or an error.
//!
//! Both importers (`fhir` and `native`) share the checks here that work on
//! the model: group structure, option and bound types, occurrence limits,
//! linkId uniqueness and `enableWhen` references. An importer collects
//! every error instead of stopping at the first, so one run shows an author
//! everything to fix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::model::{Form, Item, ItemType};
use crate::{fhir, native, rules};

/// Format of a form file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormFormat {
    /// A FHIR R4 Questionnaire resource in JSON.
    FhirJson,
    /// The native TOML format described in `NATIVE_FORMAT.md`.
    NativeToml,
}

/// The result of loading a form file.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// The compiled form. `None` exactly when `report.errors` is not empty.
    pub form: Option<Form>,
    pub report: LoadReport,
}

/// Report of what a form file uses and how each part is treated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Short lines naming the features that the validator evaluates, such
    /// as "8 required items".
    pub supported: Vec<String>,
    /// Parts kept in the model that nothing evaluates: expression kinds
    /// outside the rule engine (such as `initialExpression`) and unknown
    /// extensions.
    pub not_evaluated: Vec<Notice>,
    /// Presentation-only parts that do not change validation.
    pub ignored: Vec<Notice>,
    /// Deviations from the format that were read leniently, such as a
    /// boolean written as the string "true".
    pub warnings: Vec<Notice>,
    /// Problems that stop the form from loading.
    pub errors: Vec<Notice>,
}

/// One entry of a load report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// JSONPath into a FHIR file (`$.item[9].extension[3]`) or key path into
    /// a TOML file (`items[2].max`).
    pub path: String,
    /// 1-based line, for syntax errors.
    pub line: Option<usize>,
    /// 1-based column, for syntax errors.
    pub column: Option<usize>,
    pub message: String,
}

/// Loads a form from the text of a file.
///
/// Does not panic on any input, and does not stop at the first error: the
/// report lists every problem found, and `form` is `None` when there is at
/// least one. Two cases end early. A syntax error is the only error
/// reported, because nothing after it can be read, and an item without a
/// valid linkId or type gets no further checks, though its children do.
pub fn load_form(text: &str, format: FormFormat) -> LoadOutcome {
    let (form, report) = match format {
        FormFormat::FhirJson => fhir::import_questionnaire_text(text),
        FormFormat::NativeToml => native::import(text),
    };
    finish(form, report)
}

/// Loads a FHIR Questionnaire that has already been parsed as JSON.
pub fn load_fhir_value(questionnaire: &serde_json::Value) -> LoadOutcome {
    let (form, report) = fhir::import_questionnaire(questionnaire);
    finish(form, report)
}

fn finish(mut form: Option<Form>, mut report: LoadReport) -> LoadOutcome {
    if form.is_none() && report.errors.is_empty() {
        report.error("$", "the form could not be built");
    }
    if let Some(form) = &mut form {
        rules::compile_form(form, &mut report);
    }
    crate::enable_check::check_form(form.as_ref(), &mut report);
    let form = if report.errors.is_empty() { form } else { None };
    if let Some(form) = &form {
        let mut lines = summarize(form);
        lines.append(&mut report.supported);
        report.supported = lines;
    }
    LoadOutcome { form, report }
}

impl LoadReport {
    /// Returns true when the file loaded without errors.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Notice::new(path, message));
    }

    pub(crate) fn not_evaluated(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.not_evaluated.push(Notice::new(path, message));
    }

    pub(crate) fn ignored(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.ignored.push(Notice::new(path, message));
    }

    pub(crate) fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Notice::new(path, message));
    }
}

impl Notice {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Notice {
        Notice { path: path.into(), line: None, column: None, message: message.into() }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(formatter, "line {line} column {column}: {}", self.message),
            _ => write!(formatter, "{}: {}", self.path, self.message),
        }
    }
}

/// Names of the source keys that item checks mention in their paths.
pub(crate) struct SourceKeys {
    pub options: &'static str,
    pub enable_when: &'static str,
    pub enable_behavior: &'static str,
    pub min: &'static str,
    pub max: &'static str,
}

/// Keys of a FHIR Questionnaire item. Range bounds live in extensions, so
/// their findings point at the item.
pub(crate) const FHIR_KEYS: SourceKeys = SourceKeys {
    options: "answerOption",
    enable_when: "enableWhen",
    enable_behavior: "enableBehavior",
    min: "",
    max: "",
};

/// Keys of a native TOML item.
pub(crate) const NATIVE_KEYS: SourceKeys = SourceKeys {
    options: "options",
    enable_when: "enable_when",
    enable_behavior: "enable_behavior",
    min: "min",
    max: "max",
};

/// Form-wide checks that need every item: unique linkIds and `enableWhen`
/// questions that exist.
#[derive(Default)]
pub(crate) struct LinkIds {
    first_path: HashMap<String, String>,
    references: Vec<(String, String)>,
}

impl LinkIds {
    /// Records a linkId and reports it when another item already uses it.
    pub(crate) fn register(&mut self, link_id: &str, path: &str, report: &mut LoadReport) {
        match self.first_path.get(link_id) {
            Some(first) => report.error(path, format!("duplicate linkId \"{link_id}\", first used at {first}")),
            None => {
                self.first_path.insert(link_id.to_owned(), path.to_owned());
            }
        }
    }

    /// Records an `enableWhen` condition whose question must exist.
    pub(crate) fn reference(&mut self, question: &str, path: &str) {
        self.references.push((question.to_owned(), path.to_owned()));
    }

    /// Reports every `enableWhen` question that names no item.
    pub(crate) fn check_references(&self, report: &mut LoadReport) {
        for (question, path) in &self.references {
            if !self.first_path.contains_key(question) {
                report.error(path, format!("enableWhen refers to unknown linkId \"{question}\""));
            }
        }
    }
}

/// Checks the rules every item must follow whatever its source, and reports
/// the parts that are kept but not evaluated.
pub(crate) fn check_item(item: &Item, keys: &SourceKeys, report: &mut LoadReport) {
    let path = item.source_path.as_str();
    let type_code = item.item_type.code();
    check_structure(item, report);

    for (position, option) in item.options.iter().enumerate() {
        if !option.value.fits(item.item_type) {
            let option_path = format!("{path}.{}[{position}]", keys.options);
            report.error(option_path, format!("an option of this kind does not fit an item of type {type_code}"));
        }
    }

    check_bounds(item, keys, report);
    check_occurrences(item, report);
    check_constraint_types(item, report);
    report_kept_rules(item, report);
}

fn check_structure(item: &Item, report: &mut LoadReport) {
    let path = item.source_path.as_str();
    let type_code = item.item_type.code();
    if item.item_type == ItemType::Group && item.children.is_empty() {
        report.error(path, "group has no child items");
    }
    if item.item_type != ItemType::Group && !item.children.is_empty() {
        report.error(path, format!("an item of type {type_code} has child items; only groups may have them"));
    }
    if item.item_type == ItemType::Display && item.required {
        report.error(path, "a display item cannot be required");
    }
}

fn check_bounds(item: &Item, keys: &SourceKeys, report: &mut LoadReport) {
    let path = item.source_path.as_str();
    let type_code = item.item_type.code();
    let bound_path = |key: &str| if key.is_empty() { path.to_owned() } else { format!("{path}.{key}") };

    let bounds = [(keys.min, "minimum", &item.constraints.min), (keys.max, "maximum", &item.constraints.max)];
    for (key, name, bound) in bounds {
        let misfit = bound.as_ref().is_some_and(|bound| !bound.fits(item.item_type));
        if misfit {
            report.error(bound_path(key), format!("a {name} of this kind does not fit an item of type {type_code}"));
        }
    }

    if let (Some(min), Some(max)) = (&item.constraints.min, &item.constraints.max)
        && min.exceeds(max)
    {
        report.error(bound_path(keys.min), format!("minimum {min} is greater than maximum {max}"));
    }
}

fn check_occurrences(item: &Item, report: &mut LoadReport) {
    let path = item.source_path.as_str();
    if let (Some(min), Some(max)) = (item.min_occurs, item.max_occurs)
        && min > max
    {
        report.error(path, format!("minOccurs {min} is greater than maxOccurs {max}"));
    }
    if !item.repeats && item.min_occurs.is_some_and(|min| min > 1) {
        report.error(path, "minOccurs is above 1 but the item does not repeat");
    }
    if !item.repeats && item.max_occurs.is_some() {
        report.ignored(path, "maxOccurs has no effect because the item does not repeat");
    }
}

fn check_constraint_types(item: &Item, report: &mut LoadReport) {
    let path = item.source_path.as_str();
    let type_code = item.item_type.code();
    let is_text = matches!(item.item_type, ItemType::String | ItemType::Text | ItemType::OpenChoice);
    let is_decimal = matches!(item.item_type, ItemType::Decimal | ItemType::Quantity);

    if item.constraints.max_length.is_some() && !is_text {
        report.not_evaluated(
            path,
            format!("maxLength is checked only on string, text and open-choice items, not on {type_code}"),
        );
    }
    if item.constraints.regex.is_some() && !is_text {
        report.not_evaluated(
            path,
            format!("regex is checked only on string, text and open-choice items, not on {type_code}"),
        );
    }
    if item.constraints.max_decimal_places.is_some() && !is_decimal {
        report.ignored(path, format!("maxDecimalPlaces has no effect on an item of type {type_code}"));
    }
    let units_shown_only = matches!(item.item_type, ItemType::Integer | ItemType::Decimal);
    if !item.units.is_empty() && units_shown_only {
        report.ignored(
            path,
            format!("the unit of an item of type {type_code} is display information; answers are plain numbers"),
        );
    }
    let units_meaningless = !units_shown_only && item.item_type != ItemType::Quantity;
    if !item.units.is_empty() && units_meaningless {
        report.ignored(path, format!("units have no effect on an item of type {type_code}"));
    }
}

/// Reports the expressions of an item that the rule engine does not
/// evaluate. `rules` reports on the others when it compiles them.
fn report_kept_rules(item: &Item, report: &mut LoadReport) {
    for expression in item.expressions.iter().filter(|expression| !rules::is_evaluated_kind(&expression.kind)) {
        report.not_evaluated(&expression.json_path, expression_message(expression.kind.name(), item));
    }
}

/// Reports the form-level expressions that the rule engine does not
/// evaluate.
pub(crate) fn check_form_expressions(form: &Form, report: &mut LoadReport) {
    for expression in form.expressions.iter().filter(|expression| !rules::is_evaluated_kind(&expression.kind)) {
        let kind = expression.kind.name();
        let unknown = if kind.contains('/') { "unknown expression extension " } else { "" };
        report.not_evaluated(
            &expression.json_path,
            format!("{unknown}{kind} is kept in the model but not evaluated yet"),
        );
    }
}

fn expression_message(kind: &str, item: &Item) -> String {
    let consequence = match kind {
        "initialExpression" => "; initial values are not filled in by the server".to_owned(),
        "answerExpression" => {
            if item.options.is_empty() {
                "; answers are not checked against the computed options".to_owned()
            } else {
                "; answers are checked only against the listed options".to_owned()
            }
        }
        _ => String::new(),
    };
    let unknown = if kind.contains('/') { "unknown expression extension " } else { "" };
    format!("{unknown}{kind} is kept in the model but not evaluated yet{consequence}")
}

/// Builds the `supported` lines from the compiled form.
fn summarize(form: &Form) -> Vec<String> {
    let mut types: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut option_count = 0;
    let mut ordinal_count = 0;
    let mut count = |name: &'static str, present: bool| {
        if present {
            *counts.entry(name).or_default() += 1;
        }
    };

    for item in form.all_items() {
        *types.entry(item.item_type.code()).or_default() += 1;
        count("required", item.required);
        count("repeats", item.repeats);
        count("minOccurs/maxOccurs", item.min_occurs.is_some() || item.max_occurs.is_some());
        count("readOnly", item.read_only);
        count("hidden (answers accepted, not checked for required)", item.hidden);
        count("minValue/maxValue", item.constraints.min.is_some() || item.constraints.max.is_some());
        count("maxLength", item.constraints.max_length.is_some());
        count("regex", item.constraints.regex.is_some());
        count("maxDecimalPlaces", item.constraints.max_decimal_places.is_some());
        count("units", !item.units.is_empty());
        count("answer options", !item.options.is_empty());
        count("external answer value set (any Coding accepted)", item.answer_value_set.is_some());
        option_count += item.options.len();
        ordinal_count += item.options.iter().filter(|option| option.ordinal.is_some()).count();
    }

    let total: usize = types.values().sum();
    let type_list: Vec<String> = types.iter().map(|(code, count)| format!("{count} {code}")).collect();
    let mut lines = vec![format!("{total} items: {}", type_list.join(", "))];
    for (name, count) in counts {
        let noun = if count == 1 { "item" } else { "items" };
        lines.push(format!("{name}: {count} {noun}"));
    }
    if option_count > 0 {
        lines.push(format!("{option_count} answer options, {ordinal_count} with ordinalValue kept for scoring"));
    }
    lines
}
