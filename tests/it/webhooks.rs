//! Webhooks end to end: endpoints through the API, a real HTTP receiver on loopback that checks both signatures the
//! way Lago's documentation tells integrators to, delivery under faults (a 500, a refused connection, a worker
//! SIGKILLed while sending), the hourly events.errors report in both event stores, and invoice webhooks whose
//! object is the one `GET /invoices/{id}` renders.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use billing::clock::{Clock, ManualClock, SystemClock};
use billing::webhooks::dispatcher::{self, Settings};
use chrono::Utc;
use serde_json::{Value, json};

use crate::openapi::check_webhook;
use crate::support::{Mode, TestApp, in_both_modes};

const ISSUER: &str = "http://billstream.test";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }
}

/// What the receiver answers next.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Never answers (the sender is stopped while waiting).
    Hang,
}

#[derive(Default)]
struct Inner {
    got: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
}

/// A webhook receiver: a real HTTP server on 127.0.0.1 that records every request and answers as scripted (200
/// once the script is used up).
#[derive(Clone)]
struct Receiver {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl Receiver {
    async fn start() -> Receiver {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    async fn start_on(listener: tokio::net::TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().fallback(receive).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { inner, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn then(&self, replies: &[Reply]) {
        self.inner.script.lock().unwrap().extend(replies.iter().copied());
    }

    fn got(&self) -> Vec<Received> {
        self.inner.got.lock().unwrap().clone()
    }

    /// Polls until `done` holds for the requests received so far.
    async fn wait(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got();
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{what}: not received in time; got {got:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for_type(&self, webhook_type: &str, n: usize) -> Vec<Received> {
        let of_type = |got: &[Received]| -> Vec<Received> {
            got.iter().filter(|r| r.json()["webhook_type"] == webhook_type).cloned().collect()
        };
        let got = self.wait(webhook_type, |got| of_type(got).len() >= n).await;
        of_type(&got)
    }
}

async fn receive(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    inner.got.lock().unwrap().push(Received { path: uri.path().to_owned(), headers, body });
    let reply = inner.script.lock().unwrap().pop_front().unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap(),
        Reply::Hang => std::future::pending().await,
    }
}

/// Settings that make tests quick: many attempts, a 20 ms backoff unit, short polls.
fn fast() -> Settings {
    Settings {
        attempts: 10,
        timeout: Duration::from_secs(5),
        backoff_unit: Duration::from_millis(20),
        poll: Duration::from_millis(20),
        batch: 20,
        issuer: ISSUER.into(),
        report_every: Duration::from_millis(50),
        termination_alert_days: vec![15, 45],
    }
}

/// Runs a dispatcher for `app` until the returned task is aborted.
fn dispatch(app: &TestApp, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(dispatcher::run(app.pool.clone(), fast(), clock))
}

/// A `billstream` child process, killed when the test ends however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn add_endpoint(app: &TestApp, url: &str, algo: &str) -> String {
    let body = json!({"webhook_endpoint": {"webhook_url": url, "signature_algo": algo}});
    let r = app.post("/api/v1/webhook_endpoints", &body).await.expect(200);
    r.body["webhook_endpoint"]["lago_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn endpoints_are_created_listed_updated_and_deleted_with_lagos_validation() {
    let app = TestApp::new().await;
    let created = app
        .post("/api/v1/webhook_endpoints", &json!({"webhook_endpoint": {"webhook_url": "https://a.example/h"}}))
        .await;
    let e = created.expect(200).body["webhook_endpoint"].clone();
    assert_eq!((e["signature_algo"].clone(), e["event_types"].clone()), (json!("jwt"), Value::Null), "Lago's defaults");
    let id = e["lago_id"].as_str().unwrap().to_owned();
    let second = json!({"webhook_endpoint": {"webhook_url": "https://b.example/h", "signature_algo": "hmac",
        "name": "B", "event_types": ["invoice.created", " Customer.Created ", "invoice.created"]}});
    let b = app.post("/api/v1/webhook_endpoints", &second).await.expect(200).body["webhook_endpoint"].clone();
    assert_eq!(b["event_types"], json!(["invoice.created", "customer.created"]));

    let list = app.get("/api/v1/webhook_endpoints?per_page=1&page=2").await.expect(200);
    assert_eq!(list.body["webhook_endpoints"][0]["webhook_url"], "https://b.example/h");
    assert_eq!(list.body["meta"]["total_count"], 2);
    assert_eq!(app.get(&format!("/api/v1/webhook_endpoints/{id}")).await.expect(200).body["webhook_endpoint"], e);
    let put = json!({"webhook_endpoint": {"webhook_url": "https://a.example/v2", "event_types": ["*"]}});
    let updated = app.put(&format!("/api/v1/webhook_endpoints/{id}"), &put).await.expect(200);
    assert_eq!(updated.body["webhook_endpoint"]["webhook_url"], "https://a.example/v2");
    assert_eq!(updated.body["webhook_endpoint"]["signature_algo"], "jwt");

    // Lago's 422s, every field at once.
    let bad = json!({"webhook_endpoint": {"webhook_url": "ftp://x", "signature_algo": "md5", "event_types": "all"}});
    let r = app.post("/api/v1/webhook_endpoints", &bad).await.expect(422);
    assert_eq!(r.body["code"], "validation_errors");
    assert_eq!(
        r.body["error_details"],
        json!({"webhook_url": ["url_is_invalid"], "signature_algo": ["value_is_invalid"],
               "event_types": ["must_be_array"]})
    );
    let r = app.post("/api/v1/webhook_endpoints", &json!({"webhook_endpoint": {"name": "no url"}})).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"webhook_url": ["value_is_mandatory"]}));
    let dup = json!({"webhook_endpoint": {"webhook_url": "https://b.example/h"}});
    let r = app.post("/api/v1/webhook_endpoints", &dup).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"webhook_url": ["value_already_exist"]}));
    let typo = json!({"webhook_endpoint": {"webhook_url": "https://c.example", "event_types": ["wrong.type"]}});
    let r = app.post("/api/v1/webhook_endpoints", &typo).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"event_types": ["contains invalid types: [\"wrong.type\"]"]}));
    for i in 2..10 {
        let body = json!({"webhook_endpoint": {"webhook_url": format!("https://n{i}.example")}});
        app.post("/api/v1/webhook_endpoints", &body).await.expect(200);
    }
    let over = json!({"webhook_endpoint": {"webhook_url": "https://x.example"}});
    let r = app.post("/api/v1/webhook_endpoints", &over).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"base": ["exceeded_limit"]}));

    app.delete(&format!("/api/v1/webhook_endpoints/{id}")).await.expect(200);
    let gone = app.get(&format!("/api/v1/webhook_endpoints/{id}")).await.expect(404);
    assert_eq!(gone.body["code"], "webhook_endpoint_not_found");
    // Another organization sees none of them.
    let other = app.new_org("Other").await;
    let theirs = app.call_as(&other, "GET", "/api/v1/webhook_endpoints", None).await.expect(200);
    assert_eq!(theirs.body["meta"]["total_count"], 0);
}

/// Both signatures, verified as Lago's documentation tells integrators: HMAC with the organization's `hmac_key`
/// over the raw body; JWT with the public key from `GET /webhooks/public_key` (base64 of a PEM), RS256, `data`
/// equal to the raw body and `iss` the configured URL.
#[tokio::test]
async fn hmac_and_jwt_signatures_verify_as_lago_documents() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url("/hmac"), "hmac").await;
    add_endpoint(&app, &receiver.url("/jwt"), "jwt").await;
    let _dispatcher = Aborting(dispatch(&app, Arc::new(SystemClock)));
    let customer = json!({"customer": {"external_id": "cust-1", "name": "Ada", "currency": "EUR"}});
    app.post("/api/v1/customers", &customer).await.expect(200);

    let got = receiver.wait_for_type("customer.created", 2).await;
    let hmac_key = app.get("/api/v1/organizations").await.expect(200).body["organization"]["hmac_key"]
        .as_str()
        .expect("the organization's hmac_key")
        .to_owned();
    let public_key = app.get("/api/v1/webhooks/public_key").await.expect(200).raw;
    let json_key = app.get("/api/v1/webhooks/json_public_key").await.expect(200);
    assert_eq!(json_key.body["webhook"]["public_key"].as_str().unwrap().as_bytes(), public_key.as_slice());
    let compact: String = String::from_utf8(public_key).unwrap().split_whitespace().collect();
    let pem = String::from_utf8(STANDARD.decode(compact).unwrap()).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");

    let shown = app.get("/api/v1/customers/cust-1").await.expect(200).body["customer"].clone();
    let mut keys = Vec::new();
    for r in &got {
        let body = r.json();
        check_webhook(&body);
        assert_eq!(body["object_type"], "customer");
        assert_eq!(body["customer"], shown, "the object as GET /customers renders it");
        assert_eq!(r.header("x-lago-signature-algorithm"), r.path.trim_start_matches('/'));
        keys.push(r.header("x-lago-unique-key"));
        let signature = r.header("x-lago-signature");
        match r.path.as_str() {
            "/hmac" => {
                use hmac::{KeyInit, Mac};
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(hmac_key.as_bytes()).unwrap();
                mac.update(&r.body);
                assert_eq!(signature, STANDARD.encode(mac.finalize().into_bytes()), "HMAC signature");
            }
            "/jwt" => {
                let claims = verify_rs256(&signature, &pem);
                assert_eq!(claims["data"].as_str().unwrap().as_bytes(), &r.body[..], "`data` is the raw body");
                assert_eq!(claims["iss"], ISSUER);
            }
            other => panic!("unexpected path {other}"),
        }
    }
    assert_ne!(keys[0], keys[1], "one unique key per endpoint's webhook");
}

/// An RS256 JWT checked with the public key: header, signature over `header.claims`, and the claims returned.
fn verify_rs256(token: &str, public_pem: &str) -> Value {
    use pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = rsa::PublicKey::from_public_key_pem(public_pem).expect("a PEM public key");
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
    let signature =
        rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).expect("signature");
    verifier.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).expect("a valid RS256 signature");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// Lists the webhooks of an endpoint through the API.
async fn webhooks_of(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/webhook_endpoints/{endpoint}/webhooks")).await.expect(200);
    r.body["webhooks"].as_array().unwrap().clone()
}

async fn wait_status(app: &TestApp, endpoint: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hooks = webhooks_of(app, endpoint).await;
        if let Some(w) = hooks.iter().find(|w| w["status"] == status) {
            return w.clone();
        }
        assert!(Instant::now() < deadline, "no webhook became {status}: {hooks:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_500_is_retried_and_both_attempts_are_recorded() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    receiver.then(&[Reply::Status(500)]);
    let endpoint = add_endpoint(&app, &receiver.url("/h"), "hmac").await;
    let _dispatcher = Aborting(dispatch(&app, Arc::new(SystemClock)));
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c"}})).await.expect(200);

    let w = wait_status(&app, &endpoint, "succeeded").await;
    let got = receiver.got();
    assert_eq!(got.len(), 2, "sent once more after the 500");
    assert_eq!(got[0].body, got[1].body, "a retry sends the same bytes");
    assert_eq!(got[0].header("x-lago-unique-key"), got[1].header("x-lago-unique-key"));
    assert_eq!(w["lago_id"], got[0].header("x-lago-unique-key"));
    assert_eq!((w["retries"].clone(), w["http_status"].clone()), (json!(1), json!(200)));
    let attempts: Vec<Value> = w["attempts"].as_array().unwrap().iter().map(|a| a["http_status"].clone()).collect();
    assert_eq!(attempts, [json!(500), json!(200)]);
    assert_eq!(w["payload"]["webhook_type"], "customer.created");

    // A succeeded webhook is not sent again (Lago's 405); an unknown one is a 404.
    let id = w["lago_id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/webhooks/{id}/retry"), &json!({})).await.expect(405);
    assert_eq!(r.body["code"], "is_succeeded");
    app.post(&format!("/api/v1/webhooks/{}/retry", uuid::Uuid::new_v4()), &json!({})).await.expect(404);

    // Kept 90 days after its last change, as in Lago.
    assert_eq!(dispatcher::clean_up(&app.pool, Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + chrono::Duration::days(91);
    assert_eq!(dispatcher::clean_up(&app.pool, later).await.unwrap(), 1);
    assert!(webhooks_of(&app, &endpoint).await.is_empty());
}

#[tokio::test]
async fn a_failed_webhook_can_be_sent_again_through_the_api() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    receiver.then(&[Reply::Status(503); 10]);
    let endpoint = add_endpoint(&app, &receiver.url("/h"), "jwt").await;
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c"}})).await.expect(200);
    // Two attempts in all: both fail.
    let settings = Settings { attempts: 2, ..fast() };
    let task = Aborting(tokio::spawn(dispatcher::run(app.pool.clone(), settings, Arc::new(SystemClock))));
    let failed = wait_status(&app, &endpoint, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 2);
    receiver.inner.script.lock().unwrap().clear();
    let id = failed["lago_id"].as_str().unwrap();
    app.post(&format!("/api/v1/webhooks/{id}/retry"), &json!({})).await.expect(200);
    let ok = wait_status(&app, &endpoint, "succeeded").await;
    assert_eq!(ok["attempts"].as_array().unwrap().len(), 3);
    drop(task);
}

#[tokio::test]
async fn a_refused_endpoint_gets_the_webhook_once_it_is_back() {
    let app = TestApp::new().await;
    // Reserve a port, then close it: connections are refused until the receiver starts on it.
    let port = testkit::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}/h");
    let endpoint = add_endpoint(&app, &url, "hmac").await;
    let _dispatcher = Aborting(dispatch(&app, Arc::new(SystemClock)));
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c"}})).await.expect(200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let hooks = webhooks_of(&app, &endpoint).await;
        if hooks.first().is_some_and(|w| w["attempts"].as_array().unwrap().len() >= 2) {
            break hooks[0].clone();
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {hooks:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused["status"], "retrying");
    assert!(refused["attempts"][0]["error"].as_str().unwrap().starts_with("connection failed"), "{refused}");

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let receiver = Receiver::start_on(listener).await;
    let got = receiver.wait_for_type("customer.created", 1).await;
    assert_eq!(got[0].header("x-lago-unique-key"), refused["lago_id"]);
    wait_status(&app, &endpoint, "succeeded").await;
}

/// A worker process SIGKILLed while its POST waits for an answer: the webhook is not lost; the next worker sends it
/// again with the same unique key.
#[tokio::test]
async fn a_worker_killed_while_sending_loses_no_webhook() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    receiver.then(&[Reply::Hang]);
    let endpoint = add_endpoint(&app, &receiver.url("/h"), "hmac").await;
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c"}})).await.expect(200);

    let dir = tempfile::tempdir().unwrap();
    let worker = || {
        let mut cmd = crate::binary::billstream(dir.path(), testkit::free_port().unwrap());
        cmd.arg("worker")
            .env("DATABASE_URL", app.database_url())
            .env("LAGO_API_URL", ISSUER)
            .env("BILLSTREAM_WEBHOOK_POLL_MS", "20")
            .env("BILLSTREAM_WEBHOOK_BACKOFF_MS", "20")
            .env("BILLSTREAM_BILLING_TICK_SECONDS", "3600");
        Child(cmd.spawn().expect("spawn a worker"))
    };
    let mut first = worker();
    receiver.wait("the first POST", |got| !got.is_empty()).await;
    // SIGKILL: no chance to finish or roll back anything itself.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let hooks = webhooks_of(&app, &endpoint).await;
    assert_eq!(hooks[0]["status"], "pending", "the claim died with the worker");
    assert!(hooks[0]["attempts"].as_array().unwrap().is_empty());

    let second = worker();
    let got = receiver.wait("the POST again", |got| got.len() >= 2).await;
    let done = wait_status(&app, &endpoint, "succeeded").await;
    drop(second);
    assert_eq!(got[0].header("x-lago-unique-key"), got[1].header("x-lago-unique-key"));
    assert_eq!(done["lago_id"], got[1].header("x-lago-unique-key"));
}

in_both_modes!(
    invalid_events_make_one_events_errors_webhook_an_hour,
    an_event_sent_again_is_acknowledged_and_reported_by_event_error,
);

/// An unknown code, a missing aggregation property and a missing group key, in one hour: one `events.errors`
/// webhook with the three lists, issued once the hour is over (time from the worker's clock).
async fn invalid_events_make_one_events_errors_webhook_an_hour(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url("/h"), "hmac").await;
    let metric = json!({"billable_metric": {"name": "Storage", "code": "storage", "aggregation_type": "sum_agg",
                                            "field_name": "gb"}});
    let metric_id =
        app.post("/api/v1/billable_metrics", &metric).await.expect(200).body["billable_metric"]["lago_id"].clone();
    let plan = json!({"plan": {"name": "G", "code": "g", "interval": "monthly", "amount_cents": 0,
        "amount_currency": "EUR", "charges": [{"billable_metric_id": metric_id, "charge_model": "standard",
        "properties": {"amount": "1", "pricing_group_keys": ["region"]}}]}});
    app.post("/api/v1/plans", &plan).await.expect(200);
    let sub = json!({"subscription": {"external_customer_id": "acme", "plan_code": "g", "external_id": "sub"}});
    app.post("/api/v1/subscriptions", &sub).await.expect(200);
    let event = |tx: &str, code: &str, props: Value| json!({"transaction_id": tx, "external_subscription_id": "sub", "code": code, "properties": props});
    let events = json!({"events": [
        event("unknown", "nope", json!({})),
        event("no-gb", "storage", json!({"region": "eu"})),
        event("no-region", "storage", json!({"gb": 1})),
        event("fine", "storage", json!({"gb": 1, "region": "eu"})),
    ]});
    app.post("/api/v1/events/batch", &events).await.expect(200);
    app.settle().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_errors").fetch_one(&app.pool).await.unwrap() < 3 {
        assert!(Instant::now() < deadline, "the invalid events were not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The worker's clock is still in this hour: nothing is reported yet.
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let _dispatcher = Aborting(dispatch(&app, clock.clone()));
    let reports = || receiver.got().iter().filter(|r| r.json()["webhook_type"] == "events.errors").count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reports(), 0, "reported before the hour was over");
    clock.set(Utc::now() + chrono::Duration::hours(2));
    let got = receiver.wait_for_type("events.errors", 1).await;
    let body = got[0].json();
    check_webhook(&body);
    assert_eq!(body["object_type"], "events_errors");
    assert_eq!(
        body["events_errors"],
        json!({"invalid_code": ["unknown"], "missing_aggregation_property": ["no-gb"],
               "missing_group_key": ["no-region"], "invalid_filter_values": []})
    );
    // Later looks at the same hour report nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reports(), 1);
}

/// An event sent again with an identity already stored (a second request, or twice in one batch) is acknowledged,
/// stored once, and each extra sending gets an `event.error` webhook with Lago's error and the event as sent.
async fn an_event_sent_again_is_acknowledged_and_reported_by_event_error(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url("/h"), "hmac").await;
    let event = |n: i64| {
        json!({"transaction_id": "tx-1", "external_subscription_id": "sub", "code": "calls",
                                "timestamp": 1_700_000_000 + n, "properties": {"n": n}})
    };
    app.post("/api/v1/events", &json!({ "event": event(1) })).await.expect(200);
    app.settle().await;
    app.post("/api/v1/events", &json!({ "event": event(2) })).await.expect(200);
    let other = json!({"transaction_id": "tx-2", "external_subscription_id": "sub", "code": "calls"});
    app.post("/api/v1/events/batch", &json!({"events": [other, event(3)]})).await.expect(200);
    app.settle().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_duplicates").fetch_one(&app.pool).await.unwrap() < 2
    {
        assert!(Instant::now() < deadline, "the duplicates were not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _dispatcher = Aborting(dispatch(&app, Arc::new(ManualClock::new(Utc::now()))));
    let got = receiver.wait_for_type("event.error", 2).await;
    let mut sent: Vec<Value> = got.iter().map(|r| r.json()).collect();
    sent.sort_by_key(|b| b["event_error"]["event"]["properties"]["n"].as_i64());
    for (body, n) in sent.iter().zip([2, 3]) {
        check_webhook(body);
        assert_eq!(body["object_type"], "event_error");
        let error = &body["event_error"];
        assert_eq!((error["status"].clone(), error["error"].clone()), (json!(422), json!("Unprocessable entity")));
        assert_eq!(error["message"], r#"{"transaction_id":["value_already_exist"]}"#);
        assert_eq!(error["event"]["transaction_id"], "tx-1");
        assert_eq!(error["event"]["properties"], json!({ "n": n }), "the event as sent again");
    }
    // The first sending is the one stored.
    let stored = app.get("/api/v1/events/tx-1").await.expect(200);
    assert_eq!(stored.body["event"]["properties"], json!({"n": 1}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().iter().filter(|r| r.json()["webhook_type"] == "event.error").count(), 2);
}

/// The billing run and a termination send `invoice.created` with the invoice as `GET /invoices/{id}` renders it,
/// and the subscription's `subscription.started` and `subscription.terminated`.
#[tokio::test]
async fn billing_and_termination_send_invoice_created_with_the_api_object() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url("/h"), "hmac").await;
    let plan = json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 3100,
                               "amount_currency": "USD"}});
    app.post("/api/v1/plans", &plan).await.expect(200);
    let sub = json!({"subscription": {"external_customer_id": "c", "plan_code": "p", "external_id": "s",
                                      "subscription_at": "2025-01-10T10:00:00Z"}});
    app.post("/api/v1/subscriptions", &sub).await.expect(200);
    let store = aggregate::postgres::PgEventStore::new(app.pool.clone());
    let at = "2025-02-01T00:00:05Z".parse().unwrap();
    assert_eq!(billing::clock::tick(&app.pool, &store, &app.tracker, at).await.unwrap().invoices, 1);
    app.delete("/api/v1/subscriptions/s").await.expect(200);
    let _dispatcher = Aborting(dispatch(&app, Arc::new(SystemClock)));

    let invoices = receiver.wait_for_type("invoice.created", 2).await;
    for r in &invoices {
        let body = r.json();
        check_webhook(&body);
        let id = body["invoice"]["lago_id"].as_str().unwrap();
        let shown = app.get(&format!("/api/v1/invoices/{id}")).await.expect(200);
        assert_eq!(body["invoice"], shown.body["invoice"], "the invoice as the API renders it");
    }
    let reasons: Vec<Value> = invoices.iter().map(|r| r.json()["invoice"]["fees_amount_cents"].clone()).collect();
    assert_eq!(reasons.len(), 2);
    let started = receiver.wait_for_type("subscription.started", 1).await;
    assert_eq!(started[0].json()["subscription"]["external_id"], "s");
    let terminated = receiver.wait_for_type("subscription.terminated", 1).await;
    assert_eq!(terminated[0].json()["subscription"]["status"], "terminated");
    let customers = receiver.wait_for_type("customer.created", 1).await;
    assert_eq!(customers[0].json()["customer"]["external_id"], "c");
}

/// The other invoice webhooks, each with its object as the API renders it: a draft (`invoice.drafted`), finalized
/// by the clock (`invoice.created`), voided (`invoice.voided`); a one-off invoice (`invoice.one_off_created`); an event of
/// a charge paid in advance (`invoice.created` and `fee.created`); a customer updated. Delivery is counted in
/// `/metrics`.
#[tokio::test]
async fn drafts_voids_one_offs_fees_paid_in_advance_and_customer_updates_send_their_webhooks() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url("/h"), "jwt").await;
    let grace = json!({"customer": {"external_id": "c", "currency": "EUR",
                                    "billing_configuration": {"invoice_grace_period": 2}}});
    app.post("/api/v1/customers", &grace).await.expect(200);
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "c", "name": "Renamed"}})).await.expect(200);
    let seats = json!({"billable_metric": {"name": "Seats", "code": "seats", "aggregation_type": "count_agg"}});
    let seats =
        app.post("/api/v1/billable_metrics", &seats).await.expect(200).body["billable_metric"]["lago_id"].clone();
    let plan = json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 1000,
        "amount_currency": "EUR", "charges": [{"billable_metric_id": seats, "charge_model": "standard",
        "pay_in_advance": true, "invoiceable": true, "properties": {"amount": "2"}}]}});
    app.post("/api/v1/plans", &plan).await.expect(200);
    let sub = json!({"subscription": {"external_customer_id": "c", "plan_code": "p", "external_id": "s",
                                      "subscription_at": "2025-01-10T10:00:00Z"}});
    app.post("/api/v1/subscriptions", &sub).await.expect(200);
    let store = aggregate::postgres::PgEventStore::new(app.pool.clone());
    let at = "2025-02-01T00:00:05Z".parse().unwrap();
    let _dispatcher = Aborting(dispatch(&app, Arc::new(SystemClock)));
    billing::clock::tick(&app.pool, &store, &app.tracker, at).await.unwrap();
    // Objects are rendered when first sent: wait for the draft before the clock finalizes it.
    let drafted = receiver.wait_for_type("invoice.drafted", 1).await[0].json();
    let draft_id = drafted["invoice"]["lago_id"].as_str().unwrap().to_owned();
    assert_eq!(drafted["invoice"]["status"], "draft");
    let event = json!({"event": {"transaction_id": "seat-1", "external_subscription_id": "s", "code": "seats"}});
    app.post("/api/v1/events", &event).await.expect(200);
    billing::clock::tick(&app.pool, &store, &app.tracker, Utc::now()).await.unwrap();
    let add_on = json!({"add_on": {"name": "Setup", "code": "setup", "amount_cents": 5000, "amount_currency": "EUR"}});
    app.post("/api/v1/add_ons", &add_on).await.expect(200);
    let one_off =
        json!({"invoice": {"external_customer_id": "c", "currency": "EUR", "fees": [{"add_on_code": "setup"}]}});
    app.post("/api/v1/invoices", &one_off).await.expect(200);
    app.post(&format!("/api/v1/invoices/{draft_id}/void"), &json!({})).await.expect(200);
    let voided = receiver.wait_for_type("invoice.voided", 1).await[0].json();
    assert_eq!(voided["invoice"]["lago_id"], draft_id.as_str());
    let created = receiver.wait_for_type("invoice.created", 2).await;
    let fee = receiver.wait_for_type("fee.created", 1).await[0].json();
    let one_off = receiver.wait_for_type("invoice.one_off_created", 1).await[0].json();
    assert_eq!(one_off["invoice"]["invoice_type"], "one_off");
    let updated = receiver.wait_for_type("customer.updated", 1).await[0].json();
    assert_eq!(updated["customer"]["name"], "Renamed");

    let in_advance = created
        .iter()
        .map(Received::json)
        .find(|b| b["invoice"]["invoice_type"] == "subscription" && b["invoice"]["lago_id"] != draft_id.as_str());
    let in_advance = in_advance.expect("the invoice of the event paid in advance");
    let fee_of_invoice =
        in_advance["invoice"]["fees"].as_array().unwrap().iter().find(|f| f["lago_id"] == fee["fee"]["lago_id"]);
    assert_eq!(fee_of_invoice, Some(&fee["fee"]), "the fee as its invoice renders it");
    for body in [&drafted, &voided, &fee, &one_off, &updated, &in_advance] {
        check_webhook(body);
    }
    for body in [&drafted, &voided, &one_off] {
        let id = body["invoice"]["lago_id"].as_str().unwrap();
        let shown = app.get(&format!("/api/v1/invoices/{id}")).await.expect(200).body["invoice"].clone();
        if body["webhook_type"] != "invoice.drafted" {
            assert_eq!(body["invoice"], shown);
        }
    }
    let metrics = String::from_utf8(app.get("/metrics").await.expect(200).raw).unwrap();
    assert!(metrics.contains("billstream_webhooks_sent_total{status=\"succeeded\"}"), "{metrics}");
    assert!(metrics.contains("billstream_webhook_delivery_seconds_bucket"));
}

/// A subscription ending in 15 days gets one `subscription.termination_alert` that day, however often the worker
/// looks; one ending in 20 days gets none.
#[tokio::test]
async fn a_subscription_ending_in_fifteen_days_gets_one_termination_alert() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    let plan = json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 100,
                               "amount_currency": "EUR"}});
    app.post("/api/v1/plans", &plan).await.expect(200);
    let now = Utc::now();
    for (id, days) in [("soon", 15), ("later", 20)] {
        let ending_at = (now + chrono::Duration::days(days)).to_rfc3339();
        let sub = json!({"subscription": {"external_customer_id": "c", "plan_code": "p", "external_id": id,
                                          "ending_at": ending_at}});
        app.post("/api/v1/subscriptions", &sub).await.expect(200);
    }
    let endpoint = json!({"webhook_endpoint": {"webhook_url": receiver.url("/h"), "signature_algo": "hmac",
                                               "event_types": ["subscription.termination_alert"]}});
    app.post("/api/v1/webhook_endpoints", &endpoint).await.expect(200);
    let _dispatcher = Aborting(dispatch(&app, Arc::new(ManualClock::new(now))));
    let got = receiver.wait_for_type("subscription.termination_alert", 1).await;
    let body = got[0].json();
    check_webhook(&body);
    assert_eq!(body["subscription"]["external_id"], "soon");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 1, "one alert, and only the subscribed type");
}

/// The real binary (`billstream all`) with Lago's `LAGO_RSA_PRIVATE_KEY` (base64 of a PKCS#1 PEM, as
/// `openssl genrsa -traditional 2048 | base64` makes): the public key it publishes is that key's, and it signs
/// with it. `billstream org show` prints the organization's `hmac_key`.
#[tokio::test]
async fn the_binary_signs_with_lago_rsa_private_key_and_org_show_prints_the_hmac_key() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePublicKey;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let expected_public = key.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();

    let db = testkit::TestPostgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    let api_key = "webhook-test-key-0001";
    let mut cmd = crate::binary::billstream(dir.path(), port);
    cmd.env("DATABASE_URL", db.url())
        .env("LAGO_ORG_API_KEY", api_key)
        .env("LAGO_API_URL", ISSUER)
        .env("LAGO_RSA_PRIVATE_KEY", STANDARD.encode(&pem))
        .env("BILLSTREAM_WEBHOOK_POLL_MS", "20");
    let server = Child(crate::binary::start(cmd, port).await.0);

    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://127.0.0.1:{port}/api/v1{path}");
    let text = http.get(api("/webhooks/public_key")).bearer_auth(api_key).send().await.unwrap();
    let compact: String = text.text().await.unwrap().split_whitespace().collect();
    let public = String::from_utf8(STANDARD.decode(compact).unwrap()).unwrap();
    assert_eq!(public, expected_public, "the published key is LAGO_RSA_PRIVATE_KEY's");

    let receiver = Receiver::start().await;
    let endpoint = json!({"webhook_endpoint": {"webhook_url": receiver.url("/jwt")}});
    let r = http.post(api("/webhook_endpoints")).bearer_auth(api_key).json(&endpoint).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let customer = json!({"customer": {"external_id": "bin-c"}});
    let r = http.post(api("/customers")).bearer_auth(api_key).json(&customer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = receiver.wait_for_type("customer.created", 1).await;
    assert_eq!(got[0].header("x-lago-signature-algorithm"), "jwt", "Lago's default");
    let claims = verify_rs256(&got[0].header("x-lago-signature"), &public);
    assert_eq!(claims["data"].as_str().unwrap().as_bytes(), &got[0].body[..]);
    assert_eq!(claims["iss"], ISSUER);

    let org: Value = http.get(api("/organizations")).bearer_auth(api_key).send().await.unwrap().json().await.unwrap();
    drop(server);
    let mut show = crate::binary::billstream(dir.path(), port);
    let out = show.args(["org", "show"]).env("DATABASE_URL", db.url()).output().expect("run org show");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).expect("org show prints the organization as JSON");
    assert_eq!(shown["hmac_key"], org["organization"]["hmac_key"]);
    assert_eq!(shown["lago_id"], org["organization"]["lago_id"]);
}

/// Lago's older way: `PUT /organizations` with `webhook_url` points the first endpoint there (creating it), and the
/// organization renders its endpoints' URLs.
#[tokio::test]
async fn the_organization_webhook_url_is_its_first_endpoint() {
    let app = TestApp::new().await;
    let put = |url: &str| json!({"organization": {"webhook_url": url}});
    app.put("/api/v1/organizations", &put("https://one.example/h")).await.expect(200);
    let list = app.get("/api/v1/webhook_endpoints").await.expect(200).body;
    assert_eq!(list["meta"]["total_count"], 1);
    assert_eq!(list["webhook_endpoints"][0]["webhook_url"], "https://one.example/h");
    assert_eq!(list["webhook_endpoints"][0]["signature_algo"], "jwt");
    app.post("/api/v1/webhook_endpoints", &json!({"webhook_endpoint": {"webhook_url": "https://two.example/h"}}))
        .await
        .expect(200);
    let o = app.put("/api/v1/organizations", &put("https://uno.example/h")).await.expect(200).body;
    assert_eq!(o["organization"]["webhook_url"], "https://uno.example/h");
    assert_eq!(o["organization"]["webhook_urls"], json!(["https://uno.example/h", "https://two.example/h"]));
    let shown = app.get("/api/v1/organizations").await.expect(200).body;
    assert_eq!(shown["organization"]["webhook_urls"], o["organization"]["webhook_urls"]);
    let taken = app.put("/api/v1/organizations", &put("https://two.example/h")).await.expect(422);
    assert_eq!(taken.body["error_details"], json!({"webhook_url": ["value_already_exist"]}));
}

/// Two workers on one outbox: every webhook is delivered once (SKIP LOCKED hands each row to one of them).
#[tokio::test]
async fn two_dispatchers_deliver_each_webhook_once() {
    let app = TestApp::new().await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url("/h"), "hmac").await;
    for i in 0..40 {
        app.post("/api/v1/customers", &json!({"customer": {"external_id": format!("c{i}")}})).await.expect(200);
    }
    let small = || Settings { batch: 3, ..fast() };
    let _a = Aborting(tokio::spawn(dispatcher::run(app.pool.clone(), small(), Arc::new(SystemClock))));
    let _b = Aborting(tokio::spawn(dispatcher::run(app.pool.clone(), small(), Arc::new(SystemClock))));
    let got = receiver.wait_for_type("customer.created", 40).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keys: std::collections::HashSet<String> = got.iter().map(|r| r.header("x-lago-unique-key")).collect();
    assert_eq!((receiver.got().len(), keys.len()), (40, 40), "each webhook once");
}
