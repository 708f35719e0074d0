//! Billing periods, as Lago computes them: on local dates in the customer's timezone (else the organization's), then
//! converted to UTC instants for storage and for selecting events.
//!
//! - Calendar periods follow the calendar (weeks start on Monday, quarters in January, April, July and October).
//! - Anniversary periods start in each anchor month on the anchor day, or on the month's last day when the month is
//!   shorter; a period ends the day before the next one starts. A short month never shifts later periods.
//! - A period runs from its first local day at 00:00 to its last local day at 23:59:59.999999, so its length in UTC
//!   changes across daylight-saving changes while its day count does not.
//! - Day counts for proration are taken on wall-clock time in the timezone and rounded up to whole days.

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rust_decimal::Decimal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Weekly,
    Monthly,
    Quarterly,
    Semiannual,
    Yearly,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        Some(match s {
            "weekly" => Interval::Weekly,
            "monthly" => Interval::Monthly,
            "quarterly" => Interval::Quarterly,
            "semiannual" => Interval::Semiannual,
            "yearly" => Interval::Yearly,
            _ => return None,
        })
    }

    /// Months per period; `None` for weeks.
    fn months(self) -> Option<u32> {
        match self {
            Interval::Weekly => None,
            Interval::Monthly => Some(1),
            Interval::Quarterly => Some(3),
            Interval::Semiannual => Some(6),
            Interval::Yearly => Some(12),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingTime {
    Calendar,
    Anniversary,
}

/// A period as local dates, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    /// Its days, both ends included.
    pub fn days(&self) -> u32 {
        u32::try_from((self.end - self.start).num_days() + 1).unwrap_or(0)
    }

    /// The instants it covers in `tz`: from local 00:00 of its first day to local 23:59:59.999999 of its last.
    pub fn to_utc(&self, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = self.end.checked_add_days(Days::new(1)).unwrap_or(self.end);
        (local_midnight(tz, self.start), local_midnight(tz, next) - Duration::microseconds(1))
    }
}

/// How a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Interval,
    pub billing_time: BillingTime,
    /// The local date of `subscription_at`: it fixes the anniversary day, weekday and month.
    pub anchor: NaiveDate,
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = first.and_then(|d| d.checked_add_months(Months::new(1)));
    match (first, next) {
        (Some(f), Some(n)) => (n - f).num_days() as u32,
        _ => 31,
    }
}

/// Day `day` of the month, or the month's last day when it is shorter.
fn clamped(year: i32, month: u32, day: u32) -> NaiveDate {
    let d = day.min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, d).unwrap_or(NaiveDate::MIN)
}

/// Month index since year 0, for month arithmetic.
fn month_index(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

fn from_month_index(i: i64, day: u32) -> NaiveDate {
    clamped(i.div_euclid(12) as i32, i.rem_euclid(12) as u32 + 1, day)
}

impl Schedule {
    /// The period holding local date `d`.
    pub fn period_containing(&self, d: NaiveDate) -> Period {
        match (self.interval.months(), self.billing_time) {
            (None, BillingTime::Calendar) => week_from(d, Weekday::Mon),
            (None, BillingTime::Anniversary) => week_from(d, self.anchor.weekday()),
            (Some(step), BillingTime::Calendar) => {
                let step = i64::from(step);
                let start_index = month_index(d) - i64::from(d.month0()) % step;
                let start = from_month_index(start_index, 1);
                let end = from_month_index(start_index + step, 1).pred_opt().unwrap_or(start);
                Period { start, end }
            }
            (Some(step), BillingTime::Anniversary) => {
                let step = i64::from(step);
                let day = self.anchor.day();
                let offset = (month_index(d) - month_index(self.anchor)).rem_euclid(step);
                let mut start_index = month_index(d) - offset;
                // In the anchor month itself the period may not have started yet (e.g. Mar 10 with a 15th anchor).
                if from_month_index(start_index, day) > d {
                    start_index -= step;
                }
                let start = from_month_index(start_index, day);
                let end = from_month_index(start_index + step, day).pred_opt().unwrap_or(start);
                Period { start, end }
            }
        }
    }

    /// Lago's "one interval before the billing date", which selects the period an in-arrears invoice bills.
    fn base_date(&self, billing: NaiveDate) -> NaiveDate {
        match self.interval.months() {
            None => billing - Duration::days(7),
            Some(step) => {
                let back = billing.checked_sub_months(Months::new(step)).unwrap_or(billing);
                let anchor_day = self.anchor.day();
                let last_of_month = billing.day() == days_in_month(billing.year(), billing.month());
                if self.billing_time == BillingTime::Anniversary && last_of_month && billing.day() < anchor_day {
                    clamped(back.year(), back.month(), anchor_day)
                } else {
                    back
                }
            }
        }
    }

    /// The periods an invoice issued on local date `billing` covers: the subscription fee (the period that ended for
    /// plans paid in arrears, the one starting for plans paid in advance) and the charges (always the period that
    /// ended).
    pub fn billed_on(&self, billing: NaiveDate, pay_in_advance: bool) -> Billed {
        let previous = self.period_containing(self.base_date(billing));
        let fee = if pay_in_advance { self.period_containing(billing) } else { previous };
        Billed { fee, charges: previous }
    }

    /// Days of the full period `p`, the denominator of proration: a calendar year counts the days of its year.
    pub fn duration_days(&self, p: &Period) -> u32 {
        match (self.interval, self.billing_time) {
            (Interval::Yearly, BillingTime::Calendar) => {
                if NaiveDate::from_ymd_opt(p.start.year(), 2, 29).is_some() {
                    366
                } else {
                    365
                }
            }
            _ => p.days(),
        }
    }

    /// True when local date `d` is a boundary on which the billing clock issues this schedule's invoice.
    pub fn is_billing_day(&self, d: NaiveDate) -> bool {
        self.period_containing(d).start == d
    }
}

fn week_from(d: NaiveDate, first_day: Weekday) -> Period {
    let back = (7 + d.weekday().num_days_from_monday() - first_day.num_days_from_monday()) % 7;
    let start = d - Duration::days(i64::from(back));
    Period { start, end: start + Duration::days(6) }
}

/// The periods one invoice covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billed {
    pub fee: Period,
    pub charges: Period,
}

/// Local midnight of `d` in `tz`, as UTC. A midnight skipped by a daylight-saving change is the first valid instant
/// after it; an ambiguous one is the earlier.
pub fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let naive = NaiveDateTime::new(d, NaiveTime::MIN);
    for minutes in (0..=180).step_by(30) {
        if let Some(t) = tz.from_local_datetime(&(naive + Duration::minutes(minutes))).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    naive.and_utc()
}

/// The local date of an instant.
pub fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// Whole days from `from` to `to` on the wall clock of `tz`, rounded up; an end at exactly local midnight counts
/// its day (Lago adds one second).
pub fn day_count(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
    let wall = |t: DateTime<Utc>| t.with_timezone(&tz).naive_local();
    let mut span = wall(to) - wall(from);
    if wall(to).time() == NaiveTime::MIN {
        span += Duration::seconds(1);
    }
    let micros = span.num_microseconds().unwrap_or(0).max(0);
    let day = 86_400_000_000i64;
    u32::try_from((micros + day - 1) / day).unwrap_or(0)
}

/// The subscription fee for `days` of a period of `duration` days: `amount × days / duration`, unrounded.
pub fn prorate(amount: Decimal, days: u32, duration: u32) -> Decimal {
    if duration == 0 {
        return Decimal::ZERO;
    }
    amount * Decimal::from(days) / Decimal::from(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::RoundingStrategy;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn p(start: &str, end: &str) -> Period {
        Period { start: date(start), end: date(end) }
    }

    fn sched(interval: Interval, billing_time: BillingTime, anchor: &str) -> Schedule {
        Schedule { interval, billing_time, anchor: date(anchor) }
    }

    fn cents(d: Decimal) -> Decimal {
        d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
    }

    #[test]
    fn calendar_periods() {
        use BillingTime::Calendar;
        let d = date("2022-05-18"); // a Wednesday
        assert_eq!(sched(Interval::Weekly, Calendar, "2020-01-01").period_containing(d), p("2022-05-16", "2022-05-22"));
        assert_eq!(
            sched(Interval::Monthly, Calendar, "2020-01-01").period_containing(d),
            p("2022-05-01", "2022-05-31")
        );
        assert_eq!(
            sched(Interval::Quarterly, Calendar, "2020-01-01").period_containing(d),
            p("2022-04-01", "2022-06-30")
        );
        assert_eq!(
            sched(Interval::Semiannual, Calendar, "2020-01-01").period_containing(d),
            p("2022-01-01", "2022-06-30")
        );
        assert_eq!(sched(Interval::Yearly, Calendar, "2020-01-01").period_containing(d), p("2022-01-01", "2022-12-31"));
        assert_eq!(
            sched(Interval::Monthly, Calendar, "2020-01-01").period_containing(date("2024-02-10")),
            p("2024-02-01", "2024-02-29")
        );
    }

    fn sequence(s: &Schedule, from: &str, n: usize) -> Vec<Period> {
        let mut out = Vec::new();
        let mut d = date(from);
        for _ in 0..n {
            let period = s.period_containing(d);
            out.push(period);
            d = period.end + Duration::days(1);
        }
        out
    }

    #[test]
    fn anniversary_on_the_31st_never_drifts() {
        let s = sched(Interval::Monthly, BillingTime::Anniversary, "2023-01-31");
        assert_eq!(
            sequence(&s, "2023-01-31", 6),
            vec![
                p("2023-01-31", "2023-02-27"),
                p("2023-02-28", "2023-03-30"),
                p("2023-03-31", "2023-04-29"),
                p("2023-04-30", "2023-05-30"),
                p("2023-05-31", "2023-06-29"),
                p("2023-06-30", "2023-07-30"),
            ]
        );
        let s = sched(Interval::Monthly, BillingTime::Anniversary, "2024-01-30");
        assert_eq!(
            sequence(&s, "2024-01-30", 3),
            vec![p("2024-01-30", "2024-02-28"), p("2024-02-29", "2024-03-29"), p("2024-03-30", "2024-04-29")]
        );
    }

    #[test]
    fn anniversary_on_leap_day_and_longer_intervals() {
        let s = sched(Interval::Yearly, BillingTime::Anniversary, "2024-02-29");
        let seq = sequence(&s, "2024-02-29", 5);
        assert_eq!(seq[0], p("2024-02-29", "2025-02-27"));
        assert_eq!(seq[0].days(), 365);
        assert_eq!(seq[3], p("2027-02-28", "2028-02-28"));
        assert_eq!(seq[3].days(), 366);
        assert_eq!(seq[4].start, date("2028-02-29"));

        let q = sched(Interval::Quarterly, BillingTime::Anniversary, "2023-11-30");
        let days: Vec<u32> = sequence(&q, "2023-11-30", 5).iter().map(Period::days).collect();
        assert_eq!(days, [91, 91, 92, 92, 90]);
        let h = sched(Interval::Semiannual, BillingTime::Anniversary, "2023-08-31");
        assert_eq!(
            sequence(&h, "2023-08-31", 3),
            vec![p("2023-08-31", "2024-02-28"), p("2024-02-29", "2024-08-30"), p("2024-08-31", "2025-02-27")]
        );
        // Mid-month dates before the anchor day belong to the previous period.
        let m = sched(Interval::Monthly, BillingTime::Anniversary, "2022-01-15");
        assert_eq!(m.period_containing(date("2022-03-10")), p("2022-02-15", "2022-03-14"));
    }

    #[test]
    fn weekly_anniversary_starts_on_the_anchor_weekday() {
        let s = sched(Interval::Weekly, BillingTime::Anniversary, "2021-02-02"); // a Tuesday
        assert_eq!(s.period_containing(date("2022-03-08")), p("2022-03-08", "2022-03-14"));
        assert_eq!(s.period_containing(date("2022-03-07")), p("2022-03-01", "2022-03-07"));
    }

    /// Lago's billing table: which periods an invoice issued on a boundary bills.
    #[test]
    fn billed_periods_follow_lago() {
        use BillingTime::{Anniversary, Calendar};
        let cases = [
            (
                Interval::Monthly,
                Calendar,
                "2021-02-02",
                "2022-03-01",
                false,
                ("2022-02-01", "2022-02-28"),
                ("2022-02-01", "2022-02-28"),
            ),
            (
                Interval::Monthly,
                Calendar,
                "2021-02-02",
                "2022-03-01",
                true,
                ("2022-03-01", "2022-03-31"),
                ("2022-02-01", "2022-02-28"),
            ),
            (
                Interval::Monthly,
                Anniversary,
                "2021-02-02",
                "2022-03-02",
                false,
                ("2022-02-02", "2022-03-01"),
                ("2022-02-02", "2022-03-01"),
            ),
            (
                Interval::Monthly,
                Anniversary,
                "2021-02-02",
                "2022-03-02",
                true,
                ("2022-03-02", "2022-04-01"),
                ("2022-02-02", "2022-03-01"),
            ),
            (
                Interval::Quarterly,
                Calendar,
                "2021-02-02",
                "2022-07-01",
                true,
                ("2022-07-01", "2022-09-30"),
                ("2022-04-01", "2022-06-30"),
            ),
            (
                Interval::Quarterly,
                Anniversary,
                "2021-02-02",
                "2022-05-02",
                false,
                ("2022-02-02", "2022-05-01"),
                ("2022-02-02", "2022-05-01"),
            ),
            (
                Interval::Semiannual,
                Anniversary,
                "2021-11-02",
                "2022-05-02",
                false,
                ("2021-11-02", "2022-05-01"),
                ("2021-11-02", "2022-05-01"),
            ),
            (
                Interval::Yearly,
                Calendar,
                "2019-02-02",
                "2022-01-01",
                false,
                ("2021-01-01", "2021-12-31"),
                ("2021-01-01", "2021-12-31"),
            ),
            (
                Interval::Yearly,
                Anniversary,
                "2021-02-02",
                "2022-02-02",
                true,
                ("2022-02-02", "2023-02-01"),
                ("2021-02-02", "2022-02-01"),
            ),
            (
                Interval::Weekly,
                Calendar,
                "2021-02-02",
                "2022-03-07",
                true,
                ("2022-03-07", "2022-03-13"),
                ("2022-02-28", "2022-03-06"),
            ),
            (
                Interval::Weekly,
                Anniversary,
                "2021-02-02",
                "2022-03-09",
                true,
                ("2022-03-08", "2022-03-14"),
                ("2022-03-01", "2022-03-07"),
            ),
            // Anchor Jan 31, billed on Feb 28: the month-end rule goes back to Jan 31.
            (
                Interval::Monthly,
                Anniversary,
                "2022-01-31",
                "2022-02-28",
                false,
                ("2022-01-31", "2022-02-27"),
                ("2022-01-31", "2022-02-27"),
            ),
        ];
        for (interval, bt, anchor, billing, advance, fee, charges) in cases {
            let billed = sched(interval, bt, anchor).billed_on(date(billing), advance);
            assert_eq!(billed.fee, p(fee.0, fee.1), "{interval:?} {bt:?} {billing} advance={advance}: fee");
            assert_eq!(billed.charges, p(charges.0, charges.1), "{interval:?} {bt:?} {billing}: charges");
        }
    }

    #[test]
    fn periods_in_utc_follow_the_timezone() {
        let march = p("2024-03-01", "2024-03-31");
        let fmt = |(a, b): (DateTime<Utc>, DateTime<Utc>)| (a.to_rfc3339(), b.to_rfc3339());
        assert_eq!(
            fmt(march.to_utc(chrono_tz::America::New_York)),
            ("2024-03-01T05:00:00+00:00".into(), "2024-04-01T03:59:59.999999+00:00".into())
        );
        assert_eq!(
            fmt(march.to_utc(chrono_tz::Europe::Paris)),
            ("2024-02-29T23:00:00+00:00".into(), "2024-03-31T21:59:59.999999+00:00".into())
        );
        assert_eq!(
            fmt(march.to_utc(chrono_tz::Asia::Kolkata)),
            ("2024-02-29T18:30:00+00:00".into(), "2024-03-31T18:29:59.999999+00:00".into())
        );
        // A New York invoice issued at 00:00 UTC on March 1 is still February 28 locally: it bills January.
        let s = sched(Interval::Monthly, BillingTime::Calendar, "2021-01-01");
        let billing = local_date(chrono_tz::America::New_York, "2022-03-01T00:00:00Z".parse().unwrap());
        assert_eq!(s.billed_on(billing, false).fee, p("2022-01-01", "2022-01-31"));
    }

    #[test]
    fn day_counts_ignore_daylight_saving() {
        let paris = chrono_tz::Europe::Paris;
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(day_count(paris, t("2023-08-31T23:10:00Z"), t("2023-09-30T22:59:59Z")), 30);
        let (from, to) = p("2023-10-01", "2023-10-31").to_utc(paris);
        assert_eq!(day_count(paris, from, to), 31);
        let (from, to) = p("2024-03-01", "2024-03-31").to_utc(paris);
        assert_eq!(day_count(paris, from, to), 31);
        assert_eq!(day_count(chrono_tz::UTC, t("2022-12-01T00:00:00Z"), t("2022-12-07T00:00:00Z")), 7);
        let (from, to) = p("2022-03-15", "2022-03-31").to_utc(chrono_tz::UTC);
        assert_eq!(day_count(chrono_tz::UTC, from, to), 17);
    }

    /// Lago's proration examples, amount 100 cents.
    #[test]
    fn subscription_fee_proration() {
        let hundred = Decimal::from(100);
        assert_eq!(cents(prorate(hundred, 17, 31)), Decimal::from(55));
        assert_eq!(cents(prorate(hundred, 5, 7)), Decimal::from(71));
        let yearly = sched(Interval::Yearly, BillingTime::Calendar, "2022-03-15");
        let year = yearly.period_containing(date("2022-03-15"));
        let (_, to) = year.to_utc(chrono_tz::UTC);
        let days = day_count(chrono_tz::UTC, local_midnight(chrono_tz::UTC, date("2022-03-15")), to);
        assert_eq!((days, yearly.duration_days(&year)), (292, 365));
        assert_eq!(cents(prorate(hundred, days, 365)), Decimal::from(80));
        // Terminated on March 20 (in arrears): 20 of 31 days; weekly Monday to Wednesday: 3 of 7.
        assert_eq!(cents(prorate(hundred, 20, 31)), Decimal::from(65));
        assert_eq!(cents(prorate(hundred, 3, 7)), Decimal::from(43));
        assert_eq!(cents(prorate(Decimal::from(3100), 17, 31)), Decimal::from(1700));
    }

    #[test]
    fn billing_days() {
        let s = sched(Interval::Monthly, BillingTime::Anniversary, "2023-01-31");
        assert!(s.is_billing_day(date("2023-02-28")));
        assert!(s.is_billing_day(date("2024-02-29")));
        assert!(!s.is_billing_day(date("2023-03-01")));
        let c = sched(Interval::Quarterly, BillingTime::Calendar, "2023-01-31");
        assert!(c.is_billing_day(date("2023-04-01")) && !c.is_billing_day(date("2023-05-01")));
    }
}
