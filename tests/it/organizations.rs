//! `PUT /api/v1/organizations` through HTTP on real PostgreSQL.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn update_settings_and_customers_inherit_them() {
    let app = TestApp::new().await;
    let r = app
        .put(
            "/api/v1/organizations",
            &json!({"organization": {"timezone": "Europe/Paris", "default_currency": "EUR",
                "webhook_url": "https://hooks.example.com/lago", "net_payment_term": 15, "country": "fr",
                "legal_name": "Acme SAS", "email": "billing@acme.com", "document_numbering": "per_organization",
                "document_number_prefix": "acme", "tax_identification_number": "FR123",
                "billing_configuration": {"invoice_grace_period": 3, "document_locale": "fr", "invoice_footer": "Thanks"}}}),
        )
        .await
        .expect(200);
    let o = &r.body["organization"];
    assert_eq!(
        (o["timezone"].clone(), o["default_currency"].clone(), o["country"].clone()),
        (json!("Europe/Paris"), json!("EUR"), json!("FR"))
    );
    assert_eq!(
        (o["webhook_url"].clone(), o["webhook_urls"].clone()),
        (json!("https://hooks.example.com/lago"), json!(["https://hooks.example.com/lago"]))
    );
    assert_eq!(
        (o["document_numbering"].clone(), o["document_number_prefix"].clone()),
        (json!("per_organization"), json!("ACME"))
    );
    assert_eq!(
        o["billing_configuration"],
        json!({"invoice_footer": "Thanks", "invoice_grace_period": 3, "document_locale": "fr"})
    );
    assert_eq!(o["net_payment_term"], 15);
    // Partial: absent fields stay.
    let r = app.put("/api/v1/organizations", &json!({"organization": {"legal_number": "42"}})).await.expect(200);
    assert_eq!(
        (r.body["organization"]["legal_name"].clone(), r.body["organization"]["timezone"].clone()),
        (json!("Acme SAS"), json!("Europe/Paris"))
    );
    // A customer without its own timezone uses the organization's; slugs use the new prefix.
    let c = app.post("/api/v1/customers", &json!({"customer": {"external_id": "c1"}})).await.ok();
    assert_eq!(c.body["customer"]["applicable_timezone"], "Europe/Paris");
    assert_eq!(c.body["customer"]["slug"], "ACME-001");
}

#[tokio::test]
async fn invalid_settings_change_nothing_and_stay_in_their_organization() {
    let app = TestApp::new().await;
    let r = app
        .put(
            "/api/v1/organizations",
            &json!({"organization": {"timezone": "Mars/Base", "default_currency": "XYZ", "webhook_url": "not a url",
                "document_number_prefix": "", "billing_configuration": {"invoice_grace_period": -1}}}),
        )
        .await
        .expect(422);
    assert_eq!(
        r.body["error_details"],
        json!({"timezone": ["invalid_timezone"], "default_currency": ["value_is_invalid"],
               "webhook_url": ["url_is_invalid"], "document_number_prefix": ["value_is_too_short"],
               "invoice_grace_period": ["value_is_out_of_range"]})
    );
    app.put("/api/v1/organizations", &json!({"organization": {"net_payment_term": 7}})).await.expect(200);
    let r = app.put("/api/v1/organizations", &json!({"organization": {"net_payment_term": 7}})).await.expect(200);
    assert_eq!(r.body["organization"]["timezone"], "UTC");
    let other = app.new_org("Other").await;
    let r =
        app.call_as(&other, "PUT", "/api/v1/organizations", Some(&json!({"organization": {"legal_name": "O"}}))).await;
    assert_eq!(r.expect(200).body["organization"]["net_payment_term"], 0);
    app.put("/api/v1/organizations", &json!({})).await.expect(400);
}
