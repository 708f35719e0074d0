//! One-off invoices as pure rules (Lago's `POST /invoices`): reading the request, choosing the invoice's currency,
//! pricing each add-on fee (units × unit amount, the add-on's amount by default) and choosing its taxes. The
//! adapter (`crate::one_off`) looks the customer and add-ons up, calls these, then `invoicing::compute` for the
//! totals, and writes the invoice in one transaction.
//!
//! Lago checks a request in this order and answers the first failure: unknown customer, no fees
//! (`fees_not_found`), an unknown add-on, then the fields (422). [`parse`] keeps the first three apart from the
//! 422s so the adapter can answer in that order.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use schemas::ValidationErrors;
use schemas::input::Fields;
use serde_json::{Map, Value};

use super::lists::CURRENCIES;

/// One requested fee.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeeInput {
    /// `None` (absent or not a string) finds no add-on: Lago answers `add_on_not_found`.
    pub add_on_code: Option<String>,
    pub unit_amount_cents: Option<i64>,
    pub units: Option<Decimal>,
    pub description: Option<String>,
    pub invoice_display_name: Option<String>,
    /// Sent and non-empty: exactly these taxes (codes that name no tax are ignored, as Lago does).
    pub tax_codes: Option<Vec<String>>,
    pub from_datetime: Option<DateTime<Utc>>,
    pub to_datetime: Option<DateTime<Utc>>,
}

/// The request, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OneOffInput {
    pub external_customer_id: Option<String>,
    pub currency: Option<String>,
    /// Empty when `fees` is absent, null, empty or not a list: Lago's `fees_not_found`.
    pub fees: Vec<FeeInput>,
    /// The field errors (422), answered after the lookups Lago makes first.
    pub errors: ValidationErrors,
}

fn datetime(raw: Option<&Value>) -> Result<Option<DateTime<Utc>>, ()> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

fn parse_fee(map: &Map<String, Value>, errors: &mut ValidationErrors) -> FeeInput {
    let mut f = Fields::new(map);
    // Rails takes a number for the code as its text, and drops a list or an object (no add-on is found then).
    let add_on_code = match f.raw("add_on_code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let unit_amount_cents = f.int("unit_amount_cents").value();
    let units = f.decimal("units").value();
    let description = f.string("description").value();
    // Lago keeps a display name only when it is not blank.
    let invoice_display_name = f.string("invoice_display_name").value().filter(|s| !s.trim().is_empty());
    let tax_codes = f.strings("tax_codes").value().filter(|c| !c.is_empty());
    // Both bounds or neither, valid, in order; else Lago's `boundaries: values_are_invalid`.
    let (from, to) = (datetime(map.get("from_datetime")), datetime(map.get("to_datetime")));
    let (from_datetime, to_datetime) = match (from, to) {
        (Ok(None), Ok(None)) => (None, None),
        (Ok(Some(a)), Ok(Some(b))) if a <= b => (Some(a), Some(b)),
        _ => {
            errors.add("boundaries", "values_are_invalid");
            (None, None)
        }
    };
    if units.is_some_and(|u| u.is_sign_negative() && !u.is_zero()) {
        errors.add("units", "value_is_out_of_range");
    }
    errors.merge(f.errors);
    FeeInput {
        add_on_code,
        unit_amount_cents,
        units,
        description,
        invoice_display_name,
        tax_codes,
        from_datetime,
        to_datetime,
    }
}

/// Reads the `invoice` object. Never fails: what Lago answers with a 404 is left for the lookups, the rest is in
/// `errors`.
pub fn parse(map: &Map<String, Value>) -> OneOffInput {
    let mut f = Fields::new(map);
    let external_customer_id = f.string("external_customer_id").value();
    let currency = f.string("currency").value().filter(|c| !c.is_empty());
    let mut errors = f.errors;
    // Rails' strong parameters drop a `fees` that is not a list of objects, which Lago then finds blank.
    let fees = match map.get("fees") {
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
            items.iter().filter_map(Value::as_object).map(|m| parse_fee(m, &mut errors)).collect()
        }
        _ => Vec::new(),
    };
    OneOffInput { external_customer_id, currency, fees, errors }
}

/// The invoice's currency: the one asked for, else the customer's. Neither is Lago's `value_is_mandatory`; a code
/// Billstream does not know is `value_is_invalid` (Lago fails later, on the fee's currency).
pub fn currency(requested: Option<&str>, customer: Option<&str>) -> Result<String, ValidationErrors> {
    let mut e = ValidationErrors::new();
    match requested.or(customer) {
        None => e.add("currency", "value_is_mandatory"),
        Some(c) if !CURRENCIES.contains(&c) => e.add("currency", "value_is_invalid"),
        Some(c) => return Ok(c.to_owned()),
    }
    Err(e)
}

/// An add-on fee's amounts: `(amount_cents, precise_amount_cents)` for `units` (1 by default) at
/// `unit_amount_cents`, rounded half away from zero as Lago rounds it.
pub fn fee_amount(unit_amount_cents: i64, units: Option<Decimal>) -> (i64, Decimal) {
    use rust_decimal::prelude::ToPrimitive;
    let precise = Decimal::from(unit_amount_cents) * units.unwrap_or(Decimal::ONE);
    let cents = precise.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero).to_i64().unwrap_or(0);
    (cents, precise)
}

/// Lago's tax hierarchy for an add-on fee: the fee's own `tax_codes` when sent (even if none of them exists),
/// else the add-on's taxes, else the customer's, else the organization's.
pub fn fee_taxes<T: Clone>(explicit: Option<Vec<T>>, add_on: &[T], customer: &[T], organization: &[T]) -> Vec<T> {
    if let Some(taxes) = explicit {
        return taxes;
    }
    [add_on, customer, organization].into_iter().find(|l| !l.is_empty()).map(<[T]>::to_vec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn reads_fees_and_collects_field_errors() {
        let input = parse(&obj(json!({
            "external_customer_id": "acme", "currency": "EUR",
            "fees": [
                {"add_on_code": "setup", "units": "2.5", "unit_amount_cents": 1000, "invoice_display_name": " ",
                 "tax_codes": ["vat"]},
                {"add_on_code": "support", "units": -1, "from_datetime": "2026-01-02T00:00:00Z",
                 "to_datetime": "2026-01-01T00:00:00Z"},
                {"units": "x"}
            ]
        })));
        assert_eq!(input.fees.len(), 3);
        assert_eq!(input.fees[0].units, Some(Decimal::from_str("2.5").unwrap()));
        assert_eq!(input.fees[0].invoice_display_name, None);
        assert_eq!(input.fees[0].tax_codes, Some(vec!["vat".to_owned()]));
        assert_eq!(input.fees[2].add_on_code, None);
        let numeric = parse(&obj(json!({"fees": [{"add_on_code": 42}, {"add_on_code": {"a": 1}}]})));
        assert_eq!(
            (numeric.fees[0].add_on_code.as_deref(), numeric.fees[1].add_on_code.as_deref()),
            (Some("42"), None)
        );
        assert_eq!(input.errors.get("units").unwrap(), ["value_is_out_of_range", "value_is_invalid"]);
        assert_eq!(input.errors.get("boundaries").unwrap(), ["values_are_invalid"]);
    }

    #[test]
    fn fees_that_are_not_a_list_of_objects_are_no_fees() {
        for fees in [json!(null), json!("x"), json!([]), json!([1])] {
            assert!(parse(&obj(json!({"external_customer_id": "a", "fees": fees}))).fees.is_empty());
        }
    }

    #[test]
    fn currency_is_the_requested_one_else_the_customers() {
        assert_eq!(currency(Some("USD"), Some("EUR")).unwrap(), "USD");
        assert_eq!(currency(None, Some("EUR")).unwrap(), "EUR");
        assert_eq!(currency(None, None).unwrap_err().get("currency").unwrap(), ["value_is_mandatory"]);
        assert_eq!(currency(Some("XXX"), None).unwrap_err().get("currency").unwrap(), ["value_is_invalid"]);
    }

    #[test]
    fn amounts_round_half_away_from_zero_and_keep_the_precise_value() {
        assert_eq!(fee_amount(1000, None), (1000, Decimal::from(1000)));
        assert_eq!(
            fee_amount(333, Some(Decimal::from_str("1.5").unwrap())),
            (500, Decimal::from_str("499.5").unwrap())
        );
        assert_eq!(fee_amount(1, Some(Decimal::from_str("0.49").unwrap())).0, 0);
    }

    #[test]
    fn taxes_come_from_the_first_level_that_has_some() {
        let (own, add_on, customer, org) = (vec![1], vec![2], vec![3], vec![4]);
        assert_eq!(fee_taxes(Some(own), &add_on, &customer, &org), [1]);
        assert_eq!(fee_taxes(Some(vec![]), &add_on, &customer, &org), Vec::<i32>::new());
        assert_eq!(fee_taxes(None, &add_on, &customer, &org), [2]);
        assert_eq!(fee_taxes(None, &[], &customer, &org), [3]);
        assert_eq!(fee_taxes(None, &[], &[], &org), [4]);
    }
}
