//! Subscriptions: reading create/update requests, Lago's date rules, the status a new subscription starts in, plan
//! changes (upgrade now, downgrade at the end of the period) and the current billing period.
//!
//! Dates compare in the customer's timezone, as Lago does: a subscription whose `subscription_at` falls on a later
//! day than today there is `pending`; today or before, it is `active` from `subscription_at`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::periods::{BillingTime, Interval, Schedule, local_date};

pub const BILLING_TIMES: [&str; 2] = ["calendar", "anniversary"];
pub const ON_TERMINATION_CREDIT_NOTES: [&str; 4] = ["credit", "refund", "offset", "skip"];
pub const ON_TERMINATION_INVOICES: [&str; 2] = ["generate", "skip"];

/// Lago's termination options, from an update body or the DELETE query: blank is unset, unknown is `invalid_value`.
pub fn termination_options(
    credit_note: Option<&str>,
    invoice: Option<&str>,
) -> Result<(Option<String>, Option<String>), ValidationErrors> {
    let mut e = ValidationErrors::new();
    let pick = |v: Option<&str>, allowed: &[&str], field: &str, e: &mut ValidationErrors| match v.map(str::trim) {
        None | Some("") => None,
        Some(v) if allowed.contains(&v) => Some(v.to_owned()),
        Some(_) => {
            e.add(field, "invalid_value");
            None
        }
    };
    let credit_note = pick(credit_note, &ON_TERMINATION_CREDIT_NOTES, "on_termination_credit_note", &mut e);
    let invoice = pick(invoice, &ON_TERMINATION_INVOICES, "on_termination_invoice", &mut e);
    e.into_result().map(|()| (credit_note, invoice))
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionInput {
    pub on_termination_credit_note: Option<String>,
    pub on_termination_invoice: Option<String>,
    pub external_customer_id: Option<String>,
    pub plan_code: Option<String>,
    pub external_id: Option<String>,
    pub name: Field<String>,
    pub billing_time: Option<String>,
    /// Raw text, checked by `parse_datetime`.
    pub subscription_at: Option<String>,
    pub ending_at: Field<String>,
    pub plan_overrides: Option<Map<String, Value>>,
}

pub fn parse_input(map: &Map<String, Value>) -> Result<SubscriptionInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let trimmed = |v: Field<String>| v.value().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let input = SubscriptionInput {
        on_termination_credit_note: f.string("on_termination_credit_note").value(),
        on_termination_invoice: f.string("on_termination_invoice").value(),
        external_customer_id: trimmed(f.string("external_customer_id")),
        plan_code: trimmed(f.string("plan_code")),
        external_id: trimmed(f.string("external_id")),
        name: f.string("name"),
        billing_time: f.string("billing_time").value(),
        subscription_at: f.string("subscription_at").value(),
        ending_at: f.string("ending_at"),
        plan_overrides: f.object("plan_overrides").value().cloned(),
    };
    f.errors.into_result().map(|()| input)
}

/// An ISO 8601 date-time (with offset, or UTC without), or a date (midnight UTC).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// The validated dates of a new subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub external_id: String,
    pub name: Option<String>,
    pub billing_time: String,
    pub subscription_at: DateTime<Utc>,
    pub ending_at: Option<DateTime<Utc>>,
}

/// Lago's checks on a create request (the customer and plan lookups come before, as 404s).
pub fn validate_new(input: &SubscriptionInput, now: DateTime<Utc>) -> Result<NewSubscription, ValidationErrors> {
    let mut e = ValidationErrors::new();
    if input.external_customer_id.is_none() {
        e.add("external_customer_id", "value_is_mandatory");
    }
    if input.external_id.is_none() {
        e.add("external_id", "value_is_mandatory");
    }
    let billing_time = input.billing_time.clone().unwrap_or_else(|| "calendar".into());
    if !BILLING_TIMES.contains(&billing_time.as_str()) {
        e.add("billing_time", "value_is_invalid");
    }
    let subscription_at = match &input.subscription_at {
        None => Some(now),
        Some(s) => parse_datetime(s),
    };
    if subscription_at.is_none() {
        e.add("subscription_at", "invalid_date");
    }
    let ending_at = check_ending_at(&input.ending_at, subscription_at, now, &mut e);
    e.into_result()?;
    Ok(NewSubscription {
        external_id: input.external_id.clone().unwrap_or_default(),
        name: input.name.clone().value().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        billing_time,
        subscription_at: subscription_at.unwrap_or(now),
        ending_at: ending_at.flatten(),
    })
}

/// `ending_at` must be a date after today and after the subscription date. `None`: not sent; `Some(None)`: cleared.
pub fn check_ending_at(
    sent: &Field<String>,
    subscription_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    e: &mut ValidationErrors,
) -> Option<Option<DateTime<Utc>>> {
    match sent {
        Field::Absent => None,
        Field::Null => Some(None),
        Field::Value(s) if s.trim().is_empty() => Some(None),
        Field::Value(s) => match (parse_datetime(s), subscription_at) {
            (Some(end), Some(start))
                if end.date_naive() > now.date_naive() && end.date_naive() > start.date_naive() =>
            {
                Some(Some(end))
            }
            _ => {
                e.add("ending_at", "invalid_date");
                None
            }
        },
    }
}

/// `pending` when `subscription_at` is on a later day than today in the customer's timezone, else `active`.
pub fn initial_status(subscription_at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> &'static str {
    if subscription_at.with_timezone(&tz).date_naive() > now.with_timezone(&tz).date_naive() {
        "pending"
    } else {
        "active"
    }
}

/// A plan's price over a year, to tell an upgrade from a downgrade.
pub fn yearly_amount_cents(interval: &str, amount_cents: i64) -> i128 {
    let per_year: i128 = match interval {
        "weekly" => 52,
        "monthly" => 12,
        "quarterly" => 4,
        "semiannual" => 2,
        _ => 1,
    };
    i128::from(amount_cents) * per_year
}

/// What a create request for an `external_id` that already has an active subscription means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChange {
    /// Same plan: the existing subscription is returned unchanged.
    Same,
    /// At least as expensive: the current one terminates now and the new one starts now.
    Upgrade,
    /// Cheaper: the new one waits (pending) until the current period ends.
    Downgrade,
}

pub fn plan_change(same_plan: bool, current_yearly: i128, new_yearly: i128) -> PlanChange {
    if same_plan {
        PlanChange::Same
    } else if new_yearly >= current_yearly {
        PlanChange::Upgrade
    } else {
        PlanChange::Downgrade
    }
}

/// The current billing period of an active subscription as UTC instants (see `periods`): from the start of its
/// first local day (not before the subscription started) to the end of its last local day. Charges of a yearly or
/// semiannual plan billed monthly use monthly periods.
pub fn current_period(
    interval: &str,
    bill_charges_monthly: bool,
    billing_time: &str,
    started_at: DateTime<Utc>,
    subscription_at: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: Tz,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let interval = if bill_charges_monthly { "monthly" } else { interval };
    let schedule = Schedule {
        interval: Interval::parse(interval).unwrap_or(Interval::Monthly),
        billing_time: if billing_time == "anniversary" { BillingTime::Anniversary } else { BillingTime::Calendar },
        anchor: local_date(tz, subscription_at),
    };
    let today = local_date(tz, now).max(local_date(tz, started_at));
    let (start, end) = schedule.period_containing(today).to_utc(tz);
    (start.max(started_at), end)
}

/// When the plan's free trial (in days, possibly fractional) ended, once it has: Lago records that instant when
/// the trial is over and leaves it null before.
pub fn trial_ended_at(
    started_at: Option<DateTime<Utc>>,
    trial_days: Option<rust_decimal::Decimal>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use rust_decimal::prelude::ToPrimitive;
    let days = trial_days.filter(|d| *d > rust_decimal::Decimal::ZERO)?;
    let seconds = (days * rust_decimal::Decimal::from(86_400)).round().to_i64()?;
    let end = started_at?.checked_add_signed(chrono::Duration::try_seconds(seconds)?)?;
    (end <= now).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        parse_datetime(s).unwrap()
    }

    fn input(v: Value) -> SubscriptionInput {
        let Value::Object(m) = v else { unreachable!() };
        parse_input(&m).unwrap()
    }

    #[test]
    fn termination_options_are_lagos() {
        assert_eq!(
            termination_options(Some("refund"), Some("skip")).unwrap(),
            (Some("refund".into()), Some("skip".into()))
        );
        assert_eq!(termination_options(Some(""), None).unwrap(), (None, None));
        let e = termination_options(Some("cash"), Some("later")).unwrap_err();
        assert!(e.has("on_termination_credit_note") && e.has("on_termination_invoice"));
    }

    #[test]
    fn trial_ends_after_its_days() {
        let start = t("2026-11-01T10:00:00Z");
        let d = |n: i64| Some(rust_decimal::Decimal::from(n));
        assert_eq!(trial_ended_at(Some(start), d(14), t("2026-11-25T00:00:00Z")), Some(t("2026-11-15T10:00:00Z")));
        assert_eq!(trial_ended_at(Some(start), d(30), t("2026-11-25T00:00:00Z")), None);
        assert_eq!(trial_ended_at(Some(start), d(0), t("2026-11-25T00:00:00Z")), None);
        assert_eq!(trial_ended_at(None, d(1), t("2026-11-25T00:00:00Z")), None);
        let half = Some(rust_decimal::Decimal::new(5, 1));
        assert_eq!(trial_ended_at(Some(start), half, t("2026-11-25T00:00:00Z")), Some(t("2026-11-01T22:00:00Z")));
    }

    #[test]
    fn dates_in_lagos_formats() {
        assert_eq!(t("2026-01-02T03:04:05Z"), t("2026-01-02T04:04:05+01:00"));
        assert_eq!(t("2026-01-02"), t("2026-01-02T00:00:00Z"));
        assert_eq!(t("2026-01-02T03:04:05"), t("2026-01-02T03:04:05Z"));
        assert!(parse_datetime("tomorrow").is_none());
    }

    #[test]
    fn create_rules() {
        let now = t("2026-11-25T12:00:00Z");
        let e = validate_new(
            &input(json!({"billing_time": "weekly", "subscription_at": "soon", "ending_at": "2026-11-24"})),
            now,
        )
        .unwrap_err();
        for (f, c) in [
            ("external_customer_id", "value_is_mandatory"),
            ("external_id", "value_is_mandatory"),
            ("billing_time", "value_is_invalid"),
            ("subscription_at", "invalid_date"),
            ("ending_at", "invalid_date"),
        ] {
            assert_eq!(e.get(f).unwrap_or_default(), [c], "{f}");
        }
        let ok = validate_new(
            &input(json!({"external_customer_id": "c", "external_id": " s1 ", "ending_at": "2027-01-01T00:00:00Z"})),
            now,
        )
        .unwrap();
        assert_eq!((ok.external_id.as_str(), ok.billing_time.as_str(), ok.subscription_at), ("s1", "calendar", now));
        // Ending before the subscription starts is refused.
        let e = validate_new(
            &input(json!({"external_customer_id": "c", "external_id": "s", "subscription_at": "2027-02-01",
                          "ending_at": "2027-01-01"})),
            now,
        )
        .unwrap_err();
        assert!(e.has("ending_at"));
    }

    #[test]
    fn future_day_in_the_customers_timezone_is_pending() {
        let now = t("2026-11-25T22:30:00Z");
        // 23:30 in Paris: tomorrow 00:30 there is a later day; in UTC it is today.
        let at = t("2026-11-25T23:30:00Z");
        assert_eq!(initial_status(at, now, chrono_tz::Europe::Paris), "pending");
        assert_eq!(initial_status(at, now, chrono_tz::UTC), "active");
        assert_eq!(initial_status(t("2025-01-01"), now, chrono_tz::UTC), "active");
    }

    #[test]
    fn upgrades_and_downgrades_compare_yearly_prices() {
        let monthly = yearly_amount_cents("monthly", 1000);
        let yearly = yearly_amount_cents("yearly", 10000);
        assert_eq!(plan_change(false, monthly, yearly), PlanChange::Downgrade);
        assert_eq!(plan_change(false, yearly, monthly), PlanChange::Upgrade);
        assert_eq!(plan_change(true, yearly, monthly), PlanChange::Same);
    }

    #[test]
    fn current_period_in_the_customers_timezone() {
        let now = t("2026-11-25T12:00:00Z");
        let (from, to) = current_period(
            "monthly",
            false,
            "calendar",
            t("2026-11-10T08:00:00Z"),
            t("2026-11-10T08:00:00Z"),
            now,
            chrono_tz::Europe::Paris,
        );
        // Starts when the subscription started; ends at the last second of November in Paris.
        assert_eq!(from, t("2026-11-10T08:00:00Z"));
        assert_eq!(to, t("2026-11-30T22:59:59.999999Z"));
        let (from, to) =
            current_period("yearly", true, "calendar", t("2025-01-01"), t("2025-01-01"), now, chrono_tz::UTC);
        assert_eq!((from, to), (t("2026-11-01"), t("2026-11-30T23:59:59.999999Z")));
    }
}
