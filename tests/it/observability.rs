//! Observability end to end: the real binary runs in both modes (embedded `all`; scale `all` with its sink, and a
//! separate scale `worker`), under a load of valid, repeated and invalid events, a billing clock that issues
//! invoices and a webhook endpoint that receives them. Debian's Prometheus scrapes the three processes, and every
//! PromQL expression of every dashboard in `grafana/dashboards` must return data. The docker-compose file is checked
//! with `docker-compose config` as well.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{Broker, ClickHouseServer, PrometheusServer, TestPostgres};

use crate::binary::{billstream, start, terminate};

const KEY: &str = "observability-test-key-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `expr` of every panel target of the dashboards in `dir`, with the dashboard's file name and the panel's
/// title.
fn dashboard_queries(dir: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("grafana/dashboards")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read dashboard")).expect("json");
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for panel in board["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
            for target in panel["targets"].as_array().expect("targets") {
                out.push((name.clone(), title.clone(), target["expr"].as_str().expect("expr").to_owned()));
            }
        }
    }
    out
}

/// Processes killed on drop.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// A metric, a plan charging it, and a subscription that began two months ago, so the clock has a period to bill.
async fn catalog(c: &Client, webhook_url: &str) {
    let metric = json!({"billable_metric": {"name": "GB", "code": "gb", "aggregation_type": "sum_agg",
                                             "field_name": "gb"}});
    let (status, m) = c.post("/api/v1/billable_metrics", metric).await;
    assert_eq!(status, 200, "{m}");
    let plan = json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 1000,
        "amount_currency": "EUR", "charges": [{"billable_metric_id": m["billable_metric"]["lago_id"],
        "charge_model": "standard", "properties": {"amount": "0.5"}}]}});
    assert_eq!(c.post("/api/v1/plans", plan).await.0, 200);
    let since = (chrono::Utc::now() - chrono::Duration::days(62)).format("%Y-%m-%dT00:00:00Z").to_string();
    let sub = json!({"subscription": {"external_customer_id": "c", "plan_code": "p", "external_id": "s",
                                      "subscription_at": since}});
    assert_eq!(c.post("/api/v1/subscriptions", sub).await.0, 200);
    let endpoint = json!({"webhook_endpoint": {"webhook_url": webhook_url, "signature_algo": "hmac"}});
    assert_eq!(c.post("/api/v1/webhook_endpoints", endpoint).await.0, 200);
}

/// A receiver that answers 200 to every webhook.
async fn webhook_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_running_billstream_under_load() {
    let queries = dashboard_queries(&repo().join("grafana/dashboards"));
    assert!(queries.len() >= 20, "the dashboards hold {} queries", queries.len());

    let pg = TestPostgres::shared();
    let (embedded_db, scale_db) = (pg.database(), pg.database());
    let broker = Broker::shared();
    let clickhouse = ClickHouseServer::shared();
    let ch_db = clickhouse.database();
    let topic = broker.topic_name();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ports = [testkit::free_port().unwrap(), testkit::free_port().unwrap(), testkit::free_port().unwrap()];
    let scale_env = |cmd: &mut Command| {
        cmd.env("BILLSTREAM_MODE", "scale")
            .env("LAGO_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap())
            .env("BILLSTREAM_KAFKA_TOPIC", &topic)
            .env("BILLSTREAM_SINK_GROUP", format!("sink-{topic}"))
            .env("BILLSTREAM_CLICKHOUSE_URL", clickhouse.url())
            .env("BILLSTREAM_CLICKHOUSE_DATABASE", &ch_db)
            .env("DATABASE_URL", scale_db.url());
    };
    let common = |cmd: &mut Command| {
        cmd.env("LAGO_ORG_API_KEY", KEY)
            .env("BILLSTREAM_BILLING_TICK_SECONDS", "1")
            .env("BILLSTREAM_WEBHOOK_POLL_MS", "200");
    };
    let mut embedded = billstream(dirs[0].path(), ports[0]);
    common(&mut embedded);
    embedded.env("DATABASE_URL", embedded_db.url()).arg("all");
    let mut scale = billstream(dirs[1].path(), ports[1]);
    common(&mut scale);
    scale_env(&mut scale);
    scale.arg("all");
    let (embedded, _) = start(embedded, ports[0]).await;
    let (scale, _) = start(scale, ports[1]).await;
    // A worker of its own in scale mode: its /metrics is scraped like the others'.
    let mut worker = billstream(dirs[2].path(), ports[2]);
    common(&mut worker);
    scale_env(&mut worker);
    worker.arg("worker");
    let (worker, _) = start(worker, ports[2]).await;
    // Killed however the test ends: a panic below must not leave them running.
    let mut children = Children(vec![embedded, scale, worker]);

    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let prometheus = PrometheusServer::start(&targets).expect("start Prometheus");
    let hook = webhook_receiver().await;
    let clients: Vec<Client> = ports[..2]
        .iter()
        .map(|p| Client { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{p}") })
        .collect();
    for c in &clients {
        catalog(c, &hook).await;
    }

    // Fifteen seconds of load: batches of new events, each batch sent twice (the repeat is all duplicates), and a
    // few invalid events of each kind.
    let until = Instant::now() + Duration::from_secs(15);
    let mut n = 0u64;
    while Instant::now() < until {
        for c in &clients {
            let events: Vec<Value> = (0..50)
                .map(|i| {
                    json!({"transaction_id": format!("t{n}-{i}"), "external_subscription_id": "s", "code": "gb",
                                "properties": {"gb": 2}})
                })
                .collect();
            let batch = json!({ "events": events });
            assert_eq!(c.post("/api/v1/events/batch", batch.clone()).await.0, 200);
            assert_eq!(c.post("/api/v1/events/batch", batch).await.0, 200);
            let bad = json!({"events": [
                {"transaction_id": format!("u{n}"), "external_subscription_id": "s", "code": "unknown"},
                {"transaction_id": format!("m{n}"), "external_subscription_id": "s", "code": "gb"}]});
            assert_eq!(c.post("/api/v1/events/batch", bad).await.0, 200);
            // A rejected request, for the error panels.
            let rejected = c.post("/api/v1/events", json!({"event": {"external_subscription_id": "s"}})).await.0;
            assert!((400..500).contains(&rejected), "a bad event got {rejected}");
            c.call(reqwest::Method::GET, "/api/v1/customers/c/current_usage?external_subscription_id=s", None).await;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every expression must return at least one series; rates need a few scrapes after the load.
    let deadline = Instant::now() + Duration::from_secs(40);
    let series = |expr: &str| {
        let body = prometheus.query(expr).expect("query Prometheus");
        let answer: Value = serde_json::from_str(&body).expect("Prometheus JSON");
        answer["data"]["result"].as_array().map_or(0, Vec::len)
    };
    let mut missing: Vec<(String, String, String)> = queries.clone();
    while !missing.is_empty() && Instant::now() < deadline {
        missing.retain(|(_, _, expr)| series(expr) == 0);
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    // The check without screenshots: every panel's query with the number of series it returns
    // (`cargo test observability -- --nocapture` shows it).
    println!("{:<28} {:<44} series", "dashboard", "panel");
    for (board, title, expr) in &queries {
        println!("{board:<28} {title:<44} {:>6}   {expr}", series(expr));
    }
    for child in children.0.drain(..) {
        terminate(child);
    }
    assert!(missing.is_empty(), "dashboard queries without data: {missing:#?}");
}

#[test]
fn the_compose_file_is_valid_and_mounts_what_exists() {
    let root = repo();
    let compose = root.join("docker-compose.yml");
    let tool = testkit::find_binary("docker-compose", &[]).expect(
        "docker-compose not found: install it with `apt-get install -y docker-compose` (scripts/setup.sh does it)",
    );
    // Validated with the example settings, as a user copying .env.example would run it.
    let out = Command::new(tool)
        .args(["--env-file", ".env.example", "-f"])
        .arg(&compose)
        .args(["config", "-q"])
        .current_dir(&root)
        .output()
        .expect("run docker-compose");
    assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));
    // Every file the services mount is in the repository.
    let text = std::fs::read_to_string(&compose).expect("read docker-compose.yml");
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("- ./")) {
        let source = line.trim_start_matches("- ").split(':').next().unwrap_or_default();
        assert!(root.join(source).exists(), "docker-compose.yml mounts {source}, which is missing");
    }
}
