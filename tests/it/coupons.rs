//! `/api/v1/coupons` and applied coupons through HTTP on real PostgreSQL.

use serde_json::{Value, json};

use crate::support::TestApp;

fn fixed() -> Value {
    json!({"coupon": {"name": "Welcome", "code": "welcome", "coupon_type": "fixed_amount", "amount_cents": 1000,
                      "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration", "reusable": false}})
}

async fn customer(app: &TestApp, id: &str) {
    app.post("/api/v1/customers", &json!({"customer": {"external_id": id}})).await.ok();
}

async fn plan(app: &TestApp) {
    let m = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "C", "code": "calls", "aggregation_type": "count_agg"}}),
        )
        .await
        .ok();
    let metric = m.body["billable_metric"]["lago_id"].clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "basic", "interval": "monthly", "amount_cents": 100, "amount_currency": "EUR",
                         "charges": [{"billable_metric_id": metric, "charge_model": "standard", "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn coupon_crud_and_limits() {
    let app = TestApp::new().await;
    plan(&app).await;
    let c = app.post("/api/v1/coupons", &fixed()).await.expect(200).body["coupon"].clone();
    assert_eq!(
        (c["coupon_type"].clone(), c["amount_cents"].clone(), c["reusable"].clone()),
        (json!("fixed_amount"), json!(1000), json!(false))
    );
    assert_eq!((c["limited_plans"].clone(), c["plan_codes"].clone()), (json!(false), json!([])));
    let p = app
        .post(
            "/api/v1/coupons",
            &json!({"coupon": {"name": "Ten", "code": "ten", "coupon_type": "percentage", "percentage_rate": 10.5,
                "frequency": "recurring", "frequency_duration": 3, "expiration": "time_limit",
                "expiration_at": "2099-01-01T00:00:00Z", "applies_to": {"plan_codes": ["basic"]}}}),
        )
        .await
        .expect(200);
    let p = &p.body["coupon"];
    assert_eq!((p["percentage_rate"].clone(), p["frequency_duration"].clone()), (json!("10.5"), json!(3)));
    assert_eq!((p["limited_plans"].clone(), p["plan_codes"].clone()), (json!(true), json!(["basic"])));
    assert_eq!(p["expiration_at"], "2099-01-01T00:00:00Z");
    let m = app
        .post(
            "/api/v1/coupons",
            &json!({"coupon": {"name": "M", "code": "m", "coupon_type": "percentage", "percentage_rate": "5",
                "frequency": "forever", "expiration": "no_expiration", "applies_to": {"billable_metric_codes": ["calls"]}}}),
        )
        .await
        .expect(200);
    assert_eq!(m.body["coupon"]["billable_metric_codes"], json!(["calls"]));
    assert_eq!(app.get("/api/v1/coupons/ten").await.expect(200).body["coupon"]["code"], "ten");
    let u =
        app.put("/api/v1/coupons/ten", &json!({"coupon": {"name": "Ten %", "applies_to": {"plan_codes": []}}})).await;
    let u = u.expect(200);
    assert_eq!(
        (u.body["coupon"]["name"].clone(), u.body["coupon"]["limited_plans"].clone()),
        (json!("Ten %"), json!(false))
    );
    assert_eq!(app.get("/api/v1/coupons?per_page=2").await.expect(200).body["meta"]["total_pages"], 2);
    let d = app.delete("/api/v1/coupons/ten").await.expect(200);
    assert_eq!(d.body["coupon"]["code"], "ten");
    assert!(d.body["coupon"]["terminated_at"].is_string());
    app.get("/api/v1/coupons/ten").await.expect(404);
}

#[tokio::test]
async fn coupon_validation_and_not_found() {
    let app = TestApp::new().await;
    plan(&app).await;
    let r = app
        .post(
            "/api/v1/coupons",
            &json!({"coupon": {"coupon_type": "fixed_amount", "frequency": "recurring",
            "expiration": "time_limit", "expiration_at": "2001-01-01"}}),
        )
        .await
        .expect(422);
    for (f, c) in [
        ("name", "value_is_mandatory"),
        ("code", "value_is_mandatory"),
        ("amount_cents", "value_is_mandatory"),
        ("amount_currency", "value_is_mandatory"),
        ("frequency_duration", "value_is_mandatory"),
        ("expiration_at", "invalid_date"),
    ] {
        assert_eq!(r.body["error_details"][f], json!([c]), "{f}");
    }
    app.post("/api/v1/coupons", &fixed()).await.ok();
    let r = app.post("/api/v1/coupons", &fixed()).await.expect(422);
    assert_eq!(r.body["error_details"]["code"], json!(["value_already_exist"]));
    let mut limited = fixed();
    limited["coupon"]["code"] = json!("x");
    limited["coupon"]["applies_to"] = json!({"plan_codes": ["nope"]});
    assert_eq!(app.post("/api/v1/coupons", &limited).await.expect(404).body["code"], "plans_not_found");
    limited["coupon"]["applies_to"] = json!({"plan_codes": ["basic"], "billable_metric_codes": ["calls"]});
    let r = app.post("/api/v1/coupons", &limited).await.expect(405);
    assert_eq!(r.body["code"], "only_one_limitation_type_per_coupon_allowed");
    app.get("/api/v1/coupons/x").await.expect(404);
    assert_eq!(app.get("/api/v1/coupons/nope").await.expect(404).body["code"], "coupon_not_found");
    app.put("/api/v1/coupons/nope", &json!({"coupon": {"name": "n"}})).await.expect(404);
    app.delete("/api/v1/coupons/nope").await.expect(404);
}

#[tokio::test]
async fn applying_coupons() {
    let app = TestApp::new().await;
    plan(&app).await;
    customer(&app, "acme").await;
    app.post("/api/v1/coupons", &fixed()).await.ok();
    let r = app
        .post(
            "/api/v1/applied_coupons",
            &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome",
            "amount_cents": 500}}),
        )
        .await
        .expect(200);
    let a = &r.body["applied_coupon"];
    assert_eq!(
        (a["amount_cents"].clone(), a["amount_cents_remaining"].clone(), a["status"].clone()),
        (json!(500), json!(500), json!("active"))
    );
    assert_eq!((a["coupon_code"].clone(), a["external_customer_id"].clone()), (json!("welcome"), json!("acme")));
    // The customer takes the coupon's currency.
    assert_eq!(app.get("/api/v1/customers/acme").await.ok().body["customer"]["currency"], "EUR");
    // Not reusable: once per customer.
    let again = json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome"}});
    let r = app.post("/api/v1/applied_coupons", &again).await.expect(422);
    assert_eq!(r.body["error_details"]["coupon"], json!(["coupon_is_not_reusable"]));
    // Limited coupons on the same plan overlap.
    for code in ["p1", "p2"] {
        app.post(
            "/api/v1/coupons",
            &json!({"coupon": {"name": code, "code": code, "coupon_type": "percentage",
            "percentage_rate": "5", "frequency": "once", "expiration": "no_expiration",
            "applies_to": {"plan_codes": ["basic"]}}}),
        )
        .await
        .ok();
    }
    app.post(
        "/api/v1/applied_coupons",
        &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "p1"}}),
    )
    .await
    .expect(200);
    let r = app
        .post(
            "/api/v1/applied_coupons",
            &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "p2"}}),
        )
        .await;
    assert_eq!(r.expect(405).body["code"], "plan_overlapping");
    let l = app.get("/api/v1/applied_coupons?external_customer_id=acme&status=active").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 2);
    let l = app.get("/api/v1/applied_coupons?coupon_code[]=p1").await.expect(200);
    assert_eq!(l.body["applied_coupons"][0]["coupon_code"], "p1");
    let l = app.get("/api/v1/customers/acme/applied_coupons").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 2);
    let id = l.body["applied_coupons"][0]["lago_id"].as_str().unwrap().to_owned();
    let d = app.delete(&format!("/api/v1/customers/acme/applied_coupons/{id}")).await.expect(200);
    assert_eq!(d.body["applied_coupon"]["status"], "terminated");
    let l = app.get("/api/v1/applied_coupons?status=active").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 1);
    // Deleting a coupon terminates its applications.
    app.delete("/api/v1/coupons/welcome").await.ok();
    assert_eq!(app.get("/api/v1/applied_coupons?status=active").await.ok().body["meta"]["total_count"], 0);
    // Not found.
    customer(&app, "42").await;
    let numeric = json!({"applied_coupon": {"external_customer_id": 42, "coupon_code": "p2"}});
    assert_eq!(
        app.post("/api/v1/applied_coupons", &numeric).await.expect(200).body["applied_coupon"]["external_customer_id"],
        "42"
    );
    let unknown = json!({"applied_coupon": {"external_customer_id": "nobody", "coupon_code": "p1"}});
    assert_eq!(app.post("/api/v1/applied_coupons", &unknown).await.expect(404).body["code"], "customer_not_found");
    let unknown = json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome"}});
    assert_eq!(app.post("/api/v1/applied_coupons", &unknown).await.expect(404).body["code"], "coupon_not_found");
    let r = app.delete(&format!("/api/v1/customers/acme/applied_coupons/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(r.expect(404).body["code"], "applied_coupon_not_found");
    let r = app
        .post(
            "/api/v1/applied_coupons",
            &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "p2",
        "frequency": "recurring"}}),
        )
        .await;
    assert_eq!(r.expect(422).body["error_details"]["frequency_duration"], json!(["value_is_out_of_range"]));
}

#[tokio::test]
async fn coupons_are_isolated_per_organization() {
    let app = TestApp::new().await;
    customer(&app, "acme").await;
    app.post("/api/v1/coupons", &fixed()).await.ok();
    let applied = app
        .post(
            "/api/v1/applied_coupons",
            &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome"}}),
        )
        .await
        .ok();
    let id = applied.body["applied_coupon"]["lago_id"].as_str().unwrap().to_owned();
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", "/api/v1/coupons/welcome", None).await.expect(404);
    app.call_as(&other, "DELETE", "/api/v1/coupons/welcome", None).await.expect(404);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/coupons", None).await.ok().body["meta"]["total_count"], 0);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/applied_coupons", None).await.ok().body["meta"]["total_count"], 0);
    app.call_as(&other, "DELETE", &format!("/api/v1/customers/acme/applied_coupons/{id}"), None).await.expect(404);
    let body = json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome"}});
    app.call_as(&other, "POST", "/api/v1/applied_coupons", Some(&body)).await.expect(404);
    assert_eq!(app.get("/api/v1/applied_coupons?status=active").await.ok().body["meta"]["total_count"], 1);
}
