//! What a subscription invoice holds, as pure rules: which periods it bills, the subscription fee (prorated where
//! Lago prorates), one charge fee per charge, filter and pricing group, then coupons, taxes and totals in
//! `invoice_totals`' order; and the invoice's dates and number. The adapter loads the subscription, its plan and
//! the usage totals, calls [`compute`], and stores the result in one transaction.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

use super::charge_models::{ChargeModel, ModelError, Usage};
use super::invoice_totals::{self, AppliedCoupon, CouponCredit, FeeLine, InvoiceTax, InvoiceTotals, Tax};
use super::money::Currency;
use super::periods::{BillingTime, Interval, Period, Schedule, day_count, local_date, prorate};

/// Why an invoice is issued (Lago's `invoicing_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A billing period ended.
    Periodic,
    /// The subscription was terminated: its last, partial period is billed at once.
    Terminating,
    /// A subscription to a plan paid in advance started: its first period's fee is billed at once.
    Starting,
    /// An event on charges paid in advance: their fees are billed at once.
    InAdvanceCharge,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Periodic => "subscription_periodic",
            Reason::Terminating => "subscription_terminating",
            Reason::Starting => "subscription_starting",
            Reason::InAdvanceCharge => "in_advance_charge",
        }
    }
}

/// The plan terms that decide the subscription fee and the periods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTerms {
    pub interval: Interval,
    pub amount_cents: i64,
    pub pay_in_advance: bool,
    pub bill_charges_monthly: bool,
    /// Free trial in days (possibly fractional); no subscription fee is due for it.
    pub trial_days: Decimal,
}

/// The instants one invoice bills for one subscription. `fee` is `None` when no subscription fee is due (a plan
/// paid in advance that is terminated has paid its last period already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundaries {
    pub fee: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The full period the fee belongs to, for proration.
    pub fee_period_days: u32,
    pub charges: (DateTime<Utc>, DateTime<Utc>),
    /// The full length of the charges period in days (weighted sums divide by it).
    pub charges_period_days: u32,
    /// When the invoice is issued: the period boundary, or the termination instant.
    pub timestamp: DateTime<Utc>,
}

fn schedule(interval: Interval, billing_time: BillingTime, anchor: NaiveDate) -> Schedule {
    Schedule { interval, billing_time, anchor }
}

/// The boundaries of the periodic invoice issued at local date `billing_day` (a boundary: the first day of a new
/// period), for a subscription that started at `started_at`. `None` when the subscription had not started before
/// that boundary, so no period ended.
pub fn periodic_boundaries(
    plan: &PlanTerms,
    billing_time: BillingTime,
    subscription_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    billing_day: NaiveDate,
    tz: Tz,
) -> Option<Boundaries> {
    let anchor = local_date(tz, subscription_at);
    let fee_schedule = schedule(plan.interval, billing_time, anchor);
    let charges_interval = if plan.bill_charges_monthly { Interval::Monthly } else { plan.interval };
    let charges_schedule = schedule(charges_interval, billing_time, anchor);
    let timestamp = super::periods::local_midnight(tz, billing_day);
    if started_at >= timestamp {
        return None;
    }
    let charges_period = charges_schedule.billed_on(billing_day, false).charges;
    let (charges_from, charges_to) = charges_period.to_utc(tz);
    let charges = (charges_from.max(started_at), charges_to);
    // The subscription fee is due on its own schedule's boundaries only (a yearly plan billing charges monthly
    // invoices its fee once a year).
    let fee = fee_schedule.is_billing_day(billing_day).then(|| {
        let p = fee_schedule.billed_on(billing_day, plan.pay_in_advance).fee;
        let (from, to) = p.to_utc(tz);
        (from.max(started_at), to, fee_schedule.duration_days(&p))
    });
    Some(Boundaries {
        fee: fee.map(|(f, t, _)| (f, t)),
        fee_period_days: fee.map_or(0, |(_, _, d)| d),
        charges,
        charges_period_days: charges_schedule.duration_days(&charges_period),
        timestamp,
    })
}

/// The boundaries of the invoice issued when a subscription is terminated at `terminated_at`: the current period
/// up to that instant. A plan paid in advance has already paid this period's fee.
pub fn terminating_boundaries(
    plan: &PlanTerms,
    billing_time: BillingTime,
    subscription_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    terminated_at: DateTime<Utc>,
    tz: Tz,
) -> Boundaries {
    let anchor = local_date(tz, subscription_at);
    let mut day = local_date(tz, terminated_at).max(local_date(tz, started_at));
    // Terminated exactly at local midnight (a downgrade at the period boundary): the period that ended is the one
    // billed, not the one that had not started.
    if terminated_at > started_at && terminated_at == super::periods::local_midnight(tz, day) {
        day = day.pred_opt().unwrap_or(day);
    }
    let fee_schedule = schedule(plan.interval, billing_time, anchor);
    let charges_interval = if plan.bill_charges_monthly { Interval::Monthly } else { plan.interval };
    let charges_schedule = schedule(charges_interval, billing_time, anchor);
    let fee_period = fee_schedule.period_containing(day);
    let charges_period = charges_schedule.period_containing(day);
    let start = |p: &Period| p.to_utc(tz).0.max(started_at);
    // A period ends on its last microsecond; a termination at a boundary ends the period before it.
    let end = if terminated_at > started_at
        && terminated_at == super::periods::local_midnight(tz, day.succ_opt().unwrap_or(day))
    {
        terminated_at - chrono::Duration::microseconds(1)
    } else {
        terminated_at.max(started_at)
    };
    Boundaries {
        fee: (!plan.pay_in_advance).then(|| (start(&fee_period), end)),
        fee_period_days: fee_schedule.duration_days(&fee_period),
        charges: (start(&charges_period), end),
        charges_period_days: charges_schedule.duration_days(&charges_period),
        timestamp: terminated_at,
    }
}

/// The boundaries of the invoice a subscription to a plan paid in advance gets when it starts: the fee of the
/// period holding `at`, from the start (prorated when a calendar period had begun), and no charges (they are
/// billed in arrears at the period's end).
pub fn starting_boundaries(
    plan: &PlanTerms,
    billing_time: BillingTime,
    subscription_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    at: DateTime<Utc>,
    tz: Tz,
) -> Boundaries {
    let fee_schedule = schedule(plan.interval, billing_time, local_date(tz, subscription_at));
    let day = local_date(tz, at.max(started_at));
    let period = fee_schedule.period_containing(day);
    let (start, end) = period.to_utc(tz);
    let from = start.max(started_at);
    Boundaries {
        fee: Some((from, end)),
        fee_period_days: fee_schedule.duration_days(&period),
        charges: (from, from),
        charges_period_days: 0,
        timestamp: at.max(started_at),
    }
}

/// The subscription fee for `[from, to]` in precise cents: the plan amount for a whole period, else the amount per
/// day times the days billed (Lago's single day price), after any free trial.
pub fn subscription_fee_cents(
    plan: &PlanTerms,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period_days: u32,
    trial_end: Option<DateTime<Utc>>,
    tz: Tz,
) -> Decimal {
    let amount = Decimal::from(plan.amount_cents);
    let mut from = from;
    if let Some(end) = trial_end {
        if end >= to {
            return Decimal::ZERO;
        }
        from = from.max(end);
    }
    let days = day_count(tz, from, to);
    if days >= period_days { amount } else { prorate(amount, days, period_days) }
}

/// Half away from zero to whole subunits: how Lago rounds a fee's precise amount.
pub fn round_cents(precise: Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    precise.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero).to_i64().unwrap_or(0)
}

/// A charge fee's amounts, from the charge model's price of the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeAmount {
    pub amount_cents: i64,
    pub precise_amount_cents: Decimal,
    pub unit_amount_cents: i64,
    /// Per unit, in major units of the currency.
    pub precise_unit_amount: Decimal,
}

pub fn charge_amount(model: &ChargeModel, usage: &Usage, currency: Currency) -> Result<ChargeAmount, ModelError> {
    let priced = model.price(usage)?;
    Ok(ChargeAmount {
        amount_cents: currency.to_cents(priced.amount),
        precise_amount_cents: currency.to_precise_cents(priced.amount),
        unit_amount_cents: currency.to_unit_cents(priced.unit_amount),
        precise_unit_amount: priced.unit_amount,
    })
}

/// A fee before coupons and taxes: its amount, and what coupons and taxes need to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftFee {
    pub amount_cents: i64,
    pub plans: Vec<Uuid>,
    pub billable_metric: Option<Uuid>,
    pub taxes: Vec<Tax>,
}

/// A fee after coupons and taxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedFee {
    pub precise_coupons_cents: Decimal,
    pub taxes: Vec<(String, i64)>,
    pub taxes_amount_cents: i64,
    pub taxes_precise_amount_cents: Decimal,
    /// Sum of the applied rates, in percent.
    pub taxes_rate: Decimal,
}

/// The invoice's money: each fee's share of coupons and its taxes, the coupon credits, the tax lines, the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    pub fees: Vec<PricedFee>,
    pub credits: Vec<CouponCredit>,
    pub taxes: Vec<InvoiceTax>,
    pub totals: InvoiceTotals,
}

/// Applies coupons, then taxes, then totals, as Lago orders them.
pub fn compute(fees: &[DraftFee], coupons: &[AppliedCoupon], currency: &str) -> Computed {
    let mut lines: Vec<FeeLine> = fees
        .iter()
        .map(|f| FeeLine {
            amount_cents: f.amount_cents,
            plans: f.plans.clone(),
            billable_metric: f.billable_metric,
            taxes: f.taxes.clone(),
            precise_coupons_cents: Decimal::ZERO,
        })
        .collect();
    let fees_cents: i64 = fees.iter().map(|f| f.amount_cents).sum();
    let credits = invoice_totals::apply_coupons(&mut lines, coupons, currency, fees_cents);
    let coupons_cents: i64 = credits.iter().map(|c| c.amount_cents).sum();
    let (taxes, taxes_cents) = invoice_totals::invoice_taxes(&lines);
    let priced = lines
        .iter()
        .map(|l| {
            let t = invoice_totals::fee_taxes(l);
            let owed = Decimal::from(l.amount_cents) - l.precise_coupons_cents;
            let rate: Decimal = l.taxes.iter().map(|t| t.rate).sum();
            PricedFee {
                precise_coupons_cents: l.precise_coupons_cents,
                taxes: t.lines,
                taxes_amount_cents: t.total_cents,
                taxes_precise_amount_cents: owed * rate / Decimal::ONE_HUNDRED,
                taxes_rate: rate,
            }
        })
        .collect();
    Computed {
        fees: priced,
        credits,
        taxes,
        totals: invoice_totals::totals(fees_cents, coupons_cents, taxes_cents, 0, 0),
    }
}

/// The issuing date (the invoice's local date, pushed by the grace period) and the payment due date.
pub fn invoice_dates(
    timestamp: DateTime<Utc>,
    tz: Tz,
    grace_days: u32,
    net_payment_term: u32,
) -> (NaiveDate, NaiveDate) {
    let issuing = local_date(tz, timestamp)
        .checked_add_days(Days::new(u64::from(grace_days)))
        .unwrap_or_else(|| local_date(tz, timestamp));
    let due = issuing.checked_add_days(Days::new(u64::from(net_payment_term))).unwrap_or(issuing);
    (issuing, due)
}

/// How finalized invoices are numbered (Lago's `document_numbering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    PerCustomer { customer_sequential_id: i64, invoice_sequential_id: i64 },
    PerOrganization { year_month: (i32, u32), organization_sequential_id: i64 },
}

/// A finalized invoice's number: `PREFIX-005-012` per customer, `PREFIX-202611-012` per organization.
pub fn invoice_number(prefix: &str, numbering: Numbering) -> String {
    match numbering {
        Numbering::PerCustomer { customer_sequential_id, invoice_sequential_id } => {
            format!("{prefix}-{customer_sequential_id:03}-{invoice_sequential_id:03}")
        }
        Numbering::PerOrganization { year_month: (y, m), organization_sequential_id } => {
            format!("{prefix}-{y:04}{m:02}-{organization_sequential_id:03}")
        }
    }
}

/// A draft's number: the sequence is only taken at finalization, so drafts never leave gaps.
pub fn draft_number(prefix: &str) -> String {
    format!("{prefix}-DRAFT")
}

/// The year and month of `now` in `tz`, for per-organization numbers.
pub fn year_month(now: DateTime<Utc>, tz: Tz) -> (i32, u32) {
    let d = local_date(tz, now);
    (d.year(), d.month())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn monthly(amount_cents: i64) -> PlanTerms {
        PlanTerms {
            interval: Interval::Monthly,
            amount_cents,
            pay_in_advance: false,
            bill_charges_monthly: false,
            trial_days: Decimal::ZERO,
        }
    }

    #[test]
    fn a_calendar_month_in_arrears_bills_the_month_that_ended_in_the_customers_timezone() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let plan = monthly(10_000);
        let started = t("2026-01-01T05:00:00Z"); // Jan 1 00:00 in New York
        let b = periodic_boundaries(&plan, BillingTime::Calendar, started, started, date("2026-03-01"), tz).unwrap();
        assert_eq!(b.charges.0, t("2026-02-01T05:00:00Z"));
        assert_eq!(b.charges.1, t("2026-03-01T04:59:59.999999Z"));
        assert_eq!(b.fee, Some(b.charges));
        assert_eq!((b.fee_period_days, b.charges_period_days), (28, 28));
        assert_eq!(b.timestamp, t("2026-03-01T05:00:00Z"));
        let fee = subscription_fee_cents(&plan, b.charges.0, b.charges.1, 28, None, tz);
        assert_eq!(fee, d("10000"));
    }

    #[test]
    fn the_first_calendar_period_is_prorated_by_days() {
        let tz = Tz::UTC;
        let plan = monthly(3_100);
        let started = t("2026-03-10T12:00:00Z");
        let b = periodic_boundaries(&plan, BillingTime::Calendar, started, started, date("2026-04-01"), tz).unwrap();
        assert_eq!(b.charges.0, started);
        let (from, to) = b.fee.unwrap();
        // Mar 10 (started at noon, counted whole) to Mar 31: 22 of 31 days.
        let fee = subscription_fee_cents(&plan, from, to, b.fee_period_days, None, tz);
        assert_eq!(fee, d("2200"));
    }

    #[test]
    fn no_periodic_invoice_before_the_subscription_started() {
        let plan = monthly(1);
        let started = t("2026-04-01T00:00:00Z");
        assert!(
            periodic_boundaries(&plan, BillingTime::Calendar, started, started, date("2026-04-01"), Tz::UTC).is_none()
        );
    }

    #[test]
    fn anniversary_periods_bill_whole_periods_from_the_anchor() {
        let plan = monthly(2_000);
        let started = t("2026-01-31T08:00:00Z");
        let b = periodic_boundaries(&plan, BillingTime::Anniversary, started, started, date("2026-02-28"), Tz::UTC)
            .unwrap();
        assert_eq!(b.charges.0, started);
        assert_eq!(b.charges.1, t("2026-02-27T23:59:59.999999Z"));
        let (from, to) = b.fee.unwrap();
        assert_eq!(subscription_fee_cents(&plan, from, to, b.fee_period_days, None, Tz::UTC), d("2000"));
    }

    #[test]
    fn termination_bills_the_started_days_of_the_period() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let plan = monthly(3_000);
        let started = t("2025-12-31T23:00:00Z"); // Jan 1 in Paris
        let terminated = t("2026-04-15T10:00:00Z");
        let b = terminating_boundaries(&plan, BillingTime::Calendar, started, started, terminated, tz);
        assert_eq!(b.charges, (t("2026-03-31T22:00:00Z"), terminated));
        let (from, to) = b.fee.unwrap();
        assert_eq!(b.fee_period_days, 30);
        // April 1..15 in Paris: 15 of 30 days.
        assert_eq!(subscription_fee_cents(&plan, from, to, 30, None, tz), d("1500"));
    }

    #[test]
    fn a_termination_at_the_boundary_bills_the_period_that_ended() {
        let plan = monthly(3_000);
        let s = t("2026-01-01T00:00:00Z");
        let b = terminating_boundaries(&plan, BillingTime::Calendar, s, s, t("2026-02-01T00:00:00Z"), Tz::UTC);
        assert_eq!(b.charges, (s, t("2026-01-31T23:59:59.999999Z")));
        let (from, to) = b.fee.unwrap();
        assert_eq!(subscription_fee_cents(&plan, from, to, b.fee_period_days, None, Tz::UTC), d("3000"));
    }

    #[test]
    fn a_plan_paid_in_advance_bills_its_first_period_when_it_starts() {
        let plan = PlanTerms { pay_in_advance: true, ..monthly(3_000) };
        let s = t("2026-04-16T09:00:00Z");
        let b = starting_boundaries(&plan, BillingTime::Calendar, s, s, s, Tz::UTC);
        let (from, to) = b.fee.unwrap();
        assert_eq!((from, to), (s, t("2026-04-30T23:59:59.999999Z")));
        // April 16 to 30: 15 of 30 days.
        assert_eq!(subscription_fee_cents(&plan, from, to, b.fee_period_days, None, Tz::UTC), d("1500"));
        let a = starting_boundaries(&plan, BillingTime::Anniversary, s, s, s, Tz::UTC);
        let (from, to) = a.fee.unwrap();
        assert_eq!(subscription_fee_cents(&plan, from, to, a.fee_period_days, None, Tz::UTC), d("3000"));
    }

    #[test]
    fn termination_of_a_plan_paid_in_advance_bills_no_fee() {
        let plan = PlanTerms { pay_in_advance: true, ..monthly(3_000) };
        let s = t("2026-01-01T00:00:00Z");
        let b = terminating_boundaries(&plan, BillingTime::Calendar, s, s, t("2026-01-20T00:00:00Z"), Tz::UTC);
        assert_eq!(b.fee, None);
    }

    #[test]
    fn a_plan_paid_in_advance_bills_the_starting_period_at_the_boundary() {
        let plan = PlanTerms { pay_in_advance: true, ..monthly(5_000) };
        let s = t("2026-01-01T00:00:00Z");
        let b = periodic_boundaries(&plan, BillingTime::Calendar, s, s, date("2026-02-01"), Tz::UTC).unwrap();
        assert_eq!(b.fee, Some((t("2026-02-01T00:00:00Z"), t("2026-02-28T23:59:59.999999Z"))));
        assert_eq!(b.charges, (t("2026-01-01T00:00:00Z"), t("2026-01-31T23:59:59.999999Z")));
    }

    #[test]
    fn a_yearly_plan_billing_charges_monthly_invoices_its_fee_once_a_year() {
        let plan = PlanTerms { interval: Interval::Yearly, bill_charges_monthly: true, ..monthly(120_000) };
        let s = t("2025-01-01T00:00:00Z");
        let mid = periodic_boundaries(&plan, BillingTime::Calendar, s, s, date("2025-06-01"), Tz::UTC).unwrap();
        assert_eq!(mid.fee, None);
        assert_eq!(mid.charges.0, t("2025-05-01T00:00:00Z"));
        let year = periodic_boundaries(&plan, BillingTime::Calendar, s, s, date("2026-01-01"), Tz::UTC).unwrap();
        assert_eq!(year.fee, Some((s, t("2025-12-31T23:59:59.999999Z"))));
        assert_eq!(year.fee_period_days, 365);
        assert_eq!(year.charges.0, t("2025-12-01T00:00:00Z"));
    }

    #[test]
    fn trial_days_are_free() {
        let plan = PlanTerms { trial_days: d("10"), ..monthly(3_000) };
        let from = t("2026-04-01T00:00:00Z");
        let to = t("2026-04-30T23:59:59.999999Z");
        let trial_end = Some(t("2026-04-11T00:00:00Z"));
        assert_eq!(subscription_fee_cents(&plan, from, to, 30, trial_end, Tz::UTC), d("2000"));
        assert_eq!(subscription_fee_cents(&plan, from, to, 30, Some(t("2026-05-02T00:00:00Z")), Tz::UTC), d("0"));
    }

    #[test]
    fn charge_amounts_round_at_the_currency_precision() {
        let eur = Currency::from_code("EUR").unwrap();
        let model = ChargeModel::Standard { amount: d("0.0125") };
        let usage = Usage { units: d("10"), ..Usage::default() };
        let a = charge_amount(&model, &usage, eur).unwrap();
        assert_eq!((a.amount_cents, a.precise_amount_cents), (13, d("12.5000")));
        assert_eq!((a.unit_amount_cents, a.precise_unit_amount), (1, d("0.0125")));
        let jpy = Currency::from_code("JPY").unwrap();
        let a = charge_amount(&ChargeModel::Standard { amount: d("1.5") }, &usage, jpy).unwrap();
        assert_eq!(a.amount_cents, 15);
    }

    #[test]
    fn compute_applies_coupons_before_taxes() {
        let vat = Tax { code: "vat".into(), rate: d("20") };
        let fees = [
            DraftFee { amount_cents: 10_000, plans: vec![], billable_metric: None, taxes: vec![vat.clone()] },
            DraftFee { amount_cents: 2_345, plans: vec![], billable_metric: None, taxes: vec![vat] },
        ];
        let coupon = AppliedCoupon {
            id: Uuid::nil(),
            value: invoice_totals::CouponValue::Fixed { amount_cents: 1_000 },
            frequency: invoice_totals::Frequency::Once,
            limit: invoice_totals::CouponLimit::None,
            currency: Some("EUR".into()),
            applied_at: t("2026-01-01T00:00:00Z"),
        };
        let c = compute(&fees, &[coupon], "EUR");
        assert_eq!(c.totals.fees_amount_cents, 12_345);
        assert_eq!(c.totals.coupons_amount_cents, 1_000);
        assert_eq!(c.totals.sub_total_excluding_taxes_amount_cents, 11_345);
        // 20 % of 11,345 = 2,269.
        assert_eq!(c.totals.taxes_amount_cents, 2_269);
        assert_eq!(c.totals.total_amount_cents, 13_614);
        // The coupon is spread in proportion: 10,000/12,345 of 1,000 = 810.04455.
        assert_eq!(c.fees[0].precise_coupons_cents, d("810.04455"));
        assert!(c.credits[0].terminated);
    }

    #[test]
    fn dates_and_numbers() {
        let tz: Tz = "Asia/Tokyo".parse().unwrap();
        let (issuing, due) = invoice_dates(t("2026-02-28T15:00:00Z"), tz, 3, 30);
        assert_eq!((issuing, due), (date("2026-03-04"), date("2026-04-03")));
        let n = Numbering::PerCustomer { customer_sequential_id: 5, invoice_sequential_id: 12 };
        assert_eq!(invoice_number("ACM-1234", n), "ACM-1234-005-012");
        let n = Numbering::PerOrganization { year_month: (2026, 3), organization_sequential_id: 7 };
        assert_eq!(invoice_number("ACM-1234", n), "ACM-1234-202603-007");
        assert_eq!(draft_number("ACM-1234"), "ACM-1234-DRAFT");
    }
}
