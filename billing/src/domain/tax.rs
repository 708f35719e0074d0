//! Taxes: a named rate (percent) with a code, optionally applied to the whole organization (Lago's deprecated
//! `applied_to_organization`, which still decides the default tax of every customer without tax codes).

use rust_decimal::Decimal;
use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaxAttrs {
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub rate: Decimal,
    pub applied_to_organization: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TaxInput {
    pub name: Field<String>,
    pub code: Field<String>,
    pub description: Field<String>,
    pub rate: Field<Decimal>,
    pub applied_to_organization: Field<bool>,
}

pub fn parse_input(map: &Map<String, Value>) -> Result<TaxInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let input = TaxInput {
        name: f.string("name"),
        code: f.string("code"),
        description: f.string("description"),
        rate: f.decimal("rate"),
        applied_to_organization: f.bool("applied_to_organization"),
    };
    f.errors.into_result().map(|()| input)
}

impl TaxInput {
    pub fn requested_code(&self) -> Option<&str> {
        match &self.code {
            Field::Value(c) => Some(c.as_str()),
            _ => None,
        }
    }
}

/// A new tax; `code_taken` says whether a live tax of the organization already has the code.
pub fn build_new(input: TaxInput, code_taken: bool) -> Result<TaxAttrs, ValidationErrors> {
    let mut e = ValidationErrors::new();
    let name = input.name.value().filter(|n| !n.trim().is_empty());
    let code = input.code.value().filter(|c| !c.trim().is_empty());
    let rate = input.rate.value();
    if name.is_none() {
        e.add("name", "value_is_mandatory");
    }
    if code.is_none() {
        e.add("code", "value_is_mandatory");
    }
    if rate.is_none() {
        e.add("rate", "value_is_mandatory");
    }
    if code_taken {
        e.add("code", "value_already_exist");
    }
    e.into_result()?;
    Ok(TaxAttrs {
        name: name.unwrap_or_default(),
        code: code.unwrap_or_default(),
        description: input.description.value(),
        rate: rate.unwrap_or_default(),
        applied_to_organization: input.applied_to_organization.value().unwrap_or(false),
    })
}

/// The tax after a partial update: absent fields keep their value; a required field sent as null or blank is an error.
pub fn apply_update(current: &TaxAttrs, input: TaxInput, code_taken: bool) -> Result<TaxAttrs, ValidationErrors> {
    let mut e = ValidationErrors::new();
    let mut next = current.clone();
    match input.name {
        Field::Value(n) if !n.trim().is_empty() => next.name = n,
        Field::Absent => {}
        _ => e.add("name", "value_is_mandatory"),
    }
    match input.code {
        Field::Value(c) if !c.trim().is_empty() => next.code = c,
        Field::Absent => {}
        _ => e.add("code", "value_is_mandatory"),
    }
    match input.rate {
        Field::Value(r) => next.rate = r,
        Field::Absent => {}
        Field::Null => e.add("rate", "value_is_mandatory"),
    }
    next.description = input.description.or_keep(current.description.clone());
    if let Field::Value(a) = input.applied_to_organization {
        next.applied_to_organization = a;
    }
    if code_taken {
        e.add("code", "value_already_exist");
    }
    e.into_result()?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> TaxInput {
        match v {
            Value::Object(m) => parse_input(&m).unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn new_tax_needs_name_code_rate() {
        let e = build_new(input(json!({"description": "x"})), false).unwrap_err();
        for f in ["name", "code", "rate"] {
            assert_eq!(e.get(f).unwrap(), ["value_is_mandatory"], "{f}");
        }
        let t = build_new(input(json!({"name": "VAT", "code": "vat", "rate": "20.5"})), false).unwrap();
        assert_eq!(t.rate, Decimal::new(205, 1));
        assert!(!t.applied_to_organization);
    }

    #[test]
    fn taken_code_and_bad_rate() {
        let e = build_new(input(json!({"name": "VAT", "code": "vat", "rate": 20})), true).unwrap_err();
        assert_eq!(e.get("code").unwrap(), ["value_already_exist"]);
        let Value::Object(m) = json!({"rate": "twenty"}) else { unreachable!() };
        assert_eq!(parse_input(&m).unwrap_err().get("rate").unwrap(), ["value_is_invalid"]);
    }

    #[test]
    fn update_is_partial() {
        let t = build_new(input(json!({"name": "VAT", "code": "vat", "rate": 20, "description": "d"})), false).unwrap();
        let n = apply_update(&t, input(json!({"rate": 5.5, "description": null})), false).unwrap();
        assert_eq!((n.rate, n.description, n.name.as_str()), (Decimal::new(55, 1), None, "VAT"));
        let e = apply_update(&t, input(json!({"name": "", "rate": null})), false).unwrap_err();
        assert!(e.has("name") && e.has("rate"));
    }
}
