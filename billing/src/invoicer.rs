//! Issues subscription invoices: loads the subscription, its plan, customer, organization, taxes and coupons, asks
//! `aggregate` for the usage of each charge over the billed window, prices it with the pure domain
//! (`domain::invoicing`), and writes the invoice with its fees, taxes and coupon credits in one transaction.
//!
//! Idempotency: `invoice_subscriptions` is unique on (subscription, start of the charges period). The insert of that
//! row comes right after the invoice's, inside the same transaction; when it finds the period already billed (a
//! clock that fired twice, a termination racing the clock) the whole transaction is rolled back and nothing is
//! written. A crash before the commit leaves nothing; after it, the invoice is complete.
//!
//! The same computation, stored nowhere, serves the current usage of a subscription.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use aggregate::EventStore;
use aggregate::jobs::JobSpec;
use aggregate::semantics::{AggregationType, ChargeFilter, Group, MetricSpec, RoundingFunction, Window};

use crate::domain::charge::ALL_FILTER_VALUES;
use crate::domain::charge_models::{ChargeModel, Usage};
use crate::domain::invoice_totals::{self, AppliedCoupon, CouponLimit, CouponValue, Frequency};
use crate::domain::invoicing::{self, Boundaries, DraftFee, PlanTerms, Reason};
use crate::domain::money::Currency;
use crate::domain::periods::{BillingTime, Interval, local_date};
use crate::store::billable_metrics::{self, Metric};
use crate::store::customers::{self, Customer};
use crate::store::organizations::{self, OrganizationSettings};
use crate::store::plans::{self, Charge, Plan};
use crate::store::subscriptions::{self, Subscription};
use crate::store::taxes::Tax;
use crate::{Error, Result};

/// Everything an invoice of one subscription is computed from.
struct Context {
    sub: Subscription,
    plan: Plan,
    customer: Customer,
    org: OrganizationSettings,
    org_taxes: Vec<Tax>,
    metrics: HashMap<String, Metric>,
    tz: Tz,
    currency: Currency,
}

impl Context {
    fn terms(&self) -> PlanTerms {
        PlanTerms {
            interval: Interval::parse(&self.plan.row.interval).unwrap_or(Interval::Monthly),
            amount_cents: self.plan.row.amount_cents,
            pay_in_advance: self.plan.row.pay_in_advance,
            bill_charges_monthly: self.plan.row.bill_charges_monthly.unwrap_or(false),
            trial_days: self.plan.row.trial_period.unwrap_or_default(),
        }
    }

    fn billing_time(&self) -> BillingTime {
        if self.sub.billing_time == "anniversary" { BillingTime::Anniversary } else { BillingTime::Calendar }
    }

    fn started_at(&self) -> DateTime<Utc> {
        self.sub.started_at.unwrap_or(self.sub.subscription_at)
    }

    fn plan_ids(&self) -> Vec<Uuid> {
        std::iter::once(self.plan.row.id).chain(self.plan.row.parent_id).collect()
    }

    /// Taxes of a fee: its own level (charge), else the plan's, the customer's, the organization's.
    fn taxes_for(&self, own: &[Tax]) -> Vec<Tax> {
        [own, &self.plan.taxes, &self.customer.taxes, &self.org_taxes]
            .into_iter()
            .find(|l| !l.is_empty())
            .map(<[Tax]>::to_vec)
            .unwrap_or_default()
    }
}

async fn load(pool: &PgPool, org: Uuid, subscription: Uuid) -> Result<Context> {
    let mut conn = pool.acquire().await?;
    let sub = subscriptions::get(&mut conn, org, subscription).await?;
    let row = plans::find_row_by_id(&mut conn, org, sub.plan_id).await?.ok_or(Error::NotFound("plan"))?;
    let plan = plans::load(&mut conn, org, vec![row]).await?.pop().ok_or(Error::NotFound("plan"))?;
    let customer = customers::find_by_id(&mut conn, org, sub.customer_id).await?.ok_or(Error::NotFound("customer"))?;
    let settings = organizations::settings(&mut conn, org, false).await?;
    let org_taxes: Vec<Tax> = sqlx::query_as(
        "SELECT id, name, code, description, rate, applied_to_organization, created_at FROM taxes
         WHERE organization_id = $1 AND applied_to_organization AND deleted_at IS NULL ORDER BY code",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    let mut metrics = HashMap::new();
    for charge in &plan.charges {
        if !metrics.contains_key(&charge.billable_metric_code)
            && let Some(m) = billable_metrics::find(pool, org, &charge.billable_metric_code).await?
        {
            metrics.insert(charge.billable_metric_code.clone(), m);
        }
    }
    let tz: Tz = sub.timezone.parse().unwrap_or(Tz::UTC);
    let currency = Currency::from_code(&plan.row.amount_currency)
        .ok_or_else(|| Error::Internal(format!("plan currency {} is unknown", plan.row.amount_currency)))?;
    Ok(Context { sub, plan, customer, org: settings, org_taxes, metrics, tz, currency })
}

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

fn metric_spec(m: &Metric) -> Result<MetricSpec> {
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

fn group_object(keys: &[String], group: &Group) -> Map<String, Value> {
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

/// The fees of one charge over `window`: one per filter bucket (the default bucket included) and pricing group.
async fn charge_fees(events: &dyn EventStore, ctx: &Context, charge: &Charge, window: Window) -> Result<Vec<FeeDraft>> {
    let metric = ctx
        .metrics
        .get(&charge.billable_metric_code)
        .ok_or_else(|| Error::Internal(format!("metric {} of a charge is missing", charge.billable_metric_code)))?;
    let keys = grouped_by(&charge.attrs.properties);
    let job = JobSpec {
        organization_id: ctx.sub_org(),
        code: charge.billable_metric_code.clone(),
        metric: metric_spec(metric)?,
        subscriptions: vec![ctx.sub.external_id.clone()],
        window,
        filters: charge.filters.iter().map(|f| charge_filter(&f.attrs.values, metric)).collect(),
        grouped_by: keys.clone(),
        initial_levels: HashMap::new(),
    };
    let totals = aggregate::jobs::run(events, &job).await.map_err(|e| Error::Internal(e.to_string()))?;
    let model_of = |filter: Option<usize>| {
        let props = match filter {
            Some(i) => charge.filters.get(i).map_or(&charge.attrs.properties, |f| &f.attrs.properties),
            None => &charge.attrs.properties,
        };
        ChargeModel::from_properties(&charge.attrs.charge_model, props)
            .map_err(|e| Error::Internal(format!("charge {}: {e}", charge.id)))
    };
    let mut details = None;
    let mut fees = Vec::new();
    for t in totals {
        // A charge with filters bills its default bucket only when events fell in it (Lago's remainder fee).
        if t.filter.is_none() && !charge.filters.is_empty() && t.total.count == 0 {
            continue;
        }
        let model = model_of(t.filter)?;
        let mut usage = Usage {
            units: t.total.units,
            full_units: None,
            events_count: t.total.count,
            event_values: Vec::new(),
            precise_total_amount_cents: Decimal::ZERO,
            subunit_to_unit: ctx.currency.subunits(),
        };
        if needs_events(&model) {
            if details.is_none() {
                details =
                    Some(aggregate::details::run(events, &job).await.map_err(|e| Error::Internal(e.to_string()))?);
            }
            if let Some(d) =
                details.as_ref().and_then(|d| d.get(&(t.external_subscription_id.clone(), t.filter, t.group.clone())))
            {
                usage.event_values = d.values.clone();
                usage.precise_total_amount_cents = d.precise_total_amount_cents;
            }
        }
        let amount = invoicing::charge_amount(&model, &usage, ctx.currency)
            .map_err(|e| Error::Internal(format!("charge {}: {e}", charge.id)))?;
        let filter = t.filter.and_then(|i| charge.filters.get(i));
        fees.push(FeeDraft {
            fee_type: "charge",
            charge_id: Some(charge.id),
            charge_filter_id: filter.map(|f| f.id),
            item_id: metric.id,
            item_type: "BillableMetric",
            item_code: charge.billable_metric_code.clone(),
            item_name: metric.attrs.name.clone().unwrap_or_default(),
            item_description: metric.attrs.description.clone(),
            item_invoice_display_name: charge.attrs.invoice_display_name.clone(),
            item_filter_invoice_display_name: filter.map(|f| {
                f.attrs
                    .invoice_display_name
                    .clone()
                    .unwrap_or_else(|| f.attrs.values.values().flatten().cloned().collect::<Vec<_>>().join(", "))
            }),
            filters: filter.map(|f| serde_json::to_value(&f.attrs.values).unwrap_or(Value::Null)),
            grouped_by: group_object(&keys, &t.group),
            amount_cents: amount.amount_cents,
            precise_amount_cents: amount.precise_amount_cents,
            units: t.total.units,
            events_count: i64::try_from(t.total.count).ok(),
            unit_amount_cents: amount.unit_amount_cents,
            precise_unit_amount: amount.precise_unit_amount,
            invoiceable: charge.attrs.invoiceable,
            from: Some(window.from),
            to: Some(window.to),
            taxes: ctx.taxes_for(&charge.taxes),
            billable_metric: Some(metric.id),
            charge_model: Some(charge.attrs.charge_model.clone()),
            aggregation_type: metric.attrs.aggregation_type.clone(),
        });
    }
    Ok(fees)
}

impl Context {
    fn sub_org(&self) -> Uuid {
        self.org.id
    }
}

/// The subscription fee and charge fees of one invoice.
async fn fees(events: &dyn EventStore, ctx: &Context, b: &Boundaries) -> Result<Vec<FeeDraft>> {
    let mut out = Vec::new();
    if let Some((from, to)) = b.fee {
        let terms = ctx.terms();
        let trial_end = crate::domain::subscription::trial_ended_at(
            Some(ctx.started_at()),
            Some(terms.trial_days),
            DateTime::<Utc>::MAX_UTC,
        );
        let precise = invoicing::subscription_fee_cents(&terms, from, to, b.fee_period_days, trial_end, ctx.tz);
        let cents = invoicing::round_cents(precise);
        let row = &ctx.plan.row;
        out.push(FeeDraft {
            fee_type: "subscription",
            charge_id: None,
            charge_filter_id: None,
            item_id: ctx.sub.id,
            item_type: "Subscription",
            item_code: row.code.clone(),
            item_name: row.name.clone(),
            item_description: row.description.clone(),
            item_invoice_display_name: row.invoice_display_name.clone(),
            item_filter_invoice_display_name: None,
            filters: None,
            grouped_by: Map::new(),
            amount_cents: cents,
            precise_amount_cents: precise,
            units: Decimal::ONE,
            events_count: None,
            unit_amount_cents: cents,
            precise_unit_amount: precise / ctx.currency.subunits(),
            invoiceable: true,
            from: Some(from),
            to: Some(to),
            taxes: ctx.taxes_for(&[]),
            billable_metric: None,
            charge_model: None,
            aggregation_type: None,
        });
    }
    let window = Window { from: b.charges.0, to: b.charges.1, duration_days: b.charges_period_days };
    for charge in &ctx.plan.charges {
        // Charges paid in advance are billed when their events arrive, not at the period's end.
        if charge.attrs.pay_in_advance {
            continue;
        }
        out.extend(charge_fees(events, ctx, charge, window).await?);
    }
    Ok(out)
}

/// The customer's active coupons, in the domain's shape, with what a fixed once-coupon has left.
async fn active_coupons(conn: &mut PgConnection, org: Uuid, customer: Uuid) -> Result<Vec<AppliedCoupon>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        coupon_id: Uuid,
        coupon_type: String,
        amount_cents: Option<i64>,
        amount_currency: Option<String>,
        percentage_rate: Option<Decimal>,
        frequency: String,
        frequency_duration_remaining: Option<i32>,
        created_at: DateTime<Utc>,
        used_cents: i64,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.id, a.coupon_id, c.coupon_type, a.amount_cents, a.amount_currency, a.percentage_rate, a.frequency,
                a.frequency_duration_remaining, a.created_at,
                coalesce((SELECT sum(ic.amount_cents) FROM invoice_credits ic JOIN invoices i ON i.id = ic.invoice_id
                          WHERE ic.applied_coupon_id = a.id AND i.status <> 'voided'), 0)::bigint AS used_cents
         FROM applied_coupons a JOIN coupons c ON c.id = a.coupon_id
         WHERE a.organization_id = $1 AND a.customer_id = $2 AND a.status = 'active'
         ORDER BY a.created_at, a.id",
    )
    .bind(org)
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?;
    #[derive(sqlx::FromRow)]
    struct Target {
        coupon_id: Uuid,
        plan_id: Option<Uuid>,
        billable_metric_id: Option<Uuid>,
    }
    let coupon_ids: Vec<Uuid> = rows.iter().map(|r| r.coupon_id).collect();
    let targets: Vec<Target> = sqlx::query_as(
        "SELECT coupon_id, plan_id, billable_metric_id FROM coupon_targets
         WHERE organization_id = $1 AND coupon_id = ANY($2)",
    )
    .bind(org)
    .bind(&coupon_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let plans: Vec<Uuid> =
                targets.iter().filter(|t| t.coupon_id == r.coupon_id).filter_map(|t| t.plan_id).collect();
            let metrics: Vec<Uuid> =
                targets.iter().filter(|t| t.coupon_id == r.coupon_id).filter_map(|t| t.billable_metric_id).collect();
            let limit = if !metrics.is_empty() {
                CouponLimit::BillableMetrics(metrics)
            } else if !plans.is_empty() {
                CouponLimit::Plans(plans)
            } else {
                CouponLimit::None
            };
            let value = if r.coupon_type == "percentage" {
                CouponValue::Percentage { rate: r.percentage_rate.unwrap_or_default() }
            } else {
                let amount = r.amount_cents.unwrap_or(0);
                let left = if r.frequency == "once" { (amount - r.used_cents).max(0) } else { amount };
                CouponValue::Fixed { amount_cents: left }
            };
            let frequency = match r.frequency.as_str() {
                "recurring" => Frequency::Recurring {
                    remaining: u32::try_from(r.frequency_duration_remaining.unwrap_or(0)).unwrap_or(0),
                },
                "forever" => Frequency::Forever,
                _ => Frequency::Once,
            };
            AppliedCoupon { id: r.id, value, frequency, limit, currency: r.amount_currency, applied_at: r.created_at }
        })
        .collect())
}

/// What [`issue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    Invoice(Uuid),
    /// The period was billed already; nothing was written.
    AlreadyBilled,
    /// No period ended for this subscription at that instant.
    NothingDue,
}

/// Issues the invoice of `subscription` for `reason`: the period that ended at the boundary on or before `at`
/// (periodic), or the current period up to its termination (terminating).
pub async fn issue(
    pool: &PgPool,
    events: &dyn EventStore,
    org: Uuid,
    subscription: Uuid,
    reason: Reason,
    at: DateTime<Utc>,
) -> Result<Issued> {
    let ctx = load(pool, org, subscription).await?;
    let terms = ctx.terms();
    let boundaries = match reason {
        Reason::Periodic => {
            let anchor = local_date(ctx.tz, ctx.sub.subscription_at);
            let interval = if terms.bill_charges_monthly { Interval::Monthly } else { terms.interval };
            let schedule = crate::domain::periods::Schedule { interval, billing_time: ctx.billing_time(), anchor };
            let boundary = schedule.period_containing(local_date(ctx.tz, at)).start;
            invoicing::periodic_boundaries(
                &terms,
                ctx.billing_time(),
                ctx.sub.subscription_at,
                ctx.started_at(),
                boundary,
                ctx.tz,
            )
        }
        Reason::Terminating => {
            let terminated_at = ctx.sub.terminated_at.unwrap_or(at);
            Some(invoicing::terminating_boundaries(
                &terms,
                ctx.billing_time(),
                ctx.sub.subscription_at,
                ctx.started_at(),
                terminated_at,
                ctx.tz,
            ))
        }
    };
    let Some(b) = boundaries else { return Ok(Issued::NothingDue) };
    // Cheap check first, so a clock tick does not aggregate usage for periods billed already; the unique index
    // still decides when two billers race.
    let billed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoice_subscriptions WHERE subscription_id = $1 AND charges_from_datetime = $2)",
    )
    .bind(ctx.sub.id)
    .bind(b.charges.0)
    .fetch_one(pool)
    .await?;
    if billed {
        return Ok(Issued::AlreadyBilled);
    }
    let fees = fees(events, &ctx, &b).await?;
    write(pool, &ctx, reason, &b, fees).await
}

async fn write(pool: &PgPool, ctx: &Context, reason: Reason, b: &Boundaries, fees: Vec<FeeDraft>) -> Result<Issued> {
    let org = ctx.org.id;
    let mut tx = pool.begin().await?;
    // Only invoiceable fees go on the invoice (Lago keeps the others apart).
    let fees: Vec<FeeDraft> = fees.into_iter().filter(|f| f.invoiceable).collect();
    let coupons = active_coupons(&mut tx, org, ctx.customer.id).await?;
    let drafts: Vec<DraftFee> = fees
        .iter()
        .map(|f| DraftFee {
            amount_cents: f.amount_cents,
            plans: ctx.plan_ids(),
            billable_metric: f.billable_metric,
            taxes: f.taxes.iter().map(|t| invoice_totals::Tax { code: t.code.clone(), rate: t.rate }).collect(),
        })
        .collect();
    let computed = invoicing::compute(&drafts, &coupons, ctx.currency.code);
    let grace = ctx.customer.attrs.invoice_grace_period.unwrap_or(ctx.org.settings.invoice_grace_period);
    let net_term = ctx.customer.attrs.net_payment_term.unwrap_or(ctx.org.settings.net_payment_term);
    let (issuing, due) = invoicing::invoice_dates(
        b.timestamp,
        ctx.tz,
        u32::try_from(grace).unwrap_or(0),
        u32::try_from(net_term).unwrap_or(0),
    );
    let invoice_id = Uuid::new_v4();
    let status = if grace > 0 { "draft" } else { "finalized" };
    let t = computed.totals;
    sqlx::query(
        "INSERT INTO invoices (id, organization_id, customer_id, number, invoice_type, status, currency, issuing_date,
             payment_due_date, net_payment_term, fees_amount_cents, coupons_amount_cents,
             sub_total_excluding_taxes_amount_cents, taxes_amount_cents, sub_total_including_taxes_amount_cents,
             total_amount_cents)
         VALUES ($1, $2, $3, $4, 'subscription', 'draft', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(invoice_id)
    .bind(org)
    .bind(ctx.customer.id)
    .bind(invoicing::draft_number(&ctx.org.settings.document_number_prefix))
    .bind(ctx.currency.code)
    .bind(issuing)
    .bind(due)
    .bind(i32::try_from(net_term).unwrap_or(0))
    .bind(t.fees_amount_cents)
    .bind(t.coupons_amount_cents)
    .bind(t.sub_total_excluding_taxes_amount_cents)
    .bind(t.taxes_amount_cents)
    .bind(t.sub_total_including_taxes_amount_cents)
    .bind(t.total_amount_cents)
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO invoice_subscriptions (invoice_id, organization_id, subscription_id, invoicing_reason, timestamp,
             from_datetime, to_datetime, charges_from_datetime, charges_to_datetime)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (subscription_id, charges_from_datetime) DO NOTHING",
    )
    .bind(invoice_id)
    .bind(org)
    .bind(ctx.sub.id)
    .bind(reason.as_str())
    .bind(b.timestamp)
    .bind(b.fee.map(|f| f.0))
    .bind(b.fee.map(|f| f.1))
    .bind(b.charges.0)
    .bind(b.charges.1)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        tx.rollback().await?;
        return Ok(Issued::AlreadyBilled);
    }
    for (position, (fee, priced)) in fees.iter().zip(&computed.fees).enumerate() {
        let fee_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO fees (id, organization_id, invoice_id, position, subscription_id, charge_id, charge_filter_id,
                 fee_type, item_code, item_name, item_invoice_display_name, item_filter_invoice_display_name,
                 item_description, item_id, item_type, filters, grouped_by, amount_cents, precise_amount_cents,
                 amount_currency, taxes_amount_cents, taxes_precise_amount_cents, taxes_rate,
                 precise_coupons_amount_cents, units, total_aggregated_units, events_count, unit_amount_cents,
                 precise_unit_amount, invoiceable, from_datetime, to_datetime)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $23, $24, $25, $25, $26, $27, $28, $29, $30, $31)",
        )
        .bind(fee_id)
        .bind(org)
        .bind(invoice_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(ctx.sub.id)
        .bind(fee.charge_id)
        .bind(fee.charge_filter_id)
        .bind(fee.fee_type)
        .bind(&fee.item_code)
        .bind(&fee.item_name)
        .bind(&fee.item_invoice_display_name)
        .bind(&fee.item_filter_invoice_display_name)
        .bind(&fee.item_description)
        .bind(fee.item_id)
        .bind(fee.item_type)
        .bind(fee.filters.as_ref().map(sqlx::types::Json))
        .bind(sqlx::types::Json(&fee.grouped_by))
        .bind(fee.amount_cents)
        .bind(fee.precise_amount_cents)
        .bind(ctx.currency.code)
        .bind(priced.taxes_amount_cents)
        .bind(priced.taxes_precise_amount_cents)
        .bind(priced.taxes_rate)
        .bind(priced.precise_coupons_cents)
        .bind(fee.units)
        .bind(fee.events_count)
        .bind(fee.unit_amount_cents)
        .bind(fee.precise_unit_amount)
        .bind(fee.invoiceable)
        .bind(fee.from)
        .bind(fee.to)
        .execute(&mut *tx)
        .await?;
        for (code, cents) in &priced.taxes {
            let Some(tax) = fee.taxes.iter().find(|t| &t.code == code) else { continue };
            sqlx::query(
                "INSERT INTO fee_taxes (id, fee_id, organization_id, tax_id, tax_code, tax_name, tax_rate, amount_cents)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::new_v4())
            .bind(fee_id)
            .bind(org)
            .bind(tax.id)
            .bind(&tax.code)
            .bind(&tax.name)
            .bind(tax.rate)
            .bind(cents)
            .execute(&mut *tx)
            .await?;
        }
    }
    let all_taxes: Vec<&Tax> = fees.iter().flat_map(|f| &f.taxes).collect();
    for (position, line) in computed.taxes.iter().enumerate() {
        let tax = all_taxes.iter().find(|t| t.code == line.code);
        sqlx::query(
            "INSERT INTO invoice_taxes (id, invoice_id, organization_id, tax_id, tax_code, tax_name, tax_description,
                 tax_rate, amount_cents, fees_amount_cents, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Uuid::new_v4())
        .bind(invoice_id)
        .bind(org)
        .bind(tax.map(|t| t.id))
        .bind(&line.code)
        .bind(tax.map_or_else(|| line.code.clone(), |t| t.name.clone()))
        .bind(tax.and_then(|t| t.description.clone()))
        .bind(line.rate)
        .bind(line.amount_cents)
        .bind(line.fees_amount_cents)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    }
    for (position, credit) in computed.credits.iter().enumerate() {
        sqlx::query(
            "INSERT INTO invoice_credits (id, invoice_id, organization_id, applied_coupon_id, amount_cents,
                 amount_currency, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4())
        .bind(invoice_id)
        .bind(org)
        .bind(credit.coupon)
        .bind(credit.amount_cents)
        .bind(ctx.currency.code)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE applied_coupons SET
                 frequency_duration_remaining = coalesce($3, frequency_duration_remaining),
                 status = CASE WHEN $4 THEN 'terminated' ELSE status END,
                 terminated_at = CASE WHEN $4 THEN now() ELSE terminated_at END
             WHERE organization_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(credit.coupon)
        .bind(credit.remaining_periods.map(|r| i32::try_from(r).unwrap_or(i32::MAX)))
        .bind(credit.terminated)
        .execute(&mut *tx)
        .await?;
    }
    if status == "finalized" {
        crate::store::invoices::finalize(&mut tx, org, invoice_id).await?;
    }
    tx.commit().await?;
    ::metrics::counter!("billstream_invoices_total", "reason" => reason.as_str()).increment(1);
    Ok(Issued::Invoice(invoice_id))
}

/// The usage of the current period of an active subscription, priced, stored nowhere (Lago's current_usage).
pub struct CurrentUsage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub issuing_date: chrono::NaiveDate,
    pub currency: &'static str,
    pub fees: Vec<FeeDraft>,
    pub taxes_amount_cents: i64,
}

pub async fn current_usage(
    pool: &PgPool,
    events: &dyn EventStore,
    org: Uuid,
    subscription: Uuid,
    now: DateTime<Utc>,
) -> Result<CurrentUsage> {
    let ctx = load(pool, org, subscription).await?;
    let terms = ctx.terms();
    let interval = if terms.bill_charges_monthly { Interval::Monthly } else { terms.interval };
    let anchor = local_date(ctx.tz, ctx.sub.subscription_at);
    let schedule = crate::domain::periods::Schedule { interval, billing_time: ctx.billing_time(), anchor };
    let today = local_date(ctx.tz, now).max(local_date(ctx.tz, ctx.started_at()));
    let period = schedule.period_containing(today);
    let (start, end) = period.to_utc(ctx.tz);
    let from = start.max(ctx.started_at());
    let window = Window { from, to: end, duration_days: schedule.duration_days(&period) };
    let mut fees = Vec::new();
    for charge in &ctx.plan.charges {
        fees.extend(charge_fees(events, &ctx, charge, window).await?);
    }
    let drafts: Vec<DraftFee> = fees
        .iter()
        .map(|f| DraftFee {
            amount_cents: f.amount_cents,
            plans: ctx.plan_ids(),
            billable_metric: f.billable_metric,
            taxes: f.taxes.iter().map(|t| invoice_totals::Tax { code: t.code.clone(), rate: t.rate }).collect(),
        })
        .collect();
    let computed = invoicing::compute(&drafts, &[], ctx.currency.code);
    let next = period.end.succ_opt().unwrap_or(period.end);
    Ok(CurrentUsage {
        from,
        to: end,
        issuing_date: next,
        currency: ctx.currency.code,
        fees,
        taxes_amount_cents: computed.totals.taxes_amount_cents,
    })
}
