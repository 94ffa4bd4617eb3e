//! Property tests of the request parsers, driven through the public router
//! without a socket: arbitrary JSON values, raw JSON text and byte strings
//! as whole bodies and in place of `answers`, `formContent` and a
//! `QuestionnaireResponse`'s `item`, on both submission endpoints.
//!
//! The property is the error contract: no input panics or gets a 500, and
//! every reply is JSON carrying a documented code with its documented
//! status. Each property runs [`CASES`] cases against one application with
//! a store on a temporary SQLite file and the demo trial of
//! `examples/trials/demo`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use epro_forms::{Catalog, FormFormat, PublishedForm, Trial, attach_trial_rules, load_form, parse_trial_file};
use epro_http::{AdmissionSettings, AppState, Language, Metrics, Settings};
use epro_store::{Store, StoreConfig};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Cases per property: enough to reach every parser branch, few enough that
/// the suite runs in seconds.
const CASES: u32 = 256;

/// Largest body the application accepts, as in the shipped configuration.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Request-level codes the submission endpoints may return for client
/// input, with the status each one has on the versioned endpoint.
const REQUEST_CODES: &[(&str, u16)] = &[
    ("invalid_json", 400),
    ("nesting_too_deep", 400),
    ("invalid_request", 400),
    ("invalid_compressed_body", 400),
    ("unknown_trial", 404),
    ("unknown_form", 404),
    ("unknown_form_version", 404),
    ("submission_conflict", 409),
    ("payload_too_large", 413),
    ("unsupported_media_type", 415),
    ("unsupported_content_encoding", 415),
    ("validation_failed", 422),
];

/// Codes of the findings listed in `errors`, for the envelope and for the
/// answers.
const FIELD_CODES: &[&str] = &[
    "required",
    "wrong_type",
    "unknown_field",
    "invalid_submission_id",
    "invalid_id",
    "invalid_datetime",
    "missing_offset",
    "offset_without_colon",
    "in_future",
    "form_content_not_object",
    "not_questionnaire_response",
    "unsupported_status",
    "form_required",
    "number_out_of_range",
    "duplicate_key",
    "fhir_resource_as_json",
    "questionnaire_mismatch",
    "patient_mismatch",
    "unknown_item",
    "out_of_range",
    "not_an_option",
    "too_long",
    "pattern_mismatch",
    "too_many_decimals",
    "too_few_repeats",
    "too_many_repeats",
    "not_answerable",
    "unit_not_allowed",
    "answered_while_disabled",
    "rule_violated",
];

/// The forms of the demo trial.
const FORM_IDS: &[&str] = &["phq9", "gad7", "pain-nrs"];

/// Item `linkId`s of the demo forms: PHQ-9 choices and its decimal total,
/// the GAD-7 group and one of its choices, and the pain slider (integer).
const LINK_IDS: &[&str] = &[
    "/44250-9",
    "/44260-8",
    "/44261-6",
    "/69722-7",
    "a2ae9518-55b5-41cc-928d-00132d1a3c1e",
    "2bab9480-5251-4997-8a2e-937a1701cfe9",
    "1",
];

/// Keys that the envelopes and FHIR answers use, so generated objects reach
/// past "unknown field" into the parsers behind it.
const KEYS: &[&str] = &[
    "submissionId",
    "patientId",
    "formVersion",
    "completedAt",
    "answers",
    "trialId",
    "formId",
    "formContent",
    "resourceType",
    "identifier",
    "value",
    "id",
    "status",
    "authored",
    "subject",
    "reference",
    "questionnaire",
    "item",
    "linkId",
    "answer",
    "valueCoding",
    "valueInteger",
    "valueDecimal",
    "valueString",
    "valueBoolean",
    "valueQuantity",
    "system",
    "code",
    "unit",
];

/// Strings the parsers and validators treat specially: option codes, ids,
/// date-times with and without offsets, numbers written as text.
const STRINGS: &[&str] = &[
    "",
    "LA6568-5",
    "LA6571-9",
    "LA0000-0",
    "http://loinc.org",
    "P-0001",
    "demo",
    "phq9",
    "1",
    "5",
    "72,5",
    "2026-12-04T20:15:00+08:00",
    "2026-12-04T20:15:00",
    "2026-12-04T20:15:00+0800",
    "2026-12-04T20:15:00-00:00",
    "9999-12-31T23:59:59Z",
    "0b6f3c2e-8d4a-4f7e-9a51-2c7d9e1f4a3b",
    "urn:uuid:0b6f3c2e-8d4a-4f7e-9a51-2c7d9e1f4a3b",
    "completed",
    "in-progress",
    "QuestionnaireResponse",
    "Patient/P-0001",
    "患者",
    "\u{0}",
    "\u{feff}",
];

/// JSON number and string literals that a `Value` cannot hold or that sit
/// at the edges of the number parser.
const LITERALS: &[&str] = &[
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "5.0",
    "1E2",
    "0.1234567890123456789",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    r#""\ud800""#,
    r#""\u0000""#,
    r#""\/\b\f\n\r\t""#,
];

/// The application behind the router, with its runtime and data directory.
struct App {
    router: Router,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// One reply, read completely.
struct Reply {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// The endpoint a request went to, which decides the reply shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Versioned,
    Seed,
}

impl App {
    fn start() -> App {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = runtime
            .block_on(Store::open(StoreConfig::new(dir.path().join("epro.db"))))
            .expect("the store must open on a fresh file");
        let settings = Settings {
            default_language: Language::ZhCn,
            max_body_bytes: MAX_BODY_BYTES,
            max_json_depth: 64,
            clock_skew_seconds: 300,
            require_patient_token: false,
            patient_token_days: 365,
            staff_token_days: 365,
            admission: AdmissionSettings::default(),
        };
        let state = AppState::new(Arc::new(demo_catalog()), store, settings, Metrics::new());
        App { router: epro_http::router(state), runtime, _dir: dir }
    }

    /// Sends one POST through the router, as if from a client on 127.0.0.1.
    fn post(&self, path: &str, headers: &[(&'static str, HeaderValue)], body: Vec<u8>) -> Reply {
        let mut request = Request::post(path).body(Body::from(body)).unwrap();
        for (name, value) in headers {
            request.headers_mut().append(*name, value.clone());
        }
        // The server inserts the peer address, which the per-IP rate limit reads.
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));

        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
            let status = response.status().as_u16();
            let content_type =
                response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
            Reply { status, content_type, body }
        })
    }

    fn submit(&self, form_id: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let path = format!("/v1/trials/demo/forms/{form_id}/submissions");
        self.post(&path, &[("content-type", HeaderValue::from_str(content_type).unwrap())], body)
    }

    fn submit_seed(&self, body: Vec<u8>) -> Reply {
        self.post("/api/collection/submit", &[("content-type", HeaderValue::from_static("application/json"))], body)
    }
}

/// Builds the catalog of `examples/trials/demo` the way the server does:
/// the trial file, each listed form, and the trial's own scores and alerts.
fn demo_catalog() -> Catalog {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/trials/demo");
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
    let trial_file = parse_trial_file(&read("trial.toml")).expect("the demo trial file must parse");

    let forms = trial_file
        .forms
        .iter()
        .map(|entry| {
            let outcome = load_form(&read(&entry.file), FormFormat::FhirJson);
            let mut form =
                outcome.form.unwrap_or_else(|| panic!("{} must load: {:?}", entry.file, outcome.report.errors));
            attach_trial_rules(&mut form, entry).expect("the demo trial rules must compile");
            PublishedForm {
                id: entry.id.clone(),
                version: entry.version.clone(),
                title: entry.title.clone().unwrap_or_else(|| trial_file.title.clone()),
                form,
                current: true,
                retired_at: None,
            }
        })
        .collect();
    let trial = Trial {
        id: trial_file.id.clone(),
        title: trial_file.title.clone(),
        forms,
        alerts: trial_file.alerts,
        sites: trial_file.sites.clone(),
    };
    Catalog::new(vec![trial]).expect("the demo catalog must build")
}

/// Checks the error contract on one reply.
fn check_reply(endpoint: Endpoint, reply: &Reply) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&reply.body);
    prop_assert_ne!(reply.status, 500, "internal error: {}", text);
    prop_assert_eq!(reply.content_type.as_deref(), Some("application/json"), "status {}: {}", reply.status, text);
    let body: Value = serde_json::from_slice(&reply.body)
        .map_err(|error| TestCaseError::fail(format!("reply is not JSON ({error}): {text}")))?;

    let stored = match endpoint {
        Endpoint::Versioned => reply.status == 200 || reply.status == 201,
        Endpoint::Seed => reply.status == 200,
    };
    if stored {
        prop_assert!(body["submissionId"].is_string(), "a receipt names its submission: {}", text);
        if endpoint == Endpoint::Seed {
            prop_assert_eq!(&body["status"], "success", "{}", text);
        }
        return Ok(());
    }

    let code = body["code"].as_str().unwrap_or("");
    let documented = REQUEST_CODES.iter().find(|(known, _)| *known == code);
    let Some((_, status)) = documented else {
        return Err(TestCaseError::fail(format!("undocumented code {code:?}: {text}")));
    };
    // The seed endpoint keeps the old clients' 400 for failed validation.
    let expected_status = if endpoint == Endpoint::Seed && code == "validation_failed" { 400 } else { *status };
    prop_assert_eq!(reply.status, expected_status, "code {}: {}", code, text);
    prop_assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "a message is present: {}", text);
    if endpoint == Endpoint::Seed {
        prop_assert_eq!(&body["status"], "error", "{}", text);
    }

    let errors = body["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
    prop_assert!(body["errors"].is_array(), "errors is a list: {}", text);
    for error in errors {
        let field_code = error["code"].as_str().unwrap_or("");
        prop_assert!(FIELD_CODES.contains(&field_code), "undocumented field code {:?}: {}", field_code, text);
        prop_assert!(error["path"].is_string(), "a field error has a path: {}", text);
    }
    Ok(())
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() })
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![select(STRINGS).prop_map(str::to_owned), any::<String>(), "[ -~]{0,16}"]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![select(KEYS).prop_map(str::to_owned), select(LINK_IDS).prop_map(str::to_owned), string()]
}

/// Generates any JSON value, up to four levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0i64..=10).prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON numbers are finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Generates JSON text that a `Value` cannot produce: repeated keys,
/// numbers out of range, lone surrogates.
fn raw_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![select(LITERALS).prop_map(str::to_owned), json_value().prop_map(|value| value.to_string()),];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key(), inner), 0..5).prop_map(|entries| {
                let members: Vec<String> =
                    entries.into_iter().map(|(key, value)| format!("{}:{value}", Value::String(key))).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Edits that turn valid JSON into nearly valid JSON.
#[derive(Clone, Debug)]
enum Edit {
    Delete(Index),
    Insert(Index, u8),
    Replace(Index, u8),
    Truncate(Index),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let interesting = prop_oneof![select(b"{}[]\",:\\0-.eE ".to_vec()), any::<u8>()];
    let edit = prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), interesting.clone()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        (any::<Index>(), interesting).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        any::<Index>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..6)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if bytes.is_empty() {
            break;
        }
        match edit {
            Edit::Delete(at) => {
                bytes.remove(at.index(bytes.len()));
            }
            Edit::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
            Edit::Replace(at, byte) => {
                let position = at.index(bytes.len());
                bytes[position] = *byte;
            }
            Edit::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        }
    }
    bytes
}

fn native_envelope(answers: Value) -> Value {
    json!({
        "submissionId": uuid::Uuid::new_v4().to_string(),
        "patientId": "P-0001",
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": answers,
    })
}

fn phq9_answers() -> Value {
    json!({
        "/44250-9": "LA6568-5", "/44255-8": "LA6569-3", "/44259-0": "LA6570-1",
        "/44254-1": "LA6568-5", "/44251-7": "LA6571-9", "/44258-2": "LA6568-5",
        "/44252-5": "LA6569-3", "/44253-3": "LA6568-5", "/44260-8": "LA6568-5"
    })
}

fn questionnaire_response(item: Value) -> Value {
    json!({
        "resourceType": "QuestionnaireResponse",
        "id": uuid::Uuid::new_v4().to_string(),
        "status": "completed",
        "authored": "2026-12-04T20:15:00+08:00",
        "subject": { "reference": "Patient/P-0001" },
        "item": item,
    })
}

fn phq9_items() -> Value {
    let items: Vec<Value> = phq9_answers()
        .as_object()
        .unwrap()
        .iter()
        .map(|(link_id, code)| {
            json!({ "linkId": link_id, "answer": [{ "valueCoding": { "system": "http://loinc.org", "code": code } }] })
        })
        .collect();
    Value::Array(items)
}

fn seed_envelope(form_content: Value) -> Value {
    json!({
        "patientId": "P-0001",
        "trialId": "demo",
        "formId": "phq9",
        "submissionId": uuid::Uuid::new_v4().to_string(),
        "completedAt": "2026-12-04T20:15:00+08:00",
        "formContent": form_content,
    })
}

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// Generates a whole body: a JSON value, raw JSON text, arbitrary bytes, or
/// a valid envelope of either format with a few bytes edited.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|value| to_bytes(&value)),
        raw_json().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..256),
        edits().prop_map(|edits| apply(to_bytes(&native_envelope(phq9_answers())), &edits)),
        edits().prop_map(|edits| apply(to_bytes(&questionnaire_response(phq9_items())), &edits)),
    ]
}

/// Generates the `answers` of a native envelope as JSON text: any value, an
/// object keyed by the demo forms' `linkId`s with any values, or a complete
/// PHQ-9 answer set with a few answers replaced.
fn any_answers() -> impl Strategy<Value = String> {
    prop_oneof![
        json_value().prop_map(|value| value.to_string()),
        raw_json(),
        prop::collection::vec((select(LINK_IDS), raw_json()), 1..3).prop_map(|replaced| {
            let mut answers = phq9_answers().to_string();
            answers.pop();
            for (link_id, value) in replaced {
                answers.push_str(&format!(",{}:{value}", Value::from(link_id)));
            }
            answers.push('}');
            answers
        }),
        prop::collection::vec((select(LINK_IDS), json_value()), 0..6).prop_map(|entries| {
            let answers: serde_json::Map<String, Value> =
                entries.into_iter().map(|(link_id, value)| (link_id.to_owned(), value)).collect();
            Value::Object(answers).to_string()
        }),
    ]
}

/// Generates a `QuestionnaireResponse` `item`: any value, or items with the
/// demo forms' `linkId`s and any answers and nested items.
fn any_items() -> impl Strategy<Value = Value> {
    let item =
        (select(LINK_IDS), json_value(), prop::option::of(json_value())).prop_map(|(link_id, answer, nested)| {
            let mut item = json!({ "linkId": link_id, "answer": answer });
            if let Some(nested) = nested {
                item["item"] = nested;
            }
            item
        });
    prop_oneof![json_value(), prop::collection::vec(item, 0..6).prop_map(Value::Array)]
}

/// Generates a seed `formContent`: any value in place of the string, a
/// string of any JSON text, or a string of deeply nested arrays.
fn any_form_content() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        raw_json().prop_map(Value::String),
        json_value().prop_map(|value| Value::String(value.to_string())),
        (0usize..200).prop_map(|depth| Value::String(format!("{}{}", "[".repeat(depth), "]".repeat(depth)))),
        string().prop_map(Value::String),
    ]
}

#[test]
fn submission_arbitrary_body_keeps_error_contract() {
    let app = App::start();
    let content_types = select(vec!["application/json", "application/fhir+json"]);

    let outcome = runner().run(&(select(FORM_IDS), content_types, any_body()), |(form_id, content_type, body)| {
        check_reply(Endpoint::Versioned, &app.submit(form_id, content_type, body))
    });

    outcome.unwrap();
}

#[test]
fn native_arbitrary_answers_keep_error_contract() {
    let app = App::start();

    let outcome = runner().run(&(select(FORM_IDS), any_answers()), |(form_id, answers)| {
        let envelope = native_envelope(json!("ANSWERS")).to_string();
        let body = envelope.replace(r#""ANSWERS""#, &answers);
        check_reply(Endpoint::Versioned, &app.submit(form_id, "application/json", body.into_bytes()))
    });

    outcome.unwrap();
}

#[test]
fn fhir_arbitrary_items_keep_error_contract() {
    let app = App::start();

    let outcome = runner().run(&(select(FORM_IDS), any_items()), |(form_id, items)| {
        let body = to_bytes(&questionnaire_response(items));
        check_reply(Endpoint::Versioned, &app.submit(form_id, "application/fhir+json", body))
    });

    outcome.unwrap();
}

#[test]
fn seed_arbitrary_form_content_keeps_error_contract() {
    let app = App::start();

    let outcome = runner().run(&any_form_content(), |form_content| {
        check_reply(Endpoint::Seed, &app.submit_seed(to_bytes(&seed_envelope(form_content))))
    });

    outcome.unwrap();
}

#[test]
fn seed_arbitrary_body_keeps_error_contract() {
    let app = App::start();
    let mutated_seed = edits().prop_map(|edits| {
        let envelope = seed_envelope(Value::String(phq9_answers().to_string()));
        apply(to_bytes(&envelope), &edits)
    });

    let outcome = runner()
        .run(&prop_oneof![any_body(), mutated_seed], |body| check_reply(Endpoint::Seed, &app.submit_seed(body)));

    outcome.unwrap();
}

/// A body sent as `Content-Encoding: gzip` may be any bytes, or a gzip
/// stream of a valid envelope with a few bytes edited or cut off.
#[test]
fn gzip_arbitrary_body_keeps_error_contract() {
    let app = App::start();
    let compressed = || {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&to_bytes(&native_envelope(phq9_answers()))).unwrap();
        encoder.finish().unwrap()
    };
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        edits().prop_map(move |edits| apply(compressed(), &edits)),
    ];
    let headers = [
        ("content-type", HeaderValue::from_static("application/json")),
        ("content-encoding", HeaderValue::from_static("gzip")),
    ];

    let outcome = runner().run(&body, |body| {
        check_reply(Endpoint::Versioned, &app.post("/v1/trials/demo/forms/phq9/submissions", &headers, body))
    });

    outcome.unwrap();
}

/// Content types, content encodings, languages and idempotency keys from
/// the client are header values of any printable text, or absent. The body
/// is never compressed, whatever `Content-Encoding` claims.
#[test]
fn submission_arbitrary_headers_keep_error_contract() {
    let app = App::start();
    let header_text = prop::option::of(prop_oneof![
        select(vec![
            "application/json",
            "application/fhir+json",
            "application/json; charset=utf-8",
            "zh-CN",
            "en",
            "gzip",
            "identity",
            "br",
            "gzip, identity",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,40}",
    ]);
    let strategy = (header_text.clone(), header_text.clone(), header_text.clone(), header_text, any::<bool>());

    let outcome = runner().run(&strategy, |(content_type, encoding, language, idempotency_key, seed)| {
        let headers: Vec<(&'static str, HeaderValue)> = [
            ("content-type", content_type),
            ("content-encoding", encoding),
            ("accept-language", language),
            ("idempotency-key", idempotency_key),
        ]
        .into_iter()
        .filter_map(|(name, text)| HeaderValue::from_str(&text?).ok().map(|value| (name, value)))
        .collect();
        let (endpoint, path, body) = if seed {
            let mut envelope = seed_envelope(Value::String(phq9_answers().to_string()));
            envelope.as_object_mut().unwrap().remove("submissionId");
            (Endpoint::Seed, "/api/collection/submit", to_bytes(&envelope))
        } else {
            (Endpoint::Versioned, "/v1/trials/demo/forms/phq9/submissions", to_bytes(&native_envelope(phq9_answers())))
        };
        check_reply(endpoint, &app.post(path, &headers, body))
    });

    outcome.unwrap();
}

/// Checks that valid submissions are accepted and pass the same reply
/// checks, so the properties above cannot pass by rejecting everything.
#[test]
fn valid_submissions_pass_reply_checks() {
    let app = App::start();

    let native = app.submit("phq9", "application/json", to_bytes(&native_envelope(phq9_answers())));
    let fhir = app.submit("phq9", "application/fhir+json", to_bytes(&questionnaire_response(phq9_items())));
    let seed = app.submit_seed(to_bytes(&seed_envelope(Value::String(phq9_answers().to_string()))));
    let invalid = app.submit("phq9", "application/json", b"{".to_vec());

    assert_eq!(native.status, 201, "{}", String::from_utf8_lossy(&native.body));
    assert_eq!(fhir.status, 201, "{}", String::from_utf8_lossy(&fhir.body));
    assert_eq!(seed.status, 200, "{}", String::from_utf8_lossy(&seed.body));
    assert_eq!(invalid.status, 400);
    for (endpoint, reply) in [
        (Endpoint::Versioned, &native),
        (Endpoint::Versioned, &fhir),
        (Endpoint::Seed, &seed),
        (Endpoint::Versioned, &invalid),
    ] {
        check_reply(endpoint, reply).unwrap();
    }
}
