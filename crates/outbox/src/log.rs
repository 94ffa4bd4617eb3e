//! [`LogSink`]: writes each message as a `tracing` event, for development and demos.

use epro_store::OutboxEvent;

use crate::sink::{PublishError, Sink};

/// A sink that logs one `info` event per message, with the event id, type, trial id
/// and submission id. The patient id and the payload are left out, and events never
/// carry answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSink;

#[async_trait::async_trait]
impl Sink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        for event in events {
            tracing::info!(
                event_id = %event.event_id,
                event_type = %event.event_type,
                trial_id = %event.trial_id,
                submission_id = %event.submission_id,
                "Outbox event published"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::{Arc, Mutex};

    use time::OffsetDateTime;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};
    use uuid::Uuid;

    use super::*;

    /// Fields of one captured event, as `(name, value)` pairs.
    type Fields = Vec<(String, String)>;

    /// A subscriber that keeps every event's fields, for asserting what was logged.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Fields>>>);

    struct FieldVisitor<'a>(&'a mut Fields);

    impl Visit for FieldVisitor<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields::new();
            event.record(&mut FieldVisitor(&mut fields));
            self.0.lock().expect("capture lock").push(fields);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn event(seq: i64) -> OutboxEvent {
        OutboxEvent {
            seq,
            event_id: Uuid::now_v7(),
            event_type: "submission.accepted".to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            trial_id: "TRIAL-A".to_owned(),
            patient_id: "P-SECRET-7".to_owned(),
            submission_id: Uuid::new_v4().to_string(),
            payload: r#"{"formId":"pain-diary"}"#.to_owned(),
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn log_sink_logs_ids_only() {
        let capture = Capture::default();
        let events = [event(1), event(2)];

        let published = {
            let _guard = tracing::subscriber::set_default(capture.clone());
            LogSink.publish(&events).await
        };

        assert!(published.is_ok(), "{published:?}");
        let logged = capture.0.lock().expect("capture lock").clone();
        assert_eq!(logged.len(), 2, "one log event per message: {logged:?}");
        for (fields, event) in logged.iter().zip(&events) {
            let value = |name: &str| fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.clone());
            assert_eq!(value("event_id"), Some(event.event_id.to_string()));
            assert_eq!(value("event_type"), Some(event.event_type.clone()));
            assert_eq!(value("trial_id"), Some(event.trial_id.clone()));
            assert_eq!(value("submission_id"), Some(event.submission_id.to_string()));
            let text = format!("{fields:?}");
            assert!(!text.contains("P-SECRET-7"), "patient id logged: {text}");
            assert!(!text.contains("pain-diary"), "payload logged: {text}");
        }
    }
}
