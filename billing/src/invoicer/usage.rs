//! Usage of many subscriptions at once, as fee drafts: subscriptions that share a plan and a charges window are
//! aggregated together, one `aggregate` job per charge over all of them (one scan of the store per metric, not one
//! per subscription), then each subscription's totals are priced by its charge's model.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use aggregate::EventStore;
use aggregate::details::{BucketDetail, BucketKey};
use aggregate::jobs::{JobSpec, SubscriptionTotal};
use aggregate::prorated::Prorated;
use aggregate::semantics::{AggregationType, ChargeFilter, MetricSpec, RoundingFunction, Window};

use super::Context;
use crate::domain::charge::ALL_FILTER_VALUES;
use crate::domain::charge_models::{ChargeModel, Usage};
use crate::domain::invoicing;
use crate::store::billable_metrics::Metric;
use crate::store::plans::Charge;
use crate::store::taxes::Tax;
use crate::{Error, Result};

/// One fee as it will be stored.
#[derive(Debug, Clone)]
pub struct FeeDraft {
    pub fee_type: &'static str,
    pub charge_id: Option<Uuid>,
    pub charge_filter_id: Option<Uuid>,
    pub item_id: Uuid,
    pub item_type: &'static str,
    pub item_code: String,
    pub item_name: String,
    pub item_description: Option<String>,
    pub item_invoice_display_name: Option<String>,
    pub item_filter_invoice_display_name: Option<String>,
    pub filters: Option<Value>,
    pub grouped_by: Map<String, Value>,
    pub amount_cents: i64,
    pub precise_amount_cents: Decimal,
    pub units: Decimal,
    /// The units current usage shows, where they differ from the billed ones: a prorated charge shows its full units
    /// beside its prorated amount, as Lago does.
    pub usage_units: Option<Decimal>,
    pub events_count: Option<i64>,
    pub unit_amount_cents: i64,
    pub precise_unit_amount: Decimal,
    pub invoiceable: bool,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub taxes: Vec<Tax>,
    pub billable_metric: Option<Uuid>,
    /// For the usage breakdown: the charge's model and its metric's aggregation.
    pub charge_model: Option<String>,
    pub aggregation_type: Option<String>,
}

impl FeeDraft {
    /// The units current usage shows: the full units of a prorated charge, else the billed ones.
    pub fn shown_units(&self) -> Decimal {
        self.usage_units.unwrap_or(self.units)
    }

    /// The fee as stored, on `subscription`'s invoice.
    pub fn to_new(&self, subscription: Uuid) -> crate::store::invoice_rows::NewFee {
        crate::store::invoice_rows::NewFee {
            subscription_id: Some(subscription),
            charge_id: self.charge_id,
            charge_filter_id: self.charge_filter_id,
            fee_type: self.fee_type,
            item_id: self.item_id,
            item_type: self.item_type,
            item_code: self.item_code.clone(),
            item_name: self.item_name.clone(),
            item_description: self.item_description.clone(),
            item_invoice_display_name: self.item_invoice_display_name.clone(),
            item_filter_invoice_display_name: self.item_filter_invoice_display_name.clone(),
            description: None,
            filters: self.filters.clone(),
            grouped_by: self.grouped_by.clone(),
            amount_cents: self.amount_cents,
            precise_amount_cents: self.precise_amount_cents,
            units: self.units,
            events_count: self.events_count,
            unit_amount_cents: self.unit_amount_cents,
            precise_unit_amount: self.precise_unit_amount,
            invoiceable: self.invoiceable,
            from: self.from,
            to: self.to,
            taxes: self.taxes.clone(),
        }
    }

    /// The fee as coupons and taxes see it.
    pub fn draft(&self, plans: Vec<Uuid>) -> crate::domain::invoicing::DraftFee {
        crate::domain::invoicing::DraftFee {
            amount_cents: self.amount_cents,
            plans,
            billable_metric: self.billable_metric,
            taxes: self
                .taxes
                .iter()
                .map(|t| crate::domain::invoice_totals::Tax { code: t.code.clone(), rate: t.rate })
                .collect(),
        }
    }
}

pub(super) fn metric_spec(m: &Metric) -> Result<MetricSpec> {
    let agg = m.attrs.aggregation_type.as_deref().unwrap_or_default();
    let aggregation_type = AggregationType::parse(agg)
        .ok_or_else(|| Error::Internal(format!("aggregation type {agg} has no aggregation")))?;
    Ok(MetricSpec {
        aggregation_type,
        field_name: m.attrs.field_name.clone(),
        recurring: m.attrs.recurring,
        rounding: m
            .attrs
            .rounding_function
            .as_deref()
            .and_then(RoundingFunction::parse)
            .map(|f| (f, m.attrs.rounding_precision.unwrap_or(0))),
    })
}

/// A charge filter with Lago's catch-all value expanded to the metric's values for that key.
fn charge_filter(values: &BTreeMap<String, Vec<String>>, metric: &Metric) -> ChargeFilter {
    let values = values
        .iter()
        .map(|(key, vs)| {
            let all = vs.iter().any(|v| v == ALL_FILTER_VALUES);
            let vs = if all {
                metric.filters.iter().find(|f| &f.key == key).map(|f| f.values.clone()).unwrap_or_default()
            } else {
                vs.clone()
            };
            (key.clone(), vs)
        })
        .collect();
    ChargeFilter { values }
}

fn grouped_by(properties: &Map<String, Value>) -> Vec<String> {
    properties
        .get("pricing_group_keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A charge's fee for one filter bucket (`None`: the charge's own model) and pricing group over `window`, priced
/// at zero: what every charge fee (billed in arrears, paid in advance, estimated) names and shows. Callers set the
/// units and amounts.
pub(super) fn charge_fee(
    ctx: &Context,
    charge: &Charge,
    metric: &Metric,
    bucket: Option<usize>,
    grouped_by: Map<String, Value>,
    window: Window,
) -> FeeDraft {
    let filter = bucket.and_then(|i| charge.filters.get(i));
    FeeDraft {
        fee_type: "charge",
        charge_id: Some(charge.id),
        charge_filter_id: filter.map(|f| f.id),
        item_id: metric.id,
        item_type: "BillableMetric",
        item_code: charge.billable_metric_code.clone(),
        item_name: metric.attrs.name.clone().unwrap_or_default(),
        item_description: metric.attrs.description.clone(),
        item_invoice_display_name: charge.attrs.invoice_display_name.clone(),
        // A filter without a display name shows its values, as Lago.
        item_filter_invoice_display_name: filter.map(|f| {
            f.attrs
                .invoice_display_name
                .clone()
                .unwrap_or_else(|| f.attrs.values.values().flatten().cloned().collect::<Vec<_>>().join(", "))
        }),
        filters: filter.map(|f| serde_json::to_value(&f.attrs.values).unwrap_or(Value::Null)),
        grouped_by,
        amount_cents: 0,
        precise_amount_cents: Decimal::ZERO,
        units: Decimal::ZERO,
        usage_units: None,
        events_count: None,
        unit_amount_cents: 0,
        precise_unit_amount: Decimal::ZERO,
        invoiceable: charge.attrs.invoiceable,
        from: Some(window.from),
        to: Some(window.to),
        taxes: ctx.taxes_for(&charge.taxes),
        billable_metric: Some(metric.id),
        charge_model: Some(charge.attrs.charge_model.clone()),
        aggregation_type: metric.attrs.aggregation_type.clone(),
    }
}

pub(super) fn group_object(keys: &[String], group: &[Option<String>]) -> Map<String, Value> {
    keys.iter().zip(group).map(|(k, v)| (k.clone(), v.clone().map(Value::String).unwrap_or(Value::Null))).collect()
}

/// Models whose price needs each event, not only the total.
fn needs_events(model: &ChargeModel) -> bool {
    match model {
        ChargeModel::Percentage(p) => {
            p.free_units_per_events > 0
                || !p.free_units_per_total_aggregation.is_zero()
                || p.per_transaction_min_amount.is_some()
                || p.per_transaction_max_amount.is_some()
        }
        ChargeModel::Dynamic => true,
        _ => false,
    }
}

pub(super) fn models_of(charge: &Charge) -> Result<(ChargeModel, Vec<ChargeModel>)> {
    let parse = |props: &Map<String, Value>| {
        ChargeModel::from_properties(&charge.attrs.charge_model, props)
            .map_err(|e| Error::Internal(format!("charge {}: {e}", charge.id)))
    };
    let own = parse(&charge.attrs.properties)?;
    let filters = charge.filters.iter().map(|f| parse(&f.attrs.properties)).collect::<Result<Vec<_>>>()?;
    Ok((own, filters))
}

/// Whether `charge` bills prorated units: Lago prorates recurring sums and unique counts when the charge says so.
pub(super) fn is_prorated(charge: &Charge, metric: &Metric) -> bool {
    charge.attrs.prorated
        && metric.attrs.recurring
        && matches!(metric.attrs.aggregation_type.as_deref(), Some("sum_agg" | "unique_count_agg"))
}

/// The aggregation job of `charge` for these subscriptions over `window`.
pub(super) fn job(
    ctx: &Context,
    charge: &Charge,
    metric: &Metric,
    subscriptions: Vec<String>,
    window: Window,
) -> Result<JobSpec> {
    Ok(JobSpec {
        organization_id: ctx.sub.organization_id,
        code: charge.billable_metric_code.clone(),
        metric: metric_spec(metric)?,
        subscriptions,
        window,
        filters: charge.filters.iter().map(|f| charge_filter(&f.attrs.values, metric)).collect(),
        grouped_by: grouped_by(&charge.attrs.properties),
        initial_levels: HashMap::new(),
    })
}

/// The fees of one charge for one subscription, from its bucket totals: one per filter bucket (and the events that
/// matched no filter, when there are some) and pricing group.
fn price(
    ctx: &Context,
    charge: &Charge,
    metric: &Metric,
    totals: &[&SubscriptionTotal],
    details: Option<&HashMap<BucketKey, BucketDetail>>,
    prorated: Option<&HashMap<BucketKey, Prorated>>,
    window: Window,
) -> Result<Vec<FeeDraft>> {
    let keys = grouped_by(&charge.attrs.properties);
    let (own, by_filter) = models_of(charge)?;
    let mut fees = Vec::new();
    for t in totals {
        // A charge with filters bills the events outside them only when there are some (Lago's remainder fee).
        if t.filter.is_none() && !charge.filters.is_empty() && t.total.count == 0 {
            continue;
        }
        let model = t.filter.and_then(|i| by_filter.get(i)).unwrap_or(&own);
        let key = (t.external_subscription_id.clone(), t.filter, t.group.clone());
        let mut usage = Usage {
            units: t.total.units,
            full_units: None,
            prorated_events: None,
            events_count: t.total.count,
            event_values: Vec::new(),
            precise_total_amount_cents: Decimal::ZERO,
            subunit_to_unit: ctx.currency.subunits(),
        };
        if let Some(d) = details.and_then(|d| d.get(&key)) {
            usage.event_values = d.values.clone();
            usage.precise_total_amount_cents = d.precise_total_amount_cents;
        }
        if let Some(prorated) = prorated {
            // A prorated charge prices the prorated units; the full ones choose a volume tier.
            let p = prorated.get(&key).cloned().unwrap_or_default();
            usage.units = p.units;
            usage.full_units = Some(p.full_units);
            usage.prorated_events = Some(p.per_event);
        }
        let amount = invoicing::charge_amount(model, &usage, ctx.currency)
            .map_err(|e| Error::Internal(format!("charge {}: {e}", charge.id)))?;
        fees.push(FeeDraft {
            amount_cents: amount.amount_cents,
            precise_amount_cents: amount.precise_amount_cents,
            units: usage.units,
            usage_units: usage.full_units,
            events_count: i64::try_from(t.total.count).ok(),
            unit_amount_cents: amount.unit_amount_cents,
            precise_unit_amount: amount.precise_unit_amount,
            ..charge_fee(ctx, charge, metric, t.filter, group_object(&keys, &t.group), window)
        });
    }
    Ok(fees)
}

/// The charge fees of each subscription over its window (`windows[i]` for `ctxs[i]`), keyed by subscription id.
/// `include` says which charges count (invoices leave out charges paid in advance; current usage shows them all).
pub async fn charge_fees(
    events: &dyn EventStore,
    ctxs: &[&Context],
    windows: &[Window],
    include: impl Fn(&Charge) -> bool,
) -> Result<HashMap<Uuid, Vec<FeeDraft>>> {
    // Subscriptions of one plan with one window share their jobs. An external id appears once per group: two
    // subscriptions with the same external id (an upgrade) go to different groups, since events are keyed by it.
    type GroupKey = (Uuid, Uuid, DateTime<Utc>, DateTime<Utc>, u32);
    // Each slot keeps the set of its external ids, so placing a subscription costs one lookup per slot.
    type Slot<'s> = (Vec<usize>, std::collections::HashSet<&'s str>);
    let mut groups: BTreeMap<GroupKey, Vec<Slot>> = BTreeMap::new();
    for (i, (ctx, w)) in ctxs.iter().zip(windows).enumerate() {
        let key = (ctx.sub.organization_id, ctx.plan.row.id, w.from, w.to, w.duration_days);
        let slots = groups.entry(key).or_default();
        let external_id = ctx.sub.external_id.as_str();
        match slots.iter_mut().find(|(_, ids)| !ids.contains(external_id)) {
            Some((members, ids)) => {
                members.push(i);
                ids.insert(external_id);
            }
            None => slots.push((vec![i], std::collections::HashSet::from([external_id]))),
        }
    }
    let mut out: HashMap<Uuid, Vec<FeeDraft>> = ctxs.iter().map(|c| (c.sub.id, Vec::new())).collect();
    for slots in groups.into_values() {
        for (members, _) in slots {
            let first = ctxs[members[0]];
            let window = windows[members[0]];
            let subscriptions: Vec<String> = members.iter().map(|&i| ctxs[i].sub.external_id.clone()).collect();
            for charge in first.plan.charges.iter().filter(|c| include(c)) {
                let metric = first.org.metrics.get(&charge.billable_metric_code).ok_or_else(|| {
                    Error::Internal(format!("metric {} of a charge is missing", charge.billable_metric_code))
                })?;
                let job = job(first, charge, metric, subscriptions.clone(), window)?;
                let totals = aggregate::jobs::run(events, &job).await.map_err(|e| Error::Internal(e.to_string()))?;
                let (own, by_filter) = models_of(charge)?;
                let details = if needs_events(&own) || by_filter.iter().any(needs_events) {
                    Some(aggregate::details::run(events, &job).await.map_err(|e| Error::Internal(e.to_string()))?)
                } else {
                    None
                };
                let prorated = if is_prorated(charge, metric) {
                    // Days are counted in each customer's timezone: one pass per timezone of the group.
                    let mut by_tz: BTreeMap<String, (chrono_tz::Tz, Vec<String>)> = BTreeMap::new();
                    for &i in &members {
                        let ctx = ctxs[i];
                        by_tz
                            .entry(ctx.tz.name().to_owned())
                            .or_insert((ctx.tz, Vec::new()))
                            .1
                            .push(ctx.sub.external_id.clone());
                    }
                    let mut all = HashMap::new();
                    for (tz, subscriptions) in by_tz.into_values() {
                        let part = JobSpec { subscriptions, ..job.clone() };
                        let totals = aggregate::prorated::run(events, &part, tz)
                            .await
                            .map_err(|e| Error::Internal(e.to_string()))?;
                        all.extend(totals);
                    }
                    Some(all)
                } else {
                    None
                };
                let mut by_sub: HashMap<&str, Vec<&SubscriptionTotal>> = HashMap::new();
                for t in &totals {
                    by_sub.entry(t.external_subscription_id.as_str()).or_default().push(t);
                }
                for &i in &members {
                    let ctx = ctxs[i];
                    let mine = by_sub.get(ctx.sub.external_id.as_str()).map(Vec::as_slice).unwrap_or_default();
                    let fees = price(ctx, charge, metric, mine, details.as_ref(), prorated.as_ref(), window)?;
                    out.entry(ctx.sub.id).or_default().extend(fees);
                }
            }
        }
    }
    Ok(out)
}
