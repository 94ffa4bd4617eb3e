//! FHIR R4 `QuestionnaireResponse` submissions, using real public response
//! files unchanged.

use crate::helpers::{OPERATOR_TOKEN, spawn_app};

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/real/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

#[tokio::test]
async fn fhir_sdc_phq9_response_is_stored_as_sent() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");

    let reply = app.submit_fhir("fixtures", "sdc-phq9", "", bytes.clone()).await;

    assert_eq!(reply.status, 201, "{}", reply.text);
    let receipt = reply.json();
    assert_eq!(receipt["submissionId"], "questionnaireresponse-sdc-profile-example-PHQ9");
    assert_eq!(receipt["formVersion"], "2.7");
    let stored = app.get_submission("questionnaireresponse-sdc-profile-example-PHQ9", Some(OPERATOR_TOKEN)).await;
    assert_eq!(stored.status, 200);
    let stored_json = stored.json();
    assert_eq!(stored_json["source"], "fhir");
    assert_eq!(stored_json["patientId"], "proband");
    assert_eq!(stored_json["completedAt"], "2019-08-21T20:36:57.544Z");
    let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(stored_json["received"], original, "the whole resource is kept");
}

#[tokio::test]
async fn fhir_replay_of_same_file_is_idempotent() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");

    let first = app.submit_fhir("fixtures", "sdc-phq9", "", bytes.clone()).await;
    let second = app.submit_fhir("fixtures", "sdc-phq9", "", bytes).await;

    assert_eq!(first.status, 201);
    assert_eq!(second.status, 200);
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 1);
}

#[tokio::test]
async fn fhir_response_without_subject_takes_query_patient() {
    let app = spawn_app().await;
    let bytes = fixture("lforms__hidden-item-questionnaire-response.R4.json");

    let without = app.submit_fhir("fixtures", "hidden-items", "", bytes.clone()).await;
    let with = app.submit_fhir("fixtures", "hidden-items", "?patientId=P-0042", bytes).await;

    assert_eq!(without.status, 400, "{}", without.text);
    assert_eq!(without.json()["errors"][0]["item"], "subject");
    assert_eq!(with.status, 201, "{}", with.text);
    let stored = app.get_submission("calculatedExpressionResponse", Some(OPERATOR_TOKEN)).await.json();
    assert_eq!(stored["patientId"], "P-0042");
}

#[tokio::test]
async fn fhir_repeating_group_over_max_is_rejected() {
    let app = spawn_app().await;
    let bytes = fixture("lforms__qr-with-repeating-group-exceed-maxOccurs.json");

    let reply = app.submit_fhir("fixtures", "occurs", "?patientId=P-0001", bytes).await;

    // The file has neither id nor identifier: it cannot be stored
    // idempotently, so the envelope is refused before the answers.
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["errors"][0]["item"], "id");
}

#[tokio::test]
async fn fhir_findings_point_into_item_array() {
    let app = spawn_app().await;
    let mut resource: serde_json::Value =
        serde_json::from_slice(&fixture("lforms__qr-with-repeating-group-exceed-maxOccurs.json")).unwrap();
    resource["id"] = serde_json::json!("occurs-test-1");

    let reply =
        app.submit_fhir("fixtures", "occurs", "?patientId=P-0001", serde_json::to_vec(&resource).unwrap()).await;

    assert_eq!(reply.status, 422, "{}", reply.text);
    let codes = reply.error_codes();
    assert!(codes.contains(&"too_many_repeats".to_owned()), "{codes:?}");
    assert!(codes.contains(&"required".to_owned()), "{codes:?}");
    let body = reply.json();
    assert!(
        body["errors"].as_array().unwrap().iter().all(|e| e["path"].as_str().unwrap().starts_with("/item")),
        "{body}"
    );
}

#[tokio::test]
async fn fhir_rejects_other_resource_types_and_drafts() {
    let app = spawn_app().await;
    let questionnaire = fixture("lforms__phq9.json");
    let mut draft: serde_json::Value = serde_json::from_slice(&fixture(
        "hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json",
    ))
    .unwrap();
    draft["status"] = serde_json::json!("in-progress");

    let wrong_type = app.submit_fhir("fixtures", "sdc-phq9", "?patientId=P-1", questionnaire).await;
    let in_progress = app.submit_fhir("fixtures", "sdc-phq9", "", serde_json::to_vec(&draft).unwrap()).await;

    assert_eq!(wrong_type.status, 400);
    assert!(wrong_type.error_codes().contains(&"not_questionnaire_response".to_owned()));
    assert_eq!(in_progress.status, 400);
    assert_eq!(in_progress.error_codes(), ["unsupported_status"]);
}

#[tokio::test]
async fn fhir_rejects_response_for_other_questionnaire() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");

    let reply = app.submit_fhir("fixtures", "numbers", "", bytes).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["questionnaire_mismatch"]);
    assert_eq!(app.count("SELECT count(*) FROM submissions"), 0);
}

#[tokio::test]
async fn fhir_rejects_conflicting_patient_ids() {
    let app = spawn_app().await;
    let bytes = fixture("hl7-sdc__QuestionnaireResponse-questionnaireresponse-sdc-profile-example-PHQ9.json");

    let reply = app.submit_fhir("fixtures", "sdc-phq9", "?patientId=P-0009", bytes).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_codes(), ["patient_mismatch"]);
}
