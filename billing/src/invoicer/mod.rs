//! Issues subscription invoices. A billing run loads the subscriptions due (and their plans, customers,
//! organizations, metrics) in bulk, computes each one's billed periods with the pure domain
//! (`domain::invoicing`), asks `aggregate` for the usage of every charge once per plan and window over all the
//! subscriptions that share them (`usage`), and writes the invoices in batches (`writer`, which holds the
//! idempotency and crash guarantees). A termination bills one subscription through the same path.
//!
//! The same computation, stored nowhere, serves the current usage of a subscription.

pub mod credit_notes;
pub mod in_advance;
pub mod preview;
pub mod refresh;
mod usage;
mod writer;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::Map;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use aggregate::EventStore;
use aggregate::semantics::Window;

use crate::domain::invoicing::{self, Boundaries, DraftFee, PlanTerms, Reason};
use crate::domain::money::{self, Currency};
use crate::domain::periods::{BillingTime, Interval, Schedule, day_count, local_date};
use crate::store::billable_metrics::{self, Metric};
use crate::store::customers::{self, Customer};
use crate::store::organizations::{self, OrganizationSettings};
use crate::store::plans::{self, Plan};
use crate::store::subscriptions::{self, Subscription};
use crate::store::taxes::Tax;
use crate::tracking::Tracker;
use crate::{Error, Result};

pub use usage::FeeDraft;

/// What an organization contributes to its invoices.
struct OrgData {
    settings: OrganizationSettings,
    taxes: Vec<Tax>,
    /// The live billable metrics its plans' charges use, by code.
    metrics: HashMap<String, Metric>,
}

/// Everything an invoice of one subscription is computed from.
pub(crate) struct Context {
    sub: Subscription,
    plan: Arc<Plan>,
    customer: Arc<Customer>,
    org: Arc<OrgData>,
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
        [own, &self.plan.taxes, &self.customer.taxes, &self.org.taxes]
            .into_iter()
            .find(|l| !l.is_empty())
            .map(<[Tax]>::to_vec)
            .unwrap_or_default()
    }

    /// The schedule of the charges (monthly for a yearly plan that bills its charges monthly).
    fn charges_schedule(&self) -> Schedule {
        let terms = self.terms();
        let interval = if terms.bill_charges_monthly { Interval::Monthly } else { terms.interval };
        Schedule { interval, billing_time: self.billing_time(), anchor: local_date(self.tz, self.sub.subscription_at) }
    }

    /// The charges period holding `now`, from the subscription's start.
    fn current_window(&self, now: DateTime<Utc>) -> Window {
        let schedule = self.charges_schedule();
        let today = local_date(self.tz, now).max(local_date(self.tz, self.started_at()));
        let period = schedule.period_containing(today);
        let (start, end) = period.to_utc(self.tz);
        Window { from: start.max(self.started_at()), to: end, duration_days: schedule.duration_days(&period) }
    }

    /// The periods billed for `reason` at `at`; `None` when no period ended.
    fn boundaries(&self, reason: Reason, at: DateTime<Utc>) -> Option<Boundaries> {
        let terms = self.terms();
        match reason {
            Reason::Periodic => {
                let boundary = self.charges_schedule().period_containing(local_date(self.tz, at)).start;
                invoicing::periodic_boundaries(
                    &terms,
                    self.billing_time(),
                    self.sub.subscription_at,
                    self.started_at(),
                    boundary,
                    self.tz,
                )
            }
            // Each event is its own invoice (`in_advance::bill_events`), with no period boundary.
            Reason::InAdvanceCharge => None,
            Reason::Starting => Some(invoicing::starting_boundaries(
                &terms,
                self.billing_time(),
                self.sub.subscription_at,
                self.started_at(),
                at,
                self.tz,
            )),
            Reason::Terminating => Some(invoicing::terminating_boundaries(
                &terms,
                self.billing_time(),
                self.sub.subscription_at,
                self.started_at(),
                self.sub.terminated_at.unwrap_or(at),
                self.tz,
            )),
        }
    }

    /// The subscription fee of `b`, if one is due.
    fn subscription_fee(&self, b: &Boundaries) -> Option<FeeDraft> {
        let (from, to) = b.fee?;
        let terms = self.terms();
        let trial_end = crate::domain::subscription::trial_ended_at(
            Some(self.started_at()),
            Some(terms.trial_days),
            DateTime::<Utc>::MAX_UTC,
        );
        let precise = invoicing::subscription_fee_cents(&terms, from, to, b.fee_period_days, trial_end, self.tz);
        let cents = invoicing::round_cents(precise);
        let row = &self.plan.row;
        Some(FeeDraft {
            fee_type: "subscription",
            charge_id: None,
            charge_filter_id: None,
            item_id: self.sub.id,
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
            usage_units: None,
            events_count: None,
            unit_amount_cents: cents,
            precise_unit_amount: precise / self.currency.subunits(),
            invoiceable: true,
            from: Some(from),
            to: Some(to),
            taxes: self.taxes_for(&[]),
            billable_metric: None,
            charge_model: None,
            aggregation_type: None,
        })
    }
}

impl Context {
    /// Lago's true-ups, added after the usage fees of a period: a charge below its minimum spend (prorated by the
    /// days of a partial period) gets a fee for the difference, then a plan with a minimum commitment gets one for
    /// what the subscription's fees of the period fall short of it.
    fn true_ups(&self, b: &Boundaries, fees: &mut Vec<FeeDraft>) {
        let charge_days = day_count(self.tz, b.charges.0, b.charges.1);
        for charge in &self.plan.charges {
            if charge.attrs.min_amount_cents <= 0 || charge.attrs.pay_in_advance {
                continue;
            }
            let own: Vec<&FeeDraft> = fees.iter().filter(|f| f.charge_id == Some(charge.id)).collect();
            let Some(first) = own.first() else { continue };
            let used: i64 = own.iter().map(|f| f.amount_cents).sum();
            let due = money::min_spend_true_up(charge.attrs.min_amount_cents, used, charge_days, b.charges_period_days);
            if let Some(cents) = due {
                let mut fee = (*first).clone();
                fee.charge_filter_id = None;
                fee.item_filter_invoice_display_name = None;
                fee.filters = None;
                fee.grouped_by = Map::new();
                fee.item_invoice_display_name = Some(format!(
                    "{} - True-up",
                    charge.attrs.invoice_display_name.clone().unwrap_or_else(|| first.item_name.clone())
                ));
                set_amount(&mut fee, cents, self.currency);
                fees.push(fee);
            }
        }
        let (Some(commitment), Some((from, to)), Some(base)) = (&self.plan.commitment, b.fee, self.subscription_fee(b))
        else {
            return;
        };
        let used: i64 = fees.iter().map(|f| f.amount_cents).sum();
        let days = day_count(self.tz, from, to);
        if let Some(cents) = money::min_spend_true_up(commitment.attrs.amount_cents, used, days, b.fee_period_days) {
            let mut fee = base;
            fee.fee_type = "commitment";
            fee.item_code = "minimum_commitment".into();
            fee.item_name = "Minimum commitment".into();
            fee.item_invoice_display_name = commitment.attrs.invoice_display_name.clone();
            fee.taxes = self.taxes_for(&commitment.taxes);
            set_amount(&mut fee, cents, self.currency);
            fees.push(fee);
        }
    }
}

/// A fee of `cents`, one unit.
fn set_amount(fee: &mut FeeDraft, cents: i64, currency: Currency) {
    fee.amount_cents = cents;
    fee.precise_amount_cents = Decimal::from(cents);
    fee.units = Decimal::ONE;
    fee.events_count = None;
    fee.unit_amount_cents = cents;
    fee.precise_unit_amount = Decimal::from(cents) / currency.subunits();
}

/// The stored taxes of a set of fees, by code.
fn store_taxes(fees: &[&FeeDraft]) -> HashMap<String, Tax> {
    fees.iter().flat_map(|f| &f.taxes).map(|t| (t.code.clone(), t.clone())).collect()
}

/// Loads the contexts of `subs` (any organizations), sharing plans, customers and organization data.
async fn contexts(conn: &mut PgConnection, subs: Vec<Subscription>) -> Result<Vec<Context>> {
    let mut by_org: HashMap<Uuid, Vec<Subscription>> = HashMap::new();
    for s in subs {
        by_org.entry(s.organization_id).or_default().push(s);
    }
    let mut out = Vec::new();
    for (org, subs) in by_org {
        let settings = organizations::settings(conn, org, false).await?;
        let taxes: Vec<Tax> = sqlx::query_as(
            "SELECT id, name, code, description, rate, applied_to_organization, created_at FROM taxes
             WHERE organization_id = $1 AND applied_to_organization AND deleted_at IS NULL ORDER BY code",
        )
        .bind(org)
        .fetch_all(&mut *conn)
        .await?;
        let plan_ids: Vec<Uuid> = subs.iter().map(|s| s.plan_id).collect::<BTreeSet<_>>().into_iter().collect();
        let plans: HashMap<Uuid, Arc<Plan>> =
            plans::load_by_ids(conn, org, &plan_ids).await?.into_iter().map(|p| (p.row.id, Arc::new(p))).collect();
        let customer_ids: Vec<Uuid> = subs.iter().map(|s| s.customer_id).collect::<BTreeSet<_>>().into_iter().collect();
        let customers: HashMap<Uuid, Arc<Customer>> =
            customers::find_by_ids(conn, org, &customer_ids).await?.into_iter().map(|c| (c.id, Arc::new(c))).collect();
        let codes: BTreeSet<&String> =
            plans.values().flat_map(|p| p.charges.iter().map(|c| &c.billable_metric_code)).collect();
        let mut metrics = HashMap::new();
        for code in codes {
            if let Some(m) = billable_metrics::find_in(conn, org, code, false).await? {
                metrics.insert(code.clone(), m);
            }
        }
        let data = Arc::new(OrgData { settings, taxes, metrics });
        for sub in subs {
            let plan = plans.get(&sub.plan_id).cloned().ok_or(Error::NotFound("plan"))?;
            let customer = customers.get(&sub.customer_id).cloned().ok_or(Error::NotFound("customer"))?;
            let currency = Currency::from_code(&plan.row.amount_currency)
                .ok_or_else(|| Error::Internal(format!("plan currency {} is unknown", plan.row.amount_currency)))?;
            out.push(Context {
                tz: sub.timezone.parse().unwrap_or(Tz::UTC),
                sub,
                plan,
                customer,
                org: data.clone(),
                currency,
            });
        }
    }
    Ok(out)
}

fn charges_window(b: &Boundaries) -> Window {
    Window { from: b.charges.0, to: b.charges.1, duration_days: b.charges_period_days }
}

/// For each due invoice, whether its period is still unbilled (a starting invoice: whether none exists). Invoices
/// of charges paid in advance bill events, not the period: they do not count.
async fn unbilled(conn: &mut PgConnection, due: &[(Context, Reason, Boundaries)]) -> Result<Vec<bool>> {
    let subs: Vec<Uuid> = due.iter().map(|d| d.0.sub.id).collect();
    let starts: Vec<DateTime<Utc>> = due.iter().map(|d| d.2.charges.0).collect();
    let starting: Vec<bool> = due.iter().map(|d| d.1 == Reason::Starting).collect();
    let billed: Vec<(i64,)> = sqlx::query_as(
        "SELECT d.n FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[]) WITH ORDINALITY AS d(id, start, starting, n)
         WHERE EXISTS (SELECT 1 FROM invoice_subscriptions i WHERE i.subscription_id = d.id
                       AND CASE WHEN d.starting THEN i.invoicing_reason = 'subscription_starting'
                                ELSE i.invoicing_reason IN ('subscription_periodic', 'subscription_terminating')
                                     AND i.charges_from_datetime = d.start END)",
    )
    .bind(&subs)
    .bind(&starts)
    .bind(&starting)
    .fetch_all(&mut *conn)
    .await?;
    let mut keep = vec![true; due.len()];
    for (n,) in billed {
        if let Some(k) = usize::try_from(n - 1).ok().and_then(|i| keep.get_mut(i)) {
            *k = false;
        }
    }
    Ok(keep)
}

/// What a billing run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    pub invoices: usize,
    pub already_billed: usize,
    /// Invoices of batches that failed to write (retried on the next run).
    pub failed: usize,
}

/// Subscriptions written per transaction: big enough to amortize the round trips, small enough to hold the
/// organizations' locks briefly.
const BATCH: usize = 2000;

/// Bills every subscription due at `now` and every terminated subscription whose final invoice is missing.
pub async fn run_due(
    pool: &PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    let started = std::time::Instant::now();
    let mut conn = pool.acquire().await?;
    let subs = subscriptions::billable(&mut conn, now).await?;
    let ctxs = contexts(&mut conn, subs).await?;
    tracing::debug!(
        subscriptions = ctxs.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "billing run: loaded"
    );
    let mut due: Vec<(Context, Reason, Boundaries)> = Vec::new();
    for ctx in ctxs {
        let reason = if ctx.sub.status == "terminated" { Reason::Terminating } else { Reason::Periodic };
        if let Some(b) = ctx.boundaries(reason, now) {
            due.push((ctx, reason, b));
        }
    }
    let keep = unbilled(&mut conn, &due).await?;
    drop(conn);
    let mut report = RunReport { already_billed: keep.iter().filter(|k| !**k).count(), ..RunReport::default() };
    let due: Vec<(Context, Reason, Boundaries)> =
        due.into_iter().zip(keep).filter(|(_, k)| *k).map(|(d, _)| d).collect();
    let refs: Vec<&Context> = due.iter().map(|d| &d.0).collect();
    let windows: Vec<Window> = due.iter().map(|d| charges_window(&d.2)).collect();
    tracing::debug!(due = due.len(), elapsed_ms = started.elapsed().as_millis() as u64, "billing run: periods");
    let mut charges = usage::charge_fees(events, &refs, &windows, |c| !c.attrs.pay_in_advance).await?;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "billing run: usage priced");
    // The subscriptions are ordered by organization and customer, so a batch keeps a customer's invoices together.
    for chunk in due.chunks(BATCH) {
        let batch: Vec<writer::Pending> = chunk
            .iter()
            .map(|(ctx, reason, b)| writer::Pending {
                ctx,
                reason: *reason,
                boundaries: *b,
                event_transaction_id: None,
                fees: {
                    let mut fees: Vec<FeeDraft> = ctx
                        .subscription_fee(b)
                        .into_iter()
                        .chain(charges.remove(&ctx.sub.id).unwrap_or_default())
                        .collect();
                    ctx.true_ups(b, &mut fees);
                    fees
                },
            })
            .collect();
        let size = batch.len();
        let written = match writer::write(pool, tracker, batch).await {
            Ok(w) => w,
            Err(e) => {
                // The batch's transaction rolled back whole; the next run bills it again.
                tracing::error!(error = %e, invoices = size, "writing a batch of invoices failed");
                report.failed += size;
                continue;
            }
        };
        report.invoices += written.invoices.len();
        report.already_billed += written.already_billed;
        for _ in &written.invoices {
            ::metrics::counter!("billstream_invoices_total").increment(1);
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        invoices = report.invoices,
        "billing run: written"
    );
    Ok(report)
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

/// Issues the invoice of one subscription for `reason`: the period that ended at the boundary on or before `at`
/// (periodic), or the current period up to its termination (terminating).
pub async fn issue(
    pool: &PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    org: Uuid,
    subscription: Uuid,
    reason: Reason,
    at: DateTime<Utc>,
) -> Result<Issued> {
    let mut conn = pool.acquire().await?;
    let sub = subscriptions::get(&mut conn, org, subscription).await?;
    let ctx = contexts(&mut conn, vec![sub]).await?.pop().ok_or(Error::NotFound("subscription"))?;
    let Some(b) = ctx.boundaries(reason, at) else { return Ok(Issued::NothingDue) };
    let due = vec![(ctx, reason, b)];
    if !unbilled(&mut conn, &due).await?.first().copied().unwrap_or(false) {
        return Ok(Issued::AlreadyBilled);
    }
    drop(conn);
    let (ctx, reason, b) = &due[0];
    // A starting invoice bills the fee alone: charges are billed in arrears.
    let mut charges = if *reason == Reason::Starting {
        HashMap::new()
    } else {
        usage::charge_fees(events, &[ctx], &[charges_window(b)], |c| !c.attrs.pay_in_advance).await?
    };
    let mut fees: Vec<FeeDraft> =
        ctx.subscription_fee(b).into_iter().chain(charges.remove(&ctx.sub.id).unwrap_or_default()).collect();
    if *reason != Reason::Starting {
        ctx.true_ups(b, &mut fees);
    }
    let written = writer::write(
        pool,
        tracker,
        vec![writer::Pending { ctx, reason: *reason, boundaries: *b, fees, event_transaction_id: None }],
    )
    .await?;
    match written.invoices.first() {
        Some((_, id)) => {
            ::metrics::counter!("billstream_invoices_total").increment(1);
            Ok(Issued::Invoice(*id))
        }
        None => Ok(Issued::AlreadyBilled),
    }
}

/// The invoices a subscription's change of state calls for, issued at once: the final invoice of a terminated
/// subscription, the starting invoice of an active one on a plan paid in advance. Failures are logged and left to
/// the billing clock, which looks for both.
pub async fn bill_changes(
    pool: &PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    org: Uuid,
    subscriptions: &[Uuid],
    at: DateTime<Utc>,
) {
    for &id in subscriptions {
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "invoices of a subscription change deferred to the billing clock");
                return;
            }
        };
        let reason = match subscriptions::get(&mut conn, org, id).await {
            Ok(s) if s.status == "terminated" && s.on_termination_invoice == "generate" => Reason::Terminating,
            // Only a recent start: an older subscription is billed by the clock already.
            Ok(s) if s.status == "active" && s.started_at.is_some_and(|t| t > at - chrono::Duration::days(7)) => {
                let in_advance: Option<bool> = sqlx::query_scalar("SELECT pay_in_advance FROM plans WHERE id = $1")
                    .bind(s.plan_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .ok()
                    .flatten();
                if in_advance != Some(true) {
                    continue;
                }
                Reason::Starting
            }
            _ => continue,
        };
        drop(conn);
        if reason == Reason::Terminating {
            // The unused part of a period paid in advance comes back first, so the final invoice can use it.
            if let Err(e) = credit_notes::issue_for_termination(pool, tracker, org, id).await {
                tracing::warn!(subscription_id = %id, error = %e, "credit note deferred to the billing clock");
            }
        }
        if let Err(e) = issue(pool, events, tracker, org, id, reason, at).await {
            tracing::warn!(subscription_id = %id, error = %e, "invoice deferred to the billing clock");
        }
    }
}

/// Starting invoices missing for active subscriptions on plans paid in advance that started in the last week (a
/// downgrade or a pending subscription that began, an upgrade whose invoice failed).
pub async fn issue_missing_starts(
    pool: &PgPool,
    events: &dyn EventStore,
    tracker: &Tracker,
    now: DateTime<Utc>,
) -> Result<usize> {
    let missing: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT s.organization_id, s.id FROM subscriptions s JOIN plans p ON p.id = s.plan_id
         WHERE s.status = 'active' AND p.pay_in_advance AND s.started_at > $1 - interval '7 days' AND s.started_at <= $1
         AND NOT EXISTS (SELECT 1 FROM invoice_subscriptions i WHERE i.subscription_id = s.id
                         AND i.invoicing_reason = 'subscription_starting')",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut issued = 0;
    for (org, sub) in missing {
        if let Issued::Invoice(_) = issue(pool, events, tracker, org, sub, Reason::Starting, now).await? {
            issued += 1;
        }
    }
    Ok(issued)
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
    let mut conn = pool.acquire().await?;
    let sub = subscriptions::get(&mut conn, org, subscription).await?;
    let ctx = contexts(&mut conn, vec![sub]).await?.pop().ok_or(Error::NotFound("subscription"))?;
    drop(conn);
    let window = ctx.current_window(now);
    let fees = usage::charge_fees(events, &[&ctx], &[window], |_| true).await?.remove(&ctx.sub.id).unwrap_or_default();
    let drafts: Vec<DraftFee> = fees.iter().map(|f| f.draft(ctx.plan_ids())).collect();
    let computed = invoicing::compute(&drafts, &[], ctx.currency.code);
    let last_day = local_date(ctx.tz, window.to);
    Ok(CurrentUsage {
        from: window.from,
        to: window.to,
        issuing_date: last_day.succ_opt().unwrap_or(last_day),
        currency: ctx.currency.code,
        fees,
        taxes_amount_cents: computed.totals.taxes_amount_cents,
    })
}
