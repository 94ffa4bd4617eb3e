//! One CSV row per submission version, written with the `csv` crate's quoting
//! and CRLF line ends (RFC 4180).
//!
//! # Formula neutralisation
//!
//! A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a
//! formula, and tab or carriage return can hide such a start, so a text cell
//! that starts with any of them (or with the full-width forms `＝`, `＋`,
//! `－`, `＠`, which spreadsheets in Chinese locales also read as formulas)
//! gets a `'` in front, as the OWASP advice on CSV injection says. Only text
//! cells are neutralised: a cell written from a JSON number, such as `-3`
//! from an integer item, stays a number, so pandas and spreadsheets read it
//! as one. NDJSON and FHIR exports keep every value unchanged.

use epro_store::ExportRow;
use serde_json::Value;

use crate::layout::{Layout, scores};
use crate::ndjson::{format_offset, format_utc};
use crate::options::{HeaderStyle, Options};

/// The columns before the scores and the questions.
const FIXED_COLUMNS: &[&str] = &[
    "submissionId",
    "version",
    "correctionReason",
    "patientId",
    "formVersion",
    "completedAt",
    "completedAtOffset",
    "receivedAt",
    "source",
    "status",
    "queryCount",
];

/// The last column: answers no published version has a column for.
const OTHER_ANSWERS: &str = "otherAnswers";

/// Characters that make a spreadsheet read a cell as a formula when it starts
/// with one.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// The UTF-8 byte-order mark.
pub(crate) const BOM: &[u8] = "\u{feff}".as_bytes();

/// Returns the header row.
pub(crate) fn header(layout: &Layout, options: &Options) -> Vec<String> {
    let mut names: Vec<String> = FIXED_COLUMNS.iter().map(|name| (*name).to_owned()).collect();
    names.extend(layout.scores.iter().map(|score| format!("score.{score}")));
    for question in &layout.questions {
        let name = match options.header {
            HeaderStyle::LinkId => question.link_id.clone(),
            HeaderStyle::Label => question.label(options.label_language).to_owned(),
        };
        if question.has_unit_column() {
            let unit = match options.header {
                HeaderStyle::LinkId => format!("{}.unit", question.link_id),
                HeaderStyle::Label => match options.label_language {
                    epro_forms::Language::En => format!("{name} (unit)"),
                    epro_forms::Language::ZhCn => format!("{name}（单位）"),
                },
            };
            names.push(name);
            names.push(unit);
        } else {
            names.push(name);
        }
    }
    names.push(OTHER_ANSWERS.to_owned());
    names.into_iter().map(|name| neutralise(&name)).collect()
}

/// Returns the cells of one row, in the order of [`header`].
pub(crate) fn record(layout: &Layout, row: &ExportRow) -> Vec<String> {
    let answers: Value = serde_json::from_str(&row.normalized_answers).unwrap_or(Value::Null);
    let mut extracted = layout.extract(&row.form_version, &answers);
    let row_scores = scores(&row.scores);

    let mut cells = vec![
        neutralise(&row.submission_id),
        row.version.to_string(),
        // Site staff write the reason freely, so it is neutralised like any text.
        row.correction_reason.as_deref().map(neutralise).unwrap_or_default(),
        neutralise(&row.patient_id),
        neutralise(&row.form_version),
        format_utc(row.completed_at),
        format_offset(row.completed_at),
        format_utc(row.received_at),
        row.source.as_str().to_owned(),
        row.status.as_str().to_owned(),
        row.query_count.to_string(),
    ];
    for score in &layout.scores {
        cells.push(row_scores.get(score).map(cell).unwrap_or_default());
    }
    for question in &layout.questions {
        let value = extracted.values.remove(&question.link_id);
        if question.has_unit_column() {
            let (amount, unit) = match &value {
                Some(Value::Object(quantity)) => (quantity.get("value"), quantity.get("unit")),
                _ => (value.as_ref(), None),
            };
            cells.push(amount.map(cell).unwrap_or_default());
            cells.push(unit.map(cell).unwrap_or_default());
        } else if question.many {
            cells.push(match value {
                None => String::new(),
                Some(Value::Array(entries)) => Value::Array(entries).to_string(),
                Some(single) => Value::Array(vec![single]).to_string(),
            });
        } else {
            cells.push(value.as_ref().map(cell).unwrap_or_default());
        }
    }
    cells.push(if extracted.other.is_empty() { String::new() } else { Value::Object(extracted.other).to_string() });
    cells
}

/// Renders one value: numbers and booleans as JSON writes them, text
/// neutralised, anything else as JSON text.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(string) => neutralise(string),
        other => other.to_string(),
    }
}

/// Neutralises a text cell that a spreadsheet would run as a formula.
pub(crate) fn neutralise(value: &str) -> String {
    if value.starts_with(FORMULA_STARTS) { format!("'{value}") } else { value.to_owned() }
}

/// Writes rows as CSV into `output`.
///
/// # Errors
///
/// Fails only when writing to memory fails, which it does not.
pub(crate) fn write_rows(output: &mut Vec<u8>, rows: impl IntoIterator<Item = Vec<String>>) -> std::io::Result<()> {
    let mut writer = ::csv::WriterBuilder::new().terminator(::csv::Terminator::CRLF).from_writer(output);
    for row in rows {
        writer.write_record(&row)?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralise_prefixes_formula_starts() {
        let cases = [
            ("=1+1", "'=1+1"),
            ("+86 138", "'+86 138"),
            ("-3", "'-3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("＝1", "'＝1"),
            ("疼痛 = 3", "疼痛 = 3"),
            ("", ""),
            ("plain", "plain"),
        ];
        for (value, expected) in cases {
            assert_eq!(neutralise(value), expected, "{value:?}");
        }
    }

    #[test]
    fn cell_keeps_numbers_and_neutralises_text() {
        assert_eq!(cell(&serde_json::json!(-3)), "-3");
        assert_eq!(cell(&serde_json::json!(-2.5)), "-2.5");
        assert_eq!(cell(&serde_json::json!("-3")), "'-3");
        assert_eq!(cell(&serde_json::json!(false)), "false");
        assert_eq!(cell(&Value::Null), "");
    }
}
