//! Charges paid in advance: the fee one more event adds, priced as Lago prices it: the charge model's price of the
//! period's units with the event, less its price without it (so a graduated tier or a package is paid once), for
//! the event's filter bucket and pricing group. `estimate` serves `POST /events/estimate_fees`, which stores
//! nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use aggregate::EventStore;
use aggregate::ScanFilter;
use aggregate::jobs::JobSpec;
use aggregate::semantics::{AggregationType, filters_of, group_of, property_text, value_of};

use super::usage::{self, FeeDraft};
use super::{Context, contexts};
use crate::domain::charge_models::Usage;
use crate::store::subscriptions;
use crate::{Error, Result};

/// The event whose fees are estimated.
#[derive(Debug, Clone)]
pub struct EstimateEvent {
    pub code: String,
    pub properties: Value,
    pub precise_total_amount_cents: Option<Decimal>,
}

/// Why no estimate can be given.
#[derive(Debug)]
pub enum EstimateError {
    SubscriptionNotFound,
    MetricNotFound,
    /// The metric has no charge paid in advance on the subscription's plan.
    NoInstantCharge,
    /// The aggregated property is not a number.
    InvalidProperty,
    Other(Error),
}

impl From<Error> for EstimateError {
    fn from(e: Error) -> Self {
        EstimateError::Other(e)
    }
}

/// The fees `event` would create now on the active subscription `external_subscription_id`.
pub async fn estimate(
    pool: &sqlx::PgPool,
    events: &dyn EventStore,
    org: uuid::Uuid,
    external_subscription_id: &str,
    event: &EstimateEvent,
    now: DateTime<Utc>,
) -> std::result::Result<(crate::domain::money::Currency, Vec<FeeDraft>), EstimateError> {
    let mut conn = pool.acquire().await.map_err(Error::from)?;
    let sub = subscriptions::find(&mut conn, org, external_subscription_id, "active", false)
        .await?
        .ok_or(EstimateError::SubscriptionNotFound)?;
    let ctx = contexts(&mut conn, vec![sub]).await?.pop().ok_or(EstimateError::SubscriptionNotFound)?;
    drop(conn);
    let metric =
        crate::store::billable_metrics::find(pool, org, &event.code).await?.ok_or(EstimateError::MetricNotFound)?;
    let charges: Vec<_> =
        ctx.plan.charges.iter().filter(|c| c.attrs.pay_in_advance && c.billable_metric_code == event.code).collect();
    if charges.is_empty() {
        return Err(EstimateError::NoInstantCharge);
    }
    let spec = usage::metric_spec(&metric)?;
    let value = match (&spec.field_name, spec.aggregation_type) {
        (_, AggregationType::Count) => Some(Decimal::ONE),
        (Some(field), AggregationType::Sum) => match property_text(&event.properties, field) {
            None => Some(Decimal::ZERO),
            Some(text) => Some(value_of(&text).ok_or(EstimateError::InvalidProperty)?),
        },
        _ => None,
    };
    let window = ctx.current_window(now);
    let mut fees = Vec::new();
    for charge in charges {
        let job: JobSpec = usage::job(&ctx, charge, &metric, vec![ctx.sub.external_id.clone()], window)?;
        let hit = filters_of(&job.filters, &event.properties);
        let bucket = hit.first().copied();
        let group = group_of(&event.properties, &job.grouped_by);
        let totals = aggregate::jobs::run(events, &job).await.map_err(|e| Error::Internal(e.to_string()))?;
        let before =
            totals.iter().find(|t| t.filter == bucket && t.group == group).map(|t| t.total.units).unwrap_or_default();
        let delta = match value {
            Some(v) => v,
            // A unique count grows by one unless the value was already counted this period.
            None => unique_delta(events, &ctx, &job, bucket, &group, &event.properties).await?,
        };
        let (own, by_filter) = usage::models_of(charge)?;
        let model = bucket.and_then(|i| by_filter.get(i)).unwrap_or(&own);
        let price = |units: Decimal| {
            let u = Usage {
                units,
                events_count: 1,
                event_values: vec![delta],
                precise_total_amount_cents: event.precise_total_amount_cents.unwrap_or_default(),
                subunit_to_unit: ctx.currency.subunits(),
                ..Usage::default()
            };
            model.price(&u).map(|p| p.amount).map_err(|e| Error::Internal(format!("charge {}: {e}", charge.id)))
        };
        let amount = price(before + delta)? - price(before)?;
        let unit = if delta.is_zero() { Decimal::ZERO } else { amount / delta };
        let filter = bucket.and_then(|i| charge.filters.get(i));
        fees.push(FeeDraft {
            fee_type: "charge",
            charge_id: Some(charge.id),
            charge_filter_id: filter.map(|f| f.id),
            item_id: metric.id,
            item_type: "BillableMetric",
            item_code: metric.attrs.code.clone().unwrap_or_default(),
            item_name: metric.attrs.name.clone().unwrap_or_default(),
            item_description: metric.attrs.description.clone(),
            item_invoice_display_name: charge.attrs.invoice_display_name.clone(),
            item_filter_invoice_display_name: filter.and_then(|f| f.attrs.invoice_display_name.clone()),
            filters: filter.map(|f| serde_json::to_value(&f.attrs.values).unwrap_or(Value::Null)),
            grouped_by: job
                .grouped_by
                .iter()
                .zip(&group)
                .map(|(k, v)| (k.clone(), v.clone().map(Value::String).unwrap_or(Value::Null)))
                .collect(),
            amount_cents: ctx.currency.to_cents(amount),
            precise_amount_cents: ctx.currency.to_precise_cents(amount),
            units: delta,
            events_count: Some(1),
            unit_amount_cents: ctx.currency.to_unit_cents(unit),
            precise_unit_amount: unit,
            invoiceable: charge.attrs.invoiceable,
            from: Some(window.from),
            to: Some(window.to),
            taxes: ctx.taxes_for(&charge.taxes),
            billable_metric: Some(metric.id),
            charge_model: Some(charge.attrs.charge_model.clone()),
            aggregation_type: metric.attrs.aggregation_type.clone(),
        });
    }
    Ok((ctx.currency, fees))
}

async fn unique_delta(
    events: &dyn EventStore,
    ctx: &Context,
    job: &JobSpec,
    bucket: Option<usize>,
    group: &[Option<String>],
    properties: &Value,
) -> Result<Decimal> {
    let Some(field) = job.metric.field_name.as_deref() else { return Ok(Decimal::ONE) };
    let Some(value) = property_text(properties, field) else { return Ok(Decimal::ZERO) };
    let filter = ScanFilter {
        organization_id: ctx.sub.organization_id,
        external_subscription_ids: vec![ctx.sub.external_id.clone()],
        codes: vec![job.code.clone()],
        from: job.window.from,
        to: job.window.to + chrono::Duration::microseconds(1),
    };
    let stored = events.scan(&filter).await.map_err(|e| Error::Internal(e.to_string()))?;
    // The value's last operation in the bucket decides: still added means it is counted already.
    let mut last: HashMap<bool, (DateTime<Utc>, bool)> = HashMap::new();
    for e in stored {
        let props: Value = serde_json::from_str(&e.properties).unwrap_or(Value::Null);
        if property_text(&props, field).as_deref() != Some(value.as_str())
            || filters_of(&job.filters, &props).first().copied() != bucket
            || group_of(&props, &job.grouped_by) != group
        {
            continue;
        }
        let added = property_text(&props, "operation_type").as_deref() != Some("remove");
        let entry = last.entry(true).or_insert((e.timestamp, added));
        if e.timestamp >= entry.0 {
            *entry = (e.timestamp, added);
        }
    }
    Ok(if last.get(&true).is_some_and(|(_, added)| *added) { Decimal::ZERO } else { Decimal::ONE })
}
