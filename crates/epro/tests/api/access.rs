//! Access control through the real server: every role against every endpoint,
//! including the site boundary, and patient tokens used where they do not belong.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, TestApp, phq9_answers, spawn_app_requiring_tokens};

/// One row of the role matrix: a label, the request, and the callers allowed to
/// make it.
type Row = (&'static str, Method, String, Option<Value>, Vec<&'static str>);

/// A staff member or patient of the test, with their token.
struct Caller {
    name: &'static str,
    token: Option<String>,
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.address)).header("accept-language", "en");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request must reach the server");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a staff account through the API with the ops (admin) token and returns
/// its token.
async fn create_staff(app: &TestApp, staff_id: &str, roles: Value) -> String {
    let body = json!({ "staffId": staff_id, "displayName": staff_id, "roles": roles });
    let (status, reply) = send(app, Method::POST, "/v1/staff", Some(OPERATOR_TOKEN), Some(&body)).await;
    assert_eq!(status, 201, "creating {staff_id}: {reply}");
    reply["token"]["token"].as_str().expect("the reply shows the token").to_owned()
}

/// Enrols a patient with the ops token and returns the patient's token.
async fn enrol(app: &TestApp, patient_id: &str, site_id: &str) -> String {
    let body = json!({ "patientId": patient_id, "siteId": site_id });
    let (status, reply) = send(app, Method::POST, "/v1/trials/demo/patients", Some(OPERATOR_TOKEN), Some(&body)).await;
    assert_eq!(status, 201, "enrolling {patient_id}: {reply}");
    let token = reply["token"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("epro_p_"), "token {token:?}");
    assert_eq!(token.len(), 71, "prefix and 64 hex digits: {token:?}");
    token
}

/// A one-item questionnaire to publish. It is small on purpose: the server answers a
/// forbidden caller before reading the body, and the client of a large body would see
/// the connection close while it is still sending.
fn small_questionnaire() -> Value {
    json!({
        "resourceType": "Questionnaire",
        "status": "active",
        "title": "Pain today",
        "item": [{ "linkId": "pain", "text": "Pain today, 0 to 10", "type": "integer", "required": true }],
    })
}

fn envelope(patient_id: &str) -> Value {
    json!({
        "submissionId": uuid::Uuid::new_v4().to_string(),
        "patientId": patient_id,
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": phq9_answers(),
    })
}

/// Submits for `patient_id` with `token` and returns the status and reply.
async fn submit(app: &TestApp, token: Option<&str>, patient_id: &str) -> (u16, Value) {
    send(app, Method::POST, "/v1/trials/demo/forms/phq9/submissions", token, Some(&envelope(patient_id))).await
}

#[tokio::test]
async fn role_matrix_covers_every_endpoint() {
    let app = spawn_app_requiring_tokens().await;
    let p1 = enrol(&app, "P-site1", "site-01").await;
    let p2 = enrol(&app, "P-site2", "site-02").await;
    let (status, receipt) = submit(&app, Some(&p1), "P-site1").await;
    assert_eq!(status, 201, "{receipt}");
    let submission = receipt["submissionId"].as_str().unwrap().to_owned();

    let callers = [
        Caller { name: "anonymous", token: None },
        Caller { name: "admin", token: Some(create_staff(&app, "adm", json!([{ "role": "admin" }])).await) },
        Caller {
            name: "data_manager",
            token: Some(create_staff(&app, "dm", json!([{ "role": "data_manager", "trialId": "demo" }])).await),
        },
        Caller {
            name: "monitor",
            token: Some(create_staff(&app, "mon", json!([{ "role": "monitor", "trialId": "demo" }])).await),
        },
        Caller {
            name: "investigator_site1",
            token: Some(
                create_staff(&app, "inv1", json!([{ "role": "investigator", "trialId": "demo", "siteId": "site-01" }]))
                    .await,
            ),
        },
        Caller {
            name: "site_staff_site1",
            token: Some(
                create_staff(&app, "ss1", json!([{ "role": "site_staff", "trialId": "demo", "siteId": "site-01" }]))
                    .await,
            ),
        },
        Caller {
            name: "investigator_site2",
            token: Some(
                create_staff(&app, "inv2", json!([{ "role": "investigator", "trialId": "demo", "siteId": "site-02" }]))
                    .await,
            ),
        },
        Caller {
            name: "data_manager_other_trial",
            token: Some(create_staff(&app, "dmx", json!([{ "role": "data_manager", "trialId": "fixtures" }])).await),
        },
        Caller { name: "patient_site1", token: Some(p1.clone()) },
        Caller { name: "patient_site2", token: Some(p2.clone()) },
    ];

    // Each row: a request, and the callers allowed to make it. Every other caller
    // must get 403, or 401 when anonymous.
    let submission_path = format!("/v1/submissions/{submission}");
    let rows: Vec<Row> = vec![
        (
            "submit for P-site1",
            Method::POST,
            "/v1/trials/demo/forms/phq9/submissions".to_owned(),
            Some(envelope("P-site1")),
            vec!["investigator_site1", "site_staff_site1", "patient_site1"],
        ),
        (
            "read P-site1's submission",
            Method::GET,
            submission_path,
            None,
            vec!["data_manager", "monitor", "investigator_site1", "site_staff_site1", "patient_site1"],
        ),
        (
            "list queries",
            Method::GET,
            "/v1/trials/demo/queries".to_owned(),
            None,
            vec!["data_manager", "monitor", "investigator_site1", "site_staff_site1", "investigator_site2"],
        ),
        (
            "list alerts",
            Method::GET,
            "/v1/trials/demo/alerts".to_owned(),
            None,
            vec!["data_manager", "monitor", "investigator_site1", "site_staff_site1", "investigator_site2"],
        ),
        (
            "list patients",
            Method::GET,
            "/v1/trials/demo/patients".to_owned(),
            None,
            vec!["data_manager", "monitor", "investigator_site1", "site_staff_site1", "investigator_site2"],
        ),
        ("export", Method::GET, "/v1/trials/demo/forms/phq9/export".to_owned(), None, vec!["data_manager"]),
        ("codebook", Method::GET, "/v1/trials/demo/forms/phq9/codebook".to_owned(), None, vec!["data_manager"]),
        (
            "trial audit",
            Method::GET,
            "/v1/audit?trialId=demo".to_owned(),
            None,
            vec!["admin", "data_manager", "monitor"],
        ),
        ("whole audit", Method::GET, "/v1/audit".to_owned(), None, vec!["admin"]),
        ("dead letters", Method::GET, "/v1/outbox/dead-letters".to_owned(), None, vec!["admin"]),
        ("list staff", Method::GET, "/v1/staff".to_owned(), None, vec!["admin"]),
        (
            "issue a staff token",
            Method::POST,
            "/v1/staff/dm/tokens".to_owned(),
            Some(json!({ "expiresInDays": 1 })),
            vec!["admin"],
        ),
        (
            "read a version of P-site1's submission",
            Method::GET,
            format!("/v1/submissions/{submission}/versions/1"),
            None,
            vec!["data_manager", "monitor", "investigator_site1", "site_staff_site1", "patient_site1"],
        ),
        (
            "list trials",
            Method::GET,
            "/v1/trials".to_owned(),
            None,
            vec![
                "admin",
                "data_manager",
                "monitor",
                "investigator_site1",
                "site_staff_site1",
                "investigator_site2",
                "data_manager_other_trial",
            ],
        ),
        (
            "read the demo trial",
            Method::GET,
            "/v1/trials/demo".to_owned(),
            None,
            vec!["admin", "data_manager", "monitor", "investigator_site1", "site_staff_site1", "investigator_site2"],
        ),
        (
            "publish a form",
            Method::POST,
            "/v1/trials/demo/forms?formId=pain-today&version=1".to_owned(),
            Some(small_questionnaire()),
            vec!["admin"],
        ),
        (
            "enrol at site-01",
            Method::POST,
            "/v1/trials/demo/patients".to_owned(),
            None,
            vec!["data_manager", "investigator_site1", "site_staff_site1"],
        ),
        (
            "enrol at site-02",
            Method::POST,
            "/v1/trials/demo/patients".to_owned(),
            None,
            vec!["data_manager", "investigator_site2"],
        ),
        (
            "issue a token for P-site1",
            Method::POST,
            "/v1/trials/demo/patients/P-site1/tokens".to_owned(),
            Some(json!({ "expiresInDays": 1 })),
            vec!["data_manager", "investigator_site1", "site_staff_site1"],
        ),
    ];

    let mut failures = Vec::new();
    for (row, (label, method, path, body, allowed)) in rows.iter().enumerate() {
        for (column, caller) in callers.iter().enumerate() {
            let body = match (label, body) {
                (label, _) if label.starts_with("enrol at") => {
                    let site = if label.ends_with("site-01") { "site-01" } else { "site-02" };
                    Some(json!({ "patientId": format!("P-{row}-{column}"), "siteId": site }))
                }
                (_, Some(body)) if label.starts_with("submit") => {
                    let mut body = body.clone();
                    body["submissionId"] = json!(uuid::Uuid::new_v4().to_string());
                    Some(body)
                }
                (_, body) => body.clone(),
            };
            let (status, reply) = send(&app, method.clone(), path, caller.token.as_deref(), body.as_ref()).await;
            let expected_ok = allowed.contains(&caller.name);
            let good = match (expected_ok, caller.token.is_some()) {
                (true, _) => (200..300).contains(&status),
                (false, true) => status == 403 && reply["code"] == "forbidden",
                (false, false) => status == 401 && reply["code"] == "unauthorized",
            };
            if !good {
                let reply: String = reply.to_string().chars().take(200).collect();
                failures.push(format!("{label} by {}: {status} {reply}", caller.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} unexpected replies:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn site_staff_see_only_their_site() {
    let app = spawn_app_requiring_tokens().await;
    let p1 = enrol(&app, "P-a", "site-01").await;
    let p2 = enrol(&app, "P-b", "site-02").await;
    // Item 9 positive raises an alert for each patient.
    for (token, patient) in [(&p1, "P-a"), (&p2, "P-b")] {
        let mut body = envelope(patient);
        body["answers"]["/44260-8"] = json!("LA6569-3");
        let (status, reply) =
            send(&app, Method::POST, "/v1/trials/demo/forms/phq9/submissions", Some(token), Some(&body)).await;
        assert_eq!(status, 201, "{reply}");
    }
    let site1 =
        create_staff(&app, "ss-a", json!([{ "role": "site_staff", "trialId": "demo", "siteId": "site-01" }])).await;
    let manager = create_staff(&app, "dm-a", json!([{ "role": "data_manager", "trialId": "demo" }])).await;

    let (_, all) = send(&app, Method::GET, "/v1/trials/demo/alerts", Some(&manager), None).await;
    let (_, own) = send(&app, Method::GET, "/v1/trials/demo/alerts", Some(&site1), None).await;
    let patients = |reply: &Value| -> Vec<String> {
        reply["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| alert["patientId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(patients(&all), ["P-a", "P-b"]);
    assert_eq!(patients(&own), ["P-a"]);

    let other_alert = all["alerts"][1]["alertId"].as_str().unwrap();
    let comment = json!({ "comment": "Called the patient." });
    let path = format!("/v1/alerts/{other_alert}/acknowledge");
    let (status, reply) = send(&app, Method::POST, &path, Some(&site1), Some(&comment)).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["code"], "forbidden");

    let own_alert = own["alerts"][0]["alertId"].as_str().unwrap();
    let path = format!("/v1/alerts/{own_alert}/acknowledge");
    let (status, reply) = send(&app, Method::POST, &path, Some(&site1), Some(&comment)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["acknowledgedBy"], "staff:ss-a");
    let actor = app.database_text(&format!(
        "SELECT actor FROM audit_events WHERE action = 'alert.acknowledged' AND entity_id = '{own_alert}'"
    ));
    assert_eq!(actor, "staff:ss-a");

    let (_, patients_seen) =
        send(&app, Method::GET, "/v1/trials/demo/patients?siteId=site-02", Some(&site1), None).await;
    assert_eq!(patients_seen["code"], "forbidden");

    let (status, whole_trail) = send(&app, Method::GET, "/v1/audit", Some(&manager), None).await;
    assert_eq!(status, 403, "{whole_trail}");
    assert!(whole_trail["message"].as_str().unwrap().contains("trialId="), "names the fix: {whole_trail}");
}

#[tokio::test]
async fn patient_tokens_are_checked() {
    let app = spawn_app_requiring_tokens().await;
    let own = enrol(&app, "P-own", "site-01").await;
    enrol(&app, "P-other", "site-01").await;

    let (status, reply) = submit(&app, None, "P-own").await;
    assert_eq!((status, reply["code"].as_str()), (401, Some("unauthorized")), "anonymous");

    let (status, reply) = submit(&app, Some(&own), "P-own").await;
    assert_eq!(status, 201, "own patient: {reply}");
    let submission = reply["submissionId"].as_str().unwrap().to_owned();

    let (status, reply) = submit(&app, Some(&own), "P-other").await;
    assert_eq!((status, reply["code"].as_str()), (403, Some("forbidden")), "another patient: {reply}");

    let body = envelope("P-own");
    let (status, reply) =
        send(&app, Method::POST, "/v1/trials/fixtures/forms/sdc-phq9/submissions", Some(&own), Some(&body)).await;
    assert_eq!(status, 403, "another trial: {reply}");

    let (status, _) = send(&app, Method::GET, &format!("/v1/submissions/{submission}"), Some(&own), None).await;
    assert_eq!(status, 200, "own receipt");
    let (status, reply) = send(&app, Method::GET, "/v1/trials/demo/alerts", Some(&own), None).await;
    assert_eq!(status, 403, "alerts with a patient token: {reply}");

    let malformed = ["epro_p_short", "Basic abc", "epro_p_ZZZZ", &own.to_uppercase(), "epro_x_00"];
    for token in malformed {
        let (status, reply) = submit(&app, Some(token), "P-own").await;
        assert_eq!((status, reply["code"].as_str()), (401, Some("unauthorized")), "token {token:?}");
    }
    let unknown = format!("epro_p_{}", "ab".repeat(32));
    let (status, _) = submit(&app, Some(&unknown), "P-own").await;
    assert_eq!(status, 401, "unknown token");

    // Revocation takes effect at once.
    let (status, reply) =
        send(&app, Method::DELETE, "/v1/trials/demo/patients/P-own/tokens", Some(OPERATOR_TOKEN), None).await;
    assert_eq!((status, reply["revoked"].as_u64()), (200, Some(1)), "{reply}");
    let (status, reply) = submit(&app, Some(&own), "P-own").await;
    assert_eq!((status, reply["code"].as_str()), (401, Some("unauthorized")), "revoked: {reply}");

    // An expired token: issued, then its expiry moved into the past in the database.
    let (status, reply) = send(
        &app,
        Method::POST,
        "/v1/trials/demo/patients/P-other/tokens",
        Some(OPERATOR_TOKEN),
        Some(&json!({ "expiresInDays": 1 })),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let expiring = reply["token"].as_str().unwrap().to_owned();
    let token_id = reply["tokenId"].as_str().unwrap().to_owned();
    let (status, _) = submit(&app, Some(&expiring), "P-other").await;
    assert_eq!(status, 201, "fresh token");
    let past = "2020-01-01T00:00:00.000000Z";
    let trigger = match std::env::var("TEST_EPRO_API_BACKEND").as_deref() {
        Ok("postgres") => "patient_tokens_reject_update",
        _ => "patient_tokens_reject_change",
    };
    let sql = format!("UPDATE patient_tokens SET expires_at = '{past}' WHERE token_id = '{token_id}'");
    app.change_bypassing_trigger("patient_tokens", trigger, &sql);
    let (status, reply) = submit(&app, Some(&expiring), "P-other").await;
    assert_eq!((status, reply["code"].as_str()), (401, Some("unauthorized")), "expired: {reply}");

    let security = app.metrics_with("security_events_total{reason=\"forbidden\"}").await;
    assert!(security.contains("security_events_total{reason=\"revoked_token\"}"), "{security}");
    assert!(security.contains("security_events_total{reason=\"expired_token\"}"), "{security}");
    assert!(security.contains("security_events_total{reason=\"malformed_token\"}"), "{security}");

    let audit = app.count("SELECT count(*) FROM audit_events WHERE action = 'patient.tokens_revoked'");
    assert_eq!(audit, 1);
    let leaked =
        app.count(&format!("SELECT count(*) FROM audit_events WHERE CAST(after_value AS TEXT) LIKE '%{}%'", &own[7..]));
    assert_eq!(leaked, 0, "a token reached the audit trail");
}

#[tokio::test]
async fn staff_api_checks_bodies_and_revokes() {
    let app = spawn_app_requiring_tokens().await;

    let body = json!({ "staffId": "x", "displayName": "X", "roles": [
        { "role": "superuser" },
        { "role": "monitor", "trialId": "demo", "siteId": "site-01" },
        { "role": "investigator", "trialId": "demo" },
    ]});
    let (status, reply) = send(&app, Method::POST, "/v1/staff", Some(OPERATOR_TOKEN), Some(&body)).await;
    assert_eq!(status, 422, "{reply}");
    let fields: Vec<&str> = reply["errors"].as_array().unwrap().iter().map(|e| e["item"].as_str().unwrap()).collect();
    assert_eq!(fields, ["roles[0].role", "roles[1].siteId", "roles[2].siteId"], "{reply}");
    let paths: Vec<&str> = reply["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/roles/0/role", "/roles/1/siteId", "/roles/2/siteId"], "JSON Pointers: {reply}");

    let unknown_site = json!({ "staffId": "y", "displayName": "Y", "roles": [
        { "role": "site_staff", "trialId": "demo", "siteId": "site-99" }
    ]});
    let (status, reply) = send(&app, Method::POST, "/v1/staff", Some(OPERATOR_TOKEN), Some(&unknown_site)).await;
    assert_eq!((status, reply["code"].as_str()), (422, Some("unknown_site")), "{reply}");

    let token = create_staff(&app, "mon", json!([{ "role": "monitor", "trialId": "demo" }])).await;
    let (status, me) = send(&app, Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(me["actor"], "staff:mon");
    let again = json!({ "staffId": "mon", "displayName": "Again", "roles": [{ "role": "admin" }] });
    let (status, reply) = send(&app, Method::POST, "/v1/staff", Some(OPERATOR_TOKEN), Some(&again)).await;
    assert_eq!((status, reply["code"].as_str()), (409, Some("staff_exists")));

    let (status, reply) = send(&app, Method::DELETE, "/v1/staff/mon/tokens", Some(OPERATOR_TOKEN), None).await;
    assert_eq!((status, reply["revoked"].as_u64()), (200, Some(1)), "{reply}");
    let (status, _) = send(&app, Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, 401, "revoked staff token");

    let digest_hex = hex::encode(epro_http::auth::digest(&token).0);
    let stored_hex = match std::env::var("TEST_EPRO_API_BACKEND").as_deref() {
        Ok("postgres") => "encode(token_sha256, 'hex')",
        _ => "lower(hex(token_sha256))",
    };
    let stored = app.count(&format!("SELECT count(*) FROM staff_tokens WHERE {stored_hex} = '{digest_hex}'"));
    assert_eq!(stored, 1, "the token is stored as its SHA-256");
    let actions = app.count(
        "SELECT count(*) FROM audit_events WHERE action IN ('staff.created', 'staff.tokens_revoked') AND actor = 'staff:ops'",
    );
    assert_eq!(actions, 2);
}

#[tokio::test]
async fn corrections_and_signatures_follow_roles() {
    let app = spawn_app_requiring_tokens().await;
    let patient = enrol(&app, "P-c", "site-01").await;
    let (status, receipt) = submit(&app, Some(&patient), "P-c").await;
    assert_eq!(status, 201, "{receipt}");
    let id = receipt["submissionId"].as_str().unwrap().to_owned();
    let staff =
        create_staff(&app, "ss-c", json!([{ "role": "site_staff", "trialId": "demo", "siteId": "site-01" }])).await;
    let other_site =
        create_staff(&app, "ss-d", json!([{ "role": "site_staff", "trialId": "demo", "siteId": "site-02" }])).await;
    let investigator =
        create_staff(&app, "inv-c", json!([{ "role": "investigator", "trialId": "demo", "siteId": "site-01" }])).await;
    let second_token = {
        let (status, reply) = send(&app, Method::POST, "/v1/staff/inv-c/tokens", Some(OPERATOR_TOKEN), None).await;
        assert_eq!(status, 201, "{reply}");
        reply["token"].as_str().unwrap().to_owned()
    };
    let correction = json!({
        "baseVersion": 1,
        "answers": { "/44250-9": "LA6569-3" },
        "reason": "Patient misread item 1, confirmed by phone",
    });
    let path = format!("/v1/submissions/{id}/corrections");

    let (status, reply) = send(&app, Method::POST, &path, Some(&other_site), Some(&correction)).await;
    assert_eq!((status, reply["code"].as_str()), (403, Some("forbidden")), "other site: {reply}");
    let (status, reply) = send(&app, Method::POST, &path, Some(&patient), Some(&correction)).await;
    assert_eq!(status, 403, "a patient corrects nothing: {reply}");
    let (status, reply) = send(&app, Method::POST, &path, Some(&staff), Some(&correction)).await;
    assert_eq!(status, 201, "site staff of the patient's site: {reply}");
    assert_eq!(reply["version"], 2);

    let sign_path = format!("/v1/submissions/{id}/versions/2/signature");
    let signing = |credential: &str| json!({ "credential": credential, "meaning": "Reviewed" });
    let (status, reply) = send(&app, Method::POST, &sign_path, Some(&staff), Some(&signing(&staff))).await;
    assert_eq!((status, reply["code"].as_str()), (403, Some("forbidden")), "site staff sign nothing: {reply}");
    let (status, reply) = send(&app, Method::POST, &sign_path, Some(&investigator), Some(&signing(&staff))).await;
    assert_eq!(status, 401, "someone else's token is no signature: {reply}");
    assert_eq!(reply["code"], "signature_credential_invalid");
    let (status, reply) = send(&app, Method::POST, &sign_path, Some(&investigator), Some(&signing(&patient))).await;
    assert_eq!(status, 401, "a patient token is no signature: {reply}");
    let (status, reply) =
        send(&app, Method::POST, &sign_path, Some(&investigator), Some(&signing(&second_token))).await;
    assert_eq!(status, 201, "the investigator's other token signs: {reply}");
    assert_eq!(reply["signer"], "staff:inv-c");

    // The correction's audit row holds answers: a data manager reads them, an admin
    // does not.
    let admin = create_staff(&app, "adm-c", json!([{ "role": "admin" }])).await;
    let manager = create_staff(&app, "dm-c", json!([{ "role": "data_manager", "trialId": "demo" }])).await;
    let path = format!("/v1/audit?submissionId={id}");
    let corrected = |reply: &Value| -> Value {
        reply["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["action"] == "submission.corrected")
            .cloned()
            .expect("the correction's audit row")
    };
    let (status, as_admin) = send(&app, Method::GET, &path, Some(&admin), None).await;
    assert_eq!(status, 200, "{as_admin}");
    let (status, as_manager) = send(&app, Method::GET, "/v1/audit?trialId=demo", Some(&manager), None).await;
    assert_eq!(status, 200, "{as_manager}");
    let hidden = corrected(&as_admin);
    assert_eq!(hidden["valuesRedacted"], true, "{hidden}");
    assert_eq!(hidden["before"], Value::Null);
    assert_eq!(hidden["after"], Value::Null);
    let shown = corrected(&as_manager);
    assert_eq!(shown["valuesRedacted"], false, "{shown}");
    assert!(shown["after"].to_string().contains("LA6569-3"), "{shown}");
}
