//! Writing normalized answers back as the `item` tree of a FHIR R4
//! QuestionnaireResponse, for exports in the FHIR Bulk Data style.
//!
//! This is the inverse of reading a response (`fhir::response`) followed by
//! normalization: checking the returned items against the same form gives
//! back the same normalized answers. Each answer gets the `value[x]` element
//! of its item type, and an answer to a choice item gets the element of the
//! option it matches.

use serde_json::{Map, Value, json};

use crate::model::{Form, Item, ItemType, OptionValue};

/// Builds the `item` array of a QuestionnaireResponse from normalized
/// answers, in form order. Items without an answer are left out, and so are
/// answers to linkIds this form does not have.
pub fn response_items(form: &Form, answers: &Value) -> Value {
    match answers {
        Value::Object(answers) => Value::Array(level_items(&form.items, answers)),
        _ => Value::Array(Vec::new()),
    }
}

fn level_items(items: &[Item], answers: &Map<String, Value>) -> Vec<Value> {
    let mut entries = Vec::new();
    for item in items {
        let Some(value) = answers.get(&item.link_id) else {
            continue;
        };
        match item.item_type {
            ItemType::Display => {}
            ItemType::Group => {
                let occurrences = match value {
                    Value::Array(occurrences) => occurrences.iter().collect(),
                    other => vec![other],
                };
                for occurrence in occurrences {
                    let Value::Object(children) = occurrence else {
                        continue;
                    };
                    entries.push(json!({ "linkId": item.link_id, "item": level_items(&item.children, children) }));
                }
            }
            _ => {
                let values = match value {
                    Value::Array(values) => values.iter().collect(),
                    other => vec![other],
                };
                let answer: Vec<Value> = values.into_iter().filter_map(|value| answer(item, value)).collect();
                if !answer.is_empty() {
                    entries.push(json!({ "linkId": item.link_id, "answer": answer }));
                }
            }
        }
    }
    entries
}

/// Wraps one normalized value in the `value[x]` element its item type uses.
fn answer(item: &Item, value: &Value) -> Option<Value> {
    let element = match (item.item_type, value) {
        (ItemType::Boolean, Value::Bool(_)) => "valueBoolean",
        (ItemType::Integer, Value::Number(_)) => "valueInteger",
        (ItemType::Decimal, Value::Number(_)) => "valueDecimal",
        (ItemType::String | ItemType::Text, Value::String(_)) => "valueString",
        (ItemType::Date, Value::String(_)) => "valueDate",
        (ItemType::DateTime, Value::String(_)) => "valueDateTime",
        (ItemType::Time, Value::String(_)) => "valueTime",
        (ItemType::Quantity, Value::Object(_)) => "valueQuantity",
        (ItemType::Choice | ItemType::OpenChoice, Value::Object(_)) => "valueCoding",
        (ItemType::Choice | ItemType::OpenChoice, Value::Number(_)) => "valueInteger",
        (ItemType::Choice | ItemType::OpenChoice, Value::String(text)) => choice_text_element(item, text),
        _ => return None,
    };
    Some(json!({ element: value }))
}

/// Picks the element of a choice answer held as text: that of the date or
/// time option it equals, otherwise `valueString`.
fn choice_text_element(item: &Item, text: &str) -> &'static str {
    let option = item.options.iter().find_map(|option| match &option.value {
        OptionValue::Date(value) if value == text => Some("valueDate"),
        OptionValue::Time(value) if value == text => Some("valueTime"),
        _ => None,
    });
    option.unwrap_or("valueString")
}
