//! FHIR R4 support: importing a Questionnaire into the form model, reading
//! the `item` tree of a QuestionnaireResponse for validation, and writing
//! normalized answers back as such a tree for exports.

pub(crate) mod export;
mod extensions;
mod questionnaire;
pub(crate) mod response;

pub(crate) use questionnaire::{import_questionnaire, import_questionnaire_text};
