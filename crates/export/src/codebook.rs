//! The codebook: every item of every published version of a form, with its
//! column, type, labels in both languages, answer codes and their ordinal
//! values, so that an export is readable without the form file.

use std::str::FromStr;

use epro_forms::{AnswerOption, Item, ItemType, Language, OptionValue};
use serde_json::{Value, json};

use crate::csv::{neutralise, write_rows};
use crate::layout::Layout;

/// Output format of the codebook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodebookFormat {
    /// One JSON document, versions and items nested.
    Json,
    /// One CSV row per item and answer option (one row for an item without
    /// options), for a join in pandas or a spreadsheet.
    Csv,
}

impl CodebookFormat {
    /// The names accepted by [`FromStr`], for messages.
    pub const NAMES: &'static [&'static str] = &["json", "csv"];

    /// Returns the media type of the output.
    pub fn media_type(self) -> &'static str {
        match self {
            CodebookFormat::Json => "application/json",
            CodebookFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

impl FromStr for CodebookFormat {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "json" => Ok(CodebookFormat::Json),
            "csv" => Ok(CodebookFormat::Csv),
            _ => Err(()),
        }
    }
}

/// The header of the CSV codebook.
const CSV_COLUMNS: &[&str] = &[
    "formVersion",
    "current",
    "column",
    "linkId",
    "type",
    "repeats",
    "required",
    "labelEn",
    "labelZhCN",
    "optionCode",
    "optionSystem",
    "optionLabelEn",
    "optionLabelZhCN",
    "ordinalValue",
];

/// Writes the codebook of `layout` in `format`.
pub fn codebook(layout: &Layout, format: CodebookFormat) -> Vec<u8> {
    match format {
        CodebookFormat::Json => {
            let mut bytes = serde_json::to_vec_pretty(&json_codebook(layout)).unwrap_or_default();
            bytes.push(b'\n');
            bytes
        }
        CodebookFormat::Csv => csv_codebook(layout),
    }
}

fn json_codebook(layout: &Layout) -> Value {
    let versions: Vec<Value> = layout
        .versions
        .iter()
        .map(|version| {
            let mut items = Vec::new();
            for item in version.form.all_items() {
                items.push(json_item(layout, item));
            }
            json!({
                "version": version.version,
                "current": version.current,
                "title": { "en": version.title.en, "zh-CN": version.title.zh_cn },
                "scores": version.form.score_names(),
                "items": items,
            })
        })
        .collect();
    json!({ "trialId": layout.trial_id, "formId": layout.form_id, "versions": versions })
}

fn json_item(layout: &Layout, item: &Item) -> Value {
    let question = layout.questions.iter().find(|question| question.link_id == item.link_id);
    let options: Vec<Value> = item
        .options
        .iter()
        .map(|option| {
            let (code, system) = option_code(option);
            json!({
                "code": code,
                "system": system,
                "label": { "en": option_label(option, Language::En), "zh-CN": option_label(option, Language::ZhCn) },
                "ordinalValue": option.ordinal.map(decimal_number),
            })
        })
        .collect();
    let units: Vec<Value> = item
        .units
        .iter()
        .map(|unit| json!({ "code": unit.code, "system": unit.system, "display": unit.display }))
        .collect();
    json!({
        "linkId": item.link_id,
        "column": question.map(|question| question.link_id.clone()),
        "unitColumn": question.filter(|question| question.has_unit_column()).map(|question| format!("{}.unit", question.link_id)),
        "type": item.item_type.code(),
        "repeats": question.is_some_and(|question| question.many),
        "required": item.required,
        "label": { "en": item.text_in(Language::En), "zh-CN": item.text_in(Language::ZhCn) },
        "options": options,
        "units": units,
    })
}

fn csv_codebook(layout: &Layout) -> Vec<u8> {
    let mut rows = vec![CSV_COLUMNS.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>()];
    for version in &layout.versions {
        for item in version.form.all_items() {
            if matches!(item.item_type, ItemType::Display | ItemType::Group) {
                continue;
            }
            let many = layout.questions.iter().any(|question| question.link_id == item.link_id && question.many);
            let base = vec![
                neutralise(&version.version),
                version.current.to_string(),
                neutralise(&item.link_id),
                neutralise(&item.link_id),
                item.item_type.code().to_owned(),
                many.to_string(),
                item.required.to_string(),
                neutralise(item.text_in(Language::En).unwrap_or_default()),
                neutralise(item.text_in(Language::ZhCn).unwrap_or_default()),
            ];
            if item.options.is_empty() {
                let mut row = base;
                row.extend(std::iter::repeat_n(String::new(), 5));
                rows.push(row);
                continue;
            }
            for option in &item.options {
                let (code, system) = option_code(option);
                let mut row = base.clone();
                row.push(match code {
                    Value::String(code) => neutralise(&code),
                    other => other.to_string(),
                });
                row.push(neutralise(system.as_deref().unwrap_or_default()));
                row.push(neutralise(option_label(option, Language::En).unwrap_or_default()));
                row.push(neutralise(option_label(option, Language::ZhCn).unwrap_or_default()));
                row.push(option.ordinal.map(|ordinal| decimal_number(ordinal).to_string()).unwrap_or_default());
                rows.push(row);
            }
        }
    }
    let mut bytes = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_rows(&mut bytes, rows);
    bytes
}

/// Returns the value an answer holds for this option, as the export writes it:
/// the code of a Coding with its system, otherwise the value.
fn option_code(option: &AnswerOption) -> (Value, Option<String>) {
    match &option.value {
        OptionValue::Coding { system, code, .. } => (Value::String(code.clone()), system.clone()),
        OptionValue::Integer(value) => (Value::from(*value), None),
        OptionValue::String(value) | OptionValue::Date(value) | OptionValue::Time(value) => {
            (Value::String(value.clone()), None)
        }
    }
}

fn option_label(option: &AnswerOption, language: Language) -> Option<&str> {
    let (first, second) = match language {
        Language::En => (option.display.as_deref(), option.display_zh_cn.as_deref()),
        Language::ZhCn => (option.display_zh_cn.as_deref(), option.display.as_deref()),
    };
    first.or(second)
}

/// Writes a decimal as a JSON number, keeping its digits.
fn decimal_number(value: rust_decimal::Decimal) -> Value {
    serde_json::from_str::<serde_json::Number>(&value.normalize().to_string()).map(Value::Number).unwrap_or(Value::Null)
}
