//! The rule engine at intake, seen through HTTP: skip logic, consistency
//! rules, server-computed scores, data queries and alerts.

use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, phq9_envelope, spawn_app};

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/real/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

fn envelope(answers: Value) -> Value {
    let mut envelope = phq9_envelope();
    envelope["answers"] = answers;
    envelope
}

#[tokio::test]
async fn score_mismatch_is_stored_with_query() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");

    let reply = app.submit_fhir("fixtures", "sdc-phq9", "", bytes).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let receipt = reply.json();
    assert_eq!(receipt["status"], "accepted_with_queries");
    assert_eq!(receipt["queries"][0]["code"], "score_mismatch");
    assert_eq!(receipt["queries"][0]["item"], "H1/TS");
    let stored =
        app.get_submission("questionnaireresponse-sdc-profile-example-PHQ9", Some(OPERATOR_TOKEN)).await.json();
    let score = stored["scores"].as_array().unwrap().iter().find(|s| s["name"] == "H1/TS").cloned().unwrap();
    assert_eq!(score["value"], "10", "computed from the answers, not the 13 sent: {stored}");
    assert_eq!(stored["queries"][0]["status"], "open");
    assert!(stored["queries"][0]["message"].as_str().unwrap().contains("13"), "{stored}");
}

#[tokio::test]
async fn consistency_rule_rejects_min_above_max() {
    let app = spawn_app().await;

    let bad = app.submit("fixtures", "min-max", &envelope(json!({ "1": { "1.1": 5, "1.2": 3 } }))).await;
    let good = app.submit("fixtures", "min-max", &envelope(json!({ "1": { "1.1": 3, "1.2": 5 } }))).await;

    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.error_codes(), ["rule_violated"]);
    assert!(bad.json()["errors"][0]["message"].as_str().unwrap().contains("min-max-check"), "{}", bad.text);
    assert_eq!(good.status, 201, "{}", good.text);
    assert_eq!(good.json()["status"], "accepted");
}

#[tokio::test]
async fn skip_logic_rejects_answer_to_disabled_item() {
    let app = spawn_app().await;
    let answers = json!({ "g1": { "Q1": false, "Q1-true": "should not be here" } });

    let reply = app.submit("fixtures", "skip-logic", &envelope(answers)).await;

    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["answered_while_disabled"]);
    assert_eq!(reply.json()["errors"][0]["item"], "Q1-true");
}

#[tokio::test]
async fn phq9_alerts_reach_outbox() {
    let app = spawn_app().await;
    let severe = json!({
        "/44250-9": "LA6571-9", "/44255-8": "LA6571-9", "/44259-0": "LA6571-9",
        "/44254-1": "LA6571-9", "/44251-7": "LA6571-9", "/44258-2": "LA6571-9",
        "/44252-5": "LA6571-9", "/44253-3": "LA6571-9", "/44260-8": "LA6569-3"
    });

    let reply = app.submit("demo", "phq9", &envelope(severe)).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let messages = app.outbox_messages(3).await;
    let mut alerts: Vec<String> = messages
        .iter()
        .filter(|message| message["type"] == "alert.raised")
        .map(|message| message["payload"]["alertRule"].as_str().unwrap().to_owned())
        .collect();
    alerts.sort();
    assert_eq!(alerts, ["phq9-item9-positive", "phq9-severe"]);
    let text = serde_json::to_string(&messages).unwrap();
    assert!(!text.contains("LA6571-9"), "no answers in the outbox");
}

#[tokio::test]
async fn phq9_below_cutoffs_raises_no_alert() {
    let app = spawn_app().await;

    let reply = app.submit("demo", "phq9", &phq9_envelope()).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let messages = app.outbox_messages(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(messages.iter().all(|message| message["type"] != "alert.raised"), "{messages:?}");
    assert_eq!(app.count("SELECT count(*) FROM outbox_events WHERE event_type = 'alert.raised'"), 0);
}

#[tokio::test]
async fn queries_list_and_change_status() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");
    assert_eq!(app.submit_fhir("fixtures", "sdc-phq9", "", bytes).await.status, 201);
    let list = |query: &'static str| {
        let request = app
            .client
            .get(format!("{}/v1/trials/fixtures/queries{query}", app.address))
            .bearer_auth(OPERATOR_TOKEN)
            .header("accept-language", "zh-CN");
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let open = list("?status=open").await;
    let query_id = open["queries"][0]["queryId"].as_str().unwrap().to_owned();
    let change = |body: Value| {
        let request = app
            .client
            .post(format!("{}/v1/queries/{query_id}/status", app.address))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let answered = change(json!({ "status": "answered", "comment": "Patient confirmed the answers." })).await;
    let again = change(json!({ "status": "answered", "comment": "Again." })).await;
    let no_comment = change(json!({ "status": "closed", "comment": "  " })).await;
    let bad_status = change(json!({ "status": "resolved", "comment": "x" })).await;
    let missing_comment = change(json!({ "status": "closed" })).await;
    let extra_field = change(json!({ "status": "closed", "comment": "x", "extra": 1 })).await;

    assert_eq!(open["queries"].as_array().unwrap().len(), 1, "{open}");
    assert!(open["queries"][0]["message"].as_str().unwrap().contains("不一致"), "{open}");
    assert_eq!(answered.0, 200, "{}", answered.1);
    assert_eq!(answered.1["status"], "answered");
    assert_eq!(again.0, 409, "{}", again.1);
    assert_eq!(no_comment.0, 400, "{}", no_comment.1);
    assert_eq!(bad_status.0, 400, "{}", bad_status.1);
    assert_eq!(missing_comment.1["errors"][0]["path"], "/comment", "{}", missing_comment.1);
    assert_eq!(missing_comment.1["errors"][0]["code"], "required");
    assert_eq!(extra_field.1["errors"][0]["code"], "unknown_field", "{}", extra_field.1);
    let zero_limit = app
        .client
        .get(format!("{}/v1/trials/fixtures/queries?limit=0", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(zero_limit.status().as_u16(), 400, "limit must be 1 to 500");
    assert_eq!(list("?status=open").await["queries"], json!([]));
    assert_eq!(list("?status=answered").await["queries"].as_array().unwrap().len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM data_query_events"), 1);
}

#[tokio::test]
async fn queries_require_token_and_known_ids() {
    let app = spawn_app().await;

    let anonymous = app.get("/v1/trials/fixtures/queries").await;
    let unknown = app
        .client
        .post(format!("{}/v1/queries/00000000-0000-7000-8000-000000000000/status", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "status": "closed", "comment": "x" }))
        .send()
        .await
        .unwrap();
    let unknown_trial = app
        .client
        .get(format!("{}/v1/trials/nope/queries", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();

    assert_eq!(anonymous.status, 401);
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(unknown_trial.status().as_u16(), 404);
}

#[tokio::test]
async fn revalidate_records_scores_and_is_rerunnable() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");
    assert_eq!(app.submit_fhir("fixtures", "sdc-phq9", "", bytes).await.status, 201);
    let dir = app.stop();
    let config = dir.path().join("epro.toml");
    let revalidate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_epro"))
            .args(["revalidate", "--config", config.to_str().unwrap(), "--trial", "fixtures", "--form", "sdc-phq9"])
            .output()
            .unwrap()
    };

    let first = revalidate();
    let second = revalidate();

    let first_out = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{first_out}{}", String::from_utf8_lossy(&first.stderr));
    assert!(first_out.contains("revalidated 1 submission(s)"), "{first_out}");
    assert!(first_out.contains("0 new data queries"), "the intake query is not raised twice: {first_out}");
    assert!(second.status.success());
    let records = dir.database.count("SELECT count(*) FROM derived_records");
    let queries = dir.database.count("SELECT count(*) FROM data_queries");
    let scores = dir.database.text("SELECT CAST(scores AS TEXT) FROM derived_records LIMIT 1");
    assert_eq!(records, 2, "one derived record per run");
    assert_eq!(queries, 1, "reruns raise nothing twice");
    assert!(scores.contains("\"10\""), "{scores}");
}
