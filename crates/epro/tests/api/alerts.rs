//! Alerts over HTTP: the list with its filters and cursor, acknowledgements and
//! their bad input in both languages, the operator token, and an alert escalating
//! through the real server's escalation task. The fixtures trial gives site staff two
//! seconds, and the test configuration looks for overdue alerts every second.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, TestApp, phq9_envelope, spawn_app};

/// Upper bound of the wait for an escalation: a 2 s deadline and a 1 s interval
/// need about 3 s, and a slow shared machine gets the rest.
const ESCALATION_WAIT: Duration = Duration::from_secs(30);

/// PHQ-9 answers with item 9 positive and a total of 26, which fire both alert
/// rules of the demo trial.
fn severe_phq9(patient: &str) -> Value {
    let mut envelope = phq9_envelope();
    envelope["patientId"] = json!(patient);
    envelope["answers"] = json!({
        "/44250-9": "LA6571-9", "/44255-8": "LA6571-9", "/44259-0": "LA6571-9",
        "/44254-1": "LA6571-9", "/44251-7": "LA6571-9", "/44258-2": "LA6571-9",
        "/44252-5": "LA6571-9", "/44253-3": "LA6571-9", "/44260-8": "LA6569-3"
    });
    envelope
}

/// A diary entry whose pain of 10 fires the fixtures trial's `pain-severe` alert.
fn painful_diary() -> Value {
    json!({
        "submissionId": uuid::Uuid::new_v4().to_string(),
        "patientId": "P-0042",
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": { "pain": 10 },
    })
}

fn time(value: &Value) -> time::OffsetDateTime {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

async fn submit_created(app: &TestApp, trial: &str, form: &str, envelope: &Value) {
    let reply = app.submit(trial, form, envelope).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[tokio::test]
async fn alerts_list_with_filters_and_pages() {
    let app = spawn_app().await;
    submit_created(&app, "demo", "phq9", &severe_phq9("P-001")).await;
    submit_created(&app, "demo", "phq9", &severe_phq9("P-002")).await;

    let all = app.list_alerts("demo", "", "zh-CN").await;
    let patient = app.list_alerts("demo", "?patientId=P-002", "en").await;
    let first_page = app.list_alerts("demo", "?limit=3", "en").await;
    let next = first_page.json()["next"].as_str().expect("a full page has a cursor").to_owned();
    let second_page = app.list_alerts("demo", &format!("?limit=3&after={next}"), "en").await;
    let other_trial = app.list_alerts("fixtures", "", "en").await;

    assert_eq!(all.status, 200, "{}", all.text);
    let alerts = all.json()["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 4, "two alerts per severe PHQ-9: {}", all.text);
    let first = &alerts[0];
    assert_eq!(first["trialId"], "demo");
    assert_eq!(first["formId"], "phq9");
    assert_eq!(first["formVersion"], "1");
    assert_eq!(first["patientId"], "P-001");
    assert_eq!(first["rule"], "phq9-item9-positive");
    assert_eq!(first["severity"], "high");
    assert_eq!(first["items"], json!(["/44260-8"]));
    assert_eq!(first["status"], "open");
    assert!(first["message"].as_str().unwrap().contains("PHQ-9 第 9 题阳性"), "{first}");
    assert_eq!(time(&first["dueAt"]) - time(&first["raisedAt"]), time::Duration::minutes(60));
    assert_eq!(first["escalatedAt"], Value::Null);
    assert_eq!(first["acknowledgedAt"], Value::Null);
    assert_eq!(first["comment"], Value::Null);
    assert!(!all.text.contains("LA6571-9"), "no answers in alerts: {}", all.text);
    assert_eq!(all.content_language.as_deref(), Some("zh-CN"));

    let patient_alerts = patient.json()["alerts"].clone();
    let patients: Vec<&str> =
        patient_alerts.as_array().unwrap().iter().map(|alert| alert["patientId"].as_str().unwrap()).collect();
    assert_eq!(patients, ["P-002", "P-002"]);
    assert!(patient.json()["alerts"][0]["message"].as_str().unwrap().starts_with("PHQ-9 item 9"), "{}", patient.text);

    let paged: Vec<Value> = [&first_page, &second_page]
        .iter()
        .flat_map(|page| page.json()["alerts"].as_array().unwrap().clone())
        .map(|alert| alert["alertId"].clone())
        .collect();
    let listed: Vec<Value> = alerts.iter().map(|alert| alert["alertId"].clone()).collect();
    assert_eq!(paged, listed, "two pages list every alert once, in order");
    assert_eq!(second_page.json()["next"], Value::Null);
    assert_eq!(other_trial.json()["alerts"], json!([]));
}

#[tokio::test]
async fn acknowledge_is_final_and_audited() {
    let app = spawn_app().await;
    submit_created(&app, "demo", "phq9", &severe_phq9("P-001")).await;
    let alerts = app.list_alerts("demo", "?status=open", "en").await.json()["alerts"].clone();
    let alert_id = alerts[0]["alertId"].as_str().unwrap().to_owned();

    let acknowledged =
        app.acknowledge_alert(&alert_id, &json!({ "comment": " Called the patient; safe. " }), "en").await;
    let again_en = app.acknowledge_alert(&alert_id, &json!({ "comment": "Again." }), "en").await;
    let again_zh = app.acknowledge_alert(&alert_id, &json!({ "comment": "再次确认。" }), "zh-CN").await;
    let open = app.list_alerts("demo", "?status=open", "en").await;
    let done = app.list_alerts("demo", "?status=acknowledged", "en").await;
    let metrics = app.get("/metrics").await;

    assert_eq!(acknowledged.status, 200, "{}", acknowledged.text);
    let body = acknowledged.json();
    assert_eq!(body["alertId"], alert_id.as_str());
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledgedBy"], "staff:ops");
    assert_eq!(body["comment"], "Called the patient; safe.");
    assert!(time(&body["acknowledgedAt"]) >= time(&body["raisedAt"]), "{body}");

    assert_eq!(again_en.status, 409, "{}", again_en.text);
    assert_eq!(again_en.json()["code"], "alert_already_acknowledged");
    assert!(again_en.json()["message"].as_str().unwrap().contains("already acknowledged"), "{}", again_en.text);
    assert_eq!(again_zh.status, 409, "{}", again_zh.text);
    assert!(again_zh.json()["message"].as_str().unwrap().contains("已于"), "{}", again_zh.text);

    assert_eq!(open.json()["alerts"].as_array().unwrap().len(), 1);
    let done = done.json()["alerts"].clone();
    assert_eq!(done.as_array().unwrap().len(), 1);
    assert_eq!(done[0]["comment"], "Called the patient; safe.", "the first acknowledgement stays");
    assert!(metrics.text.contains(r#"alerts_acknowledged_total{trial="demo"} 1"#), "{}", metrics.text);
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'alert.acknowledged'"), 1);
    let reason = app.database_text(&format!(
        "SELECT reason FROM audit_events WHERE action = 'alert.acknowledged' AND entity_id = '{alert_id}'"
    ));
    assert_eq!(reason, "Called the patient; safe.");
}

#[tokio::test]
async fn acknowledge_rejects_bad_input_in_both_languages() {
    let app = spawn_app().await;
    submit_created(&app, "demo", "phq9", &severe_phq9("P-001")).await;
    let alerts = app.list_alerts("demo", "", "en").await.json()["alerts"].clone();
    let alert_id = alerts[0]["alertId"].as_str().unwrap().to_owned();

    let blank_en = app.acknowledge_alert(&alert_id, &json!({ "comment": "  \n " }), "en").await;
    let blank_zh = app.acknowledge_alert(&alert_id, &json!({ "comment": "  \n " }), "zh-CN").await;
    let missing = app.acknowledge_alert(&alert_id, &json!({}), "en").await;
    let mistyped = app.acknowledge_alert(&alert_id, &json!({ "comment": 7, "status": "closed" }), "zh-CN").await;
    let not_object = app.acknowledge_alert(&alert_id, &json!(["comment"]), "en").await;
    let unknown = app.acknowledge_alert("00000000-0000-7000-8000-000000000000", &json!({ "comment": "x" }), "en").await;
    let plain_text = app
        .post(
            &format!("/v1/alerts/{alert_id}/acknowledge"),
            Some("text/plain"),
            b"handled".to_vec(),
            &[("authorization", &format!("Bearer {OPERATOR_TOKEN}"))],
        )
        .await;

    assert_eq!(blank_en.status, 422, "{}", blank_en.text);
    assert_eq!(blank_en.json()["code"], "invalid_fields");
    assert_eq!(blank_en.error_codes(), ["blank"]);
    assert_eq!(blank_en.json()["errors"][0]["path"], "/comment");
    assert!(blank_en.json()["errors"][0]["message"].as_str().unwrap().contains("only spaces"), "{}", blank_en.text);
    assert_eq!(blank_en.content_language.as_deref(), Some("en"));
    assert_eq!(blank_zh.status, 422, "{}", blank_zh.text);
    assert!(blank_zh.json()["errors"][0]["message"].as_str().unwrap().contains("空格"), "{}", blank_zh.text);
    assert!(blank_zh.json()["message"].as_str().unwrap().contains("未做任何更改"), "{}", blank_zh.text);
    assert_eq!(blank_zh.content_language.as_deref(), Some("zh-CN"));
    assert_eq!(missing.status, 422, "{}", missing.text);
    assert_eq!(missing.error_codes(), ["required"]);
    assert_eq!(mistyped.status, 422, "{}", mistyped.text);
    assert_eq!(mistyped.error_codes(), ["unknown_field", "wrong_type"]);
    assert_eq!(not_object.status, 400, "{}", not_object.text);
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.json()["code"], "alert_not_found");
    assert_eq!(plain_text.status, 415, "{}", plain_text.text);

    let stored = app.list_alerts("demo", "?status=acknowledged", "en").await;
    assert_eq!(stored.json()["alerts"], json!([]), "no bad request acknowledged anything");
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'alert.acknowledged'"), 0);
}

#[tokio::test]
async fn alerts_list_rejects_bad_parameters() {
    let app = spawn_app().await;

    let bad_status = app.list_alerts("demo", "?status=closed", "en").await;
    let bad_status_zh = app.list_alerts("demo", "?status=closed", "zh-CN").await;
    let zero_limit = app.list_alerts("demo", "?limit=0", "en").await;
    let huge_limit = app.list_alerts("demo", "?limit=501", "en").await;
    let unknown_parameter = app.list_alerts("demo", "?formId=phq9", "en").await;
    let unknown_trial = app.list_alerts("nope", "", "en").await;

    assert_eq!(bad_status.status, 400, "{}", bad_status.text);
    assert_eq!(bad_status.error_codes(), ["invalid_alert_status"]);
    assert!(bad_status.text.contains("open or acknowledged"), "{}", bad_status.text);
    assert!(bad_status_zh.text.contains("必须是 open 或 acknowledged"), "{}", bad_status_zh.text);
    assert_eq!(zero_limit.status, 400, "{}", zero_limit.text);
    assert_eq!(huge_limit.status, 400, "{}", huge_limit.text);
    assert_eq!(unknown_parameter.status, 400, "{}", unknown_parameter.text);
    assert_eq!(unknown_parameter.error_codes(), ["invalid_query_parameters"]);
    assert_eq!(unknown_trial.status, 404, "{}", unknown_trial.text);
}

#[tokio::test]
async fn alerts_require_operator_token() {
    let app = spawn_app().await;
    submit_created(&app, "demo", "phq9", &severe_phq9("P-001")).await;
    let alert_id = app.list_alerts("demo", "", "en").await.json()["alerts"][0]["alertId"].as_str().unwrap().to_owned();
    let path = format!("/v1/alerts/{alert_id}/acknowledge");
    let body = serde_json::to_vec(&json!({ "comment": "x" })).unwrap();

    let anonymous_list = app.get("/v1/trials/demo/alerts").await;
    let wrong_list = app.get_with_token("/v1/trials/demo/alerts", "not-the-token").await;
    let anonymous_ack = app.post(&path, Some("application/json"), body.clone(), &[]).await;
    let wrong_ack = app.post(&path, Some("application/json"), body, &[("authorization", "Bearer not-the-token")]).await;

    for (case, reply) in
        [("list", &anonymous_list), ("list, wrong token", &wrong_list), ("acknowledge", &anonymous_ack)]
    {
        assert_eq!(reply.status, 401, "{case}: {}", reply.text);
        assert_eq!(reply.json()["code"], "unauthorized", "{case}");
    }
    assert_eq!(wrong_ack.status, 401, "{}", wrong_ack.text);
    let stored = app.list_alerts("demo", "", "en").await;
    assert_eq!(stored.json()["alerts"][0]["status"], "open", "no unauthorized acknowledgement");
}

/// A diary entry raises an alert due in two seconds. The server's escalation task
/// escalates it once: the listing shows `escalatedAt`, the relay publishes an
/// `alert.escalated` event, an audit row by `system` is written, and the metrics
/// count it. Site staff can still acknowledge it afterwards.
#[tokio::test]
async fn overdue_alert_escalates_through_serve() {
    let app = spawn_app().await;
    submit_created(&app, "fixtures", "diary", &painful_diary()).await;

    let escalated = wait_for_escalation(&app).await;
    let alert_id = escalated["alertId"].as_str().unwrap().to_owned();
    let messages = app.outbox_messages(3).await;
    let metrics = app.metrics_with(r#"alerts_escalated_total{trial="fixtures"} 1"#).await;
    let acknowledged = app.acknowledge_alert(&alert_id, &json!({ "comment": "Reached the patient late." }), "en").await;

    assert_eq!(escalated["rule"], "pain-severe");
    assert_eq!(escalated["message"], "Pain is 9 or more: call the patient.");
    assert_eq!(escalated["status"], "open");
    assert!(time(&escalated["escalatedAt"]) >= time(&escalated["dueAt"]), "{escalated}");
    assert_eq!(time(&escalated["dueAt"]) - time(&escalated["raisedAt"]), time::Duration::seconds(2));

    let types: Vec<&str> = messages.iter().map(|message| message["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["submission.accepted", "alert.raised", "alert.escalated"]);
    assert_eq!(messages[1]["payload"]["alertId"], alert_id.as_str());
    let event = &messages[2];
    assert_eq!(event["payload"]["alertId"], alert_id.as_str());
    assert_eq!(event["trialId"], "fixtures");
    assert_eq!(event["patientId"], "P-0042");
    assert_eq!(event["submissionId"], escalated["submissionId"]);
    assert_eq!(time(&event["payload"]["dueAt"]), time(&escalated["dueAt"]));

    assert!(metrics.contains("alerts_open 1"), "{metrics}");
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'alert.escalated' AND actor = 'system'"), 1);

    assert_eq!(acknowledged.status, 200, "{}", acknowledged.text);
    assert_eq!(acknowledged.json()["escalatedAt"], escalated["escalatedAt"], "the escalation stays on record");
    assert_eq!(app.count("SELECT count(*) FROM outbox_events WHERE event_type = 'alert.escalated'"), 1);
}

/// Polls the fixtures trial's alerts until one has escalated, for at most
/// [`ESCALATION_WAIT`], and returns it.
async fn wait_for_escalation(app: &TestApp) -> Value {
    let started = std::time::Instant::now();
    while started.elapsed() < ESCALATION_WAIT {
        let alerts = app.list_alerts("fixtures", "", "en").await.json()["alerts"].clone();
        if let Some(alert) = alerts.as_array().and_then(|alerts| alerts.iter().find(|a| !a["escalatedAt"].is_null())) {
            return alert.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no alert escalated within {} s", ESCALATION_WAIT.as_secs());
}
