//! An invoice's totals from its fees, in Lago's order: coupons (before taxes), then taxes per fee and per invoice,
//! then credit notes and prepaid credits. All amounts are integer cents except the coupon share kept on each fee,
//! which Lago stores with five decimals and rounds after every coupon.
//!
//! - Coupons limited to billable metrics apply first, then those limited to plans, then the rest; the oldest applied
//!   first within each group. Each works on what the previous ones left, and none applies once nothing is left.
//! - A coupon's credit is spread over its target fees in proportion to what each still owes.
//! - Taxes are not compounded: each applicable tax applies to the fee's amount after coupons. Only the first
//!   non-empty level of the tax hierarchy applies (charge or add-on, plan, customer, organization).
//! - Three roundings differ on purpose, as in Lago: each tax line is rounded alone, a fee's tax total and the
//!   invoice's tax total are rounded once over their unrounded parts, and a tax line's taxable base is truncated.

use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

fn round_cents(d: Decimal) -> i64 {
    i64::try_from(d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)).unwrap_or(i64::MAX)
}

fn round5(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(5, RoundingStrategy::MidpointAwayFromZero)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tax {
    pub code: String,
    /// In percent: `20` is 20 %.
    pub rate: Decimal,
}

/// The first non-empty level wins; levels are never merged.
pub fn applicable_taxes<'a>(levels: &[&'a [Tax]]) -> &'a [Tax] {
    levels.iter().copied().find(|l| !l.is_empty()).unwrap_or(&[])
}

/// One fee of the invoice, as coupons and taxes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    pub amount_cents: i64,
    /// The plan of the fee's subscription (and the plan it was overridden from), if any.
    pub plans: Vec<Uuid>,
    /// The billable metric of a charge fee.
    pub billable_metric: Option<Uuid>,
    pub taxes: Vec<Tax>,
    /// Coupon credit carried by this fee so far (five decimals).
    pub precise_coupons_cents: Decimal,
}

impl FeeLine {
    fn owed(&self) -> Decimal {
        Decimal::from(self.amount_cents) - self.precise_coupons_cents
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponValue {
    /// A fixed amount per invoice (recurring, forever) or in all (once: what remains of it).
    Fixed { amount_cents: i64 },
    /// In percent.
    Percentage { rate: Decimal },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Once,
    Recurring { remaining: u32 },
    Forever,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponLimit {
    None,
    Plans(Vec<Uuid>),
    BillableMetrics(Vec<Uuid>),
}

/// A coupon applied to the customer, still active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCoupon {
    pub id: Uuid,
    pub value: CouponValue,
    pub frequency: Frequency,
    pub limit: CouponLimit,
    /// A fixed coupon only applies to invoices in its currency.
    pub currency: Option<String>,
    /// Orders coupons of the same kind of limit: the oldest first.
    pub applied_at: chrono::DateTime<chrono::Utc>,
}

/// What one coupon took from this invoice, and what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCredit {
    pub coupon: Uuid,
    pub amount_cents: i64,
    /// Periods left of a recurring coupon after this invoice.
    pub remaining_periods: Option<u32>,
    /// The coupon is used up.
    pub terminated: bool,
}

/// Applies `coupons` to `fees` (updating each fee's coupon share); `sub_total_cents` is the invoice's amount before
/// coupons. Returns the credits in the order they were applied.
pub fn apply_coupons(
    fees: &mut [FeeLine],
    coupons: &[AppliedCoupon],
    currency: &str,
    sub_total_cents: i64,
) -> Vec<CouponCredit> {
    let mut order: Vec<&AppliedCoupon> = coupons.iter().collect();
    let rank = |c: &AppliedCoupon| match c.limit {
        CouponLimit::BillableMetrics(_) => 0,
        CouponLimit::Plans(_) => 1,
        CouponLimit::None => 2,
    };
    order.sort_by_key(|c| (rank(c), c.applied_at));
    let mut sub_total = sub_total_cents;
    let mut credits = Vec::new();
    for coupon in order {
        if sub_total <= 0 {
            break;
        }
        if matches!(coupon.value, CouponValue::Fixed { .. })
            && coupon.currency.as_deref().is_some_and(|c| c != currency)
        {
            continue;
        }
        let targets: Vec<usize> = fees
            .iter()
            .enumerate()
            .filter(|(_, f)| match &coupon.limit {
                CouponLimit::None => true,
                CouponLimit::Plans(plans) => f.plans.iter().any(|p| plans.contains(p)),
                CouponLimit::BillableMetrics(metrics) => f.billable_metric.is_some_and(|m| metrics.contains(&m)),
            })
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            continue;
        }
        let base = match coupon.limit {
            CouponLimit::None => Decimal::from(sub_total),
            _ => targets.iter().map(|&i| fees[i].owed()).sum(),
        };
        let credit: i64 = match &coupon.value {
            CouponValue::Percentage { rate } => {
                let d = base * rate / Decimal::ONE_HUNDRED;
                if d >= base { base.trunc().try_into().unwrap_or(0) } else { round_cents(d) }
            }
            CouponValue::Fixed { amount_cents } => {
                Decimal::from(*amount_cents).min(base).trunc().try_into().unwrap_or(0)
            }
        };
        if !base.is_zero() {
            for &i in &targets {
                let f = &mut fees[i];
                let share = Decimal::from(credit) * f.owed() / base;
                f.precise_coupons_cents = round5(f.precise_coupons_cents + share).min(Decimal::from(f.amount_cents));
            }
        }
        sub_total -= credit;
        let (remaining_periods, terminated) = match (coupon.frequency, &coupon.value) {
            (Frequency::Recurring { remaining }, _) => {
                let left = remaining.saturating_sub(1);
                (Some(left), left == 0)
            }
            (Frequency::Once, CouponValue::Percentage { .. }) => (None, true),
            (Frequency::Once, CouponValue::Fixed { amount_cents }) => (None, credit >= *amount_cents),
            (Frequency::Forever, _) => (None, false),
        };
        credits.push(CouponCredit { coupon: coupon.id, amount_cents: credit, remaining_periods, terminated });
    }
    credits
}

/// A fee's taxes: one line per tax, rounded alone, and the total rounded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeTaxes {
    pub lines: Vec<(String, i64)>,
    pub total_cents: i64,
}

pub fn fee_taxes(fee: &FeeLine) -> FeeTaxes {
    let raw: Vec<(String, Decimal)> =
        fee.taxes.iter().map(|t| (t.code.clone(), fee.owed() * t.rate / Decimal::ONE_HUNDRED)).collect();
    FeeTaxes {
        total_cents: round_cents(raw.iter().map(|(_, r)| *r).sum()),
        lines: raw.into_iter().map(|(c, r)| (c, round_cents(r))).collect(),
    }
}

/// One tax of the invoice: its amount and the taxable base it applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTax {
    pub code: String,
    pub rate: Decimal,
    pub amount_cents: i64,
    pub fees_amount_cents: i64,
}

/// The invoice's tax lines (in order of first use) and its tax total.
pub fn invoice_taxes(fees: &[FeeLine]) -> (Vec<InvoiceTax>, i64) {
    let mut lines: Vec<(Tax, Decimal, Decimal)> = Vec::new();
    for fee in fees {
        for tax in &fee.taxes {
            let raw = fee.owed() * tax.rate / Decimal::ONE_HUNDRED;
            match lines.iter_mut().find(|(t, _, _)| t.code == tax.code) {
                Some((_, base, amount)) => {
                    *base += fee.owed();
                    *amount += raw;
                }
                None => lines.push((tax.clone(), fee.owed(), raw)),
            }
        }
    }
    let total = round_cents(lines.iter().map(|(_, _, a)| *a).sum());
    let lines = lines
        .into_iter()
        .map(|(t, base, amount)| InvoiceTax {
            code: t.code,
            rate: t.rate,
            amount_cents: round_cents(amount),
            fees_amount_cents: i64::try_from(base.trunc()).unwrap_or(0),
        })
        .collect();
    (lines, total)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvoiceTotals {
    pub fees_amount_cents: i64,
    pub coupons_amount_cents: i64,
    pub sub_total_excluding_taxes_amount_cents: i64,
    pub taxes_amount_cents: i64,
    pub sub_total_including_taxes_amount_cents: i64,
    pub credit_notes_amount_cents: i64,
    pub prepaid_credit_amount_cents: i64,
    pub total_amount_cents: i64,
}

/// Lago's identities over integer cents; credit notes and prepaid credits never take the total below zero.
pub fn totals(
    fees_cents: i64,
    coupons_cents: i64,
    taxes_cents: i64,
    credit_notes_available: i64,
    prepaid_available: i64,
) -> InvoiceTotals {
    let sub_excl = fees_cents - coupons_cents;
    let sub_incl = sub_excl + taxes_cents;
    let credit_notes = credit_notes_available.clamp(0, sub_incl.max(0));
    let after_notes = sub_incl - credit_notes;
    let prepaid = prepaid_available.clamp(0, after_notes.max(0));
    InvoiceTotals {
        fees_amount_cents: fees_cents,
        coupons_amount_cents: coupons_cents,
        sub_total_excluding_taxes_amount_cents: sub_excl,
        taxes_amount_cents: taxes_cents,
        sub_total_including_taxes_amount_cents: sub_incl,
        credit_notes_amount_cents: credit_notes,
        prepaid_credit_amount_cents: prepaid,
        total_amount_cents: after_notes - prepaid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn tax(code: &str, rate: &str) -> Tax {
        Tax { code: code.into(), rate: d(rate) }
    }

    fn fee(amount: i64, plan: Option<Uuid>, metric: Option<Uuid>, taxes: Vec<Tax>) -> FeeLine {
        FeeLine {
            amount_cents: amount,
            plans: plan.into_iter().collect(),
            billable_metric: metric,
            taxes,
            precise_coupons_cents: Decimal::ZERO,
        }
    }

    fn at(n: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap()
    }

    fn coupon(n: u128, value: CouponValue, frequency: Frequency, limit: CouponLimit) -> AppliedCoupon {
        AppliedCoupon {
            id: Uuid::from_u128(n),
            value,
            frequency,
            limit,
            currency: Some("EUR".into()),
            applied_at: at(n as i64),
        }
    }

    fn fixed(c: i64) -> CouponValue {
        CouponValue::Fixed { amount_cents: c }
    }

    fn pct(r: &str) -> CouponValue {
        CouponValue::Percentage { rate: d(r) }
    }

    /// Lago's coupons breakdown scenario: 8 fees over 2 plans, 3 fixed once coupons, taxes of 10 % and 20 %.
    #[test]
    fn coupons_breakdown_scenario() {
        let (p1, p2) = (Uuid::from_u128(101), Uuid::from_u128(102));
        let bm: Vec<Uuid> = (1..=8).map(|i| Uuid::from_u128(200 + i)).collect();
        let amounts = [1000, 2000, 3000, 4000, 1000, 2000, 3000, 4000];
        let rates = ["10", "20", "10", "10", "10", "20", "10", "10"];
        let mut fees: Vec<FeeLine> = (0..8)
            .map(|i| {
                fee(
                    amounts[i],
                    Some(if i < 4 { p1 } else { p2 }),
                    Some(bm[i]),
                    vec![tax(&format!("t{}", rates[i]), rates[i])],
                )
            })
            .collect();
        let coupons = [
            coupon(1, fixed(2000), Frequency::Once, CouponLimit::BillableMetrics(vec![bm[0], bm[1]])),
            coupon(2, fixed(1000), Frequency::Once, CouponLimit::Plans(vec![p2])),
            coupon(3, fixed(500), Frequency::Once, CouponLimit::None),
        ];
        // Applied in the opposite order of creation for the unlimited one: order comes from the limits.
        let credits =
            apply_coupons(&mut fees, &[coupons[2].clone(), coupons[1].clone(), coupons[0].clone()], "EUR", 20_000);
        assert_eq!(credits.iter().map(|c| c.amount_cents).collect::<Vec<_>>(), [2000, 1000, 500]);
        assert!(credits.iter().all(|c| c.terminated));
        let shares: Vec<Decimal> = fees.iter().map(|f| f.precise_coupons_cents).collect();
        let expected =
            ["676.47059", "1352.94117", "88.23529", "117.64706", "126.47059", "252.94118", "379.41176", "505.88235"];
        assert_eq!(shares, expected.map(d));
        let fee_tax: Vec<i64> = fees.iter().map(|f| fee_taxes(f).total_cents).collect();
        assert_eq!(fee_tax, [32, 129, 291, 388, 87, 349, 262, 349]);
        let (lines, taxes) = invoice_taxes(&fees);
        assert_eq!(taxes, 1889);
        assert_eq!(lines.iter().map(|l| l.amount_cents).collect::<Vec<_>>(), [1411, 479]);
        let t = totals(20_000, 3500, taxes, 0, 0);
        assert_eq!((t.sub_total_excluding_taxes_amount_cents, t.total_amount_cents), (16_500, 18_389));
    }

    /// Lago's taxes scenario: plan tax 10 %, charge taxes 0 % and 20 %, one fixed coupon.
    #[test]
    fn tax_hierarchy_scenario() {
        let plan = [tax("banking_rates", "10")];
        let fx = [tax("fx", "0")];
        let cards = [tax("cards", "20")];
        let mut fees = vec![
            fee(10_000, None, None, applicable_taxes(&[&[], &plan]).to_vec()),
            fee(5000, None, None, applicable_taxes(&[&fx, &plan]).to_vec()),
            fee(3000, None, None, applicable_taxes(&[&cards, &plan]).to_vec()),
            fee(2000, None, None, applicable_taxes(&[&cards, &plan]).to_vec()),
        ];
        let credits =
            apply_coupons(&mut fees, &[coupon(1, fixed(1000), Frequency::Once, CouponLimit::None)], "EUR", 20_000);
        assert_eq!(credits[0].amount_cents, 1000);
        assert_eq!(
            fees.iter().map(|f| f.precise_coupons_cents).collect::<Vec<_>>(),
            ["500", "250", "150", "100"].map(d)
        );
        let (_, taxes) = invoice_taxes(&fees);
        assert_eq!(taxes, 1900);
        let t = totals(20_000, 1000, taxes, 0, 0);
        assert_eq!((t.sub_total_including_taxes_amount_cents, t.total_amount_cents), (20_900, 20_900));
    }

    #[test]
    fn a_once_fixed_coupon_keeps_what_it_could_not_use() {
        let mut fees = vec![fee(10_000, None, None, vec![])];
        let credits = apply_coupons(
            &mut fees,
            &[
                coupon(1, fixed(1000), Frequency::Once, CouponLimit::None),
                coupon(2, fixed(11_000), Frequency::Once, CouponLimit::None),
            ],
            "EUR",
            10_000,
        );
        assert_eq!(
            credits.iter().map(|c| (c.amount_cents, c.terminated)).collect::<Vec<_>>(),
            [(1000, true), (9000, false)]
        );
        assert_eq!(fees[0].precise_coupons_cents, d("10000"));
        assert_eq!(fee_taxes(&fees[0]).total_cents, 0);
    }

    #[test]
    fn coupons_compound_and_stop_at_zero() {
        let run = |coupons: Vec<AppliedCoupon>, amount: i64| {
            let mut fees = vec![fee(amount, None, None, vec![])];
            apply_coupons(&mut fees, &coupons, "EUR", amount).iter().map(|c| c.amount_cents).collect::<Vec<_>>()
        };
        let c = |n, v| coupon(n, v, Frequency::Forever, CouponLimit::None);
        assert_eq!(run(vec![c(1, fixed(10)), c(2, pct("20"))], 100), [10, 18]);
        assert_eq!(run(vec![c(1, pct("15")), c(2, pct("20"))], 100), [15, 17]);
        assert_eq!(run(vec![c(1, fixed(10)), c(2, fixed(20))], 100), [10, 20]);
        assert_eq!(run(vec![c(1, fixed(10)), c(2, pct("20"))], 5), [5]);
    }

    #[test]
    fn coupon_spread_and_frequencies() {
        let two = || vec![fee(200, None, None, vec![]), fee(100, None, None, vec![])];
        let mut fees = two();
        let credits = apply_coupons(&mut fees, &[coupon(1, fixed(12), Frequency::Once, CouponLimit::None)], "EUR", 300);
        assert_eq!((fees[0].precise_coupons_cents, fees[1].precise_coupons_cents), (d("8"), d("4")));
        assert!(credits[0].terminated);
        let mut fees = two();
        let credits = apply_coupons(&mut fees, &[coupon(1, pct("20"), Frequency::Once, CouponLimit::None)], "EUR", 300);
        assert_eq!(
            (credits[0].amount_cents, fees[0].precise_coupons_cents, credits[0].terminated),
            (60, d("40"), true)
        );
        let mut fees = two();
        let credits = apply_coupons(
            &mut fees,
            &[coupon(1, fixed(12), Frequency::Recurring { remaining: 3 }, CouponLimit::None)],
            "EUR",
            300,
        );
        assert_eq!((credits[0].remaining_periods, credits[0].terminated), (Some(2), false));
        let mut fees = two();
        let credits = apply_coupons(
            &mut fees,
            &[coupon(1, pct("20"), Frequency::Recurring { remaining: 1 }, CouponLimit::None)],
            "EUR",
            300,
        );
        assert_eq!((credits[0].remaining_periods, credits[0].terminated), (Some(0), true));
        // A fixed coupon in another currency does not apply.
        let mut usd = coupon(1, fixed(12), Frequency::Forever, CouponLimit::None);
        usd.currency = Some("USD".into());
        assert!(apply_coupons(&mut two(), &[usd], "EUR", 300).is_empty());
    }

    /// Fixed then percentage coupon on two fees with a 20 % tax.
    #[test]
    fn fixed_then_percentage_with_tax() {
        let vat = vec![tax("vat", "20")];
        let mut fees = vec![fee(1000, None, None, vat.clone()), fee(2000, None, None, vat)];
        let credits = apply_coupons(
            &mut fees,
            &[
                coupon(1, fixed(500), Frequency::Forever, CouponLimit::None),
                coupon(2, pct("15"), Frequency::Forever, CouponLimit::None),
            ],
            "EUR",
            3000,
        );
        assert_eq!(credits.iter().map(|c| c.amount_cents).collect::<Vec<_>>(), [500, 375]);
        assert_eq!((fees[0].precise_coupons_cents, fees[1].precise_coupons_cents), (d("291.66667"), d("583.33333")));
        assert_eq!((fee_taxes(&fees[0]).total_cents, fee_taxes(&fees[1]).total_cents), (142, 283));
        let (_, taxes) = invoice_taxes(&fees);
        let t = totals(3000, 875, taxes, 0, 0);
        assert_eq!((taxes, t.total_amount_cents), (425, 2550));
    }

    #[test]
    fn invoice_tax_lines_truncate_their_base() {
        let t10 = tax("t10", "10");
        let t12 = tax("t12", "12");
        let mut fees = vec![fee(1000, None, None, vec![t10.clone()]), fee(2000, None, None, vec![t10, t12])];
        let (lines, total) = invoice_taxes(&fees);
        assert_eq!(
            (lines[0].amount_cents, lines[0].fees_amount_cents, lines[1].amount_cents, total),
            (300, 3000, 240, 540)
        );
        fees[0].precise_coupons_cents = d("333.33");
        fees[1].precise_coupons_cents = d("666.67");
        let (lines, total) = invoice_taxes(&fees);
        assert_eq!(
            (lines[0].amount_cents, lines[1].amount_cents, lines[1].fees_amount_cents, total),
            (200, 160, 1333, 360)
        );
    }

    #[test]
    fn credit_notes_and_prepaid_credits_stop_at_zero() {
        let t = totals(1000, 0, 200, 500, 10_000);
        assert_eq!((t.credit_notes_amount_cents, t.prepaid_credit_amount_cents, t.total_amount_cents), (500, 700, 0));
    }
}
