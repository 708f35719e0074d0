//! Past usage end to end through HTTP on real PostgreSQL: two months billed by the clock, then the subscription's
//! `usage_periods` read back from the stored fees (newest first, paged, limited, filtered by metric), a voided
//! invoice leaving its period out, and Lago's answers to bad queries.

use aggregate::postgres::PgEventStore;
use billing::clock::tick;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::TestApp;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn charge<'a>(period: &'a Value, code: &str) -> &'a Value {
    period["charges_usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["billable_metric"]["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {period}"))
}

#[tokio::test]
async fn past_usage_lists_the_billed_periods_from_the_stored_fees() {
    let app = TestApp::new().await;
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": "20"}})).await.ok();
    for m in [
        json!({"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}),
        json!({"name": "Storage", "code": "storage", "aggregation_type": "sum_agg", "field_name": "gb"}),
    ] {
        app.post("/api/v1/billable_metrics", &json!({ "billable_metric": m })).await.ok();
    }
    let id = |code: &'static str| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/billable_metrics/{code}")).await.ok().body["billable_metric"]["lago_id"].clone()
        }
    };
    let (calls, storage) = (id("calls").await, id("storage").await);
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 1000,
            "amount_currency": "EUR", "charges": [
                {"billable_metric_id": calls, "charge_model": "standard", "properties": {"amount": "0.1"}},
                {"billable_metric_id": storage, "charge_model": "standard", "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "acme", "name": "Acme", "tax_codes": ["vat"]}}))
        .await
        .ok();
    for sub in ["sub-1", "sub-2"] {
        app.post(
            "/api/v1/subscriptions",
            &json!({"subscription": {"external_customer_id": "acme", "plan_code": "pro", "external_id": sub,
                                     "billing_time": "calendar", "subscription_at": "2025-01-01T00:00:00Z"}}),
        )
        .await
        .expect(200);
    }
    let mut events = Vec::new();
    let ev = |tx: String, code: &str, ts: &str, props: Value| {
        json!({"transaction_id": tx, "external_subscription_id": "sub-1", "code": code,
               "timestamp": at(ts).timestamp(), "properties": props})
    };
    for i in 0..10 {
        events.push(ev(format!("jan-{i}"), "calls", "2025-01-10T10:00:00Z", json!({})));
    }
    events.push(ev("gb-1".into(), "storage", "2025-01-11T00:00:00Z", json!({"gb": 2})));
    events.push(ev("gb-2".into(), "storage", "2025-01-12T00:00:00Z", json!({"gb": 3})));
    for i in 0..4 {
        events.push(ev(format!("feb-{i}"), "calls", "2025-02-10T10:00:00Z", json!({})));
    }
    app.post("/api/v1/events/batch", &json!({"events": events})).await.expect(200);
    let store = PgEventStore::new(app.pool.clone());
    // Both subscriptions are billed each month; only sub-1's periods are its past usage.
    assert_eq!(tick(&app.pool, &store, &app.tracker, at("2025-02-01T00:00:05Z")).await.unwrap().invoices, 2);
    assert_eq!(tick(&app.pool, &store, &app.tracker, at("2025-03-01T00:00:05Z")).await.unwrap().invoices, 2);

    let r = app.get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1").await.expect(200);
    assert_eq!(r.body["meta"]["total_count"], 2);
    let periods = r.body["usage_periods"].as_array().unwrap();
    let (feb, jan) = (&periods[0], &periods[1]);
    // February: the plan's 10.00 and 4 calls at 0.10; VAT 20 % of 10.40 = 2.08.
    assert_eq!(feb["from_datetime"], "2025-02-01T00:00:00Z");
    assert_eq!(feb["to_datetime"], "2025-02-28T23:59:59Z");
    assert_eq!(feb["issuing_date"], "2025-03-01");
    assert_eq!(feb["currency"], "EUR");
    assert_eq!((feb["amount_cents"].clone(), feb["taxes_amount_cents"].clone()), (json!(1040), json!(208)));
    assert_eq!(feb["total_amount_cents"], 1248);
    assert_eq!(
        (charge(feb, "calls")["units"].clone(), charge(feb, "calls")["amount_cents"].clone()),
        (json!("4"), json!(40))
    );
    assert_eq!(charge(feb, "calls")["charge"]["charge_model"], "standard");
    // January: 10.00, 10 calls (1.00) and 5 GB at 1.00 (5.00); VAT 20 % of 16.00 = 3.20.
    assert_eq!(jan["from_datetime"], "2025-01-01T00:00:00Z");
    assert_eq!((jan["amount_cents"].clone(), jan["taxes_amount_cents"].clone()), (json!(1600), json!(320)));
    assert_eq!(jan["total_amount_cents"], 1920);
    assert_eq!(
        (charge(jan, "calls")["units"].clone(), charge(jan, "calls")["amount_cents"].clone()),
        (json!("10"), json!(100))
    );
    assert_eq!(
        (charge(jan, "storage")["units"].clone(), charge(jan, "storage")["amount_cents"].clone()),
        (json!("5"), json!(500))
    );
    assert_eq!(charge(jan, "storage")["events_count"], 2);
    // Each period names its invoice.
    let inv = app.get(&format!("/api/v1/invoices/{}", jan["lago_invoice_id"].as_str().unwrap())).await.expect(200);
    assert_eq!(inv.body["invoice"]["fees_amount_cents"], 1600);

    // The latest period only; one page of one; one metric.
    let r =
        app.get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1&periods_count=1").await.expect(200);
    assert_eq!(r.body["usage_periods"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["usage_periods"][0]["from_datetime"], "2025-02-01T00:00:00Z");
    let r =
        app.get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1&per_page=1&page=2").await.expect(200);
    assert_eq!(r.body["usage_periods"][0]["from_datetime"], "2025-01-01T00:00:00Z");
    assert_eq!((r.body["meta"]["current_page"].clone(), r.body["meta"]["total_pages"].clone()), (json!(2), json!(2)));
    let r = app
        .get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1&billable_metric_code=storage")
        .await
        .expect(200);
    let jan = &r.body["usage_periods"][1];
    assert_eq!(jan["charges_usage"].as_array().unwrap().len(), 1);
    assert_eq!(charge(jan, "storage")["amount_cents"], 500);

    // A voided invoice bills nothing: its period leaves the past usage.
    let feb_id = periods[0]["lago_invoice_id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/invoices/{feb_id}/void"), &json!({})).await.expect(200);
    let r = app.get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1").await.expect(200);
    assert_eq!(r.body["meta"]["total_count"], 1);
    assert_eq!(r.body["usage_periods"][0]["from_datetime"], "2025-01-01T00:00:00Z");

    // Lago's answers to bad queries.
    for q in ["", "?external_subscription_id=", "?external_subscription_id=%20"] {
        let r = app.get(&format!("/api/v1/customers/acme/past_usage{q}")).await.expect(422);
        assert_eq!(r.body["error_details"], json!({"external_subscription_id": ["value_is_mandatory"]}));
    }
    let r = app
        .get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1&billable_metric_code=nope")
        .await
        .expect(404);
    assert_eq!(r.body["code"], "billable_metric_not_found");
    let r =
        app.get("/api/v1/customers/acme/past_usage?external_subscription_id=sub-1&periods_count=x").await.expect(422);
    assert_eq!(r.body["error_details"], json!({"periods_count": ["value_is_invalid"]}));
    // An unknown customer or subscription has no past usage (Lago: an empty list, not a 404).
    for path in [
        "/api/v1/customers/nobody/past_usage?external_subscription_id=sub-1",
        "/api/v1/customers/acme/past_usage?external_subscription_id=nope",
    ] {
        let r = app.get(path).await.expect(200);
        assert_eq!((r.body["usage_periods"].clone(), r.body["meta"]["total_count"].clone()), (json!([]), json!(0)));
    }
}
