//! Credit notes end to end: a yearly plan paid in advance, terminated a few days in, gives back its unused days
//! (with their VAT) as a credit note, which pays the customer's next invoice after taxes; the note is read through
//! Lago's API, and a second attempt issues nothing.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn terminating_a_plan_paid_in_advance_credits_the_unused_days_and_the_next_invoice_uses_them() {
    let app = TestApp::new().await;
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": "20"}})).await.ok();
    app.post(
        "/api/v1/customers",
        &json!({"customer": {"external_id": "acme", "name": "Acme", "currency": "EUR", "tax_codes": ["vat"]}}),
    )
    .await
    .ok();
    for (code, interval, cents) in [("yearly", "yearly", 36_500), ("monthly", "monthly", 1_000)] {
        app.post(
            "/api/v1/plans",
            &json!({"plan": {"name": code, "code": code, "interval": interval, "amount_cents": cents,
                             "amount_currency": "EUR", "pay_in_advance": true}}),
        )
        .await
        .expect(200);
    }
    // Started three days ago on its anniversary: the whole year was billed at once.
    let today = Utc::now().date_naive();
    let start = today - Duration::days(3);
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "yearly", "external_id": "y",
                                 "billing_time": "anniversary",
                                 "subscription_at": format!("{start}T00:00:00Z")}}),
    )
    .await
    .expect(200);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    let paid = list.body["invoices"][0].clone();
    assert_eq!((paid["fees_amount_cents"].clone(), paid["total_amount_cents"].clone()), (json!(36_500), json!(43_800)));

    // Terminated today: the days after today come back. A year from the anniversary holds 365 or 366 days.
    let next =
        NaiveDate::from_ymd_opt(start.year() + 1, start.month(), start.day()).unwrap_or(start + Duration::days(365));
    let period_days = (next - start).num_days();
    let remaining = (next - today).num_days() - 1;
    app.delete("/api/v1/subscriptions/y").await.expect(200);
    let notes = app.get("/api/v1/credit_notes?external_customer_id=acme").await.expect(200);
    assert_eq!(notes.body["meta"]["total_count"], 1);
    let note = notes.body["credit_notes"][0].clone();
    // 365.00 a year: 1.00 (or 0.99727 in a leap year) a day, truncated to five places, plus 20 % VAT.
    let item = (rust_decimal::Decimal::from(36_500 * remaining) / rust_decimal::Decimal::from(period_days))
        .trunc_with_scale(5);
    let cents = |d: rust_decimal::Decimal| {
        d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_string()
            .parse::<i64>()
            .unwrap()
    };
    let total = cents(item * rust_decimal::Decimal::new(12, 1));
    assert_eq!(note["reason"], "order_cancellation");
    assert_eq!(note["credit_status"], "available");
    assert_eq!(note["lago_invoice_id"], paid["lago_id"]);
    assert_eq!(note["number"], format!("{}-CN001", paid["number"].as_str().unwrap()));
    assert_eq!(note["sub_total_excluding_taxes_amount_cents"], cents(item));
    assert_eq!(note["taxes_amount_cents"], total - cents(item));
    assert_eq!((note["total_amount_cents"].clone(), note["credit_amount_cents"].clone()), (json!(total), json!(total)));
    assert_eq!(note["items"][0]["amount_cents"], cents(item));
    assert_eq!(note["items"][0]["fee"]["item"]["type"], "subscription");
    assert_eq!(note["applied_taxes"][0]["tax_code"], "vat");
    // The final invoice of the terminated subscription has nothing to bill, so the balance is untouched.
    let id = note["lago_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/credit_notes/{id}")).await.expect(200).body["credit_note"]["balance_amount_cents"],
        total
    );
    // The clock looks for missing notes and finds this one issued: nothing new.
    let store = aggregate::postgres::PgEventStore::new(app.pool.clone());
    billing::clock::tick(&app.pool, &store, &app.tracker, Utc::now()).await.expect("billing clock");
    let again = app.get("/api/v1/credit_notes").await.expect(200);
    assert_eq!(again.body["meta"]["total_count"], 1);

    // A new monthly plan paid in advance: its first invoice (10.00 + 2.00 VAT) is paid by the note.
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "monthly", "external_id": "m",
                                 "billing_time": "anniversary"}}),
    )
    .await
    .expect(200);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    let next_invoice = &list.body["invoices"][0];
    assert_eq!(next_invoice["sub_total_including_taxes_amount_cents"], 1200);
    assert_eq!(next_invoice["credit_notes_amount_cents"], 1200);
    assert_eq!(next_invoice["total_amount_cents"], 0);
    let credit = &next_invoice["credits"][0];
    assert_eq!((credit["item"]["type"].clone(), credit["amount_cents"].clone()), (json!("credit_note"), json!(1200)));
    assert_eq!(credit["item"]["lago_item_id"], note["lago_id"]);
    assert_eq!(credit["before_taxes"], false);
    let after = app.get(&format!("/api/v1/credit_notes/{id}")).await.expect(200);
    assert_eq!(after.body["credit_note"]["balance_amount_cents"], total - 1200);
    // A page past the end still counts what matches.
    let past = app.get("/api/v1/credit_notes?page=3&per_page=1").await.expect(200);
    assert_eq!(
        (past.body["credit_notes"].as_array().unwrap().len(), past.body["meta"]["total_count"].clone()),
        (0, json!(1))
    );
    let past = app.get("/api/v1/invoices?external_customer_id=acme&page=9&per_page=1").await.expect(200);
    assert_eq!(past.body["meta"]["total_count"], 3);
    let filtered = app.get("/api/v1/credit_notes?credit_status=consumed").await.expect(200);
    assert_eq!(filtered.body["meta"]["total_count"], 0);
    app.get("/api/v1/credit_notes/5f0c1e1a-0000-4000-8000-000000000000").await.expect(404);
    app.get("/api/v1/credit_notes/not-a-uuid").await.expect(404);
}
