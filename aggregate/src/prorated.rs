//! Prorated units of a recurring `sum` or `unique_count` charge, as Lago computes them: each unit counts for the
//! share of the billing period it was present, in whole days of the customer's timezone.
//!
//! - Sum: an event in the period counts `value × (days from its day to the period's last day, both included) /
//!   period days`; what was summed before the period counts at the share of the period the subscription was billed
//!   (all of it, unless it started or ended within).
//! - Unique count: each value counts from the day it was added (or the period's first day) to the day it was
//!   removed (included) or the period's last day, over the period's days. A removal followed the same day by an
//!   add of the same value is ignored; a repeated add or remove changes nothing.
//!
//! Both keep each event's full and prorated units in time order, which the prorated graduated model prices.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

use crate::details::BucketKey;
use crate::jobs::{JobError, JobSpec};
use crate::semantics::{AggregationType, EventRow, Window, filters_of, group_of, plain_decimal, property_text};
use crate::store::{EventStore, ScanFilter};

/// The prorated total of one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prorated {
    /// Prorated units, rounded up to five places as Lago does.
    pub units: Decimal,
    /// The same units without proration.
    pub full_units: Decimal,
    /// `(full, prorated)` units of each contribution in time order (the carried-over sum first).
    pub per_event: Vec<(Decimal, Decimal)>,
    pub count: u64,
}

fn ceil5(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(5, RoundingStrategy::ToPositiveInfinity)
}

fn local_day(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// Lago's day count between two instants in `tz`: the elapsed time corrected by the change of UTC offset, in days
/// rounded up; an end at local midnight counts its day.
pub fn date_diff_days(from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> i64 {
    use chrono::{Offset, TimeZone};
    let local_to = to.with_timezone(&tz);
    let to = if local_to.time() == chrono::NaiveTime::MIN { to + Duration::seconds(1) } else { to };
    let offset = |t: DateTime<Utc>| i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc());
    let micros = (to - from).num_microseconds().unwrap_or(0) - (offset(from) - offset(to)) * 1_000_000;
    let day = 86_400_000_000i64;
    micros.div_euclid(day) + i64::from(micros.rem_euclid(day) != 0)
}

fn ratio(days: i64, window: &Window) -> Decimal {
    if window.duration_days == 0 { Decimal::ZERO } else { Decimal::from(days) / Decimal::from(window.duration_days) }
}

/// Prorated sum of `events` (all history up to the window's end, any order) of property `field`.
pub fn sum(events: &[&EventRow], field: &str, window: &Window, tz: Tz) -> Prorated {
    let mut rows: Vec<&EventRow> = events.iter().copied().filter(|e| e.timestamp <= window.to).collect();
    rows.sort_by_key(|e| (e.timestamp, e.ingested_at));
    let value = |e: &EventRow| property_text(&e.properties, field).and_then(|t| plain_decimal(&t));
    let mut out = Prorated::default();
    let persisted: Vec<Decimal> = rows.iter().filter(|e| e.timestamp < window.from).filter_map(|e| value(e)).collect();
    let carried: Decimal = persisted.iter().sum();
    out.count = persisted.len() as u64;
    let mut prorated = Decimal::ZERO;
    if !carried.is_zero() {
        let share = carried * ratio(date_diff_days(window.from, window.to, tz), window);
        out.per_event.push((carried, share));
        prorated += share;
    }
    out.full_units = carried;
    let last_day = local_day(window.to, tz);
    for e in rows.iter().filter(|e| e.timestamp >= window.from) {
        let Some(v) = value(e) else { continue };
        let days = (last_day - local_day(e.timestamp, tz)).num_days() + 1;
        let share = v * ratio(days, window);
        out.per_event.push((v, share));
        prorated += share;
        out.full_units += v;
        out.count += 1;
    }
    out.units = ceil5(prorated);
    out
}

/// Prorated unique count of property `field` over `events` (all history up to the window's end, any order).
pub fn unique_count(events: &[&EventRow], field: &str, window: &Window, tz: Tz) -> Prorated {
    // (timestamp, ingested_at, value, is_add) per event with the property.
    let mut rows: Vec<(DateTime<Utc>, DateTime<Utc>, String, bool)> = events
        .iter()
        .filter(|e| e.timestamp <= window.to)
        .filter_map(|e| {
            let v = property_text(&e.properties, field)?;
            let add = property_text(&e.properties, "operation_type").is_none_or(|op| op != "remove");
            Some((e.timestamp, e.ingested_at, v, add))
        })
        .collect();
    rows.sort_by_key(|a| (a.0, a.1));
    let mut by_value: BTreeMap<&str, Vec<(DateTime<Utc>, bool)>> = BTreeMap::new();
    for (t, _, v, add) in &rows {
        by_value.entry(v.as_str()).or_default().push((*t, *add));
    }
    // Each kept operation of any value, in time order: (timestamp, value, full units, prorated units).
    let mut kept: Vec<(DateTime<Utc>, &str, Decimal, Decimal)> = Vec::new();
    let mut present = 0i64;
    for (value, ops) in &by_value {
        // A removal undone later the same day never happened.
        let relevant: Vec<(DateTime<Utc>, bool)> = ops
            .iter()
            .enumerate()
            .filter(|(i, (t, add))| {
                *add || !ops[i + 1..].iter().any(|(n, n_add)| *n_add && n > t && local_day(*n, tz) == local_day(*t, tz))
            })
            .map(|(_, op)| *op)
            .collect();
        // Only changes of state count: an add after an add, or a remove of an absent value, is dropped.
        let mut changes: Vec<(DateTime<Utc>, bool)> = Vec::new();
        let mut previous_add = false;
        for (t, add) in relevant {
            if add != previous_add {
                changes.push((t, add));
            }
            previous_add = add;
        }
        if previous_add {
            present += 1;
        }
        for (i, &(t, add)) in changes.iter().enumerate() {
            if !add {
                kept.push((t, value, Decimal::NEGATIVE_ONE, Decimal::ZERO));
                continue;
            }
            let next = changes.get(i + 1).map_or(window.to, |(n, _)| *n);
            let end =
                if next < window.from { local_day(window.from, tz) } else { local_day(next + Duration::days(1), tz) };
            let start = local_day(t.max(window.from), tz);
            kept.push((t, value, Decimal::ONE, ratio((end - start).num_days(), window)));
        }
    }
    kept.sort_by_key(|a| (a.0, a.1));
    let prorated: Decimal = kept.iter().map(|k| k.3).sum();
    Prorated {
        units: ceil5(prorated),
        full_units: Decimal::from(present),
        count: present.max(0) as u64,
        // Lago rounds each event's share up on its own for the graduated model.
        per_event: kept.into_iter().map(|k| (k.2, ceil5(k.3))).collect(),
    }
}

/// The prorated total of every bucket of `job` (a recurring sum or unique count) over its window, in `tz`.
pub async fn run(store: &dyn EventStore, job: &JobSpec, tz: Tz) -> Result<HashMap<BucketKey, Prorated>, JobError> {
    let filter = ScanFilter {
        organization_id: job.organization_id,
        external_subscription_ids: job.subscriptions.clone(),
        codes: vec![job.code.clone()],
        // Ingest refuses timestamps before year 1: all history.
        from: DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(job.window.from),
        to: job.window.to + Duration::microseconds(1),
    };
    let events = store.scan(&filter).await?;
    let mut buckets: HashMap<BucketKey, Vec<EventRow>> = HashMap::new();
    for e in events {
        let properties: Value = serde_json::from_str(&e.properties).unwrap_or(Value::Null);
        let group = group_of(&properties, &job.grouped_by);
        let hit = filters_of(&job.filters, &properties);
        let row = EventRow { timestamp: e.timestamp, ingested_at: e.ingested_at, properties };
        if hit.is_empty() {
            buckets.entry((e.external_subscription_id.clone(), None, group)).or_default().push(row);
        } else {
            for i in hit {
                buckets
                    .entry((e.external_subscription_id.clone(), Some(i), group.clone()))
                    .or_default()
                    .push(row.clone());
            }
        }
    }
    let field = job.metric.field_name.clone().unwrap_or_default();
    Ok(buckets
        .into_iter()
        .map(|(key, rows)| {
            let refs: Vec<&EventRow> = rows.iter().collect();
            let total = match job.metric.aggregation_type {
                AggregationType::UniqueCount => unique_count(&refs, &field, &job.window, tz),
                _ => sum(&refs, &field, &job.window, tz),
            };
            (key, total)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn ev(ts: &str, props: Value) -> EventRow {
        EventRow { timestamp: t(ts), ingested_at: t(ts), properties: props }
    }

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    /// March 2024 in UTC: 31 days.
    fn march() -> Window {
        Window { from: t("2024-03-01T00:00:00Z"), to: t("2024-03-31T23:59:59Z"), duration_days: 31 }
    }

    #[test]
    fn day_counts_follow_the_local_calendar() {
        let utc = chrono_tz::UTC;
        assert_eq!(date_diff_days(t("2024-03-01T00:00:00Z"), t("2024-03-31T23:59:59Z"), utc), 31);
        assert_eq!(date_diff_days(t("2024-03-10T00:00:00Z"), t("2024-03-31T23:59:59Z"), utc), 22);
        // An end at local midnight counts its day.
        assert_eq!(date_diff_days(t("2024-03-01T00:00:00Z"), t("2024-03-02T00:00:00Z"), utc), 2);
        // New York's March has a 23-hour day; the offset change is taken out.
        let ny = chrono_tz::America::New_York;
        assert_eq!(date_diff_days(t("2024-03-01T05:00:00Z"), t("2024-04-01T03:59:59Z"), ny), 31);
    }

    #[test]
    fn a_sum_counts_each_value_for_its_remaining_days_and_the_carried_sum_in_full() {
        // 10 carried from February; +31 on 1 March (all 31 days), +10 on 22 March (10 days), -4 on 31 March (1 day).
        let rows = [
            ev("2024-02-10T10:00:00Z", json!({"v": "10"})),
            ev("2024-03-01T00:00:00Z", json!({"v": 31})),
            ev("2024-03-22T23:00:00Z", json!({"v": 10})),
            ev("2024-03-31T08:00:00Z", json!({"v": -4})),
        ];
        let refs: Vec<&EventRow> = rows.iter().collect();
        let p = sum(&refs, "v", &march(), chrono_tz::UTC);
        // 10 + 31 + 10 × 10/31 − 4/31 = 41 + 96/31 = 44.0967741… → 44.09678.
        assert_eq!(p.units, d("44.09678"));
        assert_eq!(p.full_units, d("47"));
        assert_eq!(p.per_event.len(), 4);
        assert_eq!(p.per_event[0], (d("10"), d("10")));
    }

    #[test]
    fn a_sum_in_a_partial_period_counts_the_carried_sum_for_the_billed_days() {
        // Terminated on 15 March: 15 of 31 days billed.
        let w = Window { to: t("2024-03-15T12:00:00Z"), ..march() };
        let rows = [ev("2024-01-01T00:00:00Z", json!({"v": 62})), ev("2024-03-15T01:00:00Z", json!({"v": 31}))];
        let refs: Vec<&EventRow> = rows.iter().collect();
        let p = sum(&refs, "v", &w, chrono_tz::UTC);
        // 62 × 15/31 = 30; 31 × 1/31 = 1.
        assert_eq!(p.units, d("31"));
        assert_eq!(p.full_units, d("93"));
    }

    #[test]
    fn the_customer_timezone_decides_the_day() {
        // 1 April 02:00 UTC is still 31 March in New York: the event counts for one day, not zero.
        let ny = chrono_tz::America::New_York;
        let w = Window { from: t("2024-03-01T05:00:00Z"), to: t("2024-04-01T03:59:59Z"), duration_days: 31 };
        let rows = [ev("2024-04-01T02:00:00Z", json!({"v": 31}))];
        let refs: Vec<&EventRow> = rows.iter().collect();
        assert_eq!(sum(&refs, "v", &w, ny).units, d("1"));
    }

    #[test]
    fn a_unique_value_counts_from_its_add_to_its_removal_day() {
        let rows = [
            // Present since February: all 31 days.
            ev("2024-02-20T00:00:00Z", json!({"user": "a"})),
            // Added 11 March, removed 20 March: 10 days.
            ev("2024-03-11T09:00:00Z", json!({"user": "b"})),
            ev("2024-03-20T18:00:00Z", json!({"user": "b", "operation_type": "remove"})),
            // Added twice: the second add changes nothing; 21 days from 11 March.
            ev("2024-03-11T09:00:00Z", json!({"user": "c"})),
            ev("2024-03-15T09:00:00Z", json!({"user": "c"})),
            // Removed and added again the same day: the removal is ignored; present all month.
            ev("2024-02-01T00:00:00Z", json!({"user": "d"})),
            ev("2024-03-05T08:00:00Z", json!({"user": "d", "operation_type": "remove"})),
            ev("2024-03-05T20:00:00Z", json!({"user": "d"})),
            // Removed in February: nothing.
            ev("2024-02-01T00:00:00Z", json!({"user": "e"})),
            ev("2024-02-02T00:00:00Z", json!({"user": "e", "operation_type": "remove"})),
        ];
        let refs: Vec<&EventRow> = rows.iter().collect();
        let p = unique_count(&refs, "user", &march(), chrono_tz::UTC);
        // 1 + 10/31 + 21/31 + 1 = 3.
        assert_eq!(p.units, d("3"));
        assert_eq!(p.per_event.iter().filter(|(_, share)| *share == d("0.32259")).count(), 1);
        assert_eq!(p.full_units, d("3"));
    }
}
