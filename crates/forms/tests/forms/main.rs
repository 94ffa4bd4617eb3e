//! Integration tests of epro-forms, built as one test binary so the crate
//! is linked once.
//!
//! - `load_fhir`: the real FHIR fixtures and Questionnaire import errors.
//! - `load_native`: the native TOML format.
//! - `validate_native` and `validate_fhir`: one small case per rule, hint,
//!   item type and shape.
//! - `responses`: the real QuestionnaireResponse fixtures.
//! - `robustness`: odd inputs that must not panic.
//! - `trial`: trial files and the catalog.
//! - `enable_operators`, `enable_logic`, `enable_load` and
//!   `enable_fixtures`: skip logic, from each operator and answer type to
//!   the real lforms form.
//! - `rules_fhirpath`, `rules_cel`, `rules_fixtures`, `rules_trial` and
//!   `rules_robustness`: the expression engine, from each construct to the
//!   real forms and the demo trial.

mod common;
mod enable_fixtures;
mod enable_load;
mod enable_logic;
mod enable_operators;
mod load_fhir;
mod load_native;
mod responses;
mod robustness;
mod rules_cel;
mod rules_fhirpath;
mod rules_fixtures;
mod rules_robustness;
mod rules_trial;
mod trial;
mod validate_fhir;
mod validate_native;
