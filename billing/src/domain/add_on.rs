//! Add-ons: one-off priced items (`amount_cents` > 0 in a known currency) with a code, and the taxes applied to them.

use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::lists::CURRENCIES;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddOnAttrs {
    pub name: String,
    pub invoice_display_name: Option<String>,
    pub code: String,
    pub description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
}

#[derive(Debug, Clone, Default)]
pub struct AddOnInput {
    pub name: Field<String>,
    pub invoice_display_name: Field<String>,
    pub code: Field<String>,
    pub description: Field<String>,
    pub amount_cents: Field<i64>,
    pub amount_currency: Field<String>,
    /// `None` leaves the applied taxes as they are.
    pub tax_codes: Field<Vec<String>>,
}

pub fn parse_input(map: &Map<String, Value>) -> Result<AddOnInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let input = AddOnInput {
        name: f.string("name"),
        invoice_display_name: f.string("invoice_display_name"),
        code: f.string("code"),
        description: f.string("description"),
        amount_cents: f.int("amount_cents"),
        amount_currency: f.string("amount_currency"),
        tax_codes: f.strings("tax_codes"),
    };
    f.errors.into_result().map(|()| input)
}

impl AddOnInput {
    pub fn requested_code(&self) -> Option<&str> {
        match &self.code {
            Field::Value(c) => Some(c.as_str()),
            _ => None,
        }
    }
}

pub fn build_new(input: AddOnInput, code_taken: bool) -> Result<AddOnAttrs, ValidationErrors> {
    let attrs = AddOnAttrs {
        name: input.name.value().unwrap_or_default(),
        invoice_display_name: input.invoice_display_name.value(),
        code: input.code.value().unwrap_or_default(),
        description: input.description.value(),
        amount_cents: input.amount_cents.value().unwrap_or(0),
        amount_currency: input.amount_currency.value().unwrap_or_default(),
    };
    validate(attrs, code_taken)
}

/// Partial update; a required field sent as null is treated as blank and refused.
pub fn apply_update(current: &AddOnAttrs, input: AddOnInput, code_taken: bool) -> Result<AddOnAttrs, ValidationErrors> {
    let next = AddOnAttrs {
        name: input.name.or_keep(Some(current.name.clone())).unwrap_or_default(),
        invoice_display_name: input.invoice_display_name.or_keep(current.invoice_display_name.clone()),
        code: input.code.or_keep(Some(current.code.clone())).unwrap_or_default(),
        description: input.description.or_keep(current.description.clone()),
        amount_cents: input.amount_cents.or_keep(Some(current.amount_cents)).unwrap_or(0),
        amount_currency: input.amount_currency.or_keep(Some(current.amount_currency.clone())).unwrap_or_default(),
    };
    validate(next, code_taken)
}

fn validate(a: AddOnAttrs, code_taken: bool) -> Result<AddOnAttrs, ValidationErrors> {
    let mut e = ValidationErrors::new();
    if a.name.trim().is_empty() {
        e.add("name", "value_is_mandatory");
    }
    if a.code.trim().is_empty() {
        e.add("code", "value_is_mandatory");
    }
    if code_taken {
        e.add("code", "value_already_exist");
    }
    if a.amount_cents <= 0 {
        e.add("amount_cents", "value_is_out_of_range");
    }
    if !CURRENCIES.contains(&a.amount_currency.as_str()) {
        e.add("amount_currency", "value_is_invalid");
    }
    e.into_result().map(|()| a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> AddOnInput {
        match v {
            Value::Object(m) => parse_input(&m).unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_rule_at_once() {
        let e = build_new(input(json!({"amount_cents": 0, "amount_currency": "XXX"})), false).unwrap_err();
        assert_eq!(e.get("name").unwrap(), ["value_is_mandatory"]);
        assert_eq!(e.get("code").unwrap(), ["value_is_mandatory"]);
        assert_eq!(e.get("amount_cents").unwrap(), ["value_is_out_of_range"]);
        assert_eq!(e.get("amount_currency").unwrap(), ["value_is_invalid"]);
    }

    #[test]
    fn valid_add_on_and_partial_update() {
        let a = build_new(
            input(json!({"name": "Setup", "code": "setup", "amount_cents": "5000", "amount_currency": "EUR",
                         "tax_codes": ["vat"]})),
            false,
        )
        .unwrap();
        assert_eq!(a.amount_cents, 5000);
        let b = apply_update(&a, input(json!({"amount_cents": 7000, "description": "d"})), false).unwrap();
        assert_eq!((b.amount_cents, b.description.as_deref(), b.code.as_str()), (7000, Some("d"), "setup"));
        let e = apply_update(&a, input(json!({"name": null})), true).unwrap_err();
        assert!(e.has("name") && e.has("code"));
    }
}
