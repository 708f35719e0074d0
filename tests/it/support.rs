//! A test application on its own fresh database of the shared test PostgreSQL, called without a socket. Every
//! response goes through the OpenAPI check.
//!
//! In scale mode ([`TestApp::in_mode`]) events go through the shared test broker (a topic of the test's own) and a
//! sink running in the test's runtime into a ClickHouse database of the test's own; reads wait for the sink first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregate::EventStore;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use billing::tracking::Tracker;
use billstream::config::{Mode as ConfigMode, ScaleConfig};
use billstream::http::HttpSettings;
use billstream::scale::Scale;
use billstream::{AppState, app};
use http_body_util::BodyExt;
use ingest::kafka::KafkaLog;
use ingest::sink::Progress;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use testkit::{Broker, ClickHouseServer, TestDatabase, TestPostgres};
use tower::ServiceExt;

use crate::openapi::check_response;

pub const DEFAULT_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// Where events go: Postgres only, or the broker, the sink and ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Scale,
}

/// Runs each listed `async fn name(mode: Mode)` of the enclosing module as two tests, `embedded::name` and
/// `scale::name`: one test body, both modes.
macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::support::Mode::Embedded).await
                }
            )*
        }
        mod scale {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::support::Mode::Scale).await
                }
            )*
        }
    };
}
pub(crate) use in_both_modes;

/// Scale mode's pieces of a test application.
pub struct ScaleParts {
    pub log: KafkaLog,
    pub progress: Arc<Progress>,
    pub clickhouse: &'static ClickHouseServer,
    pub database: String,
}

/// The scale settings of a test: the shared broker and ClickHouse, a topic, a group and a database of its own.
pub fn scale_config() -> (ScaleConfig, String) {
    let broker = Broker::shared();
    let clickhouse = ClickHouseServer::shared();
    let database = clickhouse.database();
    let topic = broker.topic_name();
    let config = ScaleConfig {
        mode: ConfigMode::Scale,
        kafka_bootstrap_servers: Some(broker.bootstrap()),
        kafka_topic: topic.clone(),
        kafka_partitions: 3,
        kafka_producer_settings: Default::default(),
        sink_group: format!("sink-{topic}"),
        sink_max_wait_ms: 100,
        sink_max_remembered: 2_000_000,
        clickhouse_url: Some(clickhouse.url()),
        clickhouse_database: database.clone(),
    };
    (config, database)
}

pub struct TestApp {
    pub pool: PgPool,
    pub router: Router,
    /// The API key of the test's organization.
    pub key: String,
    pub scale: Option<ScaleParts>,
    /// The mode's event store, as billing reads it (the clock takes it).
    pub store: Arc<dyn EventStore>,
    /// Where the application reports usage tracking (off unless built [`TestApp::with_tracker`]).
    pub tracker: Tracker,
    /// Dropped last: drops the test's database.
    _db: TestDatabase,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    /// Asserts a 2xx.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!((200..300).contains(&self.status), "expected 2xx, got {}: {}", self.status, self.body);
        self
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_body_limit(DEFAULT_BODY_LIMIT).await
    }

    pub async fn with_body_limit(limit: usize) -> TestApp {
        Self::build(Mode::Embedded, limit).await
    }

    /// A test application whose events go through `mode`'s adapters.
    pub async fn in_mode(mode: Mode) -> TestApp {
        Self::build(mode, DEFAULT_BODY_LIMIT).await
    }

    /// An embedded test application reporting usage tracking through `tracker`.
    pub async fn with_tracker(tracker: Tracker) -> TestApp {
        Self::build_with(Mode::Embedded, DEFAULT_BODY_LIMIT, tracker).await
    }

    async fn build(mode: Mode, limit: usize) -> TestApp {
        Self::build_with(mode, limit, Tracker::disabled()).await
    }

    async fn build_with(mode: Mode, limit: usize, tracker: Tracker) -> TestApp {
        let db = TestPostgres::shared().database();
        let pool = PgPoolOptions::new().max_connections(8).connect(&db.url()).await.expect("connect to test database");
        billing::migrate(&pool).await.expect("migrate");
        let (_, key) = billing::store::organizations::create(&pool, "Test org", None).await.expect("create org");
        let settings = HttpSettings { max_body_bytes: limit, events_batch_limit: 10_000, ..HttpSettings::default() };
        let (state, scale) = match mode {
            Mode::Embedded => (AppState::embedded(pool.clone(), settings), None),
            Mode::Scale => {
                let (config, database) = scale_config();
                let scale = Scale::connect(&config).await.expect("connect scale mode");
                let sink = scale.sink(pool.clone()).expect("sink");
                let progress = sink.progress();
                tokio::spawn(sink.run());
                let parts =
                    ScaleParts { log: scale.log.clone(), progress, clickhouse: ClickHouseServer::shared(), database };
                (AppState::scale(pool.clone(), settings, &scale), Some(parts))
            }
        };
        let state = AppState { tracker: tracker.clone(), ..state };
        let store = state.ingest.store.clone();
        let router = app(state);
        TestApp { pool, router, key, scale, store, tracker, _db: db }
    }

    /// The URL of the test's own database (for a `billstream` process working on it).
    pub fn database_url(&self) -> String {
        self._db.url()
    }

    /// Waits until the sink has written everything the broker acknowledged so far (scale mode; at once otherwise).
    pub async fn settle(&self) {
        let Some(scale) = &self.scale else { return };
        let acked = scale.log.acked_offsets();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let flushed = scale.progress.flushed();
            if acked.iter().all(|(p, o)| flushed.get(p).is_some_and(|next| next > o)) {
                return;
            }
            assert!(Instant::now() < deadline, "the sink did not catch up: acked {acked:?}, flushed {flushed:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every stored event, each identity once (the first): `(transaction_id, properties)`, read after the sink has
    /// caught up. In scale mode it also checks that `events_enriched` holds no identity twice.
    pub async fn stored_events(&self) -> Vec<(String, Value)> {
        self.settle().await;
        match &self.scale {
            None => sqlx::query_as("SELECT transaction_id, properties FROM events ORDER BY transaction_id")
                .fetch_all(&self.pool)
                .await
                .expect("read events"),
            Some(s) => {
                let db = &s.database;
                let doubles = s
                    .clickhouse
                    .execute(&format!(
                        "SELECT count() - uniqExact(organization_id, external_subscription_id, transaction_id)
                         FROM {db}.events_enriched"
                    ))
                    .expect("count doubles");
                assert_eq!(doubles.trim(), "0", "an identity is stored twice in events_enriched");
                clickhouse_events(s.clickhouse, db)
            }
        }
    }

    /// How many events are stored (each identity once).
    pub async fn stored_count(&self) -> usize {
        self.stored_events().await.len()
    }

    /// Another organization of the same installation; returns its key.
    pub async fn new_org(&self, name: &str) -> String {
        billing::store::organizations::create(&self.pool, name, None).await.expect("create org").1
    }

    /// A raw request: any method, any body bytes, any (or no) key.
    pub async fn raw(&self, method: &str, path: &str, key: Option<&str>, body: Vec<u8>) -> Resp {
        if !(method == "POST" && path.starts_with("/api/v1/events")) || path.starts_with("/api/v1/events/estimate") {
            // Reads (events, usage, billing on termination) see what the sink has written: in scale mode, wait for
            // it first. Posting events does not wait, so a test can post while the sink is behind.
            self.settle().await;
        }
        let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = req.body(Body::from(body)).expect("request");
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status().as_u16();
        let raw = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        check_response(method, path, status, &body);
        Resp { status, body, raw }
    }

    pub async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json")).unwrap_or_default();
        self.raw(method, path, Some(key), bytes).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call_as(&self.key, "GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call_as(&self.key, "POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call_as(&self.key, "PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call_as(&self.key, "DELETE", path, None).await
    }
}

/// The events of a ClickHouse database, each identity once (the first ingested): `(transaction_id, properties)`.
pub fn clickhouse_events(server: &ClickHouseServer, db: &str) -> Vec<(String, Value)> {
    let text = server
        .execute(&format!(
            "SELECT transaction_id, properties FROM (SELECT * FROM {db}.events_raw ORDER BY ingested_us
             LIMIT 1 BY organization_id, external_subscription_id, transaction_id)
             ORDER BY transaction_id FORMAT JSONEachRow"
        ))
        .expect("read ClickHouse events");
    text.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("JSONEachRow line");
            let props = row["properties"].as_str().map(|p| serde_json::from_str(p).expect("properties JSON"));
            (row["transaction_id"].as_str().unwrap_or_default().to_owned(), props.unwrap_or(Value::Null))
        })
        .collect()
}

/// Reads what a real `billstream` process stored, in either mode.
pub enum StoreProbe {
    Postgres(PgPool),
    ClickHouse { server: &'static ClickHouseServer, database: String },
}

impl StoreProbe {
    /// The stored transaction ids, each identity once (the identities of these tests differ by transaction id).
    pub async fn transactions(&self) -> Vec<String> {
        match self {
            StoreProbe::Postgres(pool) => {
                sqlx::query_scalar("SELECT transaction_id FROM events").fetch_all(pool).await.expect("read events")
            }
            StoreProbe::ClickHouse { server, database } => {
                clickhouse_events(server, database).into_iter().map(|(tx, _)| tx).collect()
            }
        }
    }

    /// Rows beyond one per identity where aggregation reads (`events`, or `events_enriched`): must stay 0.
    pub async fn doubles(&self) -> i64 {
        match self {
            StoreProbe::Postgres(_) => 0,
            StoreProbe::ClickHouse { server, database } => server
                .execute(&format!(
                    "SELECT count() - uniqExact(organization_id, external_subscription_id, transaction_id)
                     FROM {database}.events_enriched"
                ))
                .expect("count doubles")
                .trim()
                .parse()
                .expect("a number"),
        }
    }

    /// Polls until `done` holds for the stored transaction ids, or panics after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let txs = self.transactions().await;
            if done(&txs) {
                return txs;
            }
            assert!(Instant::now() < deadline, "{what}: still not true after {timeout:?} ({} stored)", txs.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The environment that puts a `billstream` command in scale mode with `config`.
pub fn scale_env(cmd: &mut std::process::Command, config: &ScaleConfig) {
    cmd.env("BILLSTREAM_MODE", "scale")
        .env("LAGO_KAFKA_BOOTSTRAP_SERVERS", config.kafka_bootstrap_servers.clone().unwrap_or_default())
        .env("BILLSTREAM_KAFKA_TOPIC", &config.kafka_topic)
        .env("BILLSTREAM_SINK_GROUP", &config.sink_group)
        .env("BILLSTREAM_CLICKHOUSE_URL", config.clickhouse_url.clone().unwrap_or_default())
        .env("BILLSTREAM_CLICKHOUSE_DATABASE", &config.clickhouse_database);
}
