//! The real `epro` binary as a child process, for tests that kill, signal
//! or overload it. Each test binary uses part of this module.
#![allow(dead_code)]

pub mod postgres;
pub mod proxy;
pub mod receiver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `epro serve` child process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` of the main listener.
    pub address: String,
    /// `127.0.0.1:PORT`, for raw TCP clients.
    pub socket: String,
}

impl Server {
    /// Starts the binary and waits for its "Server built" log line, which
    /// carries the bound address.
    pub fn start(config: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_epro"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start the epro binary");

        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        // The first lines, shown when the server fails to start.
        let early_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        // Keep draining stderr for the process's whole life, so a full pipe
        // never blocks the server.
        let early = std::sync::Arc::clone(&early_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut early) = early.lock()
                    && early.len() < 20
                {
                    early.push(line.clone());
                }
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "Server built"
                    && let Some(address) = event["address"].as_str()
                {
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let socket = match receiver.recv_timeout(Duration::from_secs(20)) {
            Ok(socket) => socket,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                let output = early_lines.lock().map(|lines| lines.join("\n")).unwrap_or_default();
                panic!("the server did not report its address within 20 s (exit status {status}):\n{output}");
            }
        };
        Server { child, address: format!("http://{socket}"), socket }
    }

    /// Sends SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().expect("failed to SIGKILL the server");
        self.child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, the signal a process supervisor stops the server with.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `limit` for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns the resident set size in bytes, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS is listed");
        let kibibytes: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kibibytes * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a configuration in `dir` with the demo trial, a file sink, JSON
/// logs and the given extra lines in `[http]` and `[telemetry]`.
pub fn write_config(dir: &Path, token: &str, http: &str, telemetry: &str) -> PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/trials/demo").canonicalize().unwrap();
    std::fs::create_dir_all(dir.join("trials")).unwrap();
    std::os::unix::fs::symlink(demo, dir.join("trials/demo")).unwrap();
    let path = dir.join("epro.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[http]
listen = "127.0.0.1:0"
{http}
[database]
url = "sqlite://var/epro.db"
[trials]
directory = "trials"
[outbox]
sink = {{ type = "file", path = "var/outbox.ndjson" }}
poll_interval_milliseconds = 20
# Port 0 changes the default HOST:PORT relay id at every start; a fixed id,
# as a fixed port gives in production, lets a restart take back its claims.
relay_id = "epro-test"
[auth]
require_patient_token = false
[telemetry]
log_format = "json"
log_filter = "info"
{telemetry}
"#
        ),
    )
    .unwrap();
    create_staff(dir, "sqlite://var/epro.db", token);
    path
}

/// Writes a configuration in `dir` with the demo trial, the given database
/// URL and sink (an inline TOML table), extra `[outbox]` lines and JSON logs.
pub fn write_backend_config(dir: &Path, database_url: &str, sink: &str, outbox: &str) -> PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/trials/demo").canonicalize().unwrap();
    std::fs::create_dir_all(dir.join("trials")).unwrap();
    std::fs::create_dir_all(dir.join("var")).unwrap();
    if !dir.join("trials/demo").exists() {
        std::os::unix::fs::symlink(demo, dir.join("trials/demo")).unwrap();
    }
    let path = dir.join("epro.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[http]
listen = "127.0.0.1:0"
[database]
url = "{database_url}"
[trials]
directory = "trials"
[outbox]
sink = {sink}
poll_interval_milliseconds = 20
initial_backoff_milliseconds = 50
max_backoff_seconds = 1
{outbox}
[auth]
require_patient_token = false
[telemetry]
log_format = "json"
log_filter = "info"
"#
        ),
    )
    .unwrap();
    create_staff(dir, database_url, BACKEND_TOKEN);
    path
}

/// The token of the `ops` staff account that [`write_backend_config`] creates.
pub const BACKEND_TOKEN: &str = "epro_s_b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";

/// Creates the staff account `ops`, admin and data manager of the demo trial,
/// whose token is `token`, in the database at `database_url` as seen from `dir`,
/// unless it exists. Runs before the server starts, on a thread of its own so
/// that async tests may call it.
pub fn create_staff(dir: &Path, database_url: &str, token: &str) {
    use epro_store::{AccessChange, ChangeOrigin, NewToken, Role, RoleGrant, Store, StoreConfig};
    let config = match database_url.strip_prefix("sqlite://") {
        Some(path) => {
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            StoreConfig::new(dir.join(path))
        }
        None => StoreConfig::postgres(database_url),
    };
    let digest = epro_http::auth::digest(token);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let store = Store::open(config).await.expect("the test database must open");
            let grants = vec![
                RoleGrant { role: Role::Admin, trial_id: None, site_id: None },
                RoleGrant { role: Role::DataManager, trial_id: Some("demo".to_owned()), site_id: None },
            ];
            let token = NewToken { token_id: uuid::Uuid::new_v4().to_string(), digest, expires_at: None };
            let change = AccessChange::CreateStaff {
                staff_id: "ops".to_owned(),
                display_name: "Test operator".to_owned(),
                grants,
                token,
            };
            let origin = ChangeOrigin { actor: "test".to_owned(), request_id: None };
            store.change_access(change, origin).await.expect("the ops account must be created");
            store.close().await;
        });
    })
    .join()
    .expect("creating the ops account failed");
}

/// Builds a PHQ-9 submission envelope for the demo trial with this id and patient.
pub fn phq9_envelope(id: &str, patient: &str) -> Value {
    serde_json::json!({
        "submissionId": id,
        "patientId": patient,
        "completedAt": "2026-12-04T20:15:00+08:00",
        "answers": {
            "/44250-9": "LA6569-3", "/44255-8": "LA6568-5", "/44259-0": "LA6570-1",
            "/44254-1": "LA6568-5", "/44251-7": "LA6571-9", "/44258-2": "LA6568-5",
            "/44252-5": "LA6569-3", "/44253-3": "LA6568-5", "/44260-8": "LA6568-5"
        }
    })
}
