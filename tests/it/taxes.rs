//! `/api/v1/taxes` and `/api/v1/add_ons` (which apply taxes) through HTTP on real PostgreSQL.

use serde_json::{Value, json};

use crate::support::TestApp;

fn vat() -> Value {
    json!({"tax": {"name": "VAT", "code": "vat", "rate": 20.5, "description": "French VAT"}})
}

#[tokio::test]
async fn tax_crud() {
    let app = TestApp::new().await;
    let t = app.post("/api/v1/taxes", &vat()).await.expect(200).body["tax"].clone();
    assert_eq!((t["name"].clone(), t["code"].clone(), t["rate"].clone()), (json!("VAT"), json!("vat"), json!(20.5)));
    assert_eq!(t["applied_to_organization"], false);
    assert_eq!(app.get("/api/v1/taxes/vat").await.expect(200).body["tax"]["lago_id"], t["lago_id"]);
    let u = app.put("/api/v1/taxes/vat", &json!({"tax": {"rate": "5.5", "code": "vat_low"}})).await.expect(200);
    assert_eq!((u.body["tax"]["rate"].clone(), u.body["tax"]["code"].clone()), (json!(5.5), json!("vat_low")));
    app.get("/api/v1/taxes/vat").await.expect(404);
    app.post("/api/v1/taxes", &json!({"tax": {"name": "B", "code": "b", "rate": 1}})).await.ok();
    let page = app.get("/api/v1/taxes?per_page=1&page=2").await.expect(200);
    assert_eq!(page.body["meta"]["total_count"], 2);
    assert_eq!(page.body["taxes"].as_array().unwrap().len(), 1);
    app.delete("/api/v1/taxes/vat_low").await.expect(200);
    app.delete("/api/v1/taxes/vat_low").await.expect(404);
    // The code can be used again once deleted.
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat_low", "rate": 5}})).await.expect(200);
}

#[tokio::test]
async fn tax_validation_and_not_found() {
    let app = TestApp::new().await;
    let r = app.post("/api/v1/taxes", &json!({"tax": {"description": "x"}})).await.expect(422);
    assert_eq!(
        r.body["error_details"],
        json!({"name": ["value_is_mandatory"], "code": ["value_is_mandatory"], "rate": ["value_is_mandatory"]})
    );
    app.post("/api/v1/taxes", &vat()).await.ok();
    let r = app.post("/api/v1/taxes", &vat()).await.expect(422);
    assert_eq!(r.body["error_details"]["code"], json!(["value_already_exist"]));
    let r = app.put("/api/v1/taxes/vat", &json!({"tax": {"rate": "abc"}})).await.expect(422);
    assert_eq!(r.body["error_details"]["rate"], json!(["value_is_invalid"]));
    let r = app.put("/api/v1/taxes/nope", &json!({"tax": {"rate": 1}})).await.expect(404);
    assert_eq!(r.body["code"], "tax_not_found");
    app.delete("/api/v1/taxes/nope").await.expect(404);
}

#[tokio::test]
async fn taxes_and_add_ons_are_isolated_per_organization() {
    let app = TestApp::new().await;
    app.post("/api/v1/taxes", &vat()).await.ok();
    app.post(
        "/api/v1/add_ons",
        &json!({"add_on": {"name": "Setup", "code": "setup", "amount_cents": 100, "amount_currency": "EUR"}}),
    )
    .await
    .ok();
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", "/api/v1/taxes/vat", None).await.expect(404);
    app.call_as(&other, "GET", "/api/v1/add_ons/setup", None).await.expect(404);
    app.call_as(&other, "DELETE", "/api/v1/taxes/vat", None).await.expect(404);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/taxes", None).await.ok().body["meta"]["total_count"], 0);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/add_ons", None).await.ok().body["meta"]["total_count"], 0);
    // The other organization can use the same codes, and cannot apply this one's tax.
    app.call_as(&other, "POST", "/api/v1/taxes", Some(&vat())).await.expect(200);
    let r = app
        .call_as(
            &other,
            "POST",
            "/api/v1/add_ons",
            Some(&json!({"add_on": {"name": "S", "code": "s", "amount_cents": 1, "amount_currency": "EUR",
                                    "tax_codes": ["vat", "gst"]}})),
        )
        .await
        .expect(404);
    assert_eq!(r.body["code"], "tax_not_found");
}

#[tokio::test]
async fn add_on_crud_with_taxes() {
    let app = TestApp::new().await;
    app.post("/api/v1/taxes", &vat()).await.ok();
    let r = app
        .post(
            "/api/v1/add_ons",
            &json!({"add_on": {"name": "Setup", "code": "setup", "amount_cents": 50000, "amount_currency": "USD",
                               "invoice_display_name": "Setup fee", "description": "once", "tax_codes": ["vat"]}}),
        )
        .await
        .expect(200);
    let a = &r.body["add_on"];
    assert_eq!((a["amount_cents"].clone(), a["amount_currency"].clone()), (json!(50000), json!("USD")));
    assert_eq!(a["taxes"][0]["code"], "vat");
    assert_eq!(a["invoice_display_name"], "Setup fee");
    let u = app.put("/api/v1/add_ons/setup", &json!({"add_on": {"amount_cents": 100, "tax_codes": []}})).await;
    let u = u.expect(200);
    assert_eq!(u.body["add_on"]["amount_cents"], 100);
    assert_eq!(u.body["add_on"]["taxes"], json!([]));
    assert_eq!(u.body["add_on"]["description"], "once");
    assert_eq!(app.get("/api/v1/add_ons").await.ok().body["add_ons"][0]["code"], "setup");
    app.delete("/api/v1/add_ons/setup").await.expect(200);
    app.get("/api/v1/add_ons/setup").await.expect(404);
}

#[tokio::test]
async fn add_on_validation_and_not_found() {
    let app = TestApp::new().await;
    let r = app.post("/api/v1/add_ons", &json!({"add_on": {"amount_cents": -1, "amount_currency": "ZZZ"}})).await;
    assert_eq!(
        r.expect(422).body["error_details"],
        json!({"name": ["value_is_mandatory"], "code": ["value_is_mandatory"],
               "amount_cents": ["value_is_out_of_range"], "amount_currency": ["value_is_invalid"]})
    );
    let r = app.post("/api/v1/add_ons", &json!({"add_on": {"name": "A", "code": "a", "amount_cents": "x"}})).await;
    assert_eq!(r.expect(422).body["error_details"]["amount_cents"], json!(["value_is_invalid"]));
    let r = app.get("/api/v1/add_ons/nope").await.expect(404);
    assert_eq!(r.body["code"], "add_on_not_found");
    app.put("/api/v1/add_ons/nope", &json!({"add_on": {"name": "x"}})).await.expect(404);
    // A failed tax lookup leaves nothing behind.
    let r = app
        .post(
            "/api/v1/add_ons",
            &json!({"add_on": {"name": "A", "code": "a", "amount_cents": 1, "amount_currency": "EUR",
                               "tax_codes": ["missing"]}}),
        )
        .await;
    r.expect(404);
    app.get("/api/v1/add_ons/a").await.expect(404);
}
