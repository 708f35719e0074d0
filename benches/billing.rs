//! Billing run benchmark: one billing clock tick over many subscriptions with usage, on a real PostgreSQL, beside
//! PostgreSQL's own `COPY` of the same number of invoice rows measured in the same run (the floor of writing them).
//!
//! `cargo bench --bench billing` bills 100k monthly subscriptions (two charges each, over 200k events) at one
//! boundary and prints subscriptions per second; under `cargo test` it bills a few hundred, so the test run stays
//! fast. Each iteration bills a new month, so every run does the whole work.

use std::time::{Duration, Instant};

use aggregate::EventStore;
use aggregate::postgres::PgEventStore;
use chrono::{DateTime, Months, Utc};
use schemas::event::Event;
use uuid::Uuid;

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_default()
}

async fn catalog(pool: &sqlx::PgPool, org: Uuid, subscriptions: usize) {
    let q = |sql: &'static str| sqlx::query(sql).bind(org);
    q("INSERT INTO billable_metrics (id, organization_id, name, code, aggregation_type) VALUES
         (gen_random_uuid(), $1, 'Calls', 'calls', 'count_agg'),
         (gen_random_uuid(), $1, 'Storage', 'storage', 'sum_agg')")
    .execute(pool)
    .await
    .expect("metrics");
    sqlx::query("UPDATE billable_metrics SET field_name = 'gb' WHERE code = 'storage'")
        .execute(pool)
        .await
        .expect("field");
    q("INSERT INTO plans (id, organization_id, name, code, interval, amount_cents, amount_currency)
         VALUES (gen_random_uuid(), $1, 'Pro', 'pro', 'monthly', 4900, 'EUR')")
    .execute(pool)
    .await
    .expect("plan");
    q(r#"INSERT INTO charges (id, organization_id, plan_id, billable_metric_id, code, charge_model, properties)
         SELECT gen_random_uuid(), $1, p.id, m.id, m.code,
                CASE m.code WHEN 'calls' THEN 'graduated' ELSE 'package' END,
                CASE m.code WHEN 'calls' THEN '{"graduated_ranges": [
                        {"from_value": 0, "to_value": 1, "per_unit_amount": "0", "flat_amount": "0"},
                        {"from_value": 2, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "1"}]}'::jsonb
                     ELSE '{"amount": "5", "package_size": "10", "free_units": "0"}'::jsonb END
         FROM plans p, billable_metrics m WHERE p.organization_id = $1 AND m.organization_id = $1"#)
    .execute(pool)
    .await
    .expect("charges");
    sqlx::query(
        "INSERT INTO customers (id, organization_id, external_id, sequential_id, slug, currency)
         SELECT gen_random_uuid(), $1, 'cust_' || i, i, 'CUS-' || i, 'EUR' FROM generate_series(1, $2) i",
    )
    .bind(org)
    .bind(subscriptions as i64)
    .execute(pool)
    .await
    .expect("customers");
    sqlx::query(
        "INSERT INTO subscriptions (id, organization_id, customer_id, plan_id, external_id, status, billing_time,
             subscription_at, started_at)
         SELECT gen_random_uuid(), $1, c.id, p.id, 'sub_' || c.sequential_id, 'active', 'calendar',
                '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z'
         FROM customers c, plans p WHERE c.organization_id = $1 AND p.organization_id = $1",
    )
    .bind(org)
    .execute(pool)
    .await
    .expect("subscriptions");
}

/// Two events per subscription in each month billed: one call and some storage.
fn events(org: Uuid, subscriptions: usize, month: DateTime<Utc>) -> Vec<Event> {
    (0..subscriptions * 2)
        .map(|i| {
            let sub = i % subscriptions + 1;
            let storage = i >= subscriptions;
            Event {
                organization_id: org,
                external_subscription_id: format!("sub_{sub}"),
                transaction_id: format!("{}-{i}", month.timestamp()),
                code: if storage { "storage" } else { "calls" }.into(),
                timestamp: month + chrono::Duration::hours((i % 600) as i64),
                properties: if storage { format!(r#"{{"gb": {}}}"#, sub % 37) } else { "{}".into() },
                precise_total_amount_cents: None,
                ingested_at: month,
            }
        })
        .collect()
}

fn main() {
    // BILLSTREAM_BENCH_SUBSCRIPTIONS sizes a run by hand.
    let subscriptions = std::env::var("BILLSTREAM_BENCH_SUBSCRIPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full_run() { 100_000usize } else { 300 });
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let months = if full_run() { 2 } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let db = testkit::TestPostgres::shared().database();
    runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(&db.url()).await.expect("connect");
        billing::migrate(&pool).await.expect("migrate");
        let (org, _) = billing::store::organizations::create(&pool, "Bench", None).await.expect("org");
        catalog(&pool, org.id, subscriptions).await;
        let store = PgEventStore::new(pool.clone());
        let start = t("2024-01-01T00:00:00Z");
        for m in 0..months {
            let month = start.checked_add_months(Months::new(m)).unwrap_or(start);
            for chunk in events(org.id, subscriptions, month).chunks(20_000) {
                store.write(chunk).await.expect("events");
            }
        }
        sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
        for m in 1..=months {
            let boundary = start.checked_add_months(Months::new(m)).unwrap_or(start) + chrono::Duration::seconds(1);
            let began = Instant::now();
            let tick = billing::clock::tick(&pool, &store, &billing::tracking::Tracker::disabled(), boundary).await.expect("billing run");
            let took = began.elapsed();
            assert_eq!(tick.invoices, subscriptions, "every subscription billed once");
            println!(
                "billing run: {} subscriptions in {:.2} s = {:.0} subscriptions/s",
                tick.invoices,
                took.as_secs_f64(),
                tick.invoices as f64 / took.as_secs_f64().max(1e-9)
            );
        }
        // The reference: PostgreSQL's COPY of as many rows into a table shaped like the fees (the cheapest way
        // Postgres can take them), in the same run.
        let mut conn = pool.acquire().await.expect("conn");
        sqlx::query("CREATE TABLE copy_ref (LIKE fees INCLUDING DEFAULTS)").execute(&mut *conn).await.expect("ref");
        let began = Instant::now();
        let mut copy = conn
            .copy_in_raw(
                "COPY copy_ref (id, organization_id, invoice_id, position, fee_type, item_code, item_name, item_id,
                     item_type, amount_cents, precise_amount_cents, amount_currency, taxes_amount_cents,
                     taxes_precise_amount_cents, taxes_rate, units, total_aggregated_units, unit_amount_cents,
                     precise_unit_amount) FROM STDIN",
            )
            .await
            .expect("copy");
        let rows = subscriptions * 3;
        let mut buf = String::new();
        for _ in 0..rows {
            let id = Uuid::new_v4();
            buf.push_str(&format!(
                "{id}\t{}\t{id}\t0\tcharge\tcalls\tCalls\t{id}\tBillableMetric\t150\t150\tEUR\t0\t0\t0\t2\t2\t75\t0.75\n",
                org.id
            ));
            if buf.len() > 1 << 20 {
                copy.send(buf.as_bytes()).await.expect("copy data");
                buf.clear();
            }
        }
        copy.send(buf.as_bytes()).await.expect("copy data");
        copy.finish().await.expect("copy finish");
        let took = began.elapsed().max(Duration::from_nanos(1));
        println!(
            "reference: COPY of {rows} fee rows in {:.2} s = {:.0} rows/s",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64()
        );
        tracking_latency(&pool, if full_run() { 3000 } else { 40 }).await;
    });
}

/// API latency with usage tracking off, on with an endpoint that answers, and on with one that never answers:
/// `calls` customer creations (each reports `customer_created`) through the whole HTTP stack, one at a time.
async fn tracking_latency(pool: &sqlx::PgPool, calls: usize) {
    use billing::tracking::{Settings, Tracker};
    // An endpoint that answers at once, and one that accepts connections and never answers a byte.
    let answering = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let answering_url = format!("http://{}/v1/batch", answering.local_addr().expect("addr"));
    let receiver = axum::Router::new().route("/v1/batch", axum::routing::post(|| async { "{\"success\":true}" }));
    tokio::spawn(async move { axum::serve(answering, receiver).await });
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_url = format!("http://{}/v1/batch", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let settings = |url: &str| Settings::new(url.to_owned(), "bench-key".into(), Duration::from_millis(100), "self");
    let cases = [
        ("tracking off", Tracker::disabled()),
        ("tracking on, endpoint answering", Tracker::start(settings(&answering_url)).expect("tracker")),
        ("tracking on, endpoint never answering", Tracker::start(settings(&silent_url)).expect("tracker")),
    ];
    let mut baseline = None;
    for (n, (name, tracker)) in cases.into_iter().enumerate() {
        let (_, key) = billing::store::organizations::create(pool, &format!("Tracking {n}"), None).await.expect("org");
        let state = billstream::AppState::embedded(pool.clone(), billstream::http::HttpSettings::default());
        let router = billstream::app(billstream::AppState { tracker, ..state });
        let mut took: Vec<Duration> = Vec::with_capacity(calls);
        for i in 0..calls {
            let body = format!(r#"{{"customer": {{"external_id": "t{n}-{i}"}}}}"#);
            let request = axum::http::Request::post("/api/v1/customers")
                .header("Authorization", format!("Bearer {key}"))
                .header("Content-Type", "application/json")
                .body(axum::body::Body::from(body))
                .expect("request");
            let began = Instant::now();
            let response = tower::ServiceExt::oneshot(router.clone(), request).await.expect("response");
            took.push(began.elapsed());
            assert_eq!(response.status(), 200, "{name}: call {i}");
        }
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
        let (p50, p99) = (at(0.5), at(0.99));
        let base = *baseline.get_or_insert(p50);
        println!(
            "API latency, {name}: {calls} customer creations, p50 {p50:.2} ms, p99 {p99:.2} ms, p50 / off {:.2}",
            p50 / base.max(1e-9)
        );
    }
}
