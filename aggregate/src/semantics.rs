//! Lago's aggregation semantics as plain Rust over a slice of events: the reference that the DataFusion jobs must
//! match (property tests compare the two) and the definition of every total an invoice starts from.
//!
//! - Events are selected on `[from, to]`, both ends included; recurring sums and unique counts read all history up
//!   to `to` (no lower bound).
//! - Sum, max, latest and weighted sum only read values that are plain decimals (`^-?\d+(\.\d+)?$`, as Lago's
//!   Postgres store); other events are skipped and not counted.
//! - Count counts every event; unique count counts the values whose last operation (`operation_type`, default
//!   `add`) is an add.
//! - Latest is the value of the last event by time (ties: the last received), negative values count as 0.
//! - Weighted sum treats each value as a change of a level and averages the level over the whole period, in
//!   seconds, from an initial level. A recurring weighted sum carries its level over: it opens at the sum of every
//!   value before the period (Lago's cached `current_aggregation` of the previous period, which chains the same
//!   sums), per filter bucket and pricing group, plus any explicit initial level.
//! - Rounding (`round`/`ceil`/`floor`, half away from zero, precision may be negative) applies to the total.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregationType {
    Count,
    Sum,
    Max,
    UniqueCount,
    Latest,
    WeightedSum,
}

impl AggregationType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "count_agg" => AggregationType::Count,
            "sum_agg" => AggregationType::Sum,
            "max_agg" => AggregationType::Max,
            "unique_count_agg" => AggregationType::UniqueCount,
            "latest_agg" => AggregationType::Latest,
            "weighted_sum_agg" => AggregationType::WeightedSum,
            _ => return None,
        })
    }

    pub(crate) fn numeric(self) -> bool {
        matches!(
            self,
            AggregationType::Sum | AggregationType::Max | AggregationType::Latest | AggregationType::WeightedSum
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundingFunction {
    Round,
    Ceil,
    Floor,
}

impl RoundingFunction {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "round" => RoundingFunction::Round,
            "ceil" => RoundingFunction::Ceil,
            "floor" => RoundingFunction::Floor,
            _ => return None,
        })
    }
}

/// What an aggregation needs to know of its billable metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub aggregation_type: AggregationType,
    pub field_name: Option<String>,
    pub recurring: bool,
    pub rounding: Option<(RoundingFunction, i32)>,
}

/// One stored event, as aggregation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub timestamp: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub properties: Value,
}

/// The billing period of a charge: `[from, to]` with both ends included, and its full length in days (the weighted
/// sum's denominator, even when the subscription started within the period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub duration_days: u32,
}

/// An aggregation's result: the units the charge model prices, and the events it counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Total {
    pub units: Decimal,
    pub count: u64,
}

/// A property's text as Postgres' `->>` gives it.
pub fn property_text(properties: &Value, key: &str) -> Option<String> {
    match properties.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `^-?\d+(\.\d+)?$`: Lago's test of a usable number.
pub fn plain_decimal(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if ok { Decimal::from_str(text).ok() } else { None }
}

/// Aggregated values keep nine decimal places (rounded half away from zero), in both the reference and the jobs;
/// the event stores keep them the same way.
pub const VALUE_SCALE: u32 = 9;

/// The aggregation value of a property's text: a plain decimal, to nine places.
pub fn value_of(text: &str) -> Option<Decimal> {
    plain_decimal(text).map(|d| d.round_dp_with_strategy(VALUE_SCALE, RoundingStrategy::MidpointAwayFromZero))
}

/// `to_raw(value_of(text))` without going through `Decimal` for the usual short numbers: the aggregation value of a
/// property's text as an integer count of 10^-9 units.
pub fn raw_value(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(p) => (&digits[..p], Some(&digits[p + 1..])),
        None => (digits, None),
    };
    let frac_len = frac.map_or(0, <[u8]>::len);
    // Numbers near or beyond what Decimal holds at nine places take the reference path, which decides them.
    if int.len() > 19 || int.len() + frac_len > 28 {
        return value_of(text).and_then(to_raw);
    }
    let ok = !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit));
    if !ok {
        return None;
    }
    let mut v: i128 = 0;
    for &c in int {
        v = v * 10 + i128::from(c - b'0');
    }
    let frac = frac.unwrap_or_default();
    for k in 0..VALUE_SCALE as usize {
        v = v * 10 + frac.get(k).map_or(0, |&c| i128::from(c - b'0'));
    }
    // Half away from zero on the tenth decimal.
    if frac.get(VALUE_SCALE as usize).is_some_and(|&c| c >= b'5') {
        v += 1;
    }
    Some(if negative { -v } else { v })
}

/// A value as an integer count of 10^-9 units (the `Decimal128(38, 9)` representation).
pub fn to_raw(d: Decimal) -> Option<i128> {
    let mut d = d.round_dp_with_strategy(VALUE_SCALE, RoundingStrategy::MidpointAwayFromZero);
    d.rescale(VALUE_SCALE);
    (d.scale() == VALUE_SCALE).then(|| d.mantissa())
}

/// An integer count of 10^-`scale` units as a decimal; digits beyond rust_decimal's 28 are rounded off.
pub fn from_raw(mut v: i128, mut scale: u32) -> Decimal {
    const MAX: i128 = 79_228_162_514_264_337_593_543_950_335;
    while !(-MAX..=MAX).contains(&v) && scale > 0 {
        let rem = v % 10;
        v /= 10;
        if rem.abs() >= 5 {
            v += rem.signum();
        }
        scale -= 1;
    }
    Decimal::try_from_i128_with_scale(v, scale).unwrap_or(if v < 0 { Decimal::MIN } else { Decimal::MAX })
}

/// A weighted sum from Σ level × microseconds (level in 10^-9 units): the average level over the period.
pub fn weighted_average(level_micros_raw: i128, period_micros: i128) -> Decimal {
    if period_micros == 0 {
        return Decimal::ZERO;
    }
    from_raw(level_micros_raw, VALUE_SCALE) / from_raw(period_micros, 0)
}

/// Applies a metric's rounding: half away from zero; a negative precision rounds to tens, hundreds, ...
pub fn round_units(x: Decimal, function: RoundingFunction, precision: i32) -> Decimal {
    let strategy = match function {
        RoundingFunction::Round => RoundingStrategy::MidpointAwayFromZero,
        RoundingFunction::Ceil => RoundingStrategy::ToPositiveInfinity,
        RoundingFunction::Floor => RoundingStrategy::ToNegativeInfinity,
    };
    if precision >= 0 {
        x.round_dp_with_strategy(precision as u32, strategy)
    } else {
        let scale = Decimal::from(10i64.pow(precision.unsigned_abs().min(18)));
        (x / scale).round_dp_with_strategy(0, strategy) * scale
    }
}

/// The total of `events` (any order) for `metric` over `window`; `initial_level` is added to the weighted sum's
/// opening level (which, for a recurring one, is the sum of the values before the window).
pub fn aggregate(metric: &MetricSpec, events: &[EventRow], window: &Window, initial_level: Decimal) -> Total {
    let lower_bound =
        !(metric.recurring && matches!(metric.aggregation_type, AggregationType::Sum | AggregationType::UniqueCount));
    let field = metric.field_name.as_deref().unwrap_or("");
    let carried: Decimal = if metric.recurring && metric.aggregation_type == AggregationType::WeightedSum {
        events
            .iter()
            .filter(|e| e.timestamp < window.from)
            .filter_map(|e| property_text(&e.properties, field).and_then(|t| value_of(&t)))
            .sum()
    } else {
        Decimal::ZERO
    };
    let initial_level = initial_level + carried;
    let mut selected: Vec<&EventRow> =
        events.iter().filter(|e| e.timestamp <= window.to && (!lower_bound || e.timestamp >= window.from)).collect();
    selected.sort_by_key(|e| (e.timestamp, e.ingested_at));
    let values: Vec<(&EventRow, Decimal)> = if metric.aggregation_type.numeric() {
        selected
            .iter()
            .filter_map(|e| property_text(&e.properties, field).and_then(|t| plain_decimal(&t)).map(|v| (*e, v)))
            .collect()
    } else {
        Vec::new()
    };
    let count = values.len() as u64;
    let total = match metric.aggregation_type {
        AggregationType::Count => Total { units: Decimal::from(selected.len() as u64), count: selected.len() as u64 },
        AggregationType::Sum => Total { units: values.iter().map(|(_, v)| *v).sum(), count },
        AggregationType::Max => Total { units: values.iter().map(|(_, v)| *v).max().unwrap_or_default(), count },
        AggregationType::Latest => {
            Total { units: values.last().map(|(_, v)| (*v).max(Decimal::ZERO)).unwrap_or_default(), count }
        }
        AggregationType::UniqueCount => {
            // The last operation of each value decides whether it is counted.
            let mut last: BTreeMap<Option<String>, bool> = BTreeMap::new();
            for e in &selected {
                let op = property_text(&e.properties, "operation_type").unwrap_or_else(|| "add".into());
                last.insert(property_text(&e.properties, field), op == "add");
            }
            let n = last.values().filter(|added| **added).count() as u64;
            Total { units: Decimal::from(n), count: n }
        }
        AggregationType::WeightedSum => Total { units: weighted_sum(&values, window, initial_level), count },
    };
    match metric.rounding {
        Some((f, p)) => Total { units: round_units(total.units, f, p), ..total },
        None => total,
    }
}

/// Σ level × time held, over the period's length. The period ends at `to` rounded up to a whole second. Computed
/// exactly on integers (levels in 10^-9 units, times in microseconds), then divided once.
fn weighted_sum(values: &[(&EventRow, Decimal)], window: &Window, initial_level: Decimal) -> Decimal {
    let period_micros = i128::from(window.duration_days) * 86_400_000_000;
    let end = ceil_to_second(window.to);
    let micros = |a: DateTime<Utc>, b: DateTime<Utc>| i128::from((b - a).num_microseconds().unwrap_or(0).max(0));
    let mut level = to_raw(initial_level).unwrap_or(0);
    let mut at = window.from;
    let mut level_micros: i128 = 0;
    for (event, delta) in values {
        level_micros = level_micros.saturating_add(level.saturating_mul(micros(at, event.timestamp)));
        level = level.saturating_add(to_raw(*delta).unwrap_or(0));
        at = event.timestamp;
    }
    level_micros = level_micros.saturating_add(level.saturating_mul(micros(at, end)));
    weighted_average(level_micros, period_micros)
}

/// `t` rounded up to a whole second: where Lago ends a weighted sum's last level.
pub fn ceil_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let whole = DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
    if whole == t { t } else { whole + chrono::Duration::seconds(1) }
}

/// A charge filter: for each key, the property values it takes (Lago's `__ALL_FILTER_VALUES__` already expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeFilter {
    pub values: BTreeMap<String, Vec<String>>,
}

/// Whether an event's properties hold, for every key, one of the listed values (a missing key never matches).
fn matches(lookup: &impl Fn(&str) -> Option<String>, values: &BTreeMap<String, Vec<String>>) -> bool {
    values.iter().all(|(key, allowed)| lookup(key).is_some_and(|v| allowed.contains(&v)))
}

/// Lago's "ignored" rule: a missing property compares as the empty string.
fn matches_ignored(lookup: &impl Fn(&str) -> Option<String>, values: &BTreeMap<String, Vec<String>>) -> bool {
    values.iter().all(|(key, allowed)| allowed.contains(&lookup(key).unwrap_or_default()))
}

/// For filter `i`, the value sets whose events belong to a more specific (or older identical) filter instead.
/// Filters are given oldest first.
fn ignored_for(filters: &[ChargeFilter], i: usize) -> Vec<BTreeMap<String, Vec<String>>> {
    let f = &filters[i].values;
    let mut ignored = Vec::new();
    for (j, g) in filters.iter().enumerate() {
        let g = &g.values;
        if j == i || !f.keys().all(|k| g.contains_key(k)) {
            continue;
        }
        let overlaps = f.iter().all(|(k, fv)| g[k].iter().any(|v| fv.contains(v)));
        if !overlaps {
            continue;
        }
        if g.len() > f.len() {
            ignored.push(g.clone());
            continue;
        }
        let subset = g.iter().all(|(k, gv)| gv.iter().all(|v| f[k].contains(v)));
        let identical = subset && f.iter().all(|(k, fv)| fv.iter().all(|v| g[k].contains(v)));
        if identical {
            // Of identical filters the oldest keeps the events.
            if j < i {
                ignored.push(g.clone());
            }
        } else if subset {
            ignored.push(g.clone());
        } else {
            // Partial overlap: only G's own values move to G; the overlap stays in both, as in Lago.
            ignored.push(
                g.iter()
                    .map(|(k, gv)| (k.clone(), gv.iter().filter(|v| !f[k].contains(v)).cloned().collect()))
                    .collect(),
            );
        }
    }
    ignored
}

/// The filters (indexes into `filters`, oldest first) an event is counted in; empty means the default bucket.
pub fn filters_of(filters: &[ChargeFilter], properties: &Value) -> Vec<usize> {
    FilterSet::new(filters).of(|key| property_text(properties, key))
}

/// A charge's filters with the value sets each one leaves to others worked out once, to place many events.
#[derive(Debug, Clone)]
pub struct FilterSet {
    filters: Vec<ChargeFilter>,
    ignored: Vec<Vec<BTreeMap<String, Vec<String>>>>,
}

impl FilterSet {
    pub fn new(filters: &[ChargeFilter]) -> Self {
        let ignored = (0..filters.len()).map(|i| ignored_for(filters, i)).collect();
        FilterSet { filters: filters.to_vec(), ignored }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// `filters_of` for an event whose property texts `lookup` gives.
    pub fn of(&self, lookup: impl Fn(&str) -> Option<String>) -> Vec<usize> {
        (0..self.filters.len())
            .filter(|&i| {
                matches(&lookup, &self.filters[i].values)
                    && !self.ignored[i].iter().any(|ig| matches_ignored(&lookup, ig))
            })
            .collect()
    }
}

/// A pricing group: one value (or none) per `grouped_by` key; a missing or empty property is `None`.
pub type Group = Vec<Option<String>>;

/// The pricing group of an event.
pub fn group_of(properties: &Value, keys: &[String]) -> Group {
    group_by(keys, |k| property_text(properties, k))
}

/// The pricing group of an event whose property texts `lookup` gives.
pub fn group_by(keys: &[String], lookup: impl Fn(&str) -> Option<String>) -> Group {
    keys.iter().map(|k| lookup(k).filter(|v| !v.is_empty())).collect()
}

/// The total of one bucket of a charge: a filter (or the default bucket) and a pricing group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketTotal {
    /// Index of the charge filter; `None` for the events that match no filter.
    pub filter: Option<usize>,
    pub group: Group,
    pub total: Total,
}

/// Every bucket of a charge over `window`: each filter and the default bucket, split by pricing group. A bucket
/// without events has one all-`None` group with a zero total, as in Lago. `initial_level` opens every weighted sum.
pub fn aggregate_charge(
    metric: &MetricSpec,
    filters: &[ChargeFilter],
    grouped_by: &[String],
    events: &[EventRow],
    window: &Window,
    initial_level: Decimal,
) -> Vec<BucketTotal> {
    let mut buckets: BTreeMap<(Option<usize>, Group), Vec<EventRow>> = BTreeMap::new();
    for e in events {
        let group = group_of(&e.properties, grouped_by);
        let hit = filters_of(filters, &e.properties);
        if hit.is_empty() {
            buckets.entry((None, group)).or_default().push(e.clone());
        } else {
            for f in hit {
                buckets.entry((Some(f), group.clone())).or_default().push(e.clone());
            }
        }
    }
    let mut out = Vec::new();
    for filter in std::iter::once(None).chain((0..filters.len()).map(Some)) {
        let mut any = false;
        for ((f, group), rows) in &buckets {
            if *f == filter {
                any = true;
                out.push(BucketTotal {
                    filter,
                    group: group.clone(),
                    total: aggregate(metric, rows, window, initial_level),
                });
            }
        }
        if !any {
            out.push(BucketTotal { filter, group: vec![None; grouped_by.len()], total: Total::default() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn ev(ts: &str, props: Value) -> EventRow {
        EventRow { timestamp: t(ts), ingested_at: t(ts), properties: props }
    }

    fn spec(agg: AggregationType, recurring: bool) -> MetricSpec {
        MetricSpec { aggregation_type: agg, field_name: Some("v".into()), recurring, rounding: None }
    }

    fn window(from: &str, to: &str, days: u32) -> Window {
        Window { from: t(from), to: t(to), duration_days: days }
    }

    fn march() -> Window {
        window("2022-03-01T00:00:00Z", "2022-03-31T23:59:59.999999Z", 31)
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn count_and_sum_and_bounds() {
        let events = vec![
            ev("2022-02-28T23:59:59Z", json!({"v": 100})),
            ev("2022-03-01T00:00:00Z", json!({"v": 20})),
            ev("2022-03-15T00:00:00Z", json!({"v": "10.5"})),
            ev("2022-03-20T00:00:00Z", json!({"v": "foo_bar"})),
            ev("2022-03-31T23:59:59.999999Z", json!({"v": -0.5})),
            ev("2022-04-01T00:00:00Z", json!({"v": 1000})),
        ];
        let count = aggregate(&spec(AggregationType::Count, false), &events, &march(), Decimal::ZERO);
        assert_eq!(count, Total { units: d("4"), count: 4 });
        let sum = aggregate(&spec(AggregationType::Sum, false), &events, &march(), Decimal::ZERO);
        assert_eq!(sum, Total { units: d("30.0"), count: 3 }, "non-numeric values are skipped and not counted");
        let recurring = aggregate(&spec(AggregationType::Sum, true), &events, &march(), Decimal::ZERO);
        assert_eq!(recurring.units, d("130.0"), "a recurring sum reads all history up to the period end");
    }

    #[test]
    fn lago_sum_example_with_history() {
        let mut events: Vec<EventRow> = (0..2).map(|_| ev("2021-12-05T00:00:00Z", json!({"v": "2.5"}))).collect();
        events.extend((1..=4).map(|i| ev(&format!("2022-03-0{i}T10:00:00Z"), json!({"v": 12}))));
        assert_eq!(
            aggregate(&spec(AggregationType::Sum, false), &events, &march(), Decimal::ZERO),
            Total { units: d("48"), count: 4 }
        );
        assert_eq!(
            aggregate(&spec(AggregationType::Sum, true), &events, &march(), Decimal::ZERO),
            Total { units: d("53.0"), count: 6 }
        );
    }

    #[test]
    fn max_and_latest() {
        let events = vec![ev("2022-03-02T00:00:00Z", json!({"v": 20})), ev("2022-03-03T00:00:00Z", json!({"v": 10}))];
        assert_eq!(aggregate(&spec(AggregationType::Max, false), &events, &march(), Decimal::ZERO).units, d("20"));
        assert_eq!(aggregate(&spec(AggregationType::Latest, false), &events, &march(), Decimal::ZERO).units, d("10"));
        let negative = vec![ev("2022-03-02T00:00:00Z", json!({"v": -5})), ev("2022-03-03T00:00:00Z", json!({"v": -2}))];
        assert_eq!(aggregate(&spec(AggregationType::Max, false), &negative, &march(), Decimal::ZERO).units, d("-2"));
        assert_eq!(aggregate(&spec(AggregationType::Latest, false), &negative, &march(), Decimal::ZERO).units, d("0"));
        assert_eq!(aggregate(&spec(AggregationType::Max, false), &[], &march(), Decimal::ZERO), Total::default());
        // A tie on time goes to the event received last.
        let mut tie = vec![ev("2022-03-05T00:00:00Z", json!({"v": 7})), ev("2022-03-05T00:00:00Z", json!({"v": 6}))];
        tie[1].ingested_at = t("2022-03-05T00:00:01Z");
        assert_eq!(aggregate(&spec(AggregationType::Latest, false), &tie, &march(), Decimal::ZERO).units, d("6"));
    }

    #[test]
    fn unique_count_with_removes() {
        let u = |ts: &str, v: &str, op: Option<&str>| match op {
            Some(op) => ev(ts, json!({"v": v, "operation_type": op})),
            None => ev(ts, json!({"v": v})),
        };
        let history = vec![
            u("2022-02-10T00:00:00Z", "seat_1", None),
            u("2022-03-02T00:00:00Z", "seat_2", Some("add")),
            u("2022-03-03T00:00:00Z", "seat_2", Some("add")),
            u("2022-03-05T00:00:00Z", "seat_3", Some("add")),
            u("2022-03-16T00:00:00Z", "seat_3", Some("remove")),
            u("2022-03-20T00:00:00Z", "seat_4", Some("remove")),
        ];
        assert_eq!(
            aggregate(&spec(AggregationType::UniqueCount, false), &history, &march(), Decimal::ZERO).units,
            d("1")
        );
        assert_eq!(
            aggregate(&spec(AggregationType::UniqueCount, true), &history, &march(), Decimal::ZERO).units,
            d("2")
        );
        let five_adds_one_remove: Vec<EventRow> = (1..=5)
            .map(|i| u(&format!("2022-03-0{i}T00:00:00Z"), &format!("s{i}"), Some("add")))
            .chain([u("2022-03-09T00:00:00Z", "s2", Some("remove"))])
            .collect();
        assert_eq!(
            aggregate(&spec(AggregationType::UniqueCount, false), &five_adds_one_remove, &march(), Decimal::ZERO).units,
            d("4")
        );
    }

    /// Lago's documentation: +20 GB on March 16 and +10 GB on March 17 over March 2022.
    #[test]
    fn weighted_sum_documentation_example() {
        let events = vec![ev("2022-03-16T00:00:00Z", json!({"v": 20})), ev("2022-03-17T00:00:00Z", json!({"v": 10}))];
        let w = aggregate(&spec(AggregationType::WeightedSum, false), &events, &march(), Decimal::ZERO);
        assert_eq!(w.units.round_dp(10), d("15.1612903226"));
        assert_eq!(w.count, 2);
    }

    #[test]
    fn weighted_sum_lago_spec_and_recurring_level() {
        let aug = window("2023-08-01T00:00:00Z", "2023-08-31T23:59:59.999Z", 31);
        let deltas = [
            ("00:00", "2"),
            ("01:00", "3"),
            ("01:30", "1"),
            ("02:00", "-4"),
            ("04:00", "-2"),
            ("05:00", "10"),
            ("05:30", "-10"),
        ];
        let events: Vec<EventRow> =
            deltas.iter().map(|(h, v)| ev(&format!("2023-08-01T{h}:00Z"), json!({"v": v}))).collect();
        let m = spec(AggregationType::WeightedSum, false);
        let w = aggregate(&m, &events, &aug, Decimal::ZERO);
        assert_eq!((w.units.round_dp(5), w.count), (d("0.02218"), 7));
        let recurring = MetricSpec { recurring: true, ..m.clone() };
        assert_eq!(aggregate(&recurring, &events, &aug, d("1000")).units.round_dp(5), d("1000.02218"));
        let single = vec![ev("2023-08-01T00:00:00Z", json!({"v": 1000}))];
        assert_eq!(aggregate(&m, &single, &aug, Decimal::ZERO).units, d("1000"));
        // Two changes at the same instant both count.
        let tie = vec![ev("2023-08-01T00:00:00Z", json!({"v": 3})), ev("2023-08-01T00:00:00Z", json!({"v": 3}))];
        assert_eq!(aggregate(&m, &tie, &aug, Decimal::ZERO).units, d("6"));
    }

    /// Lago's recurring scenario: 2500 from March 5, then -2000 on April 4 and -200 on April 6.
    #[test]
    fn weighted_sum_recurring_scenario() {
        let m = MetricSpec { recurring: true, ..spec(AggregationType::WeightedSum, false) };
        let march = window("2023-03-05T00:00:00Z", "2023-03-31T23:59:59.999999Z", 31);
        let w = aggregate(&m, &[ev("2023-03-05T00:00:00Z", json!({"v": 2500}))], &march, Decimal::ZERO);
        assert_eq!(w.units.round_dp(10), d("2177.4193548387"));
        let april = window("2023-04-01T00:00:00Z", "2023-04-30T23:59:59.999999Z", 30);
        let events =
            vec![ev("2023-04-04T00:00:00Z", json!({"v": -2000})), ev("2023-04-06T00:00:00Z", json!({"v": -200}))];
        assert_eq!(aggregate(&m, &events, &april, d("2500")).units.round_dp(10), d("533.3333333333"));
    }

    /// The same scenario without a given level: April opens at March's closing level, read from March's events.
    #[test]
    fn weighted_sum_recurring_carries_the_level_over() {
        let m = MetricSpec { recurring: true, ..spec(AggregationType::WeightedSum, false) };
        let april = window("2023-04-01T00:00:00Z", "2023-04-30T23:59:59.999999Z", 30);
        let events = vec![
            ev("2023-03-05T00:00:00Z", json!({"v": 2500})),
            ev("2023-04-04T00:00:00Z", json!({"v": -2000})),
            ev("2023-04-06T00:00:00Z", json!({"v": -200})),
        ];
        // (2500 × 3 days + 500 × 2 days + 300 × 25 days) / 30 days = 16000 / 30.
        let w = aggregate(&m, &events, &april, Decimal::ZERO);
        assert_eq!((w.units.round_dp(10), w.count), (d("533.3333333333"), 2));
        // Only history: the level holds the whole period, no event counted.
        let may = window("2023-05-01T00:00:00Z", "2023-05-31T23:59:59.999999Z", 31);
        assert_eq!(aggregate(&m, &events, &may, Decimal::ZERO), Total { units: d("300"), count: 0 });
        // Not recurring: every period opens at zero.
        let plain = spec(AggregationType::WeightedSum, false);
        assert_eq!(aggregate(&plain, &events, &may, Decimal::ZERO), Total { units: d("0"), count: 0 });
    }

    #[test]
    fn rounding_lago_examples() {
        let x = d("123.456");
        let r = |f, p| round_units(x, f, p);
        use RoundingFunction::{Ceil, Floor, Round};
        assert_eq!([r(Round, 2), r(Round, 0), r(Round, -2)], [d("123.46"), d("123"), d("100")]);
        assert_eq!([r(Ceil, 2), r(Ceil, 0), r(Ceil, -2)], [d("123.46"), d("124"), d("200")]);
        assert_eq!([r(Floor, 2), r(Floor, 0), r(Floor, -2)], [d("123.45"), d("123"), d("100")]);
        assert_eq!(round_units(d("123.4567"), Round, -1), d("120"));
        assert_eq!(round_units(d("0.125"), Round, 2), d("0.13"), "half away from zero");
        let m = MetricSpec { rounding: Some((Ceil, 0)), ..spec(AggregationType::Sum, false) };
        let events = vec![ev("2022-03-02T00:00:00Z", json!({"v": "1.2"}))];
        assert_eq!(aggregate(&m, &events, &march(), Decimal::ZERO).units, d("2"));
    }

    #[test]
    fn raw_values_match_the_decimal_path() {
        for text in [
            "0",
            "-0",
            "12",
            "-3",
            "4.5",
            "2.50",
            "0.0000000004",
            "0.0000000005",
            "-0.0000000005",
            "1.9999999995",
            "123456789012345678.123456789",
            "99999999999999999999.99999999999",
            "1e3",
            "+5",
            ".5",
            "5.",
            "",
            "-",
            "12345678901234567890123456789.5",
            "0.12345678901234567890123456789",
        ] {
            assert_eq!(raw_value(text), value_of(text).and_then(to_raw), "{text}");
        }
    }

    #[test]
    fn plain_decimals_only() {
        for ok in ["12", "-3", "4.5", "2.50"] {
            assert!(plain_decimal(ok).is_some(), "{ok}");
        }
        for bad in ["1e3", "+5", ".5", "5.", " 5", "1,5", "true", ""] {
            assert!(plain_decimal(bad).is_none(), "{bad}");
        }
    }

    fn filter(pairs: &[(&str, &[&str])]) -> ChargeFilter {
        ChargeFilter {
            values: pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
        }
    }

    /// Lago's nested filters: each event is counted in the most specific filter that takes it.
    #[test]
    fn nested_filters_send_events_to_the_most_specific() {
        let all_steps: &[&str] = &["25", "50", "75", "100"];
        let all_sizes: &[&str] = &["512", "1024"];
        let filters = vec![
            filter(&[("steps", &["25"]), ("size", &["512"]), ("model", &["llama-2"])]),
            filter(&[("steps", &["25"]), ("size", &["512"])]),
            filter(&[("steps", all_steps), ("size", all_sizes)]),
            filter(&[("size", all_sizes)]),
            filter(&[("size", &["512"])]),
        ];
        let of = |p: Value| filters_of(&filters, &p);
        assert_eq!(of(json!({"steps": "25", "size": "512", "model": "llama-2"})), [0]);
        assert_eq!(of(json!({"steps": "25", "size": "512", "model": "mistral"})), [1]);
        assert_eq!(of(json!({"steps": 25, "size": 512})), [1], "numbers compare as their text");
        assert_eq!(of(json!({"steps": "50", "size": "1024"})), [2]);
        assert_eq!(of(json!({"size": "1024"})), [3]);
        assert_eq!(of(json!({"size": "512"})), [4]);
        assert!(of(json!({"steps": "25"})).is_empty(), "no filter takes it: the default bucket");
    }

    #[test]
    fn identical_filters_leave_events_to_the_oldest() {
        let filters = vec![filter(&[("region", &["eu"])]), filter(&[("region", &["eu"])])];
        assert_eq!(filters_of(&filters, &json!({"region": "eu"})), [0]);
    }

    #[test]
    fn charge_buckets_by_filter_and_group() {
        let m = spec(AggregationType::Sum, false);
        let filters = vec![filter(&[("region", &["eu", "us"])])];
        let events = vec![
            ev("2022-03-02T00:00:00Z", json!({"v": 1, "region": "eu", "agent": "a"})),
            ev("2022-03-03T00:00:00Z", json!({"v": 2, "region": "eu", "agent": "b"})),
            ev("2022-03-04T00:00:00Z", json!({"v": 4, "region": "ap", "agent": "a"})),
            ev("2022-03-05T00:00:00Z", json!({"v": 8, "region": "us"})),
        ];
        let buckets = aggregate_charge(&m, &filters, &["agent".to_string()], &events, &march(), Decimal::ZERO);
        let got: Vec<(Option<usize>, Group, Decimal)> =
            buckets.into_iter().map(|b| (b.filter, b.group, b.total.units)).collect();
        let a = Some("a".to_string());
        let b = Some("b".to_string());
        assert_eq!(
            got,
            vec![
                (None, vec![a.clone()], d("4")),
                (Some(0), vec![None], d("8")),
                (Some(0), vec![a], d("1")),
                (Some(0), vec![b], d("2"))
            ]
        );
        let empty = aggregate_charge(&m, &filters, &["agent".to_string()], &[], &march(), Decimal::ZERO);
        assert_eq!(empty.len(), 2);
        assert!(empty.iter().all(|b| b.total == Total::default() && b.group == vec![None]));
    }
}
