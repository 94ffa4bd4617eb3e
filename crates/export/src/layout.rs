//! The columns of one form's export, and how a stored submission's answers
//! fill them.
//!
//! # Naming rule
//!
//! A form's linkIds are unique in the whole form, so every question gets one
//! column named by its linkId, whatever groups it sits in: groups add no
//! columns and no prefixes. Display items have no column. A quantity question
//! that answers once gets a second column, `LINKID.unit`, with the unit.
//!
//! A question that can be answered more than once (it repeats, or it sits in
//! a repeating group) gets a single column that holds a JSON array: one entry
//! per answer, and in a repeating group one entry per occurrence of the group,
//! `null` where that occurrence has no answer, so that the arrays of one
//! group's questions line up. Each repeating level nests one array. Entries
//! are the values a single cell would hold, except that a quantity is
//! `{"value": …, "unit": …}`.
//!
//! The columns are the union over every published version of the form: the
//! current version's questions first, in form order, then those that only
//! older versions have. Answers that no published version has a column for
//! (a version since withdrawn) go to the last column, `otherAnswers`, as one
//! JSON object keyed by linkId, so nothing stored is left out.

use std::collections::{HashMap, HashSet};

use epro_forms::{Item, ItemType, Language, PublishedForm, Trial};
use serde_json::{Map, Value};

/// The columns of one form across its published versions.
#[derive(Debug, Clone)]
pub struct Layout {
    pub(crate) trial_id: String,
    pub(crate) form_id: String,
    /// The published versions, current first, then newest to oldest.
    pub(crate) versions: Vec<PublishedForm>,
    pub(crate) questions: Vec<Question>,
    /// Score names, current version's first.
    pub(crate) scores: Vec<String>,
}

/// One question column (two for a quantity answered once).
#[derive(Debug, Clone)]
pub(crate) struct Question {
    pub(crate) link_id: String,
    pub(crate) item_type: ItemType,
    /// Answered more than once: the cell holds a JSON array.
    pub(crate) many: bool,
    pub(crate) label_en: Option<String>,
    pub(crate) label_zh_cn: Option<String>,
}

impl Question {
    /// Returns true when the question has a unit column beside its value.
    pub(crate) fn has_unit_column(&self) -> bool {
        self.item_type == ItemType::Quantity && !self.many
    }

    /// Returns the question's label in `language`, falling back to the other
    /// language and then to the linkId.
    pub(crate) fn label(&self, language: Language) -> &str {
        let (first, second) = match language {
            Language::En => (&self.label_en, &self.label_zh_cn),
            Language::ZhCn => (&self.label_zh_cn, &self.label_en),
        };
        first.as_deref().or(second.as_deref()).unwrap_or(&self.link_id)
    }
}

/// A submission's answers sorted into columns.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    /// Cell values by linkId, before rendering.
    pub(crate) values: HashMap<String, Value>,
    /// Answers to linkIds the form version has no item for.
    pub(crate) other: Map<String, Value>,
}

impl Layout {
    /// Builds the layout of form `form_id` of `trial`, or `None` when the
    /// trial has no such form. The current version leads; a form whose
    /// versions are all retired is led by its last version, so its data stays
    /// exportable.
    pub fn new(trial: &Trial, form_id: &str) -> Option<Layout> {
        let mut versions: Vec<PublishedForm> = trial.forms.iter().filter(|form| form.id == form_id).cloned().collect();
        let current = versions.iter().position(|form| form.current).or_else(|| versions.len().checked_sub(1))?;
        let current = versions.remove(current);
        versions.reverse();
        versions.insert(0, current);

        let mut questions = Vec::new();
        let mut seen = HashSet::new();
        let mut scores: Vec<String> = Vec::new();
        for version in &versions {
            collect_questions(&version.form.items, false, &mut seen, &mut questions);
            for name in version.form.score_names() {
                if !scores.iter().any(|known| known == name) {
                    scores.push(name.to_owned());
                }
            }
        }
        Some(Layout { trial_id: trial.id.clone(), form_id: form_id.to_owned(), versions, questions, scores })
    }

    /// Returns the published version `version`, or the current one for a
    /// version no longer published.
    pub(crate) fn form(&self, version: &str) -> &PublishedForm {
        self.versions.iter().find(|form| form.version == version).unwrap_or(&self.versions[0])
    }

    /// Sorts normalized answers into cell values, reading their structure from
    /// the form version they were stored with.
    pub(crate) fn extract(&self, version: &str, answers: &Value) -> Extracted {
        let mut extracted = Extracted::default();
        if let Value::Object(answers) = answers {
            extract_level(&self.form(version).form.items, answers, &mut extracted);
        }
        extracted
    }
}

fn collect_questions(items: &[Item], in_repeat: bool, seen: &mut HashSet<String>, questions: &mut Vec<Question>) {
    for item in items {
        match item.item_type {
            ItemType::Display => {}
            ItemType::Group => collect_questions(&item.children, in_repeat || item.repeats, seen, questions),
            item_type => {
                let many = in_repeat || item.repeats;
                if seen.insert(item.link_id.clone()) {
                    questions.push(Question {
                        link_id: item.link_id.clone(),
                        item_type,
                        many,
                        label_en: item.text_in(Language::En).map(str::to_owned),
                        label_zh_cn: item.text_zh_cn.clone().or_else(|| item.text.clone()),
                    });
                } else if many && let Some(known) = questions.iter_mut().find(|known| known.link_id == item.link_id) {
                    // A version that repeats the question decides the cell's shape.
                    known.many = true;
                }
            }
        }
    }
}

/// Sorts one occurrence's answers: values of its questions, arrays for its
/// repeating groups, and the rest into `other`.
fn extract_level(items: &[Item], occurrence: &Map<String, Value>, extracted: &mut Extracted) {
    for (link_id, value) in occurrence {
        let Some(item) = items.iter().find(|item| &item.link_id == link_id) else {
            extracted.other.insert(link_id.clone(), value.clone());
            continue;
        };
        match item.item_type {
            ItemType::Display => {
                extracted.other.insert(link_id.clone(), value.clone());
            }
            ItemType::Group if item.repeats => extract_repeating_group(item, value, extracted),
            ItemType::Group => match value {
                Value::Object(children) => extract_level(&item.children, children, extracted),
                other => {
                    extracted.other.insert(link_id.clone(), other.clone());
                }
            },
            _ => {
                let cell = match value {
                    Value::Array(answers) => Value::Array(answers.iter().map(simplify).collect()),
                    answer => simplify(answer),
                };
                extracted.values.insert(link_id.clone(), cell);
            }
        }
    }
}

/// Gives every question below a repeating group one array entry per
/// occurrence of the group, `null` where that occurrence has no answer.
fn extract_repeating_group(group: &Item, value: &Value, extracted: &mut Extracted) {
    let occurrences = match value {
        Value::Array(occurrences) => occurrences.iter().collect(),
        single => vec![single],
    };
    let mut descendants = Vec::new();
    question_ids(&group.children, &mut descendants);
    let mut columns: Vec<Vec<Value>> = vec![Vec::with_capacity(occurrences.len()); descendants.len()];
    for occurrence in occurrences {
        let mut inner = Extracted::default();
        match occurrence {
            Value::Object(children) => extract_level(&group.children, children, &mut inner),
            other => {
                extracted.other.insert(group.link_id.clone(), other.clone());
            }
        }
        for (position, link_id) in descendants.iter().enumerate() {
            columns[position].push(inner.values.remove(*link_id).unwrap_or(Value::Null));
        }
        extracted.other.extend(inner.other);
    }
    for (link_id, entries) in descendants.into_iter().zip(columns) {
        extracted.values.insert(link_id.to_owned(), Value::Array(entries));
    }
}

fn question_ids<'a>(items: &'a [Item], ids: &mut Vec<&'a str>) {
    for item in items {
        match item.item_type {
            ItemType::Display => {}
            ItemType::Group => question_ids(&item.children, ids),
            _ => ids.push(&item.link_id),
        }
    }
}

/// Reduces one normalized answer to what its cell shows: a Coding to its code,
/// a quantity to its value and unit. Other values stay as they are.
fn simplify(answer: &Value) -> Value {
    let Value::Object(fields) = answer else {
        return answer.clone();
    };
    if fields.contains_key("value") {
        let unit = fields.get("unit").or_else(|| fields.get("code")).cloned().unwrap_or(Value::Null);
        let mut quantity = Map::new();
        quantity.insert("value".to_owned(), fields.get("value").cloned().unwrap_or(Value::Null));
        quantity.insert("unit".to_owned(), unit);
        return Value::Object(quantity);
    }
    match fields.get("code") {
        Some(code) => code.clone(),
        None => answer.clone(),
    }
}

/// Reads the stored scores, `[{"name": …, "value": "12.5"}]`, into numbers by
/// name. A value that is missing or not a decimal is `null`.
pub(crate) fn scores(text: &str) -> HashMap<String, Value> {
    let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(text) else {
        return HashMap::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let name = entry.get("name")?.as_str()?.to_owned();
            let value = match entry.get("value") {
                Some(Value::String(decimal)) => {
                    serde_json::from_str::<serde_json::Number>(decimal).map(Value::Number).unwrap_or(Value::Null)
                }
                Some(Value::Number(number)) => Value::Number(number.clone()),
                _ => Value::Null,
            };
            Some((name, value))
        })
        .collect()
}
