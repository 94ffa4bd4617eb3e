//! Trials and forms in the database: creating trials and sites, publishing form
//! documents from `fixtures/real/` (unchanged), retiring versions, what happens
//! to submissions that name a retired version, and a second instance on the
//! same database that picks up a publication.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, Reply, TestApp, phq9_envelope, spawn_app};

fn real_form(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/real").join(name);
    std::fs::read(path).unwrap()
}

/// The PHQ-9 of LHC-Forms, the document the demo trial publishes as `phq9`.
fn phq9() -> Vec<u8> {
    real_form("lforms__phq9.json")
}

/// The same questionnaire with one more trailing newline: equal as JSON, but
/// another document byte for byte, which is enough to be another version.
fn phq9_edited() -> Vec<u8> {
    let mut bytes = phq9();
    bytes.extend_from_slice(b"\n\n");
    bytes
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
    language: &str,
) -> Reply {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .header("accept-language", language);
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_language = response.headers().get("content-language").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Reply { status, content_language, text: response.text().await.unwrap() }
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> Reply {
    send(app, reqwest::Method::POST, path, Some(("application/json", body.to_string().into_bytes())), "en").await
}

async fn publish(
    app: &TestApp,
    trial: &str,
    form: &str,
    version: &str,
    content_type: &str,
    document: Vec<u8>,
) -> Reply {
    let path = format!("/v1/trials/{trial}/forms?formId={form}&version={version}");
    send(app, reqwest::Method::POST, &path, Some((content_type, document)), "en").await
}

async fn retire(app: &TestApp, trial: &str, form: &str, version: &str, reason: &str) -> Reply {
    post_json(app, &format!("/v1/trials/{trial}/forms/{form}/versions/{version}/retire"), &json!({ "reason": reason }))
        .await
}

async fn get_trial(app: &TestApp, trial: &str) -> Value {
    let reply = send(app, reqwest::Method::GET, &format!("/v1/trials/{trial}"), None, "en").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

/// Creates trial `t1` with one site and publishes the PHQ-9 as `phq9` version 1.
async fn trial_with_phq9(app: &TestApp) {
    let created = post_json(
        app,
        "/v1/trials",
        &json!({
            "trialId": "t1",
            "title": { "en": "Depression follow-up", "zh-CN": "抑郁随访研究" },
            "acknowledgeWithinSeconds": 900,
            "sites": [{ "siteId": "S01", "name": "Peking Union Medical College Hospital" }],
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let published = publish(app, "t1", "phq9", "1", "application/fhir+json", phq9()).await;
    assert_eq!(published.status, 201, "{}", published.text);
}

async fn submit_version(app: &TestApp, version: Option<&str>, language: &str) -> Reply {
    let mut envelope = phq9_envelope();
    if let Some(version) = version {
        envelope["formVersion"] = json!(version);
    }
    app.submit_in("t1", "phq9", &envelope, language).await
}

#[tokio::test]
async fn trials_start_with_imported_directory() {
    let app = spawn_app().await;

    let reply = send(&app, reqwest::Method::GET, "/v1/trials", None, "en").await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let trials = reply.json()["trials"].as_array().unwrap().clone();
    let ids: Vec<&str> = trials.iter().map(|trial| trial["trialId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["demo", "fixtures"]);
    let demo = &trials[0];
    assert_eq!(demo["title"]["zh-CN"], "epro 演示试验");
    assert_eq!(demo["acknowledgeWithinSeconds"], 3600);
    assert_eq!(demo["createdBy"], "system");
    let forms: Vec<&str> =
        demo["forms"].as_array().unwrap().iter().map(|form| form["formId"].as_str().unwrap()).collect();
    assert_eq!(forms, ["phq9", "gad7", "pain-nrs"]);
    let phq9 = &demo["forms"][0]["versions"][0];
    assert_eq!(phq9["status"], "active");
    assert_eq!(phq9["current"], true);
    assert_eq!(phq9["format"], "fhir-json");
    assert_eq!(phq9["publishedBy"], "system");
}

#[tokio::test]
async fn trials_api_needs_operator_token() {
    let app = spawn_app().await;
    let endpoints = [
        (reqwest::Method::GET, "/v1/trials"),
        (reqwest::Method::GET, "/v1/trials/demo"),
        (reqwest::Method::POST, "/v1/trials"),
        (reqwest::Method::POST, "/v1/trials/demo/sites"),
        (reqwest::Method::POST, "/v1/trials/demo/forms?formId=x&version=1"),
        (reqwest::Method::POST, "/v1/trials/demo/forms/phq9/versions/1/retire"),
    ];

    for (method, path) in endpoints {
        let response = app.client.request(method.clone(), format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{method} {path}");
    }
    assert_eq!(get_trial(&app, "demo").await["forms"][0]["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn create_trial_and_sites_are_idempotent() {
    let app = spawn_app().await;
    trial_with_phq9(&app).await;

    let same_site = post_json(
        &app,
        "/v1/trials/t1/sites",
        &json!({ "siteId": "S01", "name": "Peking Union Medical College Hospital" }),
    )
    .await;
    let renamed = post_json(&app, "/v1/trials/t1/sites", &json!({ "siteId": "S01", "name": "Other" })).await;
    let added = post_json(&app, "/v1/trials/t1/sites", &json!({ "siteId": "S02", "name": "Ruijin Hospital" })).await;
    let unknown = post_json(&app, "/v1/trials/t9/sites", &json!({ "siteId": "S02", "name": "Ruijin Hospital" })).await;
    let retitled =
        post_json(&app, "/v1/trials", &json!({ "trialId": "t1", "title": { "en": "x", "zh-CN": "y" } })).await;
    let invalid = post_json(&app, "/v1/trials", &json!({ "trialId": "t 1", "title": { "en": " " }, "color": 1 })).await;

    assert_eq!(same_site.status, 200, "{}", same_site.text);
    assert_eq!(renamed.status, 409, "{}", renamed.text);
    assert_eq!(renamed.json()["code"], "site_conflict");
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["addedBy"], "staff:ops");
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(retitled.status, 409, "{}", retitled.text);
    assert_eq!(retitled.json()["code"], "trial_conflict");
    assert_eq!(invalid.status, 422, "{}", invalid.text);
    let findings: Vec<(String, String)> = invalid.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| (error["path"].as_str().unwrap().to_owned(), error["code"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        findings,
        [
            ("/color".to_owned(), "unknown_field".to_owned()),
            ("/trialId".to_owned(), "invalid_id".to_owned()),
            ("/title/en".to_owned(), "blank".to_owned()),
            ("/title/zh-CN".to_owned(), "required".to_owned()),
        ]
    );
    let trial = get_trial(&app, "t1").await;
    let sites: Vec<&str> =
        trial["sites"].as_array().unwrap().iter().map(|site| site["siteId"].as_str().unwrap()).collect();
    assert_eq!(sites, ["S01", "S02"]);
    assert_eq!(trial["acknowledgeWithinSeconds"], 900);
}

/// The PHQ-9 with its first two items retyped, so that their answer options no
/// longer fit: `epro forms check` finds 12 errors in it.
fn phq9_with_errors() -> Vec<u8> {
    let mut questionnaire: Value = serde_json::from_slice(&phq9()).unwrap();
    questionnaire["item"][0]["type"] = json!("integer");
    questionnaire["item"][1]["type"] = json!("date");
    serde_json::to_vec(&questionnaire).unwrap()
}

#[tokio::test]
async fn publish_rejects_form_with_errors() {
    let app = spawn_app().await;
    trial_with_phq9(&app).await;
    let path = "/v1/trials/t1/forms?formId=phq9-bad&version=1";

    let english = publish(&app, "t1", "phq9-bad", "1", "application/fhir+json", phq9_with_errors()).await;
    let chinese =
        send(&app, reqwest::Method::POST, path, Some(("application/fhir+json", phq9_with_errors())), "zh-CN").await;
    let invalid = real_form("rkof__SkipLogicExample.invalid.json");
    let syntax = publish(&app, "t1", "skip", "1", "application/fhir+json", invalid).await;
    let broken_toml =
        publish(&app, "t1", "diary", "1", "application/toml", b"title = \"Diary\"\n[[items]\n".to_vec()).await;

    assert_eq!(english.status, 422, "{}", english.text);
    let body = english.json();
    assert_eq!(body["code"], "form_invalid");
    let errors = body["errors"].as_array().unwrap();
    let paths: Vec<&str> = errors.iter().map(|error| error["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 12, "every problem is listed: {paths:?}");
    assert_eq!(paths[0], "$.item[0].answerOption[0]");
    assert_eq!(paths[4], "$.item[1].answerOption[0]");
    for error in errors {
        assert_eq!(error["code"], "form_error", "{error}");
        assert!(error["message"].as_str().unwrap().contains("Fix the document"), "{error}");
    }
    assert!(body["message"].as_str().unwrap().contains("12 problem(s)"), "{body}");
    assert_eq!(chinese.status, 422);
    let chinese = chinese.json();
    assert_eq!(chinese["errors"].as_array().unwrap().len(), 12);
    assert!(chinese["message"].as_str().unwrap().contains("表单未发布"), "{chinese}");
    assert!(
        chinese["errors"][0]["message"].as_str().unwrap().contains("$.item[0].answerOption[0] 处有误"),
        "{chinese}"
    );
    assert_eq!(syntax.status, 422, "{}", syntax.text);
    let syntax_message = syntax.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(syntax_message.starts_with("Line 82, column 7 of the form"), "{syntax_message}");
    assert_eq!(broken_toml.status, 422, "{}", broken_toml.text);
    assert!(
        broken_toml.json()["errors"][0]["message"].as_str().unwrap().starts_with("Line 2, column"),
        "{}",
        broken_toml.text
    );
    let forms: Vec<Value> = get_trial(&app, "t1").await["forms"].as_array().unwrap().clone();
    assert_eq!(forms.len(), 1, "nothing of the invalid forms was published: {forms:?}");
}

#[tokio::test]
async fn publish_is_idempotent_and_never_reuses_a_version() {
    let app = spawn_app().await;
    trial_with_phq9(&app).await;
    let diary =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/trials/fixtures/diary.toml"))
            .unwrap();

    let again = publish(&app, "t1", "phq9", "1", "application/fhir+json", phq9()).await;
    let changed = publish(&app, "t1", "phq9", "1", "application/fhir+json", phq9_edited()).await;
    let native = publish(&app, "t1", "diary", "1", "application/toml", diary).await;
    let unknown_trial = publish(&app, "t9", "phq9", "1", "application/fhir+json", phq9()).await;
    let no_version = send(
        &app,
        reqwest::Method::POST,
        "/v1/trials/t1/forms?formId=phq9",
        Some(("application/fhir+json", phq9())),
        "en",
    )
    .await;
    let wrong_type = publish(&app, "t1", "phq9", "2", "text/plain", phq9()).await;

    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["version"], "1");
    assert_eq!(changed.status, 409, "{}", changed.text);
    assert_eq!(changed.json()["code"], "form_version_conflict");
    assert!(changed.json()["message"].as_str().unwrap().contains("new version"), "{}", changed.text);
    assert_eq!(native.status, 201, "{}", native.text);
    assert_eq!(native.json()["format"], "native-toml");
    assert_eq!(unknown_trial.status, 404, "{}", unknown_trial.text);
    assert_eq!(no_version.status, 400, "{}", no_version.text);
    assert_eq!(no_version.json()["errors"][0]["item"], "version");
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text);

    let submitted = submit_version(&app, None, "en").await;
    assert_eq!(submitted.status, 201, "{}", submitted.text);
    assert_eq!(submitted.json()["formVersion"], "1");
    // The test's database reader trims trailing whitespace, so the length checks
    // the end of the document.
    let document = String::from_utf8(phq9()).unwrap();
    let stored = app.database_text("SELECT source FROM form_versions WHERE trial_id = 't1' AND form_id = 'phq9'");
    assert_eq!(stored.trim_end(), document.trim_end(), "the document is kept byte for byte");
    let length = app.count("SELECT length(source) FROM form_versions WHERE trial_id = 't1' AND form_id = 'phq9'");
    assert_eq!(length, document.chars().count() as i64);
}

/// A device on an old app still sends the retired version while a newer one is
/// active: the submission is validated against the version it names, stored,
/// and parked with a `stale_form_version` query for staff.
#[tokio::test]
async fn retired_version_with_newer_active_parks_submission() {
    let app = spawn_app().await;
    trial_with_phq9(&app).await;
    assert_eq!(publish(&app, "t1", "phq9", "2", "application/fhir+json", phq9_edited()).await.status, 201);

    let retired = retire(&app, "t1", "phq9", "1", "Superseded by version 2").await;
    let stale = submit_version(&app, Some("1"), "en").await;
    let current = submit_version(&app, None, "en").await;

    assert_eq!(retired.status, 200, "{}", retired.text);
    assert_eq!(retired.json()["status"], "retired");
    assert_eq!(retired.json()["retireReason"], "Superseded by version 2");
    assert_eq!(stale.status, 201, "{}", stale.text);
    let receipt = stale.json();
    assert_eq!(receipt["formVersion"], "1");
    assert_eq!(receipt["status"], "accepted_with_queries");
    let codes: Vec<&str> =
        receipt["queries"].as_array().unwrap().iter().map(|query| query["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["stale_form_version"]);
    assert_eq!(current.status, 201, "{}", current.text);
    assert_eq!(current.json()["formVersion"], "2");
    assert_eq!(current.json()["status"], "accepted");

    let submission_id = receipt["submissionId"].as_str().unwrap();
    let stored = app.get_submission(submission_id, Some(OPERATOR_TOKEN)).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    let query = &stored.json()["queries"][0];
    assert_eq!(query["code"], "stale_form_version");
    let message = query["message"].as_str().unwrap();
    assert!(message.contains("停用") && message.contains("当前版本为“2”"), "{message}");
    let trial = get_trial(&app, "t1").await;
    let versions = &trial["forms"][0]["versions"];
    assert_eq!((versions[0]["status"].as_str(), versions[0]["current"].as_bool()), (Some("retired"), Some(false)));
    assert_eq!((versions[1]["status"].as_str(), versions[1]["current"].as_bool()), (Some("active"), Some(true)));
}

/// Once no version of a form is active, the form is withdrawn: submissions get
/// 409 `form_version_retired` saying when, and what was stored stays readable.
#[tokio::test]
async fn withdrawn_form_rejects_submissions_and_keeps_data() {
    let app = spawn_app().await;
    trial_with_phq9(&app).await;
    let stored = submit_version(&app, Some("1"), "en").await;
    assert_eq!(stored.status, 201, "{}", stored.text);

    let retired = retire(&app, "t1", "phq9", "1", "Study arm closed").await;
    let english = submit_version(&app, Some("1"), "en").await;
    let chinese = submit_version(&app, None, "zh-CN").await;
    let again = retire(&app, "t1", "phq9", "1", "twice").await;
    let unknown_version = retire(&app, "t1", "phq9", "7", "typo").await;
    let unknown_form = retire(&app, "t1", "gad7", "1", "typo").await;
    let blank = retire(&app, "t1", "phq9", "1", "  ").await;

    assert_eq!(retired.status, 200, "{}", retired.text);
    let retired_at = retired.json()["retiredAt"].as_str().unwrap().to_owned();
    assert_eq!(english.status, 409, "{}", english.text);
    assert_eq!(english.json()["code"], "form_version_retired");
    let message = english.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("version \"1\" was retired at"), "{message}");
    assert!(message.contains(&retired_at[..16]), "{message} names {retired_at}");
    assert_eq!(chinese.status, 409, "{}", chinese.text);
    assert_eq!(chinese.content_language.as_deref(), Some("zh-CN"));
    let message = chinese.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("已于") && message.contains("停用"), "{message}");
    assert!(message.contains(&retired_at[..16]), "{message} names {retired_at}");
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.json()["code"], "form_version_already_retired");
    assert_eq!(unknown_version.status, 404, "{}", unknown_version.text);
    assert_eq!(unknown_version.json()["code"], "unknown_form_version");
    assert_eq!(unknown_form.json()["code"], "unknown_form");
    assert_eq!(blank.status, 422, "{}", blank.text);

    let submission_id = stored.json()["submissionId"].as_str().unwrap().to_owned();
    assert_eq!(app.get_submission(&submission_id, Some(OPERATOR_TOKEN)).await.status, 200);
    let export = send(&app, reqwest::Method::GET, "/v1/trials/t1/forms/phq9/export?format=ndjson", None, "en").await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert!(export.text.contains(&submission_id), "{}", export.text);
    let codebook = send(&app, reqwest::Method::GET, "/v1/trials/t1/forms/phq9/codebook", None, "en").await;
    assert_eq!(codebook.status, 200, "{}", codebook.text);
    assert_eq!(codebook.json()["formId"], "phq9");
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'form.retired'"), 1);
}

/// A second instance on the same database takes a publication of the first
/// within its poll interval.
#[tokio::test]
async fn second_instance_sees_publish() {
    let app = spawn_app().await;
    let second = app.spawn_second_instance().await;
    trial_with_phq9(&app).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = second.submit("t1", "phq9", &phq9_envelope()).await;
        if reply.status == 201 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(reply.status, 201, "the second instance never saw the form: {}", reply.text);
    let retired = retire(&app, "t1", "phq9", "1", "withdrawn").await;
    assert_eq!(retired.status, 200, "{}", retired.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = second.submit("t1", "phq9", &phq9_envelope()).await;
        if reply.status == 409 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply.json()["code"], "form_version_retired", "{}", reply.text);
}

#[tokio::test]
async fn new_version_keeps_alert_rules_unless_told() {
    let app = spawn_app().await;
    let item9_positive = |version: &str| {
        let mut envelope = phq9_envelope();
        envelope["formVersion"] = json!(version);
        envelope["answers"]["/44260-8"] = json!("LA6571-9");
        envelope
    };

    let inherited = publish(&app, "demo", "phq9", "2", "application/fhir+json", phq9_edited()).await;
    let mut bare_document = phq9_edited();
    bare_document.extend_from_slice(b"\n");
    let path = "/v1/trials/demo/forms?formId=phq9&version=3&inheritRules=false";
    let bare = send(&app, reqwest::Method::POST, path, Some(("application/fhir+json", bare_document)), "en").await;
    let with_rules = app.submit("demo", "phq9", &item9_positive("2")).await;
    let without_rules = app.submit("demo", "phq9", &item9_positive("3")).await;

    assert_eq!(inherited.status, 201, "{}", inherited.text);
    assert_eq!(bare.status, 201, "{}", bare.text);
    assert_eq!(with_rules.status, 201, "{}", with_rules.text);
    assert_eq!(without_rules.status, 201, "{}", without_rules.text);
    let alerts = app.list_alerts("demo", "", "en").await.json();
    let rules: Vec<(&str, &str)> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| (alert["formVersion"].as_str().unwrap(), alert["rule"].as_str().unwrap()))
        .collect();
    assert!(rules.contains(&("2", "phq9-item9-positive")), "version 2 keeps the item 9 alert: {rules:?}");
    assert!(rules.iter().all(|(version, _)| *version != "3"), "version 3 was published without rules: {rules:?}");
}

#[tokio::test]
async fn sites_keep_both_names() {
    let app = spawn_app().await;
    let created = post_json(
        &app,
        "/v1/trials",
        &json!({
            "trialId": "t1",
            "title": { "en": "Depression follow-up", "zh-CN": "抑郁随访研究" },
            "sites": [{ "siteId": "S01", "name": { "en": "Ruijin Hospital", "zh-CN": "瑞金医院" } }],
        }),
    )
    .await;

    assert_eq!(created.status, 201, "{}", created.text);
    let t1 = get_trial(&app, "t1").await;
    assert_eq!(t1["sites"][0]["name"], "Ruijin Hospital");
    assert_eq!(t1["sites"][0]["nameZhCn"], "瑞金医院");
    let demo = get_trial(&app, "demo").await;
    assert_eq!(demo["sites"][0]["nameZhCn"], "北京协和医院（演示）", "the trial file's Chinese name is imported");
}
