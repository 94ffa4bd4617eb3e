//! The catalogue of FHIR extension URLs that the Questionnaire importer
//! recognizes, and what each one means for validation.
//!
//! A URL missing from this catalogue is reported as not evaluated, never
//! dropped silently.

use crate::model::ExpressionKind;

const CORE: &str = "http://hl7.org/fhir/StructureDefinition/";
const SDC: &str = "http://hl7.org/fhir/uv/sdc/StructureDefinition/";

/// Meaning of an extension for the importer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    MinValue,
    MaxValue,
    MaxDecimalPlaces,
    Regex,
    MinOccurs,
    MaxOccurs,
    Unit,
    UnitOption,
    UnitValueSet,
    Hidden,
    /// `ordinalValue` or `itemWeight`: the score weight of an option.
    Ordinal,
    Translation,
    Expression(ExpressionKind),
    TargetConstraint,
    /// Does not change validation. The text gives the reason.
    Ignored(&'static str),
    Unknown,
}

const PRESENTATION: &str = "presentation only; does not change validation";
const EXTRACTION: &str = "used for data extraction; does not change validation";
const POPULATION: &str = "used for pre-population; does not change validation";

/// Looks up what the extension at `url` does.
pub(crate) fn role(url: &str) -> Role {
    if let Some(name) = url.strip_prefix(CORE) {
        return core_role(name);
    }
    if let Some(name) = url.strip_prefix(SDC) {
        return sdc_role(name);
    }
    Role::Unknown
}

fn core_role(name: &str) -> Role {
    match name {
        "minValue" => Role::MinValue,
        "maxValue" => Role::MaxValue,
        "maxDecimalPlaces" => Role::MaxDecimalPlaces,
        "regex" => Role::Regex,
        "questionnaire-minOccurs" => Role::MinOccurs,
        "questionnaire-maxOccurs" => Role::MaxOccurs,
        "questionnaire-unit" => Role::Unit,
        "questionnaire-unitOption" => Role::UnitOption,
        "questionnaire-unitValueSet" => Role::UnitValueSet,
        "questionnaire-hidden" => Role::Hidden,
        "ordinalValue" | "itemWeight" => Role::Ordinal,
        "translation" => Role::Translation,
        "variable" => Role::Expression(ExpressionKind::Variable),
        "targetConstraint" | "questionnaire-constraint" => Role::TargetConstraint,
        "questionnaire-itemControl"
        | "questionnaire-sliderStepValue"
        | "questionnaire-optionPrefix"
        | "questionnaire-displayCategory"
        | "questionnaire-choiceOrientation"
        | "questionnaire-supportLink"
        | "questionnaire-usageMode"
        | "questionnaire-baseType"
        | "questionnaire-fhirType"
        | "entryFormat"
        | "designNote"
        | "rendering-style"
        | "rendering-styleSensitive"
        | "rendering-xhtml"
        | "rendering-markdown" => Role::Ignored(PRESENTATION),
        _ => Role::Unknown,
    }
}

fn sdc_role(name: &str) -> Role {
    match name {
        "sdc-questionnaire-calculatedExpression" => Role::Expression(ExpressionKind::CalculatedExpression),
        "sdc-questionnaire-enableWhenExpression" => Role::Expression(ExpressionKind::EnableWhenExpression),
        "sdc-questionnaire-initialExpression" => Role::Expression(ExpressionKind::InitialExpression),
        "sdc-questionnaire-answerExpression" => Role::Expression(ExpressionKind::AnswerExpression),
        "sdc-questionnaire-candidateExpression" => Role::Expression(ExpressionKind::CandidateExpression),
        "sdc-questionnaire-contextExpression" => Role::Expression(ExpressionKind::ContextExpression),
        "sdc-questionnaire-minQuantity" => Role::MinValue,
        "sdc-questionnaire-maxQuantity" => Role::MaxValue,
        "sdc-questionnaire-shortText"
        | "sdc-questionnaire-collapsible"
        | "sdc-questionnaire-width"
        | "sdc-questionnaire-entryMode"
        | "sdc-questionnaire-openLabel"
        | "sdc-questionnaire-sliderStepValue" => Role::Ignored(PRESENTATION),
        "sdc-questionnaire-observationLinkPeriod"
        | "sdc-questionnaire-observationExtract"
        | "sdc-questionnaire-observationExtractCategory"
        | "sdc-questionnaire-itemExtractionContext"
        | "sdc-questionnaire-definitionExtract" => Role::Ignored(EXTRACTION),
        "sdc-questionnaire-launchContext"
        | "sdc-questionnaire-sourceQueries"
        | "sdc-questionnaire-itemPopulationContext"
        | "sdc-questionnaire-preferredTerminologyServer" => Role::Ignored(POPULATION),
        _ => Role::Unknown,
    }
}

/// Returns the short name used in messages: the last segment of the URL.
pub(crate) fn short_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}
