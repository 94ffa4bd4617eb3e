//! The OpenAPI document against the router and against itself.
//!
//! Coverage: the routes the router serves, read from the router itself, are
//! exactly the operations the document lists, and every documented
//! operation answers through the real middleware (neither `not_found` nor
//! `method_not_allowed`). Validity: OpenAPI 3.1, every `$ref` resolves, every
//! operation has an id, a success reply and its path parameters, every
//! example fits its schema, and every error code of the source appears.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use epro_forms::Catalog;
use epro_http::{AdmissionSettings, AppState, Language, Metrics, Settings};
use epro_store::{Store, StoreConfig};
use serde_json::Value;
use tower::ServiceExt;

/// HTTP methods as the document and axum's `MethodRouter` name them.
const METHODS: &[&str] = &["get", "head", "delete", "options", "patch", "post", "put", "trace"];

/// Builds the real application on a fresh SQLite file with an empty
/// catalogue. The directory must outlive the store.
async fn app() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path().join("epro.db"))).await.unwrap();
    let settings = Settings {
        default_language: Language::En,
        max_body_bytes: 1024 * 1024,
        max_json_depth: 64,
        clock_skew_seconds: 300,
        operator_token: None,
        admission: AdmissionSettings::default(),
    };
    let state = AppState::new(Arc::new(Catalog::new(Vec::new()).unwrap()), store, settings, Metrics::new());
    (epro_http::router(state), dir)
}

fn document() -> Value {
    serde_json::to_value(epro_http::openapi()).unwrap()
}

/// Lists `(method, path)` of every operation in the document.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                operations.insert(((*method).to_owned(), path.clone()));
            }
        }
    }
    operations
}

/// Lists `(method, path)` of every route `router` serves, read from its
/// `Debug` output. axum 0.8 prints its path router first: each route id with
/// its path template, and each route id with its `MethodRouter`, whose unset
/// methods print `None`. The fallback router follows, with route ids of its
/// own. HEAD is left out, because axum serves it on every GET route.
fn served_routes(router: &Router) -> BTreeSet<(String, String)> {
    let whole = format!("{router:?}");
    let debug = whole.split(", fallback_router: ").next().unwrap();
    assert!(debug.len() < whole.len(), "the Debug output of axum's Router changed: {whole}");
    let path_pattern = regex::Regex::new(r#"RouteId\((\d+)\): "([^"]*)""#).unwrap();
    let endpoint_pattern = regex::Regex::new(r"RouteId\((\d+)\): MethodRouter\(MethodRouter \{([^}]*)\}").unwrap();
    let method_pattern = regex::Regex::new(r"(\w+): (\w+)").unwrap();

    let paths: BTreeMap<&str, &str> = path_pattern
        .captures_iter(debug)
        .map(|captures| (captures.get(1).unwrap().as_str(), captures.get(2).unwrap().as_str()))
        .collect();
    let mut routes = BTreeSet::new();
    for captures in endpoint_pattern.captures_iter(debug) {
        let path = paths[captures.get(1).unwrap().as_str()];
        for method in method_pattern.captures_iter(captures.get(2).unwrap().as_str()) {
            let (name, endpoint) = (&method[1], &method[2]);
            if name != "head" && METHODS.contains(&name) && endpoint != "None" {
                routes.insert((name.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn router_serves_exactly_documented_operations() {
    let (router, _dir) = app().await;

    let served = served_routes(&router);
    let documented = documented_operations(&document());

    assert!(served.contains(&("get".to_owned(), "/healthz".to_owned())), "the extraction found no routes: {served:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation (register them with routes! in epro_http::router): {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented operations the router does not serve: {unserved:?}");
}

/// The coverage check itself: a route added beside the documented ones is
/// seen.
#[tokio::test]
async fn served_routes_sees_undocumented_route() {
    let (router, _dir) = app().await;
    let router = router.route("/v1/undocumented/{id}", axum::routing::delete(|| async { "gone" }));

    let served = served_routes(&router);

    assert!(served.contains(&("delete".to_owned(), "/v1/undocumented/{id}".to_owned())), "{served:?}");
    assert!(!documented_operations(&document()).contains(&("delete".to_owned(), "/v1/undocumented/{id}".to_owned())));
}

#[tokio::test]
async fn documented_operations_are_routed() {
    let (router, _dir) = app().await;

    let parameter = regex::Regex::new(r"\{[^}]+\}").unwrap();
    for (method, path) in documented_operations(&document()) {
        let uri = parameter.replace_all(&path, "x").into_owned();
        let mut request =
            Request::builder().method(method.to_uppercase().as_str()).uri(&uri).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));

        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let code =
            serde_json::from_slice::<Value>(&body).ok().and_then(|body| body["code"].as_str().map(str::to_owned));

        assert_ne!(status.as_u16(), 405, "{method} {uri} is documented but not routed");
        assert_ne!(code.as_deref(), Some("not_found"), "{method} {uri} is documented but not routed");
    }
}

#[tokio::test]
async fn openapi_json_serves_the_document() {
    let (router, _dir) = app().await;
    let mut request = Request::builder().method(Method::GET).uri("/openapi.json").body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));

    let response = router.oneshot(request).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, document());
}

#[test]
fn document_is_openapi_3_1() {
    let document = document();

    assert!(document["openapi"].as_str().is_some_and(|version| version.starts_with("3.1.")), "{}", document["openapi"]);
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(document.clone())
        .unwrap_or_else(|error| panic!("the document does not parse back: {error}"));
    assert_eq!(serde_json::to_value(parsed).unwrap(), document, "the document changes when read back");
}

#[test]
fn document_references_resolve() {
    let document = document();
    let mut references = Vec::new();
    collect_references(&document, &mut references);

    assert!(references.len() > 20, "found only {} references", references.len());
    for reference in references {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("external reference {reference}"));
        assert!(document.pointer(pointer).is_some(), "{reference} does not resolve");
    }
}

fn collect_references(value: &Value, references: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                references.push(reference.clone());
            }
            map.values().for_each(|value| collect_references(value, references));
        }
        Value::Array(values) => values.iter().for_each(|value| collect_references(value, references)),
        _ => {}
    }
}

#[test]
fn operations_are_complete() {
    let document = document();
    let tags: BTreeSet<&str> =
        document["tags"].as_array().unwrap().iter().map(|tag| tag["name"].as_str().unwrap()).collect();
    let mut operation_ids = BTreeSet::new();
    let parameter = regex::Regex::new(r"\{([^}]+)\}").unwrap();

    for (method, path) in documented_operations(&document) {
        let operation = &document["paths"][&path][&method];
        let name = format!("{method} {path}");

        let id = operation["operationId"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "{name} has no operationId");
        assert!(operation_ids.insert(id.to_owned()), "{name} repeats the operationId {id}");
        let responses = operation["responses"].as_object().unwrap_or_else(|| panic!("{name} has no responses"));
        assert!(responses.keys().any(|status| status.starts_with('2')), "{name} has no success reply");
        assert!(responses.contains_key("500"), "{name} does not list internal_error");
        for tag in operation["tags"].as_array().unwrap_or_else(|| panic!("{name} has no tag")) {
            assert!(tags.contains(tag.as_str().unwrap()), "{name} has the undeclared tag {tag}");
        }

        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|parameter| parameter["in"] == "path")
            .map(|parameter| parameter["name"].as_str().unwrap())
            .collect();
        let in_template: BTreeSet<&str> = parameter.captures_iter(&path).map(|c| c.get(1).unwrap().as_str()).collect();
        assert_eq!(declared, in_template, "{name}: path parameters");
        let headers: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|parameter| parameter["in"] == "header")
            .map(|parameter| parameter["name"].as_str().unwrap())
            .collect();
        assert!(headers.contains(&"Accept-Language"), "{name} lacks Accept-Language");
        assert!(headers.contains(&"x-request-id"), "{name} lacks x-request-id");
    }
}

#[test]
fn retry_replies_document_retry_after() {
    let document = document();
    for (method, path) in documented_operations(&document) {
        for status in ["429", "503"] {
            let response = &document["paths"][&path][&method]["responses"][status];
            if !response.is_null() {
                assert!(response["headers"]["Retry-After"].is_object(), "{method} {path} {status} lacks Retry-After");
            }
        }
    }
}

#[test]
fn operator_operations_need_token() {
    let document = document();
    let operator_paths = [
        "/v1/submissions/{submission_id}",
        "/v1/trials/{trial_id}/queries",
        "/v1/queries/{query_id}/status",
        "/v1/audit",
        "/v1/trials/{trial_id}/forms/{form_id}/export",
        "/v1/trials/{trial_id}/alerts",
        "/v1/alerts/{alert_id}/acknowledge",
        "/v1/trials/{trial_id}/forms/{form_id}/codebook",
        "/v1/trials",
        "/v1/trials/{trial_id}",
        "/v1/trials/{trial_id}/sites",
        "/v1/trials/{trial_id}/forms",
        "/v1/trials/{trial_id}/forms/{form_id}/versions/{version}/retire",
    ];

    for (method, path) in documented_operations(&document) {
        let operation = &document["paths"][&path][&method];
        let needs_token = operator_paths.contains(&path.as_str()) || path.starts_with("/v1/outbox/");
        let security = operation["security"].as_array();
        if needs_token {
            let names: Vec<&str> = security
                .into_iter()
                .flatten()
                .flat_map(|s| s.as_object().unwrap().keys())
                .map(String::as_str)
                .collect();
            assert_eq!(names, ["operatorToken"], "{method} {path}");
            assert!(operation["responses"]["401"].is_object(), "{method} {path} lacks 401");
        } else {
            assert!(security.is_none(), "{method} {path} should need no token");
        }
    }
    assert_eq!(document["components"]["securitySchemes"]["operatorToken"]["scheme"], "bearer");
}

/// Compiles the schema at `schema` (usually a `$ref`) with the document's
/// components, as JSON Schema 2020-12, the dialect of OpenAPI 3.1.
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.as_object().cloned().unwrap_or_default();
    root.insert("components".to_owned(), document["components"].clone());
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&Value::Object(root))
        .unwrap_or_else(|error| panic!("schema {schema} does not compile: {error}"))
}

#[test]
fn examples_match_their_schemas() {
    let document = document();
    let mut checked = 0;

    for (method, path) in documented_operations(&document) {
        let operation = &document["paths"][&path][&method];
        let mut contents: Vec<(String, &Value)> = Vec::new();
        if let Some(content) = operation["requestBody"]["content"].as_object() {
            contents.extend(content.iter().map(|(media, content)| (format!("request {media}"), content)));
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            if let Some(content) = response["content"].as_object() {
                contents.extend(content.iter().map(|(media, content)| (format!("{status} {media}"), content)));
            }
        }

        for (place, content) in contents {
            let mut examples: Vec<(String, &Value)> = Vec::new();
            if let Some(example) = content.get("example") {
                examples.push(("example".to_owned(), example));
            }
            for (name, example) in content["examples"].as_object().into_iter().flatten() {
                examples.push((name.clone(), &example["value"]));
            }
            if examples.is_empty() || content["schema"].is_null() {
                continue;
            }
            let validator = validator(&document, &content["schema"]);
            for (name, example) in examples {
                let errors: Vec<String> = validator.iter_errors(example).map(|error| error.to_string()).collect();
                assert!(errors.is_empty(), "{method} {path} {place} example {name}: {errors:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} examples checked");
}

/// Reads the codes a `code()` function returns from its source: every
/// `=> "code"` between its signature and the function's closing brace.
fn codes_in_source(file: &str, signature: &str) -> BTreeSet<String> {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let start = source.find(signature).unwrap_or_else(|| panic!("{signature} not found in {file}"));
    let body = &source[start..];
    let end = body.find("\n    }\n").unwrap();
    let codes: BTreeSet<String> = regex::Regex::new(r#"=> "([a-z_]+)""#)
        .unwrap()
        .captures_iter(&body[..end])
        .map(|captures| captures[1].to_owned())
        .collect();
    assert!(codes.len() > 5, "read only {codes:?} from {file}");
    codes
}

#[test]
fn document_lists_every_error_code() {
    let document = document();
    let mut example_codes = BTreeSet::new();
    collect_example_codes(&document, &mut example_codes);

    let request_codes = codes_in_source("src/error.rs", "/// Returns the stable code of this error; part of the API");
    for code in &request_codes {
        assert!(example_codes.contains(code), "no example reply has the code {code}");
    }
    let envelope_codes =
        codes_in_source("src/error.rs", "/// Returns the stable code of this problem; part of the API.");
    let answer_codes = codes_in_source("../forms/src/validate/mod.rs", "pub fn code(&self) -> &'static str {");
    let description = document["info"]["description"].as_str().unwrap();
    for code in envelope_codes.iter().chain(&answer_codes) {
        assert!(description.contains(&format!("| `{code}` |")), "the field code table lacks {code}");
    }
}

fn collect_example_codes(value: &Value, codes: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(code)), Some(Value::String(_))) = (map.get("code"), map.get("message")) {
                codes.insert(code.clone());
            }
            map.values().for_each(|value| collect_example_codes(value, codes));
        }
        Value::Array(values) => values.iter().for_each(|value| collect_example_codes(value, codes)),
        _ => {}
    }
}

#[test]
fn error_examples_exist_in_both_languages() {
    let document = document();
    for (method, path) in documented_operations(&document) {
        for (status, response) in document["paths"][&path][&method]["responses"].as_object().unwrap() {
            if !status.starts_with(['4', '5']) {
                continue;
            }
            let examples = response["content"]["application/json"]["examples"].as_object().unwrap();
            let english = examples.keys().filter(|name| name.ends_with(".en")).count();
            let chinese = examples.keys().filter(|name| name.ends_with(".zh-CN")).count();
            assert!(english > 0, "{method} {path} {status} has no English example");
            assert_eq!(english, chinese, "{method} {path} {status}: one Chinese example per English one");
        }
    }
}
