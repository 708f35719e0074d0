//! Ingest benchmarks: parsing and checking events (pure CPU), and the group-commit writer on a real PostgreSQL,
//! measured beside the physical limit of the same machine: PostgreSQL's own `COPY` of the same rows into the same
//! table layout.
//!
//! `cargo bench --bench ingest`; throughput is reported in events per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregate::EventStore;
use aggregate::postgres::PgEventStore;
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::parse::{Context, parse_batch, parse_single};
use ingest::{EventLog, GroupCommitConfig, GroupCommitLog};
use schemas::event::Event;
use sqlx::PgPool;
use uuid::Uuid;

fn event_json(tx: &str) -> String {
    format!(
        r#"{{"transaction_id": "{tx}", "external_subscription_id": "sub_1234567", "code": "api_calls",
            "timestamp": 1700000000.123, "properties": {{"gb": "12.5", "region": "eu-west-1", "operation": "write"}}}}"#
    )
}

fn context() -> Context {
    Context { organization_id: Uuid::from_u128(42), received_at: Utc::now(), batch_limit: 10_000 }
}

fn parsing(c: &mut Criterion) {
    let ctx = context();
    let single = format!(r#"{{"event": {}}}"#, event_json("tx-1"));
    let batch = format!(
        r#"{{"events": [{}]}}"#,
        (0..100).map(|i| event_json(&format!("tx-{i}"))).collect::<Vec<_>>().join(",")
    );
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single_event", |b| {
        b.iter(|| parse_single(&mut single.clone().into_bytes(), &ctx).map(|e| e.transaction_id.len()))
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_of_100", |b| {
        b.iter(|| parse_batch(&mut batch.clone().into_bytes(), &ctx).map(|e| e.len()))
    });
    group.finish();
}

fn events(prefix: &str, n: usize) -> Vec<Event> {
    let now = Utc::now();
    (0..n)
        .map(|i| Event {
            organization_id: Uuid::from_u128(42),
            external_subscription_id: format!("sub_{}", i % 1000),
            transaction_id: format!("{prefix}-{i}"),
            code: "api_calls".into(),
            timestamp: now,
            properties: r#"{"gb": "12.5", "region": "eu-west-1", "operation": "write"}"#.into(),
            precise_total_amount_cents: None,
            ingested_at: now,
        })
        .collect()
}

/// The same rows as CSV, for the COPY reference.
fn csv(events: &[Event]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "{},{},{},{},{},\"{}\",,{}\n",
            e.organization_id,
            e.transaction_id,
            e.external_subscription_id,
            e.code,
            e.timestamp.to_rfc3339(),
            e.properties.replace('"', "\"\""),
            e.ingested_at.to_rfc3339()
        ));
    }
    out.into_bytes()
}

const ROWS: usize = 20_000;

fn writing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let db = testkit::TestPostgres::shared().database();
    let pool: PgPool = runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(&db.url()).await.expect("connect");
        billing::migrate(&pool).await.expect("migrate");
        sqlx::query("CREATE TABLE events_copy_reference (LIKE events INCLUDING ALL)")
            .execute(&pool)
            .await
            .expect("ref table");
        pool
    });
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone()));
    let log = runtime.block_on(async { GroupCommitLog::start(store.clone(), GroupCommitConfig::default(), None) });

    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut round = 0u64;

    // 200 concurrent requests of 100 events each, acknowledged through the group commit.
    group.bench_function("group_commit_200x100", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let all = events(&format!("gc{round}"), ROWS);
                    let started = Instant::now();
                    let mut tasks = Vec::new();
                    for chunk in all.chunks(100) {
                        let log = log.clone();
                        let chunk = chunk.to_vec();
                        tasks.push(tokio::spawn(async move { log.append(chunk).await }));
                    }
                    for t in tasks {
                        t.await.expect("join").expect("append");
                    }
                    total += started.elapsed();
                }
                total
            })
        })
    });

    // The reference: PostgreSQL's COPY of the same rows into a table with the same indexes.
    group.bench_function("postgres_copy_reference", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let data = csv(&events(&format!("cp{round}"), ROWS));
                    let mut conn = pool.acquire().await.expect("conn");
                    let started = Instant::now();
                    let mut copy = conn
                        .copy_in_raw("COPY events_copy_reference FROM STDIN WITH (FORMAT csv)")
                        .await
                        .expect("copy");
                    copy.send(data).await.expect("send");
                    copy.finish().await.expect("finish");
                    total += started.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, parsing, writing);
criterion_main!(benches);
