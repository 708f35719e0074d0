//! `/api/v1/events` in both modes (one body per test, run by `in_both_modes!`): the contract, bad input, exactly-once
//! under concurrency and retries, the asynchronous error records, and durability across a SIGKILL of the real binary.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::{billstream, start};
use crate::support::{Mode, StoreProbe, TestApp, in_both_modes, scale_config, scale_env};

in_both_modes!(
    single_event_is_stored_and_rendered_as_lago,
    batch_is_stored_in_order,
    a_retry_is_acknowledged_and_the_first_event_wins,
    bad_input_is_rejected_and_stores_nothing,
    organizations_keep_their_events_apart,
    list_filters_and_pages_newest_first,
    concurrent_sends_with_retries_store_each_identity_once,
    invalid_events_are_kept_and_recorded_for_the_report,
    events_missing_a_pricing_group_key_are_recorded,
    ingest_metrics_are_exported,
    sigkill_during_load_loses_no_acknowledged_event,
);

fn event(tx: &str, sub: &str) -> Value {
    json!({"transaction_id": tx, "external_subscription_id": sub, "code": "storage", "timestamp": 1700000000.25,
           "properties": {"gb": "1.5", "region": "eu"}})
}

async fn stored(app: &TestApp) -> usize {
    app.stored_count().await
}

async fn single_event_is_stored_and_rendered_as_lago(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let mut body = event("tx-1", "sub-1");
    body["precise_total_amount_cents"] = json!("1234.5");
    let r = app.post("/api/v1/events", &json!({"event": body})).await.expect(200);
    let e = &r.body["event"];
    assert_eq!(e["transaction_id"], "tx-1");
    assert_eq!(e["external_subscription_id"], "sub-1");
    assert_eq!(e["code"], "storage");
    assert_eq!(e["timestamp"], "2023-11-14T22:13:20.250Z");
    assert_eq!(e["properties"], json!({"gb": "1.5", "region": "eu"}));
    assert_eq!(e["precise_total_amount_cents"], "1234.5");
    assert_eq!(e["lago_customer_id"], Value::Null);
    assert_eq!(e["lago_subscription_id"], Value::Null);
    assert!(e["created_at"].as_str().unwrap().ends_with('Z'));

    let shown = app.get("/api/v1/events/tx-1").await.expect(200);
    assert_eq!(shown.body["event"], r.body["event"]);
    assert_eq!(stored(&app).await, 1);
    let r = app.get("/api/v1/events/nope").await.expect(404);
    assert_eq!(r.body, json!({"status": 404, "error": "Not Found", "code": "event_not_found"}));
}

async fn batch_is_stored_in_order(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let events: Vec<Value> = (0..50).map(|i| event(&format!("tx-{i}"), "sub-1")).collect();
    let r = app.post("/api/v1/events/batch", &json!({"events": events})).await.expect(200);
    let txs: Vec<&str> =
        r.body["events"].as_array().unwrap().iter().map(|e| e["transaction_id"].as_str().unwrap()).collect();
    assert_eq!(txs, (0..50).map(|i| format!("tx-{i}")).collect::<Vec<_>>());
    assert_eq!(stored(&app).await, 50);
}

async fn a_retry_is_acknowledged_and_the_first_event_wins(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let first = event("tx-1", "sub-1");
    let mut second = event("tx-1", "sub-1");
    second["properties"] = json!({"gb": "99"});
    let r1 = app.post("/api/v1/events", &json!({"event": first})).await.expect(200);
    let r2 = app.post("/api/v1/events", &json!({"event": second})).await.expect(200);
    assert_eq!(r1.body["event"]["lago_id"], r2.body["event"]["lago_id"], "a retry names the same event");
    let shown = app.get("/api/v1/events/tx-1").await.ok();
    assert_eq!(shown.body["event"]["properties"], json!({"gb": "1.5", "region": "eu"}));
    // The same transaction id on another subscription is another event.
    app.post("/api/v1/events", &json!({"event": event("tx-1", "sub-2")})).await.expect(200);
    // Repeats inside one batch: the first occurrence counts.
    let mut a = event("tx-9", "sub-1");
    a["properties"] = json!({"gb": "1"});
    let mut b = event("tx-9", "sub-1");
    b["properties"] = json!({"gb": "2"});
    app.post("/api/v1/events/batch", &json!({"events": [a, b]})).await.expect(200);
    let stored_events = app.stored_events().await;
    let props = &stored_events.iter().find(|(tx, _)| tx == "tx-9").expect("tx-9 stored").1;
    assert_eq!(props, &json!({"gb": "1"}));
    assert_eq!(stored(&app).await, 3);
}

/// Each bad input: a Lago-shaped 4xx, and nothing stored.
async fn bad_input_is_rejected_and_stores_nothing(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let post = |path: &'static str, body: Vec<u8>| {
        let app = &app;
        async move { app.raw("POST", path, Some(&app.key), body).await }
    };
    let json_body = |v: Value| serde_json::to_vec(&v).unwrap();
    let single = |f: &dyn Fn(&mut Value)| {
        let mut e = event("tx", "sub");
        f(&mut e);
        json_body(json!({"event": e}))
    };

    let r = post("/api/v1/events", b"{\"event\": {".to_vec()).await.expect(400);
    assert_eq!(r.body, json!({"status": 400, "error": "Bad Request"}));
    post("/api/v1/events", vec![0xff, 0xfe, 0xfd]).await.expect(400);
    let r = post("/api/v1/events", b"[1, 2]".to_vec()).await.expect(400);
    assert_eq!(r.body["error"], "BadRequest: param is missing or the value is empty or invalid: event");
    post("/api/v1/events", json_body(json!({"evnt": {}}))).await.expect(400);

    for (field, code) in [
        ("transaction_id", "value_is_mandatory"),
        ("code", "value_is_mandatory"),
        ("external_subscription_id", "value_is_mandatory"),
    ] {
        let r = post(
            "/api/v1/events",
            single(&|e| {
                e.as_object_mut().unwrap().remove(field);
            }),
        )
        .await
        .expect(422);
        assert_eq!(r.body["error_details"], json!({field: [code]}), "{field}");
    }
    let r = post("/api/v1/events", single(&|e| e["timestamp"] = json!("2024-01-01T00:00:00Z"))).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"timestamp": ["invalid_format"]}));
    let r = post("/api/v1/events", single(&|e| e["properties"] = json!("gb=1"))).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"properties": ["value_is_invalid"]}));
    let deep = (0..40).fold(json!(1), |acc, _| json!({"x": acc}));
    let r = post("/api/v1/events", single(&|e| e["properties"] = json!({"nested": deep.clone()}))).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"properties": ["value_is_invalid"]}));

    let r = post("/api/v1/events/batch", json_body(json!({"events": []}))).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"events": ["no_events"]}));
    let too_many: Vec<Value> = (0..10_001).map(|i| event(&format!("t{i}"), "s")).collect();
    let r = post("/api/v1/events/batch", json_body(json!({"events": too_many}))).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"events": ["too_many_events"]}));
    let mut bad = event("tx-bad", "sub");
    bad["timestamp"] = json!("soon");
    let r = post("/api/v1/events/batch", json_body(json!({"events": [event("a", "s"), bad, event("b", "s")]})))
        .await
        .expect(422);
    assert_eq!(r.body["error_details"], json!({"1": {"timestamp": ["invalid_format"]}}));

    // 10 MB: over the body limit.
    let huge = format!(
        r#"{{"event": {{"transaction_id": "t", "external_subscription_id": "s", "code": "c", "properties": {{"blob": "{}"}}}}}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let r = post("/api/v1/events", huge.into_bytes()).await.expect(413);
    assert_eq!(r.body["code"], "payload_too_large");

    assert_eq!(stored(&app).await, 0);
}

async fn organizations_keep_their_events_apart(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let other = app.new_org("Other").await;
    app.post("/api/v1/events", &json!({"event": event("tx-1", "sub-1")})).await.expect(200);
    app.call_as(&other, "GET", "/api/v1/events/tx-1", None).await.expect(404);
    let r = app.call_as(&other, "GET", "/api/v1/events", None).await.ok();
    assert_eq!(r.body["meta"]["total_count"], 0);
    // The same identity in another organization is another event.
    app.call_as(&other, "POST", "/api/v1/events", Some(&json!({"event": event("tx-1", "sub-1")}))).await.expect(200);
    assert_eq!(stored(&app).await, 2);
}

async fn list_filters_and_pages_newest_first(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let mut events = Vec::new();
    for i in 0..6 {
        let mut e = event(&format!("tx-{i}"), if i % 2 == 0 { "even" } else { "odd" });
        e["timestamp"] = json!(1_700_000_000 + i * 3600);
        if i == 5 {
            e["code"] = json!("calls");
        }
        events.push(e);
    }
    app.post("/api/v1/events/batch", &json!({"events": events})).await.ok();
    let txs = |r: &Value| {
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["transaction_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let r = app.get("/api/v1/events?per_page=4").await.ok();
    assert_eq!(txs(&r.body), ["tx-5", "tx-4", "tx-3", "tx-2"]);
    assert_eq!(
        r.body["meta"],
        json!({"current_page": 1, "next_page": 2, "prev_page": null, "total_pages": 2, "total_count": 6})
    );
    let r = app.get("/api/v1/events?external_subscription_id=odd").await.ok();
    assert_eq!(txs(&r.body), ["tx-5", "tx-3", "tx-1"]);
    let r = app.get("/api/v1/events?code=calls").await.ok();
    assert_eq!(txs(&r.body), ["tx-5"]);
    // Inclusive bounds: tx-1 is at 23:13:20, tx-3 at 01:13:20 the next day.
    let r = app.get("/api/v1/events?timestamp_from=2023-11-14T23:13:20Z&timestamp_to=2023-11-15T01:13:20Z").await.ok();
    assert_eq!(txs(&r.body), ["tx-3", "tx-2", "tx-1"]);
    let r = app.get("/api/v1/events?timestamp_from=yesterday").await.expect(422);
    assert_eq!(r.body["error_details"], json!({"timestamp_from": ["invalid_date"]}));
}

/// Many clients at once, each event sent one to three times (retries), some transaction ids shared between clients:
/// exactly the distinct identities are stored.
async fn concurrent_sends_with_retries_store_each_identity_once(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let clients = 8;
    let per_client = 250;
    let mut handles = Vec::new();
    for c in 0..clients {
        let router = app.router.clone();
        let key = app.key.clone();
        handles.push(tokio::spawn(async move {
            use tower::ServiceExt;
            for i in 0..per_client {
                // Every fifth event id is shared by all clients.
                let tx = if i % 5 == 0 { format!("shared-{i}") } else { format!("c{c}-{i}") };
                let repeats = 1 + (i + c) % 3;
                for _ in 0..repeats {
                    let body = if i % 2 == 0 {
                        json!({"event": event(&tx, "sub-1")})
                    } else {
                        json!({"events": [event(&tx, "sub-1"), event(&format!("{tx}-b"), "sub-1")]})
                    };
                    let path = if i % 2 == 0 { "/api/v1/events" } else { "/api/v1/events/batch" };
                    let req = axum::http::Request::post(path)
                        .header("authorization", format!("Bearer {key}"))
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap();
                    let status = router.clone().oneshot(req).await.unwrap().status();
                    assert_eq!(status, 200);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut expected = HashSet::new();
    for c in 0..clients {
        for i in 0..per_client {
            let tx = if i % 5 == 0 { format!("shared-{i}") } else { format!("c{c}-{i}") };
            if i % 2 == 1 {
                expected.insert(format!("{tx}-b"));
            }
            expected.insert(tx);
        }
    }
    let rows: Vec<String> = app.stored_events().await.into_iter().map(|(tx, _)| tx).collect();
    let got: HashSet<String> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), got.len(), "no identity twice");
    assert_eq!(got, expected);
}

async fn invalid_events_are_kept_and_recorded_for_the_report(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Storage", "code": "storage",
        "aggregation_type": "sum_agg", "field_name": "gb", "filters": [{"key": "region", "values": ["eu", "us"]}]}}),
    )
    .await
    .expect(200);
    let mut unknown = event("unknown-code", "s");
    unknown["code"] = json!("nope");
    let mut missing = event("missing-prop", "s");
    missing["properties"] = json!({"region": "eu"});
    let mut not_number = event("not-number", "s");
    not_number["properties"] = json!({"gb": "a lot"});
    let mut bad_filter = event("bad-filter", "s");
    bad_filter["properties"] = json!({"gb": 3, "region": "ap"});
    let good = event("good", "s");
    app.post("/api/v1/events/batch", &json!({"events": [unknown, missing, not_number, bad_filter, good]}))
        .await
        .expect(200);
    assert_eq!(stored(&app).await, 5, "invalid events are kept");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rows: Vec<(String, String)>;
    loop {
        rows = sqlx::query_as("SELECT transaction_id, kind FROM event_errors ORDER BY transaction_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        if rows.len() >= 4 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows: Vec<(&str, &str)> = rows.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("bad-filter", "invalid_filter_values"),
            ("missing-prop", "missing_aggregation_property"),
            ("not-number", "missing_aggregation_property"),
            ("unknown-code", "invalid_code"),
        ]
    );
}

/// An event without a key its subscription's charge groups by is recorded as `missing_group_key`.
async fn events_missing_a_pricing_group_key_are_recorded(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let metric = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "Storage", "code": "storage",
            "aggregation_type": "sum_agg", "field_name": "gb"}}),
        )
        .await
        .expect(200);
    let metric_id = metric.body["billable_metric"]["lago_id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Grouped", "code": "grouped", "interval": "monthly",
        "amount_cents": 0, "amount_currency": "EUR", "charges": [{"billable_metric_id": metric_id,
        "charge_model": "standard", "properties": {"amount": "1", "pricing_group_keys": ["agent"]}}]}}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "grouped",
        "external_id": "sub-g"}}),
    )
    .await
    .expect(200);
    let mut keyless = event("keyless", "sub-g");
    keyless["properties"] = json!({"gb": 1});
    let mut keyed = event("keyed", "sub-g");
    keyed["properties"] = json!({"gb": 1, "agent": "a"});
    // Another subscription without that charge: no group key needed.
    let mut other = event("other-sub", "sub-other");
    other["properties"] = json!({"gb": 1});
    app.post("/api/v1/events/batch", &json!({"events": [keyless, keyed, other]})).await.expect(200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT transaction_id, kind FROM event_errors").fetch_all(&app.pool).await.unwrap();
        if !rows.is_empty() {
            assert_eq!(rows, [("keyless".to_owned(), "missing_group_key".to_owned())]);
            break;
        }
        assert!(Instant::now() < deadline, "no error recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ingest_metrics_are_exported(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    app.post("/api/v1/events", &json!({"event": event("tx-1", "s")})).await.ok();
    app.post("/api/v1/events", &json!({"event": event("tx-1", "s")})).await.ok();
    app.raw("POST", "/api/v1/events", Some(&app.key), b"{}".to_vec()).await.expect(400);
    app.settle().await;
    let text = String::from_utf8(app.raw("GET", "/metrics", None, vec![]).await.raw).unwrap();
    let by_mode: &[&str] = match mode {
        Mode::Embedded => &["billstream_ingest_batch_rows", "billstream_ingest_flush_duration_seconds"],
        Mode::Scale => &[
            "billstream_sink_batch_rows",
            "billstream_sink_flush_duration_seconds",
            r#"billstream_ingest_events_total{outcome="stored"}"#,
        ],
    };
    for needle in [
        r#"billstream_ingest_events_total{outcome="accepted"}"#,
        r#"billstream_ingest_events_total{outcome="duplicate"}"#,
        r#"billstream_ingest_events_total{outcome="rejected"}"#,
        "billstream_ingest_request_duration_seconds_bucket",
    ]
    .iter()
    .chain(by_mode)
    {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
    if mode == Mode::Scale {
        // From librdkafka's statistics, which arrive every few seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = String::from_utf8(app.raw("GET", "/metrics", None, vec![]).await.raw).unwrap();
            let missing: Vec<&str> = ["billstream_sink_lag_events", "billstream_ingest_produce_retries"]
                .into_iter()
                .filter(|n| !text.contains(n))
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{missing:?} missing from /metrics");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Clients send batches while the server (in scale mode: `all`, serve and sink in one process) is SIGKILLed. After a
/// restart every acknowledged event is stored exactly once, every unacknowledged batch is stored whole or not at all,
/// and resending the unacknowledged ones completes the set without doubles.
async fn sigkill_during_load_loses_no_acknowledged_event(mode: Mode) {
    let db = testkit::TestPostgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    let key = "sigkill-test-key-0001";
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let (scale, probe) = match mode {
        Mode::Embedded => (None, StoreProbe::Postgres(pool.clone())),
        Mode::Scale => {
            let (config, database) = scale_config();
            (Some(config), StoreProbe::ClickHouse { server: testkit::ClickHouseServer::shared(), database })
        }
    };
    let command = || {
        let mut cmd = billstream(dir.path(), port);
        cmd.env("DATABASE_URL", db.url()).env("LAGO_ORG_API_KEY", key);
        if let Some(config) = &scale {
            scale_env(&mut cmd, config);
        }
        cmd
    };
    let (child, _) = start(command(), port).await;

    let batch_size = 50;
    let batch_of = move |client: usize, n: usize| -> Vec<String> {
        (0..batch_size).map(|i| format!("c{client}-b{n}-e{i}")).collect()
    };
    let send = move |txs: Vec<String>| async move {
        // One subscription per client, so that in scale mode the load spreads over the partitions.
        let sub = txs[0].split('-').next().unwrap_or("c").to_owned();
        let events: Vec<Value> = txs.iter().map(|t| event(t, &sub)).collect();
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/v1/events/batch"))
            .bearer_auth(key)
            .json(&json!({"events": events}))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    };
    let mut clients = Vec::new();
    for c in 0..6 {
        clients.push(tokio::spawn(async move {
            let (mut acked, mut unacked) = (Vec::new(), Vec::new());
            for n in 0.. {
                let txs = batch_of(c, n);
                if send(txs.clone()).await {
                    acked.push(txs);
                } else {
                    unacked.push(txs);
                    break;
                }
            }
            (acked, unacked)
        }));
    }
    probe.wait_for(Duration::from_secs(60), "load did not get going", |txs| txs.len() >= 3000).await;
    std::process::Command::new("kill").arg("-KILL").arg(child.id().to_string()).status().unwrap();
    let mut acked = Vec::new();
    let mut unacked = Vec::new();
    for c in clients {
        let (a, u) = c.await.unwrap();
        acked.extend(a);
        unacked.extend(u);
    }
    let mut child = child;
    let _ = child.wait();

    let (child, _) = start(command(), port).await;
    let acked_count: usize = acked.iter().map(Vec::len).sum();
    assert!(acked_count >= 3000 - 6 * batch_size, "acknowledged {acked_count}");
    let all_acked = |txs: &[String]| {
        let present: HashSet<&str> = txs.iter().map(String::as_str).collect();
        acked.iter().flatten().all(|t| present.contains(t.as_str()))
    };
    let rows = probe.wait_for(Duration::from_secs(60), "an acknowledged event is missing", all_acked).await;
    let present: HashSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(rows.len(), present.len(), "no event stored twice");
    assert_eq!(probe.doubles().await, 0, "no event stored twice");
    for batch in &unacked {
        let stored = batch.iter().filter(|t| present.contains(t.as_str())).count();
        assert!(stored == 0 || stored == batch.len(), "an unacknowledged batch is half-stored ({stored})");
    }
    for batch in unacked.clone() {
        assert!(send(batch).await, "resend after restart");
    }
    let expected = (acked.len() + unacked.len()) * batch_size;
    let rows = probe.wait_for(Duration::from_secs(60), "resent events missing", |txs| txs.len() >= expected).await;
    let present: HashSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(rows.len(), present.len());
    assert_eq!(rows.len(), expected);
    assert_eq!(probe.doubles().await, 0);
    crate::binary::terminate(child);
}

/// When the event store cannot take events, the client gets a 503 to retry, and nothing is acknowledged.
#[tokio::test]
async fn unavailable_store_is_a_503() {
    let app = TestApp::new().await;
    // One call first, so the API key is known without the database.
    app.get("/api/v1/events").await.ok();
    app.pool.close().await;
    let r = app.post("/api/v1/events", &json!({"event": event("tx-1", "sub-1")})).await.expect(503);
    assert_eq!(r.body, json!({"status": 503, "error": "Service Unavailable"}));
    let r = app.post("/api/v1/events/batch", &json!({"events": [event("tx-2", "sub-1")]})).await.expect(503);
    assert_eq!(r.body["status"], 503);
    // Any endpoint that needs the database answers the same way, including authentication of a new key.
    app.get("/api/v1/billable_metrics").await.expect(503);
    app.call_as("unknown-key-123", "GET", "/api/v1/events", None).await.expect(503);
}
