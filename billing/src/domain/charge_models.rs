//! The price of a period's usage under each of Lago's charge models, in the plan currency's major units, unrounded.
//! Rounding to the currency happens once, when the fee is built (`money::to_cents`).
//!
//! The arithmetic follows Lago's charge model services to the digit, quirks included, because invoices must match
//! what Lago users expect: tier 1's flat fee is due even at zero units; graduated tiers count `to - from + 1` units
//! unless every tier starts where the previous one ends; volume tiers include both bounds and a fractional total
//! between tiers goes to the upper one; a started package is paid in full.

use rust_decimal::Decimal;
use rust_decimal::prelude::*;
use serde_json::{Map, Value};

/// One tier of a graduated price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraduatedRange {
    pub from: Decimal,
    pub to: Option<Decimal>,
    pub per_unit_amount: Decimal,
    pub flat_amount: Decimal,
}

/// One tier of a graduated percentage price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PercentageRange {
    pub from: Decimal,
    pub to: Option<Decimal>,
    /// In percent: `1.5` is 1.5 %.
    pub rate: Decimal,
    pub flat_amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Percentage {
    /// In percent.
    pub rate: Decimal,
    /// Charged per paying event.
    pub fixed_amount: Option<Decimal>,
    /// The first N events are free.
    pub free_units_per_events: u64,
    /// The first F of aggregated value is free.
    pub free_units_per_total_aggregation: Decimal,
    pub per_transaction_min_amount: Option<Decimal>,
    pub per_transaction_max_amount: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeModel {
    Standard {
        amount: Decimal,
    },
    Graduated {
        ranges: Vec<GraduatedRange>,
    },
    Volume {
        ranges: Vec<GraduatedRange>,
    },
    Package {
        amount: Decimal,
        package_size: Decimal,
        free_units: Decimal,
    },
    Percentage(Percentage),
    GraduatedPercentage {
        ranges: Vec<PercentageRange>,
    },
    /// The price of each event is sent with it (`precise_total_amount_cents`).
    Dynamic,
}

/// What the aggregation of one charge (or one filter or group of it) produced for the period.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    /// Aggregated units (prorated for a prorated charge).
    pub units: Decimal,
    /// Units without proration, for prorated charges.
    pub full_units: Option<Decimal>,
    /// Each contribution's `(full, prorated)` units in time order, for a prorated graduated charge.
    pub prorated_events: Option<Vec<(Decimal, Decimal)>>,
    pub events_count: u64,
    /// Each event's value in time order, for the percentage model's free units and per-transaction bounds (for a
    /// count, each event is worth 1).
    pub event_values: Vec<Decimal>,
    /// Sum of the events' `precise_total_amount_cents`, for the dynamic model.
    pub precise_total_amount_cents: Decimal,
    /// How many subunits make a unit of the plan currency (100 for EUR), for the dynamic model.
    pub subunit_to_unit: Decimal,
}

/// The amount due for a usage, and the price per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub amount: Decimal,
    pub unit_amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown charge model `{0}`")]
    UnknownModel(String),
    #[error("charge property `{0}` is missing or not a decimal")]
    BadProperty(&'static str),
    #[error("no volume range holds {0} units")]
    NoVolumeRange(Decimal),
}

fn ratio(amount: Decimal, units: Decimal) -> Decimal {
    if units.is_zero() { Decimal::ZERO } else { amount / units }
}

impl ChargeModel {
    /// Reads a charge's (or charge filter's) stored `properties` for `model`.
    pub fn from_properties(model: &str, p: &Map<String, Value>) -> Result<Self, ModelError> {
        Ok(match model {
            "standard" => ChargeModel::Standard { amount: required(p, "amount")? },
            "graduated" => ChargeModel::Graduated { ranges: ranges(p, "graduated_ranges", "per_unit_amount")? },
            "volume" => ChargeModel::Volume { ranges: ranges(p, "volume_ranges", "per_unit_amount")? },
            "package" => ChargeModel::Package {
                amount: required(p, "amount")?,
                package_size: required(p, "package_size")?,
                free_units: optional(p, "free_units")?.unwrap_or_default(),
            },
            "percentage" => ChargeModel::Percentage(Percentage {
                rate: required(p, "rate")?,
                fixed_amount: optional(p, "fixed_amount")?,
                free_units_per_events: optional(p, "free_units_per_events")?.and_then(|d| d.to_u64()).unwrap_or(0),
                free_units_per_total_aggregation: optional(p, "free_units_per_total_aggregation")?.unwrap_or_default(),
                per_transaction_min_amount: optional(p, "per_transaction_min_amount")?,
                per_transaction_max_amount: optional(p, "per_transaction_max_amount")?,
            }),
            "graduated_percentage" => ChargeModel::GraduatedPercentage {
                ranges: ranges(p, "graduated_percentage_ranges", "rate")?
                    .into_iter()
                    .map(|r| PercentageRange {
                        from: r.from,
                        to: r.to,
                        rate: r.per_unit_amount,
                        flat_amount: r.flat_amount,
                    })
                    .collect(),
            },
            "dynamic" => ChargeModel::Dynamic,
            other => return Err(ModelError::UnknownModel(other.to_owned())),
        })
    }

    /// The price of `usage`.
    pub fn price(&self, usage: &Usage) -> Result<Priced, ModelError> {
        let units = usage.units;
        let per_unit_base = usage.full_units.unwrap_or(units);
        Ok(match self {
            ChargeModel::Standard { amount } => {
                let total = units * amount;
                Priced { amount: total, unit_amount: ratio(total, per_unit_base) }
            }
            ChargeModel::Graduated { ranges } => {
                let total = match &usage.prorated_events {
                    Some(events) => prorated_graduated(ranges, events),
                    None => graduated(ranges, units),
                };
                Priced { amount: total, unit_amount: ratio(total, per_unit_base) }
            }
            ChargeModel::Volume { ranges } => {
                let n = per_unit_base;
                let ceiling = n.ceil();
                let range = ranges
                    .iter()
                    .find(|r| r.from <= ceiling && r.to.is_none_or(|to| n <= to))
                    .ok_or(ModelError::NoVolumeRange(n))?;
                let total = units * range.per_unit_amount + range.flat_amount;
                Priced { amount: total, unit_amount: ratio(total, n) }
            }
            ChargeModel::Package { amount, package_size, free_units } => {
                let paid = units - free_units;
                if paid <= Decimal::ZERO || package_size.is_zero() {
                    Priced { amount: Decimal::ZERO, unit_amount: Decimal::ZERO }
                } else {
                    let packages = (paid / package_size).ceil();
                    let total = packages * amount;
                    Priced { amount: total, unit_amount: ratio(total, paid) }
                }
            }
            ChargeModel::Percentage(p) => {
                let total = percentage(p, usage);
                Priced { amount: total, unit_amount: ratio(total, per_unit_base) }
            }
            ChargeModel::GraduatedPercentage { ranges } => {
                let total = graduated_percentage(ranges, units);
                Priced { amount: total, unit_amount: ratio(total, per_unit_base) }
            }
            ChargeModel::Dynamic => {
                let total = if per_unit_base.is_zero() || usage.subunit_to_unit.is_zero() {
                    Decimal::ZERO
                } else {
                    usage.precise_total_amount_cents / usage.subunit_to_unit
                };
                Priced { amount: total, unit_amount: ratio(total, units) }
            }
        })
    }
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

fn required(p: &Map<String, Value>, key: &'static str) -> Result<Decimal, ModelError> {
    p.get(key).and_then(decimal).ok_or(ModelError::BadProperty(key))
}

fn optional(p: &Map<String, Value>, key: &'static str) -> Result<Option<Decimal>, ModelError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => decimal(v).map(Some).ok_or(ModelError::BadProperty(key)),
    }
}

/// Tiers as stored; `price_key` is `per_unit_amount` or `rate`.
fn ranges(
    p: &Map<String, Value>,
    key: &'static str,
    price_key: &'static str,
) -> Result<Vec<GraduatedRange>, ModelError> {
    let list = p.get(key).and_then(Value::as_array).ok_or(ModelError::BadProperty(key))?;
    list.iter()
        .map(|r| {
            let r = r.as_object().ok_or(ModelError::BadProperty(key))?;
            Ok(GraduatedRange {
                from: required(r, "from_value")?,
                to: optional(r, "to_value")?,
                per_unit_amount: required(r, price_key)?,
                flat_amount: optional(r, "flat_amount")?.unwrap_or_default(),
            })
        })
        .collect()
}

/// Lago walks tiers in order and stops after the first that holds the total; tier 1 is always reached.
fn reached<'a, T>(
    tiers: &'a [T],
    to: impl Fn(&T) -> Option<Decimal> + 'a,
    total: Decimal,
) -> impl Iterator<Item = &'a T> + 'a {
    let mut done = false;
    tiers.iter().take_while(move |t| {
        if done {
            return false;
        }
        done = to(t).is_none_or(|to| to >= total);
        true
    })
}

fn graduated(ranges: &[GraduatedRange], total: Decimal) -> Decimal {
    // "Adjacent" tiers (0-10, 10-20) hold `to - from` units; "+1" tiers (0-10, 11-20) hold `to - from + 1`. The
    // style is decided once for the whole list.
    let adjacent = ranges.len() >= 2 && ranges.windows(2).all(|w| Some(w[1].from) == Some(w[0].to.unwrap_or_default()));
    reached(ranges, |r| r.to, total)
        .map(|r| {
            let upto = r.to.map_or(total, |to| total.min(to));
            let units = if r.from.is_zero() {
                upto
            } else if adjacent {
                upto - r.from
            } else {
                upto - r.from + Decimal::ONE
            };
            units * r.per_unit_amount + r.flat_amount
        })
        .sum()
}

/// Where each tier starts, as a cumulative unit count: a tier holds the units in `(start, to]`.
fn tier_starts(ranges: &[GraduatedRange]) -> Vec<Decimal> {
    let adjacent = ranges.len() >= 2 && ranges.windows(2).all(|w| Some(w[1].from) == Some(w[0].to.unwrap_or_default()));
    ranges.iter().map(|r| if r.from.is_zero() || adjacent { r.from } else { r.from - Decimal::ONE }).collect()
}

/// A prorated graduated price: the tier of each unit follows the running count of full units, and each unit is
/// paid at its tier's price times the share of the period its event covered. Removals lower the running count and
/// cost nothing. Flat fees are due for every tier the highest running count reached.
fn prorated_graduated(ranges: &[GraduatedRange], events: &[(Decimal, Decimal)]) -> Decimal {
    let starts = tier_starts(ranges);
    let mut running = Decimal::ZERO;
    let mut highest = Decimal::ZERO;
    let mut amount = Decimal::ZERO;
    for &(full, prorated) in events {
        if full <= Decimal::ZERO {
            // A removal (or a decrease) frees units; one whose add was never counted cannot go below zero.
            running = (running + full).max(Decimal::ZERO);
            continue;
        }
        if prorated.is_zero() {
            // Added and gone before the period: it holds no place in the tiers.
            continue;
        }
        let share = prorated / full;
        let (low, high) = (running, running + full);
        for (r, start) in ranges.iter().zip(&starts) {
            let top = r.to.unwrap_or(high).min(high);
            let bottom = low.max(*start);
            if top > bottom {
                amount += (top - bottom) * share * r.per_unit_amount;
            }
        }
        running = high;
        highest = highest.max(running);
    }
    let flats: Decimal = reached(ranges, |r| r.to, highest).map(|r| r.flat_amount).sum();
    amount.max(Decimal::ZERO) + flats
}

fn graduated_percentage(ranges: &[PercentageRange], total: Decimal) -> Decimal {
    let hundred = Decimal::ONE_HUNDRED;
    reached(ranges, |r| r.to, total)
        .map(|r| {
            let units = match r.to {
                Some(to) if total >= to => to - if r.from.is_zero() { Decimal::ONE } else { r.from } + Decimal::ONE,
                _ if r.from.is_zero() => total,
                _ => total - r.from + Decimal::ONE,
            };
            units * r.rate / hundred + r.flat_amount
        })
        .sum()
}

/// Running totals of event values that the free units look at: the first N events, else events up to and including
/// the one that passes F.
fn running_total(p: &Percentage, values: &[Decimal]) -> Vec<Decimal> {
    let n = p.free_units_per_events;
    let f = p.free_units_per_total_aggregation;
    let mut out = Vec::new();
    if n == 0 && f.is_zero() {
        return out;
    }
    let mut sum = Decimal::ZERO;
    for (i, v) in values.iter().enumerate() {
        if n > 0 {
            if i as u64 >= n {
                break;
            }
        } else if f < sum {
            break;
        }
        sum += v;
        out.push(sum);
    }
    out
}

fn percentage(p: &Percentage, usage: &Usage) -> Decimal {
    let hundred = Decimal::ONE_HUNDRED;
    if p.per_transaction_min_amount.is_some() || p.per_transaction_max_amount.is_some() {
        return percentage_per_transaction(p, &usage.event_values);
    }
    let units = usage.units;
    let running = running_total(p, &usage.event_values);
    let n = p.free_units_per_events;
    let f = p.free_units_per_total_aggregation;
    let free_value = match running.last() {
        None => Decimal::ZERO,
        Some(last) if last.is_zero() => Decimal::ZERO,
        Some(_) if n > 0 && (n as usize) < running.len() => running[n as usize - 1],
        Some(&last) => {
            if f.is_zero() || last <= f {
                last
            } else {
                f
            }
        }
    };
    let under_f = running.iter().filter(|t| **t < f).count() as u64;
    let free_count = [n, under_f].into_iter().filter(|c| *c > 0).min().unwrap_or(0);
    let rated = if free_value > units { Decimal::ZERO } else { (units - free_value) * p.rate / hundred };
    let fixed = match p.fixed_amount {
        Some(fixed) if !units.is_zero() && free_count < usage.events_count => {
            Decimal::from(usage.events_count - free_count) * fixed
        }
        _ => Decimal::ZERO,
    };
    rated + fixed
}

/// Each transaction priced alone and bounded by the per-transaction minimum and maximum.
fn percentage_per_transaction(p: &Percentage, values: &[Decimal]) -> Decimal {
    let hundred = Decimal::ONE_HUNDRED;
    let mut free_events = p.free_units_per_events;
    let mut free_amount = p.free_units_per_total_aggregation;
    let mut total = Decimal::ZERO;
    for &value in values {
        let mut v = value;
        if free_events > 0 || free_amount > Decimal::ZERO {
            free_events = free_events.saturating_sub(1);
            if free_amount.is_zero() {
                continue;
            }
            if free_amount > v {
                free_amount -= v;
                continue;
            }
            v -= free_amount;
            free_amount = Decimal::ZERO;
            free_events = 0;
        }
        let mut e = v * p.rate / hundred + p.fixed_amount.unwrap_or_default();
        if let Some(min) = p.per_transaction_min_amount
            && e < min
        {
            e = min;
        } else if let Some(max) = p.per_transaction_max_amount
            && e > max
        {
            e = max;
        }
        total += e;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn usage(units: &str) -> Usage {
        Usage { units: d(units), subunit_to_unit: d("100"), ..Usage::default() }
    }

    fn model(name: &str, props: Value) -> ChargeModel {
        match props {
            Value::Object(m) => ChargeModel::from_properties(name, &m).unwrap(),
            _ => unreachable!(),
        }
    }

    fn amount(m: &ChargeModel, u: &Usage) -> Decimal {
        m.price(u).unwrap().amount.normalize()
    }

    #[test]
    fn standard() {
        let m = model("standard", json!({"amount": "5.12345"}));
        let p = m.price(&usage("10")).unwrap();
        assert_eq!((p.amount, p.unit_amount), (d("51.2345"), d("5.12345")));
        let prorated = Usage { full_units: Some(d("100")), ..usage("10") };
        assert_eq!(m.price(&prorated).unwrap().unit_amount, d("0.512345"));
        assert_eq!(amount(&m, &usage("0")), d("0"));
    }

    fn plus_one_tiers() -> ChargeModel {
        model(
            "graduated",
            json!({"graduated_ranges": [
                {"from_value": 0, "to_value": 10, "per_unit_amount": "10", "flat_amount": "2"},
                {"from_value": 11, "to_value": 20, "per_unit_amount": "5", "flat_amount": "3"},
                {"from_value": 21, "to_value": null, "per_unit_amount": "5", "flat_amount": "3"}
            ]}),
        )
    }

    #[test]
    fn graduated_lago_examples() {
        let m = plus_one_tiers();
        for (units, expected) in [("0", "2"), ("1", "12"), ("10", "102"), ("11", "110"), ("12", "115"), ("21", "163")] {
            assert_eq!(amount(&m, &usage(units)), d(expected), "{units} units");
        }
        assert_eq!(m.price(&usage("10")).unwrap().unit_amount, d("10.2"));
        assert_eq!(m.price(&usage("0")).unwrap().unit_amount, d("0"));
    }

    #[test]
    fn prorated_graduated_prices_each_unit_at_its_tier_and_its_events_share() {
        let m = plus_one_tiers();
        let prorated = |events: &[(&str, &str)]| Usage {
            prorated_events: Some(events.iter().map(|(f, p)| (d(f), d(p))).collect()),
            ..usage("0")
        };
        // 8 units all month (8 × 10), then 6 more for half of it: 2 in tier 1 (2 × 0.5 × 10), 4 in tier 2
        // (4 × 0.5 × 5); flats of tiers 1 and 2.
        assert_eq!(amount(&m, &prorated(&[("8", "8"), ("6", "3")])), d("80") + d("10") + d("10") + d("5"));
        // A removal frees its place: the next add starts in tier 1 again.
        assert_eq!(amount(&m, &prorated(&[("10", "5"), ("-4", "0"), ("4", "2")])), d("50") + d("20") + d("2"));
        // Added and gone before the period: no place, no price; nothing at all still owes the first flat fee.
        assert_eq!(amount(&m, &prorated(&[("1", "0"), ("-1", "0")])), d("2"));
        // One event across all three tiers, for a third of the period: 25 units.
        let third = d("25") / d("3");
        let expected = (d("10") * d("10") + d("10") * d("5") + d("5") * d("5")) / d("3") + d("8");
        assert_eq!(amount(&m, &prorated(&[("25", &third.to_string())])).round_dp(10), expected.round_dp(10));
    }

    #[test]
    fn graduated_adjacent_decimal_tiers() {
        let m = model(
            "graduated",
            json!({"graduated_ranges": [
                {"from_value": 0, "to_value": "0.1", "per_unit_amount": "10", "flat_amount": "0"},
                {"from_value": "0.1", "to_value": 1, "per_unit_amount": "5", "flat_amount": "0"},
                {"from_value": 1, "to_value": null, "per_unit_amount": "2", "flat_amount": "0"}
            ]}),
        );
        assert_eq!(amount(&m, &usage("0.05")), d("0.5"));
        assert_eq!(amount(&m, &usage("0.5")), d("3"));
        assert_eq!(amount(&m, &usage("1.5")), d("1") + d("4.5") + d("1"));
    }

    #[test]
    fn graduated_free_first_tier_costs_nothing_at_zero() {
        let m = model(
            "graduated",
            json!({"graduated_ranges": [
                {"from_value": 0, "to_value": "0.01", "per_unit_amount": "0", "flat_amount": "0"},
                {"from_value": "0.01", "to_value": 10, "per_unit_amount": "10", "flat_amount": "2"},
                {"from_value": 11, "to_value": null, "per_unit_amount": "5", "flat_amount": "3"}
            ]}),
        );
        assert_eq!(amount(&m, &usage("0")), d("0"));
        // Lago's mixed-style quirk: not every pair is adjacent, so the +1 rule applies to tier 2.
        assert_eq!(amount(&m, &usage("5")), d("59.9") + d("2"));
    }

    fn volume() -> ChargeModel {
        model(
            "volume",
            json!({"volume_ranges": [
                {"from_value": 0, "to_value": 100, "per_unit_amount": "2", "flat_amount": "10"},
                {"from_value": 101, "to_value": 200, "per_unit_amount": "1", "flat_amount": "0"},
                {"from_value": 201, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "50"}
            ]}),
        )
    }

    #[test]
    fn volume_lago_examples() {
        let m = volume();
        for (units, expected) in [
            ("0", "10"),
            ("1", "12"),
            ("100", "210"),
            ("100.5", "100.5"),
            ("101", "101"),
            ("200", "200"),
            ("300", "200"),
        ] {
            assert_eq!(amount(&m, &usage(units)), d(expected), "{units} units");
        }
        assert_eq!(m.price(&usage("100")).unwrap().unit_amount, d("2.1"));
        let prorated = Usage { full_units: Some(d("300")), ..usage("198.6") };
        assert_eq!(amount(&m, &prorated), d("149.3"));
    }

    #[test]
    fn package_lago_examples() {
        let m = |free: u32| model("package", json!({"amount": "100", "package_size": 10, "free_units": free}));
        for (units, free, expected) in [
            ("121", 0, "1300"),
            ("121", 10, "1200"),
            ("121", 200, "0"),
            ("3", 0, "100"),
            ("15", 0, "200"),
            ("3", 5, "0"),
            ("12", 5, "100"),
            ("0", 0, "0"),
        ] {
            assert_eq!(amount(&m(free), &usage(units)), d(expected), "{units} units, {free} free");
        }
        assert_eq!(m(0).price(&usage("121")).unwrap().unit_amount.round_dp(2), d("10.74"));
    }

    fn pct_usage(units: &str, count: u64, values: &[&str]) -> Usage {
        Usage { events_count: count, event_values: values.iter().map(|v| d(v)).collect(), ..usage(units) }
    }

    #[test]
    fn percentage_lago_examples() {
        // Events of 50, 100, 250 and 400 (800 in all); running totals as Lago computes them.
        let events = ["50", "100", "250", "400"];
        let m = |n: u64, f: &str| {
            ChargeModel::Percentage(Percentage {
                rate: d("1.3"),
                fixed_amount: Some(d("2")),
                free_units_per_events: n,
                free_units_per_total_aggregation: d(f),
                ..Percentage::default()
            })
        };
        assert_eq!(amount(&m(3, "250"), &pct_usage("800", 4, &events)), d("11.15"));
        assert_eq!(amount(&m(0, "250"), &pct_usage("800", 4, &events)), d("11.15"));
        assert_eq!(amount(&m(3, "0"), &pct_usage("800", 4, &events)), d("7.2"));
        assert_eq!(amount(&m(3, "500"), &pct_usage("800", 4, &events)), d("7.2"));
        assert_eq!(amount(&m(0, "0"), &pct_usage("800", 4, &events)), d("18.4"));
        assert_eq!(amount(&m(3, "250"), &pct_usage("0", 0, &[])), d("0"));
        let rate_only = ChargeModel::Percentage(Percentage { rate: d("2.9"), ..Percentage::default() });
        assert_eq!(amount(&rate_only, &pct_usage("4", 1, &["4"])), d("0.116"));
        let all_free = m(5, "0");
        assert_eq!(amount(&all_free, &pct_usage("400", 4, &["100", "100", "100", "100"])), d("0"));
    }

    #[test]
    fn percentage_with_per_transaction_bounds() {
        let events = ["10", "80", "10000"];
        let m = |fixed: Option<&str>, n: u64, f: &str| {
            ChargeModel::Percentage(Percentage {
                rate: d("2.99"),
                fixed_amount: fixed.map(d),
                free_units_per_events: n,
                free_units_per_total_aggregation: d(f),
                per_transaction_min_amount: Some(d("1.75")),
                per_transaction_max_amount: Some(d("12")),
            })
        };
        let u = pct_usage("10090", 3, &events);
        assert_eq!(amount(&m(None, 0, "0"), &u), d("16.142"));
        assert_eq!(amount(&m(Some("2"), 0, "0"), &u), d("18.691"));
        assert_eq!(amount(&m(None, 2, "0"), &u), d("12"));
        assert_eq!(amount(&m(None, 0, "30"), &u), d("13.794"));
        assert_eq!(amount(&m(None, 3, "10000"), &u), d("2.691"));
    }

    #[test]
    fn graduated_percentage_lago_examples() {
        let m = model(
            "graduated_percentage",
            json!({"graduated_percentage_ranges": [
                {"from_value": 0, "to_value": 10, "rate": "1", "flat_amount": "200"},
                {"from_value": 11, "to_value": 20, "rate": "2", "flat_amount": "300"},
                {"from_value": 21, "to_value": null, "rate": "3", "flat_amount": "400"}
            ]}),
        );
        for (units, expected) in
            [("0", "200"), ("1", "200.01"), ("10", "200.1"), ("11", "500.12"), ("12", "500.14"), ("21", "900.33")]
        {
            assert_eq!(amount(&m, &usage(units)), d(expected), "{units} units");
        }
        let doc = model(
            "graduated_percentage",
            json!({"graduated_percentage_ranges": [
                {"from_value": 0, "to_value": 1000, "rate": "1", "flat_amount": "200"},
                {"from_value": 1001, "to_value": 10000, "rate": "2", "flat_amount": "300"},
                {"from_value": 10001, "to_value": null, "rate": "3", "flat_amount": "400"}
            ]}),
        );
        assert_eq!(amount(&doc, &usage("500")), d("205"));
    }

    #[test]
    fn dynamic_sums_the_sent_prices() {
        let u = Usage { precise_total_amount_cents: d("40.2"), ..usage("20") };
        let p = ChargeModel::Dynamic.price(&u).unwrap();
        assert_eq!((p.amount, p.unit_amount), (d("0.402"), d("0.0201")));
        assert_eq!(amount(&ChargeModel::Dynamic, &usage("0")), d("0"));
    }

    #[test]
    fn bad_properties_are_errors() {
        let Value::Object(m) = json!({"amount": "ten"}) else { unreachable!() };
        assert_eq!(ChargeModel::from_properties("standard", &m), Err(ModelError::BadProperty("amount")));
        assert!(matches!(ChargeModel::from_properties("magic", &m), Err(ModelError::UnknownModel(_))));
    }
}
