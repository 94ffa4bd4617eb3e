//! Reading stored submissions, health and readiness, and unknown routes.

use crate::helpers::{OPERATOR_TOKEN, phq9_envelope, spawn_app};

#[tokio::test]
async fn get_submission_requires_operator_token() {
    let app = spawn_app().await;
    let envelope = phq9_envelope();
    let id = envelope["submissionId"].as_str().unwrap().to_owned();
    assert_eq!(app.submit("demo", "phq9", &envelope).await.status, 201);

    let anonymous = app.get_submission(&id, None).await;
    let wrong = app.get_submission(&id, Some("wrong-token")).await;
    let operator = app.get_submission(&id, Some(OPERATOR_TOKEN)).await;

    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["code"], "unauthorized");
    let lowercase = app
        .client
        .get(format!("{}/v1/submissions/{id}", app.address))
        .header("authorization", format!("bearer {OPERATOR_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lowercase.status().as_u16(), 200, "the scheme is case-insensitive");
    let challenge = app.client.get(format!("{}/v1/submissions/{id}", app.address)).send().await.unwrap();
    assert_eq!(challenge.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(wrong.status, 401);
    assert_eq!(operator.status, 200);
    let stored = operator.json();
    assert_eq!(stored["submissionId"], id.as_str());
    assert_eq!(stored["patientId"], "P-0001");
    assert_eq!(stored["answers"]["/44250-9"]["system"], "http://loinc.org", "normalized to a full Coding");
    assert_eq!(stored["received"], envelope["answers"], "raw answers as sent");
}

#[tokio::test]
async fn get_unknown_submission_is_404() {
    let app = spawn_app().await;

    let reply = app.get_submission("5d0c6a5e-7d5c-4f0e-9a53-2f4d7a3b1c10", Some(OPERATOR_TOKEN)).await;

    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["code"], "submission_not_found");
}

#[tokio::test]
async fn health_and_readiness_report_ok() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status, 200);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test]
async fn unknown_route_gets_json_404() {
    let app = spawn_app().await;

    let reply = app.get("/v2/nothing").await;
    let wrong_method = app.get("/api/collection/submit").await;

    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["code"], "not_found");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["code"], "method_not_allowed");
}

/// A clean stop lets the relay mark what it published, so nothing that
/// reached the sink is waiting to be sent again at the next start.
#[tokio::test]
async fn stop_marks_published_events_delivered() {
    let app = spawn_app().await;
    let submissions = (0..40).map(|_| phq9_envelope()).collect::<Vec<_>>();
    futures::future::join_all(submissions.iter().map(|envelope| app.submit("demo", "phq9", envelope))).await;

    let dir = app.stop();

    let published = std::fs::read_to_string(dir.path().join("var/outbox.ndjson")).unwrap_or_default();
    let delivered = dir.database.count("SELECT count(*) FROM outbox_events WHERE delivered_at IS NOT NULL");
    assert_eq!(published.lines().count() as i64, delivered, "every published line is marked delivered");
}

#[tokio::test]
async fn stop_drains_and_keeps_submissions() {
    let app = spawn_app().await;
    assert_eq!(app.submit("demo", "phq9", &phq9_envelope()).await.status, 201);

    let dir = app.stop();

    let rows = dir.database.count("SELECT count(*) FROM submissions");
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn dead_letters_need_the_operator_token() {
    let app = spawn_app().await;

    let anonymous = app.get("/v1/outbox/dead-letters").await;
    let wrong = app.get_with_token("/v1/outbox/dead-letters", "not-the-token").await;

    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(wrong.status, 401, "{}", wrong.text);
}

#[tokio::test]
async fn dead_letters_list_is_empty_when_all_delivered() {
    let app = spawn_app().await;
    let stored = app.submit("demo", "phq9", &phq9_envelope()).await;
    assert_eq!(stored.status, 201, "{}", stored.text);
    app.outbox_messages(1).await;

    let reply = app.get_with_token("/v1/outbox/dead-letters", OPERATOR_TOKEN).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json(), serde_json::json!({"events": [], "next": null}));
}

#[tokio::test]
async fn dead_letters_reject_bad_paging() {
    let app = spawn_app().await;

    for query in ["limit=0", "limit=501", "after=abc", "cursor=1", "status=open"] {
        let reply = app.get_with_token(&format!("/v1/outbox/dead-letters?{query}"), OPERATOR_TOKEN).await;

        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(reply.json()["code"], "invalid_request", "{query}");
    }
}

#[tokio::test]
async fn dead_letters_bad_paging_names_their_own_parameters() {
    let app = spawn_app().await;
    let path = format!("{}/v1/outbox/dead-letters?status=open", app.address);

    let english = app.client.get(&path).bearer_auth(OPERATOR_TOKEN).header("accept-language", "en").send().await;
    let chinese = app.client.get(&path).bearer_auth(OPERATOR_TOKEN).header("accept-language", "zh-CN").send().await;
    let english: serde_json::Value = english.unwrap().json().await.unwrap();
    let chinese: serde_json::Value = chinese.unwrap().json().await.unwrap();

    let english = english["errors"][0]["message"].as_str().unwrap().to_owned();
    let chinese = chinese["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(english.contains("Use only after, limit;"), "{english}");
    assert!(!english.contains("status"), "the endpoint takes no status: {english}");
    assert!(chinese.contains("只能使用 after、limit"), "{chinese}");
}
