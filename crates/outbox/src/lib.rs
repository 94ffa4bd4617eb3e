//! Outbox relay for epro: delivers the events that `epro-store` writes in the same
//! transaction as each submission to a sink, at least once and in order.
//!
//! Invariants:
//!
//! - **An event is marked delivered only after its sink accepted it.** A crash in
//!   between sends it again, and consumers deduplicate on `eventId`.
//! - **Messages carry ids and timestamps, never answers.** The store keeps answers out
//!   of event payloads, and the sinks log no payload.
//! - **The relay writes to the database only through the store's `outbox_mark_*`
//!   methods.**
//!
//! # Layout
//!
//! - `relay`: [`run_relay`] and [`RelayConfig`], the loop with retries and backoff.
//! - `sink`: the [`Sink`] trait and its [`PublishError`], the [`message`] wire
//!   format, [`SinkConfig`] and [`build_sink`].
//! - `file`: [`NdjsonFileSink`], one fsynced JSON line per message.
//! - `log`: [`LogSink`], one `tracing` event per message.
//! - `rabbitmq`: [`RabbitMqSink`], persistent messages with publisher confirms.
//! - `kafka`: [`KafkaSink`], one record per event keyed by trial id.
//! - `webhook`: [`WebhookSink`], signed HTTP POSTs, and [`verify_webhook_signature`]
//!   for receivers.
//! - `metrics`: the relay's metrics (published, failures, backlog).

mod file;
mod kafka;
mod log;
mod metrics;
mod rabbitmq;
mod relay;
mod sink;
mod webhook;

pub use file::NdjsonFileSink;
pub use kafka::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, KafkaConfig, KafkaSink};
pub use log::LogSink;
pub use rabbitmq::{RabbitMqConfig, RabbitMqSink};
pub use relay::{RelayConfig, run_relay};
pub use sink::{PublishError, SecretUrl, Sink, SinkConfig, build_sink, message};
pub use webhook::{
    SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER, WebhookConfig, WebhookSink, sign_webhook,
    verify_webhook_signature,
};
