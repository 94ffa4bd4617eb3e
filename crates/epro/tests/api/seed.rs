//! The seed-compatible endpoint `POST /api/collection/submit`.

use serde_json::json;

use crate::helpers::{OPERATOR_TOKEN, phq9_answers, spawn_app};

fn seed_envelope() -> serde_json::Value {
    let mut answers = phq9_answers();
    answers["completedAt"] = json!("2026-12-04T21:00:00+08:00");
    json!({
        "patientId": "P-0001",
        "trialId": "demo",
        "formId": "phq9",
        "formContent": answers.to_string(),
    })
}

#[tokio::test]
async fn seed_accepts_form_content_string() {
    let app = spawn_app().await;
    let mut envelope = seed_envelope();
    let id = uuid::Uuid::new_v4().to_string();
    envelope["submissionId"] = json!(id);

    let reply = app.submit_seed(&envelope, &[("accept-language", "en")]).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["status"], "success");
    assert_eq!(body["submissionId"], id.as_str());
    assert_eq!(body["formId"], "phq9");
    let stored = app.get_submission(&id, Some(OPERATOR_TOKEN)).await.json();
    assert_eq!(stored["source"], "seed");
    assert_eq!(stored["completedAt"], "2026-12-04T21:00:00+08:00", "completedAt read from formContent");
}

#[tokio::test]
async fn seed_idempotency_key_deduplicates() {
    let app = spawn_app().await;
    let key = uuid::Uuid::new_v4().to_string();
    let headers = [("idempotency-key", key.as_str())];

    let first = app.submit_seed(&seed_envelope(), &headers).await;
    let second = app.submit_seed(&seed_envelope(), &headers).await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200);
    assert_eq!(first.json()["submissionId"], key.as_str());
    assert_eq!(first.json()["receivedAt"], second.json()["receivedAt"], "the replay returns the original receipt");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
}

#[tokio::test]
async fn seed_rejects_form_content_that_is_not_object() {
    let app = spawn_app().await;
    for content in [json!("[1,2,3]"), json!("not json"), json!({"a": 1})] {
        let mut envelope = seed_envelope();
        envelope["formContent"] = content.clone();

        let reply = app.submit_seed(&envelope, &[("accept-language", "en")]).await;

        assert_eq!(reply.status, 400, "{content}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["status"], "error", "{content}");
        assert_eq!(body["errors"][0]["item"], "formContent", "{content}");
    }
}

#[tokio::test]
async fn seed_validation_failure_is_400_with_errors() {
    let app = spawn_app().await;
    let mut envelope = seed_envelope();
    envelope["formContent"] = json!(r#"{"/44250-9": "nope"}"#);
    envelope["submissionId"] = json!(uuid::Uuid::new_v4().to_string());

    let reply = app.submit_seed(&envelope, &[("accept-language", "zh-CN")]).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "validation_failed", "same code as the versioned API");
    assert_eq!(body["submissionId"], envelope["submissionId"]);
    assert!(body["message"].as_str().unwrap().contains('，'), "Chinese message: {body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["code"] == "not_an_option" && e["path"] == "/formContent/~144250-9"), "{body}");
    assert!(errors.iter().filter(|e| e["code"] == "required").count() >= 7, "{body}");
}

#[tokio::test]
async fn seed_requires_form_id_for_multi_form_trial() {
    let app = spawn_app().await;
    let mut envelope = seed_envelope();
    envelope.as_object_mut().unwrap().remove("formId");

    let reply = app.submit_seed(&envelope, &[("accept-language", "en")]).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["form_required"]);
    let message = reply.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("phq9") && message.contains("gad7"), "lists the forms: {message}");
    assert_eq!(message.matches("phq9").count(), 1, "each form once: {message}");
}

#[tokio::test]
async fn seed_without_id_deduplicates_by_content() {
    let app = spawn_app().await;

    let first = app.submit_seed(&seed_envelope(), &[]).await;
    let second = app.submit_seed(&seed_envelope(), &[]).await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json()["submissionId"], second.json()["submissionId"], "derived from the content");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
}

#[tokio::test]
async fn seed_rejects_bad_idempotency_key_as_header() {
    let app = spawn_app().await;

    let reply = app.submit_seed(&seed_envelope(), &[("idempotency-key", "not a uuid")]).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    let error = &reply.json()["errors"][0];
    assert_eq!(error["item"], "Idempotency-Key");
    assert_eq!(error["path"], "", "a header has no place in the body");
}

/// The old request format has no completion time, so the server stamps the
/// receipt time. A retry of the same request used to hash to other content
/// (a later stamp) and got 409 instead of the original receipt.
#[tokio::test]
async fn seed_retry_without_completion_time_returns_receipt() {
    let app = spawn_app().await;
    let mut envelope = seed_envelope();
    envelope["formContent"] = json!(phq9_answers().to_string());
    let id = uuid::Uuid::new_v4().to_string();
    envelope["submissionId"] = json!(id);
    let key = uuid::Uuid::new_v4().to_string();
    let mut keyed = seed_envelope();
    keyed["formContent"] = json!(phq9_answers().to_string());

    let first = app.submit_seed(&envelope, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let retry = app.submit_seed(&envelope, &[]).await;
    let keyed_first = app.submit_seed(&keyed, &[("idempotency-key", &key)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let keyed_retry = app.submit_seed(&keyed, &[("idempotency-key", &key)]).await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(retry.status, 200, "a retry is not a conflict: {}", retry.text);
    assert_eq!(retry.json()["submissionId"], id.as_str());
    assert_eq!(keyed_first.status, 200, "{}", keyed_first.text);
    assert_eq!(keyed_retry.status, 200, "a keyed retry is not a conflict: {}", keyed_retry.text);
    assert_eq!(keyed_first.json()["submissionId"], keyed_retry.json()["submissionId"]);
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 2);
}
