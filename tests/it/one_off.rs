//! One-off invoices end to end through HTTP on real PostgreSQL: add-on fees priced and taxed by Lago's hierarchy
//! (the fee's tax codes, the add-on's, the customer's, the organization's), finalized and numbered at once even with
//! a grace period, with every amount worked out by hand; then every rejection Lago makes, each changing nothing.

use billing::domain::periods::local_date;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::TestApp;

async fn catalog(app: &TestApp) {
    for tax in [
        json!({"name": "VAT", "code": "vat", "rate": "20"}),
        json!({"name": "Reduced", "code": "reduced", "rate": "5.5"}),
        json!({"name": "Org", "code": "org10", "rate": "10", "applied_to_organization": true}),
    ] {
        app.post("/api/v1/taxes", &json!({ "tax": tax })).await.ok();
    }
    for add_on in [
        json!({"name": "Setup", "code": "setup", "amount_cents": 10000, "amount_currency": "EUR",
               "description": "One-time setup", "tax_codes": ["reduced"]}),
        json!({"name": "Support", "code": "support", "amount_cents": 2500, "amount_currency": "EUR"}),
        json!({"name": "Training", "code": "training", "amount_cents": 1500, "amount_currency": "EUR",
               "invoice_display_name": "Training day"}),
    ] {
        app.post("/api/v1/add_ons", &json!({ "add_on": add_on })).await.ok();
    }
    // A grace period and a payment term: one-off invoices skip the first and keep the second.
    app.put(
        "/api/v1/organizations",
        &json!({"organization": {"document_number_prefix": "ACME",
                                 "billing_configuration": {"invoice_grace_period": 3},
                                 "net_payment_term": 15}}),
    )
    .await
    .ok();
}

fn fee<'a>(invoice: &'a Value, code: &str) -> &'a Value {
    invoice["fees"].as_array().unwrap().iter().find(|f| f["item"]["code"] == code).unwrap()
}

#[tokio::test]
async fn a_one_off_invoice_bills_add_on_fees_to_the_cent_and_is_finalized_at_once() {
    let app = TestApp::new().await;
    catalog(&app).await;
    // No currency yet: the invoice's becomes the customer's.
    app.post(
        "/api/v1/customers",
        &json!({"customer": {"external_id": "acme", "name": "Acme", "timezone": "Asia/Tokyo", "tax_codes": ["vat"]}}),
    )
    .await
    .ok();
    let setup_id = app.get("/api/v1/add_ons/setup").await.ok().body["add_on"]["lago_id"].clone();
    let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
    let before = local_date(tz, Utc::now());
    let r = app
        .post(
            "/api/v1/invoices",
            &json!({"invoice": {"external_customer_id": "acme", "currency": "EUR", "fees": [
                {"add_on_code": "setup"},
                {"add_on_code": "support", "units": "2.5", "unit_amount_cents": 1999},
                {"add_on_code": "training", "units": 3, "unit_amount_cents": 2000, "tax_codes": ["reduced", "nope"],
                 "description": "Three seats", "invoice_display_name": "Onboarding",
                 "from_datetime": "2026-01-01T00:00:00Z", "to_datetime": "2026-01-31T23:59:59Z"}]}}),
        )
        .await
        .expect(200);
    let after = local_date(tz, Utc::now());
    let inv = &r.body["invoice"];
    assert_eq!(inv["invoice_type"], "one_off");
    assert_eq!(inv["status"], "finalized", "no grace period for one-off invoices");
    assert_eq!(inv["payment_status"], "pending");
    assert_eq!(inv["currency"], "EUR");
    assert_eq!(inv["number"], "ACME-001-001");
    assert_eq!(inv["sequential_id"], 1);
    let issuing: chrono::NaiveDate = inv["issuing_date"].as_str().unwrap().parse().unwrap();
    assert!(issuing == before || issuing == after, "issued today in Tokyo: {issuing}");
    assert_eq!(inv["payment_due_date"], (issuing + Duration::days(15)).to_string());
    assert_eq!(inv["net_payment_term"], 15);
    assert_eq!(inv["billing_periods"], json!([]));

    // Worked by hand:
    // setup: 1 × 100.00 (the add-on's amount), taxed by the add-on's 5.5 %: 5.50;
    // support: 2.5 × 19.99 = 49.975 -> 49.98, no add-on tax so the customer's 20 %: 9.995 -> 10.00 (9.996 exactly);
    // training: 3 × 20.00 = 60.00, its own tax codes (the unknown one ignored): 5.5 % = 3.30.
    let setup = fee(inv, "setup");
    assert_eq!(setup["amount_cents"], 10000);
    assert_eq!(setup["units"], "1");
    assert_eq!(setup["item"]["type"], "add_on");
    assert_eq!(setup["item"]["item_type"], "AddOn");
    assert_eq!(setup["item"]["lago_item_id"], setup_id);
    assert_eq!(setup["item"]["invoice_display_name"], "Setup");
    assert_eq!(setup["description"], "One-time setup");
    assert_eq!(setup["taxes_amount_cents"], 550);
    assert_eq!(setup["applied_taxes"][0]["tax_code"], "reduced");
    let support = fee(inv, "support");
    assert_eq!((support["amount_cents"].clone(), support["units"].clone()), (json!(4998), json!("2.5")));
    assert_eq!(support["precise_amount"], "49.975");
    assert_eq!(support["precise_unit_amount"], "19.99");
    assert_eq!(support["taxes_amount_cents"], 1000);
    assert_eq!(support["applied_taxes"][0]["tax_code"], "vat");
    let training = fee(inv, "training");
    assert_eq!(training["amount_cents"], 6000);
    assert_eq!(training["item"]["invoice_display_name"], "Onboarding");
    assert_eq!(training["description"], "Three seats");
    assert_eq!(training["from_date"], "2026-01-01T00:00:00Z");
    assert_eq!(training["to_date"], "2026-01-31T23:59:59Z");
    assert_eq!(training["applied_taxes"].as_array().unwrap().len(), 1);
    assert_eq!(training["taxes_amount_cents"], 330);
    // Fees 100.00 + 49.98 + 60.00 = 209.98; no coupon on one-off invoices; taxes: 5.5 % of 160.00 = 8.80 and
    // 20 % of 49.98 = 9.996, together 18.796 -> 18.80; total 228.78.
    assert_eq!(inv["fees_amount_cents"], 20998);
    assert_eq!(inv["coupons_amount_cents"], 0);
    assert_eq!(inv["sub_total_excluding_taxes_amount_cents"], 20998);
    assert_eq!(inv["taxes_amount_cents"], 1880);
    assert_eq!(inv["sub_total_including_taxes_amount_cents"], 22878);
    assert_eq!(inv["total_amount_cents"], 22878);
    assert_eq!(
        (inv["total_due_amount_cents"].clone(), inv["total_paid_amount_cents"].clone()),
        (json!(22878), json!(0))
    );
    let lines = inv["applied_taxes"].as_array().unwrap();
    let line = |code: &str| lines.iter().find(|t| t["tax_code"] == code).unwrap().clone();
    assert_eq!(
        (line("reduced")["amount_cents"].clone(), line("reduced")["fees_amount_cents"].clone()),
        (json!(880), json!(16000))
    );
    assert_eq!(
        (line("vat")["amount_cents"].clone(), line("vat")["fees_amount_cents"].clone()),
        (json!(1000), json!(4998))
    );

    // Stored as shown; listed among one-off invoices; the customer now has the invoice's currency.
    let id = inv["lago_id"].as_str().unwrap();
    let shown = app.get(&format!("/api/v1/invoices/{id}")).await.expect(200);
    assert_eq!(shown.body["invoice"]["total_amount_cents"], 22878);
    let list = app.get("/api/v1/invoices?invoice_type=one_off").await.expect(200);
    assert_eq!(list.body["meta"]["total_count"], 1);
    assert_eq!(app.get("/api/v1/customers/acme").await.ok().body["customer"]["currency"], "EUR");

    // A customer without taxes falls back on the organization's: 10 % of 25.00. A second customer has its own
    // sequence; the currency may differ from the add-on's.
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "beta", "name": "Beta", "currency": "USD"}}))
        .await
        .ok();
    let r = app
        .post(
            "/api/v1/invoices",
            &json!({"invoice": {"external_customer_id": "beta", "fees": [{"add_on_code": "support"}]}}),
        )
        .await
        .expect(200);
    let inv = &r.body["invoice"];
    assert_eq!((inv["currency"].clone(), inv["number"].clone()), (json!("USD"), json!("ACME-002-001")));
    assert_eq!(fee(inv, "support")["applied_taxes"][0]["tax_code"], "org10");
    assert_eq!((inv["taxes_amount_cents"].clone(), inv["total_amount_cents"].clone()), (json!(250), json!(2750)));
    // Nothing to pay: finalized all the same, and already paid.
    let r = app
        .post(
            "/api/v1/invoices",
            &json!({"invoice": {"external_customer_id": "beta", "fees": [{"add_on_code": "support", "unit_amount_cents": 0}]}}),
        )
        .await
        .expect(200);
    let inv = &r.body["invoice"];
    assert_eq!((inv["status"].clone(), inv["payment_status"].clone()), (json!("finalized"), json!("succeeded")));
    assert_eq!((inv["total_amount_cents"].clone(), inv["number"].clone()), (json!(0), json!("ACME-002-002")));
}

#[tokio::test]
async fn rejected_one_off_invoices_answer_lagos_errors_and_change_nothing() {
    let app = TestApp::new().await;
    catalog(&app).await;
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "acme", "name": "Acme"}})).await.ok();
    let post = |invoice: Value| {
        let app = &app;
        async move { app.post("/api/v1/invoices", &json!({ "invoice": invoice })).await }
    };
    let setup = json!([{"add_on_code": "setup"}]);
    // Lago's order: the customer, then the fees, then the add-ons, then the fields.
    let r = post(json!({"external_customer_id": "nobody", "fees": []})).await.expect(404);
    assert_eq!(r.body["code"], "customer_not_found");
    for fees in [json!(null), json!([]), json!("setup")] {
        let r = post(json!({"external_customer_id": "acme", "currency": "EUR", "fees": fees})).await.expect(404);
        assert_eq!(r.body["code"], "fees_not_found");
    }
    let r = post(json!({"external_customer_id": "acme", "currency": "XXX", "fees": [{"add_on_code": "setup"},
                                                                                      {"add_on_code": "nope"}]}))
    .await
    .expect(404);
    assert_eq!(r.body["code"], "add_on_not_found");
    let r = post(json!({"external_customer_id": "acme", "currency": "EUR", "fees": [{"units": 1}]})).await.expect(404);
    assert_eq!(r.body["code"], "add_on_not_found");
    // No currency asked and none on the customer.
    let r = post(json!({"external_customer_id": "acme", "fees": setup})).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"currency": ["value_is_mandatory"]}));
    let r = post(json!({"external_customer_id": "acme", "currency": "XXX", "fees": setup})).await.expect(422);
    assert_eq!(r.body["error_details"], json!({"currency": ["value_is_invalid"]}));
    // Every field error at once.
    let r = post(json!({"external_customer_id": "acme", "currency": "EUR", "fees": [
        {"add_on_code": "setup", "units": "-1"},
        {"add_on_code": "support", "from_datetime": "2026-02-01T00:00:00Z"},
        {"add_on_code": "support", "unit_amount_cents": "ten"}]}))
    .await
    .expect(422);
    assert_eq!(
        r.body["error_details"],
        json!({"units": ["value_is_out_of_range"], "boundaries": ["values_are_invalid"],
               "unit_amount_cents": ["value_is_invalid"]})
    );
    // A negative unit amount may not make a negative invoice.
    let r = post(json!({"external_customer_id": "acme", "currency": "EUR",
                        "fees": [{"add_on_code": "setup", "unit_amount_cents": -100}]}))
    .await
    .expect(422);
    assert_eq!(r.body["error_details"], json!({"total_amount_cents": ["value_is_out_of_range"]}));
    let r = app.post("/api/v1/invoices", &json!({"external_customer_id": "acme"})).await.expect(400);
    assert_eq!(r.body["error"], "BadRequest: param is missing or the value is empty or invalid: invoice");

    // Nothing was written: no invoice, the customer still has no currency, numbering starts at 1.
    assert_eq!(app.get("/api/v1/invoices").await.expect(200).body["meta"]["total_count"], 0);
    assert_eq!(app.get("/api/v1/customers/acme").await.ok().body["customer"]["currency"], Value::Null);
    let r = post(json!({"external_customer_id": "acme", "currency": "EUR", "fees": setup})).await.expect(200);
    assert!(r.body["invoice"]["number"].as_str().unwrap().ends_with("-001-001"));
}

/// Regression: each transaction's invoice insert holds a key-share lock on the customer and the organization, so
/// finalization locking them FOR UPDATE deadlocked concurrent invoices of one customer (a 500 for all but one).
#[tokio::test]
async fn concurrent_one_off_invoices_of_a_customer_take_consecutive_numbers() {
    let app = TestApp::new().await;
    catalog(&app).await;
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "acme", "name": "Acme", "currency": "EUR"}}))
        .await
        .ok();
    let body = json!({"invoice": {"external_customer_id": "acme", "fees": [{"add_on_code": "support"}]}});
    let (a, b, c) = tokio::join!(
        app.post("/api/v1/invoices", &body),
        app.post("/api/v1/invoices", &body),
        app.post("/api/v1/invoices", &body)
    );
    let mut numbers: Vec<String> =
        [a, b, c].into_iter().map(|r| r.expect(200).body["invoice"]["number"].as_str().unwrap().to_owned()).collect();
    numbers.sort();
    assert_eq!(numbers, ["ACME-001-001", "ACME-001-002", "ACME-001-003"]);
}
