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
//! - `sink`: the [`Sink`] trait, the [`message`] wire format, [`SinkConfig`] and
//!   [`build_sink`].
//! - `file`: [`NdjsonFileSink`], one fsynced JSON line per message.
//! - `log`: [`LogSink`], one `tracing` event per message.
//! - `metrics`: the relay's metrics (published, failures, backlog).

mod file;
mod log;
mod metrics;
mod relay;
mod sink;

pub use file::NdjsonFileSink;
pub use log::LogSink;
pub use relay::{RelayConfig, run_relay};
pub use sink::{PublishError, Sink, SinkConfig, build_sink, message};
