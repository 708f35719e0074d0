//! `/api/v1/invoices`: list, show, finalize a draft, void a finalized invoice; and a customer's current usage
//! (`/api/v1/customers/{external_customer_id}/current_usage`), priced by the same code as invoices.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use schemas::body::JsonObject;
use schemas::objects::customer::CustomerObject;
use schemas::objects::invoice::*;
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};
use uuid::Uuid;

use super::ApiState;
use crate::Error;
use crate::invoicer::{self, FeeDraft};
use crate::store::invoices::{self as store, FeeRow, FeeTaxRow, Invoice, ListFilter};
use crate::tracking::TrackEvent;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/invoices", get(list))
        .route("/api/v1/invoices/{lago_id}", get(show).put(update))
        .route("/api/v1/invoices/{lago_id}/finalize", put(finalize))
        .route("/api/v1/invoices/{lago_id}/refresh", put(refresh))
        .route("/api/v1/invoices/{lago_id}/void", post(void))
        .route("/api/v1/customers/{external_customer_id}/current_usage", get(current_usage))
}

const ROOT: &str = "invoice";

fn query_map(raw: &Option<String>) -> BTreeMap<String, String> {
    form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).into_owned().collect()
}

fn lago_id(s: &str) -> Result<Uuid, ApiError> {
    // Lago looks the invoice up by id; a malformed id finds nothing.
    Uuid::parse_str(s).map_err(|_| ApiError::NotFound(ROOT))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let invoice = store::get(&mut conn, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let object = render(&mut conn, org, &invoice).await?;
    Ok(Json(InvoiceEnvelope { invoice: object }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(page): Query<PageQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<InvoicesPage>, ApiError> {
    let q = query_map(&raw);
    let date = |key: &str| -> Result<Option<chrono::NaiveDate>, ApiError> {
        match q.get(key) {
            None => Ok(None),
            Some(v) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map(Some).map_err(|_| {
                let mut e = schemas::ValidationErrors::default();
                e.add(key, "invalid_date");
                ApiError::Validation(e)
            }),
        }
    };
    let filter = ListFilter {
        external_customer_id: q.get("external_customer_id").cloned(),
        status: q.get("status").cloned(),
        payment_status: q.get("payment_status").cloned(),
        invoice_type: q.get("invoice_type").cloned(),
        currency: q.get("currency").cloned(),
        issuing_date_from: date("issuing_date_from")?,
        issuing_date_to: date("issuing_date_to")?,
    };
    let p = page.page();
    let (invoices, total) = store::list(&state.pool, org, &filter, p.limit(), p.offset()).await?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let mut out = Vec::with_capacity(invoices.len());
    for i in &invoices {
        out.push(render(&mut conn, org, i).await?);
    }
    Ok(Json(InvoicesPage { invoices: out, meta: p.meta(total) }))
}

/// Lago's invoice update: the payment status (not on a draft) and the metadata.
async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let input = match body.get("invoice") {
        Some(serde_json::Value::Object(o)) => o.clone(),
        _ => {
            return Err(ApiError::BadRequest(
                "BadRequest: param is missing or the value is empty or invalid: invoice".into(),
            ));
        }
    };
    let mut errors = schemas::ValidationErrors::default();
    let payment_status = match input.get("payment_status") {
        None => None,
        Some(serde_json::Value::String(s)) if matches!(s.as_str(), "pending" | "succeeded" | "failed") => {
            Some(s.clone())
        }
        Some(_) => {
            errors.add("payment_status", "value_is_invalid");
            None
        }
    };
    let metadata = match input.get("metadata") {
        None => None,
        Some(serde_json::Value::Array(items)) => {
            let parsed: Vec<Option<store::MetadataInput>> = items
                .iter()
                .map(|m| {
                    let key = m.get("key")?.as_str()?.to_owned();
                    let value = m.get("value")?.as_str()?.to_owned();
                    let id = match m.get("id") {
                        None | Some(serde_json::Value::Null) => None,
                        Some(v) => Some(Uuid::parse_str(v.as_str()?).ok()?),
                    };
                    (value.chars().count() <= 140).then_some(store::MetadataInput { id, key, value })
                })
                .collect();
            if items.len() > 5 {
                errors.add("metadata", "invalid_count");
            } else if parsed.iter().any(Option::is_none) {
                errors.add("metadata", "invalid_value");
            }
            Some(parsed.into_iter().flatten().collect::<Vec<_>>())
        }
        Some(_) => {
            errors.add("metadata", "invalid_value");
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let status = store::status(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let mut changed_payment_status = None;
    if let Some(payment_status) = payment_status {
        let current = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?.row.payment_status;
        if status == "draft" && current != payment_status {
            return Err(ApiError::NotAllowed("payment_status_update_on_draft_invoice"));
        }
        store::set_payment_status(&mut tx, org, id, &payment_status).await?;
        if current != payment_status {
            changed_payment_status = Some(payment_status);
        }
    }
    if let Some(items) = metadata {
        store::set_metadata(&mut tx, org, id, &items).await?;
    }
    let invoice = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let object = render(&mut tx, org, &invoice).await?;
    tx.commit().await.map_err(Error::from)?;
    if let Some(payment_status) = changed_payment_status {
        state.tracker.track(org, || TrackEvent::PaymentStatusChanged { invoice_id: id, payment_status });
    }
    Ok(Json(InvoiceEnvelope { invoice: object }))
}

async fn finalize(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    // Lago finalizes drafts only (anything else is not found), computing them again first.
    if store::status(&mut tx, org, id).await?.as_deref() != Some("draft") {
        return Err(ApiError::NotFound(ROOT));
    }
    crate::invoicer::refresh::refresh(&mut tx, state.events.as_ref(), org, id).await?;
    store::finalize(&mut tx, org, id).await?;
    let invoice = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let object = render(&mut tx, org, &invoice).await?;
    tx.commit().await.map_err(Error::from)?;
    state
        .tracker
        .track(org, || TrackEvent::InvoiceCreated { invoice_id: id, invoice_type: invoice.row.invoice_type.clone() });
    Ok(Json(InvoiceEnvelope { invoice: object }))
}

/// Computes a draft again with the events received since; any other invoice is returned as it is.
async fn refresh(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    use crate::invoicer::refresh::Refreshed;
    let id = lago_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::status(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    if crate::invoicer::refresh::refresh(&mut tx, state.events.as_ref(), org, id).await? == Refreshed::NotSubscription {
        return Err(ApiError::Forbidden("feature_unavailable"));
    }
    let invoice = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let object = render(&mut tx, org, &invoice).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(InvoiceEnvelope { invoice: object }))
}

async fn void(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::status(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    if !store::void(&mut tx, org, id).await? {
        // Lago: only a finalized invoice can be voided.
        return Err(ApiError::NotAllowed("not_voidable"));
    }
    let invoice = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let object = render(&mut tx, org, &invoice).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(InvoiceEnvelope { invoice: object }))
}

/// A decimal as Lago renders units and precise amounts: a plain string without exponent.
pub(super) fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

/// A rate as a JSON number (display only; amounts are never floats).
pub(super) fn number(d: Decimal) -> serde_json::Number {
    d.normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .ok()
        .or_else(|| serde_json::Number::from_f64(d.to_f64().unwrap_or(0.0)))
        .unwrap_or_else(|| serde_json::Number::from(0))
}

async fn customer_object(conn: &mut sqlx::PgConnection, org: Uuid, id: Uuid) -> Result<CustomerObject, ApiError> {
    let c = crate::store::customers::find_by_id(conn, org, id).await?.ok_or(ApiError::NotFound("customer"))?;
    Ok(super::customers::render(&c))
}

/// A fee as Lago renders it, with its taxes; `invoice` and the customer are `None` only for a fee without an invoice
/// or subscription.
pub(super) fn fee_object(
    f: &FeeRow,
    taxes: &[&FeeTaxRow],
    invoice: Option<Uuid>,
    customer_id: Option<Uuid>,
    external_customer_id: Option<String>,
) -> FeeObject {
    let sub_total_precise = f.precise_amount_cents - f.precise_coupons_amount_cents;
    let subunits =
        crate::domain::money::Currency::from_code(&f.amount_currency).map_or(Decimal::ONE_HUNDRED, |c| c.subunits());
    FeeObject {
        lago_id: Some(f.id),
        lago_charge_id: f.charge_id,
        lago_charge_filter_id: f.charge_filter_id,
        lago_invoice_id: invoice,
        lago_true_up_fee_id: None,
        lago_true_up_parent_fee_id: None,
        lago_subscription_id: f.subscription_id,
        lago_customer_id: customer_id,
        external_customer_id,
        external_subscription_id: f.external_subscription_id.clone(),
        invoice_display_name: f.item_invoice_display_name.clone(),
        amount_cents: f.amount_cents,
        precise_amount: dec(f.precise_amount_cents / subunits),
        precise_total_amount: dec((f.precise_amount_cents - f.precise_coupons_amount_cents
            + f.taxes_precise_amount_cents)
            / subunits),
        amount_currency: f.amount_currency.clone(),
        taxes_amount_cents: f.taxes_amount_cents,
        taxes_precise_amount: dec(f.taxes_precise_amount_cents / subunits),
        taxes_rate: number(f.taxes_rate),
        units: dec(f.units),
        precise_unit_amount: dec(f.precise_unit_amount),
        total_aggregated_units: dec(f.total_aggregated_units),
        total_amount_cents: f.amount_cents + f.taxes_amount_cents,
        total_amount_currency: f.amount_currency.clone(),
        events_count: f.events_count,
        pay_in_advance: f.pay_in_advance,
        invoiceable: f.invoiceable,
        from_date: f.from_datetime.map(timestamp),
        to_date: f.to_datetime.map(timestamp),
        payment_status: f.payment_status.clone(),
        created_at: Some(timestamp(f.created_at)),
        succeeded_at: f.succeeded_at.map(timestamp),
        failed_at: f.failed_at.map(timestamp),
        refunded_at: f.refunded_at.map(timestamp),
        event_transaction_id: f.pay_in_advance_event_transaction_id.clone(),
        description: f.description.clone(),
        precise_coupons_amount_cents: dec(f.precise_coupons_amount_cents),
        sub_total_excluding_taxes_amount_cents: crate::domain::invoicing::round_cents(sub_total_precise),
        sub_total_excluding_taxes_precise_amount_cents: dec(sub_total_precise),
        self_billed: false,
        item: FeeItem {
            kind: f.fee_type.clone(),
            code: f.item_code.clone(),
            name: f.item_name.clone(),
            description: f.item_description.clone(),
            invoice_display_name: f.item_invoice_display_name.clone().unwrap_or_else(|| f.item_name.clone()),
            filter_invoice_display_name: f.item_filter_invoice_display_name.clone(),
            filters: f.filters.as_ref().map(|j| j.0.clone()),
            lago_item_id: f.item_id,
            item_type: f.item_type.clone(),
            grouped_by: f.grouped_by.0.clone(),
        },
        applied_taxes: taxes
            .iter()
            .map(|t| FeeAppliedTaxObject {
                lago_id: t.id,
                lago_fee_id: f.id,
                lago_tax_id: t.tax_id,
                tax_name: t.tax_name.clone(),
                tax_code: t.tax_code.clone(),
                tax_rate: number(t.tax_rate),
                tax_description: None,
                amount_cents: t.amount_cents,
                amount_currency: f.amount_currency.clone(),
                created_at: timestamp(t.created_at),
            })
            .collect(),
    }
}

pub(super) async fn render(conn: &mut sqlx::PgConnection, org: Uuid, i: &Invoice) -> Result<InvoiceObject, ApiError> {
    let r = &i.row;
    let customer = customer_object(conn, org, r.customer_id).await?;
    let fees = i
        .fees
        .iter()
        .map(|f| {
            let taxes: Vec<&FeeTaxRow> = i.fee_taxes.iter().filter(|t| t.fee_id == f.id).collect();
            fee_object(f, &taxes, Some(r.id), Some(r.customer_id), Some(customer.external_id.clone()))
        })
        .collect();
    Ok(InvoiceObject {
        lago_id: r.id,
        billing_entity_code: None,
        sequential_id: r.sequential_id,
        number: r.number.clone(),
        issuing_date: r.issuing_date.to_string(),
        payment_due_date: r.payment_due_date.to_string(),
        payment_overdue: r.status == "finalized"
            && r.payment_status != "succeeded"
            && r.payment_due_date < chrono::Utc::now().date_naive(),
        net_payment_term: i64::from(r.net_payment_term),
        invoice_type: r.invoice_type.clone(),
        status: r.status.clone(),
        payment_status: r.payment_status.clone(),
        currency: r.currency.clone(),
        fees_amount_cents: r.fees_amount_cents,
        coupons_amount_cents: r.coupons_amount_cents,
        credit_notes_amount_cents: r.credit_notes_amount_cents,
        sub_total_excluding_taxes_amount_cents: r.sub_total_excluding_taxes_amount_cents,
        taxes_amount_cents: r.taxes_amount_cents,
        sub_total_including_taxes_amount_cents: r.sub_total_including_taxes_amount_cents,
        prepaid_credit_amount_cents: r.prepaid_credit_amount_cents,
        progressive_billing_credit_amount_cents: 0,
        total_amount_cents: r.total_amount_cents,
        total_due_amount_cents: if r.status == "voided" { 0 } else { r.total_amount_cents },
        total_paid_amount_cents: 0,
        version_number: 4,
        self_billed: false,
        created_at: timestamp(r.created_at),
        updated_at: timestamp(r.updated_at),
        voided_at: r.voided_at.map(timestamp),
        customer,
        metadata: i
            .metadata
            .iter()
            .map(|m| {
                serde_json::json!({"lago_id": m.id, "key": m.key, "value": m.value,
                                   "created_at": timestamp(m.created_at)})
            })
            .collect(),
        applied_taxes: i
            .taxes
            .iter()
            .map(|t| InvoiceAppliedTaxObject {
                lago_id: t.id,
                lago_invoice_id: r.id,
                lago_tax_id: t.tax_id,
                tax_name: t.tax_name.clone(),
                tax_code: t.tax_code.clone(),
                tax_rate: number(t.tax_rate),
                tax_description: t.tax_description.clone(),
                amount_cents: t.amount_cents,
                amount_currency: r.currency.clone(),
                fees_amount_cents: t.fees_amount_cents,
                created_at: timestamp(t.created_at),
            })
            .collect(),
        applied_invoice_custom_sections: Vec::new(),
        applied_usage_thresholds: Vec::new(),
        billing_periods: i
            .periods
            .iter()
            .map(|p| BillingPeriodObject {
                lago_subscription_id: p.subscription_id,
                external_subscription_id: p.external_subscription_id.clone(),
                lago_plan_id: p.plan_id,
                subscription_from_datetime: timestamp(p.from_datetime.unwrap_or(p.charges_from_datetime)),
                subscription_to_datetime: timestamp(p.to_datetime.unwrap_or(p.charges_to_datetime)),
                charges_from_datetime: timestamp(p.charges_from_datetime),
                charges_to_datetime: timestamp(p.charges_to_datetime),
                invoicing_reason: p.invoicing_reason.clone(),
            })
            .collect(),
        credits: i
            .credits
            .iter()
            .map(|c| CreditObject {
                lago_id: c.id,
                amount_cents: c.amount_cents,
                amount_currency: c.amount_currency.clone(),
                before_taxes: c.before_taxes,
                item: CreditItem {
                    lago_item_id: c.item_id,
                    kind: c.item_type.clone(),
                    code: c.item_code.clone(),
                    name: c.item_name.clone(),
                },
                invoice: CreditInvoice { lago_id: r.id, payment_status: r.payment_status.clone() },
            })
            .collect(),
        fees,
    })
}

async fn current_usage(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_customer_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CustomerUsageEnvelope>, ApiError> {
    let q = query_map(&raw);
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    crate::store::subscriptions::refresh(&mut conn, org).await?;
    let customer = crate::store::customers::find_in(&mut conn, org, &external_customer_id, false)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let Some(external_subscription_id) = q.get("external_subscription_id") else {
        return Err(ApiError::NotFound("subscription"));
    };
    let sub = crate::store::subscriptions::find(&mut conn, org, external_subscription_id, "active", false)
        .await?
        .filter(|s| s.customer_id == customer.id)
        .ok_or(ApiError::NotFound("subscription"))?;
    drop(conn);
    let usage = invoicer::current_usage(&state.pool, state.events.as_ref(), org, sub.id, state.clock.now()).await?;
    let amount: i64 = usage.fees.iter().map(|f| f.amount_cents).sum();
    Ok(Json(CustomerUsageEnvelope {
        customer_usage: CustomerUsageObject {
            from_datetime: timestamp(usage.from),
            to_datetime: timestamp(usage.to),
            issuing_date: usage.issuing_date.to_string(),
            lago_invoice_id: None,
            currency: usage.currency.to_owned(),
            amount_cents: amount,
            taxes_amount_cents: usage.taxes_amount_cents,
            total_amount_cents: amount + usage.taxes_amount_cents,
            charges_usage: charges_usage(&usage.fees, usage.currency),
        },
    }))
}

fn filter_usage(f: &FeeDraft) -> FilterUsageObject {
    FilterUsageObject {
        units: dec(f.shown_units()),
        total_aggregated_units: dec(f.shown_units()),
        amount_cents: f.amount_cents,
        events_count: f.events_count.unwrap_or(0),
        invoice_display_name: f.item_filter_invoice_display_name.clone(),
        values: f.filters.clone().unwrap_or(serde_json::Value::Null),
    }
}

/// One entry per charge: totals over its fees, with the filter and group breakdowns Lago gives.
pub(super) fn charges_usage(fees: &[FeeDraft], currency: &str) -> Vec<ChargeUsageObject> {
    let mut order: Vec<Uuid> = Vec::new();
    for f in fees {
        if let Some(c) = f.charge_id
            && !order.contains(&c)
        {
            order.push(c);
        }
    }
    order
        .into_iter()
        .filter_map(|charge| {
            let mine: Vec<&FeeDraft> = fees.iter().filter(|f| f.charge_id == Some(charge)).collect();
            let first = *mine.first()?;
            let units: Decimal = mine.iter().map(|f| f.shown_units()).sum();
            let grouped = !first.grouped_by.is_empty();
            let mut groups: Vec<GroupedUsageObject> = Vec::new();
            if grouped {
                for f in &mine {
                    match groups.iter_mut().find(|g| g.grouped_by == f.grouped_by) {
                        Some(g) => {
                            g.amount_cents += f.amount_cents;
                            g.events_count += f.events_count.unwrap_or(0);
                            g.filters.push(filter_usage(f));
                        }
                        None => groups.push(GroupedUsageObject {
                            amount_cents: f.amount_cents,
                            events_count: f.events_count.unwrap_or(0),
                            units: dec(f.shown_units()),
                            total_aggregated_units: dec(f.shown_units()),
                            grouped_by: f.grouped_by.clone(),
                            filters: if f.filters.is_some() { vec![filter_usage(f)] } else { Vec::new() },
                        }),
                    }
                }
            }
            Some(ChargeUsageObject {
                units: dec(units),
                total_aggregated_units: dec(units),
                events_count: mine.iter().map(|f| f.events_count.unwrap_or(0)).sum(),
                amount_cents: mine.iter().map(|f| f.amount_cents).sum(),
                amount_currency: currency.to_owned(),
                charge: ChargeUsageCharge {
                    lago_id: charge,
                    charge_model: first.charge_model.clone().unwrap_or_default(),
                    invoice_display_name: first.item_invoice_display_name.clone(),
                },
                billable_metric: ChargeUsageMetric {
                    lago_id: first.item_id,
                    name: first.item_name.clone(),
                    code: first.item_code.clone(),
                    aggregation_type: first.aggregation_type.clone().unwrap_or_default(),
                },
                filters: if grouped {
                    Vec::new()
                } else {
                    mine.iter().filter(|f| f.filters.is_some()).map(|f| filter_usage(f)).collect()
                },
                grouped_usage: groups,
            })
        })
        .collect()
}
