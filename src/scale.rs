//! Wiring of scale mode: the Kafka log, the ClickHouse store and the sink, built from [`ScaleConfig`]. Start-up makes
//! sure the topic and the ClickHouse tables exist, so a fresh broker and server need no manual step.

use aggregate::clickhouse_store::ClickHouseStore;
use anyhow::Context;
use ingest::kafka::{KafkaConfig, KafkaLog, ensure_topic};
use ingest::sink::{Sink, SinkConfig};
use sqlx::PgPool;

use crate::config::ScaleConfig;

/// The connected adapters of scale mode.
#[derive(Clone)]
pub struct Scale {
    pub kafka: KafkaConfig,
    pub log: KafkaLog,
    pub store: ClickHouseStore,
    pub sink_group: String,
    pub sink_max_wait: std::time::Duration,
    pub sink_max_remembered: usize,
}

impl Scale {
    /// Applies the ClickHouse migrations, creates the topic when missing and starts the producer.
    pub async fn connect(config: &ScaleConfig) -> anyhow::Result<Scale> {
        let (bootstrap_servers, clickhouse_url) = config.require().map_err(anyhow::Error::msg)?;
        aggregate::clickhouse_store::ClickHouseStore::migrate(&clickhouse_url, &config.clickhouse_database)
            .await
            .with_context(|| format!("BILLSTREAM_CLICKHOUSE_URL: preparing ClickHouse at {clickhouse_url}"))?;
        let store = ClickHouseStore::new(&clickhouse_url, &config.clickhouse_database);
        let kafka = KafkaConfig {
            bootstrap_servers,
            topic: config.kafka_topic.clone(),
            partitions: config.kafka_partitions,
            producer_settings: config.kafka_producer_settings.0.clone(),
        };
        ensure_topic(&kafka).await.map_err(anyhow::Error::msg)?;
        let log = KafkaLog::new(&kafka).map_err(anyhow::Error::msg)?;
        Ok(Scale {
            kafka,
            log,
            store,
            sink_group: config.sink_group.clone(),
            sink_max_wait: std::time::Duration::from_millis(config.sink_max_wait_ms),
            sink_max_remembered: config.sink_max_remembered,
        })
    }

    /// A sink on this log and store; `pool` is the catalog (metrics, charges) and the `event_errors` table.
    pub fn sink(&self, pool: PgPool) -> anyhow::Result<Sink> {
        let mut config = SinkConfig::new(self.kafka.clone());
        config.group_id = self.sink_group.clone();
        config.max_wait = self.sink_max_wait;
        config.max_remembered = self.sink_max_remembered;
        Sink::new(config, self.store.clone(), pool).map_err(anyhow::Error::msg)
    }
}
