//! Every validation rule of the catalog, each as a 422 through HTTP on real PostgreSQL with Lago's field and code,
//! and nothing stored by the rejected request. (Charge property rules are in `plans`.)

use serde_json::{Value, json};

use crate::support::TestApp;

/// Posts (or puts) `body` and asserts a 422 naming `field` with `code`.
async fn rejects(app: &TestApp, method: &str, path: &str, body: Value, field: &str, code: &str) {
    let key = app.key.clone();
    let r = app.call_as(&key, method, path, Some(&body)).await;
    assert_eq!(r.status, 422, "{method} {path} {body}: {}", r.body);
    let codes = r.body["error_details"][field].as_array().cloned().unwrap_or_default();
    assert!(codes.contains(&json!(code)), "{field} should have {code}: {}", r.body);
}

#[tokio::test]
async fn customer_rules() {
    let app = TestApp::new().await;
    let c = |fields: Value| {
        let mut body = json!({"external_id": "c1"});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        json!({ "customer": body })
    };
    let six: Vec<Value> = (0..6).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect();
    let cases = [
        (json!({"external_id": ""}), "external_id", "value_is_mandatory"),
        (json!({"currency": "EURO"}), "currency", "value_is_invalid"),
        (json!({"timezone": "Europe/Atlantis"}), "timezone", "invalid_timezone"),
        (json!({"country": "XX"}), "country", "not_a_valid_country_code"),
        (json!({"shipping_address": {"country": "XX"}}), "shipping_country", "not_a_valid_country_code"),
        (json!({"email": "a@b"}), "email", "invalid_email_format"),
        (json!({"name": "n".repeat(256)}), "name", "value_is_too_long"),
        (json!({"customer_type": "robot"}), "customer_type", "value_is_invalid"),
        (json!({"net_payment_term": -1}), "net_payment_term", "value_is_out_of_range"),
        (
            json!({"billing_configuration": {"invoice_grace_period": -1}}),
            "invoice_grace_period",
            "value_is_out_of_range",
        ),
        (json!({"billing_configuration": {"document_locale": "xx"}}), "document_locale", "not_a_valid_language_code"),
        (json!({"finalize_zero_amount_invoice": "never"}), "finalize_zero_amount_invoice", "invalid_value"),
        (json!({"metadata": six}), "metadata", "invalid_count"),
        (json!({"metadata": [{"key": "", "value": "v"}]}), "metadata.key", "value_is_mandatory"),
        (json!({"metadata": [{"key": "k".repeat(21), "value": "v"}]}), "metadata.key", "value_is_too_long"),
        (
            json!({"metadata": [{"key": "k", "value": "v"}, {"key": "k", "value": "w"}]}),
            "metadata.key",
            "value_already_exist",
        ),
        (json!({"metadata": [{"key": "k", "value": ""}]}), "metadata.value", "value_is_mandatory"),
        (json!({"metadata": [{"key": "k", "value": "v".repeat(101)}]}), "metadata.value", "value_is_too_long"),
        (json!({"net_payment_term": "soon"}), "net_payment_term", "value_is_invalid"),
    ];
    for (fields, field, code) in cases {
        rejects(&app, "POST", "/api/v1/customers", c(fields), field, code).await;
    }
    assert_eq!(app.get("/api/v1/customers").await.ok().body["meta"]["total_count"], 0);
}

#[tokio::test]
async fn coupon_rules() {
    let app = TestApp::new().await;
    let base = json!({"name": "N", "code": "c", "coupon_type": "percentage", "percentage_rate": "10",
                      "frequency": "once", "expiration": "no_expiration"});
    let with = |fields: Value| {
        let mut body = base.clone();
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        json!({ "coupon": body })
    };
    let cases = [
        (json!({"name": ""}), "name", "value_is_mandatory"),
        (json!({"code": ""}), "code", "value_is_mandatory"),
        (json!({"coupon_type": "gift"}), "coupon_type", "value_is_invalid"),
        (json!({"coupon_type": "fixed_amount"}), "amount_cents", "value_is_mandatory"),
        (json!({"coupon_type": "fixed_amount", "amount_cents": 5}), "amount_currency", "value_is_mandatory"),
        (json!({"amount_cents": 0}), "amount_cents", "value_is_out_of_range"),
        (json!({"amount_currency": "EURO"}), "amount_currency", "value_is_invalid"),
        (json!({"percentage_rate": null}), "percentage_rate", "value_is_mandatory"),
        (json!({"percentage_rate": "150"}), "percentage_rate", "value_is_out_of_range"),
        (json!({"frequency": "daily"}), "frequency", "value_is_invalid"),
        (json!({"frequency": "recurring"}), "frequency_duration", "value_is_mandatory"),
        (json!({"frequency": "recurring", "frequency_duration": 0}), "frequency_duration", "value_is_out_of_range"),
        (json!({"expiration": "someday"}), "expiration", "value_is_invalid"),
        (json!({"expiration": "time_limit"}), "expiration_at", "invalid_date"),
        (json!({"expiration": "time_limit", "expiration_at": "2001-01-01"}), "expiration_at", "invalid_date"),
        (json!({"reusable": "maybe"}), "reusable", "value_is_invalid"),
    ];
    for (fields, field, code) in cases {
        rejects(&app, "POST", "/api/v1/coupons", with(fields), field, code).await;
    }
    assert_eq!(app.get("/api/v1/coupons").await.ok().body["meta"]["total_count"], 0);
}

#[tokio::test]
async fn organization_rules() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"timezone": "Mars/Base"}), "timezone", "invalid_timezone"),
        (json!({"default_currency": "XYZ"}), "default_currency", "value_is_invalid"),
        (json!({"country": "ZZ"}), "country", "not_a_valid_country_code"),
        (json!({"webhook_url": "ftp://x"}), "webhook_url", "url_is_invalid"),
        (json!({"email": "nope"}), "email", "invalid_email_format"),
        (json!({"document_numbering": "per_year"}), "document_numbering", "value_is_invalid"),
        (json!({"document_number_prefix": ""}), "document_number_prefix", "value_is_too_short"),
        (json!({"document_number_prefix": "ELEVENCHARS"}), "document_number_prefix", "value_is_too_long"),
        (json!({"net_payment_term": -1}), "net_payment_term", "value_is_out_of_range"),
        (
            json!({"billing_configuration": {"invoice_grace_period": -1}}),
            "invoice_grace_period",
            "value_is_out_of_range",
        ),
        (json!({"billing_configuration": {"document_locale": "xx"}}), "document_locale", "not_a_valid_language_code"),
        (json!({"billing_configuration": {"invoice_footer": "x".repeat(601)}}), "invoice_footer", "value_is_too_long"),
        (json!({"email_settings": ["invoice.paid"]}), "email_settings", "unsupported_value"),
    ];
    for (fields, field, code) in cases {
        rejects(&app, "PUT", "/api/v1/organizations", json!({ "organization": fields }), field, code).await;
    }
    let r = app.put("/api/v1/organizations", &json!({"organization": {"legal_name": "x"}})).await.ok();
    assert_eq!(
        (r.body["organization"]["timezone"].clone(), r.body["organization"]["default_currency"].clone()),
        (json!("UTC"), json!("USD"))
    );
}

#[tokio::test]
async fn plan_tax_and_add_on_rules() {
    let app = TestApp::new().await;
    let plan = |fields: Value| {
        let mut body =
            json!({"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "EUR"});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        json!({ "plan": body })
    };
    let cases = [
        (json!({"name": ""}), "name", "value_is_mandatory"),
        (json!({"code": ""}), "code", "value_is_mandatory"),
        (json!({"interval": "daily"}), "interval", "value_is_invalid"),
        (json!({"amount_cents": null}), "amount_cents", "value_is_mandatory"),
        (json!({"amount_cents": -1}), "amount_cents", "value_is_out_of_range"),
        (json!({"amount_currency": "EURO"}), "amount_currency", "value_is_invalid"),
        (json!({"trial_period": -1}), "trial_period", "value_is_out_of_range"),
        (json!({"minimum_commitment": {"amount_cents": 0}}), "amount_cents", "value_is_out_of_range"),
        (json!({"charges": "none"}), "charges", "value_is_invalid"),
    ];
    for (fields, field, code) in cases {
        rejects(&app, "POST", "/api/v1/plans", plan(fields), field, code).await;
    }
    assert_eq!(app.get("/api/v1/plans").await.ok().body["meta"]["total_count"], 0);
    rejects(&app, "POST", "/api/v1/taxes", json!({"tax": {"name": "T", "code": "t"}}), "rate", "value_is_mandatory")
        .await;
    rejects(&app, "POST", "/api/v1/taxes", json!({"tax": {"code": "t", "rate": 1}}), "name", "value_is_mandatory")
        .await;
    let add_on = json!({"add_on": {"name": "A", "code": "a", "amount_cents": 0, "amount_currency": "EUR"}});
    rejects(&app, "POST", "/api/v1/add_ons", add_on, "amount_cents", "value_is_out_of_range").await;
}
