//! `GET /api/v1/customers/{external_customer_id}/past_usage`: a subscription's usage in the periods already
//! invoiced, rebuilt from the stored charge fees and rendered like current usage (Lago's `usage_periods`).
//!
//! As in Lago, an unknown customer or subscription is an empty list, not a 404; a missing
//! `external_subscription_id` is a 422 and an unknown `billable_metric_code` a 404.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use rust_decimal::Decimal;
use schemas::error::field_error;
use schemas::objects::invoice::{CustomerPastUsage, CustomerUsageObject};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::invoicer::FeeDraft;
use crate::store::past_usage::{self as store, ChargeFee, Filter};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/customers/{external_customer_id}/past_usage", get(past_usage))
}

/// A stored charge fee in the shape the usage rendering (shared with current usage) reads.
fn as_draft(f: &ChargeFee) -> FeeDraft {
    FeeDraft {
        fee_type: "charge",
        charge_id: Some(f.charge_id),
        charge_filter_id: f.charge_filter_id,
        item_id: f.billable_metric_id,
        item_type: "BillableMetric",
        item_code: f.metric_code.clone(),
        item_name: f.metric_name.clone(),
        item_description: None,
        item_invoice_display_name: f.charge_invoice_display_name.clone(),
        item_filter_invoice_display_name: f.item_filter_invoice_display_name.clone(),
        filters: f.filters.as_ref().map(|j| j.0.clone()),
        grouped_by: f.grouped_by.0.clone(),
        amount_cents: f.amount_cents,
        precise_amount_cents: Decimal::from(f.amount_cents),
        units: f.units,
        usage_units: None,
        events_count: f.events_count,
        unit_amount_cents: 0,
        precise_unit_amount: Decimal::ZERO,
        invoiceable: true,
        from: None,
        to: None,
        taxes: Vec::new(),
        billable_metric: Some(f.billable_metric_id),
        charge_model: Some(f.charge_model.clone()),
        aggregation_type: f.aggregation_type.clone(),
    }
}

async fn past_usage(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_customer_id): Path<String>,
    Query(page): Query<PageQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CustomerPastUsage>, ApiError> {
    let q: BTreeMap<String, String> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let present = |key: &str| q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let external_subscription_id = present("external_subscription_id")
        .ok_or_else(|| ApiError::Validation(field_error("external_subscription_id", "value_is_mandatory")))?;
    // Lago limits the page to `periods_count` (Ruby's `to_i`); Billstream refuses what is not a count.
    let periods_count = match present("periods_count") {
        None => None,
        Some(v) => {
            Some(v.parse::<u32>().map_err(|_| ApiError::Validation(field_error("periods_count", "value_is_invalid")))?)
        }
    };
    let billable_metric_id = match present("billable_metric_code") {
        None => None,
        Some(code) => Some(
            crate::store::billable_metrics::find(&state.pool, org, code)
                .await?
                .ok_or(ApiError::NotFound("billable_metric"))?
                .id,
        ),
    };
    let filter = Filter {
        external_customer_id,
        external_subscription_id: external_subscription_id.to_owned(),
        billable_metric_id,
    };
    let p = page.page();
    let limit = periods_count.map_or(p.limit(), i64::from);
    let (periods, total) = store::periods(&state.pool, org, &filter, limit, p.offset()).await?;
    let invoices: Vec<_> = periods.iter().map(|p| p.invoice_id).collect();
    let fees = store::charge_fees(&state.pool, org, &filter, &invoices).await?;
    let usage_periods = periods
        .iter()
        .map(|period| {
            let mine: Vec<FeeDraft> = fees.iter().filter(|f| f.invoice_id == period.invoice_id).map(as_draft).collect();
            CustomerUsageObject {
                from_datetime: timestamp(period.charges_from_datetime),
                to_datetime: timestamp(period.charges_to_datetime),
                issuing_date: period.issuing_date.to_string(),
                lago_invoice_id: Some(period.invoice_id),
                currency: period.currency.clone(),
                // Lago's past usage gives the invoice's totals (subscription fee included), and its charges.
                amount_cents: period.fees_amount_cents,
                taxes_amount_cents: period.fees_taxes_amount_cents,
                total_amount_cents: period.fees_amount_cents + period.fees_taxes_amount_cents,
                charges_usage: super::invoices::charges_usage(&mine, &period.currency),
            }
        })
        .collect();
    Ok(Json(CustomerPastUsage { usage_periods, meta: p.meta(total) }))
}
