//! [`RabbitMqSink`]: publishes each event to a RabbitMQ topic exchange with publisher
//! confirms.
//!
//! Guarantee: `publish` returns `Ok` only after the broker confirmed (`basic.ack`)
//! every message of the batch. Messages are persistent (`delivery_mode` 2) and
//! `mandatory`, and the exchange and the queue bound to it are durable, so a confirmed
//! message is in a durable queue. The routing key is the event type, and
//! `message_id` is the `eventId` that consumers deduplicate on.
//!
//! Errors:
//!
//! - [`PublishError::Rejected`]: the broker responded with `basic.nack`, or returned a
//!   message it could not route (for example after someone deleted the queue).
//! - [`PublishError::Unavailable`]: connecting, declaring or publishing failed, the
//!   channel or connection closed, or the confirms did not arrive within
//!   `publish_timeout_milliseconds`. The sink then drops its connection, and the next
//!   `publish` connects again and declares the exchange, queue and binding anew.

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use epro_store::OutboxEvent;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::sink::{PublishError, SecretUrl, Sink, message};

/// Binding key that routes every routing key of the topic exchange to the queue.
const BIND_ALL: &str = "#";

/// AMQP `delivery_mode` of a message that the broker writes to disk.
const PERSISTENT: u8 = 2;

/// Maximum number of rejected events named in the error message; the rest are counted.
const MAX_LISTED_REJECTIONS: usize = 5;

/// The `rabbitmq` sink's settings.
///
/// ```toml
/// [outbox.sink]
/// type = "rabbitmq"
/// url = "amqp://epro:PASSWORD@rabbitmq.internal:5672/%2f"
/// exchange = "epro.events"
/// queue = "epro.events"
/// ```
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqConfig {
    /// Broker address, `amqp://user:password@host:port/vhost` or `amqps://...`. The
    /// vhost is percent-encoded (`%2f` for `/`). The password is a secret: `Debug`
    /// and serialization mask it.
    pub url: SecretUrl,
    /// Durable topic exchange that receives every event, with the event type as the
    /// routing key.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Durable queue bound to `exchange` with `#`, so that it receives every event.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Maximum time to connect, open the channel and declare the topology.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_milliseconds: u64,
    /// Maximum time to send a batch and receive the broker's confirms for it.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_milliseconds: u64,
}

fn default_exchange() -> String {
    "epro.events".to_owned()
}

fn default_queue() -> String {
    "epro.events".to_owned()
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

fn default_publish_timeout_ms() -> u64 {
    10_000
}

impl RabbitMqConfig {
    /// Returns a configuration with the given URL and every other field at its
    /// default.
    pub fn new(url: impl Into<String>) -> Self {
        RabbitMqConfig {
            url: SecretUrl::new(url),
            exchange: default_exchange(),
            queue: default_queue(),
            connect_timeout_milliseconds: default_connect_timeout_ms(),
            publish_timeout_milliseconds: default_publish_timeout_ms(),
        }
    }
}

/// A sink that publishes each event as one persistent, confirmed AMQP message.
///
/// The connection is opened lazily and kept between batches. Batches are published
/// one at a time, because the relay publishes one batch at a time.
pub struct RabbitMqSink {
    config: RabbitMqConfig,
    uri: AMQPUri,
    connect_timeout: Duration,
    publish_timeout: Duration,
    /// The open connection and its confirm-mode channel, or `None` after a failure.
    /// Holding the lock for a whole batch keeps batches from interleaving.
    link: Mutex<Option<Link>>,
}

impl fmt::Debug for RabbitMqSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitMqSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A connection with the channel that publishes on it.
struct Link {
    /// Kept so that the connection stays open while the channel is in use. Dropping
    /// it closes the connection.
    _connection: Connection,
    channel: Channel,
}

impl RabbitMqSink {
    /// Checks `config` and creates the sink without connecting.
    ///
    /// # Errors
    ///
    /// Fails when the URL is not a valid AMQP URL, the exchange or queue name is
    /// empty, or a timeout is zero.
    pub fn new(config: RabbitMqConfig) -> anyhow::Result<Self> {
        let uri: AMQPUri = config
            .url
            .expose()
            .parse()
            .map_err(|error: String| anyhow!("invalid rabbitmq url {}: {error}", config.url.redacted()))?;
        if config.exchange.is_empty() {
            bail!("rabbitmq exchange must not be empty");
        }
        if config.queue.is_empty() {
            bail!("rabbitmq queue must not be empty");
        }
        if config.connect_timeout_milliseconds == 0 || config.publish_timeout_milliseconds == 0 {
            bail!("rabbitmq connect_timeout_milliseconds and publish_timeout_milliseconds must be greater than 0");
        }

        Ok(RabbitMqSink {
            connect_timeout: Duration::from_millis(config.connect_timeout_milliseconds),
            publish_timeout: Duration::from_millis(config.publish_timeout_milliseconds),
            uri,
            config,
            link: Mutex::new(None),
        })
    }

    /// Connects and declares the exchange, queue and binding, unless a connection is
    /// open already.
    ///
    /// # Errors
    ///
    /// Returns [`PublishError::Unavailable`] when the broker cannot be reached or a
    /// declaration fails. The sink stays usable, and the next `publish` tries again.
    pub async fn connect(&self) -> Result<(), PublishError> {
        let mut link = self.link.lock().await;
        self.ensure_link(&mut link).await?;
        Ok(())
    }

    /// Returns the open channel, reconnecting first when there is none or it closed.
    async fn ensure_link(&self, link: &mut Option<Link>) -> Result<Channel, PublishError> {
        if let Some(open) = link.as_ref()
            && open.channel.status().connected()
        {
            return Ok(open.channel.clone());
        }
        // Dropping a closed or failed connection releases it before the new one opens.
        *link = None;

        let opened = tokio::time::timeout(self.connect_timeout, self.open_link()).await.map_err(|_elapsed| {
            anyhow!(
                "timed out after {} ms connecting to rabbitmq at {}",
                self.config.connect_timeout_milliseconds,
                self.config.url.redacted()
            )
        })??;
        let channel = opened.channel.clone();
        *link = Some(opened);
        tracing::info!(
            url = %self.config.url.redacted(),
            exchange = %self.config.exchange,
            queue = %self.config.queue,
            "Connected to RabbitMQ"
        );
        Ok(channel)
    }

    async fn open_link(&self) -> anyhow::Result<Link> {
        let url = self.config.url.redacted();
        let properties = ConnectionProperties::default().with_connection_name("epro-outbox".into());
        let connection = Connection::connect_uri(self.uri.clone(), properties)
            .await
            .with_context(|| format!("failed to connect to rabbitmq at {url}"))?;
        let channel = connection.create_channel().await.context("failed to open a rabbitmq channel")?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.context("failed to enable publisher confirms")?;
        self.declare_topology(&channel).await?;

        Ok(Link { _connection: connection, channel })
    }

    /// Declares the exchange, the queue and the binding. Declaring is idempotent, so
    /// it runs on every connect and restores whatever was deleted in between.
    async fn declare_topology(&self, channel: &Channel) -> anyhow::Result<()> {
        let exchange = &self.config.exchange;
        let queue = &self.config.queue;

        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("failed to declare rabbitmq exchange {exchange:?} (durable, topic)"))?;
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("failed to declare rabbitmq queue {queue:?} (durable)"))?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                BIND_ALL.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("failed to bind rabbitmq queue {queue:?} to exchange {exchange:?}"))?;
        Ok(())
    }

    /// Sends every event, then waits for every confirm. Returns `Rejected` with the
    /// events the broker nacked or returned, after all confirms arrived.
    async fn send_batch(&self, channel: &Channel, events: &[OutboxEvent]) -> Result<(), PublishError> {
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let body = serde_json::to_vec(&message(event))
                .with_context(|| format!("failed to serialize outbox event {}", event.event_id))?;
            let properties = BasicProperties::default()
                .with_delivery_mode(PERSISTENT)
                .with_message_id(event.event_id.to_string().into())
                .with_content_type("application/json".into())
                .with_type(event.event_type.as_str().into())
                .with_timestamp(event.occurred_at.unix_timestamp().max(0) as u64);
            let confirm = channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    event.event_type.as_str().into(),
                    BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                    &body,
                    properties,
                )
                .await
                .with_context(|| format!("failed to publish outbox event {} to rabbitmq", event.event_id))?;
            confirms.push(confirm);
        }

        let mut rejected = Vec::new();
        for (event, confirm) in events.iter().zip(confirms) {
            let confirmation = confirm
                .await
                .with_context(|| format!("lost the rabbitmq confirm of outbox event {}", event.event_id))?;
            match confirmation {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => rejected.push(format!(
                    "event {} returned ({} {})",
                    event.event_id, returned.reply_code, returned.reply_text
                )),
                Confirmation::Nack(None) => rejected.push(format!("event {} nacked", event.event_id)),
                Confirmation::NotRequested => {
                    return Err(anyhow!("rabbitmq channel is not in confirm mode").into());
                }
            }
        }

        if rejected.is_empty() {
            return Ok(());
        }
        let listed = rejected.len().min(MAX_LISTED_REJECTIONS);
        let unlisted = rejected.len() - listed;
        let more = if unlisted > 0 { format!(" and {unlisted} more") } else { String::new() };
        Err(PublishError::Rejected(anyhow!(
            "rabbitmq rejected {} of {} events on exchange {:?}: {}{more}",
            rejected.len(),
            events.len(),
            self.config.exchange,
            rejected[..listed].join(", ")
        )))
    }
}

#[async_trait::async_trait]
impl Sink for RabbitMqSink {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut link = self.link.lock().await;
        let channel = self.ensure_link(&mut link).await?;

        let sent = tokio::time::timeout(self.publish_timeout, self.send_batch(&channel, events)).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            // The broker responded, so the connection is healthy and stays open.
            Ok(Err(rejected @ PublishError::Rejected(_))) => Err(rejected),
            Ok(Err(unavailable @ PublishError::Unavailable(_))) => {
                *link = None;
                Err(unavailable)
            }
            Err(_elapsed) => {
                *link = None;
                Err(PublishError::Unavailable(anyhow!(
                    "timed out after {} ms waiting for rabbitmq to confirm {} events",
                    self.config.publish_timeout_milliseconds,
                    events.len()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_config_debug_hides_password() {
        let config = RabbitMqConfig::new("amqp://epro:hunter2-secret@127.0.0.1:5672/%2f");

        let debug = format!("{config:?}");
        let serialized = serde_json::to_string(&config).expect("serialize config");

        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(debug.contains("amqp://epro:***@127.0.0.1:5672/%2f"), "{debug}");
        assert!(!serialized.contains("hunter2-secret"), "{serialized}");
        let sink = RabbitMqSink::new(config).expect("valid config");
        let sink_debug = format!("{sink:?}");
        assert!(!sink_debug.contains("hunter2-secret"), "{sink_debug}");
    }

    #[test]
    fn rabbitmq_sink_rejects_bad_config() {
        let cases = [
            (RabbitMqConfig::new("http://broker:5672"), "invalid rabbitmq url"),
            (RabbitMqConfig { exchange: String::new(), ..RabbitMqConfig::new("amqp://broker") }, "exchange"),
            (RabbitMqConfig { queue: String::new(), ..RabbitMqConfig::new("amqp://broker") }, "queue"),
            (RabbitMqConfig { publish_timeout_milliseconds: 0, ..RabbitMqConfig::new("amqp://broker") }, "timeout"),
        ];
        for (config, expected) in cases {
            let error = RabbitMqSink::new(config).expect_err("config must be rejected");
            assert!(error.to_string().contains(expected), "expected {expected:?} in: {error:#}");
        }
    }

    #[test]
    fn invalid_url_error_hides_password() {
        let config = RabbitMqConfig::new("amqp://epro:hunter2-secret@broker:notaport/%2f");

        let error = RabbitMqSink::new(config).expect_err("port is not a number");

        let text = format!("{error:#}");
        assert!(text.contains("invalid rabbitmq url"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
    }
}
