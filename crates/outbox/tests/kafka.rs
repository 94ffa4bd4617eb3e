//! Kafka sink tests against the broker named by `TEST_EPRO_KAFKA_BOOTSTRAP`, for
//! example `127.0.0.1:9092`. Without it they print one line and pass.
//!
//! Each test produces to its own topic, named with a random suffix, and reads the
//! records back with its own `rskafka` client.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use epro_outbox::{EVENT_ID_HEADER, EVENT_TYPE_HEADER, KafkaConfig, KafkaSink, PublishError, Sink, message};
use epro_store::OutboxEvent;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use uuid::Uuid;

/// Upper bound on one publish or read in these tests, far above the sink's own
/// timeouts, so that a hang fails the test instead of stalling it.
const GUARD: Duration = Duration::from_secs(90);

fn bootstrap(test: &str) -> Option<String> {
    let bootstrap = std::env::var("TEST_EPRO_KAFKA_BOOTSTRAP").ok().filter(|value| !value.is_empty());
    if bootstrap.is_none() {
        println!("skipped {test}: TEST_EPRO_KAFKA_BOOTSTRAP is not set");
    }
    bootstrap
}

fn unique_name() -> String {
    format!("epro-test-{}", Uuid::new_v4().simple())
}

fn config(bootstrap: &str, topic: &str, partitions: i32) -> KafkaConfig {
    KafkaConfig {
        connect_timeout_milliseconds: 2_000,
        publish_timeout_milliseconds: 20_000,
        ..KafkaConfig::new(vec![bootstrap.to_owned()], topic, partitions, 1)
    }
}

/// Events of `trials` trials in turn, every third one an `alert.raised`.
fn events(count: usize, trials: usize) -> Vec<OutboxEvent> {
    (0..count)
        .map(|index| OutboxEvent {
            seq: index as i64 + 1,
            event_id: Uuid::now_v7(),
            event_type: if index % 3 == 2 { "alert.raised" } else { "submission.accepted" }.to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            trial_id: format!("TRIAL-{}", index % trials),
            patient_id: format!("P-{index:03}"),
            submission_id: Uuid::new_v4().to_string(),
            payload: r#"{"formId":"pain-diary","formVersion":"1.0.0"}"#.to_owned(),
            attempts: 0,
        })
        .collect()
}

async fn publish(sink: &KafkaSink, events: &[OutboxEvent]) -> Result<(), PublishError> {
    tokio::time::timeout(GUARD, sink.publish(events)).await.expect("publish must not hang")
}

async fn reader(bootstrap: &str) -> Client {
    let building = ClientBuilder::new(vec![bootstrap.to_owned()]).build();
    tokio::time::timeout(GUARD, building).await.expect("connect in time").expect("test client connects")
}

/// Reads every record of `topic`, by partition, in offset order.
async fn read_topic(client: &Client, topic: &str) -> BTreeMap<i32, Vec<RecordAndOffset>> {
    let topics = client.list_topics().await.expect("list topics");
    let partitions = topics.into_iter().find(|found| found.name == topic).expect("topic exists").partitions;

    let mut records = BTreeMap::new();
    for partition in partitions {
        let partition_client =
            client.partition_client(topic, partition, UnknownTopicHandling::Retry).await.expect("partition client");
        let end = partition_client.get_offset(OffsetAt::Latest).await.expect("high watermark");
        let mut offset = partition_client.get_offset(OffsetAt::Earliest).await.expect("low watermark");
        let mut read = Vec::new();
        // Bounded: each round reads at least one record or stops.
        while offset < end {
            let (batch, _high_watermark) =
                partition_client.fetch_records(offset, 1..1_000_000, 1_000).await.expect("fetch records");
            let Some(last) = batch.last() else { break };
            offset = last.offset + 1;
            read.extend(batch);
        }
        records.insert(partition, read);
    }
    records
}

fn header(record: &RecordAndOffset, name: &str) -> String {
    String::from_utf8(record.record.headers.get(name).cloned().unwrap_or_default()).expect("UTF-8 header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_delivers_keyed_records() {
    let Some(bootstrap) = bootstrap("kafka_delivers_keyed_records") else { return };
    let topic = unique_name();
    let sink = KafkaSink::new(config(&bootstrap, &topic, 3)).expect("sink");
    let events = events(30, 5);

    publish(&sink, &events[..12]).await.expect("first batch produced");
    publish(&sink, &events[12..]).await.expect("second batch produced");

    let client = reader(&bootstrap).await;
    let by_partition = tokio::time::timeout(GUARD, read_topic(&client, &topic)).await.expect("read in time");
    assert_eq!(by_partition.len(), 3, "the sink created the topic with 3 partitions");
    let by_id: HashMap<String, &OutboxEvent> = events.iter().map(|event| (event.event_id.to_string(), event)).collect();
    let mut partition_of_trial: HashMap<String, i32> = HashMap::new();
    let mut seen = HashSet::new();
    for (&partition, records) in &by_partition {
        let mut last_seq_of_trial: HashMap<String, i64> = HashMap::new();
        for record in records {
            let event_id = header(record, EVENT_ID_HEADER);
            let event = by_id.get(&event_id).unwrap_or_else(|| panic!("unknown event id {event_id:?}"));
            let value: Value = serde_json::from_slice(record.record.value.as_deref().expect("value")).expect("JSON");
            assert_eq!(value, message(event), "value is the wire message");
            assert_eq!(record.record.key.as_deref(), Some(event.trial_id.as_bytes()), "key is the trial id");
            assert_eq!(header(record, EVENT_TYPE_HEADER), event.event_type);
            assert_eq!(record.record.timestamp.timestamp(), event.occurred_at.unix_timestamp());

            let first_partition = *partition_of_trial.entry(event.trial_id.clone()).or_insert(partition);
            assert_eq!(first_partition, partition, "{} spans partitions", event.trial_id);
            let previous = last_seq_of_trial.insert(event.trial_id.clone(), event.seq);
            assert!(previous < Some(event.seq), "{} out of seq order in partition {partition}", event.trial_id);
            seen.insert(event_id);
        }
    }
    assert_eq!(seen.len(), events.len(), "every event arrived");
    assert!(partition_of_trial.values().collect::<HashSet<_>>().len() > 1, "five trials use more than one partition");
    delete_topics(&client, &[topic]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topic_per_event_type() {
    let Some(bootstrap) = bootstrap("kafka_topic_per_event_type") else { return };
    let prefix = format!("{}.", unique_name());
    let config = KafkaConfig {
        topic: None,
        topic_per_event_type: true,
        topic_prefix: prefix.clone(),
        ..config(&bootstrap, "", 2)
    };
    let sink = KafkaSink::new(config).expect("sink");
    let events = events(9, 2);

    publish(&sink, &events).await.expect("produced");

    let client = reader(&bootstrap).await;
    let mut topics = Vec::new();
    for event_type in ["submission.accepted", "alert.raised"] {
        let topic = format!("{prefix}{event_type}");
        let records = tokio::time::timeout(GUARD, read_topic(&client, &topic)).await.expect("read in time");
        let received: HashSet<String> =
            records.values().flatten().map(|record| header(record, EVENT_ID_HEADER)).collect();
        let expected: HashSet<String> = events
            .iter()
            .filter(|event| event.event_type == event_type)
            .map(|event| event.event_id.to_string())
            .collect();
        assert_eq!(received, expected, "topic {topic} holds exactly the {event_type} events");
        topics.push(topic);
    }
    delete_topics(&client, &topics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_existing_topic_keeps_partitions() {
    let Some(bootstrap) = bootstrap("kafka_existing_topic_keeps_partitions") else { return };
    let topic = unique_name();
    let client = reader(&bootstrap).await;
    client.controller_client().expect("controller").create_topic(&topic, 2, 1, 5_000).await.expect("create topic");
    // The sink would create 5 partitions, but the topic exists with 2.
    let sink = KafkaSink::new(config(&bootstrap, &topic, 5)).expect("sink");
    let events = events(10, 4);

    publish(&sink, &events).await.expect("produced");

    let by_partition = tokio::time::timeout(GUARD, read_topic(&client, &topic)).await.expect("read in time");
    assert_eq!(by_partition.keys().copied().collect::<Vec<_>>(), [0, 1]);
    let received: usize = by_partition.values().map(Vec::len).sum();
    assert_eq!(received, events.len());
    delete_topics(&client, &[topic]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_down_is_unavailable() {
    // Needs no broker: the port refuses connections.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let sink = KafkaSink::new(config(&address.to_string(), "epro-test-down", 1)).expect("sink builds while down");

    let connect = sink.connect().await.expect_err("nothing listens");
    let publish = publish(&sink, &events(1, 1)).await.expect_err("nothing listens");

    for error in [connect, publish] {
        assert!(matches!(error, PublishError::Unavailable(_)), "{error}");
        assert!(error.to_string().contains(&address.to_string()), "names the broker: {error}");
    }
}

/// Deletes the test's topics so that a long-lived broker does not collect them.
async fn delete_topics(client: &Client, topics: &[String]) {
    let controller = client.controller_client().expect("controller");
    for topic in topics {
        controller.delete_topic(topic.as_str(), 5_000).await.expect("delete test topic");
    }
}
