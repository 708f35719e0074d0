//! `POST /api/v1/events/estimate_fees`: the fees an event would create on charges paid in advance, with their
//! taxes, stored nowhere.

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use rust_decimal::Decimal;
use schemas::body::{JsonObject, take_root};
use schemas::error::field_error;
use schemas::objects::invoice::{FeeItem, FeeObject};
use schemas::objects::timestamp;
use schemas::{ApiError, OrgId};
use serde_json::{Value, json};

use super::ApiState;
use crate::domain::invoice_totals::{self, FeeLine};
use crate::invoicer::in_advance::{EstimateError, EstimateEvent, estimate};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/events/estimate_fees", post(estimate_fees))
}

async fn estimate_fees(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let event = take_root(body, "event")?;
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(external_subscription_id) = text("external_subscription_id") else {
        return Err(ApiError::NotFound("subscription"));
    };
    let input = EstimateEvent {
        code: text("code").unwrap_or_default(),
        properties: event.get("properties").filter(|p| p.is_object()).cloned().unwrap_or_else(|| json!({})),
        precise_total_amount_cents: event
            .get("precise_total_amount_cents")
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_number().map(ToString::to_string)))
            .and_then(|s| s.parse::<Decimal>().ok()),
    };
    let now = state.clock.now();
    let (currency, fees) =
        match estimate(&state.pool, state.events.as_ref(), org, &external_subscription_id, &input, now).await {
            Ok(f) => f,
            Err(EstimateError::SubscriptionNotFound) => return Err(ApiError::NotFound("subscription")),
            Err(EstimateError::MetricNotFound) => return Err(ApiError::NotFound("billable_metric")),
            Err(EstimateError::NoInstantCharge) => {
                return Err(field_error("code", "does_not_match_an_instant_charge").into());
            }
            Err(EstimateError::InvalidProperty) => {
                return Err(field_error("properties", "value_is_not_valid_number").into());
            }
            Err(EstimateError::Other(e)) => return Err(e.into()),
        };
    let objects: Vec<FeeObject> = fees
        .iter()
        .map(|f| {
            let line = FeeLine {
                amount_cents: f.amount_cents,
                plans: Vec::new(),
                billable_metric: f.billable_metric,
                taxes: f.taxes.iter().map(|t| invoice_totals::Tax { code: t.code.clone(), rate: t.rate }).collect(),
                precise_coupons_cents: Decimal::ZERO,
            };
            let taxes = invoice_totals::fee_taxes(&line);
            let rate: Decimal = f.taxes.iter().map(|t| t.rate).sum();
            FeeObject {
                lago_id: None,
                lago_charge_id: f.charge_id,
                lago_charge_filter_id: f.charge_filter_id,
                lago_invoice_id: None,
                lago_true_up_fee_id: None,
                lago_true_up_parent_fee_id: None,
                lago_subscription_id: None,
                lago_customer_id: None,
                external_customer_id: None,
                external_subscription_id: Some(external_subscription_id.clone()),
                invoice_display_name: f.item_invoice_display_name.clone(),
                description: None,
                amount_cents: f.amount_cents,
                precise_amount: super::invoices::dec(f.precise_amount_cents / currency.subunits()),
                precise_total_amount: super::invoices::dec(
                    (f.precise_amount_cents + Decimal::from(taxes.total_cents)) / currency.subunits(),
                ),
                amount_currency: currency.code.into(),
                taxes_amount_cents: taxes.total_cents,
                taxes_precise_amount: super::invoices::dec(Decimal::from(taxes.total_cents) / currency.subunits()),
                taxes_rate: super::invoices::number(rate),
                units: super::invoices::dec(f.units),
                precise_unit_amount: super::invoices::dec(f.precise_unit_amount),
                total_aggregated_units: super::invoices::dec(f.units),
                total_amount_cents: f.amount_cents + taxes.total_cents,
                total_amount_currency: currency.code.into(),
                events_count: f.events_count,
                pay_in_advance: true,
                invoiceable: f.invoiceable,
                from_date: f.from.map(timestamp),
                to_date: f.to.map(timestamp),
                payment_status: "pending".into(),
                created_at: None,
                succeeded_at: None,
                failed_at: None,
                refunded_at: None,
                event_transaction_id: None,
                precise_coupons_amount_cents: "0".into(),
                sub_total_excluding_taxes_amount_cents: f.amount_cents,
                sub_total_excluding_taxes_precise_amount_cents: super::invoices::dec(f.precise_amount_cents),
                self_billed: false,
                item: FeeItem {
                    kind: f.fee_type.into(),
                    code: f.item_code.clone(),
                    name: f.item_name.clone(),
                    description: f.item_description.clone(),
                    invoice_display_name: f.item_invoice_display_name.clone().unwrap_or_else(|| f.item_name.clone()),
                    filter_invoice_display_name: f.item_filter_invoice_display_name.clone(),
                    filters: f.filters.clone(),
                    lago_item_id: f.item_id,
                    item_type: f.item_type.into(),
                    grouped_by: f.grouped_by.clone(),
                },
                applied_taxes: Vec::new(),
            }
        })
        .collect();
    Ok(Json(json!({ "fees": objects })))
}
