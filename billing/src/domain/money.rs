//! Currencies and the one place amounts are rounded: a fee's amount, in major units, becomes an integer number of
//! the currency's subunits (`amount_cents`), rounded half away from zero at the currency's precision, as Lago does.

use rust_decimal::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};

/// A currency Billstream bills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    pub code: &'static str,
    /// Subunits per unit: 100 for EUR, 1 for JPY, 1000 for KWD.
    pub subunit_to_unit: u32,
}

/// Currencies whose subunit is not a hundredth (every other currency uses 100). Lago's source also accepts the
/// three-decimal BHD, JOD and KWD, which its OpenAPI spec does not list; they are kept here for their precision.
const SPECIAL: [(&str, u32); 23] = [
    ("BIF", 1),
    ("CLP", 1),
    ("DJF", 1),
    ("GNF", 1),
    ("HUF", 1),
    ("ISK", 1),
    ("JPY", 1),
    ("KMF", 1),
    ("KRW", 1),
    ("MGA", 1),
    ("PYG", 1),
    ("RWF", 1),
    ("UGX", 1),
    ("VND", 1),
    ("VUV", 1),
    ("XAF", 1),
    ("XOF", 1),
    ("XPF", 1),
    ("BHD", 1000),
    ("JOD", 1000),
    ("KWD", 1000),
    ("CLF", 10000),
    ("MRO", 5),
];

impl Currency {
    /// The currency with this ISO code, if the API accepts it (the currencies of Lago's OpenAPI spec).
    pub fn from_code(code: &str) -> Option<Currency> {
        let code = super::lists::CURRENCIES.iter().find(|c| **c == code)?;
        let subunit_to_unit = SPECIAL.iter().find(|(c, _)| c == code).map_or(100, |(_, s)| *s);
        Some(Currency { code, subunit_to_unit })
    }

    /// Decimal places of an amount in major units: `round(log10(subunit_to_unit))` (MRO's 5 subunits give 1).
    pub fn exponent(&self) -> u32 {
        match self.subunit_to_unit {
            0 | 1 => 0,
            n => (f64::from(n)).log10().round() as u32,
        }
    }

    pub fn subunits(&self) -> Decimal {
        Decimal::from(self.subunit_to_unit)
    }

    /// `amount_cents`: the amount rounded half away from zero at the currency's precision, in subunits.
    pub fn to_cents(&self, amount: Decimal) -> i64 {
        let rounded = amount.round_dp_with_strategy(self.exponent(), RoundingStrategy::MidpointAwayFromZero);
        (rounded * self.subunits()).round().to_i64().unwrap_or(if amount.is_sign_negative() {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    /// `precise_amount_cents`: the unrounded amount in subunits.
    pub fn to_precise_cents(&self, amount: Decimal) -> Decimal {
        amount * self.subunits()
    }

    /// `unit_amount_cents`: truncated to whole subunits, as Rails casts it.
    pub fn to_unit_cents(&self, unit_amount: Decimal) -> i64 {
        (unit_amount * self.subunits()).trunc().to_i64().unwrap_or_default()
    }
}

/// The true-up fee that brings a charge to its minimum spend over a (possibly partial) period: the minimum is prorated
/// by days, and what the charge's fees already cost is deducted. `None` when nothing is due.
pub fn min_spend_true_up(min_amount_cents: i64, used_cents: i64, days: u32, period_days: u32) -> Option<i64> {
    if min_amount_cents <= 0 || period_days == 0 {
        return None;
    }
    let prorated = Decimal::from(min_amount_cents) / Decimal::from(period_days) * Decimal::from(days);
    let due = prorated - Decimal::from(used_cents);
    if due <= Decimal::ZERO {
        return None;
    }
    due.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero).to_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn rounding_is_half_away_from_zero_at_the_currency_precision() {
        let eur = Currency::from_code("EUR").unwrap();
        assert_eq!(eur.to_cents(d("0.125")), 13, "not banker's rounding");
        assert_eq!(eur.to_cents(d("10.12345")), 1012);
        assert_eq!(eur.to_precise_cents(d("10.12345")), d("1012.345"));
        assert_eq!(eur.to_cents(d("0.402")), 40);
        assert_eq!(eur.to_cents(d("-0.125")), -13);
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!((jpy.exponent(), jpy.to_cents(d("1234.5"))), (0, 1235));
        let kwd = Currency { code: "KWD", subunit_to_unit: 1000 };
        assert_eq!((kwd.exponent(), kwd.to_cents(d("1.2345"))), (3, 1235));
        let clf = Currency::from_code("CLF").unwrap();
        assert_eq!((clf.exponent(), clf.to_cents(d("1.23456"))), (4, 12346));
        let mro = Currency::from_code("MRO").unwrap();
        assert_eq!((mro.exponent(), mro.to_cents(d("1.24"))), (1, 6));
        assert_eq!(eur.to_unit_cents(d("10.12345")), 1012);
    }

    #[test]
    fn unknown_currencies_are_refused() {
        assert!(Currency::from_code("XXX").is_none());
        assert!(Currency::from_code("eur").is_none());
        assert_eq!(Currency::from_code("USD").map(|c| c.subunit_to_unit), Some(100));
    }

    #[test]
    fn minimum_spend_lago_examples() {
        assert_eq!(min_spend_true_up(1000, 700, 31, 31), Some(300));
        assert_eq!(min_spend_true_up(1000, 200, 15, 31), Some(284));
        assert_eq!(min_spend_true_up(1000, 0, 17, 31), Some(548));
        assert_eq!(min_spend_true_up(1000, 1000, 31, 31), None);
        assert_eq!(min_spend_true_up(0, 0, 31, 31), None);
    }
}
