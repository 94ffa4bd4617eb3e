//! `GET /openapi.json` against the running server: the document's request
//! examples are accepted as documented, and real replies, errors included,
//! fit the document's schemas and match its example messages.

use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, Reply, TestApp, spawn_app};

const SUBMIT: &str = "/v1/trials/{trial_id}/forms/{form_id}/submissions";

async fn fetch_document(app: &TestApp) -> Value {
    let reply = app.get("/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

/// Returns the request example of `path`'s POST for `media_type`.
fn request_example(document: &Value, path: &str, media_type: &str) -> Value {
    let example = &document["paths"][path]["post"]["requestBody"]["content"][media_type]["example"];
    assert!(example.is_object(), "no {media_type} example for {path}");
    example.clone()
}

/// Checks `reply` against the schema the document gives for its status, and
/// returns its body.
fn check_reply(document: &Value, path: &str, method: &str, reply: &Reply) -> Value {
    let response = &document["paths"][path][method]["responses"][reply.status.to_string()];
    assert!(response.is_object(), "{method} {path} does not document status {}: {}", reply.status, reply.text);
    let schema = &response["content"]["application/json"]["schema"];
    let mut root =
        schema.as_object().cloned().unwrap_or_else(|| panic!("{method} {path} {} has no schema", reply.status));
    root.insert("components".to_owned(), document["components"].clone());
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&Value::Object(root))
        .expect("the document's schemas compile");

    let body = reply.json();
    let errors: Vec<String> = validator.iter_errors(&body).map(|error| error.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path} {}: {errors:?} in {body}", reply.status);
    body
}

/// Returns the example reply `name` of `path`'s POST at `status`.
fn error_example(document: &Value, path: &str, status: u16, name: &str) -> Value {
    let examples =
        &document["paths"][path]["post"]["responses"][status.to_string()]["content"]["application/json"]["examples"];
    let example = examples[name]["value"].clone();
    assert!(example.is_object(), "no example {name} at {status}");
    example
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("requestId");
    body
}

#[tokio::test]
async fn openapi_request_examples_are_accepted() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    let native = serde_json::to_vec(&request_example(&document, SUBMIT, "application/json")).unwrap();
    let fhir = serde_json::to_vec(&request_example(&document, SUBMIT, "application/fhir+json")).unwrap();
    let seed = request_example(&document, "/api/collection/submit", "application/json");
    let path = "/v1/trials/demo/forms/phq9/submissions";

    let created = app.post(path, Some("application/json"), native.clone(), &[]).await;
    let replayed = app.post(path, Some("application/json"), native, &[]).await;
    let from_fhir = app.post(path, Some("application/fhir+json"), fhir, &[]).await;
    let from_seed = app.submit_seed(&seed, &[]).await;

    assert_eq!(created.status, 201, "{}", created.text);
    let receipt = check_reply(&document, SUBMIT, "post", &created);
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    assert_eq!(check_reply(&document, SUBMIT, "post", &replayed), receipt);
    assert_eq!(from_fhir.status, 201, "{}", from_fhir.text);
    check_reply(&document, SUBMIT, "post", &from_fhir);
    assert_eq!(from_seed.status, 200, "{}", from_seed.text);
    let seed_receipt = check_reply(&document, "/api/collection/submit", "post", &from_seed);
    assert_eq!(seed_receipt["status"], "success");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 3);
}

#[tokio::test]
async fn openapi_error_examples_match_replies() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    let example = request_example(&document, SUBMIT, "application/json");
    let stored = app.submit("demo", "phq9", &example).await;
    assert_eq!(stored.status, 201, "{}", stored.text);
    let mut changed = example.clone();
    changed["answers"]["/44250-9"] = json!("LA6569-3");

    for language in ["en", "zh-CN"] {
        let unknown_trial = app.submit_in("demo2", "phq9", &example, language).await;
        let conflict = app.submit_in("demo", "phq9", &changed, language).await;

        assert_eq!(unknown_trial.status, 404, "{}", unknown_trial.text);
        assert_eq!(unknown_trial.content_language.as_deref(), Some(language));
        let body = check_reply(&document, SUBMIT, "post", &unknown_trial);
        let documented = error_example(&document, SUBMIT, 404, &format!("unknown_trial.{language}"));
        assert_eq!(without_request_id(body), without_request_id(documented), "unknown_trial in {language}");
        assert_eq!(conflict.status, 409, "{}", conflict.text);
        let body = check_reply(&document, SUBMIT, "post", &conflict);
        let documented = error_example(&document, SUBMIT, 409, &format!("submission_conflict.{language}"));
        assert_eq!(without_request_id(body), without_request_id(documented), "submission_conflict in {language}");
    }
}

#[tokio::test]
async fn openapi_schemas_fit_read_replies() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/real/");
    let file = "hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json";
    let bytes = std::fs::read(format!("{path}{file}")).unwrap();
    let receipt = app.submit_fhir("fixtures", "sdc-phq9", "", bytes).await;
    assert_eq!(receipt.status, 201, "{}", receipt.text);
    check_reply(&document, SUBMIT, "post", &receipt);
    let query_id = receipt.json()["queries"][0]["queryId"].as_str().unwrap().to_owned();

    let stored = app.get_submission("questionnaireresponse-sdc-profile-example-PHQ9", Some(OPERATOR_TOKEN)).await;
    let missing = app.get_submission("no-such-submission", Some(OPERATOR_TOKEN)).await;
    let unauthorized = app.get_submission("no-such-submission", None).await;
    let queries = app.get_with_token("/v1/trials/fixtures/queries?status=open", OPERATOR_TOKEN).await;
    let bad_filter = app.get_with_token("/v1/trials/fixtures/queries?status=maybe", OPERATOR_TOKEN).await;
    let dead_letters = app.get_with_token("/v1/outbox/dead-letters?limit=10", OPERATOR_TOKEN).await;
    let audit = app.get_with_token("/v1/audit?trialId=fixtures&limit=10", OPERATOR_TOKEN).await;
    let bad_instant = app.get_with_token("/v1/audit?from=yesterday", OPERATOR_TOKEN).await;
    let change = json!({"status": "closed", "comment": "Checked with the site."});
    let closed = change_status(&app, &query_id, &change).await;
    let unchanged = change_status(&app, &query_id, &change).await;
    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(stored.status, 200, "{}", stored.text);
    let body = check_reply(&document, "/v1/submissions/{submission_id}", "get", &stored);
    assert!(!body["scores"].as_array().unwrap().is_empty(), "{body}");
    assert!(!body["queries"].as_array().unwrap().is_empty(), "{body}");
    assert_eq!(missing.status, 404);
    check_reply(&document, "/v1/submissions/{submission_id}", "get", &missing);
    assert_eq!(unauthorized.status, 401);
    check_reply(&document, "/v1/submissions/{submission_id}", "get", &unauthorized);
    assert_eq!(queries.status, 200, "{}", queries.text);
    assert_eq!(
        check_reply(&document, "/v1/trials/{trial_id}/queries", "get", &queries)["queries"][0]["queryId"],
        query_id
    );
    assert_eq!(bad_filter.status, 400);
    check_reply(&document, "/v1/trials/{trial_id}/queries", "get", &bad_filter);
    assert_eq!(dead_letters.status, 200, "{}", dead_letters.text);
    check_reply(&document, "/v1/outbox/dead-letters", "get", &dead_letters);
    assert_eq!(audit.status, 200, "{}", audit.text);
    let entries = check_reply(&document, "/v1/audit", "get", &audit)["entries"].as_array().unwrap().len();
    assert!(entries > 0, "{}", audit.text);
    assert_eq!(bad_instant.status, 400, "{}", bad_instant.text);
    check_reply(&document, "/v1/audit", "get", &bad_instant);
    assert_eq!(closed.status, 200, "{}", closed.text);
    assert_eq!(check_reply(&document, "/v1/queries/{query_id}/status", "post", &closed)["status"], "closed");
    assert_eq!(unchanged.status, 409);
    check_reply(&document, "/v1/queries/{query_id}/status", "post", &unchanged);
    assert_eq!(health.status, 200);
    check_reply(&document, "/healthz", "get", &health);
    assert_eq!(ready.status, 200);
    check_reply(&document, "/readyz", "get", &ready);
}

async fn change_status(app: &TestApp, query_id: &str, change: &Value) -> Reply {
    let path = format!("/v1/queries/{query_id}/status");
    let body = serde_json::to_vec(change).unwrap();
    let authorization = format!("Bearer {OPERATOR_TOKEN}");
    app.post(&path, Some("application/json"), body, &[("authorization", authorization.as_str())]).await
}
