//! The month arithmetic of the analytics API (Lago's `Analytics::*` reports) and how a subscription fee becomes
//! monthly recurring revenue.
//!
//! Every report covers the months from the organization's creation month to the current month (UTC), or only the
//! last `months` of them. MRR is the one report that moves money between months: a monthly fee counts in the month
//! of its invoice, a weekly one as `4.33` times the month's average weekly fee, and a longer one is spread over the
//! months it pays for, measured in Lago's `30.44`-day months. Amounts stay exact decimals until each month's
//! total is rounded to whole cents, once.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

/// A plan's billing interval: the catalog's own, which MRR reads to spread a fee.
pub use crate::domain::periods::Interval;

/// The first day of `d`'s month.
pub fn month_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d)
}

/// A month as Lago renders it: its first instant in UTC with milliseconds, `2023-11-01T00:00:00.000Z`.
pub fn render_month(month: NaiveDate) -> String {
    format!("{}T00:00:00.000Z", month.format("%Y-%m-%d"))
}

/// Whole cents, half away from zero: how each month's total is rounded, once, at the end.
pub fn round_cents(amount: Decimal) -> i64 {
    let rounded = amount.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).unwrap_or(if rounded.is_sign_negative() { i64::MIN } else { i64::MAX })
}

/// The months a report covers, first days of month, both ends included. Empty when the organization was created
/// after `now` (a clock behind the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthWindow {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl MonthWindow {
    /// From the organization's creation month to the month of `now`; with `months = N`, only the last N of them
    /// (N <= 1: the current month alone), as Lago's `months` filter.
    pub fn new(organization_created_at: DateTime<Utc>, now: DateTime<Utc>, months: Option<i64>) -> MonthWindow {
        let last = month_of(now.date_naive());
        let mut first = month_of(organization_created_at.date_naive());
        if let Some(n) = months {
            let back = u32::try_from(n.max(1) - 1).ok();
            // A count too large to subtract reaches further back than any organization: no bound.
            if let Some(limit) = back.and_then(|b| last.checked_sub_months(Months::new(b))) {
                first = first.max(limit);
            }
        }
        MonthWindow { first, last }
    }

    pub fn contains(&self, month: NaiveDate) -> bool {
        self.first <= month && month <= self.last
    }

    /// Every month of the window, oldest first.
    pub fn months(&self) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut m = self.first;
        while m <= self.last {
            out.push(m);
            match m.checked_add_months(Months::new(1)) {
                Some(next) => m = next,
                None => break,
            }
        }
        out
    }
}

/// One subscription fee of a finalized invoice, as MRR sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFee {
    pub currency: String,
    /// What the fee brings in: its amount less its coupon share plus its taxes (Lago's MRR amount).
    pub amount: Decimal,
    pub issuing_date: NaiveDate,
    pub interval: Interval,
    /// Whether the plan is paid in advance: its fee is spread forward from the invoice, else backward.
    pub pay_in_advance: bool,
    /// The period the fee bills (`from_datetime`, `to_datetime`).
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Lago's length of a billed period in months: whole days, hours and minutes (seconds dropped), over 30.44 days.
pub fn billed_months(from: DateTime<Utc>, to: DateTime<Utc>) -> Decimal {
    let seconds = (to - from).num_seconds();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, minutes) = (rest / 3_600, rest % 3_600 / 60);
    let days =
        Decimal::from(days) + Decimal::from(hours) / Decimal::from(24) + Decimal::from(minutes) / Decimal::from(1440);
    days / Decimal::new(3044, 2)
}

fn add_months(month: NaiveDate, offset: i64) -> Option<NaiveDate> {
    let n = Months::new(u32::try_from(offset.unsigned_abs()).ok()?);
    if offset >= 0 { month.checked_add_months(n) } else { month.checked_sub_months(n) }
}

fn days_in_month(month: NaiveDate) -> i64 {
    add_months(month, 1).map_or(30, |next| (next - month).num_days())
}

/// How a fee of `billed_months` months (non-integer in general) spreads over calendar months: over
/// `ceil(billed_months)` months, `amount / billed_months` each. In arrears the months run back from the issuing
/// month (included) and the oldest takes what is left; in advance they run forward from it, the first month
/// counts only for the days left in it from the issuing date, and the last takes what is left. The parts always
/// sum to `amount`; a fee of at most one month stays whole in the issuing month.
pub fn spread(
    amount: Decimal,
    billed_months: Decimal,
    issuing_date: NaiveDate,
    pay_in_advance: bool,
) -> Vec<(NaiveDate, Decimal)> {
    let issuing_month = month_of(issuing_date);
    let count = i64::try_from(billed_months.ceil()).unwrap_or(1);
    if billed_months <= Decimal::ZERO || count <= 1 {
        return vec![(issuing_month, amount)];
    }
    let per_month = amount / billed_months;
    let mut parts: Vec<Decimal> = vec![per_month; usize::try_from(count).unwrap_or(1)];
    if pay_in_advance {
        let days_left = add_months(issuing_month, 1).map_or(1, |next| (next - issuing_date).num_days());
        parts[0] = per_month * Decimal::from(days_left) / Decimal::from(days_in_month(issuing_month));
    }
    let last = parts.len() - 1;
    let others: Decimal = parts[..last].iter().copied().sum();
    parts[last] = amount - others;
    let direction = if pay_in_advance { 1 } else { -1 };
    (0i64..).zip(parts).filter_map(|(i, part)| Some((add_months(issuing_month, direction * i)?, part))).collect()
}

/// Lago's average number of weeks in a month.
fn weeks_per_month() -> Decimal {
    Decimal::new(433, 2)
}

/// The unrounded MRR of every (month, currency) the fees reach, before any window is applied.
pub fn mrr(fees: &[SubscriptionFee]) -> BTreeMap<(NaiveDate, String), Decimal> {
    let mut out: BTreeMap<(NaiveDate, String), Decimal> = BTreeMap::new();
    // Weekly fees: the month's average fee per currency, times the weeks of a month.
    let mut weekly: BTreeMap<(NaiveDate, String), (Decimal, u32)> = BTreeMap::new();
    for fee in fees {
        let month = month_of(fee.issuing_date);
        let parts = match fee.interval {
            Interval::Weekly => {
                let entry = weekly.entry((month, fee.currency.clone())).or_default();
                entry.0 += fee.amount;
                entry.1 += 1;
                continue;
            }
            Interval::Monthly => vec![(month, fee.amount)],
            Interval::Quarterly | Interval::Semiannual | Interval::Yearly => match fee.period {
                Some((from, to)) => spread(fee.amount, billed_months(from, to), fee.issuing_date, fee.pay_in_advance),
                None => vec![(month, fee.amount)],
            },
        };
        for (m, part) in parts {
            *out.entry((m, fee.currency.clone())).or_default() += part;
        }
    }
    for (key, (sum, count)) in weekly {
        *out.entry(key).or_default() += sum / Decimal::from(count) * weeks_per_month();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn fee(
        amount: i64,
        issued: &str,
        interval: Interval,
        advance: bool,
        period: Option<(&str, &str)>,
    ) -> SubscriptionFee {
        SubscriptionFee {
            currency: "EUR".into(),
            amount: Decimal::from(amount),
            issuing_date: date(issued),
            interval,
            pay_in_advance: advance,
            period: period.map(|(f, t)| (at(f), at(t))),
        }
    }

    fn rounded(fees: &[SubscriptionFee]) -> Vec<(String, i64)> {
        mrr(fees).into_iter().map(|((m, _), a)| (m.to_string(), round_cents(a))).collect()
    }

    #[test]
    fn months_render_as_lago() {
        assert_eq!(render_month(date("2023-11-01")), "2023-11-01T00:00:00.000Z");
        assert_eq!(month_of(date("2024-02-29")), date("2024-02-01"));
    }

    #[test]
    fn the_window_runs_from_the_creation_month_and_months_keeps_the_last_ones() {
        let created = at("2024-03-17T22:00:00Z");
        let now = at("2025-01-05T10:00:00Z");
        let all = MonthWindow::new(created, now, None);
        assert_eq!((all.first, all.last), (date("2024-03-01"), date("2025-01-01")));
        assert_eq!(all.months().len(), 11);
        assert_eq!(MonthWindow::new(created, now, Some(3)).first, date("2024-11-01"));
        // One, zero or a negative count: the current month alone, as Lago.
        for n in [1, 0, -4] {
            assert_eq!(MonthWindow::new(created, now, Some(n)).first, date("2025-01-01"));
        }
        // More months than the organization has: from its creation.
        assert_eq!(MonthWindow::new(created, now, Some(100)).first, date("2024-03-01"));
        assert_eq!(MonthWindow::new(created, now, Some(i64::MAX)).first, date("2024-03-01"));
        let w = MonthWindow::new(created, now, Some(2));
        assert!(w.contains(date("2024-12-01")) && w.contains(date("2025-01-01")) && !w.contains(date("2024-11-01")));
        // A clock behind the organization's creation: nothing.
        assert!(MonthWindow::new(now, created, None).months().is_empty());
    }

    #[test]
    fn billed_months_count_days_hours_and_minutes_over_30_44_days() {
        // A calendar quarter ending a second before midnight: 89 days 23:59 (the seconds are dropped).
        let q = billed_months(at("2025-01-01T00:00:00Z"), at("2025-03-31T23:59:59Z"));
        let expected = (Decimal::from(89) + dec("23") / dec("24") + dec("59") / dec("1440")) / dec("30.44");
        assert_eq!(q, expected);
        assert_eq!(q.ceil(), Decimal::from(3));
        // 30 days 12:00 exactly: 30.5 / 30.44.
        assert_eq!(billed_months(at("2025-01-01T00:00:00Z"), at("2025-01-31T12:00:00Z")), dec("30.5") / dec("30.44"));
    }

    #[test]
    fn a_monthly_fee_counts_whole_in_the_month_of_its_invoice() {
        let fees = [
            fee(1000, "2025-02-01", Interval::Monthly, false, Some(("2025-01-01T00:00:00Z", "2025-01-31T23:59:59Z"))),
            fee(500, "2025-02-20", Interval::Monthly, true, None),
        ];
        assert_eq!(rounded(&fees), vec![("2025-02-01".into(), 1500)]);
    }

    #[test]
    fn weekly_fees_are_the_months_average_times_4_33() {
        // Lago: the fees of the month summed, divided by their number, times 4.33.
        let fees = [
            fee(1000, "2025-03-03", Interval::Weekly, false, None),
            fee(2000, "2025-03-10", Interval::Weekly, false, None),
            fee(700, "2025-04-07", Interval::Weekly, false, None),
        ];
        // March: 3000 / 2 × 4.33 = 6495; April: 700 × 4.33 = 3031.
        assert_eq!(rounded(&fees), vec![("2025-03-01".into(), 6495), ("2025-04-01".into(), 3031)]);
    }

    #[test]
    fn a_quarter_in_arrears_spreads_evenly_over_the_three_months_back_from_its_invoice() {
        // Billed months 89.99931 / 30.44 = 2.95661: April and March get 9000 / 2.95661 = 3044.02 each, February the
        // rest, 2911.95; the parts sum to the fee.
        let bm = billed_months(at("2025-01-01T00:00:00Z"), at("2025-03-31T23:59:59Z"));
        let parts = spread(Decimal::from(9000), bm, date("2025-04-01"), false);
        let months: Vec<String> = parts.iter().map(|(m, _)| m.to_string()).collect();
        assert_eq!(months, ["2025-04-01", "2025-03-01", "2025-02-01"]);
        assert_eq!(parts[0].1, Decimal::from(9000) / bm);
        assert_eq!(parts[1].1, parts[0].1);
        assert_eq!(parts.iter().map(|p| p.1).sum::<Decimal>(), Decimal::from(9000));
        let cents: Vec<i64> = parts.iter().map(|p| round_cents(p.1)).collect();
        assert_eq!(cents, vec![3044, 3044, 2912]);
    }

    #[test]
    fn a_year_in_advance_starts_with_the_days_left_in_the_issuing_month_and_the_last_month_takes_the_rest() {
        // Issued 15 January for a year: 17 of January's 31 days are left. Billed months 364.99931 / 30.44 = 11.99078,
        // so 12 months from January to December; January gets (36500 / 11.99078) × 17/31, February to November
        // 36500 / 11.99078 each, December what is left.
        let bm = billed_months(at("2025-01-15T00:00:00Z"), at("2026-01-14T23:59:59Z"));
        let parts = spread(Decimal::from(36500), bm, date("2025-01-15"), true);
        assert_eq!(parts.len(), 12);
        assert_eq!((parts[0].0, parts[11].0), (date("2025-01-01"), date("2025-12-01")));
        let per_month = Decimal::from(36500) / bm;
        assert_eq!(parts[0].1, per_month * Decimal::from(17) / Decimal::from(31));
        assert!(parts[1..11].iter().all(|p| p.1 == per_month));
        assert_eq!(parts[11].1, Decimal::from(36500) - per_month * (Decimal::from(10) + dec("17") / dec("31")));
        assert_eq!(parts.iter().map(|p| p.1).sum::<Decimal>(), Decimal::from(36500));
        // 3044.01 a month: 1669.29 in January, 4390.65 left for December.
        let cents: Vec<i64> = parts.iter().map(|p| round_cents(p.1)).collect();
        assert_eq!((cents[0], cents[1], cents[11]), (1669, 3044, 4391));
    }

    #[test]
    fn a_half_year_in_advance_sums_to_its_fee_with_one_remainder() {
        // Lago applies remainder formulas to several late months of a semiannual fee paid in advance (their sum
        // exceeds the fee); here only the last month takes the rest.
        let fees = [fee(
            60000,
            "2025-01-01",
            Interval::Semiannual,
            true,
            Some(("2025-01-01T00:00:00Z", "2025-06-30T23:59:59Z")),
        )];
        let all = mrr(&fees);
        assert_eq!(all.len(), 6);
        assert_eq!(all.values().copied().sum::<Decimal>(), Decimal::from(60000));
        // 180.99931 / 30.44 = 5.94610 months: 10090.65 a month from January to May, 9546.77 in June.
        let cents: Vec<i64> = all.values().map(|a| round_cents(*a)).collect();
        assert_eq!(cents, vec![10091, 10091, 10091, 10091, 10091, 9547]);
    }

    #[test]
    fn a_fee_of_at_most_a_month_or_without_a_period_stays_in_its_issuing_month() {
        let short = spread(Decimal::from(800), dec("0.5"), date("2025-05-20"), true);
        assert_eq!(short, vec![(date("2025-05-01"), Decimal::from(800))]);
        let fees = [fee(1200, "2025-07-09", Interval::Yearly, false, None)];
        assert_eq!(rounded(&fees), vec![("2025-07-01".into(), 1200)]);
    }

    #[test]
    fn mrr_sums_per_month_and_currency_and_rounds_once() {
        // Two quarterly fees of 131 in arrears issued the same day: 131 / 2.95661 = 44.307 a month each. April's
        // total 88.615 rounds to 89 (rounding each part first would give 88); the USD fee stays apart.
        let period = Some(("2025-01-01T00:00:00Z", "2025-03-31T23:59:59Z"));
        let mut usd = fee(131, "2025-04-01", Interval::Quarterly, false, period);
        usd.currency = "USD".into();
        let eur = fee(131, "2025-04-01", Interval::Quarterly, false, period);
        let all = mrr(&[eur.clone(), eur, usd]);
        assert_eq!(round_cents(all[&(date("2025-04-01"), "EUR".to_owned())]), 89);
        assert_eq!(round_cents(all[&(date("2025-04-01"), "USD".to_owned())]), 44);
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_cents(dec("10.5")), 11);
        assert_eq!(round_cents(dec("-10.5")), -11);
        assert_eq!(round_cents(dec("10.49999")), 10);
    }
}
