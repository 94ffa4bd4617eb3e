//! `epro forms check FILE...`: a report per form file of what epro
//! evaluates, what it keeps but does not evaluate yet, what it ignores as
//! presentation only, and every error with its location.

use std::fmt::Write as _;
use std::path::Path;

use epro_forms::{FormFormat, Notice};

use crate::catalog::describe_in_file;

/// Checks each file and prints its report to stdout. Returns whether every
/// file is valid.
pub fn run(files: &[impl AsRef<Path>]) -> bool {
    let mut all_valid = true;
    for file in files {
        let (valid, report) = check_file(file.as_ref());
        print!("{report}");
        all_valid &= valid;
    }
    all_valid
}

/// Checks one file, returning whether it is valid and its printed report.
pub fn check_file(path: &Path) -> (bool, String) {
    let mut out = String::new();
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => FormFormat::FhirJson,
        Some("toml") => FormFormat::NativeToml,
        _ => {
            let _ = writeln!(
                out,
                "{}: invalid: the file name must end in .json (FHIR Questionnaire) or .toml (native format)",
                path.display()
            );
            return (false, out);
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            let _ = writeln!(out, "{}: invalid: failed to read: {error}", path.display());
            return (false, out);
        }
    };

    let outcome = epro_forms::load_form(&text, format);
    let report = &outcome.report;
    let verdict = if report.is_valid() { "valid" } else { "invalid" };
    let _ = writeln!(out, "{}: {verdict}", path.display());
    write_section(&mut out, "supported", report.supported.iter().map(String::as_str));
    write_notices(&mut out, "not evaluated yet", &report.not_evaluated);
    write_notices(&mut out, "ignored (presentation only)", &report.ignored);
    write_notices(&mut out, "errors", &report.errors);
    (report.is_valid(), out)
}

fn write_section<'a>(out: &mut String, title: &str, lines: impl Iterator<Item = &'a str>) {
    let lines: Vec<&str> = lines.collect();
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {title} ({}):", lines.len());
    for line in lines {
        let _ = writeln!(out, "    - {line}");
    }
}

fn write_notices(out: &mut String, title: &str, notices: &[Notice]) {
    if notices.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {title} ({}):", notices.len());
    for notice in notices {
        let _ = writeln!(out, "    - {}", describe_in_file(notice));
    }
}
