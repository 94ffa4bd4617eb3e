//! The choices of one export, shared by the HTTP query parameters and the
//! command line.

use std::fmt;
use std::str::FromStr;

use epro_forms::Language;
use epro_store::ExportCursor;

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/csv`, one row per submission version.
    Csv,
    /// `application/x-ndjson`, one submission per line.
    Ndjson,
    /// `application/fhir+ndjson`, one `QuestionnaireResponse` per line.
    Fhir,
}

impl Format {
    /// The names accepted by [`FromStr`], for messages.
    pub const NAMES: &'static [&'static str] = &["csv", "ndjson", "fhir"];

    /// Returns the media type of the output.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::Fhir => "application/fhir+ndjson",
        }
    }

    /// Returns the file name extension of the output.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Fhir => "fhir.ndjson",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Fhir => "fhir",
        })
    }
}

impl FromStr for Format {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            "fhir" => Ok(Format::Fhir),
            _ => Err(()),
        }
    }
}

/// What the CSV header row names the item columns by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderStyle {
    /// The item's linkId: stable across languages and form versions.
    LinkId,
    /// The item's text in [`Options::label_language`], falling back to the
    /// other language. Labels need not be unique.
    Label,
}

impl HeaderStyle {
    /// The names accepted by [`FromStr`], for messages.
    pub const NAMES: &'static [&'static str] = &["linkId", "label"];
}

impl FromStr for HeaderStyle {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "linkId" => Ok(HeaderStyle::LinkId),
            "label" => Ok(HeaderStyle::Label),
            _ => Err(()),
        }
    }
}

/// The names of the label languages, as the `labelLanguage` option takes them.
pub const LANGUAGE_NAMES: &[&str] = &["en", "zh-CN"];

/// Parses a label language name: `en` or `zh-CN`.
pub fn parse_language(name: &str) -> Option<Language> {
    match name {
        "en" => Some(Language::En),
        "zh-CN" => Some(Language::ZhCn),
        _ => None,
    }
}

/// Everything that decides what an export writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    /// The cursor of an earlier export: only rows it does not cover are
    /// written. `None` writes every row.
    pub since: Option<ExportCursor>,
    /// CSV only: the header names.
    pub header: HeaderStyle,
    /// CSV only: the language of label headers.
    pub label_language: Language,
    /// CSV only: start with the UTF-8 byte-order mark, which Excel needs to
    /// read the file as UTF-8 rather than the system's code page.
    pub bom: bool,
}

impl Options {
    /// Options of a plain export in `format`: every row, linkId headers, no
    /// byte-order mark.
    pub fn new(format: Format) -> Options {
        Options { format, since: None, header: HeaderStyle::LinkId, label_language: Language::En, bom: false }
    }
}
