//! The versioned submission endpoint with the native envelope: receipts,
//! replays, conflicts and every kind of bad input.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{OPERATOR_TOKEN, phq9_envelope, spawn_app};

#[tokio::test]
async fn submit_stores_phq9_and_returns_receipt() {
    let app = spawn_app().await;
    let envelope = phq9_envelope();
    let id = envelope["submissionId"].as_str().unwrap();

    let reply = app.submit("demo", "phq9", &envelope).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let receipt = reply.json();
    assert_eq!(receipt["submissionId"], id);
    assert_eq!(receipt["trialId"], "demo");
    assert_eq!(receipt["formId"], "phq9");
    assert_eq!(receipt["formVersion"], "1");
    assert!(receipt["receivedAt"].as_str().unwrap().ends_with('Z'), "{receipt}");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox_events"), 1);
}

#[tokio::test]
async fn submit_writes_outbox_event_without_answers() {
    let app = spawn_app().await;
    let envelope = phq9_envelope();
    assert_eq!(app.submit("demo", "phq9", &envelope).await.status, 201);

    let messages = app.outbox_messages(1).await;

    let message = &messages[0];
    assert_eq!(message["type"], "submission.accepted");
    assert_eq!(message["submissionId"], envelope["submissionId"]);
    assert_eq!(message["trialId"], "demo");
    assert_eq!(message["patientId"], "P-0001");
    assert!(message["eventId"].as_str().is_some_and(|id| !id.is_empty()));
    let text = message.to_string();
    assert!(!text.contains("LA6568-5"), "answers leaked into the outbox: {text}");
}

#[tokio::test]
async fn submit_replay_returns_original_receipt() {
    let app = spawn_app().await;
    let envelope = phq9_envelope();
    let first = app.submit("demo", "phq9", &envelope).await;
    assert_eq!(first.status, 201);

    let replay = app.submit("demo", "phq9", &envelope).await;

    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.json(), first.json(), "a replay returns the original receipt");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox_events"), 1);
}

#[tokio::test]
async fn submit_conflicting_replay_changes_nothing() {
    let app = spawn_app().await;
    let envelope = phq9_envelope();
    let id = envelope["submissionId"].as_str().unwrap().to_owned();
    assert_eq!(app.submit("demo", "phq9", &envelope).await.status, 201);

    let mut changed = envelope.clone();
    changed["answers"]["/44250-9"] = json!("LA6571-9");
    let reply = app.submit("demo", "phq9", &changed).await;

    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.json()["code"], "submission_conflict");
    let stored = app.get_submission(&id, Some(OPERATOR_TOKEN)).await.json();
    assert_eq!(stored["answers"]["/44250-9"]["code"], "LA6568-5", "the stored answer is unchanged");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
}

#[tokio::test]
async fn submit_concurrent_identical_replays_store_one_row() {
    let app = spawn_app().await;
    let envelope = phq9_envelope();

    let replies = join_all((0..20).map(|_| app.submit("demo", "phq9", &envelope))).await;

    let created = replies.iter().filter(|r| r.status == 201).count();
    let replayed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(created, 1, "{replies:?}");
    assert_eq!(replayed, 19, "{replies:?}");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox_events"), 1);
}

#[tokio::test]
async fn submit_concurrent_conflicts_store_one_row() {
    let app = spawn_app().await;
    let base = phq9_envelope();
    let codes = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"];
    let envelopes: Vec<_> = (0..20)
        .map(|i| {
            let mut envelope = base.clone();
            envelope["answers"]["/44250-9"] = json!(codes[i % 4]);
            envelope["patientId"] = json!(format!("P-{i:04}"));
            envelope
        })
        .collect();

    let replies = join_all(envelopes.iter().map(|e| app.submit("demo", "phq9", e))).await;

    let created = replies.iter().filter(|r| r.status == 201).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!(created, 1, "{replies:?}");
    assert_eq!(conflicts, 19, "{replies:?}");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
}

#[tokio::test]
async fn submit_rejects_broken_json_with_position() {
    let app = spawn_app().await;

    let reply = app
        .post(
            "/v1/trials/demo/forms/phq9/submissions",
            Some("application/json"),
            b"{\"patientId\": \"P-1\",\n  oops}".to_vec(),
            &[],
        )
        .await;

    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!(body["code"], "invalid_json");
    assert!(body["message"].as_str().unwrap().contains("第 2 行"), "default language is zh-CN: {body}");
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
}

#[tokio::test]
async fn submit_lists_every_envelope_problem() {
    let app = spawn_app().await;
    let envelope = json!({
        "submissionId": "not-a-uuid",
        "patientId": 42,
        "completedAt": "2026-12-04T20:15:00",
        "answers": [],
        "extra": true
    });

    let reply = app.submit("demo", "phq9", &envelope).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["code"], "invalid_request");
    let mut codes = reply.error_codes();
    codes.sort();
    assert_eq!(codes, ["invalid_submission_id", "missing_offset", "unknown_field", "wrong_type", "wrong_type"]);
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["item"] == "patientId" && e["path"] == "/patientId"), "{body}");
    assert!(errors.iter().any(|e| e["item"] == "extra"), "{body}");
}

#[tokio::test]
async fn submit_rejects_missing_fields() {
    let app = spawn_app().await;

    let reply = app.submit("demo", "phq9", &json!({})).await;

    assert_eq!(reply.status, 400);
    let mut items: Vec<String> =
        reply.json()["errors"].as_array().unwrap().iter().map(|e| e["item"].as_str().unwrap().to_owned()).collect();
    items.sort();
    assert_eq!(items, ["answers", "completedAt", "patientId", "submissionId"]);
    assert!(reply.error_codes().iter().all(|code| code == "required"));
}

#[tokio::test]
async fn submit_rejects_body_that_is_not_object() {
    let app = spawn_app().await;

    let reply =
        app.post("/v1/trials/demo/forms/phq9/submissions", Some("application/json"), b"[1,2]".to_vec(), &[]).await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_codes(), ["wrong_type"]);
}

#[tokio::test]
async fn submit_reports_all_answer_findings() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    envelope["answers"] = json!({
        "/44250-9": "LA9999-9",
        "/44255-8": 1,
        "/44259-0": "LA6570-1",
        "/44254-1": "LA6571-9",
        "/44251-7": "LA6568-5",
        "/44258-2": "LA6569-3",
        "/44252-5": "LA6568-5",
        "not-an-item": "x"
    });

    let reply = app.submit("demo", "phq9", &envelope).await;

    assert_eq!(reply.status, 422, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["code"], "validation_failed");
    let errors = body["errors"].as_array().unwrap();
    let find =
        |item: &str| errors.iter().find(|e| e["item"] == item).unwrap_or_else(|| panic!("no error on {item}: {body}"));
    assert_eq!(find("/44250-9")["code"], "not_an_option");
    assert_eq!(find("/44250-9")["path"], "/answers/~144250-9");
    assert_eq!(find("/44255-8")["code"], "wrong_type");
    assert_eq!(find("/44253-3")["code"], "required", "item 8 is required and missing");
    assert_eq!(find("not-an-item")["code"], "unknown_item");
    assert_eq!(errors.len(), 4, "exactly four findings: {body}");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 0);
}

#[tokio::test]
async fn submit_rejects_out_of_range_pain() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    envelope["answers"] = json!({ "1": 11 });

    let reply = app.submit("demo", "pain-nrs", &envelope).await;

    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["out_of_range"]);
    let message = reply.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains('0') && message.contains("10"), "the message names the range: {message}");
}

#[tokio::test]
async fn submit_explains_quoted_number_and_decimal_comma() {
    let app = spawn_app().await;
    let mut pain = phq9_envelope();
    pain["answers"] = json!({ "1": "5" });
    let mut numbers = phq9_envelope();
    numbers["answers"] = json!({ "904c4c88-1ae6-45cd-89e5-a35d81177909": "72,5" });

    let quoted = app.submit("demo", "pain-nrs", &pain).await;
    let comma = app.submit("fixtures", "numbers", &numbers).await;

    assert_eq!(quoted.status, 422);
    assert_eq!(quoted.error_codes(), ["wrong_type"]);
    let message = quoted.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("without quotes"), "{message}");
    assert_eq!(comma.status, 422);
    assert_eq!(comma.error_codes(), ["wrong_type"]);
    let message = comma.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("72.5"), "{message}");
}

#[tokio::test]
async fn submit_checks_decimal_places_and_quantity() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    envelope["answers"] = json!({
        "904c4c88-1ae6-45cd-89e5-a35d81177909": 12.3456,
        "508db543-88b3-4ce8-809e-1ec9f73b1eb7": 50
    });

    let reply = app.submit("fixtures", "numbers", &envelope).await;

    assert_eq!(reply.status, 422, "{}", reply.text);
    let mut codes = reply.error_codes();
    codes.sort();
    assert_eq!(codes, ["too_many_decimals", "wrong_type"]);
}

#[tokio::test]
async fn submit_handles_utc_offsets() {
    let app = spawn_app().await;
    let cases = [
        ("2026-12-04T20:15:00+05:45", 201, None),
        ("2026-12-04T20:15:00Z", 201, None),
        ("2026-12-04T20:15:00+05", 400, Some("offset_without_colon")),
        ("2026-12-04T20:15:00+0530", 400, Some("offset_without_colon")),
        ("2026-12-04T20:15:00", 400, Some("missing_offset")),
        ("2026-12-04", 400, Some("invalid_datetime")),
        ("2026-12-04T20:15:00-00:00", 400, Some("missing_offset")),
    ];
    for (completed_at, status, code) in cases {
        let mut envelope = phq9_envelope();
        envelope["completedAt"] = json!(completed_at);

        let reply = app.submit("demo", "phq9", &envelope).await;

        assert_eq!(reply.status, status, "{completed_at}: {}", reply.text);
        if let Some(code) = code {
            assert_eq!(reply.error_codes(), [code], "{completed_at}");
        }
    }
}

#[tokio::test]
async fn submit_keeps_device_offset() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    envelope["completedAt"] = json!("2026-12-04T20:15:00+05:45");
    let id = envelope["submissionId"].as_str().unwrap().to_owned();
    assert_eq!(app.submit("demo", "phq9", &envelope).await.status, 201);

    let stored = app.get_submission(&id, Some(OPERATOR_TOKEN)).await.json();

    assert_eq!(stored["completedAt"], "2026-12-04T20:15:00+05:45");
    assert_eq!(app.count("SELECT count(*) FROM submissions WHERE completed_at_offset_seconds = 20700"), 1);
}

#[tokio::test]
async fn submit_rejects_future_completion() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    envelope["completedAt"] = json!(tomorrow.format(&time::format_description::well_known::Rfc3339).unwrap());

    let reply = app.submit("demo", "phq9", &envelope).await;

    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["in_future"]);
}

#[tokio::test]
async fn submit_rejects_body_over_limit() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    envelope["answers"] = json!({ "pad": "" });
    let mut body = serde_json::to_vec(&envelope).unwrap();
    let padding = 1024 * 1024 + 1 - body.len();
    let at = body.len() - 3;
    body.splice(at..at, std::iter::repeat_n(b'x', padding));
    assert_eq!(body.len(), 1024 * 1024 + 1);

    let reply = app.post("/v1/trials/demo/forms/phq9/submissions", Some("application/json"), body, &[]).await;

    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.json()["code"], "payload_too_large");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 0);
}

#[tokio::test]
async fn submit_rejects_streamed_body_over_limit() {
    let app = spawn_app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..17).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));

    let response = app
        .client
        .post(format!("{}/v1/trials/demo/forms/phq9/submissions", app.address))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 413, "chunked bodies count streamed bytes");
}

#[tokio::test]
async fn submit_rejects_deep_nesting_without_crash() {
    let app = spawn_app().await;
    let mut body = b"{\"answers\":".to_vec();
    body.extend(std::iter::repeat_n(b'[', 100_000));
    body.extend(std::iter::repeat_n(b']', 100_000));
    body.push(b'}');

    let reply = app.post("/v1/trials/demo/forms/phq9/submissions", Some("application/json"), body, &[]).await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["code"], "nesting_too_deep");
    assert_eq!(app.get("/healthz").await.status, 200, "the server is still alive");
}

#[tokio::test]
async fn submit_rejects_wrong_content_type() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&phq9_envelope()).unwrap();

    let plain = app.post("/v1/trials/demo/forms/phq9/submissions", Some("text/plain"), body.clone(), &[]).await;
    let missing = app.post("/v1/trials/demo/forms/phq9/submissions", None, body, &[]).await;

    assert_eq!(plain.status, 415);
    assert_eq!(plain.json()["code"], "unsupported_media_type");
    assert_eq!(missing.status, 415);
}

#[tokio::test]
async fn submit_unknown_trial_form_or_version_is_404() {
    let app = spawn_app().await;
    let mut old_version = phq9_envelope();
    old_version["formVersion"] = json!("0.9");

    let trial = app.submit("no-such-trial", "phq9", &phq9_envelope()).await;
    let form = app.submit("demo", "no-such-form", &phq9_envelope()).await;
    let version = app.submit("demo", "phq9", &old_version).await;

    assert_eq!((trial.status, trial.json()["code"].clone()), (404, json!("unknown_trial")));
    assert_eq!((form.status, form.json()["code"].clone()), (404, json!("unknown_form")));
    assert_eq!((version.status, version.json()["code"].clone()), (404, json!("unknown_form_version")));
}

#[tokio::test]
async fn submit_messages_follow_accept_language() {
    let app = spawn_app().await;
    let mut envelope = phq9_envelope();
    envelope["answers"] = json!({ "1": 11 });

    let english = app.submit_in("demo", "pain-nrs", &envelope, "en-US,en;q=0.9").await;
    let chinese = app.submit_in("demo", "pain-nrs", &envelope, "zh-CN,zh;q=0.9,en;q=0.5").await;
    let fallback = app.submit_in("demo", "pain-nrs", &envelope, "fr").await;

    assert_eq!(english.content_language.as_deref(), Some("en"));
    assert!(english.json()["errors"][0]["message"].as_str().unwrap().contains("must be between"));
    assert_eq!(chinese.content_language.as_deref(), Some("zh-CN"));
    assert!(chinese.json()["errors"][0]["message"].as_str().unwrap().contains("之间"));
    assert_eq!(fallback.content_language.as_deref(), Some("zh-CN"), "configured default");
    assert_eq!(english.error_codes(), chinese.error_codes(), "codes never change with language");
}

#[tokio::test]
async fn submit_returns_unicode_byte_for_byte() {
    let app = spawn_app().await;
    // Chinese, an emoji, and combining sequences that NFC would change.
    let note = "头痛 🤕 e\u{301} Z\u{0307}\u{0323} ½";
    let raw = format!(
        r#"{{"submissionId":"{}","patientId":"P-0001","completedAt":"2026-12-04T20:15:00+08:00","answers":{{"note" : "{note}", "pain":3}}}}"#,
        uuid::Uuid::new_v4()
    );
    let id = serde_json::from_str::<serde_json::Value>(&raw).unwrap()["submissionId"].as_str().unwrap().to_owned();

    let reply = app
        .post("/v1/trials/fixtures/forms/diary/submissions", Some("application/json"), raw.clone().into_bytes(), &[])
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let stored = app.get_submission(&id, Some(OPERATOR_TOKEN)).await;

    let expected_raw = format!(r#""received":{{"note" : "{note}", "pain":3}}"#);
    assert!(stored.text.contains(&expected_raw), "raw answers byte for byte: {}", stored.text);
    assert_eq!(stored.json()["answers"]["note"], note);
}

#[tokio::test]
async fn submit_rejects_duplicate_keys() {
    let app = spawn_app().await;
    let raw = format!(
        r#"{{"submissionId":"{}","patientId":"P-0001","completedAt":"2026-12-04T20:15:00+08:00","answers":{{"1":3,"1":7}}}}"#,
        uuid::Uuid::new_v4()
    );

    let reply =
        app.post("/v1/trials/demo/forms/pain-nrs/submissions", Some("application/json"), raw.into_bytes(), &[]).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["duplicate_key"]);
    assert_eq!(reply.json()["errors"][0]["path"], "/answers/1");
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 0);
}

#[tokio::test]
async fn submit_rejects_number_out_of_range() {
    let app = spawn_app().await;
    let raw = format!(
        r#"{{"submissionId":"{}","patientId":"P-0001","completedAt":"2026-12-04T20:15:00+08:00","answers":{{"904c4c88-1ae6-45cd-89e5-a35d81177909":1e400}}}}"#,
        uuid::Uuid::new_v4()
    );

    let reply = app
        .post("/v1/trials/fixtures/forms/numbers/submissions", Some("application/json"), raw.into_bytes(), &[])
        .await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["number_out_of_range"]);
    assert_eq!(reply.json()["errors"][0]["path"], "/answers/904c4c88-1ae6-45cd-89e5-a35d81177909");
}

#[tokio::test]
async fn submit_points_fhir_sent_as_json_to_content_type() {
    let app = spawn_app().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/real/hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json"
    );

    let reply = app
        .post(
            "/v1/trials/fixtures/forms/sdc-phq9/submissions",
            Some("application/json"),
            std::fs::read(path).unwrap(),
            &[],
        )
        .await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["fhir_resource_as_json"]);
}

#[tokio::test]
async fn error_bodies_always_list_errors() {
    let app = spawn_app().await;

    let not_found = app.get("/nowhere").await;
    let conflict_free = app.submit("no-such-trial", "phq9", &phq9_envelope()).await;

    assert_eq!(not_found.json()["errors"], json!([]));
    assert_eq!(conflict_free.json()["errors"], json!([]));
}
