//! The [`Sink`] trait with its [`PublishError`], the wire format of a published
//! message, and sink selection from configuration.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use epro_store::OutboxEvent;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::file::NdjsonFileSink;
use crate::kafka::{KafkaConfig, KafkaSink};
use crate::log::LogSink;
use crate::rabbitmq::{RabbitMqConfig, RabbitMqSink};
use crate::webhook::{WebhookConfig, WebhookSink};

/// A destination for outbox events.
///
/// Delivery is at least once: the relay marks events delivered only after `publish`
/// returns `Ok`, so a crash in between, or an `Err` after a partial write, makes the
/// relay publish the same events again. Consumers deduplicate on `eventId`.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Returns a short name for logs, for example `file`.
    fn name(&self) -> &'static str;

    /// Publishes a batch of events in `seq` order.
    ///
    /// # Errors
    ///
    /// Returns an error when any event of the batch may not have been published. The
    /// relay then retries the whole batch. [`PublishError`] distinguishes a sink
    /// that could not be reached from one that rejected the events.
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError>;
}

/// Reason a [`Sink::publish`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The sink could not be reached or did not reply (connection refused or lost,
    /// timeout, broker unavailable, HTTP 408/429/5xx). Nothing is known against the
    /// events; the relay retries without limit.
    #[error("sink unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The sink replied and rejected the events (broker nack or returned message,
    /// HTTP 4xx other than 408/429, record too large). Counts toward the event's
    /// dead-letter limit.
    #[error("sink rejected the events: {0:#}")]
    Rejected(anyhow::Error),
}

impl PublishError {
    /// Returns `true` for [`PublishError::Rejected`].
    pub fn is_rejected(&self) -> bool {
        matches!(self, PublishError::Rejected(_))
    }
}

/// Treats an error without a classification as [`PublishError::Unavailable`], so the
/// relay retries it without counting it against the events.
impl From<anyhow::Error> for PublishError {
    fn from(error: anyhow::Error) -> Self {
        PublishError::Unavailable(error)
    }
}

/// A URL that may contain credentials: a password in its user information, or a
/// token in its query string.
///
/// `Debug`, [`SecretUrl::redacted`] and serialization write the URL with the password
/// and the query replaced by `***`, so a logged or printed configuration contains
/// neither. Deserialization reads a plain string.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(SecretString::from(url.into()))
    }

    /// Returns the URL with its password and query, if any, replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.0.expose_secret())
    }

    /// Returns the whole URL, credentials included, for connecting.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

/// Replaces the password in the user information of `url`, and its query, with `***`.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Without an authority there is no telling where a password would be.
        return "***".to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end =
        url[authority_start..].find(['/', '?', '#']).map_or(url.len(), |offset| authority_start + offset);
    let authority = &url[authority_start..authority_end];

    let mut redacted = url[..authority_start].to_owned();
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            match user_info.split_once(':') {
                Some((user, _password)) => redacted.push_str(&format!("{user}:***@{host}")),
                None => redacted.push_str(&format!("{user_info}@{host}")),
            };
        }
        None => redacted.push_str(authority),
    }

    let rest = &url[authority_end..];
    match rest.find('?') {
        Some(query_start) => {
            redacted.push_str(&rest[..query_start]);
            redacted.push_str("?***");
        }
        None => redacted.push_str(rest),
    }
    redacted
}

/// Builds the JSON message published for an event:
/// `{"eventId","type","occurredAt","trialId","patientId","submissionId","payload"}`.
///
/// `occurredAt` is RFC 3339 in UTC and `payload` is the event's JSON object. The store
/// only accepts valid JSON payloads, but a payload that does not parse would be sent
/// as a JSON string rather than dropped.
pub fn message(event: &OutboxEvent) -> Value {
    let payload = serde_json::from_str(&event.payload).unwrap_or_else(|_| Value::String(event.payload.clone()));
    // Formatting fails only for a year outside 0000–9999 or an offset with seconds.
    // The store writes and reads RFC 3339 in UTC, so its events have neither.
    let occurred_at = event.occurred_at.format(&Rfc3339).unwrap_or_else(|_| event.occurred_at.to_string());

    json!({
        "eventId": event.event_id,
        "type": event.event_type,
        "occurredAt": occurred_at,
        "trialId": event.trial_id,
        "patientId": event.patient_id,
        "submissionId": event.submission_id,
        "payload": payload,
    })
}

/// The `[outbox.sink]` configuration section, selected by its `type` key.
///
/// Unknown keys are rejected: a misspelt `queue` would otherwise fall back to its
/// default and fill a queue that no consumer reads. `Debug` output of every variant hides
/// credentials.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// `{ type = "file", path = "..." }`: append NDJSON lines to a file.
    File { path: PathBuf },
    /// `{ type = "log" }`: write one log event per message, for development.
    Log {},
    /// `{ type = "rabbitmq", url = "amqp://...", ... }`: publish to a RabbitMQ
    /// exchange with publisher confirms. See [`RabbitMqConfig`].
    #[serde(rename = "rabbitmq")]
    RabbitMq(RabbitMqConfig),
    /// `{ type = "kafka", bootstrap_brokers = ["host:9092"], ... }`: produce to a
    /// Kafka topic. See [`KafkaConfig`].
    Kafka(KafkaConfig),
    /// `{ type = "webhook", url = "https://...", secret = "..." }`: POST signed JSON
    /// batches to an HTTP endpoint. See [`WebhookConfig`].
    Webhook(WebhookConfig),
}

/// Opens the sink named by `config`.
///
/// Broker sinks do not wait for their broker here, so epro starts while the broker
/// is down. When called inside a Tokio runtime, they start connecting in a
/// background task that logs a warning if the broker cannot be reached, and every
/// `publish` connects again until one succeeds.
///
/// # Errors
///
/// Fails when a file sink's file cannot be opened or created, or when a broker or
/// webhook setting is invalid (malformed URL, empty broker list, zero timeout).
pub fn build_sink(config: &SinkConfig) -> anyhow::Result<Arc<dyn Sink>> {
    match config {
        SinkConfig::File { path } => Ok(Arc::new(NdjsonFileSink::open(path)?)),
        SinkConfig::Log {} => Ok(Arc::new(LogSink)),
        SinkConfig::RabbitMq(config) => {
            let sink = Arc::new(RabbitMqSink::new(config.clone())?);
            let connecting = Arc::clone(&sink);
            spawn_first_connect("rabbitmq", async move { connecting.connect().await });
            Ok(sink)
        }
        SinkConfig::Kafka(config) => {
            let sink = Arc::new(KafkaSink::new(config.clone())?);
            let connecting = Arc::clone(&sink);
            spawn_first_connect("kafka", async move { connecting.connect().await });
            Ok(sink)
        }
        SinkConfig::Webhook(config) => Ok(Arc::new(WebhookSink::new(config.clone())?)),
    }
}

/// Runs a broker sink's first connection attempt in the background, if a Tokio
/// runtime is running, and logs its outcome.
fn spawn_first_connect(sink: &'static str, connect: impl Future<Output = Result<(), PublishError>> + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!(sink, "No Tokio runtime, so the sink connects at its first publish");
        return;
    };
    runtime.spawn(async move {
        match connect.await {
            Ok(()) => tracing::info!(sink, "Outbox sink connected"),
            Err(error) => tracing::warn!(
                sink,
                error = %format!("{error:#}"),
                "Outbox sink could not connect at start, will retry at each publish"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    fn event(payload: &str) -> OutboxEvent {
        OutboxEvent {
            seq: 7,
            event_id: Uuid::parse_str("0190f0a8-3a55-7c2e-9e61-8d1b2f4a6c01").expect("uuid"),
            event_type: "submission.accepted".to_owned(),
            occurred_at: datetime!(2025-03-01 13:15:30.5 UTC),
            trial_id: "TRIAL-A".to_owned(),
            patient_id: "P-001".to_owned(),
            submission_id: "6f1c2d3e-4b5a-4c6d-8e7f-901234567890".to_owned(),
            payload: payload.to_owned(),
            attempts: 2,
        }
    }

    #[test]
    fn message_has_wire_fields() {
        let message = message(&event(r#"{"formId":"pain-diary","formVersion":"1.0.0"}"#));

        assert_eq!(
            message,
            json!({
                "eventId": "0190f0a8-3a55-7c2e-9e61-8d1b2f4a6c01",
                "type": "submission.accepted",
                "occurredAt": "2025-03-01T13:15:30.5Z",
                "trialId": "TRIAL-A",
                "patientId": "P-001",
                "submissionId": "6f1c2d3e-4b5a-4c6d-8e7f-901234567890",
                "payload": {"formId": "pain-diary", "formVersion": "1.0.0"},
            })
        );
    }

    #[test]
    fn message_keeps_unparsable_payload_as_string() {
        let message = message(&event("{broken"));

        assert_eq!(message["payload"], json!("{broken"));
    }

    #[test]
    fn sink_config_reads_type_key() {
        let file: SinkConfig =
            serde_json::from_value(json!({"type": "file", "path": "var/outbox.ndjson"})).expect("file sink");
        let log: SinkConfig = serde_json::from_value(json!({"type": "log"})).expect("log sink");
        let unknown = serde_json::from_value::<SinkConfig>(json!({"type": "nats"}));

        assert!(matches!(file, SinkConfig::File { path } if path == Path::new("var/outbox.ndjson")));
        assert!(matches!(log, SinkConfig::Log {}));
        let error = unknown.expect_err("nats is not a sink type");
        assert!(error.to_string().contains("unknown variant `nats`"), "{error}");
    }

    #[test]
    fn sink_config_rejects_misspelt_keys() {
        let cases = [
            (json!({"type": "file", "pth": "x"}), "pth"),
            (json!({"type": "log", "path": "x"}), "path"),
            (json!({"type": "rabbitmq", "url": "amqp://127.0.0.1:5672/%2f", "exchnage": "x"}), "exchnage"),
            (
                json!({"type": "kafka", "bootstrap_brokers": ["a:9092"], "partitions": 1, "replication_factor": 1, "topik": "x"}),
                "topik",
            ),
            (json!({"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s", "sceret": "x"}), "sceret"),
        ];

        for (value, key) in cases {
            let error = serde_json::from_value::<SinkConfig>(value).expect_err("a misspelt key is rejected");
            assert!(error.to_string().contains(&format!("unknown field `{key}`")), "{key}: {error}");
        }
    }

    #[test]
    fn sink_config_reads_rabbitmq_with_defaults() {
        let config: SinkConfig = serde_json::from_value(json!({
            "type": "rabbitmq",
            "url": "amqp://epro:rabbit-pass-1@127.0.0.1:5672/%2f",
        }))
        .expect("rabbitmq sink");

        let SinkConfig::RabbitMq(rabbitmq) = &config else { panic!("expected rabbitmq, got {config:?}") };
        assert_eq!(rabbitmq.url.expose(), "amqp://epro:rabbit-pass-1@127.0.0.1:5672/%2f");
        assert_eq!(rabbitmq.exchange, "epro.events");
        assert_eq!(rabbitmq.queue, "epro.events");
        assert_eq!(rabbitmq.connect_timeout_milliseconds, 5_000);
        assert_eq!(rabbitmq.publish_timeout_milliseconds, 10_000);
        let debug = format!("{config:?}");
        assert!(!debug.contains("rabbit-pass-1"), "{debug}");
    }

    #[test]
    fn sink_config_reads_kafka() {
        let single: SinkConfig = serde_json::from_value(json!({
            "type": "kafka",
            "bootstrap_brokers": ["127.0.0.1:9092"],
            "partitions": 6,
            "replication_factor": 3,
        }))
        .expect("kafka sink");
        let per_type: SinkConfig = serde_json::from_value(json!({
            "type": "kafka",
            "bootstrap_brokers": ["a:9092", "b:9092"],
            "topic_per_event_type": true,
            "topic_prefix": "trial.",
            "partitions": 1,
            "replication_factor": -1,
            "publish_timeout_milliseconds": 2_000,
        }))
        .expect("kafka sink per event type");
        let missing = serde_json::from_value::<SinkConfig>(json!({"type": "kafka", "bootstrap_brokers": ["a:9092"]}));

        let SinkConfig::Kafka(single) = single else { panic!("expected kafka") };
        assert_eq!(single.topic, None);
        assert!(!single.topic_per_event_type);
        assert_eq!((single.partitions, single.replication_factor), (6, 3));
        assert_eq!((single.connect_timeout_milliseconds, single.publish_timeout_milliseconds), (5_000, 30_000));
        let SinkConfig::Kafka(per_type) = per_type else { panic!("expected kafka") };
        assert!(per_type.topic_per_event_type);
        assert_eq!(per_type.topic_prefix, "trial.");
        assert_eq!(per_type.bootstrap_brokers, ["a:9092", "b:9092"]);
        assert_eq!(per_type.publish_timeout_milliseconds, 2_000);
        let error = missing.expect_err("partitions is required");
        assert!(error.to_string().contains("missing field `partitions`"), "{error}");
    }

    #[test]
    fn sink_config_reads_webhook() {
        let config: SinkConfig = serde_json::from_value(json!({
            "type": "webhook",
            "url": "https://receiver.test/epro",
            "secret": "webhook-secret-9",
            "timeout_milliseconds": 2_500,
        }))
        .expect("webhook sink");
        let missing = serde_json::from_value::<SinkConfig>(json!({"type": "webhook", "url": "https://receiver.test/"}));

        let SinkConfig::Webhook(webhook) = &config else { panic!("expected webhook, got {config:?}") };
        assert_eq!(webhook.url.expose(), "https://receiver.test/epro");
        assert_eq!(webhook.secret.expose_secret(), "webhook-secret-9");
        assert_eq!((webhook.timeout_milliseconds, webhook.connect_timeout_milliseconds), (2_500, 5_000));
        let debug = format!("{config:?}");
        let serialized = serde_json::to_string(&config).expect("serialize");
        assert!(!debug.contains("webhook-secret-9"), "{debug}");
        assert!(!serialized.contains("webhook-secret-9"), "{serialized}");
        let error = missing.expect_err("secret is required");
        assert!(error.to_string().contains("missing field `secret`"), "{error}");
    }

    #[test]
    fn redact_url_masks_password_and_query() {
        let cases = [
            ("amqp://epro:s3cret@broker:5672/%2f", "amqp://epro:***@broker:5672/%2f"),
            ("amqps://epro:p%40ss@broker/vhost?heartbeat=10", "amqps://epro:***@broker/vhost?***"),
            ("amqp://epro@broker:5672/%2f", "amqp://epro@broker:5672/%2f"),
            ("amqp://broker:5672/%2f", "amqp://broker:5672/%2f"),
            ("amqp://epro:s3cret@broker", "amqp://epro:***@broker"),
            ("https://receiver.test/hook?token=s3cret#top", "https://receiver.test/hook?***"),
            ("not a url s3cret", "***"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "url: {url}");
        }
    }

    #[test]
    fn build_sink_names_selected_sink() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let path = directory.path().join("events.ndjson");

        let file = build_sink(&SinkConfig::File { path: path.clone() }).expect("file sink");
        let log = build_sink(&SinkConfig::Log {}).expect("log sink");

        assert_eq!(file.name(), "file");
        assert_eq!(log.name(), "log");
        assert!(path.is_file(), "opening the file sink creates its file");
    }
}
