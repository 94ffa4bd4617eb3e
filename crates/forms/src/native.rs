//! Import of the native TOML form format, for teams that do not use FHIR.
//!
//! `NATIVE_FORMAT.md` in this crate documents every key. The format maps
//! one to one onto the model, so it supports every type and constraint the
//! FHIR importer does. Unknown keys are errors with their key path, so a
//! misspelt constraint never disappears silently.
//!
//! Expressions of the native format are CEL (`calculated`,
//! `enable_when_expression`, `[[rules]]`); the `expressions` tables keep
//! FHIRPath, as in a FHIR form. `EXPRESSIONS.md` documents both languages.

use serde_json::Value as Json;
use toml::{Table, Value};

use crate::load::{self, LinkIds, LoadReport, NATIVE_KEYS, Notice};
use crate::model::{
    AnswerOption, Bound, CEL, EnableBehavior, EnableWhen, EnableWhenOperator, Expression, ExpressionKind, FHIRPATH,
    Form, Item, ItemType, ItemTypeError, OptionValue, Pattern, RuleDefinition, Unit,
};
use crate::primitive::{self, DateTimeError, FhirDate, FhirDateTime, FhirTime};
use crate::validate::Severity;

const FORM_KEYS: &[&str] = &["title", "url", "version", "items", "expressions", "rules"];

const RULE_KEYS: &[&str] = &["key", "expression", "severity", "message", "items"];

const ITEM_KEYS: &[&str] = &[
    "link_id",
    "type",
    "text",
    "required",
    "repeats",
    "min_occurs",
    "max_occurs",
    "read_only",
    "hidden",
    "min",
    "max",
    "max_length",
    "regex",
    "max_decimal_places",
    "units",
    "options",
    "answer_value_set",
    "enable_when",
    "enable_behavior",
    "calculated",
    "enable_when_expression",
    "expressions",
    "items",
];

/// Parses and imports a native TOML form.
pub(crate) fn import(text: &str) -> (Option<Form>, LoadReport) {
    let table = match text.parse::<Table>() {
        Ok(table) => table,
        Err(error) => {
            let mut report = LoadReport::default();
            report.errors.push(syntax_error(text, &error));
            return (None, report);
        }
    };
    let mut importer = Importer::default();
    let form = importer.form(&table);
    (form, importer.report)
}

/// Converts a TOML syntax error into a notice with a 1-based line and
/// column (counted in characters).
pub(crate) fn syntax_error(text: &str, error: &toml::de::Error) -> Notice {
    let (line, column) = match error.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |position| position + 1);
            (Some(line), Some(before[line_start..].chars().count() + 1))
        }
        None => (None, None),
    };
    Notice { path: String::new(), line, column, message: format!("invalid TOML: {}", error.message().trim_end()) }
}

#[derive(Default)]
struct Importer {
    report: LoadReport,
    link_ids: LinkIds,
}

impl Importer {
    fn form(&mut self, table: &Table) -> Option<Form> {
        self.reject_unknown_keys(table, FORM_KEYS, "");

        let (title, title_zh_cn) = match table.get("title") {
            Some(value) => self.text(value, "title"),
            None => (None, None),
        };
        let url = table.get("url").and_then(|value| self.string(value, "url"));
        let declared_version = table.get("version").and_then(|value| self.string(value, "version"));
        let expressions = match table.get("expressions") {
            Some(value) => self.expressions(value, "expressions"),
            None => Vec::new(),
        };
        let items = match table.get("items") {
            Some(value) => self.items(value, "items"),
            None => Vec::new(),
        };
        if items.is_empty() && !table.contains_key("items") {
            self.report.error("items", "the form has no items");
        }
        let rules = match table.get("rules") {
            Some(value) => self.rules(value, "rules"),
            None => Vec::new(),
        };
        self.link_ids.check_references(&mut self.report);

        let mut form = Form::new(url, title, title_zh_cn, declared_version, items, expressions);
        form.rules = rules;
        load::check_form_expressions(&form, &mut self.report);
        Some(form)
    }

    fn items(&mut self, value: &Value, path: &str) -> Vec<Item> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "items must be an array of tables");
            return Vec::new();
        };
        if list.is_empty() {
            self.report.error(path, "items is empty");
        }
        list.iter().enumerate().filter_map(|(position, item)| self.item(item, &format!("{path}[{position}]"))).collect()
    }

    fn item(&mut self, value: &Value, path: &str) -> Option<Item> {
        let Some(table) = value.as_table() else {
            self.report.error(path, "item must be a table");
            return None;
        };
        self.reject_unknown_keys(table, ITEM_KEYS, path);

        let link_id = self.link_id(table, path);
        let item_type = self.item_type(table, path);
        let children = match table.get("items") {
            Some(value) => self.items(value, &format!("{path}.items")),
            None => Vec::new(),
        };
        let (link_id, item_type) = (link_id?, item_type?);

        let mut item = Item::new(link_id, item_type);
        item.source_path = path.to_owned();
        item.children = children;
        for (key, field) in table {
            self.item_field(&mut item, key, field, &format!("{path}.{key}"));
        }

        let declares_answers = table.contains_key("answer_value_set")
            || table.get("options").is_some_and(|options| options.as_array().is_none_or(|list| !list.is_empty()));
        if item.item_type == ItemType::Choice && !declares_answers {
            self.report.error(path, "choice item has no options and no answer_value_set");
        }

        load::check_item(&item, &NATIVE_KEYS, &mut self.report);
        Some(item)
    }

    fn link_id(&mut self, table: &Table, path: &str) -> Option<String> {
        let Some(value) = table.get("link_id") else {
            self.report.error(path, "item has no link_id");
            return None;
        };
        let key_path = format!("{path}.link_id");
        let link_id = self.string(value, &key_path)?;
        if link_id.is_empty() {
            self.report.error(key_path, "link_id is empty");
            return None;
        }
        self.link_ids.register(&link_id, path, &mut self.report);
        Some(link_id)
    }

    fn item_type(&mut self, table: &Table, path: &str) -> Option<ItemType> {
        let Some(value) = table.get("type") else {
            self.report.error(path, "item has no type");
            return None;
        };
        let key_path = format!("{path}.type");
        let code = self.string(value, &key_path)?;
        match ItemType::from_code(&code) {
            Ok(item_type) => Some(item_type),
            Err(ItemTypeError::Unsupported) => {
                self.report.error(key_path, format!("item type \"{code}\" is not supported"));
                None
            }
            Err(ItemTypeError::Unknown) => {
                self.report.error(key_path, format!("unknown item type \"{code}\""));
                None
            }
        }
    }

    /// Reads one key of an item. Unknown keys were already reported.
    fn item_field(&mut self, item: &mut Item, key: &str, field: &Value, path: &str) {
        match key {
            "text" => (item.text, item.text_zh_cn) = self.text(field, path),
            "required" => item.required = self.flag(field, path),
            "repeats" => item.repeats = self.flag(field, path),
            "read_only" => item.read_only = self.flag(field, path),
            "hidden" => item.hidden = self.flag(field, path),
            "min_occurs" => item.min_occurs = self.count(field, 0, path),
            "max_occurs" => item.max_occurs = self.count(field, 1, path),
            "min" => item.constraints.min = self.bound(item.item_type, field, path),
            "max" => item.constraints.max = self.bound(item.item_type, field, path),
            "max_length" => {
                item.constraints.max_length = self.count(field, 1, path).and_then(|length| usize::try_from(length).ok())
            }
            "max_decimal_places" => item.constraints.max_decimal_places = self.count(field, 0, path),
            "regex" => item.constraints.regex = self.pattern(field, path),
            "units" => item.units = self.units(field, path),
            "options" => item.options = self.options(item.item_type, field, path),
            "answer_value_set" => item.answer_value_set = self.answer_value_set(field, path),
            "enable_when" => item.enable_when = self.enable_when(field, path),
            "enable_behavior" => item.enable_behavior = self.enable_behavior(field, path),
            "calculated" => {
                let expression = self.cel_expression(ExpressionKind::CalculatedExpression, field, path);
                item.expressions.extend(expression);
            }
            "enable_when_expression" => {
                let expression = self.cel_expression(ExpressionKind::EnableWhenExpression, field, path);
                item.expressions.extend(expression);
            }
            "expressions" => item.expressions.extend(self.expressions(field, path)),
            _ => {}
        }
    }

    fn reject_unknown_keys(&mut self, table: &Table, known: &[&str], path: &str) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let key_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                self.report.error(key_path, format!("unknown key \"{key}\""));
            }
        }
    }

    /// Reads text given as a plain string (the default language) or as a
    /// table with `en` and `zh-CN`.
    fn text(&mut self, value: &Value, path: &str) -> (Option<String>, Option<String>) {
        match value {
            Value::String(text) => (Some(text.clone()), None),
            Value::Table(table) => {
                self.reject_unknown_keys(table, &["en", "zh-CN"], path);
                let en = table.get("en").and_then(|value| self.string(value, &format!("{path}.en")));
                let zh_cn = table.get("zh-CN").and_then(|value| self.string(value, &format!("{path}.zh-CN")));
                if en.is_none() && zh_cn.is_none() {
                    self.report.error(path, "text needs en, zh-CN or both");
                }
                (en.or_else(|| zh_cn.clone()), zh_cn)
            }
            _ => {
                self.report.error(path, "text must be a string or a table with en and zh-CN");
                (None, None)
            }
        }
    }

    fn bound(&mut self, item_type: ItemType, value: &Value, path: &str) -> Option<Bound> {
        let bound = match (item_type, value) {
            (ItemType::Integer, Value::Integer(number)) => Some(Bound::Integer(*number)),
            (ItemType::Decimal | ItemType::Quantity, Value::Integer(number)) => Some(Bound::Decimal((*number).into())),
            (ItemType::Decimal | ItemType::Quantity, Value::Float(number)) => {
                let decimal = primitive::decimal_from_text(&number.to_string());
                if decimal.is_none() {
                    self.report.error(path, format!("{number} is out of the supported decimal range"));
                    return None;
                }
                decimal.map(Bound::Decimal)
            }
            (ItemType::Date | ItemType::DateTime | ItemType::Time, Value::String(_) | Value::Datetime(_)) => {
                let text = temporal_text(value);
                return self.temporal_bound(item_type, &text, path);
            }
            _ => None,
        };
        if bound.is_none() {
            let expected = match item_type {
                ItemType::Integer => "an integer",
                ItemType::Decimal | ItemType::Quantity => "a number",
                _ => {
                    self.report.error(path, format!("min and max are not allowed on {} items", item_type.code()));
                    return None;
                }
            };
            self.report.error(path, format!("must be {expected} for an item of type {}", item_type.code()));
        }
        bound
    }

    fn temporal_bound(&mut self, item_type: ItemType, text: &str, path: &str) -> Option<Bound> {
        let bound = match item_type {
            ItemType::Date => FhirDate::parse(text).map(Bound::Date),
            ItemType::Time => FhirTime::parse(text).map(Bound::Time),
            _ => match FhirDateTime::parse(text) {
                Ok(value) => Some(Bound::DateTime(value)),
                Err(DateTimeError::MissingOffset) => {
                    self.report.error(path, format!("\"{text}\" has a time but no UTC offset"));
                    return None;
                }
                Err(DateTimeError::Format) => None,
            },
        };
        if bound.is_none() {
            self.report.error(path, format!("\"{text}\" is not a valid FHIR {}", item_type.code()));
        }
        bound
    }

    fn pattern(&mut self, value: &Value, path: &str) -> Option<Pattern> {
        let source = self.string(value, path)?;
        match Pattern::new(&source) {
            Ok(pattern) => Some(pattern),
            Err(error) => {
                self.report.error(path, format!("invalid regex: {error}"));
                None
            }
        }
    }

    fn units(&mut self, value: &Value, path: &str) -> Vec<Unit> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "units must be an array");
            return Vec::new();
        };
        let mut units = Vec::new();
        for (position, entry) in list.iter().enumerate() {
            let entry_path = format!("{path}[{position}]");
            match entry {
                Value::String(code) => units.push(Unit { system: None, code: Some(code.clone()), display: None }),
                Value::Table(table) => {
                    self.reject_unknown_keys(table, &["code", "system", "display"], &entry_path);
                    let mut field = |key: &str| {
                        let value = table.get(key)?;
                        self.string(value, &format!("{entry_path}.{key}"))
                    };
                    let unit = Unit { code: field("code"), system: field("system"), display: field("display") };
                    if unit.code.is_none() && unit.display.is_none() {
                        self.report.error(entry_path, "unit needs a code or a display");
                    } else {
                        units.push(unit);
                    }
                }
                _ => self.report.error(entry_path, "unit must be a string or a table"),
            }
        }
        units
    }

    fn options(&mut self, item_type: ItemType, value: &Value, path: &str) -> Vec<AnswerOption> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "options must be an array of tables");
            return Vec::new();
        };
        list.iter()
            .enumerate()
            .filter_map(|(position, option)| self.option(item_type, option, &format!("{path}[{position}]")))
            .collect()
    }

    fn option(&mut self, item_type: ItemType, value: &Value, path: &str) -> Option<AnswerOption> {
        let Some(table) = value.as_table() else {
            self.report.error(path, "option must be a table");
            return None;
        };
        self.reject_unknown_keys(table, &["code", "system", "value", "text", "ordinal", "initial_selected"], path);

        let (display, display_zh_cn) = match table.get("text") {
            Some(text) => self.text(text, &format!("{path}.text")),
            None => (None, None),
        };
        let ordinal = table.get("ordinal").and_then(|ordinal| self.ordinal(ordinal, &format!("{path}.ordinal")));
        let initial_selected =
            table.get("initial_selected").is_some_and(|flag| self.flag(flag, &format!("{path}.initial_selected")));

        let value = match (table.get("code"), table.get("value")) {
            (Some(code), None) => {
                let code = self.string(code, &format!("{path}.code"))?;
                let system = table.get("system").and_then(|system| self.string(system, &format!("{path}.system")));
                OptionValue::Coding { system, code, display: display.clone() }
            }
            (None, Some(value)) => {
                if table.contains_key("system") {
                    self.report.error(format!("{path}.system"), "system is allowed only with code");
                }
                self.option_value(item_type, value, &format!("{path}.value"))?
            }
            (Some(_), Some(_)) => {
                self.report.error(path, "option has both code and value; use one");
                return None;
            }
            (None, None) => {
                self.report.error(path, "option needs a code or a value");
                return None;
            }
        };
        Some(AnswerOption { value, display, ordinal, initial_selected, display_zh_cn })
    }

    /// Reads a plain option value. Strings are dates on date items and
    /// times on time items. Elsewhere they are string options.
    fn option_value(&mut self, item_type: ItemType, value: &Value, path: &str) -> Option<OptionValue> {
        match (item_type, value) {
            (_, Value::Integer(number)) => Some(OptionValue::Integer(*number)),
            (ItemType::Date, Value::String(_) | Value::Datetime(_)) => {
                let text = temporal_text(value);
                let valid = FhirDate::parse(&text).is_some();
                self.valid_or_report(valid, path, &text, "date").then_some(OptionValue::Date(text))
            }
            (ItemType::Time, Value::String(_) | Value::Datetime(_)) => {
                let text = temporal_text(value);
                let valid = FhirTime::parse(&text).is_some();
                self.valid_or_report(valid, path, &text, "time").then_some(OptionValue::Time(text))
            }
            (_, Value::String(text)) => Some(OptionValue::String(text.clone())),
            _ => {
                self.report.error(path, "option value must be an integer or a string");
                None
            }
        }
    }

    fn valid_or_report(&mut self, valid: bool, path: &str, text: &str, kind: &str) -> bool {
        if !valid {
            self.report.error(path, format!("\"{text}\" is not a valid FHIR {kind}"));
        }
        valid
    }

    fn ordinal(&mut self, value: &Value, path: &str) -> Option<rust_decimal::Decimal> {
        let ordinal = match value {
            Value::Integer(number) => Some((*number).into()),
            Value::Float(number) => primitive::decimal_from_text(&number.to_string()),
            _ => None,
        };
        if ordinal.is_none() {
            self.report.error(path, "ordinal must be a number");
        }
        ordinal
    }

    fn answer_value_set(&mut self, value: &Value, path: &str) -> Option<String> {
        let url = self.string(value, path)?;
        if url.starts_with('#') {
            self.report.error(path, "a native form has no contained value sets; list the codes under options");
            return None;
        }
        self.report.not_evaluated(
            path,
            format!("answer_value_set {url} is external, so codes are not checked; any Coding is accepted"),
        );
        Some(url)
    }

    fn enable_when(&mut self, value: &Value, path: &str) -> Vec<EnableWhen> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "enable_when must be an array of tables");
            return Vec::new();
        };
        let mut conditions = Vec::new();
        for (position, condition) in list.iter().enumerate() {
            if let Some(condition) = self.condition(condition, &format!("{path}[{position}]")) {
                conditions.push(condition);
            }
        }
        conditions
    }

    fn condition(&mut self, value: &Value, path: &str) -> Option<EnableWhen> {
        let Some(table) = value.as_table() else {
            self.report.error(path, "enable_when condition must be a table");
            return None;
        };
        self.reject_unknown_keys(table, &["question", "operator", "answer"], path);

        let question = table.get("question").and_then(|value| self.string(value, &format!("{path}.question")));
        let operator_code = table.get("operator").and_then(|value| self.string(value, &format!("{path}.operator")));
        let operator = operator_code.as_deref().and_then(EnableWhenOperator::from_code);
        if operator_code.is_some() && operator.is_none() {
            self.report.error(format!("{path}.operator"), "operator must be one of exists, =, !=, >, <, >=, <=");
        }
        let answer = table.get("answer").and_then(|answer| self.condition_answer(answer, &format!("{path}.answer")));
        let missing: Vec<&str> = [
            ("question", question.is_none()),
            ("operator", operator_code.is_none()),
            ("answer", !table.contains_key("answer")),
        ]
        .into_iter()
        .filter_map(|(key, absent)| absent.then_some(key))
        .collect();
        if !missing.is_empty() {
            self.report.error(path, format!("enable_when condition is missing {}", missing.join(", ")));
        }

        let (question, operator, (answer_kind, answer)) = (question?, operator?, answer?);
        self.link_ids.reference(&question, path);
        Some(EnableWhen { question, operator, answer_kind, answer, json_path: path.to_owned() })
    }

    /// Converts a condition's answer to the FHIR `answer[x]` name and a
    /// JSON value, so both importers store conditions the same way.
    fn condition_answer(&mut self, value: &Value, path: &str) -> Option<(String, Json)> {
        let (kind, json) = match value {
            Value::Boolean(flag) => ("answerBoolean", Json::Bool(*flag)),
            Value::Integer(number) => ("answerInteger", Json::from(*number)),
            Value::Float(number) => ("answerDecimal", serde_json::Number::from_f64(*number).map(Json::Number)?),
            Value::String(text) => ("answerString", Json::String(text.clone())),
            Value::Datetime(datetime) => {
                let kind = match (datetime.date.is_some(), datetime.time.is_some()) {
                    (true, false) => "answerDate",
                    (false, true) => "answerTime",
                    _ => "answerDateTime",
                };
                (kind, Json::String(datetime.to_string()))
            }
            Value::Table(table) => {
                self.reject_unknown_keys(table, &["code", "system", "display"], path);
                let mut coding = serde_json::Map::new();
                for (key, field) in table {
                    if let Some(text) = self.string(field, &format!("{path}.{key}")) {
                        coding.insert(key.clone(), Json::String(text));
                    }
                }
                ("answerCoding", Json::Object(coding))
            }
            Value::Array(_) => {
                self.report.error(path, "answer must be a single value");
                return None;
            }
        };
        Some((kind.to_owned(), json))
    }

    fn enable_behavior(&mut self, value: &Value, path: &str) -> Option<EnableBehavior> {
        let behavior = value.as_str().and_then(EnableBehavior::from_code);
        if behavior.is_none() {
            self.report.error(path, "enable_behavior must be \"all\" or \"any\"");
        }
        behavior
    }

    /// Reads a CEL expression given as a string key of an item.
    fn cel_expression(&mut self, kind: ExpressionKind, value: &Value, path: &str) -> Option<Expression> {
        let expression = self.string(value, path)?;
        Some(Expression {
            kind,
            language: Some(CEL.to_owned()),
            expression,
            name: None,
            description: None,
            json_path: path.to_owned(),
        })
    }

    fn rules(&mut self, value: &Value, path: &str) -> Vec<RuleDefinition> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "rules must be an array of tables, written [[rules]]");
            return Vec::new();
        };
        list.iter()
            .enumerate()
            .filter_map(|(position, entry)| self.rule(entry, &format!("{path}[{position}]")))
            .collect()
    }

    fn rule(&mut self, value: &Value, path: &str) -> Option<RuleDefinition> {
        let Some(table) = value.as_table() else {
            self.report.error(path, "rule must be a table");
            return None;
        };
        self.reject_unknown_keys(table, RULE_KEYS, path);
        let mut required = |key: &str| match table.get(key) {
            Some(value) => self.string(value, &format!("{path}.{key}")),
            None => {
                self.report.error(path, format!("rule has no {key}"));
                None
            }
        };
        let key = required("key");
        let expression = required("expression");
        let severity_code = required("severity");
        let severity = match severity_code.as_deref() {
            Some("reject") => Some(Severity::Reject),
            Some("query") => Some(Severity::Query),
            Some(other) => {
                self.report.error(format!("{path}.severity"), format!("\"{other}\" must be reject or query"));
                None
            }
            None => None,
        };
        let message = self.rule_message(table.get("message"), &format!("{path}.message"));
        let items = match table.get("items") {
            Some(items) => self.link_id_list(items, &format!("{path}.items")),
            None => Vec::new(),
        };
        let (message_en, message_zh_cn) = message?;
        Some(RuleDefinition {
            key: key?,
            expression: expression?,
            language: CEL.to_owned(),
            severity: severity?,
            message_en,
            message_zh_cn: Some(message_zh_cn),
            items,
            context: None,
            json_path: path.to_owned(),
        })
    }

    /// Reads a rule message, which needs both `en` and `zh-CN` because
    /// site staff read it in either language.
    fn rule_message(&mut self, value: Option<&Value>, path: &str) -> Option<(String, String)> {
        let Some(table) = value.and_then(Value::as_table) else {
            self.report.error(path, "message must be a table with en and zh-CN");
            return None;
        };
        self.reject_unknown_keys(table, &["en", "zh-CN"], path);
        let mut text = |key: &str| match table.get(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
            _ => {
                self.report.error(format!("{path}.{key}"), format!("{key} text is missing or empty"));
                None
            }
        };
        let en = text("en");
        let zh_cn = text("zh-CN");
        Some((en?, zh_cn?))
    }

    fn link_id_list(&mut self, value: &Value, path: &str) -> Vec<String> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "items must be an array of linkIds");
            return Vec::new();
        };
        list.iter()
            .enumerate()
            .filter_map(|(position, entry)| self.string(entry, &format!("{path}[{position}]")))
            .collect()
    }

    fn expressions(&mut self, value: &Value, path: &str) -> Vec<Expression> {
        let Some(list) = value.as_array() else {
            self.report.error(path, "expressions must be an array of tables");
            return Vec::new();
        };
        let mut expressions = Vec::new();
        for (position, entry) in list.iter().enumerate() {
            let entry_path = format!("{path}[{position}]");
            if let Some(expression) = self.expression(entry, &entry_path) {
                expressions.push(expression);
            }
        }
        expressions
    }

    fn expression(&mut self, value: &Value, path: &str) -> Option<Expression> {
        let Some(table) = value.as_table() else {
            self.report.error(path, "expression must be a table");
            return None;
        };
        self.reject_unknown_keys(table, &["kind", "expression", "language", "name", "description"], path);
        let mut field = |key: &str| {
            let value = table.get(key)?;
            self.string(value, &format!("{path}.{key}"))
        };
        let kind_name = field("kind");
        let expression = field("expression");
        let language = field("language").or_else(|| Some(FHIRPATH.to_owned()));
        let name = field("name");
        let description = field("description");

        let kind = match kind_name.as_deref() {
            Some("calculatedExpression") => ExpressionKind::CalculatedExpression,
            Some("variable") => ExpressionKind::Variable,
            Some("enableWhenExpression") => ExpressionKind::EnableWhenExpression,
            Some("initialExpression") => ExpressionKind::InitialExpression,
            Some("answerExpression") => ExpressionKind::AnswerExpression,
            Some("targetConstraint") => {
                self.report.error(format!("{path}.kind"), "write cross-item rules as [[rules]] entries");
                return None;
            }
            Some("candidateExpression") => ExpressionKind::CandidateExpression,
            Some("contextExpression") => ExpressionKind::ContextExpression,
            Some(other) => {
                self.report.error(format!("{path}.kind"), format!("unknown expression kind \"{other}\""));
                return None;
            }
            None => {
                self.report.error(path, "expression has no kind");
                return None;
            }
        };
        let Some(expression) = expression else {
            self.report.error(path, "expression has no expression text");
            return None;
        };
        Some(Expression { kind, language, expression, name, description, json_path: path.to_owned() })
    }

    fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            _ => {
                self.report.error(path, "must be a string");
                None
            }
        }
    }

    fn flag(&mut self, value: &Value, path: &str) -> bool {
        match value {
            Value::Boolean(flag) => *flag,
            _ => {
                self.report.error(path, "must be true or false");
                false
            }
        }
    }

    /// Reads a non-negative integer that is at least `minimum`.
    fn count(&mut self, value: &Value, minimum: u32, path: &str) -> Option<u32> {
        let count = value.as_integer().and_then(|number| u32::try_from(number).ok());
        match count {
            Some(count) if count >= minimum => Some(count),
            _ => {
                self.report.error(path, format!("must be an integer of at least {minimum}"));
                None
            }
        }
    }
}

/// Returns the text of a string or TOML date-time value.
fn temporal_text(value: &Value) -> String {
    match value {
        Value::Datetime(datetime) => datetime.to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
