//! The configuration: one TOML file, every key overridable by an
//! environment variable `EPRO_<SECTION>__<KEY>` (for example
//! `EPRO_HTTP__LISTEN`), read once at start and passed on explicitly.
//!
//! Relative paths in the file (and in overrides) are resolved against the
//! directory of the configuration file, so a configuration works whatever
//! the current directory is. Unknown keys are errors: a misspelt key would
//! otherwise silently fall back to its default.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use epro_http::{AdmissionSettings, IpRate, Language};
use epro_outbox::SinkConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub trials: TrialsConfig,
    pub outbox: OutboxConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub alerts: AlertsConfig,
}

/// `[http]`: the listener and the limits on requests.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; `--listen` overrides it. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest request body, counted as bytes arrive; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Deepest nesting of JSON arrays and objects; deeper bodies get 400.
    pub max_json_depth: usize,
    /// Language of messages when `Accept-Language` names neither zh-CN nor en.
    pub default_language: Language,
    /// How far in the future `completedAt` may lie, for device clocks that
    /// run fast.
    pub clock_skew_seconds: u64,
    /// How long shutdown waits for in-flight requests and the store's queue
    /// after the listener has stopped, before it gives up.
    pub shutdown_timeout_seconds: u64,
    /// How long the listener keeps accepting after SIGTERM while readiness
    /// already returns 503, so a load balancer stops sending first.
    pub shutdown_readiness_delay_seconds: u64,
    /// Requests handled at the same time; one more gets 503 `overloaded` at
    /// once. `/healthz`, `/readyz` and `/metrics` do not count.
    pub max_concurrent_requests: usize,
    /// Deadline for one request, body included; past it the reply is 503
    /// `timed_out`.
    pub request_timeout_seconds: u64,
    /// A connection that does not finish sending its request headers within
    /// this time is closed. This also closes keep-alive connections idle for
    /// this long.
    pub header_read_timeout_seconds: u64,
    /// Requests per second allowed from one client IP address (an IPv6
    /// client by its /64 prefix); 0 turns the limit off.
    pub rate_limit_per_ip_per_second: u32,
    /// Requests one client IP address may send at once above its rate; 0
    /// means the same as `rate_limit_per_ip_per_second`.
    pub rate_limit_per_ip_burst: u32,
    /// Submissions per minute allowed for one patient of one trial; 0 turns
    /// the limit off.
    pub rate_limit_per_patient_per_minute: u32,
}

/// `[database]`: where submissions are stored and how the writer batches.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (a relative PATH is relative to the configuration
    /// file) or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`. A password
    /// here is a secret: prefer `EPRO_DATABASE__URL`; it is never logged.
    pub url: String,
    /// PostgreSQL only: connections per instance, shared by the group
    /// commit, the relay and the reads.
    pub pool_size: u32,
    /// Most submissions committed in one transaction by the group commit.
    pub group_commit_max_rows: usize,
    /// Submissions that may wait for the writer; when full, new ones get 503.
    pub queue_capacity: usize,
    /// SQLite only: connections used for reads (readiness, reading
    /// submissions, the relay).
    pub read_connections: u32,
    /// PostgreSQL only: apply pending migrations when `serve` starts. Set it
    /// to false when `serve` connects as a role that may not create tables or
    /// change the audit trail, and run `epro migrate` as the owner instead.
    pub run_migrations: bool,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let location = match Config::backend_of(&self.url, self.pool_size) {
            Ok(backend) => backend.location(),
            Err(_) => "<unsupported URL>".to_owned(),
        };
        f.debug_struct("DatabaseConfig")
            .field("url", &location)
            .field("pool_size", &self.pool_size)
            .field("group_commit_max_rows", &self.group_commit_max_rows)
            .field("queue_capacity", &self.queue_capacity)
            .field("read_connections", &self.read_connections)
            .field("run_migrations", &self.run_migrations)
            .finish()
    }
}

/// `[trials]`: where trial definitions are read from.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrialsConfig {
    /// A directory with one folder per trial, each holding `trial.toml` and
    /// its form files.
    pub directory: PathBuf,
}

/// `[outbox]`: how stored events are relayed.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The destination of events: `{ type = "file", path = "..." }` (the default, with
    /// `var/outbox.ndjson`), `rabbitmq`, `kafka`, `webhook` or `log`. Left out
    /// of the serialized defaults, so that the keys of the default file sink
    /// never mix into another sink type when the layers merge.
    #[serde(skip_serializing, default = "default_sink")]
    pub sink: SinkConfig,
    /// How often the relay looks for events when no commit woke it.
    pub poll_interval_milliseconds: u64,
    /// Most events published in one batch.
    pub batch_size: usize,
    /// First wait after a failed publish; doubles per failure.
    pub initial_backoff_milliseconds: u64,
    /// Longest wait between publish attempts.
    pub max_backoff_seconds: u64,
    /// How long a relay's claim on a batch keeps other instances' relays off
    /// it. A crashed instance's events are sent again by another one after
    /// this; it must exceed the slowest publish.
    pub lease_seconds: u64,
    /// Refusals by the sink (a nack, a returned message, HTTP 4xx) after
    /// which an event becomes a dead letter. An unreachable sink never
    /// dead-letters anything: it is retried without limit.
    pub dead_letter_after_rejections: u32,
    /// Name of this instance's claims in the outbox. Empty means `HOST:PORT`
    /// of the HTTP listener, which is unique per instance and the same after
    /// a restart, so a restarted instance takes back its own claims at once.
    pub relay_id: String,
}

fn default_sink() -> SinkConfig {
    SinkConfig::File { path: PathBuf::from("var/outbox.ndjson") }
}

/// `[auth]`: who may submit, and how long new tokens live. Staff accounts and
/// tokens live in the database (`epro staff create`); no secret is configured here.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether submissions need a patient token, or a staff token of the patient's
    /// site. `false` accepts anonymous submissions for any patient id: for
    /// demonstrations and benchmarks only.
    pub require_patient_token: bool,
    /// Days a new patient token is valid unless the enrolment asks for another
    /// lifetime.
    pub patient_token_days: u32,
    /// Days a new staff token is valid unless the request asks for another
    /// lifetime.
    pub staff_token_days: u32,
}

/// `[alerts]`: the escalation of alerts that site staff did not acknowledge
/// in time. Each trial file sets its own deadline; these keys set how the
/// server looks for alerts past it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How often `epro serve` looks for open alerts past their due time. An
    /// alert escalates at most this long after it is due.
    pub escalation_interval_seconds: u64,
    /// Most alerts escalated in one transaction. A run takes batches until
    /// one comes back smaller.
    pub escalation_batch_size: usize,
}

/// `[telemetry]`: logging and metrics.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,epro_store=debug`.
    pub log_filter: String,
    /// A second listener for `/metrics`, `/healthz` and `/readyz` only, for
    /// an address that only the platform reaches. `/metrics` is served on
    /// `http.listen` as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Shortest time between two log lines about requests rejected by the
    /// same admission limit; each line carries the count since the last.
    pub rejection_log_interval_seconds: u64,
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Default of `http.max_concurrent_requests`, from Little's law: requests in
/// flight = throughput × time each spends in the server. `bench/run` (PHQ-9
/// submissions, wrk with 2 threads on the same shared 2-core machine as the
/// server) measured 7,700 to 17,700 stored submissions per second at 64 and
/// 512 connections. With a latency budget of 25 to 50 ms, that is 190 to
/// 885 requests in flight. 512 lies in that range: a full limit means a
/// wait of 512 / throughput, 29 ms at 17,700/s and 66 ms at 7,700/s. The
/// benchmark's 512 connections never reach it. A much lower limit also cuts
/// throughput, because the group commit batches what is in flight: at 512
/// connections a limit of 32 stored 2,300/s, against 8,200 to 9,500/s with
/// 512. docs/benchmarks.md has the runs.
///
/// NOTE: sized on one shared machine. Where the disk or the CPU differs,
/// measure with `bench/run` and set throughput × latency budget.
const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// Defaults for every key except `trials.directory`, which has no sensible
/// default. The shipped `examples/demo.toml` spells each one out.
#[derive(Serialize)]
struct Defaults {
    http: HttpConfig,
    database: DatabaseConfig,
    outbox: OutboxConfig,
    auth: AuthConfig,
    telemetry: TelemetryConfig,
    alerts: AlertsConfig,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                max_body_bytes: 1024 * 1024,
                max_json_depth: 64,
                default_language: Language::ZhCn,
                clock_skew_seconds: 300,
                shutdown_timeout_seconds: 30,
                shutdown_readiness_delay_seconds: 2,
                max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
                request_timeout_seconds: 10,
                header_read_timeout_seconds: 10,
                rate_limit_per_ip_per_second: 0,
                rate_limit_per_ip_burst: 0,
                rate_limit_per_patient_per_minute: 0,
            },
            database: DatabaseConfig {
                url: "sqlite://var/epro.db".to_owned(),
                pool_size: 16,
                group_commit_max_rows: 256,
                queue_capacity: 4096,
                read_connections: 4,
                run_migrations: true,
            },
            outbox: OutboxConfig {
                sink: default_sink(),
                poll_interval_milliseconds: 200,
                batch_size: 256,
                initial_backoff_milliseconds: 500,
                max_backoff_seconds: 60,
                lease_seconds: 60,
                dead_letter_after_rejections: 10,
                relay_id: String::new(),
            },
            auth: AuthConfig { require_patient_token: true, patient_token_days: 365, staff_token_days: 365 },
            telemetry: TelemetryConfig {
                log_format: LogFormat::Text,
                log_filter: "info".to_owned(),
                metrics_listen: None,
                rejection_log_interval_seconds: 10,
            },
            alerts: AlertsConfig { escalation_interval_seconds: 30, escalation_batch_size: 100 },
        }
    }
}

impl Config {
    /// Reads the file, applies `EPRO_*` overrides and resolves relative
    /// paths against the file's directory.
    ///
    /// # Errors
    ///
    /// Fails when the file is missing or not TOML, or when a key is unknown,
    /// mistyped or invalid; the message names the key and where its value
    /// came from (the file or the environment variable).
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let mut config: Config = layers(path)?.extract().map_err(invalid)?;

        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        config
            .check()
            .with_context(|| format!("invalid configuration (file {} with EPRO_* overrides)", path.display()))?;
        Ok(config)
    }

    /// Reads only the `[database]` and `[telemetry]` sections, with the same
    /// layers, checks and path resolution as [`Config::load`], for the
    /// commands that only open the database (`migrate`, `outbox`). So they
    /// run where the sink's secret or the trials directory is not at hand.
    ///
    /// # Errors
    ///
    /// Fails like [`Config::load`], for those two sections.
    pub fn load_database(path: &Path) -> anyhow::Result<DatabaseOnly> {
        let layers = layers(path)?;
        let mut database: DatabaseConfig = layers.extract_inner("database").map_err(invalid)?;
        let telemetry: TelemetryConfig = layers.extract_inner("telemetry").map_err(invalid)?;

        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Ok(epro_store::Backend::Sqlite { path }) = Self::backend_of(&database.url, database.pool_size) {
            let path = if path.is_relative() { base.join(path) } else { path };
            database.url = format!("sqlite://{}", path.display());
        }
        let only = DatabaseOnly { database, telemetry };
        only.store_config()
            .with_context(|| format!("invalid configuration (file {} with EPRO_* overrides)", path.display()))?;
        Ok(only)
    }

    /// Returns the database named by `database.url`.
    ///
    /// # Errors
    ///
    /// Fails for a URL that is neither `sqlite://PATH` nor
    /// `postgres://...`.
    pub fn backend(&self) -> anyhow::Result<epro_store::Backend> {
        Self::backend_of(&self.database.url, self.database.pool_size)
    }

    fn backend_of(url: &str, pool_size: u32) -> anyhow::Result<epro_store::Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(epro_store::Backend::Postgres { url: url.to_owned(), pool_size });
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).with_context(|| {
            let scheme = url.split_once(':').map_or("none", |(scheme, _)| scheme);
            format!(
                "database.url has the scheme {scheme:?}, which is not supported: use sqlite://PATH or \
                 postgres://USER@HOST:PORT/DATABASE"
            )
        })?;
        anyhow::ensure!(!path.is_empty() && path != ":memory:", "database.url must name a file: sqlite://PATH");
        Ok(epro_store::Backend::Sqlite { path: PathBuf::from(path) })
    }

    /// Returns the store settings for `database.url`, with `metrics` as the
    /// recorder the store and the relay write to.
    ///
    /// # Errors
    ///
    /// Fails for a URL this build cannot open.
    pub fn store_config(&self, metrics: Option<epro_store::SharedRecorder>) -> anyhow::Result<epro_store::StoreConfig> {
        store_config_of(&self.database, metrics)
    }

    /// Returns the admission limits for the HTTP layer, with 0 for "off"
    /// turned into `None`.
    pub fn admission(&self) -> AdmissionSettings {
        let http = &self.http;
        let rate_per_ip = NonZeroU32::new(http.rate_limit_per_ip_per_second).map(|per_second| IpRate {
            per_second,
            burst: NonZeroU32::new(http.rate_limit_per_ip_burst).unwrap_or(per_second),
        });
        AdmissionSettings {
            max_concurrent_requests: Some(http.max_concurrent_requests),
            request_timeout: Some(Duration::from_secs(http.request_timeout_seconds)),
            rate_per_ip,
            rate_per_patient_per_minute: NonZeroU32::new(http.rate_limit_per_patient_per_minute),
            rejection_log_interval: Duration::from_secs(self.telemetry.rejection_log_interval_seconds),
        }
    }

    /// Returns the settings of the alert escalation task.
    pub fn escalation(&self) -> crate::escalation::EscalationConfig {
        crate::escalation::EscalationConfig {
            interval: Duration::from_secs(self.alerts.escalation_interval_seconds),
            batch_size: self.alerts.escalation_batch_size,
        }
    }

    /// Returns the relay settings as durations, for an instance whose HTTP
    /// listener is bound to `port`.
    pub fn relay(&self, port: u16) -> epro_outbox::RelayConfig {
        let relay_id = match self.outbox.relay_id.trim() {
            "" => epro_outbox::RelayConfig::relay_id_for_port(port),
            chosen => chosen.to_owned(),
        };
        epro_outbox::RelayConfig {
            relay_id,
            poll_interval: Duration::from_millis(self.outbox.poll_interval_milliseconds),
            batch_size: self.outbox.batch_size,
            lease: Duration::from_secs(self.outbox.lease_seconds),
            dead_letter_after: self.outbox.dead_letter_after_rejections,
            initial_backoff: Duration::from_millis(self.outbox.initial_backoff_milliseconds),
            max_backoff: Duration::from_secs(self.outbox.max_backoff_seconds),
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &Path| if path.is_relative() { base.join(path) } else { path.to_path_buf() };

        self.trials.directory = resolve(&self.trials.directory);
        if let SinkConfig::File { path } = &mut self.outbox.sink {
            *path = resolve(path);
        }
        if let Ok(epro_store::Backend::Sqlite { path }) = self.backend() {
            self.database.url = format!("sqlite://{}", resolve(&path).display());
        }
    }

    /// Checks the values that deserialize fine but make no sense.
    fn check(&self) -> anyhow::Result<()> {
        self.backend()?;
        let limits = [
            ("database.pool_size", self.database.pool_size as usize),
            ("http.max_body_bytes", self.http.max_body_bytes),
            ("http.max_json_depth", self.http.max_json_depth),
            ("http.max_concurrent_requests", self.http.max_concurrent_requests),
            ("http.request_timeout_seconds", self.http.request_timeout_seconds as usize),
            ("http.header_read_timeout_seconds", self.http.header_read_timeout_seconds as usize),
            ("telemetry.rejection_log_interval_seconds", self.telemetry.rejection_log_interval_seconds as usize),
            ("database.group_commit_max_rows", self.database.group_commit_max_rows),
            ("database.queue_capacity", self.database.queue_capacity),
            ("database.read_connections", self.database.read_connections as usize),
            ("outbox.batch_size", self.outbox.batch_size),
            ("outbox.lease_seconds", self.outbox.lease_seconds as usize),
            ("outbox.dead_letter_after_rejections", self.outbox.dead_letter_after_rejections as usize),
            ("alerts.escalation_interval_seconds", self.alerts.escalation_interval_seconds as usize),
            ("alerts.escalation_batch_size", self.alerts.escalation_batch_size),
        ];
        for (key, value) in limits {
            anyhow::ensure!(value > 0, "{key} must be greater than 0");
        }
        anyhow::ensure!(
            self.http.max_concurrent_requests <= tokio::sync::Semaphore::MAX_PERMITS,
            "http.max_concurrent_requests must not exceed {}",
            tokio::sync::Semaphore::MAX_PERMITS
        );
        anyhow::ensure!(
            self.http.rate_limit_per_ip_burst == 0 || self.http.rate_limit_per_ip_per_second > 0,
            "http.rate_limit_per_ip_burst is {} but http.rate_limit_per_ip_per_second is 0, which turns the per-IP \
             limit off; set both or neither",
            self.http.rate_limit_per_ip_burst
        );
        let relay = self.relay(self.http.listen.port());
        anyhow::ensure!(
            relay.initial_backoff <= relay.max_backoff,
            "outbox.initial_backoff_milliseconds ({} ms) must not exceed outbox.max_backoff_seconds ({} s)",
            self.outbox.initial_backoff_milliseconds,
            self.outbox.max_backoff_seconds
        );
        Ok(())
    }
}

/// The configuration of the commands that only open the database, read by
/// [`Config::load_database`].
#[derive(Debug)]
pub struct DatabaseOnly {
    pub database: DatabaseConfig,
    pub telemetry: TelemetryConfig,
}

impl DatabaseOnly {
    /// Returns the store settings for `database.url`, without metrics.
    ///
    /// # Errors
    ///
    /// Fails for a URL this build cannot open or a limit of 0.
    pub fn store_config(&self) -> anyhow::Result<epro_store::StoreConfig> {
        store_config_of(&self.database, None)
    }
}

/// Builds the store settings from `[database]`, checking its limits.
fn store_config_of(
    database: &DatabaseConfig,
    metrics: Option<epro_store::SharedRecorder>,
) -> anyhow::Result<epro_store::StoreConfig> {
    let limits = [
        ("database.pool_size", database.pool_size as usize),
        ("database.group_commit_max_rows", database.group_commit_max_rows),
        ("database.queue_capacity", database.queue_capacity),
        ("database.read_connections", database.read_connections as usize),
    ];
    for (key, value) in limits {
        anyhow::ensure!(value > 0, "{key} must be greater than 0");
    }
    Ok(epro_store::StoreConfig {
        backend: Config::backend_of(&database.url, database.pool_size)?,
        max_batch: database.group_commit_max_rows,
        queue_capacity: database.queue_capacity,
        read_connections: database.read_connections,
        metrics,
        run_migrations: database.run_migrations,
    })
}

/// Builds the layers of the configuration, lowest first: the defaults, the file,
/// then `EPRO_*` variables.
fn layers(path: &Path) -> anyhow::Result<Figment> {
    if !path.is_file() {
        anyhow::bail!("configuration file {} not found", path.display());
    }
    Ok(Figment::from(Serialized::defaults(Defaults::default()))
        .merge(Toml::file_exact(path))
        .merge(Env::prefixed("EPRO_").split("__")))
}

/// Turns figment's errors into one error that lists each with its key and
/// where its value came from.
fn invalid(error: figment::Error) -> anyhow::Error {
    let all: Vec<String> = error.into_iter().map(describe_error).collect();
    anyhow::anyhow!("invalid configuration:\n  {}", all.join("\n  "))
}

/// Words one figment error as `key: problem (in FILE)` or
/// `key: problem (from environment variable EPRO_KEY)`, so the reader
/// knows which key to fix and where its value came from.
fn describe_error(error: figment::Error) -> String {
    let key = error.path.join(".").to_lowercase();
    let origin = match &error.metadata {
        Some(metadata) if metadata.name.contains("environment") => {
            format!(" (from environment variable EPRO_{})", key.to_uppercase().replace('.', "__"))
        }
        Some(metadata) => match &metadata.source {
            Some(source) => format!(" (in {source})"),
            None => format!(" (in {})", metadata.name),
        },
        None => String::new(),
    };
    if key.is_empty() { format!("{}{origin}", error.kind) } else { format!("{key}: {}{origin}", error.kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("epro.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn load_resolves_paths_against_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"trials\"\n[database]\nurl = \"sqlite://var/x.db\"\n");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.trials.directory, dir.path().join("trials"));
        assert!(
            matches!(config.backend().unwrap(), epro_store::Backend::Sqlite { path } if path == dir.path().join("var/x.db"))
        );
        assert_eq!(config.http.max_body_bytes, 1024 * 1024);
        assert_eq!(config.http.default_language, Language::ZhCn);
    }

    #[test]
    fn load_names_bad_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"t\"\n[http]\nlisten = \"not an address\"\n");
        let message = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(message.contains("http.listen"), "{message}");
        assert!(message.contains("epro.toml"), "{message}");
    }

    #[test]
    fn load_rejects_unknown_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"t\"\n[http]\nlisten_address = \"127.0.0.1:1\"\n");
        let message = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(message.contains("listen_address"), "{message}");
    }

    #[test]
    fn load_rejects_unsupported_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"t\"\n[database]\nurl = \"mysql://x\"\n");
        let message = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(message.contains("database.url"), "{message}");
        assert!(message.contains("\"mysql\""), "{message}");
        assert!(message.contains("postgres://"), "the message names what works: {message}");
    }

    #[test]
    fn load_accepts_postgres_and_hides_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[trials]\ndirectory = \"t\"\n[database]\nurl = \"postgres://epro:s3cret-pw@db.internal:5433/epro\"\npool_size = 4\n",
        );

        let config = Config::load(&path).unwrap();
        let debug = format!("{config:?}");

        assert!(matches!(
            config.backend().unwrap(),
            epro_store::Backend::Postgres { ref url, pool_size: 4 } if url == "postgres://epro:s3cret-pw@db.internal:5433/epro"
        ));
        assert!(!debug.contains("s3cret-pw"), "{debug}");
        assert!(debug.contains("db.internal:5433/epro"), "{debug}");
        assert_eq!(config.database.url, "postgres://epro:s3cret-pw@db.internal:5433/epro", "not resolved as a path");
    }

    #[test]
    fn load_takes_a_broker_sink_without_file_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[trials]\ndirectory = \"t\"\n[outbox]\nsink = { type = \"rabbitmq\", url = \"amqp://127.0.0.1:5672/%2f\", queue = \"q\" }\n",
        );
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let default = write(&dir.path().join("d"), "[trials]\ndirectory = \"t\"\n");

        let config = Config::load(&path).unwrap();
        let default = Config::load(&default).unwrap();

        assert!(matches!(config.outbox.sink, SinkConfig::RabbitMq(ref rabbitmq) if rabbitmq.queue == "q"));
        assert!(
            matches!(default.outbox.sink, SinkConfig::File { ref path } if path.ends_with("d/var/outbox.ndjson")),
            "{:?}",
            default.outbox.sink
        );
    }

    #[test]
    fn load_rejects_misspelt_sink_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[trials]\ndirectory = \"t\"\n[outbox]\nsink = { type = \"rabbitmq\", url = \"amqp://127.0.0.1:5672/%2f\", queu = \"q\" }\n",
        );

        let message = format!("{:#}", Config::load(&path).unwrap_err());

        assert!(message.contains("unknown field: found `queu`"), "{message}");
        assert!(message.contains("outbox.sink"), "{message}");
    }

    #[test]
    fn load_rejects_zero_pool_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"t\"\n[database]\npool_size = 0\n");
        let message = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(message.contains("database.pool_size must be greater than 0"), "{message}");
    }

    #[test]
    fn load_fills_admission_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"t\"\n");
        let config = Config::load(&path).unwrap();
        let admission = config.admission();

        assert_eq!(admission.max_concurrent_requests, Some(DEFAULT_MAX_CONCURRENT_REQUESTS));
        assert_eq!(admission.request_timeout, Some(Duration::from_secs(10)));
        assert!(admission.rate_per_ip.is_none(), "per-IP limit is off by default");
        assert!(admission.rate_per_patient_per_minute.is_none(), "per-patient limit is off by default");
        assert_eq!(admission.rejection_log_interval, Duration::from_secs(10));
        assert_eq!(config.http.header_read_timeout_seconds, 10);
        assert_eq!(config.http.shutdown_readiness_delay_seconds, 2);
        assert_eq!(config.telemetry.metrics_listen, None);
    }

    #[test]
    fn load_reads_alert_escalation_settings() {
        let dir = tempfile::tempdir().unwrap();
        let default = Config::load(&write(dir.path(), "[trials]\ndirectory = \"t\"\n")).unwrap();
        let text =
            "[trials]\ndirectory = \"t\"\n[alerts]\nescalation_interval_seconds = 5\nescalation_batch_size = 7\n";
        let chosen = Config::load(&write(dir.path(), text)).unwrap();

        assert_eq!(default.escalation().interval, Duration::from_secs(30));
        assert_eq!(default.escalation().batch_size, 100);
        assert_eq!(chosen.escalation().interval, Duration::from_secs(5));
        assert_eq!(chosen.escalation().batch_size, 7);
    }

    #[test]
    fn admission_burst_defaults_to_rate() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[trials]\ndirectory = \"t\"\n[http]\nrate_limit_per_ip_per_second = 5\n\
                    rate_limit_per_patient_per_minute = 3\n[telemetry]\nmetrics_listen = \"127.0.0.1:9100\"\n";
        let config = Config::load(&write(dir.path(), text)).unwrap();
        let admission = config.admission();

        let rate = admission.rate_per_ip.expect("per-IP limit is on");
        assert_eq!(rate.per_second.get(), 5);
        assert_eq!(rate.burst.get(), 5);
        assert_eq!(admission.rate_per_patient_per_minute.map(NonZeroU32::get), Some(3));
        assert_eq!(config.telemetry.metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], 9100))));
    }

    #[test]
    fn load_rejects_burst_without_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[trials]\ndirectory = \"t\"\n[http]\nrate_limit_per_ip_burst = 20\n");
        let message = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(message.contains("http.rate_limit_per_ip_burst"), "{message}");
    }

    #[test]
    fn load_rejects_zero_admission_limits() {
        let cases = [
            ("[http]\nmax_concurrent_requests = 0\n", "http.max_concurrent_requests"),
            ("[http]\nrequest_timeout_seconds = 0\n", "http.request_timeout_seconds"),
            ("[http]\nheader_read_timeout_seconds = 0\n", "http.header_read_timeout_seconds"),
            ("[telemetry]\nrejection_log_interval_seconds = 0\n", "telemetry.rejection_log_interval_seconds"),
            ("[alerts]\nescalation_interval_seconds = 0\n", "alerts.escalation_interval_seconds"),
            ("[alerts]\nescalation_batch_size = 0\n", "alerts.escalation_batch_size"),
        ];
        for (section, key) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), &format!("[trials]\ndirectory = \"t\"\n{section}"));
            let message = format!("{:#}", Config::load(&path).unwrap_err());
            assert!(message.contains(key), "{key}: {message}");
        }
    }

    #[test]
    fn load_reports_missing_file() {
        let message = format!("{:#}", Config::load(Path::new("/nonexistent/epro.toml")).unwrap_err());
        assert!(message.contains("/nonexistent/epro.toml"), "{message}");
    }
}
