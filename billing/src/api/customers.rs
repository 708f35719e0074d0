//! `/api/v1/customers`: create-or-update (POST, by `external_id`), show, delete, list.

use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::input::Field;
use schemas::objects::customer::{
    AddressObject, CustomerBillingConfiguration, CustomerEnvelope, CustomerMetadataObject, CustomerObject,
    CustomersPage,
};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::domain::customer as domain;
use crate::store::customers::{self as store, Customer};
use crate::tracking::TrackEvent;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/customers", post(upsert).get(list))
        .route("/api/v1/customers/{external_id}", get(show).delete(destroy))
}

const ROOT: &str = "customer";

async fn upsert(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<CustomerEnvelope>, ApiError> {
    let mut input = domain::parse_input(&take_root(body, ROOT)?)?;
    let external_id = match &input.external_id {
        Field::Value(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => return Err(schemas::error::field_error("external_id", "value_is_mandatory").into()),
    };
    let tax_codes = std::mem::take(&mut input.tax_codes).value();
    let mut created = false;
    let customer = store::upsert(&state.pool, org, &external_id, tax_codes.as_deref(), |current| {
        created = current.is_none();
        Ok(domain::upsert(current, input)?)
    })
    .await?;
    if created {
        state
            .tracker
            .track(org, || TrackEvent::CustomerCreated { customer_id: customer.id, created_at: customer.created_at });
    }
    Ok(Json(CustomerEnvelope { customer: render(&customer) }))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
) -> Result<Json<CustomerEnvelope>, ApiError> {
    let customer = store::find(&state.pool, org, &external_id).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(CustomerEnvelope { customer: render(&customer) }))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
) -> Result<Json<CustomerEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(crate::Error::from)?;
    let customer = store::delete(&mut tx, org, &external_id).await?;
    // As Lago: the customer's subscriptions end and its coupons stop applying.
    crate::store::subscriptions::terminate_all_of_customer(&mut tx, org, customer.id).await?;
    crate::store::coupons::terminate_all_of_customer(&mut tx, org, customer.id).await?;
    tx.commit().await.map_err(crate::Error::from)?;
    state
        .tracker
        .track(org, || TrackEvent::CustomerDeleted { customer_id: customer.id, deleted_at: chrono::Utc::now() });
    Ok(Json(CustomerEnvelope { customer: render(&customer) }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CustomersPage>, ApiError> {
    let pairs: Vec<(String, String)> =
        raw.as_deref().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let one = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let many = |k: &str| -> Vec<String> {
        pairs.iter().filter(|(key, _)| key == &format!("{k}[]")).map(|(_, v)| v.clone()).collect()
    };
    let flag = |k: &str| {
        one(k).and_then(|v| match v.as_str() {
            "true" | "1" | "t" => Some(true),
            "false" | "0" | "f" => Some(false),
            _ => None,
        })
    };
    let filter = store::ListFilter {
        search_term: one("search_term").filter(|s| !s.is_empty()),
        countries: many("countries").into_iter().map(|c| c.to_uppercase()).collect(),
        states: many("states"),
        zipcodes: many("zipcodes"),
        currencies: many("currencies"),
        has_tax_identification_number: flag("has_tax_identification_number"),
        customer_type: one("customer_type").filter(|s| !s.is_empty()),
        has_customer_type: flag("has_customer_type"),
        account_types: many("account_type"),
        metadata: pairs
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')).map(|k| (k.to_owned(), v.clone()))
            })
            .collect(),
    };
    let page = PageQuery { page: one("page"), per_page: one("per_page") }.page();
    let (customers, total) = store::list(&state.pool, org, &filter, page.limit(), page.offset()).await?;
    Ok(Json(CustomersPage { customers: customers.iter().map(render).collect(), meta: page.meta(total) }))
}

pub(super) fn render(c: &Customer) -> CustomerObject {
    let a = &c.attrs;
    let text = |f: &str| a.get(f).map(str::to_owned);
    CustomerObject {
        lago_id: c.id,
        external_id: a.external_id.clone(),
        account_type: "customer",
        name: text("name"),
        firstname: text("firstname"),
        lastname: text("lastname"),
        customer_type: text("customer_type"),
        sequential_id: c.sequential_id,
        slug: c.slug.clone(),
        created_at: timestamp(c.created_at),
        updated_at: timestamp(c.updated_at),
        country: text("country"),
        address_line1: text("address_line1"),
        address_line2: text("address_line2"),
        state: text("state"),
        zipcode: text("zipcode"),
        email: text("email"),
        city: text("city"),
        url: text("url"),
        phone: text("phone"),
        logo_url: text("logo_url"),
        legal_name: text("legal_name"),
        legal_number: text("legal_number"),
        currency: text("currency"),
        tax_identification_number: text("tax_identification_number"),
        timezone: text("timezone"),
        applicable_timezone: c.applicable_timezone.clone(),
        net_payment_term: a.net_payment_term,
        external_salesforce_id: None,
        finalize_zero_amount_invoice: a.finalize_zero_amount_invoice.clone(),
        billing_configuration: CustomerBillingConfiguration {
            invoice_grace_period: a.invoice_grace_period,
            document_locale: a.document_locale.clone(),
        },
        shipping_address: AddressObject {
            address_line1: text("shipping_address_line1"),
            address_line2: text("shipping_address_line2"),
            city: text("shipping_city"),
            zipcode: text("shipping_zipcode"),
            state: text("shipping_state"),
            country: text("shipping_country"),
        },
        skip_invoice_custom_sections: a.skip_invoice_custom_sections,
        metadata: c
            .metadata
            .iter()
            .map(|m| CustomerMetadataObject {
                lago_id: m.id,
                key: m.key.clone(),
                value: m.value.clone(),
                display_in_invoice: m.display_in_invoice,
                created_at: timestamp(m.created_at),
            })
            .collect(),
        taxes: c.taxes.iter().map(super::taxes::render).collect(),
        integration_customers: Vec::new(),
        applicable_invoice_custom_sections: Vec::new(),
    }
}
