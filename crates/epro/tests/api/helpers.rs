//! `spawn_app()`: the real application on port 0 with a fresh SQLite file
//! in a temporary directory, and a `TestApp` with one method per endpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use epro::config::Config;
use epro::startup::Application;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The token of the `ops` staff account every test app starts with: admin, data
/// manager of both trials (and of `t1`) and investigator at site-01 of both.
pub const OPERATOR_TOKEN: &str = "epro_s_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The site every helper enrols patients into.
pub const SITE: &str = "site-01";

/// A running server for one test.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    dir: Option<tempfile::TempDir>,
    database: Option<TestDatabase>,
    shutdown: CancellationToken,
    /// The server runs on its own runtime in this thread, so dropping the
    /// app can wait for a graceful shutdown before the files are deleted.
    server: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// One HTTP reply, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_language: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", self.text))
    }

    /// Returns the `code` of every field error, in order.
    pub fn error_codes(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|errors| errors.iter().map(|e| e["code"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts the application on a fresh database, with the demo trial and the
/// fixtures trial.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(false).await
}

/// Like [`spawn_app`], with `auth.require_patient_token` on, as in production.
pub async fn spawn_app_requiring_tokens() -> TestApp {
    spawn_app_with(true).await
}

async fn spawn_app_with(require_patient_token: bool) -> TestApp {
    init_test_logs();
    let dir = tempfile::tempdir().expect("failed to create a temporary directory");

    let trials = dir.path().join("trials");
    std::fs::create_dir(&trials).unwrap();
    link_dir(&workspace_root().join("examples/trials/demo"), &trials.join("demo"));
    assemble_fixtures_trial(&trials.join("fixtures"));

    let database = TestDatabase::create(dir.path());
    let database_url = database.url();
    let config_path = dir.path().join("epro.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[http]
listen = "127.0.0.1:0"
default_language = "zh-CN"
shutdown_readiness_delay_seconds = 0
[database]
url = "{database_url}"
[trials]
directory = "trials"
[outbox]
sink = {{ type = "file", path = "var/outbox.ndjson" }}
poll_interval_milliseconds = 20
[auth]
require_patient_token = {require_patient_token}
[alerts]
escalation_interval_seconds = 1
"#
        ),
    )
    .unwrap();

    let config = Config::load(&config_path).expect("test configuration must load");
    let (address, shutdown, server) = start(config).await;

    TestApp {
        address,
        client: reqwest::Client::new(),
        dir: Some(dir),
        database: Some(database),
        shutdown,
        server: Some(server),
    }
}

/// Builds and runs an application from `config` on a thread of its own, and
/// returns its address once it is bound.
async fn start(config: Config) -> (String, CancellationToken, std::thread::JoinHandle<anyhow::Result<()>>) {
    let shutdown = CancellationToken::new();
    let (address_sender, address_receiver) = tokio::sync::oneshot::channel();
    let server = std::thread::spawn({
        let shutdown = shutdown.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(async move {
                let application = Application::build(config).await.expect("application must build");
                create_ops_account(application.store()).await;
                let _ = address_sender.send(application.local_addr()?);
                application.run(shutdown).await
            })
        }
    });
    let address = format!("http://{}", address_receiver.await.expect("the server thread ended before binding"));
    (address, shutdown, server)
}

/// Creates the `ops` staff account whose token is [`OPERATOR_TOKEN`].
async fn create_ops_account(store: &epro_store::Store) {
    use epro_store::{AccessChange, AccessOutcome, ChangeOrigin, NewToken, Role, RoleGrant};
    let grant = |role, trial: Option<&str>, site: Option<&str>| RoleGrant {
        role,
        trial_id: trial.map(str::to_owned),
        site_id: site.map(str::to_owned),
    };
    let grants = vec![
        grant(Role::Admin, None, None),
        grant(Role::DataManager, Some("demo"), None),
        grant(Role::DataManager, Some("fixtures"), None),
        // The trial that the trial management tests create over the API.
        grant(Role::DataManager, Some("t1"), None),
        grant(Role::Investigator, Some("demo"), Some(SITE)),
        grant(Role::Investigator, Some("fixtures"), Some(SITE)),
    ];
    let token = NewToken {
        token_id: "ops-token".to_owned(),
        digest: epro_http::auth::digest(OPERATOR_TOKEN),
        expires_at: None,
    };
    let change = AccessChange::CreateStaff {
        staff_id: "ops".to_owned(),
        display_name: "Test operator".to_owned(),
        grants,
        token,
    };
    let origin = ChangeOrigin { actor: "test".to_owned(), request_id: None };
    let outcome = store.change_access(change, origin).await.expect("the ops account must be created");
    // A second application on the same database finds the account there.
    assert!(matches!(outcome, AccessOutcome::Done | AccessOutcome::AlreadyExists), "{outcome:?}");
}

/// The database of one test app: a SQLite file in its directory, or, when
/// `TEST_EPRO_API_BACKEND=postgres`, a database of its own on the server of
/// `TEST_EPRO_POSTGRES_URL`, dropped at the end. `.ci/run` runs this suite
/// once per backend, so that neither drifts.
pub enum TestDatabase {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    fn create(dir: &Path) -> TestDatabase {
        if std::env::var("TEST_EPRO_API_BACKEND").as_deref() != Ok("postgres") {
            return TestDatabase::Sqlite(dir.join("var/epro.db"));
        }
        let admin_url = std::env::var("TEST_EPRO_POSTGRES_URL")
            .expect("TEST_EPRO_API_BACKEND=postgres needs TEST_EPRO_POSTGRES_URL");
        let name = format!("epro_api_{}", uuid::Uuid::new_v4().simple());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        TestDatabase::Postgres { admin_url, name }
    }

    fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(_) => "sqlite://var/epro.db".to_owned(),
            TestDatabase::Postgres { admin_url, name } => {
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
                format!("{base}/{name}")
            }
        }
    }

    /// Runs a query returning one value and gives it back as text.
    pub fn text(&self, sql: &str) -> String {
        match self {
            TestDatabase::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).unwrap();
                connection
                    .query_row(sql, [], |row| {
                        Ok(match row.get_ref(0)? {
                            rusqlite::types::ValueRef::Integer(number) => number.to_string(),
                            other => other.as_str().unwrap_or_default().to_owned(),
                        })
                    })
                    .unwrap()
            }
            TestDatabase::Postgres { .. } => psql(&self.url(), sql),
        }
    }

    /// Runs a `SELECT count(*) ...`.
    pub fn count(&self, sql: &str) -> i64 {
        self.text(sql).parse().unwrap()
    }

    /// Runs `sql` with the trigger `trigger` on `table` out of the way, as the
    /// database's owner could: dropped on SQLite, disabled on PostgreSQL.
    pub fn change_bypassing_trigger(&self, table: &str, trigger: &str, sql: &str) {
        match self {
            TestDatabase::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).unwrap();
                connection.execute_batch(&format!("DROP TRIGGER {trigger}; {sql}")).unwrap();
            }
            TestDatabase::Postgres { .. } => {
                psql(&self.url(), &format!("ALTER TABLE {table} DISABLE TRIGGER {trigger}; {sql}"));
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let _ = std::process::Command::new("psql")
                .arg(admin_url.as_str())
                .args(["-Atqc", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .output();
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let output = std::process::Command::new("psql").arg(url).args(["-Atqc", sql]).output().expect("run psql");
    assert!(output.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// What a stopped app leaves for inspection: its directory and database.
pub struct StoppedApp {
    pub dir: tempfile::TempDir,
    pub database: TestDatabase,
}

impl StoppedApp {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Symlinks a trial folder, so relative form paths inside it resolve from
/// its real location.
fn link_dir(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target.canonicalize().unwrap(), link).unwrap();
}

/// Builds the fixtures trial: its `trial.toml` and native form from
/// `tests/trials/fixtures/`, and links to the real questionnaires in
/// `fixtures/real/`, which stay unchanged in one place.
fn assemble_fixtures_trial(folder: &Path) {
    std::fs::create_dir(folder).unwrap();
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/trials/fixtures");
    for entry in std::fs::read_dir(&own).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
    }
    let real = workspace_root().join("fixtures/real").canonicalize().unwrap();
    for entry in std::fs::read_dir(&real).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::symlink(&path, folder.join(path.file_name().unwrap())).unwrap();
    }
}

fn init_test_logs() {
    // Set TEST_LOG=1 to see the server's logs in test output.
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    }
}

impl TestApp {
    /// Starts a second instance with this app's configuration, so on the same
    /// database, as another server of a deployment would run. It stops when
    /// dropped; this app keeps the directory and the database.
    pub async fn spawn_second_instance(&self) -> TestApp {
        let config = Config::load(&self.dir().join("epro.toml")).expect("test configuration must load");
        let (address, shutdown, server) = start(config).await;
        TestApp { address, client: reqwest::Client::new(), dir: None, database: None, shutdown, server: Some(server) }
    }

    /// The temporary directory holding the configuration, trials and data.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the directory lives as long as the app").path()
    }

    pub fn outbox_path(&self) -> PathBuf {
        self.dir().join("var/outbox.ndjson")
    }

    /// Sends raw bytes with a content type and optional extra headers.
    pub async fn post(&self, path: &str, content_type: Option<&str>, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.post(format!("{}{path}", self.address)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await.expect("request must reach the server")).await
    }

    /// Submits a native envelope to `/v1/trials/{trial}/forms/{form}/submissions`.
    pub async fn submit(&self, trial: &str, form: &str, envelope: &Value) -> Reply {
        self.submit_in(trial, form, envelope, "en").await
    }

    /// Like [`TestApp::submit`] with an `Accept-Language` header.
    pub async fn submit_in(&self, trial: &str, form: &str, envelope: &Value, language: &str) -> Reply {
        let path = format!("/v1/trials/{trial}/forms/{form}/submissions");
        let body = serde_json::to_vec(envelope).unwrap();
        self.post(&path, Some("application/json"), body, &[("accept-language", language)]).await
    }

    /// Submits a FHIR `QuestionnaireResponse` file's bytes unchanged.
    pub async fn submit_fhir(&self, trial: &str, form: &str, query: &str, bytes: Vec<u8>) -> Reply {
        let path = format!("/v1/trials/{trial}/forms/{form}/submissions{query}");
        self.post(&path, Some("application/fhir+json"), bytes, &[("accept-language", "en")]).await
    }

    /// Submits to the seed-compatible endpoint.
    pub async fn submit_seed(&self, envelope: &Value, headers: &[(&str, &str)]) -> Reply {
        let body = serde_json::to_vec(envelope).unwrap();
        self.post("/api/collection/submit", Some("application/json"), body, headers).await
    }

    /// Reads a stored submission with the operator token (or another one).
    pub async fn get_submission(&self, id: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(format!("{}/v1/submissions/{id}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        read(self.client.get(format!("{}{path}", self.address)).bearer_auth(token).send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(format!("{}{path}", self.address)).send().await.unwrap()).await
    }

    /// Lists a trial's alerts with the operator token; `query` is the query string,
    /// such as `?status=open`, or empty.
    pub async fn list_alerts(&self, trial: &str, query: &str, language: &str) -> Reply {
        let request = self
            .client
            .get(format!("{}/v1/trials/{trial}/alerts{query}", self.address))
            .bearer_auth(OPERATOR_TOKEN)
            .header("accept-language", language);
        read(request.send().await.unwrap()).await
    }

    /// Acknowledges an alert with the operator token and `body` as JSON, after
    /// enrolling the alert's patient at [`SITE`], where the `ops` account is an
    /// investigator.
    pub async fn acknowledge_alert(&self, alert_id: &str, body: &Value, language: &str) -> Reply {
        let found =
            self.count(&format!("SELECT count(*) FROM alerts WHERE alert_id = '{}'", alert_id.replace('\'', "")));
        if found == 1 {
            let trial = self.database_text(&format!("SELECT trial_id FROM alerts WHERE alert_id = '{alert_id}'"));
            let patient = self.database_text(&format!("SELECT patient_id FROM alerts WHERE alert_id = '{alert_id}'"));
            self.enrol(&trial, &patient, SITE).await;
        }
        let path = format!("/v1/alerts/{alert_id}/acknowledge");
        let authorization = format!("Bearer {OPERATOR_TOKEN}");
        let headers = [("authorization", authorization.as_str()), ("accept-language", language)];
        self.post(&path, Some("application/json"), serde_json::to_vec(body).unwrap(), &headers).await
    }

    /// Enrols a patient with the operator token, unless enrolled already, and
    /// returns the reply.
    pub async fn enrol(&self, trial: &str, patient: &str, site: &str) -> Reply {
        let body = json!({ "patientId": patient, "siteId": site });
        let authorization = format!("Bearer {OPERATOR_TOKEN}");
        let headers = [("authorization", authorization.as_str())];
        let path = format!("/v1/trials/{trial}/patients");
        let reply = self.post(&path, Some("application/json"), serde_json::to_vec(&body).unwrap(), &headers).await;
        assert!(matches!(reply.status, 201 | 409), "enrolment failed: {} {}", reply.status, reply.text);
        reply
    }

    /// Counts rows in the app's real database.
    pub fn count(&self, sql: &str) -> i64 {
        self.database.as_ref().expect("the database lives as long as the app").count(sql)
    }

    /// Runs `sql` with the table's `trigger` out of the way, as an intruder with
    /// database access could.
    pub fn change_bypassing_trigger(&self, table: &str, trigger: &str, sql: &str) {
        self.database
            .as_ref()
            .expect("the database lives as long as the app")
            .change_bypassing_trigger(table, trigger, sql);
    }

    /// Runs a query returning one value in the app's real database, as text.
    pub fn database_text(&self, sql: &str) -> String {
        self.database.as_ref().expect("the database lives as long as the app").text(sql)
    }

    /// Waits until `GET /metrics` shows `line`, for at most 10 s, and returns the
    /// text. Tasks update some metrics just after the change they count is visible.
    pub async fn metrics_with(&self, line: &str) -> String {
        for _ in 0..100 {
            let text = self.get("/metrics").await.text;
            if text.contains(line) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("GET /metrics did not show {line:?} within 10 s");
    }

    /// Waits until the relay has written `expected` lines to the NDJSON
    /// file, then returns them parsed.
    pub async fn outbox_messages(&self, expected: usize) -> Vec<Value> {
        for _ in 0..200 {
            let text = std::fs::read_to_string(self.outbox_path()).unwrap_or_default();
            let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
            if lines.len() >= expected {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the relay did not write {expected} outbox messages within 5 s");
    }

    /// Stops the server the way SIGTERM does, waits for it, and hands back
    /// the directory and the database so the test can inspect them.
    pub fn stop(mut self) -> StoppedApp {
        self.stop_server();
        StoppedApp {
            dir: self.dir.take().expect("the directory lives as long as the app"),
            database: self.database.take().expect("the database lives as long as the app"),
        }
    }

    fn stop_server(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.join().expect("the server thread panicked").expect("the server must stop cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop_server();
        } else {
            self.shutdown.cancel();
        }
    }
}

async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let content_language = response.headers().get("content-language").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.text().await.unwrap();
    Reply { status, content_language, text }
}

/// A complete, valid PHQ-9 answer set for the demo trial (LOINC answer
/// codes of lforms__phq9.json), with a fresh submission id.
pub fn phq9_envelope() -> Value {
    json!({
        "submissionId": uuid::Uuid::new_v4().to_string(),
        "patientId": "P-0001",
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": phq9_answers(),
    })
}

/// PHQ-9 answers: items 1-9 and the difficulty item.
pub fn phq9_answers() -> Value {
    json!({
        "/44250-9": "LA6568-5",
        "/44255-8": "LA6569-3",
        "/44259-0": "LA6570-1",
        "/44254-1": "LA6571-9",
        "/44251-7": "LA6568-5",
        "/44258-2": "LA6569-3",
        "/44252-5": "LA6568-5",
        "/44253-3": "LA6568-5",
        "/44260-8": "LA6568-5",
        "/69722-7": { "system": "http://loinc.org", "code": "LA6572-7" }
    })
}
