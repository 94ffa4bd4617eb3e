//! The audit trail over HTTP (`GET /v1/audit`) and its check on the command line
//! (`epro audit verify`), after a mixed workload and after a row was changed
//! directly in the database.

use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, TestApp, phq9_envelope, spawn_app};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/real").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()))
}

/// Stores three PHQ-9 submissions of two patients and one FHIR submission with a
/// data query, then answers the query: four `submission.created` rows and one
/// `query.status_changed` row. Returns the patient ids used.
async fn mixed_workload(app: &TestApp) {
    for patient in ["P-001", "P-002", "P-001"] {
        let mut envelope = phq9_envelope();
        envelope["patientId"] = json!(patient);
        let reply = app.submit("demo", "phq9", &envelope).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");
    assert_eq!(app.submit_fhir("fixtures", "sdc-phq9", "", bytes).await.status, 201);

    let queries = app.get_with_token("/v1/trials/fixtures/queries?status=open", OPERATOR_TOKEN).await;
    let query_id =
        queries.json()["queries"][0]["queryId"].as_str().expect("the FHIR example raises a query").to_owned();
    let changed = app
        .client
        .post(format!("{}/v1/queries/{query_id}/status", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "status": "answered", "comment": "Confirmed with the patient." }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
}

/// Audit rows the startup import of the test trials writes: `trial.created` for
/// demo and fixtures, `site.added` for their 2 and 1 sites, and `form.published`
/// for their 3 and 11 forms.
pub(crate) const IMPORT_ROWS: usize = 19;

async fn audit(app: &TestApp, query: &str) -> Value {
    let reply = app.get_with_token(&format!("/v1/audit{query}"), OPERATOR_TOKEN).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    reply.json()
}

#[tokio::test]
async fn audit_lists_chained_rows_with_filters() {
    let app = spawn_app().await;
    mixed_workload(&app).await;

    let all = audit(&app, "").await;
    let patient = audit(&app, "?patientId=P-002").await;
    let first_page = audit(&app, "?limit=2").await;
    let second_page = audit(&app, "?limit=2&after=2").await;
    let query_rows = audit(&app, "?actor=staff:ops").await;
    let future = audit(&app, "?from=2999-01-01T00:00:00Z").await;

    let entries = all["entries"].as_array().unwrap();
    // The import of the trials directory at startup writes the first rows.
    let imported = entries.iter().take_while(|entry| entry["actor"] == "system").count();
    assert_eq!(imported, IMPORT_ROWS, "{entries:?}");
    let entries = &entries[imported..];
    let actions: Vec<&str> = entries.iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    // The test app's staff account comes first.
    let expected = ["staff.created"].into_iter().chain(["submission.created"; 4]).chain(["query.status_changed"]);
    assert_eq!(actions, expected.collect::<Vec<_>>());
    assert_eq!(all["next"], Value::Null);
    assert_eq!(all["entries"][0]["prevHash"], "0".repeat(64), "the first row starts the chain");
    for pair in entries.windows(2) {
        assert_eq!(pair[1]["prevHash"], pair[0]["hash"], "each row links to the one before: {pair:?}");
    }
    let change = &entries[5];
    assert_eq!(change["before"], json!({ "status": "open" }));
    assert_eq!(change["after"], json!({ "status": "answered" }));
    assert_eq!(change["reason"], "Confirmed with the patient.");
    assert!(change["submissionId"].is_string(), "{change}");
    assert!(entries.iter().all(|entry| entry.get("answers").is_none()), "no answers in the trail");

    assert_eq!(patient["entries"].as_array().unwrap().len(), 1, "{patient}");
    assert_eq!(patient["entries"][0]["patientId"], "P-002");
    let seqs =
        |page: &Value| page["entries"].as_array().unwrap().iter().map(|entry| entry["seq"].clone()).collect::<Vec<_>>();
    assert_eq!(seqs(&first_page), [json!(1), json!(2)]);
    assert_eq!(first_page["next"], 2);
    assert_eq!(seqs(&second_page), [json!(3), json!(4)]);
    assert_eq!(seqs(&query_rows), [json!(IMPORT_ROWS + 6)]);
    assert_eq!(future["entries"], json!([]));
}

#[tokio::test]
async fn audit_needs_operator_token_and_valid_parameters() {
    let app = spawn_app().await;

    let anonymous = app.get("/v1/audit").await;
    let bad_from = app
        .client
        .get(format!("{}/v1/audit?from=yesterday", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    let bad_from_status = bad_from.status().as_u16();
    let bad_from: Value = bad_from.json().await.unwrap();

    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(bad_from_status, 400, "{bad_from}");
    assert_eq!(bad_from["errors"][0]["item"], "from", "{bad_from}");
    assert_eq!(bad_from["errors"][0]["code"], "invalid_datetime", "{bad_from}");
    assert!(bad_from["errors"][0]["message"].as_str().unwrap().contains("RFC 3339"), "{bad_from}");
    let too_many = app
        .client
        .get(format!("{}/v1/audit?limit=10001", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let message = too_many["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("from 1 to 10000"), "the message gives this endpoint's range: {message}");
    for query in ["limit=0", "limit=10001", "after=x", "status=open"] {
        let reply = app.get_with_token(&format!("/v1/audit?{query}"), OPERATOR_TOKEN).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
    }
}

/// `epro audit verify` passes after a mixed workload, then names the row an
/// administrator changed in the database behind epro's back.
#[tokio::test]
async fn audit_verify_names_row_changed_in_database() {
    let app = spawn_app().await;
    mixed_workload(&app).await;
    let stopped = app.stop();
    let config = stopped.path().join("epro.toml");

    let intact = verify(&config, &[]);
    let head = serde_json::from_str::<Value>(&intact.0).expect("verify prints JSON");
    let recorded = format!("{}:{}", head["headSeq"], head["headHash"].as_str().unwrap());
    let still_there = verify(&config, &["--expect-head", &recorded]);

    stopped.database.change_bypassing_trigger(
        "audit_events",
        "audit_events_reject_update",
        "UPDATE audit_events SET actor = 'staff:mallory' WHERE seq = 3",
    );
    let broken = verify(&config, &[]);

    assert_eq!(intact.2, 0, "intact chain: {} {}", intact.0, intact.1);
    assert_eq!(head["entries"], IMPORT_ROWS + 6, "{head}");
    assert_eq!(still_there.2, 0, "recorded head still present: {}", still_there.1);
    assert_eq!(broken.2, 1, "a broken chain exits 1: {} {}", broken.0, broken.1);
    assert!(broken.1.contains("audit row 3 does not match its hash"), "{}", broken.1);
    assert_eq!(serde_json::from_str::<Value>(&broken.0).unwrap()["brokenAt"], 3);
}

/// Runs `epro audit verify` and returns its standard output, standard error and
/// exit status.
pub(crate) fn verify(config: &std::path::Path, extra: &[&str]) -> (String, String, i32) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_epro"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .args(extra)
        .env("EPRO_TELEMETRY__LOG_FILTER", "warn")
        .output()
        .expect("run epro audit verify");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}
