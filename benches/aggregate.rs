//! Aggregation benchmark on the Postgres event store: a monthly sum for every subscription of an organization, as
//! one DataFusion job, beside PostgreSQL's own SQL computing the same totals in the same run.
//!
//! `cargo bench --bench aggregate` loads 1M events for 10k subscriptions (under `cargo test` a small set, so the
//! test run stays fast) and reports events per second.

use std::collections::HashMap;
use std::time::Duration;

use aggregate::EventStore;
use aggregate::jobs::{JobSpec, run};
use aggregate::postgres::PgEventStore;
use aggregate::semantics::{AggregationType, MetricSpec, Window};
use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use schemas::event::Event;
use uuid::Uuid;

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_default()
}

fn aggregation(c: &mut Criterion) {
    let (events, subscriptions) = if full_run() { (1_000_000usize, 10_000usize) } else { (20_000, 200) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let db = testkit::TestPostgres::shared().database();
    let org = Uuid::from_u128(7);
    let (pool, store) = runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&db.url()).await.expect("connect");
        billing::migrate(&pool).await.expect("migrate");
        let store = PgEventStore::new(pool.clone());
        let from = t("2024-03-01T00:00:00Z");
        let batch: Vec<Event> = (0..events)
            .map(|i| Event {
                organization_id: org,
                external_subscription_id: format!("sub_{}", i % subscriptions),
                transaction_id: format!("tx-{i}"),
                code: "storage".into(),
                timestamp: from + chrono::Duration::seconds((i % 2_600_000) as i64),
                properties: format!(r#"{{"gb": "{}.{}"}}"#, i % 1000, i % 7),
                precise_total_amount_cents: None,
                ingested_at: from,
            })
            .collect();
        for chunk in batch.chunks(20_000) {
            store.write(chunk).await.expect("load events");
        }
        sqlx::query("ANALYZE events").execute(&pool).await.expect("analyze");
        (pool, store)
    });
    let job = JobSpec {
        organization_id: org,
        code: "storage".into(),
        metric: MetricSpec {
            aggregation_type: AggregationType::Sum,
            field_name: Some("gb".into()),
            recurring: false,
            rounding: None,
        },
        subscriptions: (0..subscriptions).map(|s| format!("sub_{s}")).collect(),
        window: Window { from: t("2024-03-01T00:00:00Z"), to: t("2024-03-31T23:59:59.999999Z"), duration_days: 31 },
        filters: vec![],
        grouped_by: vec![],
        initial_levels: HashMap::new(),
    };

    let mut group = c.benchmark_group("monthly_sum");
    group.throughput(Throughput::Elements(events as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(if full_run() { 60 } else { 5 }));
    group.bench_function("datafusion_job", |b| {
        b.iter(|| runtime.block_on(async { run(&store, &job).await.expect("job").len() }))
    });
    // The reference: PostgreSQL computing the same totals itself.
    group.bench_function("postgres_sql_reference", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let rows: Vec<(String, Option<rust_decimal::Decimal>)> = sqlx::query_as(
                    r#"SELECT external_subscription_id, SUM((properties->>'gb')::numeric)
                       FROM events
                       WHERE organization_id = $1 AND code = 'storage'
                         AND external_subscription_id = ANY($2)
                         AND "timestamp" BETWEEN $3 AND $4
                         AND properties->>'gb' ~ '^-?\d+(\.\d+)?$'
                       GROUP BY external_subscription_id"#,
                )
                .bind(org)
                .bind(&job.subscriptions)
                .bind(job.window.from)
                .bind(job.window.to)
                .fetch_all(&pool)
                .await
                .expect("reference query");
                rows.len()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, aggregation);
criterion_main!(benches);
