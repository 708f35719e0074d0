//! Aggregation jobs (DataFusion over the event store: Postgres, and ClickHouse for scale mode) against the plain Rust
//! reference, on generated event sets: duplicates, out-of-order and boundary timestamps, missing and non-numeric
//! properties, decimals with many digits, filters and pricing groups, every aggregation type, recurring or not.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use aggregate::EventStore;
use aggregate::clickhouse_store::ClickHouseStore;
use aggregate::jobs::{JobSpec, reference, run};
use aggregate::postgres::PgEventStore;
use aggregate::semantics::{AggregationType, ChargeFilter, MetricSpec, RoundingFunction, Window};
use chrono::{DateTime, Datelike, Duration, Utc};
use rust_decimal::Decimal;
use schemas::event::Event;
use serde_json::{Value, json};

use crate::support::{Mode, TestApp, in_both_modes};

in_both_modes!(
    jobs_match_the_reference_on_generated_events,
    unique_count_jobs_match_the_reference,
    recurring_weighted_sum_carries_the_level_over,
    the_scan_table_takes_filters_and_projection_down_to_the_store
);

/// An empty event store of `mode`: the test's Postgres `events` truncated, or a fresh ClickHouse database.
async fn empty_store(mode: Mode, app: &TestApp) -> Arc<dyn EventStore> {
    match mode {
        Mode::Embedded => {
            sqlx::query("TRUNCATE events").execute(&app.pool).await.unwrap();
            Arc::new(PgEventStore::new(app.pool.clone()))
        }
        Mode::Scale => {
            let server = testkit::ClickHouseServer::shared();
            let database = server.database();
            ClickHouseStore::migrate(&server.url(), &database).await.expect("ClickHouse migrations");
            Arc::new(ClickHouseStore::new(&server.url(), &database))
        }
    }
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn window() -> Window {
    Window { from: t("2024-03-01T00:00:00Z"), to: t("2024-03-31T23:59:59.999999Z"), duration_days: 31 }
}

fn value(rng: &mut Rng) -> Option<Value> {
    Some(match rng.below(10) {
        0 => return None,
        1 => json!("not a number"),
        2 => json!(format!("-{}.{:09}", rng.below(1000), rng.below(1_000_000_000))),
        3 => json!(format!("{}.{:09}", rng.below(1_000_000_000_000), rng.below(1_000_000_000))),
        4 => json!("1e3"),
        5 => json!(rng.below(100) as i64 - 20),
        _ => json!(format!("{}.{}", rng.below(500), rng.below(100))),
    })
}

/// `n` events of three subscriptions; about one in ten repeats an earlier identity (the store keeps the first).
fn generate(seed: u64, n: usize, unique_items: bool) -> (Vec<Event>, Vec<Event>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let org = uuid::Uuid::from_u128(0xA66);
    let start = t("2024-02-20T00:00:00Z");
    let mut sent: Vec<Event> = Vec::new();
    for i in 0..n {
        let sub = rng.pick(&["sub-a", "sub-b", "sub-c"]).to_string();
        let timestamp = match rng.below(12) {
            0 => window().from,
            1 => window().to,
            _ => {
                start
                    + Duration::seconds(rng.below(50 * 86_400) as i64)
                    + Duration::microseconds(rng.below(1_000_000) as i64)
            }
        };
        let mut props = serde_json::Map::new();
        if unique_items {
            if rng.below(10) > 0 {
                props.insert("v".into(), json!(format!("item-{}", rng.below(6))));
            }
            match rng.below(3) {
                0 => {}
                1 => {
                    props.insert("operation_type".into(), json!("add"));
                }
                _ => {
                    props.insert("operation_type".into(), json!("remove"));
                }
            }
        } else if let Some(v) = value(&mut rng) {
            props.insert("v".into(), v);
        }
        if rng.below(4) > 0 {
            props.insert("region".into(), json!(rng.pick(&["eu", "us", "ap"])));
        }
        if rng.below(3) > 0 {
            props.insert("agent".into(), json!(rng.pick(&["a", "b"])));
        }
        // A nested object holding the same keys, sorted before them: only top-level properties count.
        if rng.below(4) == 0 {
            props
                .insert("meta".into(), json!({"v": "999", "region": "zz", "agent": ["a"], "operation_type": "remove"}));
        }
        let transaction_id = if i > 10 && rng.below(10) == 0 {
            sent[rng.below(sent.len() as u64) as usize].transaction_id.clone()
        } else {
            format!("tx-{i}")
        };
        sent.push(Event {
            organization_id: org,
            external_subscription_id: sub,
            transaction_id,
            code: if rng.below(10) == 0 { "other".into() } else { "m".into() },
            timestamp,
            properties: Value::Object(props).to_string(),
            precise_total_amount_cents: None,
            ingested_at: t("2024-04-01T00:00:00Z") + Duration::microseconds(i as i64),
        });
    }
    let mut seen = HashSet::new();
    let kept = sent
        .iter()
        .filter(|e| seen.insert((e.external_subscription_id.clone(), e.transaction_id.clone())))
        .cloned()
        .collect();
    (sent, kept)
}

fn metrics() -> Vec<MetricSpec> {
    let spec = |aggregation_type, recurring| MetricSpec {
        aggregation_type,
        field_name: Some("v".into()),
        recurring,
        rounding: None,
    };
    vec![
        spec(AggregationType::Count, false),
        spec(AggregationType::Sum, false),
        spec(AggregationType::Sum, true),
        spec(AggregationType::Max, false),
        spec(AggregationType::Latest, false),
        spec(AggregationType::WeightedSum, false),
        spec(AggregationType::WeightedSum, true),
        MetricSpec { rounding: Some((RoundingFunction::Round, 2)), ..spec(AggregationType::Sum, false) },
        MetricSpec { rounding: Some((RoundingFunction::Ceil, -1)), ..spec(AggregationType::Max, false) },
    ]
}

fn filters() -> Vec<ChargeFilter> {
    let f = |pairs: &[(&str, &[&str])]| ChargeFilter {
        values: pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
    };
    vec![f(&[("region", &["eu", "us"])]), f(&[("region", &["eu"]), ("agent", &["a"])])]
}

async fn check(store: &dyn EventStore, kept: &[Event], metric: MetricSpec, filtered: bool, grouped: bool, seed: u64) {
    let job = JobSpec {
        organization_id: kept[0].organization_id,
        code: "m".into(),
        metric: metric.clone(),
        subscriptions: vec!["sub-a".into(), "sub-b".into(), "sub-c".into()],
        window: window(),
        filters: if filtered { filters() } else { vec![] },
        grouped_by: if grouped { vec!["agent".into()] } else { vec![] },
        initial_levels: HashMap::from([("sub-b".into(), Decimal::from_str("12.5").unwrap())]),
    };
    let got = run(store, &job).await.expect("job");
    let want = reference(&job, kept);
    assert_eq!(got, want, "seed {seed}, {metric:?}, filters {filtered}, groups {grouped}");
}

async fn jobs_match_the_reference_on_generated_events(mode: Mode) {
    let app = TestApp::new().await;
    for seed in 1..=3u64 {
        let store = empty_store(mode, &app).await;
        let (sent, kept) = generate(seed, 400, false);
        for chunk in sent.chunks(97) {
            store.write(chunk).await.expect("write");
        }
        for metric in metrics() {
            for (filtered, grouped) in [(false, false), (true, false), (true, true)] {
                check(store.as_ref(), &kept, metric.clone(), filtered, grouped, seed).await;
            }
        }
    }
}

async fn unique_count_jobs_match_the_reference(mode: Mode) {
    let app = TestApp::new().await;
    for seed in 11..=13u64 {
        let store = empty_store(mode, &app).await;
        let (sent, kept) = generate(seed, 300, true);
        store.write(&sent).await.expect("write");
        for recurring in [false, true] {
            let metric = MetricSpec {
                aggregation_type: AggregationType::UniqueCount,
                field_name: Some("v".into()),
                recurring,
                rounding: None,
            };
            check(store.as_ref(), &kept, metric.clone(), false, false, seed).await;
            check(store.as_ref(), &kept, metric, true, true, seed).await;
        }
    }
}

/// A worked example end to end: Lago's weighted sum documentation numbers through the store and DataFusion.
#[tokio::test]
async fn weighted_sum_documentation_example_through_the_store() {
    let app = TestApp::new().await;
    let store = PgEventStore::new(app.pool.clone());
    let org = uuid::Uuid::from_u128(0xB0B);
    let ev = |tx: &str, ts: &str, v: i64| Event {
        organization_id: org,
        external_subscription_id: "sub".into(),
        transaction_id: tx.into(),
        code: "gb".into(),
        timestamp: t(ts),
        properties: json!({"v": v}).to_string(),
        precise_total_amount_cents: None,
        ingested_at: t(ts),
    };
    store.write(&[ev("1", "2022-03-16T00:00:00Z", 20), ev("2", "2022-03-17T00:00:00Z", 10)]).await.unwrap();
    let job = JobSpec {
        organization_id: org,
        code: "gb".into(),
        metric: MetricSpec {
            aggregation_type: AggregationType::WeightedSum,
            field_name: Some("v".into()),
            recurring: false,
            rounding: None,
        },
        subscriptions: vec!["sub".into()],
        window: Window { from: t("2022-03-01T00:00:00Z"), to: t("2022-03-31T23:59:59.999999Z"), duration_days: 31 },
        filters: vec![],
        grouped_by: vec![],
        initial_levels: HashMap::new(),
    };
    let totals = run(&store, &job).await.unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].total.units.round_dp(10), Decimal::from_str("15.1612903226").unwrap());
    assert_eq!(totals[0].total.count, 2);
}

/// A recurring weighted sum through both stores: April opens at March's closing level, read in the same scan, per
/// filter bucket. Lago's recurring scenario: +2500 on March 5, then -2000 on April 4 and -200 on April 6 (UTC).
async fn recurring_weighted_sum_carries_the_level_over(mode: Mode) {
    let app = TestApp::new().await;
    let store = empty_store(mode, &app).await;
    let org = uuid::Uuid::from_u128(0xCA11);
    let ev = |sub: &str, tx: &str, ts: &str, v: i64, region: &str| Event {
        organization_id: org,
        external_subscription_id: sub.into(),
        transaction_id: tx.into(),
        code: "gb".into(),
        timestamp: t(ts),
        properties: json!({"v": v, "region": region}).to_string(),
        precise_total_amount_cents: None,
        ingested_at: t(ts),
    };
    store
        .write(&[
            ev("s1", "1", "2023-03-05T00:00:00Z", 2500, "eu"),
            ev("s1", "2", "2023-04-04T00:00:00Z", -2000, "eu"),
            ev("s1", "3", "2023-04-06T00:00:00Z", -200, "eu"),
            // s2 only has history: its level holds all April; in the "us" filter bucket.
            ev("s2", "4", "2023-02-10T00:00:00Z", 40, "us"),
            ev("s2", "5", "2023-03-20T12:00:00Z", 2, "us"),
            // After the window: never read.
            ev("s2", "6", "2023-05-01T00:00:00Z", 1000, "us"),
        ])
        .await
        .unwrap();
    let metric = |recurring| MetricSpec {
        aggregation_type: AggregationType::WeightedSum,
        field_name: Some("v".into()),
        recurring,
        rounding: None,
    };
    let job = |recurring| JobSpec {
        organization_id: org,
        code: "gb".into(),
        metric: metric(recurring),
        subscriptions: vec!["s1".into(), "s2".into()],
        window: Window { from: t("2023-04-01T00:00:00Z"), to: t("2023-04-30T23:59:59.999999Z"), duration_days: 30 },
        filters: vec![ChargeFilter { values: [("region".to_string(), vec!["us".to_string()])].into() }],
        grouped_by: vec![],
        initial_levels: HashMap::new(),
    };
    let units = |totals: &[aggregate::jobs::SubscriptionTotal], sub: &str, filter: Option<usize>| {
        let t = totals.iter().find(|t| t.external_subscription_id == sub && t.filter == filter).unwrap();
        (t.total.units.round_dp(10), t.total.count)
    };
    let d = |s: &str| Decimal::from_str(s).unwrap();
    let totals = run(store.as_ref(), &job(true)).await.unwrap();
    // (2500 × 3 days + 500 × 2 days + 300 × 25 days) / 30 days = 533.33..; two events in April.
    assert_eq!(units(&totals, "s1", None), (d("533.3333333333"), 2));
    assert_eq!(units(&totals, "s1", Some(0)), (d("0"), 0));
    // 40 + 2 held the whole month, no event of April counted.
    assert_eq!(units(&totals, "s2", Some(0)), (d("42"), 0));
    assert_eq!(units(&totals, "s2", None), (d("0"), 0));
    // Not recurring: April opens at zero.
    let totals = run(store.as_ref(), &job(false)).await.unwrap();
    assert_eq!(units(&totals, "s1", None), (d("-1966.6666666667"), 2));
    assert_eq!(units(&totals, "s2", Some(0)), (d("0"), 0));
}

/// The same carry-over as billing reads it: current usage of a recurring weighted sum whose only event was sent last
/// month shows that level for the whole current period.
#[tokio::test]
async fn current_usage_of_a_recurring_weighted_sum_opens_at_the_previous_level() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Storage", "code": "gb", "aggregation_type": "weighted_sum_agg",
                                    "field_name": "v", "weighted_interval": "seconds", "recurring": true}}),
    )
    .await
    .ok();
    let metric = app.get("/api/v1/billable_metrics/gb").await.ok();
    let metric_id = metric.body["billable_metric"]["lago_id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Store", "code": "store", "interval": "monthly", "amount_cents": 0,
            "amount_currency": "EUR", "pay_in_advance": false, "charges": [
                {"billable_metric_id": metric_id, "charge_model": "standard", "properties": {"amount": "2"}}]}}),
    )
    .await
    .ok();
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c", "name": "C", "currency": "EUR"}}))
        .await
        .ok();
    let now = Utc::now();
    let last_month = (now - Duration::days(now.day0() as i64 + 1)).with_day(1).unwrap();
    let start = last_month.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "c", "plan_code": "store", "external_id": "sub-w",
                                 "billing_time": "calendar", "subscription_at": start.to_rfc3339()}}),
    )
    .await
    .expect(200);
    let at = start + Duration::days(1);
    app.post(
        "/api/v1/events",
        &json!({"event": {"transaction_id": "w1", "external_subscription_id": "sub-w", "code": "gb",
                          "timestamp": at.timestamp(), "properties": {"v": "7.5"}}}),
    )
    .await
    .expect(200);
    let u = app.get("/api/v1/customers/c/current_usage?external_subscription_id=sub-w").await.expect(200);
    let charge = &u.body["customer_usage"]["charges_usage"][0];
    assert_eq!(Decimal::from_str(charge["units"].as_str().unwrap()).unwrap(), Decimal::from(15) / Decimal::from(2));
    assert_eq!(charge["amount_cents"], 1500);
    // The job shows on /metrics: its duration and the rows it read.
    let metrics = String::from_utf8(app.raw("GET", "/metrics", None, vec![]).await.raw).unwrap();
    for needle in [
        r#"billstream_aggregate_job_duration_seconds_bucket{aggregation="weighted_sum""#,
        r#"billstream_aggregate_rows_scanned_total{aggregation="weighted_sum"}"#,
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
}

/// The store answers the subscription, code and time filters itself (no filter left in DataFusion's plan) and returns
/// only the projected columns, deduplicated; a filter it cannot take stays with DataFusion.
async fn the_scan_table_takes_filters_and_projection_down_to_the_store(mode: Mode) {
    let app = TestApp::new().await;
    let store = empty_store(mode, &app).await;
    let (sent, kept) = generate(21, 300, false);
    store.write(&sent).await.unwrap();
    let table = aggregate::scan::EventScanTable::new(store.handle(), kept[0].organization_id, &["region".into()]);
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_table("events", Arc::new(table)).unwrap();
    let (from, to) = (window().from.timestamp_micros(), window().to.timestamp_micros());
    let query = format!(
        "SELECT external_subscription_id, \"properties.region\" FROM events
         WHERE code = 'm' AND external_subscription_id IN ('sub-a', 'sub-c') AND timestamp >= {from} AND timestamp <= {to}"
    );
    let plan = ctx.sql(&format!("EXPLAIN {query}")).await.unwrap().collect().await.unwrap();
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan).unwrap().to_string();
    assert!(!plan.contains("FilterExec"), "{plan}");
    let batches = ctx.sql(&query).await.unwrap().collect().await.unwrap();
    let want: Vec<&Event> = kept
        .iter()
        .filter(|e| {
            e.code == "m"
                && ["sub-a", "sub-c"].contains(&e.external_subscription_id.as_str())
                && e.timestamp >= window().from
                && e.timestamp <= window().to
        })
        .collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), want.len());
    assert!(batches.iter().all(|b| b.num_columns() == 2));
    let regions = |b: &datafusion::arrow::array::RecordBatch| {
        use datafusion::arrow::array::Array;
        let c = b.column(1).as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
        (0..c.len()).filter(|&i| c.is_valid(i) && c.value(i) == "eu").count()
    };
    let eu = want.iter().filter(|e| e.properties.contains(r#""region":"eu""#)).count();
    assert_eq!(batches.iter().map(regions).sum::<usize>(), eu);
    // A condition on a property is not the store's: DataFusion keeps it and applies it.
    let filtered =
        ctx.sql(&format!("{query} AND \"properties.region\" = 'eu'")).await.unwrap().collect().await.unwrap();
    assert_eq!(filtered.iter().map(|b| b.num_rows()).sum::<usize>(), eu);
}
