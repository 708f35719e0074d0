//! Coupons (a fixed amount or a percentage off, once / recurring for N periods / forever, optionally expiring,
//! optionally limited to plans or to billable metrics) and the reading of applied-coupon overrides.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::lists::CURRENCIES;
use super::subscription::parse_datetime;

pub const COUPON_TYPES: [&str; 2] = ["fixed_amount", "percentage"];
pub const FREQUENCIES: [&str; 3] = ["once", "recurring", "forever"];
pub const EXPIRATIONS: [&str; 2] = ["no_expiration", "time_limit"];

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CouponAttrs {
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub coupon_type: String,
    pub amount_cents: Option<i64>,
    pub amount_currency: Option<String>,
    pub percentage_rate: Option<Decimal>,
    pub frequency: String,
    pub frequency_duration: Option<i64>,
    pub reusable: bool,
    pub expiration: String,
    pub expiration_at: Option<DateTime<Utc>>,
}

/// What the coupon is limited to; `None` leaves the limitation as it is (update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliesTo {
    pub plan_codes: Option<Vec<String>>,
    pub billable_metric_codes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct CouponInput {
    pub name: Field<String>,
    pub code: Field<String>,
    pub description: Field<String>,
    pub coupon_type: Field<String>,
    pub amount_cents: Field<i64>,
    pub amount_currency: Field<String>,
    pub percentage_rate: Field<Decimal>,
    pub frequency: Field<String>,
    pub frequency_duration: Field<i64>,
    pub reusable: Field<bool>,
    pub expiration: Field<String>,
    pub expiration_at: Field<String>,
    pub applies_to: AppliesTo,
}

impl CouponInput {
    pub fn requested_code(&self) -> Option<&str> {
        match &self.code {
            Field::Value(c) => Some(c.as_str()),
            _ => None,
        }
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

pub fn parse_input(map: &Map<String, Value>) -> Result<CouponInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let mut input = CouponInput {
        name: f.string("name"),
        code: f.string("code"),
        description: f.string("description"),
        coupon_type: f.string("coupon_type"),
        amount_cents: f.int("amount_cents"),
        amount_currency: f.string("amount_currency"),
        percentage_rate: f.decimal("percentage_rate"),
        frequency: f.string("frequency"),
        frequency_duration: f.int("frequency_duration"),
        reusable: f.bool("reusable"),
        expiration: f.string("expiration"),
        expiration_at: f.string("expiration_at"),
        applies_to: AppliesTo::default(),
    };
    if let Field::Value(a) = f.object("applies_to") {
        let mut af = Fields::new(a);
        input.applies_to.plan_codes = af.strings("plan_codes").value().map(dedup);
        input.applies_to.billable_metric_codes = af.strings("billable_metric_codes").value().map(dedup);
        f.errors.merge(af.errors);
    }
    f.errors.into_result().map(|()| input)
}

/// The coupon after a create (`current` none) or update request. Once a coupon has been applied, only its name,
/// description and expiration change (Lago), so what customers were promised stays.
pub fn apply(
    current: Option<&CouponAttrs>,
    input: &CouponInput,
    applied: bool,
    code_taken: bool,
    now: DateTime<Utc>,
) -> Result<CouponAttrs, ValidationErrors> {
    let mut e = ValidationErrors::new();
    let base = current.cloned().unwrap_or_else(|| CouponAttrs { reusable: true, ..CouponAttrs::default() });
    let text = |f: &Field<String>, cur: &str| f.clone().or_keep(Some(cur.to_owned())).unwrap_or_default();
    let mut next = base.clone();
    next.name = text(&input.name, &base.name);
    next.description = input.description.clone().or_keep(base.description.clone());
    next.expiration = text(&input.expiration, &base.expiration);
    match &input.expiration_at {
        Field::Absent => {}
        Field::Null => next.expiration_at = None,
        Field::Value(s) if s.trim().is_empty() => next.expiration_at = None,
        Field::Value(s) => match parse_datetime(s) {
            Some(t) if t > now => next.expiration_at = Some(t),
            _ => e.add("expiration_at", "invalid_date"),
        },
    }
    if !applied {
        next.code = text(&input.code, &base.code);
        next.coupon_type = text(&input.coupon_type, &base.coupon_type);
        next.amount_cents = input.amount_cents.clone().or_keep(base.amount_cents);
        next.amount_currency = input.amount_currency.clone().or_keep(base.amount_currency.clone());
        next.percentage_rate = input.percentage_rate.clone().or_keep(base.percentage_rate);
        next.frequency = text(&input.frequency, &base.frequency);
        next.frequency_duration = input.frequency_duration.clone().or_keep(base.frequency_duration);
        if let Field::Value(r) = input.reusable {
            next.reusable = r;
        }
    }
    if next.name.trim().is_empty() {
        e.add("name", "value_is_mandatory");
    }
    if next.code.trim().is_empty() {
        e.add("code", "value_is_mandatory");
    }
    if code_taken {
        e.add("code", "value_already_exist");
    }
    if !COUPON_TYPES.contains(&next.coupon_type.as_str()) {
        e.add("coupon_type", "value_is_invalid");
    }
    if next.coupon_type == "fixed_amount" {
        if next.amount_cents.is_none() {
            e.add("amount_cents", "value_is_mandatory");
        }
        if next.amount_currency.is_none() {
            e.add("amount_currency", "value_is_mandatory");
        }
    }
    if next.amount_cents.is_some_and(|a| a <= 0) {
        e.add("amount_cents", "value_is_out_of_range");
    }
    if let Some(c) = &next.amount_currency
        && !CURRENCIES.contains(&c.as_str())
    {
        e.add("amount_currency", "value_is_invalid");
    }
    if next.coupon_type == "percentage" {
        match next.percentage_rate {
            None => e.add("percentage_rate", "value_is_mandatory"),
            // Lago only asks for a value; a rate outside (0, 100] would make no sense on an invoice.
            Some(r) if r <= Decimal::ZERO || r > Decimal::ONE_HUNDRED => {
                e.add("percentage_rate", "value_is_out_of_range")
            }
            Some(_) => {}
        }
    }
    if !FREQUENCIES.contains(&next.frequency.as_str()) {
        e.add("frequency", "value_is_invalid");
    }
    if next.frequency == "recurring" {
        match next.frequency_duration {
            None => e.add("frequency_duration", "value_is_mandatory"),
            Some(d) if d <= 0 => e.add("frequency_duration", "value_is_out_of_range"),
            Some(_) => {}
        }
    }
    if next.frequency_duration.is_some_and(|d| d > i64::from(i32::MAX)) {
        e.add("frequency_duration", "value_is_out_of_range");
    }
    if !EXPIRATIONS.contains(&next.expiration.as_str()) {
        e.add("expiration", "value_is_invalid");
    }
    if next.expiration == "time_limit" && next.expiration_at.is_none() && !e.has("expiration_at") {
        e.add("expiration_at", "invalid_date");
    }
    if next.expiration == "no_expiration" {
        next.expiration_at = None;
    }
    e.into_result().map(|()| next)
}

/// An applied coupon's own terms: the coupon's, unless the request overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedTerms {
    pub amount_cents: Option<i64>,
    pub amount_currency: Option<String>,
    pub percentage_rate: Option<Decimal>,
    pub frequency: String,
    pub frequency_duration: Option<i64>,
}

pub fn applied_terms(coupon: &CouponAttrs, overrides: &Map<String, Value>) -> Result<AppliedTerms, ValidationErrors> {
    let mut f = Fields::new(overrides);
    let terms = AppliedTerms {
        amount_cents: f.int("amount_cents").value().or(coupon.amount_cents),
        amount_currency: f.string("amount_currency").value().or_else(|| coupon.amount_currency.clone()),
        percentage_rate: f.decimal("percentage_rate").value().or(coupon.percentage_rate),
        frequency: f.string("frequency").value().unwrap_or_else(|| coupon.frequency.clone()),
        frequency_duration: f.int("frequency_duration").value().or(coupon.frequency_duration),
    };
    let mut e = f.errors;
    if terms.amount_cents.is_some_and(|a| a <= 0) {
        e.add("amount_cents", "value_is_out_of_range");
    }
    if let Some(c) = &terms.amount_currency
        && !CURRENCIES.contains(&c.as_str())
    {
        e.add("amount_currency", "value_is_invalid");
    }
    if !FREQUENCIES.contains(&terms.frequency.as_str()) {
        e.add("frequency", "value_is_invalid");
    }
    if terms.frequency == "recurring" && terms.frequency_duration.is_none_or(|d| d <= 0 || d > i64::from(i32::MAX)) {
        e.add("frequency_duration", "value_is_out_of_range");
    }
    e.into_result().map(|()| terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_datetime("2026-11-25T12:00:00Z").unwrap()
    }

    fn input(v: Value) -> CouponInput {
        let Value::Object(m) = v else { unreachable!() };
        parse_input(&m).unwrap()
    }

    #[test]
    fn fixed_amount_needs_amount_and_currency() {
        let e = apply(
            None,
            &input(json!({"name": "N", "code": "c", "coupon_type": "fixed_amount",
            "frequency": "once", "expiration": "no_expiration"})),
            false,
            false,
            now(),
        )
        .unwrap_err();
        assert_eq!(e.get("amount_cents").unwrap(), ["value_is_mandatory"]);
        assert_eq!(e.get("amount_currency").unwrap(), ["value_is_mandatory"]);
        let c = apply(
            None,
            &input(json!({"name": "N", "code": "c", "coupon_type": "fixed_amount", "amount_cents": 500,
            "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration"})),
            false,
            false,
            now(),
        )
        .unwrap();
        assert!(c.reusable);
    }

    #[test]
    fn every_rule() {
        let e = apply(
            None,
            &input(json!({"coupon_type": "gift", "amount_cents": -5, "amount_currency": "EURO",
            "frequency": "daily", "expiration": "soon", "expiration_at": "2020-01-01"})),
            false,
            true,
            now(),
        )
        .unwrap_err();
        for (f, c) in [
            ("name", "value_is_mandatory"),
            ("coupon_type", "value_is_invalid"),
            ("amount_cents", "value_is_out_of_range"),
            ("amount_currency", "value_is_invalid"),
            ("frequency", "value_is_invalid"),
            ("expiration", "value_is_invalid"),
            ("expiration_at", "invalid_date"),
        ] {
            assert_eq!(e.get(f).unwrap_or_default(), [c], "{f}");
        }
        assert_eq!(e.get("code").unwrap(), ["value_is_mandatory", "value_already_exist"]);
    }

    #[test]
    fn percentage_and_recurring_rules() {
        let base = json!({"name": "N", "code": "c", "coupon_type": "percentage", "frequency": "recurring",
                          "expiration": "time_limit"});
        let e = apply(None, &input(base.clone()), false, false, now()).unwrap_err();
        assert_eq!(e.get("percentage_rate").unwrap(), ["value_is_mandatory"]);
        assert_eq!(e.get("frequency_duration").unwrap(), ["value_is_mandatory"]);
        assert_eq!(e.get("expiration_at").unwrap(), ["invalid_date"]);
        let mut ok = base;
        ok["percentage_rate"] = json!("12.5");
        ok["frequency_duration"] = json!(3);
        ok["expiration_at"] = json!("2027-01-01T00:00:00Z");
        let c = apply(None, &input(ok), false, false, now()).unwrap();
        assert_eq!(c.percentage_rate, Some(Decimal::new(125, 1)));
    }

    #[test]
    fn applied_coupon_keeps_its_terms() {
        let c = apply(
            None,
            &input(json!({"name": "N", "code": "c", "coupon_type": "fixed_amount", "amount_cents": 500,
            "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration"})),
            false,
            false,
            now(),
        )
        .unwrap();
        let n =
            apply(Some(&c), &input(json!({"name": "M", "amount_cents": 9, "code": "d"})), true, false, now()).unwrap();
        assert_eq!((n.name.as_str(), n.amount_cents, n.code.as_str()), ("M", Some(500), "c"));
    }

    #[test]
    fn applied_terms_override_the_coupon() {
        let c = CouponAttrs {
            amount_cents: Some(500),
            amount_currency: Some("EUR".into()),
            frequency: "once".into(),
            ..Default::default()
        };
        let Value::Object(m) = json!({"amount_cents": 300, "frequency": "recurring", "frequency_duration": 2}) else {
            unreachable!()
        };
        let t = applied_terms(&c, &m).unwrap();
        assert_eq!((t.amount_cents, t.frequency.as_str(), t.frequency_duration), (Some(300), "recurring", Some(2)));
        let Value::Object(m) = json!({"amount_cents": 0}) else { unreachable!() };
        assert!(applied_terms(&c, &m).unwrap_err().has("amount_cents"));
    }
}
