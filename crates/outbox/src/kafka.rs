//! [`KafkaSink`]: produces each event as one Kafka record, with `rskafka`.
//!
//! Guarantee: `publish` returns `Ok` only after the partition leader acknowledged
//! every record of the batch. `rskafka` 0.6 sends every produce request with
//! `acks = -1` (all in-sync replicas) and a broker-side timeout of 30 s, and offers no
//! setting for either. Its documentation does not mention acks, so this comes from
//! its source (`build_produce_request` in `src/client/partition.rs`). The record key is
//! the trial id. The partition is Kafka's default partitioner applied to it: murmur2
//! of the key, made positive, modulo the partition count. So one trial's events stay
//! in one partition in `seq` order, the partition a Java producer would pick too.
//! A missing topic is created with the configured partitions and replication factor.
//!
//! Errors:
//!
//! - [`PublishError::Rejected`]: the broker refused a record itself (message or batch
//!   too large, corrupt or invalid record, invalid timestamp or topic name), or an
//!   event type does not make a valid topic name with `topic_per_event_type`.
//! - [`PublishError::Unavailable`]: connecting, reading metadata, creating the topic
//!   or producing failed for any other reason, including `publish_timeout_milliseconds`
//!   passing. The sink then drops its client, and the next `publish` connects again.
//!
//! A batch whose events map to several partitions is produced partition by
//! partition. When a later partition fails, the earlier ones are already written and
//! the retry writes them again; consumers deduplicate on the `event-id` header.
//!
//! NOTE: the sink connects in plain text without SASL, because `rskafka`'s TLS and
//! SASL options are not wired to the configuration yet.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use epro_store::OutboxEvent;
use rskafka::BackoffConfig;
use rskafka::chrono::{DateTime, Utc};
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::sink::{PublishError, Sink, message};

/// Header with the event's `eventId`.
pub const EVENT_ID_HEADER: &str = "event-id";
/// Header with the event's type, for example `submission.accepted`.
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// Maximum length of a Kafka topic name.
const MAX_TOPIC_LENGTH: usize = 249;

/// The `kafka` sink's settings.
///
/// ```toml
/// [outbox.sink]
/// type = "kafka"
/// bootstrap_brokers = ["kafka-1.internal:9092", "kafka-2.internal:9092"]
/// topic = "epro.events"
/// partitions = 6
/// replication_factor = 3
/// ```
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port` of one or more brokers to read the cluster metadata from.
    pub bootstrap_brokers: Vec<String>,
    /// Topic of every event; `epro.events` when neither this nor
    /// `topic_per_event_type` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Publish each event to the topic `<topic_prefix><event type>` instead of one
    /// topic, for example `epro.alert.raised`. Excludes `topic`.
    #[serde(default)]
    pub topic_per_event_type: bool,
    /// Prefix of the per-event-type topic names.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Partition count of a topic that the sink creates. An existing topic keeps its
    /// own count.
    pub partitions: i32,
    /// Replication factor of a topic that the sink creates; `-1` takes the broker's
    /// `default.replication.factor` (brokers that support KIP-464, Kafka 2.4 and later).
    pub replication_factor: i16,
    /// Maximum time to connect and read the cluster metadata. It also bounds the
    /// total wait between retries of one request to the broker.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_milliseconds: u64,
    /// Maximum time for one batch: metadata, topic creation and every produce request.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_milliseconds: u64,
}

const DEFAULT_TOPIC: &str = "epro.events";

fn default_topic_prefix() -> String {
    "epro.".to_owned()
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

fn default_publish_timeout_ms() -> u64 {
    30_000
}

impl KafkaConfig {
    /// Returns a configuration for one topic named `topic`, with the default
    /// timeouts.
    pub fn new(
        bootstrap_brokers: Vec<String>,
        topic: impl Into<String>,
        partitions: i32,
        replication_factor: i16,
    ) -> Self {
        KafkaConfig {
            bootstrap_brokers,
            topic: Some(topic.into()),
            topic_per_event_type: false,
            topic_prefix: default_topic_prefix(),
            partitions,
            replication_factor,
            connect_timeout_milliseconds: default_connect_timeout_ms(),
            publish_timeout_milliseconds: default_publish_timeout_ms(),
        }
    }
}

/// Topic naming of a sink: one topic, or one per event type.
#[derive(Clone, Debug)]
enum TopicChoice {
    Single(String),
    PerEventType { prefix: String },
}

/// A sink that produces each event as one record keyed by its trial id.
pub struct KafkaSink {
    config: KafkaConfig,
    topics: TopicChoice,
    connect_timeout: Duration,
    publish_timeout: Duration,
    /// The client with what it learned about topics, or `None` after a failure.
    /// Holding the lock for a whole batch keeps batches from interleaving.
    state: Mutex<Option<Connected>>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A connected client and the topics it has seen.
struct Connected {
    client: Client,
    /// Partition count per topic, from the metadata or from creating the topic.
    partition_counts: HashMap<String, i32>,
    partition_clients: HashMap<(String, i32), Arc<PartitionClient>>,
}

impl KafkaSink {
    /// Checks `config` and creates the sink without connecting.
    ///
    /// # Errors
    ///
    /// Fails when the broker list is empty, both `topic` and `topic_per_event_type`
    /// are set, a topic name or prefix is invalid, `partitions` is below 1, or a
    /// timeout is zero.
    pub fn new(config: KafkaConfig) -> anyhow::Result<Self> {
        if config.bootstrap_brokers.is_empty() || config.bootstrap_brokers.iter().any(String::is_empty) {
            bail!("kafka bootstrap_brokers must list at least one host:port");
        }
        let topics = match (&config.topic, config.topic_per_event_type) {
            (Some(_), true) => bail!("kafka topic and topic_per_event_type exclude each other: set one of them"),
            (Some(topic), false) => TopicChoice::Single(topic.clone()),
            (None, false) => TopicChoice::Single(DEFAULT_TOPIC.to_owned()),
            (None, true) => TopicChoice::PerEventType { prefix: config.topic_prefix.clone() },
        };
        match &topics {
            TopicChoice::Single(topic) => check_topic_name(topic).context("invalid kafka topic")?,
            TopicChoice::PerEventType { prefix } => {
                check_topic_characters(prefix).context("invalid kafka topic_prefix")?;
            }
        }
        if config.partitions < 1 {
            bail!("kafka partitions must be at least 1, got {}", config.partitions);
        }
        if config.replication_factor == 0 || config.replication_factor < -1 {
            bail!("kafka replication_factor must be at least 1, or -1 for the broker default");
        }
        if config.connect_timeout_milliseconds == 0 || config.publish_timeout_milliseconds == 0 {
            bail!("kafka connect_timeout_milliseconds and publish_timeout_milliseconds must be greater than 0");
        }

        Ok(KafkaSink {
            connect_timeout: Duration::from_millis(config.connect_timeout_milliseconds),
            publish_timeout: Duration::from_millis(config.publish_timeout_milliseconds),
            topics,
            config,
            state: Mutex::new(None),
        })
    }

    /// Connects and reads the cluster metadata, unless a client is connected already.
    ///
    /// # Errors
    ///
    /// Returns [`PublishError::Unavailable`] when no bootstrap broker responds. The
    /// sink stays usable, and the next `publish` tries again.
    pub async fn connect(&self) -> Result<(), PublishError> {
        let mut state = self.state.lock().await;
        self.ensure_connected(&mut state).await?;
        Ok(())
    }

    async fn ensure_connected<'a>(&self, state: &'a mut Option<Connected>) -> Result<&'a mut Connected, PublishError> {
        if state.is_none() {
            let brokers = self.config.bootstrap_brokers.join(",");
            // rskafka retries failed requests (refused connections, leader changes)
            // with backoff and, by default, without end. The deadline bounds the sum
            // of its waits, so a refused connection comes back as rskafka's own error
            // before the timeout below replaces it with a bare "timed out".
            let backoff = BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 3.0,
                deadline: Some(self.connect_timeout),
            };
            let building = ClientBuilder::new(self.config.bootstrap_brokers.clone())
                .client_id("epro-outbox")
                .backoff_config(backoff)
                .build();
            let client = tokio::time::timeout(self.connect_timeout, building)
                .await
                .map_err(|_elapsed| {
                    anyhow!(
                        "timed out after {} ms connecting to kafka at {brokers}",
                        self.config.connect_timeout_milliseconds
                    )
                })?
                .map_err(|error| display_only(&error).context(format!("failed to connect to kafka at {brokers}")))?;
            tracing::info!(brokers = %brokers, "Connected to Kafka");
            *state = Some(Connected { client, partition_counts: HashMap::new(), partition_clients: HashMap::new() });
        }
        // The branch above filled an empty state, so this is never `None`.
        state.as_mut().ok_or_else(|| PublishError::Unavailable(anyhow!("kafka client missing after connect")))
    }

    /// Returns the topic of `event`.
    fn topic_of(&self, event: &OutboxEvent) -> Result<String, PublishError> {
        match &self.topics {
            TopicChoice::Single(topic) => Ok(topic.clone()),
            TopicChoice::PerEventType { prefix } => {
                let topic = format!("{prefix}{}", event.event_type);
                check_topic_name(&topic).map_err(|error| {
                    PublishError::Rejected(error.context(format!(
                        "event {} of type {:?} has no valid kafka topic",
                        event.event_id, event.event_type
                    )))
                })?;
                Ok(topic)
            }
        }
    }

    /// Returns the partition count of `topic`, creating the topic when it is missing.
    async fn partition_count(&self, connected: &mut Connected, topic: &str) -> Result<i32, PublishError> {
        if let Some(&count) = connected.partition_counts.get(topic) {
            return Ok(count);
        }

        let count = match existing_partition_count(&connected.client, topic).await? {
            Some(count) => count,
            None => {
                let controller =
                    connected.client.controller_client().context("failed to reach the kafka controller")?;
                let timeout_milliseconds = i32::try_from(self.config.publish_timeout_milliseconds).unwrap_or(i32::MAX);
                let created = controller
                    .create_topic(topic, self.config.partitions, self.config.replication_factor, timeout_milliseconds)
                    .await;
                match created {
                    Ok(()) => {
                        tracing::info!(
                            topic,
                            partitions = self.config.partitions,
                            replication_factor = self.config.replication_factor,
                            "Created Kafka topic"
                        );
                        self.config.partitions
                    }
                    // Another producer created it in between, with its own count.
                    Err(KafkaError::ServerError { protocol_error: ProtocolError::TopicAlreadyExists, .. }) => {
                        existing_partition_count(&connected.client, topic)
                            .await?
                            .ok_or_else(|| anyhow!("kafka topic {topic} exists but has no metadata yet"))?
                    }
                    Err(error) => {
                        return Err(classify(error, format!("failed to create kafka topic {topic}")));
                    }
                }
            }
        };
        connected.partition_counts.insert(topic.to_owned(), count);
        Ok(count)
    }

    async fn partition_client(
        &self,
        connected: &mut Connected,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, PublishError> {
        let key = (topic.to_owned(), partition);
        if let Some(client) = connected.partition_clients.get(&key) {
            return Ok(Arc::clone(client));
        }
        // Retry: a topic created a moment ago may be unknown to the leader for a while.
        let client = connected.client.partition_client(topic, partition, UnknownTopicHandling::Retry).await.map_err(
            |error| classify(error, format!("failed to find the leader of kafka partition {topic}/{partition}")),
        )?;
        let client = Arc::new(client);
        connected.partition_clients.insert(key, Arc::clone(&client));
        Ok(client)
    }

    /// Builds the records, groups them by partition in `seq` order and produces each
    /// group.
    async fn produce_batch(&self, connected: &mut Connected, events: &[OutboxEvent]) -> Result<(), PublishError> {
        let mut groups: Vec<((String, i32), Vec<Record>)> = Vec::new();
        for event in events {
            let topic = self.topic_of(event)?;
            let partitions = self.partition_count(connected, &topic).await?;
            let partition = partition_for_key(event.trial_id.as_bytes(), partitions);
            let record = record_of(event)?;

            let key = (topic, partition);
            match groups.iter_mut().find(|(group, _)| *group == key) {
                Some((_, records)) => records.push(record),
                None => groups.push((key, vec![record])),
            }
        }

        for ((topic, partition), records) in groups {
            let client = self.partition_client(connected, &topic, partition).await?;
            let count = records.len();
            client.produce(records, Compression::NoCompression).await.map_err(|error| {
                classify(error, format!("failed to produce {count} records to kafka partition {topic}/{partition}"))
            })?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        let connected = self.ensure_connected(&mut state).await?;

        let produced = tokio::time::timeout(self.publish_timeout, self.produce_batch(connected, events)).await;
        match produced {
            Ok(Ok(())) => Ok(()),
            // The broker responded, so the client is healthy and stays.
            Ok(Err(rejected @ PublishError::Rejected(_))) => Err(rejected),
            Ok(Err(unavailable @ PublishError::Unavailable(_))) => {
                *state = None;
                Err(unavailable)
            }
            Err(_elapsed) => {
                *state = None;
                Err(PublishError::Unavailable(anyhow!(
                    "timed out after {} ms producing {} events to kafka",
                    self.config.publish_timeout_milliseconds,
                    events.len()
                )))
            }
        }
    }
}

/// Reads the partition count of `topic` from fresh metadata, or `None` when the
/// cluster does not know the topic.
async fn existing_partition_count(client: &Client, topic: &str) -> Result<Option<i32>, PublishError> {
    let topics =
        client.list_topics().await.map_err(|error| classify(error, "failed to list kafka topics".to_owned()))?;
    let Some(found) = topics.into_iter().find(|candidate| candidate.name == topic) else {
        return Ok(None);
    };
    let count = i32::try_from(found.partitions.len()).context("kafka topic has too many partitions")?;
    if count == 0 {
        return Err(PublishError::Unavailable(anyhow!("kafka topic {topic} has no partitions in the metadata")));
    }
    Ok(Some(count))
}

/// Builds the record of `event`: key trial id, value [`message`], the event id and
/// type as headers, and the event's time as the record timestamp.
fn record_of(event: &OutboxEvent) -> Result<Record, PublishError> {
    let value = serde_json::to_vec(&message(event))
        .with_context(|| format!("failed to serialize outbox event {}", event.event_id))?;
    // `time` stays within years ±9999 and chrono covers ±262,000, so the conversion
    // always succeeds and the epoch fallback is never used.
    let millis = i64::try_from(event.occurred_at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let timestamp = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default();
    let headers = BTreeMap::from([
        (EVENT_ID_HEADER.to_owned(), event.event_id.to_string().into_bytes()),
        (EVENT_TYPE_HEADER.to_owned(), event.event_type.clone().into_bytes()),
    ]);

    Ok(Record { key: Some(event.trial_id.clone().into_bytes()), value: Some(value), headers, timestamp })
}

/// Sorts an rskafka error into rejected (about the records) or unavailable
/// (anything else), with `context` in front.
fn classify(error: KafkaError, context: String) -> PublishError {
    let is_about_records = matches!(
        &error,
        KafkaError::ServerError {
            protocol_error: ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::CorruptMessage
                | ProtocolError::InvalidRecord
                | ProtocolError::InvalidTimestamp
                | ProtocolError::InvalidTopicException
                | ProtocolError::UnsupportedForMessageFormat,
            ..
        }
    );
    let error = display_only(&error).context(context);
    if is_about_records { PublishError::Rejected(error) } else { PublishError::Unavailable(error) }
}

/// Converts an rskafka error by its message alone. Its messages already include
/// their sources, which `{:#}` would print a second time from the source chain.
fn display_only(error: &dyn std::error::Error) -> anyhow::Error {
    anyhow!("{error}")
}

/// Returns the partition of `key` among `partitions`, as Kafka's default partitioner
/// computes it for a keyed record: `(murmur2(key) & 0x7fffffff) % partitions`.
fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    // `partitions` is at least 1 (checked at config and metadata reads).
    (positive % partitions.max(1) as u32) as i32
}

/// MurmurHash2, 32-bit, with the seed Kafka's `Utils.murmur2` uses.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut hash = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M);
        hash ^= k;
    }

    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (index, &byte) in tail.iter().enumerate().rev() {
            hash ^= u32::from(byte) << (8 * index);
        }
        hash = hash.wrapping_mul(M);
    }

    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash
}

/// Checks the length and characters Kafka allows in a topic name.
fn check_topic_name(topic: &str) -> anyhow::Result<()> {
    if topic.is_empty() || topic == "." || topic == ".." {
        bail!("topic name {topic:?} is not allowed");
    }
    if topic.len() > MAX_TOPIC_LENGTH {
        bail!("topic name {topic:?} is longer than {MAX_TOPIC_LENGTH} characters");
    }
    check_topic_characters(topic)
}

fn check_topic_characters(text: &str) -> anyhow::Result<()> {
    let allowed = |character: char| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-');
    if let Some(bad) = text.chars().find(|&character| !allowed(character)) {
        bail!("{text:?} contains {bad:?}; topic names allow only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;

    fn config() -> KafkaConfig {
        KafkaConfig::new(vec!["127.0.0.1:9092".to_owned()], "epro.events", 3, 1)
    }

    fn event(event_type: &str) -> OutboxEvent {
        OutboxEvent {
            seq: 1,
            event_id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            occurred_at: OffsetDateTime::from_unix_timestamp(1_740_000_000).expect("timestamp"),
            trial_id: "TRIAL-A".to_owned(),
            patient_id: "P-001".to_owned(),
            submission_id: Uuid::new_v4().to_string(),
            payload: "{}".to_owned(),
            attempts: 0,
        }
    }

    #[test]
    fn murmur2_matches_kafka_vectors() {
        // Expected values from Apache Kafka's UtilsTest.testMurmur2, as signed Java ints.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input) as i32, expected, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn partition_for_key_is_stable_and_in_range() {
        for partitions in [1, 2, 3, 7, 64] {
            for key in ["TRIAL-A", "TRIAL-B", "", "a-little-bit-longer-string"] {
                let partition = partition_for_key(key.as_bytes(), partitions);
                assert!((0..partitions).contains(&partition), "{key} -> {partition} of {partitions}");
                assert_eq!(partition, partition_for_key(key.as_bytes(), partitions), "{key} must be stable");
            }
        }
        // (-1486304829 & 0x7fffffff) % 10 == 661178819 % 10
        assert_eq!(partition_for_key(b"a-little-bit-longer-string", 10), 9);
    }

    #[test]
    fn kafka_sink_rejects_bad_config() {
        let cases = [
            (KafkaConfig { bootstrap_brokers: vec![], ..config() }, "bootstrap_brokers"),
            (KafkaConfig { topic_per_event_type: true, ..config() }, "exclude each other"),
            (KafkaConfig { topic: Some("bad topic".to_owned()), ..config() }, "invalid kafka topic"),
            (
                KafkaConfig { topic: None, topic_per_event_type: true, topic_prefix: "a/b".to_owned(), ..config() },
                "prefix",
            ),
            (KafkaConfig { partitions: 0, ..config() }, "partitions"),
            (KafkaConfig { replication_factor: 0, ..config() }, "replication_factor"),
            (KafkaConfig { publish_timeout_milliseconds: 0, ..config() }, "timeout"),
        ];
        for (config, expected) in cases {
            let error = KafkaSink::new(config).expect_err("config must be rejected");
            assert!(format!("{error:#}").contains(expected), "expected {expected:?} in: {error:#}");
        }
    }

    #[test]
    fn topic_of_follows_config() {
        let single = KafkaSink::new(config()).expect("single topic");
        let default = KafkaSink::new(KafkaConfig { topic: None, ..config() }).expect("default topic");
        let per_type =
            KafkaSink::new(KafkaConfig { topic: None, topic_per_event_type: true, ..config() }).expect("per type");

        assert_eq!(single.topic_of(&event("alert.raised")).expect("topic"), "epro.events");
        assert_eq!(default.topic_of(&event("alert.raised")).expect("topic"), "epro.events");
        assert_eq!(per_type.topic_of(&event("alert.raised")).expect("topic"), "epro.alert.raised");
        let bad = per_type.topic_of(&event("alert raised")).expect_err("space is not allowed");
        assert!(bad.is_rejected(), "{bad}");
    }

    #[test]
    fn record_of_sets_key_headers_value() {
        let event = event("submission.accepted");

        let record = record_of(&event).expect("record");

        assert_eq!(record.key.as_deref(), Some(b"TRIAL-A".as_slice()));
        assert_eq!(record.headers[EVENT_ID_HEADER], event.event_id.to_string().into_bytes());
        assert_eq!(record.headers[EVENT_TYPE_HEADER], b"submission.accepted".to_vec());
        let value: serde_json::Value = serde_json::from_slice(record.value.as_deref().expect("value")).expect("json");
        assert_eq!(value, message(&event));
        assert_eq!(record.timestamp.timestamp(), 1_740_000_000);
    }

    #[test]
    fn classify_splits_record_errors() {
        let server_error = |protocol_error| KafkaError::ServerError {
            protocol_error,
            error_message: None,
            request: rskafka::client::error::RequestContext::Partition("t".to_owned(), 0),
            response: None,
            is_virtual: false,
        };

        let too_large = classify(server_error(ProtocolError::MessageTooLarge), "produce".to_owned());
        let invalid = classify(server_error(ProtocolError::InvalidRecord), "produce".to_owned());
        let not_enough = classify(server_error(ProtocolError::NotEnoughReplicas), "produce".to_owned());
        let timeout = classify(KafkaError::Timeout, "produce".to_owned());

        assert!(too_large.is_rejected(), "{too_large}");
        assert!(invalid.is_rejected(), "{invalid}");
        assert!(!not_enough.is_rejected(), "{not_enough}");
        assert!(!timeout.is_rejected(), "{timeout}");
    }
}
