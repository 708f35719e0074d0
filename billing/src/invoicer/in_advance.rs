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
use aggregate::semantics::{AggregationType, Window, filters_of, group_of, property_text, value_of};

use super::usage::{self, FeeDraft};
use super::{Context, contexts};
use crate::domain::charge_models::Usage;
use crate::store::billable_metrics::Metric;
use crate::store::plans::Charge;
use crate::store::subscriptions;
use crate::tracking::Tracker;
use crate::{Error, Result};

/// The fee of one event on a charge paid in advance: `delta` units for `amount` (in the currency's units), in the
/// event's filter bucket and pricing group. Estimates and billed events build it the same way.
#[allow(clippy::too_many_arguments)]
fn event_fee(
    ctx: &Context,
    charge: &Charge,
    metric: &Metric,
    job: &JobSpec,
    bucket: Option<usize>,
    group: &[Option<String>],
    amount: Decimal,
    delta: Decimal,
    window: Window,
) -> FeeDraft {
    let unit = if delta.is_zero() { Decimal::ZERO } else { amount / delta };
    FeeDraft {
        amount_cents: ctx.currency.to_cents(amount),
        precise_amount_cents: ctx.currency.to_precise_cents(amount),
        units: delta,
        events_count: Some(1),
        unit_amount_cents: ctx.currency.to_unit_cents(unit),
        precise_unit_amount: unit,
        ..usage::charge_fee(ctx, charge, metric, bucket, usage::group_object(&job.grouped_by, group), window)
    }
}

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

/// The units an event paid in advance is billed for: on a prorated charge (Lago allows the standard model only),
/// its value for the share of the period left from its time on, rounded up to five places as Lago does.
fn billed_units(
    ctx: &Context,
    charge: &Charge,
    metric: &Metric,
    delta: Decimal,
    at: DateTime<Utc>,
    window: Window,
) -> Decimal {
    if !usage::is_prorated(charge, metric) || window.duration_days == 0 {
        return delta;
    }
    let days = aggregate::prorated::date_diff_days(at, window.to, ctx.tz);
    (delta * Decimal::from(days) / Decimal::from(window.duration_days))
        .round_dp_with_strategy(5, rust_decimal::RoundingStrategy::ToPositiveInfinity)
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
        let units = billed_units(&ctx, charge, &metric, delta, now, window);
        let amount = price(before + units)? - price(before)?;
        fees.push(event_fee(&ctx, charge, &metric, &job, bucket, &group, amount, units, window));
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

/// Running aggregation of one bucket while walking a period's events in the order they were received.
#[derive(Default)]
struct Running {
    units: Decimal,
    /// Unique count: each value's state (true while added).
    values: HashMap<String, bool>,
}

/// Most queue rows one pass takes.
const DRAIN_ROWS: i64 = 10_000;

/// Bills the events of charges paid in advance that ingest has queued (`in_advance_queue`, see
/// `ingest::in_advance`): for each queued subscription, each event with no fee yet gets one, priced at the charge's
/// price of the period's units up to and including it, less the price of the units before it (events taken in the
/// order they were received). Each event gets one invoice, finalized at once, with a fee per charge of its metric
/// paid in advance; the invoice is unique on (subscription, event), so a repeated pass bills nothing twice. A charge
/// that is not invoiceable bills each event with a fee of its own, without an invoice, unique on (subscription,
/// charge, event), as Lago does.
///
/// The queue rows are taken with SKIP LOCKED and deleted in the same transaction once their subscription is
/// billed, so several workers share the queue and a crash leaves the rows for the next pass. A subscription another
/// worker is billing (its advisory lock is taken) or whose billing fails keeps its rows for a later pass.
pub async fn drain(
    pool: &sqlx::PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, uuid::Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, subscription_id, first_event_at FROM in_advance_queue ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(DRAIN_ROWS)
    .fetch_all(&mut *tx)
    .await?;
    // Per subscription: its rows and the earliest event they queued.
    let mut by_sub: std::collections::BTreeMap<uuid::Uuid, (Vec<i64>, DateTime<Utc>)> =
        std::collections::BTreeMap::new();
    for (id, sub, first) in rows {
        let (ids, since) = by_sub.entry(sub).or_insert_with(|| (Vec::new(), first));
        ids.push(id);
        *since = (*since).min(first);
    }
    let mut done: Vec<i64> = Vec::new();
    let mut issued = 0;
    for (sub, (ids, since)) in by_sub {
        // Two workers billing one subscription at once would price its events against the same "before".
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 7))")
            .bind(sub)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            continue;
        }
        match bill_queued(pool, events, tracker, sub, since, now).await {
            Ok(n) => {
                issued += n;
                done.extend(ids);
            }
            Err(e) => {
                ::metrics::counter!("billstream_billing_in_advance_failed_total").increment(1);
                tracing::warn!(subscription = %sub, error = %e, "billing events paid in advance failed; kept queued");
            }
        }
    }
    sqlx::query("DELETE FROM in_advance_queue WHERE id = ANY($1)").bind(&done).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Most periods one queued subscription is billed for, back from now: events older than that are left unbilled.
const MAX_PERIODS_BACK: usize = 36;

/// Bills the unbilled events of one queued subscription in each charges period from the one holding `since` (its
/// earliest queued event) to the current one; a subscription no longer active has nothing to bill.
async fn bill_queued(
    pool: &sqlx::PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    sub: uuid::Uuid,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut conn = pool.acquire().await?;
    let found: Option<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT organization_id, status FROM subscriptions WHERE id = $1")
            .bind(sub)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((org, status)) = found else { return Ok(0) };
    if status != "active" {
        return Ok(0);
    }
    let sub = subscriptions::get(&mut conn, org, sub).await?;
    let Some(ctx) = contexts(&mut conn, vec![sub]).await?.pop() else { return Ok(0) };
    drop(conn);
    // A time in each period from the earliest event's to the current one.
    let mut starts = vec![since];
    while let Some(&at) = starts.last() {
        let window = ctx.current_window(at);
        if window.to > now || starts.len() > MAX_PERIODS_BACK * 4 {
            break;
        }
        starts.push(window.to);
    }
    let skip = starts.len().saturating_sub(MAX_PERIODS_BACK);
    let mut issued = 0;
    for at in &starts[skip..] {
        issued += bill_subscription_events(pool, events, tracker, &ctx, *at).await?;
    }
    Ok(issued)
}

/// Runs [`drain`] every `every` until the process stops: events paid in advance are billed within about `every`
/// of being stored.
pub async fn run(
    pool: sqlx::PgPool,
    events: std::sync::Arc<dyn EventStore>,
    tracker: Tracker,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    every: std::time::Duration,
) {
    loop {
        match drain(&pool, events.as_ref(), &tracker, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(invoices = n, "billed events paid in advance"),
            Err(e) => tracing::warn!(error = %e, "billing events paid in advance failed; retrying"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Bills the unbilled events of one subscription in the charges period holding `at`.
async fn bill_subscription_events(
    pool: &sqlx::PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    ctx: &Context,
    at: DateTime<Utc>,
) -> Result<usize> {
    let charges: Vec<_> = ctx.plan.charges.iter().filter(|c| c.attrs.pay_in_advance).collect();
    let window = ctx.current_window(at);
    let invoiced: Vec<(String,)> = sqlx::query_as(
        "SELECT event_transaction_id FROM invoice_subscriptions
         WHERE subscription_id = $1 AND invoicing_reason = 'in_advance_charge' AND charges_from_datetime = $2",
    )
    .bind(ctx.sub.id)
    .bind(window.from)
    .fetch_all(pool)
    .await?;
    let invoiced: std::collections::HashSet<String> = invoiced.into_iter().map(|r| r.0).collect();
    // Charges that are not invoiceable bill each event with a fee of its own.
    let standalone: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT charge_id, pay_in_advance_event_transaction_id FROM fees
         WHERE subscription_id = $1 AND invoice_id IS NULL AND pay_in_advance_event_transaction_id IS NOT NULL
           AND from_datetime = $2",
    )
    .bind(ctx.sub.id)
    .bind(window.from)
    .fetch_all(pool)
    .await?;
    let standalone: std::collections::HashSet<(uuid::Uuid, String)> = standalone.into_iter().collect();
    let mut new_standalone: Vec<crate::store::fees::Standalone> = Vec::new();
    // Fees of each unbilled event, in the order the events were received.
    let mut per_event: Vec<(String, DateTime<Utc>, Vec<FeeDraft>)> = Vec::new();
    let mut event_index: HashMap<String, usize> = HashMap::new();
    for charge in charges {
        let Some(metric) = ctx.org.metrics.get(&charge.billable_metric_code) else { continue };
        let job = usage::job(ctx, charge, metric, vec![ctx.sub.external_id.clone()], window)?;
        let filter = ScanFilter {
            organization_id: ctx.sub.organization_id,
            external_subscription_ids: job.subscriptions.clone(),
            codes: vec![job.code.clone()],
            from: window.from,
            to: window.to + chrono::Duration::microseconds(1),
        };
        let mut stored = events.scan(&filter).await.map_err(|e| Error::Internal(e.to_string()))?;
        stored.sort_by(|a, b| (a.ingested_at, &a.transaction_id).cmp(&(b.ingested_at, &b.transaction_id)));
        let (own, by_filter) = usage::models_of(charge)?;
        let mut running: HashMap<(Option<usize>, Vec<Option<String>>), Running> = HashMap::new();
        for e in stored {
            let props: Value = serde_json::from_str(&e.properties).unwrap_or(Value::Null);
            let bucket = filters_of(&job.filters, &props).first().copied();
            let group = group_of(&props, &job.grouped_by);
            let state = running.entry((bucket, group.clone())).or_default();
            let delta = match (job.metric.aggregation_type, job.metric.field_name.as_deref()) {
                (AggregationType::Count, _) => Decimal::ONE,
                (AggregationType::Sum, Some(field)) => {
                    property_text(&props, field).as_deref().and_then(value_of).unwrap_or_default()
                }
                (AggregationType::UniqueCount, Some(field)) => {
                    let Some(value) = property_text(&props, field) else { continue };
                    let add = property_text(&props, "operation_type").as_deref() != Some("remove");
                    let was = state.values.insert(value, add).unwrap_or(false);
                    match (was, add) {
                        (false, true) => Decimal::ONE,
                        (true, false) => -Decimal::ONE,
                        _ => Decimal::ZERO,
                    }
                }
                // Lago allows charges paid in advance on these aggregations only.
                _ => continue,
            };
            let before = state.units;
            state.units += delta;
            let billed = if charge.attrs.invoiceable {
                invoiced.contains(&e.transaction_id)
            } else {
                standalone.contains(&(charge.id, e.transaction_id.clone()))
            };
            if billed {
                continue;
            }
            let model = bucket.and_then(|i| by_filter.get(i)).unwrap_or(&own);
            let price = |units: Decimal| {
                let u = Usage {
                    units,
                    events_count: 1,
                    event_values: vec![delta],
                    precise_total_amount_cents: e.precise_total_amount_cents.unwrap_or_default(),
                    subunit_to_unit: ctx.currency.subunits(),
                    ..Usage::default()
                };
                model.price(&u).map(|p| p.amount).map_err(|err| Error::Internal(format!("charge {}: {err}", charge.id)))
            };
            let units = billed_units(ctx, charge, metric, delta, e.timestamp, window);
            let amount = (price(before + units)? - price(before)?).max(Decimal::ZERO);
            let fee = event_fee(ctx, charge, metric, &job, bucket, &group, amount, units, window);
            if !charge.attrs.invoiceable {
                new_standalone.push(crate::store::fees::Standalone {
                    organization_id: ctx.sub.organization_id,
                    currency: ctx.currency.code.to_owned(),
                    event_transaction_id: e.transaction_id.clone(),
                    fee: fee.to_new(ctx.sub.id),
                });
                continue;
            }
            match event_index.get(&e.transaction_id) {
                Some(&i) => per_event[i].2.push(fee),
                None => {
                    event_index.insert(e.transaction_id.clone(), per_event.len());
                    per_event.push((e.transaction_id.clone(), e.timestamp, vec![fee]));
                }
            }
        }
    }
    let batch: Vec<super::writer::Pending> = per_event
        .into_iter()
        .map(|(tx, at, fees)| super::writer::Pending {
            ctx,
            reason: crate::domain::invoicing::Reason::InAdvanceCharge,
            boundaries: crate::domain::invoicing::Boundaries {
                fee: None,
                fee_period_days: 0,
                charges: (window.from, window.to),
                charges_period_days: window.duration_days,
                timestamp: at,
            },
            fees,
            event_transaction_id: Some(tx),
        })
        .collect();
    if !new_standalone.is_empty() {
        let mut tx = pool.begin().await?;
        crate::store::fees::insert_standalone(&mut tx, &new_standalone).await?;
        tx.commit().await?;
    }
    Ok(super::writer::write(pool, tracker, batch).await?.invoices.len())
}
