//! Validation of submitted answers against a form, and their normalized
//! form for storage.
//!
//! Two entry points read the two submission shapes: [`check_native`] takes
//! a JSON object keyed by linkId, and [`check_fhir_items`] takes the `item`
//! array of a FHIR QuestionnaireResponse. Both are turned into the same
//! input tree (see `input`), checked by the same rules (`walk` and
//! `value`), and normalized into the same shape. Every finding is reported,
//! and nothing stops at the first.
//!
//! Skip logic (`enableWhen`) is evaluated on every submission, and the
//! server's result is the one that counts (see `enable` for the rules). A
//! disabled item is not required and its constraints do not apply. An
//! answer sent for it is rejected with `answered_while_disabled`, so it is
//! never stored silently and never counted in a score or alert, and it is
//! left out of the normalized answers. An enabled item with `enableWhen` is
//! checked for `required` like any other item.
//!
//! An `enableWhenExpression` is evaluated by the rule engine (`rules`) and
//! enables or disables its item in the same way. An item whose expression
//! has no result is exempt from `required`, and so are calculated items and
//! hidden items, because the patient cannot see the last.

pub(crate) mod input;
pub(crate) mod value;
mod walk;

use serde_json::Value;

use crate::fhir::response;
use crate::model::Form;
use crate::trial::Localized;

/// The result of checking one submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The answers in one shape for both sources: an object keyed by
    /// linkId, holding only answered items. Repeating items and repeating
    /// groups are arrays, groups are objects, a Coding option is the full
    /// `{system, code, display}` taken from the form, and a quantity is
    /// `{value, unit, system, code}`. Fields without a value are left out,
    /// and so are values with findings.
    pub normalized: Value,
    /// Every problem found, each with its severity: any `Reject` finding
    /// rejects the submission, `Query` findings are stored as data queries.
    pub findings: Vec<Finding>,
    /// Scores computed on the server, in form order.
    pub scores: Vec<Score>,
    /// Alert rules that fired.
    pub alerts: Vec<Alert>,
}

/// One problem with one place in a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// linkId of the item concerned, or "" for the submission as a whole.
    pub link_id: String,
    /// RFC 6901 JSON Pointer to the offending value in the submitted JSON.
    /// For an item that was not sent, it points where the item belongs:
    /// the key it would have (native) or the `item` array it would be in
    /// (FHIR).
    pub pointer: String,
    pub problem: Problem,
}

/// Problem found, with the parameters a message needs. Each variant has one
/// stable code (see [`Problem::code`]) that the HTTP layer maps to text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required item has no answer. Disabled items, items whose
    /// `enableWhenExpression` has no result, calculated items and hidden
    /// items are never reported as required.
    Required,
    /// The submission names a linkId that the form does not have at this
    /// place.
    UnknownItem,
    /// The value has the wrong JSON type or format for the item.
    WrongType { expected: Expected, hint: Option<Hint> },
    /// The value is outside the item's range. Bounds are written as in the
    /// form.
    OutOfRange { min: Option<String>, max: Option<String> },
    /// The value is not one of the item's options.
    NotAnOption { allowed: Vec<String> },
    /// The text is longer than `max_length` Unicode scalar values.
    TooLong { max_length: usize, length: usize },
    /// The text does not match the item's regex as a whole.
    PatternMismatch { pattern: String },
    /// The number has more digits after the point than allowed.
    TooManyDecimals { max_decimal_places: u32 },
    /// Fewer answers or group occurrences than `min_occurs`.
    TooFewRepeats { min: u32, count: u32 },
    /// More answers or group occurrences than allowed. `max` is 1 for an
    /// item that does not repeat.
    TooManyRepeats { max: u32, count: u32 },
    /// A value was sent for a display item, or answers for a group.
    NotAnswerable,
    /// The quantity's unit is not one the item allows.
    UnitNotAllowed { allowed: Vec<String> },
    /// An answer was sent for an item whose skip logic disables it. It is
    /// rejected rather than dropped, so nothing is stored that the patient
    /// was never asked. Each answer sent for a disabled item, or anywhere
    /// inside a disabled group, gets one finding at its own pointer.
    AnsweredWhileDisabled,
    /// A rule of the form (a native `rules` entry or a FHIR
    /// `targetConstraint`) is not met. Its severity decides whether the
    /// submission is rejected or stored with a data query.
    RuleViolated { rule: String, severity: Severity, message: Localized },
    /// A score the client sent differs from the score the server computed.
    /// The submission is stored with the client's value kept as sent and a
    /// data query raised; the computed value is the one that counts.
    ScoreMismatch { score: String, computed: String, sent: String },
}

/// The effect of a finding on its submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The submission is rejected (HTTP 422) and nothing is stored.
    Reject,
    /// The submission is stored and a data query is raised on the item,
    /// the way EDC systems raise discrepancy notes.
    Query,
}

/// A score computed on the server for one submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The computed item's linkId, or the score id declared in the trial file.
    pub name: String,
    /// The computed value, or `None` when the expression has no value for
    /// these answers (for example, no item answered).
    pub value: Option<rust_decimal::Decimal>,
    /// The value the client sent for a computed item, kept as sent.
    pub sent: Option<Value>,
}

/// An alert rule that fired for one submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The alert rule's id from the trial file.
    pub rule: String,
    /// The rule's severity label, such as `high`.
    pub severity: String,
    /// Text for site staff.
    pub message: Localized,
    /// The items (or score names) the rule looks at.
    pub items: Vec<String>,
}

/// The kind of value an item expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Boolean,
    Integer,
    Decimal,
    String,
    Date,
    DateTime,
    Time,
    Option,
    Quantity,
    Group,
    /// An array of answers.
    Answers,
}

/// Likely cause of a `wrong_type` finding, which lets the message tell how
/// to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A number sent as a JSON string, such as `"5"`.
    QuotedNumber,
    /// A number written with a decimal comma, such as `"72,5"`.
    DecimalComma,
    /// A number with a fraction sent for an integer item.
    FractionalInteger,
    /// A date not in the form `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, or not a
    /// real calendar date.
    DateFormat,
    /// A date-time that does not follow the FHIR `dateTime` grammar.
    DateTimeFormat,
    /// A date-time with a time of day but no UTC offset.
    MissingOffset,
    /// A time not in the form `hh:mm:ss`.
    TimeFormat,
    /// A bare number or string sent for a quantity item, which needs an
    /// object with a value.
    QuantityObject,
    /// A FHIR answer used the wrong `value[x]` element.
    FhirValueType { expected: &'static str, found: String },
}

/// Checks answers sent as a JSON object keyed by linkId.
///
/// `pointer_base` is the JSON Pointer of `answers` in the request body,
/// such as `/answers`, and prefixes every finding's pointer.
pub fn check_native(form: &Form, answers: &Value, pointer_base: &str) -> Checked {
    let mut findings = Vec::new();
    let occurrence = input::read_native(form, answers, pointer_base, &mut findings);
    let normalized = walk::check_occurrence(form, &occurrence, &mut findings);
    let mut checked =
        Checked { normalized: Value::Object(normalized.answers), findings, scores: Vec::new(), alerts: Vec::new() };
    crate::rules::evaluate(form, &mut checked, pointer_base);
    checked
}

/// Checks the `item` array of a FHIR QuestionnaireResponse. Pass
/// `Value::Null` when the response has no `item`.
///
/// `pointer_base` is the JSON Pointer of the array in the request body,
/// such as `/item`, and prefixes every finding's pointer.
pub fn check_fhir_items(form: &Form, items: &Value, pointer_base: &str) -> Checked {
    let mut findings = Vec::new();
    let occurrence = response::read_items(form, items, pointer_base, &mut findings);
    let normalized = walk::check_occurrence(form, &occurrence, &mut findings);
    let mut checked =
        Checked { normalized: Value::Object(normalized.answers), findings, scores: Vec::new(), alerts: Vec::new() };
    crate::rules::evaluate(form, &mut checked, pointer_base);
    checked
}

impl Problem {
    /// Returns the stable code of the problem, used as the error code in
    /// API responses and as the key of its message templates.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Required => "required",
            Problem::UnknownItem => "unknown_item",
            Problem::WrongType { .. } => "wrong_type",
            Problem::OutOfRange { .. } => "out_of_range",
            Problem::NotAnOption { .. } => "not_an_option",
            Problem::TooLong { .. } => "too_long",
            Problem::PatternMismatch { .. } => "pattern_mismatch",
            Problem::TooManyDecimals { .. } => "too_many_decimals",
            Problem::TooFewRepeats { .. } => "too_few_repeats",
            Problem::TooManyRepeats { .. } => "too_many_repeats",
            Problem::NotAnswerable => "not_answerable",
            Problem::UnitNotAllowed { .. } => "unit_not_allowed",
            Problem::AnsweredWhileDisabled => "answered_while_disabled",
            Problem::RuleViolated { .. } => "rule_violated",
            Problem::ScoreMismatch { .. } => "score_mismatch",
        }
    }

    /// Returns whether this finding rejects the submission or raises a
    /// data query on a stored one.
    pub fn severity(&self) -> Severity {
        match self {
            Problem::RuleViolated { severity, .. } => *severity,
            Problem::ScoreMismatch { .. } => Severity::Query,
            _ => Severity::Reject,
        }
    }
}

impl Expected {
    /// Returns the stable snake_case name of the expected kind, such as
    /// `integer` or `date_time`.
    pub fn as_str(self) -> &'static str {
        match self {
            Expected::Boolean => "boolean",
            Expected::Integer => "integer",
            Expected::Decimal => "decimal",
            Expected::String => "string",
            Expected::Date => "date",
            Expected::DateTime => "date_time",
            Expected::Time => "time",
            Expected::Option => "option",
            Expected::Quantity => "quantity",
            Expected::Group => "group",
            Expected::Answers => "answers",
        }
    }
}

impl Hint {
    /// Returns the stable name of the hint, such as `quoted_number`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Hint::QuotedNumber => "quoted_number",
            Hint::DecimalComma => "decimal_comma",
            Hint::FractionalInteger => "fractional_integer",
            Hint::DateFormat => "date_format",
            Hint::DateTimeFormat => "date_time_format",
            Hint::MissingOffset => "missing_offset",
            Hint::TimeFormat => "time_format",
            Hint::QuantityObject => "quantity_object",
            Hint::FhirValueType { .. } => "fhir_value_type",
        }
    }
}

/// Escapes a linkId for use as one JSON Pointer segment (RFC 6901): `~`
/// becomes `~0` and `/` becomes `~1`.
pub fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}
