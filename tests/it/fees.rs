//! `/api/v1/fees`, and the fees without an invoice that charges paid in advance but not invoiceable create per event.

use chrono::Utc;
use serde_json::{Value, json};

use crate::support::{Mode, TestApp, in_both_modes};

in_both_modes!(a_charge_paid_in_advance_that_is_not_invoiceable_bills_each_event_with_a_fee_of_its_own);

async fn a_charge_paid_in_advance_that_is_not_invoiceable_bills_each_event_with_a_fee_of_its_own(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": "20"}})).await.ok();
    app.post("/api/v1/webhook_endpoints", &json!({"webhook_endpoint": {"webhook_url": "http://127.0.0.1:9/hook"}}))
        .await
        .ok();
    let mut ids = Vec::new();
    for m in [
        json!({"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}),
        json!({"name": "Seats", "code": "seats", "aggregation_type": "sum_agg", "field_name": "n"}),
    ] {
        let r = app.post("/api/v1/billable_metrics", &json!({ "billable_metric": m })).await.ok();
        ids.push(r.body["billable_metric"]["lago_id"].clone());
    }
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "EUR",
            "charges": [
                {"billable_metric_id": ids[0], "charge_model": "standard", "pay_in_advance": true, "invoiceable": false,
                 "properties": {"amount": "2"}},
                {"billable_metric_id": ids[1], "charge_model": "standard", "pay_in_advance": true, "invoiceable": true,
                 "properties": {"amount": "5"}}]}}),
    )
    .await
    .ok();
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "acme", "tax_codes": ["vat"]}})).await.ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "p", "external_id": "s"}}),
    )
    .await
    .expect(200);
    let call = |tx: &str| json!({"event": {"transaction_id": tx, "external_subscription_id": "s", "code": "calls"}});
    for tx in ["c1", "c2", "c2"] {
        app.post("/api/v1/events", &call(tx)).await.expect(200);
    }
    let seat = json!({"event": {"transaction_id": "s1", "external_subscription_id": "s", "code": "seats",
                                "properties": {"n": 1}}});
    app.post("/api/v1/events", &seat).await.expect(200);
    app.settle().await;
    let tick = || async {
        billing::clock::tick(&app.pool, &*app.store, &app.tracker, Utc::now()).await.expect("billing clock")
    };
    // Only the invoiceable charge makes an invoice.
    assert_eq!(tick().await.invoices, 1);
    assert_eq!(tick().await.invoices, 0);

    let fees = app.get("/api/v1/fees?external_subscription_id=s&billable_metric_code=calls").await.expect(200);
    assert_eq!(fees.body["meta"]["total_count"], 2, "each call once: {}", fees.body);
    let list = fees.body["fees"].as_array().unwrap();
    let mut txs: Vec<&str> = list.iter().map(|f| f["event_transaction_id"].as_str().unwrap()).collect();
    txs.sort_unstable();
    assert_eq!(txs, ["c1", "c2"]);
    for f in list {
        assert_eq!(f["lago_invoice_id"], Value::Null);
        assert_eq!((f["amount_cents"].clone(), f["taxes_amount_cents"].clone()), (json!(200), json!(40)));
        assert_eq!(f["total_amount_cents"], 240);
        assert_eq!((f["pay_in_advance"].clone(), f["invoiceable"].clone()), (json!(true), json!(false)));
        assert_eq!(f["external_customer_id"], "acme");
        assert_eq!(f["applied_taxes"][0]["tax_code"], "vat");
        assert_eq!(f["applied_taxes"][0]["amount_cents"], 40);
        assert_eq!(f["payment_status"], "pending");
    }
    // The invoiced fee of the other charge is listed too, with its invoice.
    let all = app.get("/api/v1/fees?external_customer_id=acme").await.expect(200);
    assert_eq!(all.body["meta"]["total_count"], 3);
    let invoiced = app.get("/api/v1/fees?event_transaction_id=s1").await.expect(200);
    let invoiced = &invoiced.body["fees"][0];
    assert!(invoiced["lago_invoice_id"].is_string(), "{invoiced}");
    assert_eq!(invoiced["amount_cents"], 500);
    let invoiced_id = invoiced["lago_id"].as_str().unwrap().to_owned();

    // Each new fee sent `fee.created`.
    let webhooks: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE webhook_type = 'fee.created'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(webhooks, 3);

    // A standalone fee has its own payment status; an invoiced one follows its invoice.
    let first = list[0]["lago_id"].as_str().unwrap().to_owned();
    let r = app.put(&format!("/api/v1/fees/{first}"), &json!({"fee": {"payment_status": "succeeded"}})).await;
    let fee = &r.expect(200).body["fee"];
    assert_eq!(fee["payment_status"], "succeeded");
    assert!(fee["succeeded_at"].is_string());
    let r = app.put(&format!("/api/v1/fees/{first}"), &json!({"fee": {"payment_status": "paid"}})).await.expect(422);
    assert_eq!(r.body["error_details"]["payment_status"], json!(["value_is_invalid"]));
    let r = app.put(&format!("/api/v1/fees/{invoiced_id}"), &json!({"fee": {"payment_status": "succeeded"}})).await;
    assert_eq!(r.expect(405).body["code"], "invoiced_fee");
    let r = app.delete(&format!("/api/v1/fees/{invoiced_id}")).await.expect(405);
    assert_eq!(r.body["code"], "invoiced_fee");
    let paid = app.get("/api/v1/fees?payment_status=succeeded").await.expect(200);
    assert_eq!(paid.body["meta"]["total_count"], 1);

    // Filters are checked as Lago checks them.
    let r = app.get("/api/v1/fees?fee_type=nope&created_at_from=yesterday").await.expect(422);
    assert_eq!(r.body["error_details"]["fee_type"], json!(["value_is_invalid"]));
    assert_eq!(r.body["error_details"]["created_at_from"], json!(["invalid_date"]));
    app.get("/api/v1/fees/not-a-uuid").await.expect(404);

    // A deleted standalone fee leaves the listing, and its event is not billed again.
    app.delete(&format!("/api/v1/fees/{first}")).await.expect(200);
    app.get(&format!("/api/v1/fees/{first}")).await.expect(404);
    assert_eq!(tick().await.invoices, 0);
    let fees = app.get("/api/v1/fees?billable_metric_code=calls").await.expect(200);
    assert_eq!(fees.body["meta"]["total_count"], 1);
}

/// An event that comes in just before its period ends is billed in that period, even when the worker takes it
/// after the boundary.
#[tokio::test]
async fn an_event_queued_before_a_boundary_is_billed_in_its_own_period() {
    let app = TestApp::new().await;
    let calls = app
        .post(
            "/api/v1/billable_metrics",
            &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
        )
        .await
        .ok()
        .body["billable_metric"]["lago_id"]
        .clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "EUR",
            "charges": [{"billable_metric_id": calls, "charge_model": "standard", "pay_in_advance": true,
                         "invoiceable": false, "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "p", "external_id": "s",
                                 "subscription_at": "2025-01-01T00:00:00Z"}}),
    )
    .await
    .expect(200);
    let event = json!({"event": {"transaction_id": "late", "external_subscription_id": "s", "code": "calls",
                                 "timestamp": 1738367999}}); // 2025-01-31T23:59:59Z
    app.post("/api/v1/events", &event).await.expect(200);
    let at = "2025-02-01T00:00:05Z".parse().unwrap();
    billing::clock::tick(&app.pool, &*app.store, &app.tracker, at).await.expect("billing clock");
    let fees = app.get("/api/v1/fees?event_transaction_id=late").await.expect(200);
    assert_eq!(fees.body["meta"]["total_count"], 1, "{}", fees.body);
    let fee = &fees.body["fees"][0];
    assert_eq!(
        (fee["from_date"].clone(), fee["to_date"].clone()),
        (json!("2025-01-01T00:00:00Z"), json!("2025-01-31T23:59:59Z"))
    );
    assert_eq!(fee["amount_cents"], 100);
}
