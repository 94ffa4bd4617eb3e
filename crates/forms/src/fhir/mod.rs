//! FHIR R4 support: importing a Questionnaire into the form model, and
//! reading the `item` tree of a QuestionnaireResponse for validation.

mod extensions;
mod questionnaire;
pub(crate) mod response;

pub(crate) use questionnaire::{import_questionnaire, import_questionnaire_text};
