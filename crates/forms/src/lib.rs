//! epro-forms: the form model, import of FHIR R4 Questionnaires and of the
//! native TOML format, validation of submitted answers, and the catalog of
//! trials and their published forms.
//!
//! The crate does no IO and has no async code: callers read files and pass
//! their text in. Library errors carry stable codes and structured
//! parameters, and the HTTP layer turns them into Chinese or English text.
//!
//! # Layout
//!
//! - `model`: the compiled form, shared by both importers.
//! - `primitive`: FHIR date, dateTime, time and decimal values.
//! - `load`: [`load_form`] and its [`LoadReport`], plus checks shared by the
//!   importers.
//! - `fhir`: Questionnaire import, QuestionnaireResponse item reading, and
//!   [`fhir_response_items`], which writes normalized answers as such items.
//! - `native`: the TOML form format (documented in `NATIVE_FORMAT.md`).
//! - `validate`: [`check_native`] and [`check_fhir_items`], which return
//!   every [`Finding`] and the normalized answers.
//! - `rules`: the expression engine. It compiles FHIRPath (a documented
//!   subset, translated) and CEL expressions when a form loads, and
//!   computes scores, checks rules and fires alerts on each submission
//!   (documented in `EXPRESSIONS.md`).
//! - `trial`: trial files, their scores and alerts, and the [`Catalog`] of
//!   published forms.
//!
//! # Invariants
//!
//! - Loading and checking do not panic on any input, which the robustness
//!   tests exercise, and report every problem instead of the first. A
//!   syntax error in a form file is the exception, because nothing after
//!   it can be read.
//! - An expression that epro cannot evaluate exactly is a load error, never
//!   evaluated approximately. Kinds of expressions outside the engine
//!   (such as `initialExpression`) are reported as not evaluated.

mod enable;
mod enable_check;
mod fhir;
pub mod load;
pub mod model;
mod native;
pub mod primitive;
mod rules;
pub mod trial;
pub mod validate;

pub use fhir::export::response_items as fhir_response_items;
pub use load::{FormFormat, LoadOutcome, LoadReport, Notice, load_fhir_value, load_form};
pub use model::{
    AnswerOption, Bound, Constraints, EnableBehavior, EnableWhen, EnableWhenOperator, Expression, ExpressionKind, Form,
    Item, ItemType, Language, OptionValue, Pattern, RuleDefinition, Unit,
};
pub use trial::{
    AlertPolicy, Catalog, Localized, LookupError, PublishedForm, RuleTranslation, Trial, TrialAlert, TrialFile,
    TrialFormEntry, TrialScore, TrialSite, attach_trial_rules, parse_trial_file,
};
pub use validate::{Alert, Checked, Expected, Finding, Hint, Problem, Score, Severity, check_fhir_items, check_native};
