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

mod common;
mod load_fhir;
mod load_native;
mod responses;
mod robustness;
mod trial;
mod validate_fhir;
mod validate_native;
