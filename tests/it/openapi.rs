//! Every response the tests receive is checked against Lago's OpenAPI spec (v1.51, `tests/openapi/`): the operation
//! is found by method and path template, and the body must validate against the schema documented for its status.
//!
//! `OPERATIONS` lists the operations Billstream implements: each one must be exercised with a 2xx response by the
//! conformance test below. A later issue adds its endpoints to that list (and a scenario to `exercise`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use crate::support::TestApp;

/// (operationId, method, path template) of every implemented operation.
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    ("createBillableMetric", "post", "/billable_metrics"),
    ("findAllBillableMetrics", "get", "/billable_metrics"),
    ("findBillableMetric", "get", "/billable_metrics/{code}"),
    ("updateBillableMetric", "put", "/billable_metrics/{code}"),
    ("destroyBillableMetric", "delete", "/billable_metrics/{code}"),
    ("createEvent", "post", "/events"),
    ("createBatchEvents", "post", "/events/batch"),
    ("findEvent", "get", "/events/{transaction_id}"),
    ("findAllEvents", "get", "/events"),
    ("createTax", "post", "/taxes"),
    ("findAllTaxes", "get", "/taxes"),
    ("findTax", "get", "/taxes/{code}"),
    ("updateTax", "put", "/taxes/{code}"),
    ("destroyTax", "delete", "/taxes/{code}"),
    ("createAddOn", "post", "/add_ons"),
    ("findAllAddOns", "get", "/add_ons"),
    ("findAddOn", "get", "/add_ons/{code}"),
    ("updateAddOn", "put", "/add_ons/{code}"),
    ("destroyAddOn", "delete", "/add_ons/{code}"),
    ("createCustomer", "post", "/customers"),
    ("findAllCustomers", "get", "/customers"),
    ("findCustomer", "get", "/customers/{external_customer_id}"),
    ("destroyCustomer", "delete", "/customers/{external_customer_id}"),
    ("createPlan", "post", "/plans"),
    ("findAllPlans", "get", "/plans"),
    ("findPlan", "get", "/plans/{code}"),
    ("updatePlan", "put", "/plans/{code}"),
    ("destroyPlan", "delete", "/plans/{code}"),
    ("findAllPlanCharges", "get", "/plans/{code}/charges"),
    ("createPlanCharge", "post", "/plans/{code}/charges"),
    ("findPlanCharge", "get", "/plans/{code}/charges/{charge_code}"),
    ("updatePlanCharge", "put", "/plans/{code}/charges/{charge_code}"),
    ("destroyPlanCharge", "delete", "/plans/{code}/charges/{charge_code}"),
    ("replacePlanMetadata", "post", "/plans/{code}/metadata"),
    ("mergePlanMetadata", "patch", "/plans/{code}/metadata"),
    ("deletePlanMetadataKey", "delete", "/plans/{code}/metadata/{key}"),
    ("deleteAllPlanMetadata", "delete", "/plans/{code}/metadata"),
    ("createSubscription", "post", "/subscriptions"),
    ("findAllSubscriptions", "get", "/subscriptions"),
    ("findSubscription", "get", "/subscriptions/{external_id}"),
    ("updateSubscription", "put", "/subscriptions/{external_id}"),
    ("destroySubscription", "delete", "/subscriptions/{external_id}"),
    ("findAllCustomerSubscriptions", "get", "/customers/{external_customer_id}/subscriptions"),
    ("findAllSubscriptionCharges", "get", "/subscriptions/{external_id}/charges"),
    ("findSubscriptionCharge", "get", "/subscriptions/{external_id}/charges/{charge_code}"),
    ("overrideSubscriptionCharge", "put", "/subscriptions/{external_id}/charges/{charge_code}"),
    ("createCoupon", "post", "/coupons"),
    ("findAllCoupons", "get", "/coupons"),
    ("findCoupon", "get", "/coupons/{code}"),
    ("updateCoupon", "put", "/coupons/{code}"),
    ("destroyCoupon", "delete", "/coupons/{code}"),
    ("applyCoupon", "post", "/applied_coupons"),
    ("findAllAppliedCoupons", "get", "/applied_coupons"),
    ("findAllCustomerAppliedCoupons", "get", "/customers/{external_customer_id}/applied_coupons"),
    ("deleteAppliedCoupon", "delete", "/customers/{external_customer_id}/applied_coupons/{applied_coupon_id}"),
    ("updateOrganization", "put", "/organizations"),
    ("findAllInvoices", "get", "/invoices"),
    ("findInvoice", "get", "/invoices/{lago_id}"),
    ("updateInvoice", "put", "/invoices/{lago_id}"),
    ("finalizeInvoice", "put", "/invoices/{lago_id}/finalize"),
    ("voidInvoice", "post", "/invoices/{lago_id}/void"),
    ("refreshInvoice", "put", "/invoices/{lago_id}/refresh"),
    ("eventEstimateFees", "post", "/events/estimate_fees"),
    ("invoicePreview", "post", "/invoices/preview"),
    ("createInvoice", "post", "/invoices"),
    ("findAllCreditNotes", "get", "/credit_notes"),
    ("findCreditNote", "get", "/credit_notes/{lago_id}"),
    ("findAllFees", "get", "/fees"),
    ("findFee", "get", "/fees/{lago_id}"),
    ("updateFee", "put", "/fees/{lago_id}"),
    ("deleteFee", "delete", "/fees/{lago_id}"),
    ("findAllCustomerPastUsage", "get", "/customers/{external_customer_id}/past_usage"),
    ("createWebhookEndpoint", "post", "/webhook_endpoints"),
    ("findAllWebhookEndpoints", "get", "/webhook_endpoints"),
    ("findWebhookEndpoint", "get", "/webhook_endpoints/{lago_id}"),
    ("updateWebhookEndpoint", "put", "/webhook_endpoints/{lago_id}"),
    ("destroyWebhookEndpoint", "delete", "/webhook_endpoints/{lago_id}"),
    ("fetchPublicKey", "get", "/webhooks/public_key"),
    ("fetchJsonPublicKey", "get", "/webhooks/json_public_key"),
    ("findAllGrossRevenues", "get", "/analytics/gross_revenue"),
    ("findAllInvoiceCollections", "get", "/analytics/invoice_collection"),
    ("findAllInvoicedUsages", "get", "/analytics/invoiced_usage"),
    ("findAllMrrs", "get", "/analytics/mrr"),
    ("findAllOverdueBalances", "get", "/analytics/overdue_balance"),
];

struct Spec {
    doc: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
    /// operationIds seen with a 2xx response that validated.
    covered: Mutex<HashSet<String>>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/lago-openapi.yaml");
        let text = std::fs::read_to_string(path).expect("read the OpenAPI spec");
        let mut doc: Value = serde_norway::from_str(&text).expect("parse the OpenAPI spec");
        apply_errata(&mut doc);
        Spec { doc, validators: Mutex::default(), covered: Mutex::default() }
    })
}

/// Mistakes of the spec itself, fixed before validating against it:
/// - `oneOf: [string, integer, number]` (event properties and elsewhere): every integer is also a number, so no
///   integer could ever validate; Lago means "any of".
fn apply_errata(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let any_of = map.get("oneOf").and_then(Value::as_array).is_some_and(|alts| {
                let types: Vec<&str> = alts.iter().filter_map(|a| a.get("type").and_then(Value::as_str)).collect();
                types.contains(&"integer") && types.contains(&"number")
            });
            if any_of && let Some(alts) = map.remove("oneOf") {
                map.insert("anyOf".into(), alts);
            }
            map.values_mut().for_each(apply_errata);
        }
        Value::Array(items) => items.iter_mut().for_each(apply_errata),
        _ => {}
    }
}

/// Resolves a local `$ref` (`#/components/...`) in the spec.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).map(|t| resolve(doc, t)).unwrap_or(v),
        None => v,
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// Finds the documented operation for `method` + `path` (path relative to `/api/v1`), preferring literal segments.
fn find_operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<(&'a str, &'a Value)> {
    let paths = doc.get("paths")?.as_object()?;
    let mut candidates: Vec<(&str, &Value)> = paths
        .iter()
        .filter(|(template, _)| template_matches(template, path))
        .filter_map(|(template, item)| item.get(method).map(|op| (template.as_str(), op)))
        .collect();
    candidates.sort_by_key(|(template, _)| template.matches('{').count());
    candidates.into_iter().next()
}

/// Validates one response. Statuses the spec does not document for the operation (e.g. 413) are not checked.
pub fn check_response(method: &str, full_path: &str, status: u16, body: &Value) {
    let Some(path) = full_path.split('?').next().and_then(|p| p.strip_prefix("/api/v1")) else { return };
    let spec = spec();
    let method = method.to_ascii_lowercase();
    let Some((_, op)) = find_operation(&spec.doc, &method, path) else { return };
    let op_id = op.get("operationId").and_then(Value::as_str).unwrap_or("?").to_owned();
    let Some(response) = op.get("responses").and_then(|r| r.get(status.to_string())) else { return };
    let response = resolve(&spec.doc, response);
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        // A plain-text answer (the webhooks' public key): nothing to validate but its presence.
        if (200..300).contains(&status) && response.pointer("/content/text~1plain").is_some() {
            spec.covered.lock().unwrap().insert(op_id);
        }
        return;
    };
    let key = format!("{op_id} {status}");
    let validator = {
        let mut cache = spec.validators.lock().unwrap();
        cache
            .entry(key.clone())
            .or_insert_with(|| {
                let root = json!({"allOf": [schema], "components": spec.doc["components"]});
                std::sync::Arc::new(
                    jsonschema::options().should_validate_formats(true).build(&root).expect("compile response schema"),
                )
            })
            .clone()
    };
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(
        errors.is_empty(),
        "{key}: response does not match Lago's OpenAPI schema:\n{}\nbody: {body:#}",
        errors.join("\n")
    );
    if (200..300).contains(&status) {
        spec.covered.lock().unwrap().insert(op_id);
    }
}

/// Validates a webhook body against the request schema Lago documents for its `webhook_type` (the spec names most
/// of them with `_` for `.`).
pub fn check_webhook(body: &Value) {
    let spec = spec();
    let kind = body["webhook_type"].as_str().expect("a webhook_type");
    let webhooks = &spec.doc["webhooks"];
    let op = webhooks.get(kind).or_else(|| webhooks.get(kind.replace('.', "_"))).expect("a documented webhook type");
    let schema = op.pointer("/post/requestBody/content/application~1json/schema").expect("a webhook schema");
    let root = json!({"allOf": [schema], "components": spec.doc["components"]});
    let validator = jsonschema::options().should_validate_formats(true).build(&root).expect("compile webhook schema");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "webhook {kind} does not match Lago's OpenAPI schema:\n{}", errors.join("\n"));
}

#[test]
fn listed_operations_exist_in_the_spec() {
    let doc = &spec().doc;
    for (op_id, method, path) in OPERATIONS {
        let op = doc["paths"][path][method].clone();
        assert_eq!(op["operationId"], json!(op_id), "{method} {path} is {op_id} in the spec");
    }
}

/// Runs one successful call of every listed operation; each must produce a 2xx that validates.
#[tokio::test]
async fn every_implemented_operation_validates_against_the_spec() {
    let app = TestApp::new().await;
    exercise(&app).await;
    let covered = spec().covered.lock().unwrap().clone();
    let missing: Vec<&str> = OPERATIONS.iter().map(|(id, _, _)| *id).filter(|id| !covered.contains(*id)).collect();
    assert!(missing.is_empty(), "operations without a validated 2xx response: {missing:?}");
}

/// One scenario touching every operation of `OPERATIONS`.
async fn exercise(app: &TestApp) {
    let metric = json!({"billable_metric": {
        "name": "Storage", "code": "storage", "aggregation_type": "weighted_sum_agg", "field_name": "gb",
        "weighted_interval": "seconds", "recurring": true, "rounding_function": "round", "rounding_precision": 2,
        "expression": "event.properties.gb * 2", "description": "GB stored",
        "filters": [{"key": "region", "values": ["eu", "us"]}]
    }});
    app.post("/api/v1/billable_metrics", &metric).await.ok();
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
    )
    .await
    .ok();
    app.get("/api/v1/billable_metrics?per_page=1").await.ok();
    app.get("/api/v1/billable_metrics/storage").await.ok();
    app.put("/api/v1/billable_metrics/storage", &json!({"billable_metric": {"name": "Disk"}})).await.ok();
    app.delete("/api/v1/billable_metrics/calls").await.ok();

    let event = |tx: &str| {
        json!({"transaction_id": tx, "external_subscription_id": "sub_1", "code": "storage",
        "timestamp": 1700000000, "properties": {"gb": 10, "region": "eu"}, "precise_total_amount_cents": "12.5"})
    };
    app.post("/api/v1/events", &json!({"event": event("tx-1")})).await.ok();
    app.post("/api/v1/events/batch", &json!({"events": [event("tx-2"), event("tx-3")]})).await.ok();
    app.get("/api/v1/events/tx-1").await.ok();
    app.get("/api/v1/events?external_subscription_id=sub_1&per_page=2").await.ok();

    exercise_catalog(app).await;
    exercise_invoices(app).await;
    exercise_webhooks(app).await;
}

/// The webhooks issue's operations: an endpoint's life, and the public key of JWT signatures.
async fn exercise_webhooks(app: &TestApp) {
    let created = app
        .post("/api/v1/webhook_endpoints", &json!({"webhook_endpoint": {"webhook_url": "https://example.com/hooks"}}))
        .await
        .ok();
    let id = created.body["webhook_endpoint"]["lago_id"].as_str().expect("an endpoint").to_owned();
    app.get("/api/v1/webhook_endpoints?per_page=1").await.ok();
    app.get(&format!("/api/v1/webhook_endpoints/{id}")).await.ok();
    let update = json!({"webhook_endpoint": {"webhook_url": "https://example.com/v2", "signature_algo": "hmac"}});
    app.put(&format!("/api/v1/webhook_endpoints/{id}"), &update).await.ok();
    app.delete(&format!("/api/v1/webhook_endpoints/{id}")).await.ok();
    app.get("/api/v1/webhooks/public_key").await.ok();
    app.get("/api/v1/webhooks/json_public_key").await.ok();
}

/// The billing issue's operations: an invoice billed by the clock, shown, listed, finalized and voided.
async fn exercise_invoices(app: &TestApp) {
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Billed", "code": "billed", "interval": "monthly", "amount_cents": 1000,
                         "amount_currency": "EUR"}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "billed-customer", "plan_code": "billed",
                                 "external_id": "billed-sub", "subscription_at": "2024-01-01T00:00:00Z"}}),
    )
    .await
    .ok();
    // A grace period makes the invoice a draft, to refresh and finalize.
    let grace =
        json!({"customer": {"external_id": "billed-customer", "billing_configuration": {"invoice_grace_period": 1}}});
    app.post("/api/v1/customers", &grace).await.ok();
    let store = aggregate::postgres::PgEventStore::new(app.pool.clone());
    billing::clock::tick(&app.pool, &store, &app.tracker, chrono::Utc::now()).await.expect("billing clock");
    let list = app.get("/api/v1/invoices?external_customer_id=billed-customer").await.ok();
    let id = list.body["invoices"][0]["lago_id"].as_str().expect("an invoice").to_owned();
    app.get(&format!("/api/v1/invoices/{id}")).await.ok();
    app.put(&format!("/api/v1/invoices/{id}/refresh"), &json!({})).await.ok();
    app.get("/api/v1/customers/billed-customer/past_usage?external_subscription_id=billed-sub&periods_count=2")
        .await
        .ok();
    app.put(&format!("/api/v1/invoices/{id}/finalize"), &json!({})).await.ok();
    let update = json!({"invoice": {"payment_status": "succeeded", "metadata": [{"key": "po", "value": "PO-7"}]}});
    app.put(&format!("/api/v1/invoices/{id}"), &update).await.ok();
    app.post(&format!("/api/v1/invoices/{id}/void"), &json!({})).await.ok();

    let metric = json!({"billable_metric": {"name": "Seats", "code": "seats", "aggregation_type": "count_agg"}});
    let seats = app.post("/api/v1/billable_metrics", &metric).await.ok().body["billable_metric"]["lago_id"].clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Instant", "code": "instant", "interval": "monthly", "amount_cents": 0,
                         "amount_currency": "EUR", "charges": [{"billable_metric_id": seats, "charge_model": "standard",
                         "pay_in_advance": true, "properties": {"amount": "2"}}]}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "billed-customer", "plan_code": "instant",
                                 "external_id": "instant-sub"}}),
    )
    .await
    .ok();
    let event = json!({"event": {"external_subscription_id": "instant-sub", "code": "seats"}});
    app.post("/api/v1/events/estimate_fees", &event).await.ok();
    let preview =
        json!({"customer": {"external_id": "billed-customer"}, "subscriptions": {"external_ids": ["instant-sub"]}});
    app.post("/api/v1/invoices/preview", &preview).await.ok();
    exercise_one_off(app).await;
    exercise_credit_notes(app).await;
    exercise_fees(app, seats).await;
    exercise_analytics(app).await;
}

/// Analytics: the reports over the invoices and fees above (all of this month).
async fn exercise_analytics(app: &TestApp) {
    app.get("/api/v1/analytics/gross_revenue?currency=EUR&external_customer_id=billed-customer&months=3").await.ok();
    app.get("/api/v1/analytics/invoice_collection").await.ok();
    app.get("/api/v1/analytics/invoiced_usage?months=12").await.ok();
    app.get("/api/v1/analytics/mrr").await.ok();
    app.get("/api/v1/analytics/overdue_balance?external_customer_id=billed-customer").await.ok();
}

/// Fees: a charge paid in advance that is not invoiceable bills each event with a fee of its own.
async fn exercise_fees(app: &TestApp, seats: Value) {
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Standalone", "code": "standalone", "interval": "monthly", "amount_cents": 0,
                         "amount_currency": "EUR", "charges": [{"billable_metric_id": seats, "charge_model": "standard",
                         "pay_in_advance": true, "invoiceable": false, "properties": {"amount": "3"}}]}}),
    )
    .await
    .ok();
    let sub = json!({"subscription": {"external_customer_id": "billed-customer", "plan_code": "standalone",
                                      "external_id": "standalone-sub"}});
    app.post("/api/v1/subscriptions", &sub).await.ok();
    for tx in ["seat-1", "seat-2"] {
        let event =
            json!({"event": {"transaction_id": tx, "external_subscription_id": "standalone-sub", "code": "seats"}});
        app.post("/api/v1/events", &event).await.ok();
    }
    let store = aggregate::postgres::PgEventStore::new(app.pool.clone());
    billing::clock::tick(&app.pool, &store, &app.tracker, chrono::Utc::now()).await.expect("billing clock");
    let fees = app.get("/api/v1/fees?external_subscription_id=standalone-sub").await.ok();
    let ids: Vec<String> =
        fees.body["fees"].as_array().expect("fees").iter().map(|f| f["lago_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2, "{}", fees.body);
    app.get(&format!("/api/v1/fees/{}", ids[0])).await.ok();
    app.put(&format!("/api/v1/fees/{}", ids[0]), &json!({"fee": {"payment_status": "succeeded"}})).await.ok();
    app.delete(&format!("/api/v1/fees/{}", ids[1])).await.ok();
}

/// Credit notes: terminating a plan paid in advance gives its unused days back.
async fn exercise_credit_notes(app: &TestApp) {
    // No grace period for this customer (the organization has one): the year is invoiced, final, at once.
    let customer =
        json!({"customer": {"external_id": "upfront-customer", "billing_configuration": {"invoice_grace_period": 0}}});
    app.post("/api/v1/customers", &customer).await.ok();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Upfront", "code": "upfront", "interval": "yearly", "amount_cents": 36500,
                         "amount_currency": "EUR", "pay_in_advance": true}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "upfront-customer", "plan_code": "upfront",
                                 "external_id": "upfront-sub", "billing_time": "anniversary"}}),
    )
    .await
    .ok();
    app.delete("/api/v1/subscriptions/upfront-sub").await.ok();
    let notes = app.get("/api/v1/credit_notes?external_customer_id=upfront-customer").await.ok();
    let id = notes.body["credit_notes"][0]["lago_id"].as_str().expect("a credit note").to_owned();
    app.get(&format!("/api/v1/credit_notes/{id}")).await.ok();
}

/// One-off invoices: an add-on billed to the customer above.
async fn exercise_one_off(app: &TestApp) {
    let add_on = json!({"add_on": {"name": "Setup", "code": "one-off-setup", "amount_cents": 5000,
                                   "amount_currency": "EUR", "tax_codes": ["vat"]}});
    app.post("/api/v1/add_ons", &add_on).await.ok();
    let invoice = json!({"invoice": {"external_customer_id": "billed-customer", "currency": "EUR", "fees": [
        {"add_on_code": "one-off-setup", "units": "2", "description": "Two", "invoice_display_name": "Setup x2"}]}});
    app.post("/api/v1/invoices", &invoice).await.ok();
}

/// The catalog issue's operations (taxes, add-ons, customers, plans, subscriptions, coupons, organization).
async fn exercise_catalog(app: &TestApp) {
    let tax = json!({"tax": {"name": "VAT", "code": "vat", "rate": 20, "description": "VAT"}});
    app.post("/api/v1/taxes", &tax).await.ok();
    app.post("/api/v1/taxes", &json!({"tax": {"name": "Old", "code": "old", "rate": 1}})).await.ok();
    app.get("/api/v1/taxes").await.ok();
    app.get("/api/v1/taxes/vat").await.ok();
    app.put("/api/v1/taxes/vat", &json!({"tax": {"rate": 19.6}})).await.ok();
    app.delete("/api/v1/taxes/old").await.ok();
    let add_on = json!({"add_on": {"name": "Setup", "code": "setup", "amount_cents": 1000, "amount_currency": "EUR",
                                   "tax_codes": ["vat"]}});
    app.post("/api/v1/add_ons", &add_on).await.ok();
    app.get("/api/v1/add_ons").await.ok();
    app.get("/api/v1/add_ons/setup").await.ok();
    app.put("/api/v1/add_ons/setup", &json!({"add_on": {"amount_cents": 2000}})).await.ok();
    app.delete("/api/v1/add_ons/setup").await.ok();
    let customer = json!({"customer": {"external_id": "acme", "name": "Acme", "email": "a@acme.com",
        "currency": "EUR", "timezone": "Europe/Paris", "country": "FR", "net_payment_term": 30, "tax_codes": ["vat"],
        "billing_configuration": {"invoice_grace_period": 2, "document_locale": "fr"},
        "shipping_address": {"city": "Lyon"}, "metadata": [{"key": "crm", "value": "1", "display_in_invoice": true}]}});
    app.post("/api/v1/customers", &customer).await.ok();
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "gone"}})).await.ok();
    app.get("/api/v1/customers").await.ok();
    app.get("/api/v1/customers/acme").await.ok();
    app.delete("/api/v1/customers/gone").await.ok();
    let tokens = json!({"billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg",
        "field_name": "n", "filters": [{"key": "region", "values": ["eu", "us"]}]}});
    let calls = app.post("/api/v1/billable_metrics", &tokens).await.ok().body["billable_metric"]["lago_id"].clone();
    let plan = json!({"plan": {"name": "Startup", "code": "startup", "interval": "yearly", "amount_cents": 10000,
    "amount_currency": "EUR", "pay_in_advance": true, "trial_period": 7.5, "bill_charges_monthly": true,
    "description": "d", "invoice_display_name": "Startup plan", "tax_codes": ["vat"],
    "metadata": {"crm": "42", "note": null},
    "minimum_commitment": {"amount_cents": 20000, "invoice_display_name": "Min", "tax_codes": ["vat"]},
    "charges": [
        {"billable_metric_id": calls, "charge_model": "graduated", "tax_codes": ["vat"], "properties": {
            "grouped_by": ["zone"], "graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "0", "flat_amount": "0"},
            {"from_value": 11, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "1"}]},
         "filters": [{"values": {"region": ["eu"]}, "invoice_display_name": "EU",
                      "properties": {"graduated_ranges": [
                        {"from_value": 0, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}}]},
        {"billable_metric_id": calls, "charge_model": "package",
         "properties": {"amount": "5", "package_size": 100, "free_units": 0}},
        {"billable_metric_id": calls, "charge_model": "percentage", "properties": {"rate": "1.5",
         "fixed_amount": "0.1", "free_units_per_events": 2, "free_units_per_total_aggregation": "10"}},
        {"billable_metric_id": calls, "charge_model": "volume", "properties": {"volume_ranges": [
            {"from_value": 0, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}},
        {"billable_metric_id": calls, "charge_model": "graduated_percentage", "properties": {
            "graduated_percentage_ranges": [
            {"from_value": 0, "to_value": null, "rate": "1", "fixed_amount": "0", "flat_amount": "0"}]}},
        {"billable_metric_id": calls, "charge_model": "dynamic"},
        {"billable_metric_id": calls, "charge_model": "standard", "pay_in_advance": true, "invoiceable": false,
         "regroup_paid_fees": "invoice", "properties": {"amount": "0.25"}}
    ]}});
    app.post("/api/v1/plans", &plan).await.ok();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Old", "code": "old", "interval": "weekly",
        "amount_cents": 0, "amount_currency": "USD"}}),
    )
    .await
    .ok();
    app.get("/api/v1/plans").await.ok();
    app.get("/api/v1/plans/startup").await.ok();
    app.put("/api/v1/plans/startup", &json!({"plan": {"name": "Startup 2", "amount_cents": 12000}})).await.ok();
    app.delete("/api/v1/plans/old").await.ok();
    app.get("/api/v1/plans/startup/charges?per_page=2").await.ok();
    let extra = json!({"charge": {"billable_metric_id": calls, "code": "extra", "charge_model": "standard",
        "properties": {"amount": "1"}, "tax_codes": ["vat"]}});
    app.post("/api/v1/plans/startup/charges", &extra).await.ok();
    app.get("/api/v1/plans/startup/charges/extra").await.ok();
    app.put("/api/v1/plans/startup/charges/extra", &json!({"charge": {"properties": {"amount": "2"}}})).await.ok();
    app.delete("/api/v1/plans/startup/charges/extra").await.ok();
    let key = app.key.clone();
    app.post("/api/v1/plans/startup/metadata", &json!({"metadata": {"a": "1", "b": null}})).await.ok();
    app.call_as(&key, "PATCH", "/api/v1/plans/startup/metadata", Some(&json!({"metadata": {"c": "3"}}))).await.ok();
    app.delete("/api/v1/plans/startup/metadata/a").await.ok();
    app.delete("/api/v1/plans/startup/metadata").await.ok();
    let subscription = json!({"subscription": {"external_customer_id": "acme", "plan_code": "startup",
        "external_id": "sub1", "name": "Main", "billing_time": "anniversary", "subscription_at": "2026-01-15T00:00:00Z",
        "ending_at": "2099-01-01T00:00:00Z", "plan_overrides": {"amount_cents": 9000}}});
    app.post("/api/v1/subscriptions", &subscription).await.ok();
    let future = json!({"subscription": {"external_customer_id": "acme", "plan_code": "startup",
        "external_id": "sub2", "subscription_at": "2099-01-01T00:00:00Z"}});
    app.post("/api/v1/subscriptions", &future).await.ok();
    app.get("/api/v1/subscriptions?external_customer_id=acme&status[]=active&status[]=pending").await.ok();
    app.get("/api/v1/subscriptions/sub1").await.ok();
    app.get("/api/v1/customers/acme/subscriptions?status[]=pending").await.ok();
    app.put("/api/v1/subscriptions/sub1", &json!({"subscription": {"name": "Renamed"}})).await.ok();
    app.get("/api/v1/subscriptions/sub1/charges").await.ok();
    let code = app.get("/api/v1/subscriptions/sub1/charges").await.ok().body["charges"][0]["code"].clone();
    let code = code.as_str().unwrap_or_default().to_owned();
    app.get(&format!("/api/v1/subscriptions/sub1/charges/{code}")).await.ok();
    let over = json!({"charge": {"invoice_display_name": "Mine", "min_amount_cents": 0, "tax_codes": ["vat"]}});
    app.put(&format!("/api/v1/subscriptions/sub1/charges/{code}"), &over).await.ok();
    app.delete("/api/v1/subscriptions/sub2?status=pending").await.ok();
    app.delete("/api/v1/subscriptions/sub1").await.ok();
    let coupon = json!({"coupon": {"name": "Ten", "code": "ten", "coupon_type": "percentage", "percentage_rate": "10",
        "frequency": "recurring", "frequency_duration": 3, "expiration": "time_limit",
        "expiration_at": "2099-01-01T00:00:00Z", "reusable": true, "applies_to": {"plan_codes": ["startup"]}}});
    app.post("/api/v1/coupons", &coupon).await.ok();
    let fixed = json!({"coupon": {"name": "Gift", "code": "gift", "coupon_type": "fixed_amount", "amount_cents": 500,
        "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration"}});
    app.post("/api/v1/coupons", &fixed).await.ok();
    app.get("/api/v1/coupons").await.ok();
    app.get("/api/v1/coupons/ten").await.ok();
    app.put("/api/v1/coupons/ten", &json!({"coupon": {"name": "Ten %"}})).await.ok();
    let applied = app
        .post(
            "/api/v1/applied_coupons",
            &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "gift"}}),
        )
        .await
        .ok();
    app.post(
        "/api/v1/applied_coupons",
        &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "ten"}}),
    )
    .await
    .ok();
    app.get("/api/v1/applied_coupons?status=active").await.ok();
    app.get("/api/v1/customers/acme/applied_coupons").await.ok();
    let id = applied.body["applied_coupon"]["lago_id"].as_str().unwrap_or_default().to_owned();
    app.delete(&format!("/api/v1/customers/acme/applied_coupons/{id}")).await.ok();
    app.delete("/api/v1/coupons/gift").await.ok();
    let organization = json!({"organization": {"timezone": "Europe/Paris", "default_currency": "EUR",
        "webhook_url": "https://hooks.example.com", "country": "FR", "email": "billing@acme.com", "net_payment_term": 30,
        "document_numbering": "per_customer", "document_number_prefix": "ACM", "legal_name": "Acme",
        "billing_configuration": {"invoice_grace_period": 2, "document_locale": "fr", "invoice_footer": "Thanks"}}});
    app.put("/api/v1/organizations", &organization).await.ok();
}
