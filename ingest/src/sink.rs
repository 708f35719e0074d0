//! The `sink` role of scale mode: reads the event log in batches and writes ClickHouse.
//!
//! One flush, in this order, and what a crash at each step leaves behind:
//! 1. **poll** up to `max_rows` events (until `max_wait` has passed and the previous batch has gone through steps
//!    2-6, which run meanwhile) from the partitions this consumer owns. Crash: nothing of it was written; the records
//!    are read again from the committed offsets.
//! 2. **dedup within the batch** (first record offset wins) and **load rules** (metrics, charges) from Postgres. Pure
//!    or read-only: a crash leaves nothing.
//! 3. **enrich and insert** into ClickHouse, skipping identities `events_enriched` already holds (known from the
//!    sink's memory of the subscriptions it has seen, `RecentIdentities`, else asked): `events_raw` first,
//!    then `events_enriched`. Crash after `events_raw`: the next attempt finds the identities missing from
//!    `events_enriched` and writes both again; the extra `events_raw` copy is identical (same record, same
//!    `ingested_at`) and reads keep one row per identity. Crash after `events_enriched`: the replay finds every
//!    identity stored and inserts nothing.
//! 4. **queue** the subscriptions whose events feed a charge paid in advance, for the worker to bill (Postgres
//!    `in_advance_queue`). Crash before: the replay queues them; a subscription queued twice is billed once.
//! 5. **record invalid events** in Postgres `event_errors`, and the events sent again with a stored identity in
//!    `event_duplicates` (both `ON CONFLICT DO NOTHING`). Crash before: the replay records them (a replayed record
//!    keeps its receipt time, which tells it from a second sending); a repeat changes nothing.
//! 6. **commit offsets** past the batch (asynchronously, in order). Crash before it reaches the broker: the batch is
//!    replayed, and steps 3-5 make the replay a no-op. A failed commit is only logged, for the same reason.
//!
//! A step that fails (ClickHouse or Postgres down) is retried with backoff, without committing and without reading
//! past the one next batch, so nothing after the failed batch is acknowledged to the log first. Every event of an
//! identity is on one partition (the record key is organization + subscription), so one consumer sees all copies of
//! an identity in log order and "first accepted wins" is the log's order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregate::clickhouse_store::{ClickHouseStore, DEDUP_REACH_MICROS, Enrichment};
use aggregate::recent_identities::RecentIdentities;
use aggregate::semantics::{plain_decimal, property_text};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use schemas::event::Event;
use serde_json::Value;
use sqlx::PgPool;

use crate::in_advance::Marker;
use crate::kafka::KafkaConfig;
use crate::metrics as names;
use crate::record::decode_record;
use crate::validation::{ErrorKind, MetricRule, Recorder, check};

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub kafka: KafkaConfig,
    /// Consumer group; every sink process of one installation uses the same one.
    pub group_id: String,
    /// Most events per flush.
    pub max_rows: usize,
    /// Longest a flush waits to fill up after its first record, unless the previous flush is still running (then it
    /// fills until that one ends).
    pub max_wait: Duration,
    /// Most stored identities remembered exactly ([`RecentIdentities`]); about 50 bytes each. Eight times as many
    /// more go to its Bloom filters; when both are full, subscriptions that do not fit are checked against the
    /// store (as without the memory) until expiry makes room. 0 remembers none.
    pub max_remembered: usize,
}

impl SinkConfig {
    pub fn new(kafka: KafkaConfig) -> Self {
        SinkConfig {
            kafka,
            group_id: "billstream-sink".into(),
            max_rows: 50_000,
            max_wait: Duration::from_millis(100),
            max_remembered: 10_000_000,
        }
    }
}

/// Aggregation types whose property is a number.
const NUMERIC_TYPES: [&str; 4] = ["sum_agg", "max_agg", "weighted_sum_agg", "latest_agg"];

/// What aggregation reads of an event, given its metric: the numeric value of the aggregated property, and its
/// filter and group properties (`key=value`, sorted by key, joined by the unit separator).
pub fn enrich(properties: &Value, rule: Option<&MetricRule>) -> Enrichment {
    let Some(rule) = rule else { return Enrichment::default() };
    let value = match &rule.field_name {
        Some(field) if NUMERIC_TYPES.contains(&rule.aggregation_type.as_str()) => {
            property_text(properties, field).as_deref().and_then(plain_decimal)
        }
        _ => None,
    };
    let mut keys: Vec<&str> =
        rule.filters.iter().map(|(k, _)| k.as_str()).chain(rule.group_keys.iter().map(String::as_str)).collect();
    keys.sort_unstable();
    keys.dedup();
    let group_key = keys
        .into_iter()
        .filter_map(|k| property_text(properties, k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join("\u{1f}");
    Enrichment { value, group_key }
}

/// Offsets the sink has written past, per partition (the next offset to read), for tests and the `all` role.
#[derive(Debug, Default)]
pub struct Progress {
    next: Mutex<HashMap<i32, i64>>,
}

impl Progress {
    /// The next offset to read on each partition this process has flushed.
    pub fn flushed(&self) -> HashMap<i32, i64> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn advance(&self, offsets: &BTreeMap<i32, i64>) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        for (&p, &o) in offsets {
            let e = next.entry(p).or_insert(0);
            *e = (*e).max(o + 1);
        }
    }
}

/// Exports the group's lag (records behind the end of each partition) from librdkafka's statistics, and notes
/// rebalances (after one, another sink may have written this sink's partitions: what it remembers of stored
/// identities is dropped).
#[derive(Default)]
pub struct SinkStats {
    rebalanced: AtomicBool,
}

impl ClientContext for SinkStats {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        ::metrics::gauge!(names::SINK_LAG_EVENTS).set(lag as f64);
    }
}

impl ConsumerContext for SinkStats {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::SeqCst);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // The batch is stored; a replay after a restart is deduplicated, so this only costs work.
            tracing::warn!(error = %e, "committing sink offsets failed");
        }
    }
}

pub struct Sink {
    consumer: StreamConsumer<SinkStats>,
    store: ClickHouseStore,
    recorder: Recorder,
    marker: Marker,
    config: SinkConfig,
    progress: Arc<Progress>,
    /// Stored identities of the subscriptions seen lately, so most events need no store query
    /// ([`RecentIdentities`]); only the flush loop uses it.
    recent: tokio::sync::Mutex<RecentIdentities>,
}

/// One polled batch: the events in log order and the last offset read on each partition.
struct Batch {
    events: Vec<Event>,
    offsets: BTreeMap<i32, i64>,
}

impl Sink {
    pub fn new(config: SinkConfig, store: ClickHouseStore, pool: PgPool) -> Result<Self, String> {
        let consumer: StreamConsumer<SinkStats> = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap_servers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            // Also the rebalance timeout: a restarted sink joining while the group still lists its killed
            // predecessor waits up to this long. A flush retried longer than this (ClickHouse down) drops out of
            // the group and rejoins on its next poll; the uncommitted batch is then replayed and deduplicated.
            .set("max.poll.interval.ms", "20000")
            .set("fetch.wait.max.ms", "20")
            .set("statistics.interval.ms", "2000")
            .create_with_context(SinkStats::default())
            .map_err(|e| format!("LAGO_KAFKA_BOOTSTRAP_SERVERS: cannot create the Kafka consumer: {e}"))?;
        consumer
            .subscribe(&[config.kafka.topic.as_str()])
            .map_err(|e| format!("subscribing to {}: {e}", config.kafka.topic))?;
        Ok(Sink {
            consumer,
            store,
            recorder: Recorder::new(pool.clone()),
            marker: Marker::new(pool),
            recent: tokio::sync::Mutex::new(RecentIdentities::new(DEDUP_REACH_MICROS, config.max_remembered)),
            config,
            progress: Arc::default(),
        })
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Runs until the process ends.
    pub async fn run(self) {
        let (_, idle) = tokio::sync::watch::channel(true);
        let mut batch = self.poll(idle.clone()).await;
        loop {
            if batch.offsets.is_empty() {
                batch = self.poll(idle.clone()).await;
                continue;
            }
            // The next batch is read while this one is written, and for as long as it is written: an event
            // arriving during a flush goes into the next one. Under load, batches then grow with the flush time
            // instead of being cut at the window while ClickHouse is still busy; ClickHouse's work per row falls
            // steeply with the size of its inserts (every insert is a part, merged again later). Batches are still
            // written and committed one after the other, in log order.
            let (stored, storing) = tokio::sync::watch::channel(false);
            let store = async {
                self.store(&batch).await;
                // A poll that already ended (at `max_rows`) no longer listens; nothing is lost then.
                let _ = stored.send(true);
            };
            let (next, ()) = tokio::join!(self.poll(storing), store);
            batch = next;
        }
    }

    /// Steps 2-6 for one polled batch.
    async fn store(&self, batch: &Batch) {
        self.flush_until_done(&batch.events).await;
        self.commit(&batch.offsets);
        self.progress.advance(&batch.offsets);
    }

    /// Reads records until `max_rows` events, or until `max_wait` has passed since the first one and `stored` (the
    /// previous batch's flush) is true.
    async fn poll(&self, mut stored: tokio::sync::watch::Receiver<bool>) -> Batch {
        let mut batch = Batch { events: Vec::new(), offsets: BTreeMap::new() };
        let mut deadline: Option<tokio::time::Instant> = None;
        while batch.events.len() < self.config.max_rows {
            let message = match deadline {
                None => self.consumer.recv().await,
                Some(d) if tokio::time::Instant::now() < d => {
                    match tokio::time::timeout_at(d, self.consumer.recv()).await {
                        Ok(m) => m,
                        Err(_) => continue,
                    }
                }
                // Past the window: go on while the previous flush runs, and stop as soon as it ends.
                Some(_) if *stored.borrow_and_update() => break,
                Some(_) => tokio::select! {
                    m = self.consumer.recv() => m,
                    changed = stored.changed() => {
                        // A sender gone without a word (never here) must not spin this loop.
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                },
            };
            match message {
                Ok(m) => {
                    batch.offsets.insert(m.partition(), m.offset());
                    match m.payload().and_then(decode_record) {
                        Some(events) => batch.events.extend(events),
                        None => {
                            ::metrics::counter!(names::SINK_BAD_RECORDS_TOTAL).increment(1);
                            tracing::error!(
                                partition = m.partition(),
                                offset = m.offset(),
                                "undecodable record skipped"
                            );
                        }
                    }
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.config.max_wait);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the event log");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if deadline.is_some() {
                        break;
                    }
                }
            }
        }
        batch
    }

    /// Steps 2-5 of the module comment, retried with backoff until they succeed.
    async fn flush_until_done(&self, events: &[Event]) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match self.flush(events).await {
                Ok(()) => {
                    ::metrics::histogram!(names::SINK_FLUSH_DURATION).record(started.elapsed().as_secs_f64());
                    ::metrics::histogram!(names::SINK_BATCH_ROWS).record(events.len() as f64);
                    return;
                }
                Err((stage, reason)) => {
                    // ClickHouse may hold rows of this batch the sink did not hear about: ask it again.
                    self.recent.lock().await.clear();
                    ::metrics::counter!(names::SINK_FLUSH_ERRORS_TOTAL, "stage" => stage).increment(1);
                    tracing::warn!(stage, %reason, rows = events.len(), retry_in = ?backoff, "sink flush failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn flush(&self, events: &[Event]) -> Result<(), (&'static str, String)> {
        if events.is_empty() {
            return Ok(());
        }
        let rules = self.recorder.load(events).await.map_err(|e| ("rules", e.to_string()))?;
        // Each event's properties are parsed once, for both its enrichment and its checks.
        let mut enrichments: Vec<Enrichment> = Vec::with_capacity(events.len());
        let mut findings: Vec<Vec<ErrorKind>> = Vec::with_capacity(events.len());
        rules.for_each_rule(events, |e, rule| {
            let properties: Value = serde_json::from_str(&e.properties).unwrap_or(Value::Null);
            enrichments.push(enrich(&properties, rule));
            findings.push(check(&properties, rule));
        });
        let written = {
            let mut recent = self.recent.lock().await;
            if self.consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
                recent.clear();
            }
            recent.expire_due(chrono::Utc::now().timestamp_micros());
            let written = self
                .store
                .write_enriched_knowing(events, &enrichments, Some(&mut recent))
                .await
                .map_err(|e| ("clickhouse", e.to_string()))?;
            ::metrics::gauge!(names::SINK_REMEMBERED_IDENTITIES).set(recent.len() as f64);
            ::metrics::gauge!(names::SINK_FILTERED_IDENTITIES).set(recent.filtered() as f64);
            written
        };
        let new = written.new;
        ::metrics::counter!(names::EVENTS_TOTAL, "outcome" => "stored").increment(new);
        ::metrics::counter!(names::EVENTS_TOTAL, "outcome" => "duplicate")
            .increment((events.len() as u64).saturating_sub(new));
        self.marker.mark(events).await.map_err(|e| ("in_advance_queue", e.to_string()))?;
        self.recorder.record_findings(events, &findings).await.map_err(|e| ("event_errors", e.to_string()))?;
        self.recorder
            .record_duplicates(events, &written.duplicates)
            .await
            .map_err(|e| ("event_duplicates", e.to_string()))?;
        Ok(())
    }

    fn commit(&self, offsets: &BTreeMap<i32, i64>) {
        let mut list = TopicPartitionList::new();
        for (&partition, &offset) in offsets {
            if let Err(e) = list.add_partition_offset(&self.config.kafka.topic, partition, Offset::Offset(offset + 1)) {
                tracing::error!(error = %e, partition, "building the offset commit");
            }
        }
        // Asynchronous: the flush loop does not wait a broker round trip (which blocked a runtime thread) for
        // something that only saves work. The broker applies a partition's commits in the order sent; a commit lost
        // to a crash means a replay, which steps 3-5 make a no-op. Failures are logged by `commit_callback`.
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %e, "committing sink offsets failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(agg: &str) -> MetricRule {
        MetricRule {
            aggregation_type: agg.into(),
            field_name: Some("gb".into()),
            filters: vec![("region".into(), vec!["eu".into()])],
            group_keys: vec!["agent".into()],
        }
    }

    #[test]
    fn enrichment_extracts_the_value_and_a_sorted_group_key() {
        let props = json!({"gb": "12.5", "region": "eu", "agent": "a", "other": 1});
        let x = enrich(&props, Some(&rule("sum_agg")));
        assert_eq!(x.value, Some("12.5".parse().unwrap()));
        assert_eq!(x.group_key, "agent=a\u{1f}region=eu");
        let x = enrich(&json!({"gb": "user-7"}), Some(&rule("unique_count_agg")));
        assert_eq!(x, Enrichment { value: None, group_key: String::new() });
        assert_eq!(enrich(&json!({"gb": "1e3"}), Some(&rule("sum_agg"))).value, None);
        assert_eq!(enrich(&props, None), Enrichment::default());
    }
}
