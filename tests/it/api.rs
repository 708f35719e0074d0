//! What every endpoint shares: authentication, organization isolation, Lago's error shapes, the body limit,
//! server faults, and the request metrics.

use serde_json::{Value, json};

use crate::support::TestApp;

const PATH: &str = "/api/v1/billable_metrics";

fn calls() -> Value {
    json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}})
}

#[tokio::test]
async fn missing_or_unknown_key_is_401() {
    let app = TestApp::new().await;
    let expected = json!({"status": 401, "error": "Unauthorized"});
    assert_eq!(app.raw("GET", PATH, None, vec![]).await.expect(401).body, expected);
    assert_eq!(app.raw("GET", PATH, Some("not-a-key"), vec![]).await.expect(401).body, expected);
    let r = app.raw("POST", PATH, Some("not-a-key"), serde_json::to_vec(&calls()).unwrap()).await.expect(401);
    assert_eq!(r.body, expected);
    // Only the second word counts, whatever the scheme word says.
    let req = axum::http::Request::get(PATH).header("authorization", format!("Token {}", app.key));
    let response =
        tower::ServiceExt::oneshot(app.router.clone(), req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.get(PATH).await.ok().body["meta"]["total_count"], 0, "the rejected create stored nothing");
}

#[tokio::test]
async fn organizations_never_see_each_other() {
    let app = TestApp::new().await;
    let other = app.new_org("Other").await;
    app.post(PATH, &calls()).await.expect(200);

    let r = app.call_as(&other, "GET", PATH, None).await.ok();
    assert_eq!(r.body["billable_metrics"], json!([]));
    app.call_as(&other, "GET", "/api/v1/billable_metrics/calls", None).await.expect(404);
    let rename = json!({"billable_metric": {"name": "Hijacked"}});
    app.call_as(&other, "PUT", "/api/v1/billable_metrics/calls", Some(&rename)).await.expect(404);
    app.call_as(&other, "DELETE", "/api/v1/billable_metrics/calls", None).await.expect(404);
    // The same code is free in the other organization.
    app.call_as(&other, "POST", PATH, Some(&calls())).await.expect(200);

    let mine = app.get("/api/v1/billable_metrics/calls").await.ok();
    assert_eq!(mine.body["billable_metric"]["name"], "Calls");
    assert_eq!(app.get(PATH).await.ok().body["meta"]["total_count"], 1);
}

#[tokio::test]
async fn malformed_json_is_400_and_stores_nothing() {
    let app = TestApp::new().await;
    for body in [&b"{\"billable_metric\": {"[..], b"not json", b"\xff\xfe{}", b""] {
        let r = app.raw("POST", PATH, Some(&app.key), body.to_vec()).await.expect(400);
        assert_eq!(r.body, json!({"status": 400, "error": "Bad Request"}));
    }
    assert_eq!(app.get(PATH).await.ok().body["meta"]["total_count"], 0);
}

#[tokio::test]
async fn oversized_body_is_413_and_stores_nothing() {
    let app = TestApp::with_body_limit(4096).await;
    let mut body = calls();
    body["billable_metric"]["description"] = json!("x".repeat(10_000));
    let r = app.post(PATH, &body).await.expect(413);
    assert_eq!(r.body, json!({"status": 413, "error": "Payload Too Large", "code": "payload_too_large"}));
    assert_eq!(app.get(PATH).await.ok().body["meta"]["total_count"], 0);
    // Just under the limit is fine.
    body["billable_metric"]["description"] = json!("x".repeat(1000));
    app.post(PATH, &body).await.expect(200);
}

#[tokio::test]
async fn unknown_routes_are_lagos_404_without_auth() {
    let app = TestApp::new().await;
    let expected = json!({"status": 404, "error": "Not Found", "code": "resource_not_found"});
    assert_eq!(app.raw("GET", "/api/v1/nothing_here", None, vec![]).await.expect(404).body, expected);
    assert_eq!(
        app.raw("POST", "/api/v1/billable_metrics/storage", Some(&app.key), vec![]).await.expect(404).body,
        expected
    );
}

#[tokio::test]
async fn server_fault_is_a_generic_500() {
    let app = TestApp::new().await;
    sqlx::query("DROP TABLE billable_metric_filters").execute(&app.pool).await.unwrap();
    let r = app.get(PATH).await.expect(500);
    assert_eq!(r.body, json!({"status": 500, "error": "Internal Server Error"}));
    assert!(!String::from_utf8_lossy(&r.raw).contains("billable_metric_filters"), "no internals leak");
}

#[tokio::test]
async fn health_answers_once_ready() {
    let app = TestApp::new().await;
    let r = app.raw("GET", "/health", None, vec![]).await.expect(200);
    assert_eq!(r.body["status"], "ok");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = TestApp::new().await;
    app.post(PATH, &calls()).await.ok();
    app.get("/api/v1/billable_metrics/calls").await.ok();
    app.get("/api/v1/billable_metrics/does-not-exist").await.expect(404);
    let r = app.raw("GET", "/metrics", None, vec![]).await.expect(200);
    let text = String::from_utf8(r.raw).unwrap();
    assert!(
        text.contains(
            r#"billstream_http_requests_total{method="GET",route="/api/v1/billable_metrics/{code}",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/api/v1/billable_metrics/{code}",status="404""#), "{text}");
    assert!(text.contains("billstream_http_request_duration_seconds_bucket"), "{text}");
    assert!(!text.contains("does-not-exist"), "raw paths never become labels");
}
