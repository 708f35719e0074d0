//! `/api/v1/subscriptions` through HTTP on real PostgreSQL: statuses, plan changes, overrides, filters, isolation.

use serde_json::{Value, json};

use crate::support::TestApp;

/// A metric and two monthly plans: "basic" (10.00) and "pro" (50.00), each with one standard charge.
async fn catalog(app: &TestApp) -> String {
    let m = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
        )
        .await
        .ok();
    let metric = m.body["billable_metric"]["lago_id"].as_str().unwrap().to_owned();
    for (code, amount) in [("basic", 1000), ("pro", 5000)] {
        app.post(
            "/api/v1/plans",
            &json!({"plan": {"name": code, "code": code, "interval": "monthly", "amount_cents": amount,
                "amount_currency": "EUR", "trial_period": 7, "charges": [{"billable_metric_id": metric, "charge_model": "standard",
                "properties": {"amount": "0.1"}}]}}),
        )
        .await
        .ok();
    }
    metric
}

fn sub(fields: Value) -> Value {
    json!({ "subscription": fields })
}

#[tokio::test]
async fn create_show_list_terminate() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let r = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1", "name": "Main",
                        "billing_time": "anniversary", "subscription_at": "2025-03-15T10:00:00Z"})),
        )
        .await
        .expect(200);
    let s = &r.body["subscription"];
    assert_eq!(
        (s["status"].clone(), s["plan_code"].clone(), s["external_customer_id"].clone()),
        (json!("active"), json!("basic"), json!("acme"))
    );
    assert_eq!(s["started_at"], "2025-03-15T10:00:00Z");
    assert_eq!(s["trial_ended_at"], "2025-03-22T10:00:00Z");
    assert_eq!(s["billing_time"], "anniversary");
    assert_eq!(s["plan"]["code"], "basic");
    assert_eq!(s["plan_amount_cents"], 1000);
    // An anniversary period starts on the 15th.
    let from = s["current_billing_period_started_at"].as_str().unwrap();
    assert!(from[8..10] == *"15", "{from}");
    // The customer was created, with the plan's currency.
    let c = app.get("/api/v1/customers/acme").await.expect(200);
    assert_eq!(c.body["customer"]["currency"], "EUR");
    assert_eq!(app.get("/api/v1/subscriptions/s1").await.expect(200).body["subscription"]["lago_id"], s["lago_id"]);
    let l = app.get("/api/v1/subscriptions?external_customer_id=acme&plan_code=basic").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 1);
    let l = app.get("/api/v1/customers/acme/subscriptions").await.expect(200);
    assert_eq!(l.body["subscriptions"][0]["external_id"], "s1");
    assert_eq!(app.get("/api/v1/customers/nobody/subscriptions").await.expect(404).body["code"], "customer_not_found");
    let l = app.get("/api/v1/subscriptions?plan_code=pro").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 0);
    assert_eq!(app.get("/api/v1/subscriptions?currency=EUR").await.ok().body["meta"]["total_count"], 1);
    assert_eq!(app.get("/api/v1/subscriptions?currency=USD").await.ok().body["meta"]["total_count"], 0);
    let r = app.delete("/api/v1/subscriptions/s1?on_termination_invoice=later").await.expect(422);
    assert_eq!(r.body["error_details"]["on_termination_invoice"], json!(["invalid_value"]));
    let t = app
        .delete("/api/v1/subscriptions/s1?on_termination_credit_note=refund&on_termination_invoice=skip")
        .await
        .expect(200);
    assert_eq!(t.body["subscription"]["status"], "terminated");
    assert_eq!(t.body["subscription"]["on_termination_credit_note"], "refund");
    assert_eq!(t.body["subscription"]["on_termination_invoice"], "skip");
    assert!(t.body["subscription"]["terminated_at"].is_string());
    app.get("/api/v1/subscriptions/s1").await.expect(404);
    assert_eq!(
        app.get("/api/v1/subscriptions/s1?status=terminated").await.expect(200).body["subscription"]["status"],
        "terminated"
    );
    let l = app.get("/api/v1/subscriptions?status[]=terminated&status[]=active").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 1);
    // The external id is free again.
    let body = sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1"}));
    let again = app.post("/api/v1/subscriptions", &body).await.expect(200);
    assert_eq!(again.body["subscription"]["status"], "active");
}

#[tokio::test]
async fn future_subscription_is_pending_until_its_day() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let r = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1",
                        "subscription_at": "2099-01-01T00:00:00Z"})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["subscription"]["status"], "pending");
    assert_eq!(r.body["subscription"]["started_at"], Value::Null);
    assert_eq!(r.body["subscription"]["current_billing_period_started_at"], Value::Null);
    app.get("/api/v1/subscriptions/s1").await.expect(404);
    app.get("/api/v1/subscriptions/s1?status=pending").await.expect(200);
    assert_eq!(app.get("/api/v1/subscriptions?status[]=pending").await.ok().body["meta"]["total_count"], 1);
    // Moving its start to the past activates it.
    let u = app
        .put("/api/v1/subscriptions/s1", &sub(json!({"subscription_at": "2026-01-01T00:00:00Z", "name": "Now"})))
        .await
        .expect(200);
    assert_eq!(
        (u.body["subscription"]["status"].clone(), u.body["subscription"]["name"].clone()),
        (json!("active"), json!("Now"))
    );
    assert_eq!(u.body["subscription"]["started_at"], "2026-01-01T00:00:00Z");
    // A pending one is canceled with status=pending.
    app.post(
        "/api/v1/subscriptions",
        &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s2",
                    "subscription_at": "2099-01-01T00:00:00Z"})),
    )
    .await
    .ok();
    app.delete("/api/v1/subscriptions/s2").await.expect(404);
    let c = app.delete("/api/v1/subscriptions/s2?status=pending").await.expect(200);
    assert_eq!(c.body["subscription"]["status"], "canceled");
    assert!(c.body["subscription"]["canceled_at"].is_string());
}

#[tokio::test]
async fn upgrade_now_and_downgrade_at_period_end() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let create = |plan: &str| {
        sub(
            json!({"external_customer_id": "acme", "plan_code": plan, "external_id": "s1", "subscription_at": "2026-01-01"}),
        )
    };
    let first = app.post("/api/v1/subscriptions", &create("basic")).await.expect(200).body["subscription"].clone();
    let up = app.post("/api/v1/subscriptions", &create("pro")).await.expect(200).body["subscription"].clone();
    assert_ne!(up["lago_id"], first["lago_id"]);
    assert_eq!(
        (up["status"].clone(), up["plan_code"].clone(), up["previous_plan_code"].clone()),
        (json!("active"), json!("pro"), json!("basic"))
    );
    let old = app.get("/api/v1/subscriptions/s1?status=terminated").await.expect(200);
    assert_eq!(old.body["subscription"]["lago_id"], first["lago_id"]);
    // Same plan again: the same subscription.
    let same = app.post("/api/v1/subscriptions", &create("pro")).await.expect(200);
    assert_eq!(same.body["subscription"]["lago_id"], up["lago_id"]);
    // Cheaper plan: pending until the period ends; the active one announces it.
    let down = app.post("/api/v1/subscriptions", &create("basic")).await.expect(200).body["subscription"].clone();
    assert_eq!(
        (down["status"].clone(), down["plan_code"].clone(), down["previous_plan_code"].clone()),
        (json!("pending"), json!("basic"), json!("pro"))
    );
    let active = app.get("/api/v1/subscriptions/s1").await.expect(200).body["subscription"].clone();
    assert_eq!(active["lago_id"], up["lago_id"]);
    assert_eq!(active["next_plan_code"], "basic");
    let end = active["current_billing_period_ending_at"].as_str().unwrap();
    let date = active["downgrade_plan_date"].as_str().unwrap();
    assert!(date > &end[..10], "{date} after {end}");
    // Terminating the active one cancels the downgrade.
    app.delete("/api/v1/subscriptions/s1").await.expect(200);
    let l = app.get("/api/v1/subscriptions?status[]=canceled").await.expect(200);
    assert_eq!(l.body["subscriptions"][0]["lago_id"], down["lago_id"]);
}

#[tokio::test]
async fn plan_overrides_make_a_customer_specific_plan() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let parent = app.get("/api/v1/plans/basic").await.ok().body["plan"].clone();
    let charge = parent["charges"][0]["lago_id"].clone();
    let r = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1",
                "plan_overrides": {"amount_cents": 777, "name": "Basic for Acme",
                    "charges": [{"id": charge, "properties": {"amount": "0.05"}}]}})),
        )
        .await
        .expect(200);
    let p = &r.body["subscription"]["plan"];
    assert_eq!(r.body["subscription"]["plan_code"], "basic");
    assert_eq!(r.body["subscription"]["plan_amount_cents"], 777);
    assert_eq!(p["parent_id"], parent["lago_id"]);
    assert_ne!(p["lago_id"], parent["lago_id"]);
    assert_eq!(p["name"], "Basic for Acme");
    assert_eq!(p["charges"][0]["properties"]["amount"], "0.05");
    assert_eq!(p["charges"][0]["lago_parent_id"], charge);
    // The parent is unchanged and the copy is not listed.
    let after = app.get("/api/v1/plans/basic").await.ok().body["plan"].clone();
    assert_eq!(
        (after["amount_cents"].clone(), after["charges"][0]["properties"]["amount"].clone()),
        (json!(1000), json!("0.1"))
    );
    assert_eq!(app.get("/api/v1/plans").await.ok().body["meta"]["total_count"], 2);
    // Overriding again updates the same copy.
    let u =
        app.put("/api/v1/subscriptions/s1", &sub(json!({"plan_overrides": {"amount_cents": 888}}))).await.expect(200);
    assert_eq!(u.body["subscription"]["plan"]["lago_id"], p["lago_id"]);
    assert_eq!(u.body["subscription"]["plan_amount_cents"], 888);
    assert_eq!(u.body["subscription"]["plan"]["charges"][0]["properties"]["amount"], "0.05");
    // An override must still be a valid plan.
    let bad = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s2",
                        "plan_overrides": {"amount_currency": "EURO"}})),
        )
        .await
        .expect(422);
    assert_eq!(bad.body["error_details"]["amount_currency"], json!(["value_is_invalid"]));
    app.get("/api/v1/subscriptions/s2").await.expect(404);
}

#[tokio::test]
async fn validation_and_not_found() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let r = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"plan_code": "basic", "billing_time": "weekly", "subscription_at": "someday",
                        "ending_at": "2020-01-01"})),
        )
        .await
        .expect(422);
    for (f, c) in [
        ("external_customer_id", "value_is_mandatory"),
        ("external_id", "value_is_mandatory"),
        ("billing_time", "value_is_invalid"),
        ("subscription_at", "invalid_date"),
        ("ending_at", "invalid_date"),
    ] {
        assert_eq!(r.body["error_details"][f], json!([c]), "{f}");
    }
    app.get("/api/v1/customers/acme").await.expect(404);
    let r = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"external_customer_id": "acme", "plan_code": "nope", "external_id": "s"})),
        )
        .await;
    assert_eq!(r.expect(404).body["code"], "plan_not_found");
    app.get("/api/v1/customers/acme").await.expect(404);
    let r = app.get("/api/v1/subscriptions/nope").await.expect(404);
    assert_eq!(r.body["code"], "subscription_not_found");
    app.put("/api/v1/subscriptions/nope", &sub(json!({"name": "x"}))).await.expect(404);
    app.delete("/api/v1/subscriptions/nope").await.expect(404);
    app.post(
        "/api/v1/subscriptions",
        &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s"})),
    )
    .await
    .ok();
    let r = app
        .put("/api/v1/subscriptions/s", &sub(json!({"ending_at": "2001-01-01", "on_termination_credit_note": "cash"})))
        .await
        .expect(422);
    assert_eq!(r.body["error_details"]["ending_at"], json!(["invalid_date"]));
    assert_eq!(r.body["error_details"]["on_termination_credit_note"], json!(["invalid_value"]));
    let u = app.put("/api/v1/subscriptions/s", &sub(json!({"on_termination_credit_note": "skip"}))).await.expect(200);
    assert_eq!(u.body["subscription"]["on_termination_credit_note"], "skip");
    // Another customer cannot take the same external id.
    let r = app
        .post(
            "/api/v1/subscriptions",
            &sub(json!({"external_customer_id": "other", "plan_code": "basic", "external_id": "s"})),
        )
        .await;
    assert_eq!(r.expect(422).body["error_details"]["external_id"], json!(["value_already_exist"]));
}

#[tokio::test]
async fn subscriptions_lock_their_plan_and_end_with_it_or_their_customer() {
    let app = TestApp::new().await;
    catalog(&app).await;
    app.post(
        "/api/v1/subscriptions",
        &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1"})),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &sub(json!({"external_customer_id": "bob", "plan_code": "pro", "external_id": "s2"})),
    )
    .await
    .ok();
    // A plan in use keeps its interval and currency; its amount may change.
    let p = app
        .put(
            "/api/v1/plans/basic",
            &json!({"plan": {"interval": "yearly", "amount_currency": "USD", "amount_cents": 1200}}),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            p.body["plan"]["interval"].clone(),
            p.body["plan"]["amount_currency"].clone(),
            p.body["plan"]["amount_cents"].clone()
        ),
        (json!("monthly"), json!("EUR"), json!(1200))
    );
    // Its charges keep their model and metric; their properties may change.
    let charge = p.body["plan"]["charges"][0]["lago_id"].clone();
    let c = app
        .put(
            "/api/v1/plans/basic",
            &json!({"plan": {"charges": [{"id": charge, "charge_model": "package", "pay_in_advance": true,
                "properties": {"amount": "0.2"}}]}}),
        )
        .await
        .expect(200);
    let c = &c.body["plan"]["charges"][0];
    assert_eq!(
        (c["lago_id"].clone(), c["charge_model"].clone(), c["pay_in_advance"].clone()),
        (charge, json!("standard"), json!(false))
    );
    assert_eq!(c["properties"]["amount"], "0.2");
    let deleted = app.delete("/api/v1/plans/basic").await.expect(200);
    assert_eq!(deleted.body["plan"]["pending_deletion"], true);
    assert_eq!(
        app.get("/api/v1/subscriptions/s1?status=terminated").await.expect(200).body["subscription"]["status"],
        "terminated"
    );
    app.post(
        "/api/v1/coupons",
        &json!({"coupon": {"name": "G", "code": "g", "coupon_type": "fixed_amount",
        "amount_cents": 100, "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration"}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/applied_coupons",
        &json!({"applied_coupon": {"external_customer_id": "bob", "coupon_code": "g"}}),
    )
    .await
    .ok();
    app.delete("/api/v1/customers/bob").await.expect(200);
    let applied = app.get("/api/v1/applied_coupons?status=terminated").await.ok();
    assert_eq!(applied.body["applied_coupons"][0]["external_customer_id"], "bob");
    assert_eq!(
        app.get("/api/v1/subscriptions/s2?status=terminated").await.expect(200).body["subscription"]["status"],
        "terminated"
    );
}

#[tokio::test]
async fn subscriptions_are_isolated_per_organization() {
    let app = TestApp::new().await;
    catalog(&app).await;
    app.post(
        "/api/v1/subscriptions",
        &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1"})),
    )
    .await
    .ok();
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", "/api/v1/subscriptions/s1", None).await.expect(404);
    app.call_as(&other, "DELETE", "/api/v1/subscriptions/s1", None).await.expect(404);
    app.call_as(&other, "PUT", "/api/v1/subscriptions/s1", Some(&sub(json!({"name": "x"})))).await.expect(404);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/subscriptions", None).await.ok().body["meta"]["total_count"], 0);
    // This organization's plan is unknown there.
    let r = app
        .call_as(
            &other,
            "POST",
            "/api/v1/subscriptions",
            Some(&sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1"}))),
        )
        .await;
    r.expect(404);
    assert_eq!(app.get("/api/v1/subscriptions/s1").await.expect(200).body["subscription"]["status"], "active");
}

/// Time passing, simulated by moving stored instants into the past: a pending subscription activates on its day, a
/// downgrade replaces its subscription at the period boundary, and `ending_at` terminates.
#[tokio::test]
async fn due_status_changes_apply_when_read() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let body = |plan: &str, id: &str, at: &str| {
        sub(json!({"external_customer_id": "acme", "plan_code": plan, "external_id": id, "subscription_at": at}))
    };
    app.post("/api/v1/subscriptions", &body("basic", "future", "2099-01-01T00:00:00Z")).await.ok();
    sqlx::query("UPDATE subscriptions SET subscription_at = now() - interval '1 day' WHERE external_id = 'future'")
        .execute(&app.pool)
        .await
        .unwrap();
    let s = app.get("/api/v1/subscriptions/future").await.expect(200);
    assert_eq!(s.body["subscription"]["status"], "active");
    assert!(s.body["subscription"]["started_at"].is_string());

    app.post("/api/v1/subscriptions", &body("pro", "down", "2026-01-01")).await.ok();
    app.post("/api/v1/subscriptions", &body("basic", "down", "2026-01-01")).await.ok();
    sqlx::query("UPDATE subscriptions SET activates_at = now() - interval '1 second' WHERE activates_at IS NOT NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    let s = app.get("/api/v1/subscriptions/down").await.expect(200);
    assert_eq!(
        (s.body["subscription"]["plan_code"].clone(), s.body["subscription"]["previous_plan_code"].clone()),
        (json!("basic"), json!("pro"))
    );
    let old = app.get("/api/v1/subscriptions/down?status=terminated").await.expect(200);
    assert_eq!(old.body["subscription"]["plan_code"], "pro");

    app.post("/api/v1/subscriptions", &body("basic", "ends", "2026-01-01")).await.ok();
    sqlx::query("UPDATE subscriptions SET ending_at = now() - interval '1 second' WHERE external_id = 'ends'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.get("/api/v1/subscriptions/ends").await.expect(404);
    let s = app.get("/api/v1/subscriptions/ends?status=terminated").await.expect(200);
    assert_eq!(s.body["subscription"]["terminated_at"], s.body["subscription"]["ending_at"]);
}

#[tokio::test]
async fn concurrent_creates_of_one_external_id_store_one() {
    let app = TestApp::new().await;
    catalog(&app).await;
    let body = sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1"}));
    let results = futures_join(&app, &body).await;
    assert!(results.iter().all(|s| *s == 200 || *s == 422), "{results:?}");
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE external_id = 's1' AND status = 'active'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
}

async fn futures_join(app: &TestApp, body: &Value) -> Vec<u16> {
    let (a, b, c) = tokio::join!(
        app.post("/api/v1/subscriptions", body),
        app.post("/api/v1/subscriptions", body),
        app.post("/api/v1/subscriptions", body)
    );
    vec![a.status, b.status, c.status]
}

#[tokio::test]
async fn charges_of_a_subscription_and_their_overrides() {
    let app = TestApp::new().await;
    catalog(&app).await;
    app.post(
        "/api/v1/subscriptions",
        &sub(json!({"external_customer_id": "acme", "plan_code": "basic", "external_id": "s1"})),
    )
    .await
    .ok();
    let l = app.get("/api/v1/subscriptions/s1/charges").await.expect(200);
    assert_eq!(l.body["meta"]["total_count"], 1);
    let parent_charge = l.body["charges"][0]["lago_id"].clone();
    assert_eq!(
        app.get("/api/v1/subscriptions/s1/charges/calls").await.expect(200).body["charge"]["lago_id"],
        parent_charge
    );
    let o = app
        .put(
            "/api/v1/subscriptions/s1/charges/calls",
            &json!({"charge": {"properties": {"amount": "0.07"}, "invoice_display_name": "Calls (Acme)", "charge_model": "package"}}),
        )
        .await
        .expect(200);
    let c = &o.body["charge"];
    assert_eq!((c["properties"]["amount"].clone(), c["charge_model"].clone()), (json!("0.07"), json!("standard")));
    assert_eq!(c["lago_parent_id"], parent_charge);
    let s = app.get("/api/v1/subscriptions/s1").await.ok();
    let copy = s.body["subscription"]["plan"].clone();
    assert!(copy["parent_id"].is_string());
    assert_eq!(app.get("/api/v1/plans/basic").await.ok().body["plan"]["charges"][0]["properties"]["amount"], "0.1");
    // A second override changes the same copy.
    let o =
        app.put("/api/v1/subscriptions/s1/charges/calls", &json!({"charge": {"properties": {"amount": "0.05"}}})).await;
    assert_eq!(o.expect(200).body["charge"]["properties"]["amount"], "0.05");
    assert_eq!(app.get("/api/v1/subscriptions/s1").await.ok().body["subscription"]["plan"]["lago_id"], copy["lago_id"]);
    let r =
        app.put("/api/v1/subscriptions/s1/charges/calls", &json!({"charge": {"properties": {"amount": "-1"}}})).await;
    assert_eq!(r.expect(422).body["error_details"]["properties"], json!(["invalid_amount"]));
    assert_eq!(app.get("/api/v1/subscriptions/s1/charges/nope").await.expect(404).body["code"], "charge_not_found");
    assert_eq!(app.get("/api/v1/subscriptions/nope/charges").await.expect(404).body["code"], "subscription_not_found");
    app.get("/api/v1/subscriptions/s1/charges?subscription_status=pending").await.expect(404);
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", "/api/v1/subscriptions/s1/charges", None).await.expect(404);
    let body = json!({"charge": {"properties": {"amount": "9"}}});
    app.call_as(&other, "PUT", "/api/v1/subscriptions/s1/charges/calls", Some(&body)).await.expect(404);
}
