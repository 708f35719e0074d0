//! `/api/v1/plans` with charges through HTTP on real PostgreSQL.

use serde_json::{Value, json};

use crate::support::TestApp;

/// Creates the metrics the plans use; returns (calls id, storage id).
async fn metrics(app: &TestApp) -> (String, String) {
    let calls = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg",
                    "filters": [{"key": "region", "values": ["eu", "us"]}]}}),
        )
        .await
        .ok();
    let storage = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "Storage", "code": "storage", "aggregation_type": "sum_agg",
                    "field_name": "gb", "recurring": true}}),
        )
        .await
        .ok();
    let id = |r: &crate::support::Resp| r.body["billable_metric"]["lago_id"].as_str().unwrap().to_owned();
    (id(&calls), id(&storage))
}

fn plan(calls: &str, storage: &str) -> Value {
    json!({"plan": {
        "name": "Startup", "code": "startup", "interval": "monthly", "amount_cents": 10000,
        "amount_currency": "EUR", "pay_in_advance": true, "trial_period": 14, "description": "d",
        "tax_codes": ["vat"],
        "minimum_commitment": {"amount_cents": 50000, "invoice_display_name": "Min"},
        "charges": [
            {"billable_metric_id": calls, "charge_model": "graduated", "invoice_display_name": "API",
             "properties": {"graduated_ranges": [
                {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
                {"from_value": 1001, "to_value": null, "per_unit_amount": "0.01", "flat_amount": "5"}]},
             "filters": [{"invoice_display_name": "EU", "values": {"region": ["eu"]},
                          "properties": {"graduated_ranges": [
                            {"from_value": 0, "to_value": null, "per_unit_amount": "0.02", "flat_amount": "0"}]}}],
             "tax_codes": ["vat"]},
            {"billable_metric_id": storage, "charge_model": "package", "prorated": false,
             "properties": {"amount": "5", "package_size": 100, "free_units": 10, "grouped_by": ["zone"]}}
        ]
    }})
}

async fn setup(app: &TestApp) -> (String, String) {
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": 20}})).await.ok();
    metrics(app).await
}

#[tokio::test]
async fn create_show_list_delete() {
    let app = TestApp::new().await;
    let (calls, storage) = setup(&app).await;
    let r = app.post("/api/v1/plans", &plan(&calls, &storage)).await.expect(200);
    let p = &r.body["plan"];
    assert_eq!(
        (p["code"].clone(), p["interval"].clone(), p["amount_cents"].clone()),
        (json!("startup"), json!("monthly"), json!(10000))
    );
    assert_eq!((p["trial_period"].clone(), p["pay_in_advance"].clone()), (json!(14.0), json!(true)));
    assert_eq!(p["bill_charges_monthly"], Value::Null);
    assert_eq!(p["taxes"][0]["code"], "vat");
    assert_eq!(p["minimum_commitment"]["amount_cents"], 50000);
    assert_eq!(p["minimum_commitment"]["plan_code"], "startup");
    let c = &p["charges"][0];
    assert_eq!(
        (c["charge_model"].clone(), c["code"].clone(), c["billable_metric_code"].clone()),
        (json!("graduated"), json!("calls"), json!("calls"))
    );
    assert_eq!(c["properties"]["graduated_ranges"][1]["per_unit_amount"], "0.01");
    assert_eq!(c["filters"][0]["values"], json!({"region": ["eu"]}));
    assert_eq!(c["filters"][0]["invoice_display_name"], "EU");
    assert_eq!(c["taxes"][0]["code"], "vat");
    assert_eq!((c["invoiceable"].clone(), c["min_amount_cents"].clone()), (json!(true), json!(0)));
    let pk = &p["charges"][1];
    assert_eq!(
        pk["properties"],
        json!({"amount": "5", "package_size": 100, "free_units": 10,
                                        "pricing_group_keys": ["zone"], "grouped_by": ["zone"]})
    );
    assert_eq!(app.get("/api/v1/plans/startup").await.expect(200).body["plan"], r.body["plan"]);
    let list = app.get("/api/v1/plans?per_page=10").await.expect(200);
    assert_eq!(list.body["meta"]["total_count"], 1);
    assert_eq!(list.body["plans"][0]["charges"].as_array().unwrap().len(), 2);
    // The metric is now attached: what it counts can no longer change.
    let m = app.put("/api/v1/billable_metrics/storage", &json!({"billable_metric": {"field_name": "tb"}})).await;
    assert_eq!(m.expect(200).body["billable_metric"]["field_name"], "gb");
    app.delete("/api/v1/plans/startup").await.expect(200);
    app.get("/api/v1/plans/startup").await.expect(404);
    // Deleted: the code is free again, and the metric is free to change.
    let m = app.put("/api/v1/billable_metrics/storage", &json!({"billable_metric": {"field_name": "tb"}})).await;
    assert_eq!(m.expect(200).body["billable_metric"]["field_name"], "tb");
    app.post("/api/v1/plans", &plan(&calls, &storage)).await.expect(200);
}

#[tokio::test]
async fn update_keeps_charges_by_id_and_replaces_the_rest() {
    let app = TestApp::new().await;
    let (calls, storage) = setup(&app).await;
    let p = app.post("/api/v1/plans", &plan(&calls, &storage)).await.expect(200).body["plan"].clone();
    let kept = p["charges"][0]["lago_id"].clone();
    let r = app
        .put(
            "/api/v1/plans/startup",
            &json!({"plan": {"name": "Startup 2", "interval": "yearly", "bill_charges_monthly": true,
            "minimum_commitment": null,
            "charges": [
                {"id": kept, "charge_model": "standard", "properties": {"amount": "0.5"}},
                {"billable_metric_id": storage, "charge_model": "volume", "properties": {"volume_ranges": [
                    {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
                    {"from_value": 11, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "0"}]}}
            ]}}),
        )
        .await
        .expect(200);
    let u = &r.body["plan"];
    assert_eq!(
        (u["name"].clone(), u["code"].clone(), u["interval"].clone()),
        (json!("Startup 2"), json!("startup"), json!("yearly"))
    );
    assert_eq!(u["bill_charges_monthly"], true);
    assert_eq!(u["amount_cents"], 10000);
    assert!(u.get("minimum_commitment").is_none());
    let charges = u["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 2);
    assert_eq!(charges[0]["lago_id"], kept);
    assert_eq!(charges[0]["charge_model"], "standard");
    // Filters not sent are kept with the charge.
    assert_eq!(charges[0]["filters"].as_array().unwrap().len(), 1);
    let filter_id = charges[0]["filters"][0]["lago_id"].clone();
    // Sent again with the same values, a filter keeps its id; new values make a new filter.
    let r = app
        .put(
            "/api/v1/plans/startup",
            &json!({"plan": {"charges": [
                {"id": kept, "charge_model": "standard", "properties": {"amount": "0.5"}, "filters": [
                    {"values": {"region": ["us"]}, "properties": {"amount": "2"}},
                    {"values": {"region": ["eu"]}, "properties": {"amount": "3"}, "invoice_display_name": "Europe"}]}]}}),
        )
        .await
        .expect(200);
    let filters = r.body["plan"]["charges"][0]["filters"].as_array().unwrap().clone();
    assert_eq!(r.body["plan"]["charges"].as_array().unwrap().len(), 1);
    assert_eq!(filters.len(), 2);
    assert_ne!(filters[0]["lago_id"], filter_id);
    assert_eq!(
        (filters[1]["lago_id"].clone(), filters[1]["invoice_display_name"].clone()),
        (filter_id, json!("Europe"))
    );
    assert_eq!(filters[1]["properties"]["amount"], "3");
    assert_ne!(charges[1]["lago_id"], p["charges"][1]["lago_id"]);
    assert_eq!(charges[1]["charge_model"], "volume");
    // No `charges` key: the charges stay. Metadata are set whole, and removed with null.
    let r = app
        .put("/api/v1/plans/startup", &json!({"plan": {"description": "x", "metadata": {"crm": "42", "note": null}}}))
        .await
        .expect(200);
    assert_eq!(r.body["plan"]["charges"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["plan"]["metadata"], json!({"crm": "42", "note": null}));
    let r = app.put("/api/v1/plans/startup", &json!({"plan": {"metadata": null}})).await.expect(200);
    assert!(r.body["plan"].get("metadata").is_none());
    let r = app.put("/api/v1/plans/startup", &json!({"plan": {"metadata": {"n": 1}}})).await.expect(422);
    assert_eq!(r.body["error_details"]["metadata"], json!(["value_is_invalid"]));
}

fn details(r: &crate::support::Resp, field: &str) -> Vec<String> {
    r.body["error_details"][field]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn validation_errors_and_not_found() {
    let app = TestApp::new().await;
    let (calls, storage) = setup(&app).await;
    let r =
        app.post("/api/v1/plans", &json!({"plan": {"interval": "daily", "amount_currency": "EURO"}})).await.expect(422);
    for (f, c) in [
        ("name", "value_is_mandatory"),
        ("code", "value_is_mandatory"),
        ("interval", "value_is_invalid"),
        ("amount_cents", "value_is_mandatory"),
        ("amount_currency", "value_is_invalid"),
    ] {
        assert_eq!(details(&r, f), [c], "{f}");
    }
    let base = |charges: Value| {
        json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0,
                                               "amount_currency": "EUR", "charges": charges}})
    };
    let cases = [
        (
            json!({"billable_metric_id": calls, "charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 20, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}}),
            "properties",
            "invalid_graduated_ranges",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "package",
                "properties": {"amount": "1", "package_size": 0, "free_units": 0}}),
            "properties",
            "invalid_package_size",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "percentage", "properties": {"rate": "-1"}}),
            "properties",
            "invalid_rate",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "standard", "properties": {"amount": 1}}),
            "properties",
            "invalid_amount",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "volume", "pay_in_advance": true}),
            "pay_in_advance",
            "invalid_aggregation_type_or_charge_model",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "standard", "prorated": true}),
            "prorated",
            "invalid_billable_metric_or_charge_model",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "dynamic"}),
            "charge_model",
            "invalid_aggregation_type_or_charge_model",
        ),
        (
            json!({"billable_metric_id": calls, "charge_model": "standard", "filters": [{"values": {"region": ["mars"]}}]}),
            "values",
            "value_is_invalid",
        ),
        (
            json!({"billable_metric_id": storage, "charge_model": "standard", "invoiceable": false}),
            "invoiceable",
            "must_be_true_unless_pay_in_advance",
        ),
    ];
    for (charge, field, code) in cases {
        let r = app.post("/api/v1/plans", &base(json!([charge]))).await.expect(422);
        assert_eq!(details(&r, field), [code], "{charge}");
    }
    app.get("/api/v1/plans/p").await.expect(404);
    let r = app
        .post("/api/v1/plans", &base(json!([{"billable_metric_id": uuid::Uuid::new_v4(), "charge_model": "standard"}])))
        .await;
    assert_eq!(r.expect(404).body["code"], "billable_metrics_not_found");
    let r = app
        .post(
            "/api/v1/plans",
            &base(json!([{"billable_metric_id": calls, "charge_model": "standard", "tax_codes": ["nope"]}])),
        )
        .await;
    assert_eq!(r.expect(404).body["code"], "tax_not_found");
    app.get("/api/v1/plans/p").await.expect(404);
    app.post("/api/v1/plans", &base(json!([]))).await.expect(200);
    let r = app.post("/api/v1/plans", &base(json!([]))).await.expect(422);
    assert_eq!(details(&r, "code"), ["value_already_exist"]);
    let r = app.get("/api/v1/plans/nope").await.expect(404);
    assert_eq!(r.body["code"], "plan_not_found");
    app.put("/api/v1/plans/nope", &json!({"plan": {"name": "x"}})).await.expect(404);
    app.delete("/api/v1/plans/nope").await.expect(404);
}

#[tokio::test]
async fn plans_are_isolated_per_organization() {
    let app = TestApp::new().await;
    let (calls, storage) = setup(&app).await;
    app.post("/api/v1/plans", &plan(&calls, &storage)).await.ok();
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", "/api/v1/plans/startup", None).await.expect(404);
    app.call_as(&other, "PUT", "/api/v1/plans/startup", Some(&json!({"plan": {"name": "x"}}))).await.expect(404);
    app.call_as(&other, "DELETE", "/api/v1/plans/startup", None).await.expect(404);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/plans", None).await.ok().body["meta"]["total_count"], 0);
    // Another organization cannot price this one's metric.
    let body = json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "EUR",
                               "charges": [{"billable_metric_id": calls, "charge_model": "standard"}]}});
    app.call_as(&other, "POST", "/api/v1/plans", Some(&body)).await.expect(404);
}

#[tokio::test]
async fn charges_of_a_plan_one_at_a_time() {
    let app = TestApp::new().await;
    let (calls, storage) = setup(&app).await;
    app.post("/api/v1/plans", &plan(&calls, &storage)).await.ok();
    let base = "/api/v1/plans/startup/charges";
    let l = app.get(base).await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 2);
    let c = app
        .post(
            base,
            &json!({"charge": {"billable_metric_id": storage, "code": "storage_pct", "charge_model": "percentage",
            "properties": {"rate": "2.5"}, "tax_codes": ["vat"]}}),
        )
        .await
        .expect(200);
    assert_eq!(
        (c.body["charge"]["code"].clone(), c.body["charge"]["properties"]["rate"].clone()),
        (json!("storage_pct"), json!("2.5"))
    );
    assert_eq!(c.body["charge"]["taxes"][0]["code"], "vat");
    assert_eq!(app.get(base).await.ok().body["meta"]["total_count"], 3);
    let one = app.get(&format!("{base}/storage_pct")).await.expect(200);
    assert_eq!(one.body["charge"]["lago_id"], c.body["charge"]["lago_id"]);
    // The other charges are untouched (ids, filters).
    let p = app.get("/api/v1/plans/startup").await.ok();
    assert_eq!(p.body["plan"]["charges"][0]["filters"].as_array().unwrap().len(), 1);
    let u = app
        .put(
            &format!("{base}/storage_pct"),
            &json!({"charge": {"properties": {"rate": "3"}, "invoice_display_name": "Pct"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        (u.body["charge"]["lago_id"].clone(), u.body["charge"]["properties"]["rate"].clone()),
        (c.body["charge"]["lago_id"].clone(), json!("3"))
    );
    let r =
        app.put(&format!("{base}/storage_pct"), &json!({"charge": {"properties": {"rate": "x"}}})).await.expect(422);
    assert_eq!(r.body["error_details"]["properties"], json!(["invalid_rate"]));
    let taken = json!({"charge": {"billable_metric_id": storage, "code": "storage_pct", "charge_model": "standard"}});
    let r = app.post(base, &taken).await.expect(422);
    assert_eq!(r.body["error_details"]["code"], json!(["value_already_exist"]));
    let d = app.delete(&format!("{base}/storage_pct")).await.expect(200);
    assert_eq!(d.body["charge"]["code"], "storage_pct");
    assert_eq!(app.get(&format!("{base}/storage_pct")).await.expect(404).body["code"], "charge_not_found");
    assert_eq!(app.get(base).await.ok().body["meta"]["total_count"], 2);
    app.get("/api/v1/plans/nope/charges").await.expect(404);
    app.put(&format!("{base}/nope"), &json!({"charge": {"charge_model": "standard"}})).await.expect(404);
    app.delete(&format!("{base}/nope")).await.expect(404);
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", base, None).await.expect(404);
    app.call_as(&other, "DELETE", &format!("{base}/calls"), None).await.expect(404);
}

#[tokio::test]
async fn plan_metadata_endpoints() {
    let app = TestApp::new().await;
    let (calls, storage) = setup(&app).await;
    app.post("/api/v1/plans", &plan(&calls, &storage)).await.ok();
    let path = "/api/v1/plans/startup/metadata";
    let key = app.key.clone();
    let r = app.call_as(&key, "DELETE", &format!("{path}/crm"), None).await.expect(404);
    assert_eq!(r.body["code"], "metadata_not_found");
    let r = app.post(path, &json!({"metadata": {"crm": "1", "tier": "gold"}})).await.expect(200);
    assert_eq!(r.body["metadata"], json!({"crm": "1", "tier": "gold"}));
    let r = app.call_as(&key, "PATCH", path, Some(&json!({"metadata": {"tier": "silver", "region": null}}))).await;
    assert_eq!(r.expect(200).body["metadata"], json!({"crm": "1", "tier": "silver", "region": null}));
    let r = app.post(path, &json!({"metadata": {"only": "this"}})).await.expect(200);
    assert_eq!(r.body["metadata"], json!({"only": "this"}));
    let r = app.delete(&format!("{path}/only")).await.expect(200);
    assert_eq!(r.body["metadata"], json!({}));
    assert_eq!(app.get("/api/v1/plans/startup").await.ok().body["plan"]["metadata"], json!({}));
    let r = app.delete(path).await.expect(200);
    assert_eq!(r.body["metadata"], serde_json::Value::Null);
    let r = app.post(path, &json!({"metadata": {"n": 5}})).await.expect(422);
    assert_eq!(r.body["error_details"]["metadata"], json!(["value_is_invalid"]));
    app.post("/api/v1/plans/nope/metadata", &json!({"metadata": {}})).await.expect(404);
    let other = app.new_org("Other").await;
    app.call_as(&other, "DELETE", path, None).await.expect(404);
}
