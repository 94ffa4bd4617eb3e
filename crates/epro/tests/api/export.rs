//! Exports and the codebook: formats, options, bad input, the audit row, the
//! byte-order mark, formula neutralisation, the cursor, and a read-back with
//! pandas.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{OPERATOR_TOKEN, TestApp, spawn_app};

/// Path of the export test form's export endpoint.
const EXPORT: &str = "/v1/trials/fixtures/forms/export/export";

/// One export reply, read completely.
struct Export {
    status: u16,
    content_type: String,
    cursor: Option<String>,
    bytes: Vec<u8>,
}

impl Export {
    fn text(&self) -> String {
        String::from_utf8(self.bytes.clone()).expect("exports are UTF-8")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Parses NDJSON lines.
    fn lines(&self) -> Vec<Value> {
        self.text().lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
    }

    /// Parses CSV into the header and the rows.
    fn csv(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_reader(self.bytes.as_slice());
        let header = reader.headers().expect("header row").iter().map(str::to_owned).collect();
        let rows =
            reader.records().map(|record| record.expect("CSV record").iter().map(str::to_owned).collect()).collect();
        (header, rows)
    }
}

async fn get(app: &TestApp, path_and_query: &str, token: Option<&str>, language: &str) -> Export {
    let mut request = app.client.get(format!("{}{path_and_query}", app.address)).header("accept-language", language);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request must reach the server");
    let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let status = response.status().as_u16();
    let content_type = header("content-type").unwrap_or_default();
    let cursor = header("epro-next-cursor");
    let bytes = response.bytes().await.expect("whole body").to_vec();
    Export { status, content_type, cursor, bytes }
}

async fn export(app: &TestApp, query: &str) -> Export {
    let separator = if query.is_empty() { "" } else { "?" };
    let reply = get(app, &format!("{EXPORT}{separator}{query}"), Some(OPERATOR_TOKEN), "en").await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text());
    reply
}

/// Answers with every cell kind, a formula-like note, Chinese text and emoji.
fn answers() -> Value {
    json!({
        "change": -3,
        "weight": 72.35,
        "note": "=1+1 疼痛减轻 😀",
        "mood": "poor",
        "slept": true,
        "dose": { "value": 2.5, "unit": "mg" },
        "symptoms": ["headache", "耳鸣"],
        "visit": { "visit.date": "2026-12-01" },
        "meds": [
            { "meds.name": "布洛芬", "meds.count": 2 },
            { "meds.name": "-paracetamol" }
        ]
    })
}

fn envelope(answers: Value) -> Value {
    json!({
        "submissionId": uuid::Uuid::new_v4().to_string(),
        "patientId": "P-0042",
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": answers,
    })
}

/// Submits to the export test form and returns the submission id.
async fn submit(app: &TestApp, answers: Value) -> String {
    let envelope = envelope(answers);
    let reply = app.submit("fixtures", "export", &envelope).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    envelope["submissionId"].as_str().expect("id").to_owned()
}

fn column<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let position = header.iter().position(|column| column == name).unwrap_or_else(|| panic!("no column {name}"));
    &row[position]
}

#[tokio::test]
async fn export_requires_operator_token() {
    let app = spawn_app().await;

    let anonymous = get(&app, EXPORT, None, "en").await;
    let wrong = get(&app, EXPORT, Some("not-the-token"), "en").await;
    let codebook = get(&app, "/v1/trials/fixtures/forms/export/codebook", None, "en").await;

    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert_eq!(anonymous.json()["code"], "unauthorized");
    assert_eq!(wrong.status, 401);
    assert_eq!(codebook.status, 401);
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'export.created'"), 0);
}

#[tokio::test]
async fn export_csv_flattens_and_neutralises() {
    let app = spawn_app().await;
    let id = submit(&app, answers()).await;

    let reply = export(&app, "format=csv").await;
    let (header, rows) = reply.csv();

    assert_eq!(reply.content_type, "text/csv; charset=utf-8");
    assert!(!reply.bytes.starts_with(b"\xEF\xBB\xBF"), "no byte-order mark unless asked");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let cell = |name: &str| column(&header, row, name);
    assert_eq!(cell("submissionId"), id);
    assert_eq!(cell("version"), "1");
    assert_eq!(cell("correctionReason"), "");
    assert_eq!(cell("patientId"), "P-0042");
    assert_eq!(cell("formVersion"), "1");
    assert_eq!(cell("completedAt"), "2026-12-04T12:15:00Z", "completion time in UTC");
    assert_eq!(cell("completedAtOffset"), "+08:00");
    assert!(cell("receivedAt").ends_with('Z'), "{}", cell("receivedAt"));
    assert_eq!(cell("status"), "accepted");
    assert_eq!(cell("queryCount"), "0");
    assert_eq!(cell("score.mood_score"), "2");
    assert_eq!(cell("change"), "-3", "a number stays a number");
    assert_eq!(cell("weight"), "72.35");
    assert_eq!(cell("note"), "'=1+1 疼痛减轻 😀", "a formula-like text cell is neutralised");
    assert_eq!(cell("mood"), "poor");
    assert_eq!(cell("slept"), "true");
    assert_eq!(cell("dose"), "2.5");
    assert_eq!(cell("dose.unit"), "mg");
    assert_eq!(cell("symptoms"), r#"["headache","耳鸣"]"#);
    assert_eq!(cell("visit.date"), "2026-12-01", "groups add no prefix");
    assert_eq!(cell("meds.name"), r#"["布洛芬","-paracetamol"]"#, "one entry per occurrence");
    assert_eq!(cell("meds.count"), "[2,null]", "null where an occurrence has no answer");
    assert_eq!(cell("otherAnswers"), "");
    assert!(!header.iter().any(|name| name == "visit" || name == "meds"), "groups have no column: {header:?}");
}

#[tokio::test]
async fn export_csv_bom_and_label_headers() {
    let app = spawn_app().await;
    submit(&app, json!({ "change": 1 })).await;

    let with_bom = export(&app, "bom=true").await;
    let chinese = export(&app, "header=label&labelLanguage=zh-CN").await;
    let negotiated = get(&app, &format!("{EXPORT}?header=label"), Some(OPERATOR_TOKEN), "zh-CN").await;
    let english = export(&app, "header=label&labelLanguage=en").await;

    assert!(with_bom.bytes.starts_with(b"\xEF\xBB\xBFsubmissionId,"), "{:?}", &with_bom.bytes[..20]);
    let (header, _) = chinese.csv();
    assert!(header.contains(&"与上次就诊相比的变化".to_owned()), "{header:?}");
    assert!(header.contains(&"剂量（单位）".to_owned()), "{header:?}");
    assert!(header.contains(&"submissionId".to_owned()), "fixed columns keep their names");
    assert_eq!(negotiated.csv().0, header, "labelLanguage defaults to Accept-Language");
    let (header, _) = english.csv();
    assert!(header.contains(&"Change since the last visit".to_owned()), "{header:?}");
    assert!(header.contains(&"Dose (unit)".to_owned()), "{header:?}");
}

#[tokio::test]
async fn export_ndjson_keeps_typed_values() {
    let app = spawn_app().await;
    let id = submit(&app, answers()).await;

    let reply = export(&app, "format=ndjson").await;
    let lines = reply.lines();

    assert_eq!(reply.content_type, "application/x-ndjson");
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["submissionId"], id.as_str());
    assert_eq!(line["version"], 1);
    assert_eq!(line["correctionReason"], Value::Null);
    assert_eq!(line["completedAt"], "2026-12-04T12:15:00Z");
    assert_eq!(line["completedAtOffset"], "+08:00");
    assert_eq!(line["scores"], json!({ "mood_score": 2 }));
    assert_eq!(line["answers"]["change"], -3);
    assert_eq!(line["answers"]["weight"], 72.35);
    assert_eq!(line["answers"]["note"], "=1+1 疼痛减轻 😀", "NDJSON keeps the value unchanged");
    assert_eq!(line["answers"]["mood"]["code"], "poor");
    assert_eq!(line["answers"]["meds"][0]["meds.name"], "布洛芬");
}

#[tokio::test]
async fn export_fhir_writes_questionnaire_responses() {
    let app = spawn_app().await;
    let id = submit(&app, answers()).await;

    let reply = export(&app, "format=fhir").await;
    let lines = reply.lines();

    assert_eq!(reply.content_type, "application/fhir+ndjson");
    assert_eq!(lines.len(), 1);
    let resource = &lines[0];
    assert_eq!(resource["resourceType"], "QuestionnaireResponse");
    assert_eq!(resource["id"], id.as_str());
    assert_eq!(resource["status"], "completed");
    assert_eq!(resource["authored"], "2026-12-04T20:15:00+08:00");
    assert_eq!(resource["subject"]["identifier"]["value"], "P-0042");
    let items = resource["item"].as_array().expect("item array");
    let item = |link_id: &str| items.iter().find(|item| item["linkId"] == link_id).cloned().unwrap_or(Value::Null);
    assert_eq!(item("change")["answer"], json!([{ "valueInteger": -3 }]));
    assert_eq!(item("note")["answer"], json!([{ "valueString": "=1+1 疼痛减轻 😀" }]), "FHIR keeps the value");
    assert_eq!(item("mood")["answer"][0]["valueCoding"]["code"], "poor");
    assert_eq!(item("dose")["answer"][0]["valueQuantity"]["value"], 2.5);
    let meds = items.iter().filter(|item| item["linkId"] == "meds").count();
    assert_eq!(meds, 2, "a repeating group is one entry per occurrence");
}

#[tokio::test]
async fn export_rejects_bad_options() {
    let app = spawn_app().await;
    let other_backend_cursor = if is_postgres() { "v1.s.1" } else { "v1.p.5" };
    // A cursor from a database further along (another server, or this one
    // before a restore) would silently skip submissions.
    let future_cursor = if is_postgres() { "v1.p.999999999" } else { "v1.s.99999" };
    let cases = [
        (format!("since={future_cursor}"), "since", "invalid_cursor"),
        ("format=xml".to_owned(), "format", "invalid_option"),
        ("since=abc".to_owned(), "since", "invalid_cursor"),
        ("since=".to_owned(), "since", "invalid_cursor"),
        (format!("since={other_backend_cursor}"), "since", "invalid_cursor"),
        ("header=name".to_owned(), "header", "invalid_option"),
        ("header=label&labelLanguage=fr".to_owned(), "labelLanguage", "invalid_option"),
        ("bom=yes".to_owned(), "bom", "invalid_option"),
        ("limit=5".to_owned(), "limit", "unknown_parameter"),
        ("format=csv&format=ndjson".to_owned(), "format", "duplicate_parameter"),
        ("format=ndjson&bom=true".to_owned(), "bom", "csv_only_option"),
        ("format=fhir&header=label".to_owned(), "header", "csv_only_option"),
    ];
    for (query, parameter, code) in cases {
        let reply = get(&app, &format!("{EXPORT}?{query}"), Some(OPERATOR_TOKEN), "en").await;

        assert_eq!(reply.status, 400, "{query}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["code"], "invalid_request", "{query}");
        assert_eq!(body["errors"][0]["item"], parameter, "{query}: {body}");
        assert_eq!(body["errors"][0]["code"], code, "{query}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("\"{parameter}\"")), "{query}: the message names it: {message}");
    }
    assert_eq!(app.count("SELECT count(*) FROM audit_events WHERE action = 'export.created'"), 0);
}

#[tokio::test]
async fn export_errors_speak_both_languages() {
    let app = spawn_app().await;

    let english = get(&app, &format!("{EXPORT}?format=xml&since=zzz"), Some(OPERATOR_TOKEN), "en").await.json();
    let chinese = get(&app, &format!("{EXPORT}?format=xml&since=zzz"), Some(OPERATOR_TOKEN), "zh-CN").await.json();

    assert_eq!(english["errors"].as_array().map(Vec::len), Some(2), "every bad option is listed: {english}");
    let english_format = english["errors"][0]["message"].as_str().unwrap_or_default();
    let chinese_format = chinese["errors"][0]["message"].as_str().unwrap_or_default();
    let chinese_since = chinese["errors"][1]["message"].as_str().unwrap_or_default();
    assert!(english_format.contains("csv, ndjson, fhir"), "{english_format}");
    assert!(chinese_format.contains("查询参数“format”必须是以下之一"), "{chinese_format}");
    assert!(chinese_since.contains("Epro-Next-Cursor"), "{chinese_since}");
}

#[tokio::test]
async fn export_unknown_trial_or_form_is_404() {
    let app = spawn_app().await;

    let trial = get(&app, "/v1/trials/nope/forms/export/export", Some(OPERATOR_TOKEN), "en").await;
    let form = get(&app, "/v1/trials/fixtures/forms/nope/export", Some(OPERATOR_TOKEN), "en").await;
    let codebook = get(&app, "/v1/trials/fixtures/forms/nope/codebook", Some(OPERATOR_TOKEN), "en").await;

    assert_eq!(trial.status, 404);
    assert_eq!(trial.json()["code"], "unknown_trial");
    assert_eq!(form.status, 404);
    assert_eq!(form.json()["code"], "unknown_form");
    assert_eq!(codebook.status, 404);
}

#[tokio::test]
async fn export_writes_one_audit_row() {
    let app = spawn_app().await;
    submit(&app, json!({ "change": 0 })).await;

    export(&app, "format=ndjson").await;

    let rows = app.count(
        "SELECT count(*) FROM audit_events WHERE action = 'export.created' AND actor = 'staff:ops'
         AND entity = 'form' AND entity_id = 'fixtures/export' AND reason IS NULL AND request_id IS NOT NULL",
    );
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn export_since_cursor_returns_only_new() {
    let app = spawn_app().await;
    let first_ids = [submit(&app, json!({ "change": 1 })).await, submit(&app, json!({ "change": 2 })).await];

    let first = export(&app, "format=ndjson").await;
    let cursor = first.cursor.clone().expect("the reply carries the next cursor");
    let later = submit(&app, json!({ "change": 3 })).await;
    let second = export(&app, &format!("format=ndjson&since={cursor}")).await;
    let second_cursor = second.cursor.clone().expect("next cursor");
    let third = export(&app, &format!("format=csv&since={second_cursor}")).await;

    let ids = |reply: &Export| -> Vec<String> {
        reply.lines().iter().map(|line| line["submissionId"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(ids(&first), first_ids.to_vec());
    assert_eq!(ids(&second), vec![later]);
    let (header, rows) = third.csv();
    assert!(rows.is_empty(), "nothing new: {rows:?}");
    assert_eq!(header[0], "submissionId", "an empty CSV export still has its header");
    assert!(third.cursor.is_some());
}

fn is_postgres() -> bool {
    std::env::var("TEST_EPRO_API_BACKEND").as_deref() == Ok("postgres")
}

/// Exports chained by their cursors while submissions arrive together hold
/// every submission exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_resumed_while_submitting_misses_none() {
    const SUBMISSIONS: usize = 240;
    let app = std::sync::Arc::new(spawn_app().await);
    let writer = tokio::spawn({
        let app = std::sync::Arc::clone(&app);
        async move {
            let mut submitted = Vec::new();
            for round in 0..SUBMISSIONS / 8 {
                let batch = (0..8).map(|index| {
                    let change = i64::try_from((round * 8 + index) % 21).unwrap_or(0) - 10;
                    submit(&app, json!({ "change": change }))
                });
                submitted.extend(futures::future::join_all(batch).await);
            }
            submitted
        }
    });

    let mut exported = Vec::new();
    let mut cursor: Option<String> = None;
    let mut exports = 0;
    loop {
        let finished = writer.is_finished();
        let query = match &cursor {
            Some(cursor) => format!("format=ndjson&since={cursor}"),
            None => "format=ndjson".to_owned(),
        };
        let reply = export(&app, &query).await;
        exported.extend(reply.lines().iter().map(|line| line["submissionId"].as_str().unwrap_or_default().to_owned()));
        cursor = reply.cursor.clone();
        exports += 1;
        // One more export after the writer finished takes what it wrote last.
        if finished {
            break;
        }
    }
    let submitted = writer.await.expect("writer task");

    let unique: HashSet<&String> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "an export repeated a submission");
    assert_eq!(
        unique,
        submitted.iter().collect::<HashSet<_>>(),
        "the {exports} exports together hold every submission"
    );
}

#[tokio::test]
async fn codebook_lists_items_labels_and_codes() {
    let app = spawn_app().await;

    let json_reply = get(&app, "/v1/trials/fixtures/forms/export/codebook", Some(OPERATOR_TOKEN), "en").await;
    let csv_reply = get(&app, "/v1/trials/fixtures/forms/export/codebook?format=csv", Some(OPERATOR_TOKEN), "en").await;
    let bad = get(&app, "/v1/trials/fixtures/forms/export/codebook?format=xml", Some(OPERATOR_TOKEN), "en").await;

    assert_eq!(json_reply.status, 200, "{}", json_reply.text());
    let codebook = json_reply.json();
    assert_eq!(codebook["formId"], "export");
    let version = &codebook["versions"][0];
    assert_eq!(version["version"], "1");
    assert_eq!(version["current"], true);
    assert_eq!(version["scores"], json!(["mood_score"]));
    let items = version["items"].as_array().expect("items");
    let mood = items.iter().find(|item| item["linkId"] == "mood").expect("mood item");
    assert_eq!(mood["type"], "choice");
    assert_eq!(mood["label"], json!({ "en": "Mood", "zh-CN": "情绪" }));
    assert_eq!(mood["options"][1]["code"], "poor");
    assert_eq!(mood["options"][1]["label"]["zh-CN"], "差");
    assert_eq!(mood["options"][1]["ordinalValue"], 2);
    let dose = items.iter().find(|item| item["linkId"] == "dose").expect("dose item");
    assert_eq!(dose["unitColumn"], "dose.unit");
    let meds_name = items.iter().find(|item| item["linkId"] == "meds.name").expect("meds.name item");
    assert_eq!(meds_name["repeats"], true, "a question in a repeating group holds a JSON array");

    assert_eq!(csv_reply.status, 200);
    assert_eq!(csv_reply.content_type, "text/csv; charset=utf-8");
    let (header, rows) = csv_reply.csv();
    let poor = rows.iter().find(|row| column(&header, row, "optionCode") == "poor").expect("poor option row");
    assert_eq!(column(&header, poor, "linkId"), "mood");
    assert_eq!(column(&header, poor, "optionLabelZhCN"), "差");
    assert_eq!(column(&header, poor, "ordinalValue"), "2");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["errors"][0]["item"], "format");
}

/// Reads each format back with pandas: the row count equals the stored
/// submissions, Chinese text and emoji survive, numbers keep their type and
/// precision, and timestamps parse as UTC.
#[tokio::test]
async fn export_reads_back_in_pandas() {
    let Some(python) = std::env::var_os("TEST_EPRO_PYTHON") else {
        println!("skipped: TEST_EPRO_PYTHON is not set (.ci/run sets it to a Python with pandas)");
        return;
    };
    let app = spawn_app().await;
    for change in [-3, 0, 7] {
        submit(&app, json!({ "change": change, "weight": 72.35, "note": "=1+1 疼痛减轻 😀" })).await;
    }
    let files = [("csv", "format=csv&bom=true"), ("ndjson", "format=ndjson"), ("fhir", "format=fhir")];
    let mut arguments = Vec::new();
    for (name, query) in files {
        let path = app.dir().join(format!("export.{name}"));
        std::fs::write(&path, &export(&app, query).await.bytes).expect("write export file");
        arguments.push(path);
    }
    let stored = app.count("SELECT count(*) FROM submissions WHERE form_id = 'export'");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/pandas_check.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(&arguments)
        .output()
        .unwrap_or_else(|error| panic!("failed to run {}: {error}", python.to_string_lossy()));
    assert!(output.status.success(), "pandas check failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");

    for format in ["csv", "ndjson", "fhir"] {
        assert_eq!(report[format]["rows"], stored, "{format}: {report}");
    }
    assert_eq!(report["csv"]["change_dtype"], "int64", "{report}");
    assert_eq!(report["csv"]["changes"], json!([-3, 0, 7]));
    assert_eq!(report["csv"]["weight_dtype"], "float64");
    assert_eq!(report["csv"]["weight"], 72.35);
    assert_eq!(report["csv"]["note"], "'=1+1 疼痛减轻 😀", "CSV neutralises the text cell");
    assert_eq!(report["csv"]["completed_at"], "2026-12-04T12:15:00+00:00");
    assert_eq!(report["csv"]["completed_at_tz"], "UTC");
    assert_eq!(report["ndjson"]["note"], "=1+1 疼痛减轻 😀");
    assert_eq!(report["ndjson"]["change_dtype"], "int64");
    assert_eq!(report["ndjson"]["completed_at_tz"], "UTC");
    assert_eq!(report["fhir"]["resource_types"], json!(["QuestionnaireResponse"]));
}
