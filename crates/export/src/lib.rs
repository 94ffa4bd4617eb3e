//! Exports of a form's stored submissions for analysts, and the codebook that
//! makes them readable without the form file. Both the HTTP API and `epro
//! export` use this crate, so the two write the same bytes.
//!
//! An [`Exporter`] fixes a high-water mark when it starts, then reads the rows
//! after the caller's cursor up to that mark one page at a time and turns each
//! page into one chunk of output. Memory stays bounded by one page whatever
//! the export's size, and the mark is the cursor of the next export.
//!
//! # Formats
//!
//! - CSV ([`Format::Csv`]): one row per submission version and one column per
//!   question; the naming rule is in `layout`. Text cells that a spreadsheet
//!   would run as a formula are neutralised (`csv`).
//! - NDJSON ([`Format::Ndjson`]): one JSON object per submission version,
//!   with the normalized answers as typed JSON (`ndjson`).
//! - FHIR ([`Format::Fhir`]): one `QuestionnaireResponse` per submission
//!   version, in the style of FHIR Bulk Data (`fhir`).
//!
//! Every version of a corrected submission is its own row, with its
//! `version` and correction reason, in commit order: an incremental export
//! holds the corrections stored since its cursor.
//!
//! # Layout
//!
//! - `options`: [`Format`], [`HeaderStyle`] and [`Options`].
//! - `layout`: the columns of a form across its published versions.
//! - `csv`, `ndjson`, `fhir`: one row in each format.
//! - `codebook`: every item with its type, labels and answer codes.
//! - `exporter`: [`Exporter`], the page loop.
//!
//! # Invariants
//!
//! - No SQL and no HTTP: rows come from `epro-store`, bytes go to the caller.
//! - A value is never changed, only its cell is: neutralisation prefixes a
//!   CSV text cell and leaves NDJSON and FHIR as stored.

mod codebook;
mod csv;
mod exporter;
mod fhir;
mod layout;
mod ndjson;
mod options;

pub use codebook::{CodebookFormat, codebook};
pub use exporter::{Chunk, ExportError, Exporter, PAGE_SIZE};
pub use layout::Layout;
pub use options::{Format, HeaderStyle, LANGUAGE_NAMES, Options, parse_language};
