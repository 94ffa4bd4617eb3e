//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! The document is generated from the code. Each handler carries a
//! `#[utoipa::path]` attribute with its path, parameters and replies, and
//! the reply types derive `ToSchema`. [`crate::router`] registers every
//! handler through `utoipa_axum`'s `routes!`, which takes the path from that
//! attribute, so the router and the document are built from one list.
//!
//! This module adds what all operations share: the `Accept-Language`,
//! `x-request-id` and `Content-Encoding` headers, the `Content-Language` and
//! `x-request-id` reply headers, the bearer token's security scheme, and
//! the tables of every error code. `errors` builds the error replies of
//! each operation with example bodies rendered by the same code as real
//! replies. `shapes` describes the request shapes, which the envelope
//! parsers read field by field rather than through serde.

pub(crate) mod errors;
pub(crate) mod shapes;

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HeaderBuilder, OpenApi as Document, RefOr, Required};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::error::ErrorShape;

/// Name of the security scheme of epro's staff and patient tokens.
pub(crate) const BEARER_TOKEN: &str = "bearerToken";

/// The parts of the document that no handler owns: metadata, tags, the
/// request shapes and the security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "epro",
        description = "Collects electronic patient-reported outcomes (ePRO) for clinical trials: \
            a patient's app submits a questionnaire, epro validates every answer against the \
            trial's form and stores it durably, or rejects it with every finding listed.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "submissions", description = "Submitting answers and reading stored submissions."),
        (name = "corrections", description = "Corrections of stored submissions as new versions, and \
            investigators' signatures."),
        (name = "seed", description = "The endpoint of the system epro replaces, kept so existing apps work unchanged."),
        (name = "data queries", description = "Questions raised on stored submissions, for site staff."),
        (name = "alerts", description = "Alerts raised by the trial's rules, for site staff to acknowledge."),
        (name = "outbox", description = "Events the sink refused, for operators."),
        (name = "audit", description = "The audit trail with its hash chain, for reviewers."),
        (name = "exports", description = "Streamed exports of submissions and codebooks, for analysts."),
        (name = "access", description = "Staff accounts, patient enrolment and their tokens."),
        (name = "trials", description = "Trials, their sites, and publishing and retiring form versions, for operators."),
        (name = "operations", description = "Probes, metrics and this document."),
    ),
    components(schemas(
        crate::error::StandardBody,
        crate::error::SeedBody,
        crate::error::FieldErrorBody,
        shapes::NativeSubmission,
        shapes::FhirQuestionnaireResponse,
        shapes::SeedSubmission,
        shapes::QueryStatusChange,
        shapes::Score,
        shapes::AuditPage,
    )),
    modifiers(&SecuritySchemes)
)]
pub(crate) struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A staff token (`epro_s_...`, from `epro staff create` or `POST /v1/staff`) or a patient \
                 token (`epro_p_...`, from enrolment). Each operation names the permission it needs; the \
                 README's role table says which role holds it. A missing, expired or revoked token is 401, \
                 a valid token without the permission 403.",
            ))
            .build();
        components.add_security_scheme(BEARER_TOKEN, SecurityScheme::Http(scheme));
    }
}

/// Adds what every operation shares to the document that `routes!` built.
pub(crate) fn complete(document: &mut Document) {
    let description = document.info.description.take().unwrap_or_default();
    document.info.description = Some(format!("{description}\n\n{}", errors::tables()));

    let components = document.components.get_or_insert_with(Default::default);
    for (name, response) in errors::unrouted_responses() {
        components.responses.insert(name, response);
    }

    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            add_shared_headers(operation);
        }
    }
}

fn add_shared_headers(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    parameters.push(header_parameter(
        "Accept-Language",
        "The language of every message in the reply: `zh-CN` (any `zh` tag) or `en`, by the \
         highest quality value. Anything else gets the server's configured default language.",
        string_schema(),
        "zh-CN, en;q=0.8",
    ));
    parameters.push(header_parameter(
        "x-request-id",
        "An id for this request, echoed in the reply and in the server's log line. Without it \
         the server assigns a UUID.",
        string_schema(),
        "7d2f4d0e-2a8c-4c53-9a43-3f4f0c9d5a10",
    ));
    if operation.request_body.is_some() {
        let encodings = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["gzip", "identity"])).build();
        parameters.push(header_parameter(
            "Content-Encoding",
            "`gzip` to send the body compressed. The body limit counts decompressed bytes; other \
             encodings get 415 `unsupported_content_encoding`, corrupt gzip 400 \
             `invalid_compressed_body`.",
            encodings,
            "gzip",
        ));
    }

    for response in operation.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        response.headers.insert(
            "x-request-id".to_owned(),
            HeaderBuilder::new()
                .schema(string_schema())
                .description(Some("The request's id: the one sent, or a UUID the server assigned."))
                .build(),
        );
        response.headers.insert(
            "Content-Language".to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["zh-CN", "en"])).build())
                .description(Some("The language of the messages in the body."))
                .build(),
        );
    }
}

fn header_parameter(name: &str, description: &str, schema: Object, example: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .example(Some(serde_json::Value::String(example.to_owned())))
        .build()
}

fn string_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).build()
}

/// Builds a schema that allows any JSON value. It lists every type, because
/// utoipa 5.5 cannot read back a schema without `type`, and the tests read
/// the document back.
pub(crate) fn any_json_value() -> Object {
    let types = [Type::String, Type::Number, Type::Boolean, Type::Object, Type::Array, Type::Null];
    ObjectBuilder::new().schema_type(SchemaType::from_iter(types)).build()
}

/// Builds a string schema that allows only `values`, for reply fields that
/// are `&'static str` in Rust.
pub(crate) fn string_enum(values: &[&str]) -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())).build()
}

/// The document as JSON, built once on first use.
static DOCUMENT: LazyLock<Vec<u8>> =
    LazyLock::new(|| serde_json::to_vec(&crate::openapi()).expect("serializing the OpenAPI document cannot fail"));

/// The errors of `GET /openapi.json`.
pub(crate) struct DocumentErrors;

impl IntoResponses for DocumentErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        errors::responses(ErrorShape::Standard, errors::Layers::Limited, Vec::new())
    }
}

/// Returns this OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server, which you are reading.",
            content_type = "application/json", body = Object),
        DocumentErrors,
    )
)]
pub(crate) async fn serve() -> Response {
    let mut response = DOCUMENT.as_slice().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
