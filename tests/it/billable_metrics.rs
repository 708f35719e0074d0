//! `/api/v1/billable_metrics` through HTTP on real PostgreSQL.

use serde_json::{Value, json};

use crate::support::TestApp;

const PATH: &str = "/api/v1/billable_metrics";

fn metric(fields: Value) -> Value {
    json!({ "billable_metric": fields })
}

fn storage() -> Value {
    metric(json!({
        "name": "Storage", "code": "storage", "aggregation_type": "sum_agg", "field_name": "gb",
        "description": "GB stored", "recurring": true, "rounding_function": "ceil", "rounding_precision": 2,
        "expression": "event.properties.gb * 1.5",
        "filters": [{"key": "region", "values": ["us", "eu", "us"]}, {"key": "cloud", "values": ["aws"]}]
    }))
}

async fn count(app: &TestApp) -> u64 {
    app.get(PATH).await.ok().body["meta"]["total_count"].as_u64().unwrap()
}

fn details(body: &Value, field: &str) -> Vec<String> {
    body["error_details"][field]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_returns_lagos_object() {
    let app = TestApp::new().await;
    let r = app.post(PATH, &storage()).await.expect(200);
    let m = &r.body["billable_metric"];
    assert!(uuid::Uuid::parse_str(m["lago_id"].as_str().unwrap()).is_ok());
    assert_eq!(m["name"], "Storage");
    assert_eq!(m["code"], "storage");
    assert_eq!(m["description"], "GB stored");
    assert_eq!(m["aggregation_type"], "sum_agg");
    assert_eq!(m["field_name"], "gb");
    assert_eq!(m["recurring"], true);
    assert_eq!(m["rounding_function"], "ceil");
    assert_eq!(m["rounding_precision"], 2);
    assert_eq!(m["expression"], "event.properties.gb * 1.5");
    assert_eq!(m["weighted_interval"], Value::Null);
    assert_eq!(m["active_subscriptions_count"], 0);
    assert_eq!(m["plans_count"], 0);
    assert_eq!(m["draft_invoices_count"], 0);
    // Filters sorted by key, values de-duplicated and sorted.
    assert_eq!(m["filters"], json!([{"key": "cloud", "values": ["aws"]}, {"key": "region", "values": ["eu", "us"]}]));
    let created = m["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
}

#[tokio::test]
async fn count_metric_needs_no_field_and_drops_it() {
    let app = TestApp::new().await;
    let r = app
        .post(
            PATH,
            &metric(json!({"name": "Calls", "code": "calls", "aggregation_type": "count_agg", "field_name": "x"})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["billable_metric"]["field_name"], Value::Null);
    assert_eq!(r.body["billable_metric"]["recurring"], false);
    assert_eq!(r.body["billable_metric"]["filters"], json!([]));
}

#[tokio::test]
async fn show_finds_by_code_without_counters() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.ok();
    let r = app.get("/api/v1/billable_metrics/storage").await.expect(200);
    assert_eq!(r.body["billable_metric"]["code"], "storage");
    assert!(r.body["billable_metric"].get("plans_count").is_none());
}

#[tokio::test]
async fn unknown_code_is_404_for_every_operation() {
    let app = TestApp::new().await;
    let expected = json!({"status": 404, "error": "Not Found", "code": "billable_metric_not_found"});
    assert_eq!(app.get("/api/v1/billable_metrics/nope").await.expect(404).body, expected);
    assert_eq!(
        app.put("/api/v1/billable_metrics/nope", &metric(json!({"name": "x"}))).await.expect(404).body,
        expected
    );
    assert_eq!(app.delete("/api/v1/billable_metrics/nope").await.expect(404).body, expected);
}

/// Each rule: the request, the field, the Lago code. Nothing may be stored by any of them.
#[tokio::test]
async fn each_validation_rule_is_a_422_and_stores_nothing() {
    let app = TestApp::new().await;
    let base = || json!({"name": "n", "code": "c", "aggregation_type": "sum_agg", "field_name": "f"});
    let with = |k: &str, v: Value| {
        let mut m = base();
        m[k] = v;
        metric(m)
    };
    let without = |k: &str| {
        let mut m = base();
        m.as_object_mut().unwrap().remove(k);
        metric(m)
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (without("name"), "name", "value_is_mandatory"),
        (with("name", json!("  ")), "name", "value_is_mandatory"),
        (without("code"), "code", "value_is_mandatory"),
        (with("code", json!("")), "code", "value_is_mandatory"),
        (without("aggregation_type"), "aggregation_type", "value_is_invalid"),
        (with("aggregation_type", json!("avg_agg")), "aggregation_type", "value_is_invalid"),
        (without("field_name"), "field_name", "value_is_mandatory"),
        (
            with("aggregation_type", json!("max_agg")).pipe(|mut v| {
                v["billable_metric"]["recurring"] = json!(true);
                v
            }),
            "recurring",
            "not_compatible_with_aggregation_type",
        ),
        (with("aggregation_type", json!("weighted_sum_agg")), "weighted_interval", "value_is_invalid"),
        (with("weighted_interval", json!("minutes")), "weighted_interval", "value_is_invalid"),
        (with("rounding_function", json!("up")), "rounding_function", "value_is_invalid"),
        (with("expression", json!("round(event.properties.a")), "expression", "invalid_expression"),
        (with("filters", json!([{"key": "region", "values": []}])), "values", "value_is_mandatory"),
        (with("filters", json!([{"key": "region"}])), "values", "value_is_mandatory"),
        (with("filters", json!([{"key": "", "values": ["a"]}])), "key", "value_is_mandatory"),
        (with("filters", json!("region")), "filters", "value_is_invalid"),
        (with("recurring", json!({"a": 1})), "recurring", "value_is_invalid"),
        (with("rounding_precision", json!("two")), "rounding_precision", "value_is_invalid"),
        (with("name", json!(["x"])), "name", "value_is_invalid"),
    ];
    for (body, field, code) in cases {
        let r = app.post(PATH, &body).await.expect(422);
        assert_eq!(r.body["status"], 422);
        assert_eq!(r.body["error"], "Unprocessable Entity");
        assert_eq!(r.body["code"], "validation_errors");
        assert!(details(&r.body, field).contains(&code.to_owned()), "{field} should have {code}: {}", r.body);
    }
    assert_eq!(count(&app).await, 0);
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

#[tokio::test]
async fn every_field_error_is_reported_at_once() {
    let app = TestApp::new().await;
    let r = app.post(PATH, &metric(json!({"description": "only this"}))).await.expect(422);
    for field in ["name", "code", "aggregation_type", "field_name"] {
        assert!(!details(&r.body, field).is_empty(), "missing {field}: {}", r.body);
    }
}

#[tokio::test]
async fn custom_aggregation_is_forbidden() {
    let app = TestApp::new().await;
    let r = app.post(PATH, &metric(json!({"name": "n", "code": "c", "aggregation_type": "custom_agg"}))).await;
    assert_eq!(r.expect(403).body, json!({"status": 403, "error": "Forbidden", "code": "feature_unavailable"}));
}

#[tokio::test]
async fn missing_root_object_is_400() {
    let app = TestApp::new().await;
    for body in
        [json!({}), json!({"billable_metric": {}}), json!({"billable_metric": "BL"}), json!({"plan": {"code": "x"}})]
    {
        let r = app.post(PATH, &body).await.expect(400);
        assert_eq!(
            r.body,
            json!({"status": 400, "error": "BadRequest: param is missing or the value is empty or invalid: billable_metric"})
        );
    }
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn duplicate_code_is_rejected_until_the_first_is_deleted() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.expect(200);
    let r = app.post(PATH, &storage()).await.expect(422);
    assert_eq!(details(&r.body, "code"), ["value_already_exist"]);
    assert_eq!(count(&app).await, 1);
    app.delete("/api/v1/billable_metrics/storage").await.expect(200);
    app.post(PATH, &storage()).await.expect(200);
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn concurrent_creates_of_one_code_store_one() {
    let app = TestApp::new().await;
    let body = storage();
    let results = futures_join(&app, &body, 8).await;
    assert_eq!(results.iter().filter(|s| **s == 200).count(), 1, "{results:?}");
    assert!(results.iter().all(|s| *s == 200 || *s == 422), "{results:?}");
    assert_eq!(count(&app).await, 1);
}

async fn futures_join(app: &TestApp, body: &Value, n: usize) -> Vec<u16> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let router = app.router.clone();
        let key = app.key.clone();
        let bytes = serde_json::to_vec(body).unwrap();
        handles.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post(PATH)
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(bytes))
                .unwrap();
            router.oneshot(req).await.unwrap().status().as_u16()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn update_is_partial_and_null_clears() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.ok();
    let r = app
        .put("/api/v1/billable_metrics/storage", &metric(json!({"name": "Disk", "description": null})))
        .await
        .expect(200);
    let m = &r.body["billable_metric"];
    assert_eq!(m["name"], "Disk");
    assert_eq!(m["description"], Value::Null);
    assert_eq!(m["field_name"], "gb");
    assert_eq!(m["rounding_precision"], 2);
    assert_eq!(m["filters"].as_array().unwrap().len(), 2, "filters untouched when not sent");
    let shown = app.get("/api/v1/billable_metrics/storage").await.ok();
    assert_eq!(shown.body["billable_metric"]["name"], "Disk");
}

#[tokio::test]
async fn update_can_change_the_code_but_not_to_a_taken_one() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.ok();
    app.post(PATH, &metric(json!({"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}))).await.ok();
    let r = app.put("/api/v1/billable_metrics/storage", &metric(json!({"code": "calls"}))).await.expect(422);
    assert_eq!(details(&r.body, "code"), ["value_already_exist"]);
    app.get("/api/v1/billable_metrics/storage").await.expect(200);
    app.put("/api/v1/billable_metrics/storage", &metric(json!({"code": "disk"}))).await.expect(200);
    app.get("/api/v1/billable_metrics/storage").await.expect(404);
    app.get("/api/v1/billable_metrics/disk").await.expect(200);
    // Keeping its own code is not a conflict.
    app.put("/api/v1/billable_metrics/disk", &metric(json!({"code": "disk", "name": "Disk"}))).await.expect(200);
}

#[tokio::test]
async fn invalid_update_changes_nothing() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.ok();
    let r = app
        .put(
            "/api/v1/billable_metrics/storage",
            &metric(json!({"name": "Changed", "aggregation_type": "max_agg", "filters": [{"key": "zone", "values": ["a"]}]})),
        )
        .await
        .expect(422);
    assert_eq!(details(&r.body, "recurring"), ["not_compatible_with_aggregation_type"]);
    let m = app.get("/api/v1/billable_metrics/storage").await.ok().body["billable_metric"].clone();
    assert_eq!(m["name"], "Storage");
    assert_eq!(m["aggregation_type"], "sum_agg");
    assert_eq!(m["filters"][0]["key"], "cloud");
    let r = app.put("/api/v1/billable_metrics/storage", &metric(json!({"recurring": null}))).await.expect(422);
    assert_eq!(details(&r.body, "recurring"), ["value_is_invalid"]);
}

#[tokio::test]
async fn update_replaces_filters() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.ok();
    let r = app
        .put(
            "/api/v1/billable_metrics/storage",
            &metric(json!({"filters": [{"key": "region", "values": ["ap"]}, {"key": "tier", "values": ["gold", "silver"]}]})),
        )
        .await
        .expect(200);
    assert_eq!(
        r.body["billable_metric"]["filters"],
        json!([{"key": "region", "values": ["ap"]}, {"key": "tier", "values": ["gold", "silver"]}])
    );
    let r = app.put("/api/v1/billable_metrics/storage", &metric(json!({"filters": []}))).await.expect(200);
    assert_eq!(r.body["billable_metric"]["filters"], json!([]));
    let r = app.get("/api/v1/billable_metrics/storage").await.ok();
    assert_eq!(r.body["billable_metric"]["filters"], json!([]));
}

#[tokio::test]
async fn delete_returns_the_metric_and_hides_it() {
    let app = TestApp::new().await;
    app.post(PATH, &storage()).await.ok();
    let r = app.delete("/api/v1/billable_metrics/storage").await.expect(200);
    assert_eq!(r.body["billable_metric"]["code"], "storage");
    assert_eq!(r.body["billable_metric"]["filters"].as_array().unwrap().len(), 2);
    app.get("/api/v1/billable_metrics/storage").await.expect(404);
    app.delete("/api/v1/billable_metrics/storage").await.expect(404);
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn list_pages_newest_first() {
    let app = TestApp::new().await;
    for i in 0..5 {
        app.post(
            PATH,
            &metric(json!({"name": format!("M{i}"), "code": format!("m{i}"), "aggregation_type": "count_agg"})),
        )
        .await
        .ok();
    }
    let r = app.get("/api/v1/billable_metrics?page=1&per_page=2").await.ok();
    let codes: Vec<&str> =
        r.body["billable_metrics"].as_array().unwrap().iter().map(|m| m["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["m4", "m3"]);
    assert_eq!(
        r.body["meta"],
        json!({"current_page": 1, "next_page": 2, "prev_page": null, "total_pages": 3, "total_count": 5})
    );
    assert_eq!(r.body["billable_metrics"][0]["plans_count"], 0);

    let r = app.get("/api/v1/billable_metrics?page=3&per_page=2").await.ok();
    assert_eq!(r.body["billable_metrics"].as_array().unwrap().len(), 1);
    assert_eq!(
        r.body["meta"],
        json!({"current_page": 3, "next_page": null, "prev_page": 2, "total_pages": 3, "total_count": 5})
    );

    let r = app.get("/api/v1/billable_metrics?page=9&per_page=2").await.ok();
    assert_eq!(r.body["billable_metrics"], json!([]));
    assert_eq!(r.body["meta"]["prev_page"], 8);

    // Lago's defaults: 100 per page; unusable values fall back rather than fail.
    let r = app.get("/api/v1/billable_metrics").await.ok();
    assert_eq!(r.body["billable_metrics"].as_array().unwrap().len(), 5);
    let r = app.get("/api/v1/billable_metrics?page=abc&per_page=-1").await.ok();
    assert_eq!(r.body["meta"]["current_page"], 1);
    assert_eq!(r.body["meta"]["total_pages"], 1);
}
