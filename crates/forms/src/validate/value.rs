//! Checks of one answer value against its item: JSON type, format, range,
//! options, length, pattern and unit. Returns the normalized value or every
//! problem found in it.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Number, Value};

use super::input::{Answer, Pointer};
use super::{Expected, Hint, Problem};
use crate::model::{Bound, Item, ItemType, OptionValue, Unit};
use crate::primitive::{self, DateTimeError, FhirDate, FhirDateTime, FhirTime};

/// Keys a quantity answer may have. `comparator` is left out on purpose:
/// storing "< 5" as 5 would change the answer's meaning.
const QUANTITY_KEYS: &[&str] = &["value", "unit", "code", "system"];

/// Checks one answer and returns its normalized value, or the problems
/// found with their pointers.
pub(crate) fn check_answer(item: &Item, answer: &Answer<'_>) -> Result<Value, Vec<(String, Problem)>> {
    let mut check = Check { item, pointer: &answer.pointer, problems: Vec::new() };

    if let Some(kind) = answer.fhir_kind {
        let allowed = fhir_kinds(item);
        if !allowed.contains(&kind) {
            let expected = allowed.first().copied().unwrap_or("no value");
            check.wrong_type(
                expected_for(item.item_type),
                Some(Hint::FhirValueType { expected, found: kind.to_owned() }),
            );
            return Err(check.problems);
        }
    }

    let value = answer.value;
    let normalized = match item.item_type {
        ItemType::Boolean => check.boolean(value),
        ItemType::Integer => check.integer(value).map(Value::from),
        ItemType::Decimal => check.decimal(value, Expected::Decimal).map(|number| Value::Number(number.clone())),
        ItemType::String | ItemType::Text => check.string(value),
        ItemType::Date => check.date(value),
        ItemType::DateTime => check.date_time(value),
        ItemType::Time => check.time(value),
        ItemType::Choice | ItemType::OpenChoice => check.choice(value, answer.fhir_kind),
        ItemType::Quantity => check.quantity(value),
        ItemType::Display | ItemType::Group => {
            check.problems.push((check.pointer.render(), Problem::NotAnswerable));
            None
        }
    };
    let normalized = normalized.and_then(|normalized| check.listed_option(normalized));

    match normalized {
        Some(normalized) if check.problems.is_empty() => Ok(normalized),
        _ => Err(check.problems),
    }
}

/// Returns true when an answer counts as not given: an empty string for an
/// item that takes text.
pub(crate) fn is_unanswered(item: &Item, answer: &Answer<'_>) -> bool {
    let takes_text = matches!(item.item_type, ItemType::String | ItemType::Text | ItemType::OpenChoice);
    takes_text && answer.value.as_str() == Some("")
}

/// Returns the kind of value an item of `item_type` expects.
pub(crate) fn expected_for(item_type: ItemType) -> Expected {
    match item_type {
        ItemType::Boolean => Expected::Boolean,
        ItemType::Integer => Expected::Integer,
        ItemType::Decimal => Expected::Decimal,
        ItemType::String | ItemType::Text => Expected::String,
        ItemType::Date => Expected::Date,
        ItemType::DateTime => Expected::DateTime,
        ItemType::Time => Expected::Time,
        ItemType::Choice | ItemType::OpenChoice => Expected::Option,
        ItemType::Quantity => Expected::Quantity,
        ItemType::Display | ItemType::Group => Expected::Group,
    }
}

/// Returns the FHIR `value[x]` elements an item accepts, the preferred one
/// first. A decimal item also takes `valueInteger`, and a dateTime item
/// `valueDate`, because their values are valid decimals and dateTimes.
fn fhir_kinds(item: &Item) -> Vec<&'static str> {
    match item.item_type {
        ItemType::Boolean => vec!["valueBoolean"],
        ItemType::Integer => vec!["valueInteger"],
        ItemType::Decimal => vec!["valueDecimal", "valueInteger"],
        ItemType::String | ItemType::Text => vec!["valueString"],
        ItemType::Date => vec!["valueDate"],
        ItemType::DateTime => vec!["valueDateTime", "valueDate"],
        ItemType::Time => vec!["valueTime"],
        ItemType::Quantity => vec!["valueQuantity"],
        ItemType::Choice | ItemType::OpenChoice => {
            let mut kinds: Vec<&'static str> = Vec::new();
            for option in &item.options {
                let kind = match option.value {
                    OptionValue::Coding { .. } => "valueCoding",
                    OptionValue::Integer(_) => "valueInteger",
                    OptionValue::String(_) => "valueString",
                    OptionValue::Date(_) => "valueDate",
                    OptionValue::Time(_) => "valueTime",
                };
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            let takes_any_coding = item.answer_value_set.is_some() || kinds.is_empty();
            if takes_any_coding && !kinds.contains(&"valueCoding") {
                kinds.push("valueCoding");
            }
            if item.item_type == ItemType::OpenChoice && !kinds.contains(&"valueString") {
                kinds.push("valueString");
            }
            kinds
        }
        ItemType::Display | ItemType::Group => Vec::new(),
    }
}

/// The value sent for a choice item, as far as option matching cares.
enum ChoiceInput<'a> {
    /// A native string: an option code, or a string, date or time option.
    Text(&'a str),
    Number(&'a Number),
    Coding(&'a Map<String, Value>),
    /// A FHIR valueString, valueDate or valueTime: matches only options of
    /// that kind.
    Typed(&'static str, &'a str),
}

struct Check<'a> {
    item: &'a Item,
    /// Pointer of the answer, rendered only for a problem.
    pointer: &'a Pointer<'a>,
    problems: Vec<(String, Problem)>,
}

impl Check<'_> {
    fn wrong_type(&mut self, expected: Expected, hint: Option<Hint>) {
        self.problems.push((self.pointer.render(), Problem::WrongType { expected, hint }));
    }

    fn out_of_range(&mut self, pointer: String) {
        let bound_text = |bound: &Option<Bound>| bound.as_ref().map(ToString::to_string);
        let problem = Problem::OutOfRange {
            min: bound_text(&self.item.constraints.min),
            max: bound_text(&self.item.constraints.max),
        };
        self.problems.push((pointer, problem));
    }

    fn boolean(&mut self, value: &Value) -> Option<Value> {
        match value {
            Value::Bool(flag) => Some(Value::Bool(*flag)),
            _ => {
                self.wrong_type(Expected::Boolean, None);
                None
            }
        }
    }

    /// Checks an integer. FHIR integers are 32-bit, so larger values are
    /// out of range even when the item sets no bounds.
    fn integer(&mut self, value: &Value) -> Option<i64> {
        let number = match value {
            Value::Number(number) => number,
            Value::String(text) => {
                self.wrong_type(Expected::Integer, numeric_string_hint(text));
                return None;
            }
            _ => {
                self.wrong_type(Expected::Integer, None);
                return None;
            }
        };
        let decimal = primitive::decimal_from_json(number);
        if decimal.is_some_and(|decimal| !decimal.fract().is_zero()) {
            self.wrong_type(Expected::Integer, Some(Hint::FractionalInteger));
            return None;
        }
        let integer = decimal.and_then(|decimal| decimal.to_i64()).filter(|integer| i32::try_from(*integer).is_ok());
        let Some(integer) = integer else {
            let bound_text = |bound: &Option<Bound>, default: i32| {
                bound.as_ref().map_or_else(|| default.to_string(), ToString::to_string)
            };
            let problem = Problem::OutOfRange {
                min: Some(bound_text(&self.item.constraints.min, i32::MIN)),
                max: Some(bound_text(&self.item.constraints.max, i32::MAX)),
            };
            self.problems.push((self.pointer.render(), problem));
            return None;
        };

        let below = matches!(self.item.constraints.min, Some(Bound::Integer(min)) if integer < min);
        let above = matches!(self.item.constraints.max, Some(Bound::Integer(max)) if integer > max);
        if below || above {
            self.out_of_range(self.pointer.render());
            return None;
        }
        Some(integer)
    }

    /// Checks a decimal (or a quantity's value) and returns the number as
    /// sent, so that normalizing keeps its digits.
    fn decimal<'v>(&mut self, value: &'v Value, expected: Expected) -> Option<&'v Number> {
        self.decimal_at(value, expected, "")
    }

    /// Checks a decimal at `suffix` below the answer's pointer, such as
    /// `/value` for a quantity's value.
    fn decimal_at<'v>(&mut self, value: &'v Value, expected: Expected, suffix: &str) -> Option<&'v Number> {
        let answer_pointer = self.pointer;
        let pointer = || format!("{}{suffix}", answer_pointer.render());
        let number = match value {
            Value::Number(number) => number,
            Value::String(text) => {
                let hint = numeric_string_hint(text);
                self.problems.push((pointer(), Problem::WrongType { expected, hint }));
                return None;
            }
            _ => {
                self.problems.push((pointer(), Problem::WrongType { expected, hint: None }));
                return None;
            }
        };
        let Some(decimal) = primitive::decimal_from_json(number) else {
            self.out_of_range(pointer());
            return None;
        };

        let problems_before = self.problems.len();
        if let Some(max_decimal_places) = self.item.constraints.max_decimal_places
            && decimal.scale() > max_decimal_places
        {
            self.problems.push((pointer(), Problem::TooManyDecimals { max_decimal_places }));
        }
        if !decimal_in_range(decimal, &self.item.constraints.min, &self.item.constraints.max) {
            self.out_of_range(pointer());
        }
        (self.problems.len() == problems_before).then_some(number)
    }

    fn string(&mut self, value: &Value) -> Option<Value> {
        match value {
            Value::String(text) => self.text_constraints(text).then(|| Value::String(text.clone())),
            _ => {
                self.wrong_type(Expected::String, None);
                None
            }
        }
    }

    /// Applies `max_length` and `regex` to text and reports every failure.
    fn text_constraints(&mut self, text: &str) -> bool {
        let problems_before = self.problems.len();
        if let Some(max_length) = self.item.constraints.max_length {
            let length = text.chars().count();
            if length > max_length {
                self.problems.push((self.pointer.render(), Problem::TooLong { max_length, length }));
            }
        }
        if let Some(pattern) = &self.item.constraints.regex
            && !pattern.matches(text)
        {
            let problem = Problem::PatternMismatch { pattern: pattern.source.clone() };
            self.problems.push((self.pointer.render(), problem));
        }
        self.problems.len() == problems_before
    }

    fn date(&mut self, value: &Value) -> Option<Value> {
        let Some(text) = value.as_str() else {
            self.wrong_type(Expected::Date, None);
            return None;
        };
        let Some(date) = FhirDate::parse(text) else {
            self.wrong_type(Expected::Date, Some(Hint::DateFormat));
            return None;
        };
        let as_range = FhirDateTime::from_date(&date);
        self.temporal_in_range(&as_range).then(|| Value::String(text.to_owned()))
    }

    fn date_time(&mut self, value: &Value) -> Option<Value> {
        let Some(text) = value.as_str() else {
            self.wrong_type(Expected::DateTime, None);
            return None;
        };
        match FhirDateTime::parse(text) {
            Ok(date_time) => self.temporal_in_range(&date_time).then(|| Value::String(text.to_owned())),
            Err(DateTimeError::MissingOffset) => {
                self.wrong_type(Expected::DateTime, Some(Hint::MissingOffset));
                None
            }
            Err(DateTimeError::Format) => {
                self.wrong_type(Expected::DateTime, Some(Hint::DateTimeFormat));
                None
            }
        }
    }

    /// Checks that every moment a date or dateTime could mean lies within
    /// the item's bounds, so `2024` is above a maximum of `2024-06-30`.
    fn temporal_in_range(&mut self, value: &FhirDateTime) -> bool {
        let as_range = |bound: &Option<Bound>| match bound {
            Some(Bound::Date(date)) => Some(FhirDateTime::from_date(date)),
            Some(Bound::DateTime(date_time)) => Some(date_time.clone()),
            _ => None,
        };
        let below = as_range(&self.item.constraints.min).is_some_and(|min| value.earliest() < min.earliest());
        let above = as_range(&self.item.constraints.max).is_some_and(|max| value.latest() > max.latest());
        if below || above {
            self.out_of_range(self.pointer.render());
            return false;
        }
        true
    }

    fn time(&mut self, value: &Value) -> Option<Value> {
        let Some(text) = value.as_str() else {
            self.wrong_type(Expected::Time, None);
            return None;
        };
        let Some(time) = FhirTime::parse(text) else {
            self.wrong_type(Expected::Time, Some(Hint::TimeFormat));
            return None;
        };
        let below = matches!(&self.item.constraints.min, Some(Bound::Time(min)) if time.value() < min.value());
        let above = matches!(&self.item.constraints.max, Some(Bound::Time(max)) if time.value() > max.value());
        if below || above {
            self.out_of_range(self.pointer.render());
            return None;
        }
        Some(Value::String(text.to_owned()))
    }

    fn choice(&mut self, value: &Value, fhir_kind: Option<&str>) -> Option<Value> {
        let input = match (fhir_kind, value) {
            (None | Some("valueCoding"), Value::Object(coding)) => ChoiceInput::Coding(coding),
            (None, Value::String(text)) => ChoiceInput::Text(text),
            (None | Some("valueInteger"), Value::Number(number)) => ChoiceInput::Number(number),
            (Some("valueString"), Value::String(text)) => ChoiceInput::Typed("valueString", text),
            (Some("valueDate"), Value::String(text)) => ChoiceInput::Typed("valueDate", text),
            (Some("valueTime"), Value::String(text)) => ChoiceInput::Typed("valueTime", text),
            (Some("valueInteger"), Value::String(text)) => {
                self.wrong_type(Expected::Integer, numeric_string_hint(text));
                return None;
            }
            _ => {
                self.wrong_type(Expected::Option, None);
                return None;
            }
        };
        match input {
            ChoiceInput::Coding(coding) => self.choose_coding(coding),
            ChoiceInput::Text(text) => self.choose_text(text),
            ChoiceInput::Number(number) => self.choose_number(number),
            ChoiceInput::Typed(kind, text) => self.choose_typed(kind, text),
        }
    }

    fn choose_coding(&mut self, coding: &Map<String, Value>) -> Option<Value> {
        let code = coding.get("code").and_then(Value::as_str).filter(|code| !code.is_empty());
        let system = coding.get("system");
        let system_is_text = system.is_none_or(Value::is_string);
        let (Some(code), true) = (code, system_is_text) else {
            self.wrong_type(Expected::Option, None);
            return None;
        };
        let system = system.and_then(Value::as_str);

        let found = self.item.options.iter().find_map(|option| match &option.value {
            OptionValue::Coding { system: option_system, code: option_code, display } => {
                let same_system = match (system, option_system) {
                    (Some(sent), Some(listed)) => sent == listed,
                    _ => true,
                };
                (option_code == code && same_system)
                    .then(|| coding_json(option_system.as_deref(), code, display.as_deref()))
            }
            _ => None,
        });
        if found.is_some() {
            return found;
        }
        if self.item.answer_value_set.is_some() {
            let display = coding.get("display").and_then(Value::as_str);
            return Some(coding_json(system, code, display));
        }
        self.not_an_option();
        None
    }

    fn choose_text(&mut self, text: &str) -> Option<Value> {
        let found = self.item.options.iter().find_map(|option| match &option.value {
            OptionValue::Coding { system, code, display } if code == text => {
                Some(coding_json(system.as_deref(), code, display.as_deref()))
            }
            OptionValue::String(value) | OptionValue::Date(value) | OptionValue::Time(value) if value == text => {
                Some(Value::String(value.clone()))
            }
            _ => None,
        });
        if found.is_some() {
            return found;
        }
        if self.item.answer_value_set.is_some() {
            return Some(coding_json(None, text, None));
        }
        if self.item.item_type == ItemType::OpenChoice {
            return self.text_constraints(text).then(|| Value::String(text.to_owned()));
        }
        let has_integer_options =
            self.item.options.iter().any(|option| matches!(option.value, OptionValue::Integer(_)));
        if has_integer_options && primitive::looks_like_number(text) {
            self.wrong_type(Expected::Integer, Some(Hint::QuotedNumber));
            return None;
        }
        self.not_an_option();
        None
    }

    fn choose_number(&mut self, number: &Number) -> Option<Value> {
        let sent = number.as_i64();
        let found = self
            .item
            .options
            .iter()
            .any(|option| matches!(option.value, OptionValue::Integer(value) if Some(value) == sent));
        if found {
            return sent.map(Value::from);
        }
        let has_integer_options =
            self.item.options.iter().any(|option| matches!(option.value, OptionValue::Integer(_)));
        if has_integer_options {
            self.not_an_option();
        } else {
            self.wrong_type(Expected::Option, None);
        }
        None
    }

    fn choose_typed(&mut self, kind: &str, text: &str) -> Option<Value> {
        let found = self.item.options.iter().any(|option| match (&option.value, kind) {
            (OptionValue::String(value), "valueString")
            | (OptionValue::Date(value), "valueDate")
            | (OptionValue::Time(value), "valueTime") => value == text,
            _ => false,
        });
        if found {
            return Some(Value::String(text.to_owned()));
        }
        let is_free_text = self.item.item_type == ItemType::OpenChoice && kind == "valueString";
        if is_free_text {
            return self.text_constraints(text).then(|| Value::String(text.to_owned()));
        }
        self.not_an_option();
        None
    }

    fn not_an_option(&mut self) {
        let allowed = self.item.options.iter().map(|option| option.value.as_text()).collect();
        self.problems.push((self.pointer.render(), Problem::NotAnOption { allowed }));
    }

    /// Checks that a valid value of a string, integer, date or time item
    /// that lists options is one of them. Choice items were matched already.
    fn listed_option(&mut self, normalized: Value) -> Option<Value> {
        let restricted = matches!(
            self.item.item_type,
            ItemType::String | ItemType::Text | ItemType::Integer | ItemType::Date | ItemType::Time
        );
        if !restricted || self.item.options.is_empty() {
            return Some(normalized);
        }
        let listed = self.item.options.iter().any(|option| match (&option.value, &normalized) {
            (OptionValue::Integer(value), Value::Number(number)) => number.as_i64() == Some(*value),
            (OptionValue::String(value) | OptionValue::Date(value) | OptionValue::Time(value), Value::String(text)) => {
                value == text
            }
            _ => false,
        });
        if listed {
            return Some(normalized);
        }
        self.not_an_option();
        None
    }

    fn quantity(&mut self, value: &Value) -> Option<Value> {
        let quantity = match value {
            Value::Object(quantity) => quantity,
            Value::Number(_) | Value::String(_) => {
                self.wrong_type(Expected::Quantity, Some(Hint::QuantityObject));
                return None;
            }
            _ => {
                self.wrong_type(Expected::Quantity, None);
                return None;
            }
        };
        let has_unknown_key = quantity.keys().any(|key| !QUANTITY_KEYS.contains(&key.as_str()));
        let has_text_fields =
            ["unit", "code", "system"].iter().all(|key| quantity.get(*key).is_none_or(Value::is_string));
        if has_unknown_key || !has_text_fields {
            self.wrong_type(Expected::Quantity, None);
            return None;
        }
        let Some(amount) = quantity.get("value").filter(|amount| !amount.is_null()) else {
            self.wrong_type(Expected::Quantity, Some(Hint::QuantityObject));
            return None;
        };

        let number = self.decimal_at(amount, Expected::Decimal, "/value");
        let text = |key: &str| quantity.get(key).and_then(Value::as_str);
        let unit = self.allowed_unit(text("code"), text("system"), text("unit"));
        let (number, unit) = (number?, unit?);

        let mut normalized = Map::new();
        normalized.insert("value".to_owned(), Value::Number(number.clone()));
        let unit_text = text("unit")
            .map(str::to_owned)
            .or_else(|| unit.and_then(|unit| unit.display.clone().or_else(|| unit.code.clone())));
        let system = unit.and_then(|unit| unit.system.clone()).or_else(|| text("system").map(str::to_owned));
        let code = unit.and_then(|unit| unit.code.clone()).or_else(|| text("code").map(str::to_owned));
        for (key, field) in [("unit", unit_text), ("system", system), ("code", code)] {
            if let Some(field) = field {
                normalized.insert(key.to_owned(), Value::String(field));
            }
        }
        Some(Value::Object(normalized))
    }

    /// Finds the item's unit that a quantity names, by code (and system
    /// when both sides have one) or else by unit text. A quantity with no
    /// unit takes the item's only unit. Returns `Some(None)` when the item
    /// allows any unit.
    fn allowed_unit(&mut self, code: Option<&str>, system: Option<&str>, unit: Option<&str>) -> Option<Option<&Unit>> {
        let units = &self.item.units;
        if units.is_empty() {
            return Some(None);
        }
        let found = match (code, unit) {
            (Some(code), _) => units.iter().find(|allowed| {
                let same_system = match (system, &allowed.system) {
                    (Some(sent), Some(listed)) => sent == listed,
                    _ => true,
                };
                allowed.code.as_deref() == Some(code) && same_system
            }),
            (None, Some(unit)) => units
                .iter()
                .find(|allowed| allowed.code.as_deref() == Some(unit) || allowed.display.as_deref() == Some(unit)),
            (None, None) if units.len() == 1 => units.first(),
            (None, None) => None,
        };
        if found.is_none() {
            let allowed = units.iter().map(Unit::label).collect();
            self.problems.push((self.pointer.render(), Problem::UnitNotAllowed { allowed }));
            return None;
        }
        Some(found)
    }
}

fn decimal_in_range(value: Decimal, min: &Option<Bound>, max: &Option<Bound>) -> bool {
    let below = matches!(min, Some(Bound::Decimal(min)) if value < *min);
    let above = matches!(max, Some(Bound::Decimal(max)) if value > *max);
    !below && !above
}

/// Guesses why a string was sent where a number belongs.
fn numeric_string_hint(text: &str) -> Option<Hint> {
    if primitive::has_decimal_comma(text) {
        Some(Hint::DecimalComma)
    } else if primitive::looks_like_number(text) {
        Some(Hint::QuotedNumber)
    } else {
        None
    }
}

fn coding_json(system: Option<&str>, code: &str, display: Option<&str>) -> Value {
    let mut coding = Map::new();
    if let Some(system) = system {
        coding.insert("system".to_owned(), Value::String(system.to_owned()));
    }
    coding.insert("code".to_owned(), Value::String(code.to_owned()));
    if let Some(display) = display {
        coding.insert("display".to_owned(), Value::String(display.to_owned()));
    }
    Value::Object(coding)
}
