//! Corrections and signatures over HTTP. A correction stores version 2 beside
//! the original, with its conflicts, retries and rules run again on each
//! version. A later correction voids signatures, the audit chain stays intact,
//! and exports list every version with its reason.

use serde_json::{Value, json};

use crate::audit::verify;
use crate::helpers::{OPERATOR_TOKEN, Reply, SITE, TestApp, spawn_app};

const REASON: &str = "Transcription error confirmed with the patient by phone";

/// Stores a triage entry with `answers` and returns its submission id.
async fn submit_triage(app: &TestApp, answers: Value) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let envelope = json!({
        "submissionId": id,
        "patientId": "P-0042",
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": answers,
    });
    let reply = app.submit("fixtures", "triage", &envelope).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    id
}

async fn correct(app: &TestApp, id: &str, body: &Value, language: &str) -> Reply {
    let authorization = format!("Bearer {OPERATOR_TOKEN}");
    let headers = [("authorization", authorization.as_str()), ("accept-language", language)];
    let path = format!("/v1/submissions/{id}/corrections");
    app.post(&path, Some("application/json"), serde_json::to_vec(body).unwrap(), &headers).await
}

/// Signs with the ops token, whose account is an investigator at [`SITE`], after
/// enrolling the triage patient there.
async fn sign(app: &TestApp, id: &str, version: &str, credential: &str, language: &str) -> Reply {
    app.enrol("fixtures", "P-0042", SITE).await;
    let authorization = format!("Bearer {OPERATOR_TOKEN}");
    let headers = [("authorization", authorization.as_str()), ("accept-language", language)];
    let path = format!("/v1/submissions/{id}/versions/{version}/signature");
    let body = json!({ "credential": credential, "meaning": "Reviewed and approved" });
    app.post(&path, Some("application/json"), serde_json::to_vec(&body).unwrap(), &headers).await
}

fn correction(base: u64, answers: Value) -> Value {
    json!({ "baseVersion": base, "answers": answers, "reason": REASON })
}

async fn read(app: &TestApp, path: &str) -> Value {
    let reply = app.get_with_token(path, OPERATOR_TOKEN).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json()
}

#[tokio::test]
async fn correction_creates_version_two_keeping_original() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;

    let reply = correct(&app, &id, &correction(1, json!({ "pain": 5 })), "en").await;
    let latest = read(&app, &format!("/v1/submissions/{id}")).await;
    let first = read(&app, &format!("/v1/submissions/{id}/versions/1")).await;
    let second = read(&app, &format!("/v1/submissions/{id}/versions/2")).await;
    let missing = app.get_with_token(&format!("/v1/submissions/{id}/versions/3"), OPERATOR_TOKEN).await;
    let not_a_number = app.get_with_token(&format!("/v1/submissions/{id}/versions/two"), OPERATOR_TOKEN).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let receipt = reply.json();
    assert_eq!(receipt["submissionId"], id);
    assert_eq!(receipt["version"], 2);
    assert_eq!(receipt["replaces"], 1);
    assert_eq!(receipt["status"], "accepted");
    assert_eq!(receipt["queries"], json!([]));
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["answers"], json!({ "pain": 5 }));
    assert_eq!(latest["received"], json!({ "pain": 3 }), "the answers as received stay as they were");
    let versions = latest["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{latest}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["actor"], "patient:P-0042");
    assert_eq!(versions[0]["reason"], Value::Null);
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["actor"], "staff:ops");
    assert_eq!(versions[1]["reason"], REASON);
    assert_eq!(versions[1]["changedItems"], json!(["pain"]));
    assert_eq!(versions[1]["recordedAt"], receipt["correctedAt"]);
    assert_eq!(first["answers"], json!({ "pain": 3 }));
    assert_eq!(first["version"], 1);
    assert_eq!(second["answers"], json!({ "pain": 5 }));
    assert_eq!(second["reason"], REASON);
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(missing.json()["code"], "version_not_found");
    assert_eq!(not_a_number.status, 404, "{}", not_a_number.text);
}

#[tokio::test]
async fn correction_without_reason_is_422() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;

    let missing = correct(&app, &id, &json!({ "baseVersion": 1, "answers": { "pain": 5 } }), "en").await;
    let blank =
        correct(&app, &id, &json!({ "baseVersion": 1, "answers": { "pain": 5 }, "reason": " \n" }), "zh-CN").await;

    assert_eq!(missing.status, 422, "{}", missing.text);
    assert_eq!(missing.json()["code"], "correction_reason_required");
    assert_eq!(missing.json()["errors"][0]["item"], "reason");
    assert_eq!(missing.error_codes(), ["required"]);
    assert!(missing.json()["message"].as_str().unwrap().contains("\"reason\" is required"), "{}", missing.text);
    assert_eq!(blank.status, 422, "{}", blank.text);
    assert_eq!(blank.json()["code"], "correction_reason_required");
    assert_eq!(blank.error_codes(), ["blank"]);
    assert_eq!(blank.content_language.as_deref(), Some("zh-CN"));
    assert!(blank.json()["message"].as_str().unwrap().contains("必须填写“reason”"), "{}", blank.text);
    assert_eq!(app.count("SELECT count(*) FROM submission_versions"), 0);
}

#[tokio::test]
async fn correction_on_old_version_conflicts() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;
    assert_eq!(correct(&app, &id, &correction(1, json!({ "pain": 5 })), "en").await.status, 201);

    let stale = correct(&app, &id, &correction(1, json!({ "pain": 6 })), "en").await;
    let stale_invalid = correct(&app, &id, &correction(1, json!({ "pain": 60 })), "en").await;
    let ahead = correct(&app, &id, &correction(7, json!({ "pain": 6 })), "zh-CN").await;
    let latest = read(&app, &format!("/v1/submissions/{id}")).await;

    assert_eq!(stale.status, 409, "{}", stale.text);
    assert_eq!(stale.json()["code"], "correction_conflict");
    let message = stale.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("the current version is 2"), "{message}");
    assert_eq!(stale_invalid.status, 409, "an outdated base is a conflict before any finding: {}", stale_invalid.text);
    assert_eq!(ahead.status, 409, "{}", ahead.text);
    assert!(ahead.json()["message"].as_str().unwrap().contains("当前版本为 2"), "{}", ahead.text);
    assert_eq!(latest["answers"], json!({ "pain": 5 }), "nothing overwrote version 2");
    assert_eq!(app.count("SELECT count(*) FROM submission_versions"), 1);
}

#[tokio::test]
async fn correction_retry_creates_no_duplicate() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;
    let body = correction(1, json!({ "pain": 5 }));

    let first = correct(&app, &id, &body, "en").await;
    let retry = correct(&app, &id, &body, "en").await;
    let reordered =
        correct(&app, &id, &json!({ "reason": REASON, "answers": { "pain": 5 }, "baseVersion": 1 }), "en").await;
    let other_reason =
        correct(&app, &id, &json!({ "baseVersion": 1, "answers": { "pain": 5 }, "reason": "Other" }), "en").await;

    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.json(), first.json(), "a retry returns the first receipt");
    assert_eq!(reordered.status, 200, "{}", reordered.text);
    assert_eq!(other_reason.status, 409, "another reason is another correction: {}", other_reason.text);
    assert_eq!(app.count("SELECT count(*) FROM submission_versions"), 1);
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'submission.corrected'"), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox_events WHERE event_type = 'submission.corrected'"), 1);
}

#[tokio::test]
async fn correction_reruns_rules_per_version() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;

    let raising = correct(&app, &id, &correction(1, json!({ "pain": 9 })), "en").await;
    let fixing = correct(&app, &id, &correction(2, json!({ "note": "Sharp pain after the fall." })), "en").await;
    let second = read(&app, &format!("/v1/submissions/{id}/versions/2")).await;
    let third = read(&app, &format!("/v1/submissions/{id}/versions/3")).await;
    let latest = read(&app, &format!("/v1/submissions/{id}")).await;

    assert_eq!(raising.status, 201, "{}", raising.text);
    let receipt = raising.json();
    assert_eq!(receipt["status"], "accepted_with_queries");
    assert_eq!(receipt["queries"][0]["code"], "rule_violated");
    assert_eq!(receipt["queries"][0]["item"], "note");
    assert_eq!(receipt["queries"][0]["rule"], "strong-pain-described");
    assert_eq!(second["status"], "accepted_with_queries");
    assert_eq!(second["queries"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["queries"][0]["version"], 2);
    assert_eq!(second["queries"][0]["queryId"], receipt["queries"][0]["queryId"]);
    assert_eq!(fixing.status, 201, "{}", fixing.text);
    assert_eq!(fixing.json()["status"], "accepted");
    assert_eq!(fixing.json()["queries"], json!([]));
    assert_eq!(third["queries"], json!([]), "the fixed version has no query");
    assert_eq!(third["answers"], json!({ "pain": 9, "note": "Sharp pain after the fall." }));
    assert_eq!(latest["status"], "accepted");
    assert_eq!(latest["queries"].as_array().unwrap().len(), 1, "version 2's query stays on record: {latest}");
}

#[tokio::test]
async fn correction_with_invalid_answers_is_422() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;

    let out_of_range = correct(&app, &id, &correction(1, json!({ "pain": 11 })), "en").await;
    let cleared = correct(&app, &id, &correction(1, json!({ "pain": null })), "en").await;
    let unknown = correct(&app, &id, &correction(1, json!({ "mood": 2 })), "en").await;
    let unchanged = correct(&app, &id, &correction(1, json!({ "pain": 3 })), "en").await;
    let unknown_id = correct(&app, "no-such-submission", &correction(1, json!({ "pain": 4 })), "en").await;

    assert_eq!(out_of_range.status, 422, "{}", out_of_range.text);
    assert_eq!(out_of_range.json()["code"], "validation_failed");
    assert_eq!(out_of_range.error_codes(), ["out_of_range"]);
    assert_eq!(out_of_range.json()["errors"][0]["path"], "/answers/pain");
    assert_eq!(cleared.error_codes(), ["required"], "{}", cleared.text);
    assert_eq!(unknown.error_codes(), ["unknown_item"], "{}", unknown.text);
    assert_eq!(unchanged.status, 422, "{}", unchanged.text);
    assert_eq!(unchanged.json()["code"], "invalid_fields");
    assert_eq!(unchanged.error_codes(), ["no_change"]);
    assert_eq!(unknown_id.status, 404, "{}", unknown_id.text);
    assert_eq!(unknown_id.json()["code"], "submission_not_found");
    assert_eq!(app.count("SELECT count(*) FROM submission_versions"), 0);
}

#[tokio::test]
async fn corrections_and_signatures_need_token() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;
    let body = serde_json::to_vec(&correction(1, json!({ "pain": 5 }))).unwrap();

    let correction = app.post(&format!("/v1/submissions/{id}/corrections"), Some("application/json"), body, &[]).await;
    let version = app.get(&format!("/v1/submissions/{id}/versions/1")).await;
    let signature = app
        .post(
            &format!("/v1/submissions/{id}/versions/1/signature"),
            Some("application/json"),
            br#"{"credential": "x", "meaning": "Reviewed"}"#.to_vec(),
            &[],
        )
        .await;

    for reply in [&correction, &version, &signature] {
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(reply.json()["code"], "unauthorized");
    }
}

#[tokio::test]
async fn signature_voided_by_later_correction() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;

    let wrong = sign(&app, &id, "1", "not-the-token", "en").await;
    let signed = sign(&app, &id, "1", OPERATOR_TOKEN, "en").await;
    let again = sign(&app, &id, "1", OPERATOR_TOKEN, "en").await;
    let before = read(&app, &format!("/v1/submissions/{id}")).await;
    assert_eq!(correct(&app, &id, &correction(1, json!({ "pain": 5 })), "en").await.status, 201);
    let after = read(&app, &format!("/v1/submissions/{id}")).await;
    let old_version = sign(&app, &id, "1", OPERATOR_TOKEN, "en").await;
    let missing_version = sign(&app, &id, "9", OPERATOR_TOKEN, "en").await;
    let audit = read(&app, &format!("/v1/audit?submissionId={id}")).await;

    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert_eq!(wrong.json()["code"], "signature_credential_invalid");
    assert_eq!(wrong.json()["errors"][0]["item"], "credential");
    assert_eq!(wrong.error_codes(), ["credential_mismatch"]);
    assert!(!wrong.text.contains("not-the-token"), "the credential is never echoed: {}", wrong.text);
    assert_eq!(signed.status, 201, "{}", signed.text);
    let signature = signed.json();
    assert_eq!(signature["version"], 1);
    assert_eq!(signature["signer"], "staff:ops");
    assert_eq!(signature["meaning"], "Reviewed and approved");
    assert_eq!(signature["state"], "valid");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["signatureId"], signature["signatureId"]);
    assert_eq!(before["signatures"][0]["state"], "valid");
    assert_eq!(after["signatures"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["signatures"][0]["state"], "voided");
    assert_eq!(after["signatures"][0]["voidedByVersion"], 2);
    assert_eq!(after["signatures"][0]["voidedAt"], after["versions"][1]["recordedAt"]);
    assert_eq!(old_version.status, 409, "{}", old_version.text);
    assert_eq!(old_version.json()["code"], "signature_version_not_current");
    assert!(old_version.json()["message"].as_str().unwrap().contains("current version is 2"), "{}", old_version.text);
    assert_eq!(missing_version.status, 404, "{}", missing_version.text);
    assert_eq!(missing_version.json()["code"], "version_not_found");
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["submission.created", "signature.applied", "submission.corrected", "signature.voided"]);
    let corrected = &audit["entries"][2];
    assert_eq!(corrected["reason"], REASON);
    assert_eq!(corrected["before"], json!({ "version": 1, "answers": { "pain": 3 } }));
    assert_eq!(corrected["after"], json!({ "version": 2, "answers": { "pain": 5 } }));
    assert_eq!(audit["entries"][3]["entityId"], signature["signatureId"]);
}

/// `epro audit verify` finds the chain intact after corrections, signatures and
/// voids were appended to it.
#[tokio::test]
async fn audit_chain_intact_after_corrections() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;
    assert_eq!(sign(&app, &id, "1", OPERATOR_TOKEN, "en").await.status, 201);
    assert_eq!(correct(&app, &id, &correction(1, json!({ "pain": 9 })), "en").await.status, 201);
    assert_eq!(correct(&app, &id, &correction(2, json!({ "note": "Described." })), "en").await.status, 201);
    assert_eq!(sign(&app, &id, "3", OPERATOR_TOKEN, "en").await.status, 201);
    let stopped = app.stop();

    let (stdout, stderr, status) = verify(&stopped.path().join("epro.toml"), &[]);

    assert_eq!(status, 0, "intact chain: {stdout} {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("verify prints JSON");
    // The import of the test trials, the test app's staff account and the
    // enrolment before signing add rows of their own.
    let expected =
        "imported, staff created, submission created, enrolled, applied, corrected, voided, corrected, applied";
    assert_eq!(report["entries"], crate::audit::IMPORT_ROWS + 8, "{expected}: {report}");
}

#[tokio::test]
async fn export_lists_every_version_with_reason() {
    let app = spawn_app().await;
    let id = submit_triage(&app, json!({ "pain": 3 })).await;
    let export = |query: &'static str| {
        let app = &app;
        async move {
            let reply =
                app.get_with_token(&format!("/v1/trials/fixtures/forms/triage/export?{query}"), OPERATOR_TOKEN).await;
            assert_eq!(reply.status, 200, "{query}: {}", reply.text);
            reply
        }
    };
    let before = app
        .client
        .get(format!("{}/v1/trials/fixtures/forms/triage/export?format=ndjson", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    let cursor = before.headers()["epro-next-cursor"].to_str().unwrap().to_owned();
    assert_eq!(correct(&app, &id, &correction(1, json!({ "pain": 5 })), "en").await.status, 201);

    let csv = export("format=csv").await;
    let ndjson = export("format=ndjson").await;
    let fhir = export("format=fhir").await;
    let since = app
        .get_with_token(
            &format!("/v1/trials/fixtures/forms/triage/export?format=ndjson&since={cursor}"),
            OPERATOR_TOKEN,
        )
        .await;

    let mut reader = csv::Reader::from_reader(csv.text.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<Vec<String>> = reader.records().map(|row| row.unwrap().iter().map(str::to_owned).collect()).collect();
    let cell = |row: &[String], name: &str| row[header.iter().position(|column| column == name).unwrap()].clone();
    assert_eq!(rows.len(), 2, "{}", csv.text);
    assert_eq!((cell(&rows[0], "version"), cell(&rows[0], "correctionReason")), ("1".to_owned(), String::new()));
    assert_eq!((cell(&rows[1], "version"), cell(&rows[1], "correctionReason")), ("2".to_owned(), REASON.to_owned()));
    assert_eq!((cell(&rows[0], "pain"), cell(&rows[1], "pain")), ("3".to_owned(), "5".to_owned()));
    let lines: Vec<Value> = ndjson.text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["version"].clone(), lines[0]["correctionReason"].clone()), (json!(1), Value::Null));
    assert_eq!((lines[1]["version"].clone(), lines[1]["correctionReason"].clone()), (json!(2), json!(REASON)));
    assert_eq!(lines[1]["answers"], json!({ "pain": 5 }));
    let resources: Vec<Value> = fhir.text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(resources[0]["meta"]["versionId"], "1");
    assert_eq!(resources[1]["meta"]["versionId"], "2");
    assert_eq!(resources[1]["id"], id);
    assert_eq!(resources[1]["status"], "amended");
    let new_lines: Vec<Value> = since.text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(new_lines.len(), 1, "only the correction is new since the cursor: {}", since.text);
    assert_eq!(new_lines[0]["version"], 2);
}

#[tokio::test]
async fn correction_raises_alert_on_new_version() {
    let app = spawn_app().await;
    let envelope = crate::helpers::phq9_envelope();
    let id = envelope["submissionId"].as_str().unwrap().to_owned();
    assert_eq!(app.submit("demo", "phq9", &envelope).await.status, 201);
    let before = app.list_alerts("demo", "", "en").await.json();
    assert_eq!(before["alerts"], json!([]), "item 9 is negative at intake");

    // Item 9 turns positive on review, which the PHQ-9 alert rule of the demo trial flags.
    let body = correction(1, json!({ "/44260-8": "LA6569-3" }));
    let reply = correct(&app, &id, &body, "en").await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let after = app.list_alerts("demo", "", "en").await.json();
    let alerts = after["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{after}");
    assert_eq!(alerts[0]["rule"], "phq9-item9-positive");
    assert_eq!(alerts[0]["submissionId"], id.as_str());
    let events = app.outbox_messages(3).await;
    let raised: Vec<&Value> = events.iter().filter(|event| event["type"] == "alert.raised").collect();
    assert_eq!(raised.len(), 1, "{events:?}");
    assert_eq!(raised[0]["payload"]["version"], 2, "{:?}", raised[0]);
}
