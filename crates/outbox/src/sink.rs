//! The [`Sink`] trait, the wire format of a published message, and sink selection
//! from configuration.

use std::path::PathBuf;
use std::sync::Arc;

use epro_store::OutboxEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::file::NdjsonFileSink;
use crate::log::LogSink;

/// Why a publish failed, which decides what the relay does next.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The sink could not be reached or did not answer (connection refused or lost,
    /// timeout, broker unavailable, HTTP 408, 429 or 5xx). Nothing is known against the
    /// events, so the relay retries without limit.
    #[error("sink unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The sink answered and refused the events (broker nack or returned message, HTTP
    /// 4xx other than 408 and 429, record too large). Counts toward each event's
    /// dead-letter limit.
    #[error("sink rejected the events: {0:#}")]
    Rejected(anyhow::Error),
}

impl From<anyhow::Error> for PublishError {
    /// Treats an error of unknown cause as the sink being unavailable, which is
    /// retried without limit and never dead-letters an event.
    fn from(error: anyhow::Error) -> Self {
        PublishError::Unavailable(error)
    }
}

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
    /// relay then retries the whole batch; see [`PublishError`] for how the two kinds
    /// differ.
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError>;
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
/// Unknown keys are ignored rather than rejected, because layered configuration
/// (defaults, file, environment) may leave the keys of another sink type in place.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// `{ type = "file", path = "..." }`: append NDJSON lines to a file.
    File { path: PathBuf },
    /// `{ type = "log" }`: write one log event per message, for development.
    Log,
}

/// Opens the sink named by `config`.
///
/// # Errors
///
/// Fails when a file sink's file cannot be opened or created.
pub fn build_sink(config: &SinkConfig) -> anyhow::Result<Arc<dyn Sink>> {
    match config {
        SinkConfig::File { path } => Ok(Arc::new(NdjsonFileSink::open(path)?)),
        SinkConfig::Log => Ok(Arc::new(LogSink)),
    }
}

#[cfg(test)]
mod tests {
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
        let log: SinkConfig =
            serde_json::from_value(json!({"type": "log", "path": "ignored"})).expect("log sink with a leftover key");
        let unknown = serde_json::from_value::<SinkConfig>(json!({"type": "kafka"}));

        assert_eq!(file, SinkConfig::File { path: PathBuf::from("var/outbox.ndjson") });
        assert_eq!(log, SinkConfig::Log);
        let error = unknown.expect_err("kafka is not a sink type");
        assert!(error.to_string().contains("unknown variant `kafka`"), "{error}");
    }

    #[test]
    fn build_sink_names_selected_sink() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let path = directory.path().join("events.ndjson");

        let file = build_sink(&SinkConfig::File { path: path.clone() }).expect("file sink");
        let log = build_sink(&SinkConfig::Log).expect("log sink");

        assert_eq!(file.name(), "file");
        assert_eq!(log.name(), "log");
        assert!(path.is_file(), "opening the file sink creates its file");
    }
}
