//! Import of a FHIR R4 Questionnaire (JSON) into the form model.
//!
//! Every element and extension of an item ends up in one place: the model,
//! the report's `ignored` or `not_evaluated` lists, or an error. Answer
//! lists given as `answerValueSet` are resolved from ValueSets in
//! `contained`. An external value set is kept by URL and its codes are not
//! checked.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::extensions::{self, Role};
use crate::load::{self, FHIR_KEYS, LinkIds, LoadReport, Notice};
use crate::model::{
    AnswerOption, Bound, EnableBehavior, EnableWhen, EnableWhenOperator, Expression, ExpressionKind, FHIRPATH, Form,
    Item, ItemType, ItemTypeError, OptionValue, Pattern, RuleDefinition, Unit,
};
use crate::primitive::{self, FhirDate, FhirDateTime, FhirTime};
use crate::rules;
use crate::validate::Severity;

/// Parses and imports Questionnaire JSON text.
pub(crate) fn import_questionnaire_text(text: &str) -> (Option<Form>, LoadReport) {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => import_questionnaire(&value),
        Err(error) => {
            let mut report = LoadReport::default();
            report.errors.push(Notice {
                path: "$".to_owned(),
                line: Some(error.line()),
                column: Some(error.column()),
                message: format!("invalid JSON: {}", without_position(&error)),
            });
            (None, report)
        }
    }
}

/// Imports a parsed Questionnaire.
pub(crate) fn import_questionnaire(value: &Value) -> (Option<Form>, LoadReport) {
    let mut importer = Importer::default();
    let form = importer.questionnaire(value);
    (form, importer.report)
}

/// Returns serde_json's message without its " at line L column C" suffix,
/// because the notice carries line and column separately.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(position) => message[..position].to_owned(),
        None => message,
    }
}

#[derive(Default)]
struct Importer {
    report: LoadReport,
    link_ids: LinkIds,
    /// Answer lists of contained ValueSets by id, or why one cannot be used.
    value_sets: HashMap<String, Result<Vec<AnswerOption>, String>>,
    /// Number of items that use each contained ValueSet.
    value_set_use: BTreeMap<String, usize>,
    /// `targetConstraint`s of the root and of every item, in file order.
    rules: Vec<RuleDefinition>,
}

impl Importer {
    fn questionnaire(&mut self, value: &Value) -> Option<Form> {
        let Some(root) = value.as_object() else {
            self.report.error("$", "a Questionnaire must be a JSON object");
            return None;
        };
        self.check_resource_type(root);
        if let Some(contained) = root.get("contained") {
            self.contained(contained);
        }

        let url = self.optional_string(root, "url", "$.url");
        let title = self.optional_string(root, "title", "$.title");
        let title_zh_cn = root.get("_title").and_then(|element| self.primitive_element(element, "$._title"));
        let declared_version = self.optional_string(root, "version", "$.version");
        let expressions = match root.get("extension") {
            Some(list) => self.root_extensions(list),
            None => Vec::new(),
        };
        if let Some(list) = root.get("modifierExtension") {
            self.modifier_extensions(list, "$.modifierExtension");
        }

        let items = match root.get("item") {
            Some(Value::Array(list)) if !list.is_empty() => self.items(list, "$.item"),
            Some(Value::Array(_)) | None => {
                self.report.error("$.item", "the Questionnaire has no items");
                Vec::new()
            }
            Some(_) => {
                self.report.error("$.item", "item must be an array");
                Vec::new()
            }
        };
        self.link_ids.check_references(&mut self.report);
        for (id, count) in &self.value_set_use {
            let noun = if *count == 1 { "item" } else { "items" };
            self.report
                .supported
                .push(format!("answerValueSet #{id} resolved from contained ValueSet for {count} {noun}"));
        }

        let mut form = Form::new(url, title, title_zh_cn, declared_version, items, expressions);
        form.rules = std::mem::take(&mut self.rules);
        load::check_form_expressions(&form, &mut self.report);
        Some(form)
    }

    fn check_resource_type(&mut self, root: &Map<String, Value>) {
        match root.get("resourceType") {
            Some(Value::String(kind)) if kind == "Questionnaire" => {}
            Some(Value::String(kind)) => {
                self.report.error("$.resourceType", format!("resourceType is \"{kind}\", expected \"Questionnaire\""))
            }
            Some(_) => self.report.error("$.resourceType", "resourceType must be a string"),
            None => self.report.error("$", "resourceType is missing, expected \"Questionnaire\""),
        }
    }

    fn items(&mut self, list: &[Value], path: &str) -> Vec<Item> {
        list.iter()
            .enumerate()
            .filter_map(|(position, value)| self.item(value, &format!("{path}[{position}]")))
            .collect()
    }

    fn item(&mut self, value: &Value, path: &str) -> Option<Item> {
        let Some(object) = value.as_object() else {
            self.report.error(path, "item must be a JSON object");
            return None;
        };

        let link_id = self.link_id(object, path);
        let item_type = self.item_type(object, path);
        let children = match object.get("item") {
            Some(Value::Array(list)) => self.items(list, &format!("{path}.item")),
            Some(_) => {
                self.report.error(format!("{path}.item"), "item must be an array");
                Vec::new()
            }
            None => Vec::new(),
        };
        let (link_id, item_type) = (link_id?, item_type?);

        let mut item = Item::new(link_id, item_type);
        item.source_path = path.to_owned();
        item.children = children;
        for (key, field) in object {
            self.item_field(&mut item, key, field, &format!("{path}.{key}"));
        }
        let has_value_set = object.contains_key("answerValueSet");
        let has_options = object.get("answerOption").is_some_and(|options| options != &Value::Array(Vec::new()));
        if has_value_set && has_options {
            self.report.error(path, "an item cannot have both answerValueSet and answerOption");
        }
        if item.item_type == ItemType::Choice && !has_value_set && !has_options {
            self.report.error(path, "choice item has no answerOption and no answerValueSet");
        }

        load::check_item(&item, &FHIR_KEYS, &mut self.report);
        Some(item)
    }

    fn link_id(&mut self, object: &Map<String, Value>, path: &str) -> Option<String> {
        match object.get("linkId") {
            Some(Value::String(link_id)) if !link_id.is_empty() => {
                self.link_ids.register(link_id, path, &mut self.report);
                Some(link_id.clone())
            }
            Some(Value::String(_)) => {
                self.report.error(format!("{path}.linkId"), "linkId is empty");
                None
            }
            Some(_) => {
                self.report.error(format!("{path}.linkId"), "linkId must be a string");
                None
            }
            None => {
                self.report.error(path, "item has no linkId");
                None
            }
        }
    }

    fn item_type(&mut self, object: &Map<String, Value>, path: &str) -> Option<ItemType> {
        let type_path = format!("{path}.type");
        let Some(code) = object.get("type") else {
            self.report.error(path, "item has no type");
            return None;
        };
        let Some(code) = code.as_str() else {
            self.report.error(type_path, "type must be a string");
            return None;
        };
        match ItemType::from_code(code) {
            Ok(item_type) => Some(item_type),
            Err(ItemTypeError::Unsupported) => {
                self.report.error(type_path, format!("item type \"{code}\" is not supported"));
                None
            }
            Err(ItemTypeError::Unknown) => {
                self.report.error(type_path, format!("unknown item type \"{code}\""));
                None
            }
        }
    }

    /// Reads one element of an item into the model or the report.
    fn item_field(&mut self, item: &mut Item, key: &str, field: &Value, path: &str) {
        match key {
            "linkId" | "type" | "item" => {}
            // Identifiers and codes of the item: metadata that does not
            // change what an answer must look like.
            "id" | "definition" | "code" | "prefix" => {}
            "text" => item.text = self.string(field, path),
            "_text" => item.text_zh_cn = self.primitive_element(field, path),
            "required" => item.required = self.flag(field, path).unwrap_or(false),
            "repeats" => item.repeats = self.flag(field, path).unwrap_or(false),
            "readOnly" => item.read_only = self.flag(field, path).unwrap_or(false),
            "maxLength" => item.constraints.max_length = self.max_length(field, path),
            "answerValueSet" => self.answer_value_set(item, field, path),
            "answerOption" => item.options = self.options(field, path),
            "initial" => self.report.ignored(path, "initial values prefill a form; the server does not apply them"),
            "enableWhen" => item.enable_when = self.enable_when(field, path),
            "enableBehavior" => item.enable_behavior = self.enable_behavior(field, path),
            "extension" => self.item_extensions(item, field, path),
            "modifierExtension" => self.modifier_extensions(field, path),
            _ if key.starts_with('_') => {
                self.primitive_element(field, path);
            }
            _ => self.report.not_evaluated(
                path,
                format!("\"{key}\" is not an element of a FHIR R4 Questionnaire item and is not used"),
            ),
        }
    }

    fn max_length(&mut self, field: &Value, path: &str) -> Option<usize> {
        match field.as_u64().and_then(|length| usize::try_from(length).ok()) {
            Some(length) if length > 0 => Some(length),
            _ => {
                self.report.error(path, "maxLength must be a positive integer");
                None
            }
        }
    }

    fn answer_value_set(&mut self, item: &mut Item, field: &Value, path: &str) {
        let Some(reference) = self.string(field, path) else {
            return;
        };
        let Some(id) = reference.strip_prefix('#') else {
            self.report.not_evaluated(
                path,
                format!("answerValueSet {reference} is not contained in the form, so codes are not checked; any Coding is accepted"),
            );
            item.answer_value_set = Some(reference);
            return;
        };
        match self.value_sets.get(id) {
            Some(Ok(options)) => {
                item.options = options.clone();
                *self.value_set_use.entry(id.to_owned()).or_default() += 1;
            }
            Some(Err(reason)) => {
                self.report.error(path, format!("contained ValueSet \"{id}\" cannot be used: {reason}"))
            }
            None => self.report.error(path, format!("answerValueSet \"{reference}\" names no contained ValueSet")),
        }
    }

    fn options(&mut self, field: &Value, path: &str) -> Vec<AnswerOption> {
        let Some(list) = field.as_array() else {
            self.report.error(path, "answerOption must be an array");
            return Vec::new();
        };
        list.iter()
            .enumerate()
            .filter_map(|(position, option)| self.option(option, &format!("{path}[{position}]")))
            .collect()
    }

    fn option(&mut self, value: &Value, path: &str) -> Option<AnswerOption> {
        let Some(object) = value.as_object() else {
            self.report.error(path, "answerOption must be a JSON object");
            return None;
        };
        let mut ordinal = None;
        let mut initial_selected = false;
        let mut display_zh_cn = None;
        let mut values = Vec::new();

        for (key, field) in object {
            let field_path = format!("{path}.{key}");
            match key.as_str() {
                "id" => {}
                "initialSelected" => initial_selected = self.flag(field, &field_path).unwrap_or(false),
                "extension" => ordinal = self.option_extensions(field, &field_path).or(ordinal),
                "modifierExtension" => self.modifier_extensions(field, &field_path),
                "valueCoding" => {
                    if let Some(coding) = field.get("extension") {
                        let coding_path = format!("{field_path}.extension");
                        ordinal = self.option_extensions(coding, &coding_path).or(ordinal);
                    }
                    if let Some(element) = field.get("_display") {
                        display_zh_cn = self.primitive_element(element, &format!("{field_path}._display"));
                    }
                    values.push(self.coding_option(field, &field_path));
                }
                "valueInteger" => values.push(self.integer_option(field, &field_path)),
                "valueString" => values.push(self.string(field, &field_path).map(OptionValue::String)),
                "valueDate" => values.push(self.date_option(field, &field_path)),
                "valueTime" => values.push(self.time_option(field, &field_path)),
                "valueReference" => {
                    self.report.error(&field_path, "answerOption valueReference is not supported");
                    values.push(None);
                }
                "_valueString" => display_zh_cn = self.primitive_element(field, &field_path),
                _ if key.starts_with('_') => {
                    self.primitive_element(field, &field_path);
                }
                _ => self.report.not_evaluated(
                    &field_path,
                    format!("\"{key}\" is not an element of a FHIR R4 answerOption and is not used"),
                ),
            }
        }

        match values.len() {
            0 => {
                self.report.error(path, "answerOption has no value[x]");
                None
            }
            1 => {
                let value = values.pop().flatten()?;
                let display = match &value {
                    OptionValue::Coding { display, .. } => display.clone(),
                    _ => None,
                };
                Some(AnswerOption { value, display, ordinal, initial_selected, display_zh_cn })
            }
            _ => {
                self.report.error(path, "answerOption has more than one value[x]");
                None
            }
        }
    }

    fn coding_option(&mut self, field: &Value, path: &str) -> Option<OptionValue> {
        let Some(coding) = field.as_object() else {
            self.report.error(path, "valueCoding must be a JSON object");
            return None;
        };
        let code = match coding.get("code") {
            Some(Value::String(code)) if !code.is_empty() => code.clone(),
            _ => {
                self.report.error(path, "valueCoding has no code");
                return None;
            }
        };
        let system = self.optional_string(coding, "system", &format!("{path}.system"));
        let display = self.optional_string(coding, "display", &format!("{path}.display"));
        Some(OptionValue::Coding { system, code, display })
    }

    fn integer_option(&mut self, field: &Value, path: &str) -> Option<OptionValue> {
        match field.as_i64() {
            Some(value) => Some(OptionValue::Integer(value)),
            None => {
                self.report.error(path, "valueInteger must be an integer");
                None
            }
        }
    }

    fn date_option(&mut self, field: &Value, path: &str) -> Option<OptionValue> {
        let text = self.string(field, path)?;
        if FhirDate::parse(&text).is_none() {
            self.report.error(path, format!("\"{text}\" is not a valid FHIR date"));
            return None;
        }
        Some(OptionValue::Date(text))
    }

    fn time_option(&mut self, field: &Value, path: &str) -> Option<OptionValue> {
        let text = self.string(field, path)?;
        if FhirTime::parse(&text).is_none() {
            self.report.error(path, format!("\"{text}\" is not a valid FHIR time"));
            return None;
        }
        Some(OptionValue::Time(text))
    }

    /// Reads the extensions of an answer option or a Coding and returns its
    /// score weight, if any.
    fn option_extensions(&mut self, field: &Value, path: &str) -> Option<rust_decimal::Decimal> {
        let mut ordinal = None;
        for (extension_path, url, extension) in self.extension_list(field, path) {
            match extensions::role(&url) {
                Role::Ordinal => ordinal = self.ordinal(extension, &extension_path),
                role => self.report_other_role(&role, &url, &extension_path),
            }
        }
        ordinal
    }

    fn ordinal(&mut self, extension: &Map<String, Value>, path: &str) -> Option<rust_decimal::Decimal> {
        let number = ["valueDecimal", "valueInteger"]
            .iter()
            .find_map(|key| extension.get(*key))
            .and_then(Value::as_number)
            .and_then(primitive::decimal_from_json);
        if number.is_none() {
            self.report.error(path, "ordinalValue must have a valueDecimal");
        }
        number
    }

    fn enable_when(&mut self, field: &Value, path: &str) -> Vec<EnableWhen> {
        let Some(list) = field.as_array() else {
            self.report.error(path, "enableWhen must be an array");
            return Vec::new();
        };
        let mut conditions = Vec::new();
        for (position, condition) in list.iter().enumerate() {
            let condition_path = format!("{path}[{position}]");
            if let Some(condition) = self.condition(condition, &condition_path) {
                conditions.push(condition);
            }
        }
        conditions
    }

    fn condition(&mut self, value: &Value, path: &str) -> Option<EnableWhen> {
        let Some(object) = value.as_object() else {
            self.report.error(path, "enableWhen condition must be a JSON object");
            return None;
        };
        let question = match object.get("question") {
            Some(Value::String(question)) => question.clone(),
            _ => {
                self.report.error(path, "enableWhen condition has no question");
                return None;
            }
        };
        let operator = match object.get("operator").and_then(Value::as_str) {
            Some(code) => match EnableWhenOperator::from_code(code) {
                Some(operator) => operator,
                None => {
                    self.report.error(format!("{path}.operator"), format!("unknown enableWhen operator \"{code}\""));
                    return None;
                }
            },
            None => {
                self.report.error(path, "enableWhen condition has no operator");
                return None;
            }
        };
        let answers: Vec<(&String, &Value)> = object.iter().filter(|(key, _)| key.starts_with("answer")).collect();
        let [(answer_kind, answer)] = answers.as_slice() else {
            self.report.error(path, "enableWhen condition must have exactly one answer[x]");
            return None;
        };

        self.link_ids.reference(&question, path);
        Some(EnableWhen {
            question,
            operator,
            answer_kind: (*answer_kind).clone(),
            answer: (*answer).clone(),
            json_path: path.to_owned(),
        })
    }

    fn enable_behavior(&mut self, field: &Value, path: &str) -> Option<EnableBehavior> {
        let behavior = field.as_str().and_then(EnableBehavior::from_code);
        if behavior.is_none() {
            self.report.error(path, "enableBehavior must be \"all\" or \"any\"");
        }
        behavior
    }

    fn item_extensions(&mut self, item: &mut Item, field: &Value, path: &str) {
        for (extension_path, url, extension) in self.extension_list(field, path) {
            let role = extensions::role(&url);
            match role {
                Role::MinValue => item.constraints.min = self.bound(item.item_type, extension, &extension_path),
                Role::MaxValue => item.constraints.max = self.bound(item.item_type, extension, &extension_path),
                Role::MaxDecimalPlaces => {
                    item.constraints.max_decimal_places = self.count_value(extension, &extension_path)
                }
                Role::Regex => item.constraints.regex = self.pattern(extension, &extension_path),
                Role::MinOccurs => item.min_occurs = self.count_value(extension, &extension_path),
                Role::MaxOccurs => item.max_occurs = self.max_occurs(extension, &extension_path),
                Role::Unit => item.units = self.unit(extension, &extension_path).into_iter().collect(),
                Role::UnitOption => item.units.extend(self.unit(extension, &extension_path)),
                Role::Hidden => {
                    let value = extension.get("valueBoolean").unwrap_or(&Value::Null);
                    item.hidden = self.flag(value, &extension_path).unwrap_or(false);
                }
                Role::Expression(kind) => item.expressions.extend(self.expression(kind, extension, &extension_path)),
                Role::TargetConstraint => {
                    let rule = self.target_constraint(extension, &extension_path, Some(&item.link_id));
                    self.rules.extend(rule);
                }
                Role::Unknown if extension.contains_key("valueExpression") => {
                    let kind = ExpressionKind::Other(url.clone());
                    item.expressions.extend(self.expression(kind, extension, &extension_path));
                }
                role => self.report_other_role(&role, &url, &extension_path),
            }
        }
    }

    fn root_extensions(&mut self, field: &Value) -> Vec<Expression> {
        let mut expressions = Vec::new();
        for (extension_path, url, extension) in self.extension_list(field, "$.extension") {
            match extensions::role(&url) {
                Role::Expression(kind) => expressions.extend(self.expression(kind, extension, &extension_path)),
                Role::TargetConstraint => {
                    let rule = self.target_constraint(extension, &extension_path, None);
                    self.rules.extend(rule);
                }
                Role::Ignored(reason) => self.report.ignored(extension_path, ignored_message(&url, reason)),
                Role::Unknown if extension.contains_key("valueExpression") => {
                    let kind = ExpressionKind::Other(url.clone());
                    expressions.extend(self.expression(kind, extension, &extension_path));
                }
                Role::Unknown => self.report.not_evaluated(extension_path, unknown_message(&url)),
                _ => self.report.not_evaluated(
                    extension_path,
                    format!("{} has no effect on the Questionnaire itself", extensions::short_name(&url)),
                ),
            }
        }
        expressions
    }

    /// Reports an extension whose role has no meaning where it was found.
    fn report_other_role(&mut self, role: &Role, url: &str, path: &str) {
        match role {
            Role::Ignored(reason) => self.report.ignored(path, ignored_message(url, reason)),
            Role::Unknown => self.report.not_evaluated(path, unknown_message(url)),
            Role::UnitValueSet => self.report.not_evaluated(
                path,
                "questionnaire-unitValueSet is not evaluated; units of answers are not checked against it",
            ),
            _ => {
                self.report.not_evaluated(path, format!("{} is not used in this position", extensions::short_name(url)))
            }
        }
    }

    fn modifier_extensions(&mut self, field: &Value, path: &str) {
        for (extension_path, url, _) in self.extension_list(field, path) {
            self.report.error(
                extension_path,
                format!("modifierExtension {url} is not understood, so the form cannot be used safely"),
            );
        }
    }

    /// Returns the well-formed entries of an `extension` array with their
    /// paths and URLs, and reports the malformed ones.
    fn extension_list<'v>(&mut self, field: &'v Value, path: &str) -> Vec<(String, String, &'v Map<String, Value>)> {
        let Some(list) = field.as_array() else {
            self.report.error(path, "extension must be an array");
            return Vec::new();
        };
        let mut entries = Vec::new();
        for (position, extension) in list.iter().enumerate() {
            let extension_path = format!("{path}[{position}]");
            let Some(object) = extension.as_object() else {
                self.report.error(extension_path, "extension must be a JSON object");
                continue;
            };
            let Some(url) = object.get("url").and_then(Value::as_str) else {
                self.report.error(extension_path, "extension has no url");
                continue;
            };
            entries.push((extension_path, url.to_owned(), object));
        }
        entries
    }

    fn bound(&mut self, item_type: ItemType, extension: &Map<String, Value>, path: &str) -> Option<Bound> {
        let Some((kind, value)) = extension_value(extension) else {
            self.report.error(path, "extension has no value[x]");
            return None;
        };
        let numeric_item = matches!(item_type, ItemType::Decimal | ItemType::Quantity);
        let bound = match kind {
            "valueInteger" if numeric_item => {
                value.as_number().and_then(primitive::decimal_from_json).map(Bound::Decimal)
            }
            "valueInteger" => value.as_i64().map(Bound::Integer),
            "valueDecimal" => value.as_number().and_then(primitive::decimal_from_json).map(Bound::Decimal),
            "valueQuantity" => {
                value.get("value").and_then(Value::as_number).and_then(primitive::decimal_from_json).map(Bound::Decimal)
            }
            "valueDate" => value.as_str().and_then(FhirDate::parse).map(Bound::Date),
            "valueDateTime" => value.as_str().and_then(|text| FhirDateTime::parse(text).ok()).map(Bound::DateTime),
            "valueTime" => value.as_str().and_then(FhirTime::parse).map(Bound::Time),
            _ => {
                self.report.error(path, format!("{kind} is not a supported type for a range bound"));
                return None;
            }
        };
        if bound.is_none() {
            self.report.error(path, format!("{kind} is not a valid value of its type"));
        }
        bound
    }

    fn count_value(&mut self, extension: &Map<String, Value>, path: &str) -> Option<u32> {
        let count = extension.get("valueInteger").and_then(Value::as_u64).and_then(|count| u32::try_from(count).ok());
        if count.is_none() {
            self.report.error(path, "extension must have a non-negative valueInteger");
        }
        count
    }

    fn max_occurs(&mut self, extension: &Map<String, Value>, path: &str) -> Option<u32> {
        let count = self.count_value(extension, path)?;
        if count == 0 {
            self.report.error(path, "maxOccurs must be at least 1");
            return None;
        }
        Some(count)
    }

    fn pattern(&mut self, extension: &Map<String, Value>, path: &str) -> Option<Pattern> {
        let Some(source) = extension.get("valueString").and_then(Value::as_str) else {
            self.report.error(path, "regex must have a valueString");
            return None;
        };
        match Pattern::new(source) {
            Ok(pattern) => Some(pattern),
            Err(error) => {
                self.report.error(path, format!("invalid regex: {error}"));
                None
            }
        }
    }

    fn unit(&mut self, extension: &Map<String, Value>, path: &str) -> Option<Unit> {
        let Some(coding) = extension.get("valueCoding").and_then(Value::as_object) else {
            self.report.error(path, "unit must have a valueCoding");
            return None;
        };
        let text = |key: &str| coding.get(key).and_then(Value::as_str).map(str::to_owned);
        let unit = Unit { system: text("system"), code: text("code"), display: text("display") };
        if unit.code.is_none() && unit.display.is_none() {
            self.report.error(path, "unit has neither a code nor a display");
            return None;
        }
        Some(unit)
    }

    fn expression(&mut self, kind: ExpressionKind, extension: &Map<String, Value>, path: &str) -> Option<Expression> {
        let Some(value) = extension.get("valueExpression").and_then(Value::as_object) else {
            self.report.error(path, format!("{} must have a valueExpression", kind.name()));
            return None;
        };
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let Some(expression) = text("expression").or_else(|| text("reference")) else {
            self.report.error(path, "valueExpression has neither an expression nor a reference");
            return None;
        };
        Some(Expression {
            kind,
            language: text("language"),
            expression,
            name: text("name"),
            description: text("description"),
            json_path: path.to_owned(),
        })
    }

    /// Reads a `targetConstraint` into a rule. `context` is the linkId of
    /// the item it is attached to, which is the context of its FHIRPath.
    fn target_constraint(
        &mut self,
        extension: &Map<String, Value>,
        path: &str,
        context: Option<&str>,
    ) -> Option<RuleDefinition> {
        let parts = extension.get("extension").and_then(Value::as_array);
        let part = |name: &str| {
            parts?.iter().find(|part| part.get("url").and_then(Value::as_str) == Some(name)).and_then(Value::as_object)
        };
        let part_text = |name: &str, key: &str| part(name)?.get(key)?.as_str().map(str::to_owned);
        let expression = part("expression").and_then(|part| part.get("valueExpression"));
        let key = part_text("key", "valueId");
        let human = part_text("human", "valueString");
        let severity = match part_text("severity", "valueCode").as_deref() {
            Some("error") => Some(Severity::Reject),
            Some("warning") => Some(Severity::Query),
            Some(other) => {
                self.report.error(path, format!("targetConstraint severity \"{other}\" must be error or warning"));
                None
            }
            None => {
                self.report.error(path, "targetConstraint has no severity");
                None
            }
        };
        if key.is_none() {
            self.report.error(path, "targetConstraint has no key");
        }
        if human.is_none() {
            self.report.error(path, "targetConstraint has no human message");
        }
        let Some(expression) = expression.and_then(Value::as_object) else {
            self.report.error(path, "targetConstraint has no expression");
            return None;
        };
        let Some(text) = expression.get("expression").and_then(Value::as_str) else {
            self.report.error(path, "targetConstraint expression has no text");
            return None;
        };

        let location = part_text("location", "valueString");
        let located = location.as_deref().and_then(rules::location_link_id);
        if let Some(location) = &location
            && located.is_none()
        {
            self.report.warning(
                path,
                format!("targetConstraint location \"{location}\" names no item; findings go to the constrained item"),
            );
        }
        Some(RuleDefinition {
            key: key?,
            expression: text.to_owned(),
            language: expression.get("language").and_then(Value::as_str).unwrap_or(FHIRPATH).to_owned(),
            severity: severity?,
            message_en: human?,
            message_zh_cn: None,
            items: located.into_iter().collect(),
            context: context.map(str::to_owned),
            json_path: path.to_owned(),
        })
    }

    /// Reads the extensions of a primitive element (`_text`, `_title`,
    /// `_display`) and returns its Simplified Chinese translation, if any.
    fn primitive_element(&mut self, field: &Value, path: &str) -> Option<String> {
        let list = field.get("extension")?;
        let mut zh_cn = None;
        for (extension_path, url, extension) in self.extension_list(list, &format!("{path}.extension")) {
            match extensions::role(&url) {
                Role::Translation => match translation(extension) {
                    Some((language, content)) if is_simplified_chinese(&language) => zh_cn = Some(content),
                    Some((language, _)) => {
                        self.report.ignored(extension_path, format!("translation to \"{language}\" is not used"))
                    }
                    None => self.report.error(extension_path, "translation has no lang or content"),
                },
                role => self.report_other_role(&role, &url, &extension_path),
            }
        }
        zh_cn
    }

    fn contained(&mut self, field: &Value) {
        let Some(list) = field.as_array() else {
            self.report.error("$.contained", "contained must be an array");
            return;
        };
        for (position, resource) in list.iter().enumerate() {
            let path = format!("$.contained[{position}]");
            let kind = resource.get("resourceType").and_then(Value::as_str).unwrap_or("resource");
            if kind != "ValueSet" {
                self.report.ignored(path, format!("contained {kind} is not used"));
                continue;
            }
            let Some(id) = resource.get("id").and_then(Value::as_str) else {
                self.report.ignored(path, "contained ValueSet has no id, so no item can use it");
                continue;
            };
            let options = self.value_set(resource, &path);
            self.value_sets.insert(id.to_owned(), options);
        }
    }

    /// Reads the codes a contained ValueSet lists. Only enumerated codes
    /// are supported, because the importer has no terminology server.
    fn value_set(&mut self, resource: &Value, path: &str) -> Result<Vec<AnswerOption>, String> {
        if let Some(compose) = resource.get("compose") {
            if compose.get("exclude").is_some() {
                return Err("compose.exclude is not supported".to_owned());
            }
            let Some(includes) = compose.get("include").and_then(Value::as_array) else {
                return Err("compose has no include list".to_owned());
            };
            let mut options = Vec::new();
            for (position, include) in includes.iter().enumerate() {
                let include_path = format!("{path}.compose.include[{position}]");
                let has_rule = include.get("filter").is_some() || include.get("valueSet").is_some();
                let Some(concepts) = include.get("concept").and_then(Value::as_array).filter(|_| !has_rule) else {
                    return Err(format!(
                        "compose.include[{position}] does not list its concepts; filters and whole code systems are not supported"
                    ));
                };
                let system = include.get("system").and_then(Value::as_str);
                for (index, concept) in concepts.iter().enumerate() {
                    let concept_path = format!("{include_path}.concept[{index}]");
                    options.push(self.concept(concept, system, &concept_path)?);
                }
            }
            return Ok(options);
        }
        if let Some(contains) = resource.pointer("/expansion/contains").and_then(Value::as_array) {
            let mut options = Vec::new();
            for (index, concept) in contains.iter().enumerate() {
                let concept_path = format!("{path}.expansion.contains[{index}]");
                let system = concept.get("system").and_then(Value::as_str);
                options.push(self.concept(concept, system, &concept_path)?);
            }
            return Ok(options);
        }
        Err("it has neither compose.include nor expansion.contains".to_owned())
    }

    fn concept(&mut self, concept: &Value, system: Option<&str>, path: &str) -> Result<AnswerOption, String> {
        let Some(code) = concept.get("code").and_then(Value::as_str) else {
            return Err(format!("{path} has no code"));
        };
        let ordinal = match concept.get("extension") {
            Some(list) => self.option_extensions(list, &format!("{path}.extension")),
            None => None,
        };
        let display_zh_cn = concept
            .get("designation")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|designation| {
                let language = designation.get("language").and_then(Value::as_str).unwrap_or_default();
                is_simplified_chinese(language)
            })
            .and_then(|designation| designation.get("value").and_then(Value::as_str))
            .map(str::to_owned);
        let display = concept.get("display").and_then(Value::as_str).map(str::to_owned);
        Ok(AnswerOption {
            value: OptionValue::Coding {
                system: system.map(str::to_owned),
                code: code.to_owned(),
                display: display.clone(),
            },
            display,
            ordinal,
            initial_selected: false,
            display_zh_cn,
        })
    }

    fn optional_string(&mut self, object: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        let field = object.get(key)?;
        self.string(field, path)
    }

    fn string(&mut self, field: &Value, path: &str) -> Option<String> {
        match field {
            Value::String(text) => Some(text.clone()),
            _ => {
                self.report.error(path, "must be a string");
                None
            }
        }
    }

    /// Reads a boolean. The string forms "true" and "false", which some
    /// real forms use, are accepted with a warning.
    fn flag(&mut self, field: &Value, path: &str) -> Option<bool> {
        match field {
            Value::Bool(flag) => Some(*flag),
            Value::String(text) if text == "true" || text == "false" => {
                self.report.warning(path, format!("boolean written as the string \"{text}\"; read as {text}"));
                Some(text == "true")
            }
            _ => {
                self.report.error(path, "must be true or false");
                None
            }
        }
    }
}

/// Returns the `value[x]` element of an extension and its name.
fn extension_value(extension: &Map<String, Value>) -> Option<(&str, &Value)> {
    extension.iter().find(|(key, _)| key.starts_with("value")).map(|(key, value)| (key.as_str(), value))
}

/// Reads the `lang` and `content` parts of a `translation` extension.
fn translation(extension: &Map<String, Value>) -> Option<(String, String)> {
    let parts = extension.get("extension")?.as_array()?;
    let part = |name: &str, key: &str| {
        parts
            .iter()
            .find(|part| part.get("url").and_then(Value::as_str) == Some(name))
            .and_then(|part| part.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some((part("lang", "valueCode")?, part("content", "valueString")?))
}

fn is_simplified_chinese(language: &str) -> bool {
    matches!(language, "zh" | "zh-CN" | "zh-Hans" | "zh-Hans-CN")
}

fn ignored_message(url: &str, reason: &str) -> String {
    format!("{}: {reason}", extensions::short_name(url))
}

fn unknown_message(url: &str) -> String {
    format!("unknown extension {url} is kept out of the model and not evaluated")
}
