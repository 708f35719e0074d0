//! Usage tracking against a local HTTP receiver standing in for Segment's batch endpoint: each tracked event after
//! the API call that causes it, with its properties and nothing financial or personal; the batch format and its
//! write key; a full batch sent before the interval; an endpoint that never answers failing no API call; and the
//! opt-out variables, through the real binary, leaving the receiver without a single request.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use billing::tracking::event::is_forbidden;
use billing::tracking::{Settings, TrackEvent, Tracker};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::TestApp;

const WRITE_KEY: &str = "test-write-key";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A Segment-like batch endpoint on a loopback port that keeps every request.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = requests.clone();
        let router = Router::new().route(
            "/v1/batch",
            post(move |headers: HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    kept.lock().unwrap().push(Received {
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        body: serde_json::from_str(&body).unwrap_or(Value::Null),
                    });
                    axum::Json(json!({"success": true}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url: format!("http://{addr}/v1/batch"), requests }
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Every message received so far, in order.
    fn messages(&self) -> Vec<Value> {
        self.requests().iter().flat_map(|r| r.body["batch"].as_array().cloned().unwrap_or_default()).collect()
    }

    /// The first message named `event` whose properties hold `key: value`, waiting for it.
    async fn wait_for(&self, event: &str, key: &str, value: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| m["event"] == event && &m["properties"][key] == value)
            {
                return m;
            }
            assert!(Instant::now() < deadline, "no {event} with {key} = {value}; got {:#?}", self.messages());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn settings(url: &str, flush_every: Duration) -> Settings {
    Settings::new(url.to_owned(), WRITE_KEY.to_owned(), flush_every, "self")
}

/// Every object key anywhere in `v`.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
        _ => {}
    }
}

#[tokio::test]
async fn each_call_reports_its_event_with_identifiers_only() {
    let receiver = Receiver::start().await;
    let tracker = Tracker::start(settings(&receiver.url, Duration::from_millis(50))).unwrap();
    let app = TestApp::with_tracker(tracker).await;
    let org: Uuid = sqlx::query_scalar("SELECT id FROM organizations").fetch_one(&app.pool).await.unwrap();

    let calls = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
        )
        .await
        .ok()
        .body;
    let m = receiver.wait_for("billable_metric_created", "code", &json!("calls")).await;
    assert_eq!(m["properties"]["name"], "Calls");
    assert_eq!(m["properties"]["aggregation_type"], "count_agg");
    assert_eq!(m["properties"]["aggregation_property"], Value::Null);
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Seats", "code": "seats", "aggregation_type": "max_agg",
                                    "field_name": "seats"}}),
    )
    .await
    .ok();
    let m = receiver.wait_for("billable_metric_created", "code", &json!("seats")).await;
    assert_eq!(m["properties"]["aggregation_property"], "seats");

    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 3000,
                         "amount_currency": "EUR", "pay_in_advance": true, "trial_period": 0,
                         "charges": [{"billable_metric_id": calls["billable_metric"]["lago_id"],
                                      "charge_model": "standard", "properties": {"amount": "0.5"}}]}}),
    )
    .await
    .ok();
    let m = receiver.wait_for("plan_created", "code", &json!("pro")).await;
    let p = &m["properties"];
    assert_eq!((p["plan_interval"].clone(), p["plan_period"].clone()), (json!("monthly"), json!("advance")));
    assert_eq!((p["nb_charges"].clone(), p["nb_standard_charges"].clone()), (json!(1), json!(1)));
    assert_eq!(p["nb_graduated_charges"], 0);

    let customer = app
        .post(
            "/api/v1/customers",
            &json!({"customer": {"external_id": "c1", "name": "Jane Secret", "email": "jane@example.com",
                                 "currency": "EUR", "metadata": [{"key": "vip", "value": "yes",
                                                                  "display_in_invoice": false}]}}),
        )
        .await
        .ok()
        .body;
    let customer_id = customer["customer"]["lago_id"].clone();
    receiver.wait_for("customer_created", "customer_id", &customer_id).await;
    // Updating the customer is no creation.
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c1", "name": "Jane S."}})).await.ok();

    // Anniversary billing: the period runs a month from now, so the termination below always leaves unused days.
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "c1", "plan_code": "pro", "external_id": "s1",
                                 "billing_time": "anniversary"}}),
    )
    .await
    .ok();
    let m = receiver.wait_for("subscription_created", "plan_code", &json!("pro")).await;
    let p = &m["properties"];
    assert_eq!((p["subscription_type"].clone(), p["billing_time"].clone()), (json!("create"), json!("anniversary")));
    assert_eq!((p["customer_id"].clone(), p["plan_name"].clone()), (customer_id.clone(), json!("Pro")));
    // The plan is paid in advance: its first period is invoiced at once.
    let starting = receiver.wait_for("invoice_created", "invoice_type", &json!("subscription")).await;
    let invoices = app.get("/api/v1/invoices?external_customer_id=c1").await.ok().body;
    assert_eq!(starting["properties"]["invoice_id"], invoices["invoices"][0]["lago_id"]);

    app.post(
        "/api/v1/coupons",
        &json!({"coupon": {"name": "Launch", "code": "launch", "coupon_type": "percentage", "percentage_rate": "10",
                           "frequency": "once", "expiration": "no_expiration"}}),
    )
    .await
    .ok();
    let m = receiver.wait_for("coupon_created", "coupon_code", &json!("launch")).await;
    assert_eq!(m["properties"]["coupon_name"], "Launch");
    app.post(
        "/api/v1/applied_coupons",
        &json!({"applied_coupon": {"external_customer_id": "c1", "coupon_code": "launch"}}),
    )
    .await
    .ok();
    let m = receiver.wait_for("applied_coupon_created", "coupon_code", &json!("launch")).await;
    assert_eq!(m["properties"]["customer_id"], customer_id);

    app.post(
        "/api/v1/add_ons",
        &json!({"add_on": {"name": "Setup", "code": "setup", "amount_cents": 50000, "amount_currency": "EUR",
                           "invoice_display_name": "Setup fee"}}),
    )
    .await
    .ok();
    let m = receiver.wait_for("add_on_created", "addon_code", &json!("setup")).await;
    assert_eq!(m["properties"]["addon_invoice_display_name"], "Setup fee");
    let one_off = app
        .post(
            "/api/v1/invoices",
            &json!({"invoice": {"external_customer_id": "c1", "currency": "EUR",
                                "fees": [{"add_on_code": "setup", "units": 1}]}}),
        )
        .await
        .ok()
        .body;
    let one_off_id = one_off["invoice"]["lago_id"].clone();
    let m = receiver.wait_for("applied_add_on_created", "addon_code", &json!("setup")).await;
    assert_eq!(
        (m["properties"]["customer_id"].clone(), m["properties"]["addon_name"].clone()),
        (customer_id.clone(), json!("Setup"))
    );
    let m = receiver.wait_for("invoice_created", "invoice_id", &one_off_id).await;
    assert_eq!(m["properties"]["invoice_type"], "one_off");

    let path = format!("/api/v1/invoices/{}", one_off_id.as_str().unwrap());
    app.put(&path, &json!({"invoice": {"payment_status": "succeeded"}})).await.ok();
    let m = receiver.wait_for("payment_status_changed", "invoice_id", &one_off_id).await;
    assert_eq!(m["properties"]["payment_status"], "succeeded");

    // Terminating a plan paid in advance gives its unused days back on a credit note.
    app.delete("/api/v1/subscriptions/s1").await.ok();
    let m = receiver.wait_for("credit_note_issued", "invoice_id", &starting["properties"]["invoice_id"]).await;
    assert_eq!(m["properties"]["credit_note_method"], "credit");
    let notes = app.get("/api/v1/credit_notes").await.ok().body;
    assert_eq!(m["properties"]["credit_note_id"], notes["credit_notes"][0]["lago_id"]);

    app.delete("/api/v1/billable_metrics/seats").await.ok();
    receiver.wait_for("billable_metric_deleted", "code", &json!("seats")).await;
    app.delete("/api/v1/plans/pro").await.ok();
    receiver.wait_for("plan_deleted", "code", &json!("pro")).await;
    app.delete("/api/v1/customers/c1").await.ok();
    receiver.wait_for("customer_deleted", "customer_id", &customer_id).await;

    let messages = receiver.messages();
    let names: BTreeSet<&str> = messages.iter().filter_map(|m| m["event"].as_str()).collect();
    let expected: BTreeSet<&str> = [
        "billable_metric_created",
        "billable_metric_deleted",
        "plan_created",
        "plan_deleted",
        "customer_created",
        "customer_deleted",
        "subscription_created",
        "coupon_created",
        "applied_coupon_created",
        "add_on_created",
        "applied_add_on_created",
        "invoice_created",
        "payment_status_changed",
        "credit_note_issued",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, expected);
    assert_eq!(messages.iter().filter(|m| m["event"] == "customer_created").count(), 1, "an update is no creation");
    for m in &messages {
        assert_eq!(m["type"], "track");
        assert_eq!(m["userId"], format!("organization/{org}"));
        assert_eq!(m["properties"]["organization_id"], org.to_string());
        assert_eq!(m["properties"]["hosting_type"], "self");
        assert!(m["properties"]["version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(m["messageId"].is_string() && m["timestamp"].is_string());
        let mut all = Vec::new();
        keys(&m["properties"], &mut all);
        for k in all {
            assert!(!is_forbidden(&k), "{} carries {k}", m["event"]);
        }
        let text = m.to_string();
        for secret in ["Jane", "jane@example.com", "vip"] {
            assert!(!text.contains(secret), "{} carries {secret}: {text}", m["event"]);
        }
    }
    let expected_auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:")));
    for r in receiver.requests() {
        assert_eq!(r.authorization.as_deref(), Some(expected_auth.as_str()), "the write key is the basic-auth user");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert!(r.body["batch"].is_array() && r.body["sentAt"].is_string(), "Segment's batch format: {}", r.body);
    }
}

#[tokio::test]
async fn a_full_batch_goes_at_once_and_the_rest_at_the_flush() {
    let receiver = Receiver::start().await;
    // An interval no test waits for: only a full batch, or the flush, sends.
    let tracker = Tracker::start(settings(&receiver.url, Duration::from_secs(3600))).unwrap();
    let org = Uuid::new_v4();
    for i in 0..250 {
        tracker.track(org, || TrackEvent::CouponCreated { coupon_code: format!("c{i}"), coupon_name: "C".into() });
    }
    // The first full batch wakes the sender, which sends the whole queue without waiting for the interval.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.messages().len() < 250 {
        assert!(Instant::now() < deadline, "full batches were not sent at once: {}", receiver.messages().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sizes = |r: &Receiver| -> Vec<usize> {
        r.requests().iter().map(|r| r.body["batch"].as_array().map_or(0, Vec::len)).collect()
    };
    assert_eq!(sizes(&receiver), vec![100, 100, 50]);
    let codes: Vec<String> = receiver
        .messages()
        .iter()
        .map(|m| m["properties"]["coupon_code"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(codes, (0..250).map(|i| format!("c{i}")).collect::<Vec<_>>(), "oldest first, none lost");

    // Less than a batch waits for the interval, or for a flush.
    for i in 0..30 {
        tracker.track(org, || TrackEvent::CouponCreated { coupon_code: format!("d{i}"), coupon_name: "D".into() });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests().len(), 3, "a partial batch is not sent before its time");
    tracker.flush(Duration::from_secs(5)).await;
    assert_eq!(sizes(&receiver), vec![100, 100, 50, 30]);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_fails_no_call() {
    // Accepts connections and never answers a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut s = settings(&format!("http://{addr}/v1/batch"), Duration::from_millis(10));
    s.queue_capacity = 5;
    let app = TestApp::with_tracker(Tracker::start(s).unwrap()).await;
    for i in 0..30 {
        let code = format!("m{i}");
        let r = app
            .post(
                "/api/v1/billable_metrics",
                &json!({"billable_metric": {"name": code, "code": code, "aggregation_type": "count_agg"}}),
            )
            .await;
        assert_eq!(r.status, 200, "call {i} while the tracking endpoint hangs");
    }
    let list = app.get("/api/v1/billable_metrics?per_page=100").await.ok().body;
    assert_eq!(list["meta"]["total_count"], 30);
}

/// `billstream org create` reports `organization_registered`, unless either opt-out variable says `true`: then the
/// receiver gets no request at all.
#[tokio::test]
async fn the_opt_out_variables_leave_the_receiver_without_a_request() {
    let db = testkit::TestPostgres::shared().database();
    let receiver = Receiver::start().await;
    let run = |opt_out: Option<(&'static str, &'static str)>, name: &'static str| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = crate::binary::billstream(dir.path(), 0);
        cmd.env("DATABASE_URL", db.url())
            .env("BILLSTREAM_TRACKING_URL", &receiver.url)
            .env("BILLSTREAM_TRACKING_WRITE_KEY", WRITE_KEY)
            .env("BILLSTREAM_TRACKING_FLUSH_SECONDS", "0.05")
            .args(["org", "create", "--name", name]);
        if let Some((var, value)) = opt_out {
            cmd.env(var, value);
        }
        async move {
            let out = tokio::process::Command::from(cmd).output().await.expect("run billstream org create");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            drop(dir);
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    run(Some(("LAGO_DISABLE_SEGMENT", "true")), "Quiet one").await;
    run(Some(("BILLSTREAM_DISABLE_TRACKING", "true")), "Quiet two").await;
    // The command has exited: a request it would have sent has been received.
    assert_eq!(receiver.requests().len(), 0, "opted out: nothing is sent");

    let out = run(None, "Tracked").await;
    let org = out
        .lines()
        .find_map(|l| l.strip_prefix("organization: Tracked ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .expect("the new organization's id")
        .to_owned();
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["event"], "organization_registered");
    assert_eq!(messages[0]["properties"]["organization_id"], org);
    assert!(!messages[0].to_string().contains("Tracked"), "the organization's name is not sent");
}
