//! Credit notes: what a customer gets back when a subscription paid in advance ends before its period does, and how
//! available credit notes pay later invoices. Pure arithmetic, in Lago's order:
//!
//! 1. The unused part of the subscription fee: the plan's price per day of the full period times the days left
//!    after the termination day, at most what the fee charged, less what earlier credit notes gave back on it. Kept
//!    to five decimals (truncated).
//! 2. The coupons the fee carried shrink the credit by the same share (`coupons_adjustment`).
//! 3. Each tax of the fee applies to what remains; each line is rounded alone, the total once.
//! 4. The credit (default behaviour, `credit`) is the rounded total; it becomes the note's balance, which later
//!    invoices of the same currency consume after their taxes, oldest note first.

use rust_decimal::{Decimal, RoundingStrategy};

fn round_cents(d: Decimal) -> i64 {
    i64::try_from(d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)).unwrap_or(i64::MAX)
}

/// The subscription fee a termination credits, and the period around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminatedPeriod {
    /// The plan's price for a full period.
    pub plan_amount_cents: i64,
    /// Days of the full billing period.
    pub period_days: i64,
    /// Days of the period after the termination day (the termination day itself was used).
    pub remaining_days: i64,
    /// What the subscription fee charged, and the coupon share it carried (five decimals).
    pub fee_amount_cents: i64,
    pub fee_precise_coupons_cents: Decimal,
    /// What earlier credit notes already gave back on this fee.
    pub credited_cents: Decimal,
    /// The fee's taxes: code and rate in percent.
    pub taxes: Vec<(String, Decimal)>,
}

/// One tax line of a credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteTax {
    pub code: String,
    pub rate: Decimal,
    pub base_amount_cents: i64,
    pub amount_cents: i64,
}

/// A credit note's money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteAmounts {
    /// The credited part of the fee, before coupons and taxes.
    pub item_precise_cents: Decimal,
    pub item_cents: i64,
    pub precise_coupons_adjustment_cents: Decimal,
    pub coupons_adjustment_cents: i64,
    pub taxes: Vec<CreditNoteTax>,
    pub precise_taxes_cents: Decimal,
    pub taxes_cents: i64,
    pub taxes_rate: Decimal,
    pub sub_total_excluding_taxes_cents: i64,
    /// What the customer gets back (all of it as credit).
    pub total_cents: i64,
}

/// The credit note for the unused part of `period`, if there is anything to give back.
pub fn termination_credit(period: &TerminatedPeriod) -> Option<CreditNoteAmounts> {
    if period.fee_amount_cents <= 0 || period.period_days <= 0 || period.remaining_days <= 0 {
        return None;
    }
    let unused = Decimal::from(period.plan_amount_cents) * Decimal::from(period.remaining_days)
        / Decimal::from(period.period_days);
    let item = (unused.min(Decimal::from(period.fee_amount_cents)) - period.credited_cents).trunc_with_scale(5);
    if item <= Decimal::ZERO {
        return None;
    }
    let share = item / Decimal::from(period.fee_amount_cents);
    let coupons = period.fee_precise_coupons_cents * share;
    let base = item - coupons;
    let mut taxes = Vec::new();
    let mut precise_taxes = Decimal::ZERO;
    for (code, rate) in &period.taxes {
        let amount = base * rate / Decimal::ONE_HUNDRED;
        precise_taxes += amount;
        taxes.push(CreditNoteTax {
            code: code.clone(),
            rate: *rate,
            base_amount_cents: round_cents(base),
            amount_cents: round_cents(amount),
        });
    }
    let total = round_cents(base + precise_taxes);
    if total <= 0 {
        return None;
    }
    Some(CreditNoteAmounts {
        item_precise_cents: item,
        item_cents: round_cents(item),
        precise_coupons_adjustment_cents: coupons,
        coupons_adjustment_cents: round_cents(coupons),
        taxes_rate: period.taxes.iter().map(|(_, r)| *r).sum(),
        taxes,
        precise_taxes_cents: precise_taxes,
        taxes_cents: round_cents(precise_taxes),
        sub_total_excluding_taxes_cents: round_cents(base),
        total_cents: total,
    })
}

/// How much of each available credit note (balances, oldest first) pays an invoice due `invoice_total_cents`.
pub fn consume(balances: &[i64], invoice_total_cents: i64) -> Vec<i64> {
    let mut left = invoice_total_cents.max(0);
    balances
        .iter()
        .map(|&b| {
            let take = b.clamp(0, left);
            left -= take;
            take
        })
        .collect()
}

/// A credit note's number: its invoice's number and its rank among that invoice's notes.
pub fn number(invoice_number: &str, sequential_id: i64) -> String {
    format!("{invoice_number}-CN{sequential_id:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn march(remaining_days: i64) -> TerminatedPeriod {
        TerminatedPeriod {
            plan_amount_cents: 3100,
            period_days: 31,
            remaining_days,
            fee_amount_cents: 3100,
            fee_precise_coupons_cents: Decimal::ZERO,
            credited_cents: Decimal::ZERO,
            taxes: vec![],
        }
    }

    #[test]
    fn the_days_after_the_termination_day_come_back() {
        // Terminated on 10 March: 21 days of 31 at 1.00 a day.
        let c = termination_credit(&march(21)).unwrap();
        assert_eq!((c.item_cents, c.total_cents, c.taxes_cents), (2100, 2100, 0));
        // On the last day, nothing is left.
        assert_eq!(termination_credit(&march(0)), None);
    }

    #[test]
    fn coupons_shrink_the_credit_and_taxes_apply_to_the_rest() {
        // 49.00 a month, 30 days, 12 left: 19.60. The fee carried 9.80 of coupon: a share of 0.4 is 3.92. VAT 20 %
        // and a 5.5 % tax on 15.68: 3.136 and 0.8624. Total 15.68 + 3.9984 = 19.6784 → 19.68.
        let p = TerminatedPeriod {
            plan_amount_cents: 4900,
            period_days: 30,
            remaining_days: 12,
            fee_amount_cents: 4900,
            fee_precise_coupons_cents: d("980"),
            credited_cents: Decimal::ZERO,
            taxes: vec![("vat".into(), d("20")), ("local".into(), d("5.5"))],
        };
        let c = termination_credit(&p).unwrap();
        assert_eq!(c.item_precise_cents, d("1960"));
        assert_eq!((c.precise_coupons_adjustment_cents, c.coupons_adjustment_cents), (d("392"), 392));
        assert_eq!(c.sub_total_excluding_taxes_cents, 1568);
        assert_eq!(c.taxes.iter().map(|t| t.amount_cents).collect::<Vec<_>>(), vec![314, 86]);
        assert_eq!((c.taxes_cents, c.total_cents), (400, 1968));
        assert_eq!(c.taxes_rate, d("25.5"));
    }

    #[test]
    fn the_credit_never_exceeds_what_the_fee_charged_less_earlier_notes() {
        // A prorated first fee of 10.00 on a 31.00 plan, 20 days left: 20.00 unused but only 10.00 charged, of
        // which 4.00 were credited already.
        let p = TerminatedPeriod { fee_amount_cents: 1000, credited_cents: d("400"), ..march(20) };
        assert_eq!(termination_credit(&p).unwrap().total_cents, 600);
        // Thirds are truncated to five places.
        let p = TerminatedPeriod { plan_amount_cents: 1000, period_days: 30, fee_amount_cents: 1000, ..march(1) };
        assert_eq!(termination_credit(&p).unwrap().item_precise_cents, d("33.33333"));
    }

    #[test]
    fn notes_pay_invoices_oldest_first_and_never_below_zero() {
        assert_eq!(consume(&[500, 800], 1000), vec![500, 500]);
        assert_eq!(consume(&[500], 200), vec![200]);
        assert_eq!(consume(&[500], 0), vec![0]);
        assert_eq!(number("ACM-001-004", 1), "ACM-001-004-CN001");
    }
}
