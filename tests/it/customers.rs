//! `/api/v1/customers` through HTTP on real PostgreSQL: create-or-update by external_id, validation, isolation.

use serde_json::{Value, json};

use crate::support::TestApp;

fn acme() -> Value {
    json!({"customer": {
        "external_id": "acme", "name": "Acme", "email": "billing@acme.com", "currency": "EUR",
        "timezone": "Europe/Paris", "country": "fr", "address_line1": "1 rue X", "city": "Paris", "zipcode": "75001",
        "net_payment_term": 30, "legal_name": "Acme SAS", "customer_type": "company",
        "billing_configuration": {"invoice_grace_period": 3, "document_locale": "fr"},
        "shipping_address": {"city": "Lyon", "country": "FR"},
        "metadata": [{"key": "crm", "value": "42", "display_in_invoice": true}]
    }})
}

#[tokio::test]
async fn create_then_update_by_external_id() {
    let app = TestApp::new().await;
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": 20}})).await.ok();
    let mut body = acme();
    body["customer"]["tax_codes"] = json!(["vat"]);
    let c = app.post("/api/v1/customers", &body).await.expect(200).body["customer"].clone();
    assert_eq!(c["external_id"], "acme");
    assert_eq!(c["country"], "FR");
    assert_eq!(c["timezone"], "Europe/Paris");
    assert_eq!(c["applicable_timezone"], "Europe/Paris");
    assert_eq!(c["currency"], "EUR");
    assert_eq!(c["net_payment_term"], 30);
    assert_eq!(c["sequential_id"], 1);
    assert!(c["slug"].as_str().unwrap().ends_with("-001"), "{}", c["slug"]);
    assert_eq!(c["billing_configuration"], json!({"invoice_grace_period": 3, "document_locale": "fr"}));
    assert_eq!(c["shipping_address"]["city"], "Lyon");
    assert_eq!(c["metadata"][0]["key"], "crm");
    assert_eq!(c["taxes"][0]["code"], "vat");
    // The same external_id updates: absent fields stay, null clears.
    let u = app
        .post(
            "/api/v1/customers",
            &json!({"customer": {"external_id": "acme", "name": "Acme Inc", "email": null,
                                 "metadata": [{"key": "crm", "value": "43"}]}}),
        )
        .await
        .expect(200);
    let u = &u.body["customer"];
    assert_eq!(u["lago_id"], c["lago_id"]);
    assert_eq!(
        (u["name"].clone(), u["email"].clone(), u["city"].clone()),
        (json!("Acme Inc"), Value::Null, json!("Paris"))
    );
    assert_eq!(u["metadata"][0]["lago_id"], c["metadata"][0]["lago_id"]);
    assert_eq!(u["metadata"][0]["value"], "43");
    assert_eq!(u["taxes"][0]["code"], "vat");
    let other = app.post("/api/v1/customers", &json!({"customer": {"external_id": "b"}})).await.expect(200);
    assert_eq!(other.body["customer"]["sequential_id"], 2);
    assert_eq!(other.body["customer"]["applicable_timezone"], "UTC");
    let page = app.get("/api/v1/customers?per_page=1").await.expect(200);
    assert_eq!(
        (page.body["meta"]["total_count"].clone(), page.body["meta"]["next_page"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(app.get("/api/v1/customers/acme").await.expect(200).body["customer"]["name"], "Acme Inc");
    app.delete("/api/v1/customers/acme").await.expect(200);
    app.get("/api/v1/customers/acme").await.expect(404);
    // A deleted customer's external_id starts a new customer.
    let again = app.post("/api/v1/customers", &json!({"customer": {"external_id": "acme"}})).await.expect(200);
    assert_ne!(again.body["customer"]["lago_id"], c["lago_id"]);
    assert_eq!(again.body["customer"]["sequential_id"], 3);
}

#[tokio::test]
async fn validation_errors_change_nothing() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/api/v1/customers",
            &json!({"customer": {"external_id": "x", "currency": "EURO", "timezone": "Mars/Olympus",
                                 "country": "XX", "email": "not-an-email", "net_payment_term": -1,
                                 "billing_configuration": {"invoice_grace_period": -1, "document_locale": "xx"}}}),
        )
        .await
        .expect(422);
    assert_eq!(
        r.body["error_details"],
        json!({"currency": ["value_is_invalid"], "timezone": ["invalid_timezone"],
               "country": ["not_a_valid_country_code"], "email": ["invalid_email_format"],
               "net_payment_term": ["value_is_out_of_range"], "invoice_grace_period": ["value_is_out_of_range"],
               "document_locale": ["not_a_valid_language_code"]})
    );
    app.get("/api/v1/customers/x").await.expect(404);
    let r = app.post("/api/v1/customers", &json!({"customer": {"name": "no id"}})).await.expect(422);
    assert_eq!(r.body["error_details"]["external_id"], json!(["value_is_mandatory"]));
    let r = app.post("/api/v1/customers", &json!({"customer": {"external_id": "x", "tax_codes": ["nope"]}})).await;
    assert_eq!(r.expect(404).body["code"], "tax_not_found");
    app.get("/api/v1/customers/x").await.expect(404);
    let r = app.get("/api/v1/customers/missing").await.expect(404);
    assert_eq!(r.body["code"], "customer_not_found");
    app.delete("/api/v1/customers/missing").await.expect(404);
}

#[tokio::test]
async fn customers_are_isolated_per_organization() {
    let app = TestApp::new().await;
    app.post("/api/v1/customers", &acme()).await.ok();
    let other = app.new_org("Other").await;
    app.call_as(&other, "GET", "/api/v1/customers/acme", None).await.expect(404);
    app.call_as(&other, "DELETE", "/api/v1/customers/acme", None).await.expect(404);
    assert_eq!(app.call_as(&other, "GET", "/api/v1/customers", None).await.ok().body["meta"]["total_count"], 0);
    // Same external_id in another organization is another customer, numbered from 1 there.
    let r = app.call_as(&other, "POST", "/api/v1/customers", Some(&json!({"customer": {"external_id": "acme"}}))).await;
    assert_eq!(r.expect(200).body["customer"]["sequential_id"], 1);
    assert_eq!(app.get("/api/v1/customers/acme").await.ok().body["customer"]["name"], "Acme");
}

#[tokio::test]
async fn list_filters_as_lago() {
    let app = TestApp::new().await;
    let customers = [
        json!({"external_id": "a", "name": "Alpha 100%", "country": "FR", "currency": "EUR", "state": "Paris",
               "zipcode": "75001", "customer_type": "company", "tax_identification_number": "FR1",
               "metadata": [{"key": "tier", "value": "gold"}]}),
        json!({"external_id": "b", "name": "Beta", "email": "ops@beta.io", "country": "US", "currency": "USD",
               "customer_type": "individual", "metadata": [{"key": "tier", "value": "silver"}]}),
        json!({"external_id": "c", "lastname": "Gamma", "country": "FR"}),
    ];
    for c in customers {
        app.post("/api/v1/customers", &json!({ "customer": c })).await.ok();
    }
    let ids = |r: crate::support::Resp| -> Vec<String> {
        let mut v: Vec<String> = r.body["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["external_id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let cases = [
        ("search_term=beta", vec!["b"]),
        ("search_term=BETA.IO", vec!["b"]),
        ("search_term=100%25", vec!["a"]),
        ("search_term=gam", vec!["c"]),
        ("countries[]=fr", vec!["a", "c"]),
        ("countries[]=FR&currencies[]=EUR", vec!["a"]),
        ("states[]=Paris&zipcodes[]=75001", vec!["a"]),
        ("has_tax_identification_number=false", vec!["b", "c"]),
        ("customer_type=individual", vec!["b"]),
        ("has_customer_type=false", vec!["c"]),
        ("account_type[]=partner", vec![]),
        ("account_type[]=customer&metadata[tier]=gold", vec!["a"]),
        ("metadata[tier]=", vec!["c"]),
    ];
    for (query, expected) in cases {
        let r = app.get(&format!("/api/v1/customers?{query}")).await.expect(200);
        assert_eq!(r.body["meta"]["total_count"], expected.len(), "{query}");
        assert_eq!(ids(r), expected, "{query}");
    }
}
