//! Scale mode's `EventLog`: an idempotent Kafka producer appending accepted events to topic `billstream.events`
//! (the record format is in `record.rs`).
//!
//! Record layout: one record holds the events of one subscription from one request, keyed by organization +
//! external_subscription_id. Why not one record per event: the broker's cost is per record (tansu on SQLite takes
//! about 27k records/s, ../shared/INFRA.md), so a 100-event batch request on one subscription costs one record, not a
//! hundred, and single-event requests cost the same either way. Exactly-once is unchanged: every event of an identity
//! still lands on the one partition of its subscription (so one sink orders them), a record is delivered whole or not
//! at all, and the sink dedups on the identity. The price: a request spanning several subscriptions becomes several
//! records, not atomic together (that would need Kafka transactions); if one fails the request gets a 503, and the
//! client's retry completes it without doubles because identities already stored are skipped.
//!
//! The HTTP acknowledgement waits for every record of the request to be acknowledged by the broker (`acks=all`;
//! `enable.idempotence=true`, so librdkafka's own retries cannot duplicate or reorder a record).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use schemas::event::Event;
use uuid::Uuid;

use crate::log::{Ack, EventLog, LogError};
use crate::metrics as names;
use crate::record::{encode_record, record_key};

/// Where the log lives and how records are sent.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port]` (`LAGO_KAFKA_BOOTSTRAP_SERVERS`).
    pub bootstrap_servers: String,
    pub topic: String,
    /// Partitions of the topic when Billstream creates it.
    pub partitions: i32,
    /// librdkafka settings applied over the producer's own (`BILLSTREAM_KAFKA_PRODUCER_SETTINGS`), for tuning.
    pub producer_settings: Vec<(String, String)>,
}

/// Exports librdkafka's retry and error counts (from its statistics) as metrics.
pub struct ProducerStats;

impl ClientContext for ProducerStats {
    fn stats(&self, statistics: Statistics) {
        let retries: u64 = statistics.brokers.values().map(|b| b.txretries).sum();
        let errors: u64 = statistics.brokers.values().map(|b| b.txerrs).sum();
        ::metrics::gauge!(names::PRODUCE_RETRIES).set(retries as f64);
        ::metrics::gauge!(names::PRODUCE_TRANSMIT_ERRORS).set(errors as f64);
    }
}

/// The producer; cheap to clone.
///
/// When a record fails (anything but a full local queue), the producer is replaced by a fresh one before the next
/// request. Why: an idempotent producer that lost step with the broker stays broken. Measured with tansu: after a
/// broker restart it loses the producer ids and sequence numbers it had handed out, and every later record of the old
/// producer fails with an unknown broker error; a new producer gets a new id and works at once. The request that
/// failed gets a 503, and its retry is deduplicated by the sink.
#[derive(Clone)]
pub struct KafkaLog {
    config: Arc<KafkaConfig>,
    /// The producer in use and its generation (so that concurrent failures replace it once).
    current: Arc<RwLock<(u64, FutureProducer<ProducerStats>)>>,
    topic: Arc<str>,
    /// Highest acknowledged offset per partition (tests wait for the sink to pass it).
    acked: Arc<Mutex<HashMap<i32, i64>>>,
}

/// Producer settings. `linger.ms` lets concurrent requests share a produce request (a lone request waits at most
/// that long); the idempotent producer keeps up to 5 requests in flight per partition without reordering.
///
/// Chosen with `load-tests/run.sh scale` (2 cores, everything co-located, 32 clients of 100-event requests, one run
/// each; runs of one setting vary by about 15 %). With a short linger librdkafka's broker thread spins while the 5
/// produce requests are in flight: 2026-12-07 on a 2-core EPYC, `top -H` showed it at 31 % of a core with linger
/// 2 ms, 16 % with 10 ms, 6 % with 20 ms and 2 % with 50 ms, for 43-50k, 49k, 56k and 43k acked events/s (at 50 ms
/// the clients wait on the linger itself). Earlier, on a Xeon: linger 0 69k, 2 ms 54-73k, 10 ms 59k; lz4
/// compression 37k (the API is CPU-bound, not broker-bound, so compression only costs CPU).
/// `BILLSTREAM_KAFKA_PRODUCER_SETTINGS` overrides any of these.
fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "4000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "none")
        .set("message.max.bytes", "10000000")
        // A request waits at most this long for the broker; then the client gets a 503 and retries.
        .set("message.timeout.ms", "30000")
        .set("statistics.interval.ms", "5000");
    for (key, value) in &config.producer_settings {
        c.set(key, value);
    }
    c
}

impl KafkaLog {
    pub fn new(config: &KafkaConfig) -> Result<Self, String> {
        let producer = create_producer(config)?;
        Ok(KafkaLog {
            config: Arc::new(config.clone()),
            current: Arc::new(RwLock::new((0, producer))),
            topic: config.topic.as_str().into(),
            acked: Arc::default(),
        })
    }

    fn producer(&self) -> (u64, FutureProducer<ProducerStats>) {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the producer of `generation` (if it is still the current one) by a fresh one.
    fn replace(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.0 != generation {
            return;
        }
        match create_producer(&self.config) {
            Ok(fresh) => {
                *current = (generation + 1, fresh);
                ::metrics::counter!(names::PRODUCER_RESTARTS_TOTAL).increment(1);
                tracing::warn!(generation = generation + 1, "Kafka producer replaced after a failed record");
            }
            Err(e) => tracing::error!(error = %e, "replacing the Kafka producer"),
        }
    }

    /// The highest offset the broker acknowledged on each partition so far.
    pub fn acked_offsets(&self) -> HashMap<i32, i64> {
        self.acked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn produce(&self, events: Vec<Event>) -> Result<Ack, LogError> {
        // Group by subscription, keeping the request's order inside each group.
        let mut groups: Vec<((Uuid, &str), Vec<&Event>)> = Vec::new();
        let mut index: HashMap<(Uuid, &str), usize> = HashMap::new();
        for e in &events {
            let k = (e.organization_id, e.external_subscription_id.as_str());
            let i = *index.entry(k).or_insert_with(|| {
                groups.push((k, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(e);
        }
        let (generation, producer) = self.producer();
        let mut deliveries = Vec::with_capacity(groups.len());
        for ((org, sub), group) in &groups {
            let key = record_key(*org, sub);
            let payload = encode_record(group);
            let record = FutureRecord::to(&self.topic).key(key.as_slice()).payload(payload.as_slice());
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => {
                    ::metrics::counter!(names::PRODUCE_ERRORS_TOTAL).increment(1);
                    if !matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) {
                        self.replace(generation);
                    }
                    return Err(produce_error(e));
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(d)) => {
                    let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
                    let max = acked.entry(d.partition).or_insert(-1);
                    *max = (*max).max(d.offset);
                }
                Ok(Err((e, _))) => {
                    ::metrics::counter!(names::PRODUCE_ERRORS_TOTAL).increment(1);
                    self.replace(generation);
                    return Err(produce_error(e));
                }
                Err(_) => return Err(LogError::Unavailable("Kafka producer stopped".into())),
            }
        }
        ::metrics::counter!(names::EVENTS_TOTAL, "outcome" => "accepted").increment(events.len() as u64);
        Ok(Ack)
    }
}

fn create_producer(config: &KafkaConfig) -> Result<FutureProducer<ProducerStats>, String> {
    producer_config(config)
        .create_with_context(ProducerStats)
        .map_err(|e| format!("LAGO_KAFKA_BOOTSTRAP_SERVERS: cannot create the Kafka producer: {e}"))
}

fn produce_error(e: KafkaError) -> LogError {
    match e {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => {
            LogError::Failed(format!("record too large for the broker: {e}"))
        }
        // Timeouts, a full queue, a broker that is down: the client retries.
        other => LogError::Unavailable(format!("broker did not acknowledge: {other}")),
    }
}

impl EventLog for KafkaLog {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, LogError>> {
        self.produce(events).boxed()
    }
}

/// Creates the topic when it does not exist yet (an existing topic is left as it is).
pub async fn ensure_topic(config: &KafkaConfig) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(|e| format!("LAGO_KAFKA_BOOTSTRAP_SERVERS: cannot create a Kafka admin client: {e}"))?;
    let topic = NewTopic::new(&config.topic, config.partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(Duration::from_secs(30), admin.create_topics([&topic], &options))
        .await
        .map_err(|_| format!("LAGO_KAFKA_BOOTSTRAP_SERVERS: no broker answered at {}", config.bootstrap_servers))?
        .map_err(|e| format!("creating topic {}: {e}", config.topic))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("creating topic {name}: {code}")),
        }
    }
    Ok(())
}
