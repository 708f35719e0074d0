//! Plans: a recurring price (`amount_cents` per `interval`) with usage charges, taxes and an optional minimum
//! commitment. Creation checks every rule at once; an update is partial, and while subscriptions use the plan only
//! what does not change past billing may change (Lago: name, display name, description, amount, taxes, charge
//! properties).

use rust_decimal::Decimal;
use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::charge::{ChargeInput, parse_charge};
use super::lists::CURRENCIES;

pub const INTERVALS: [&str; 5] = ["weekly", "monthly", "quarterly", "semiannual", "yearly"];

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanAttrs {
    pub name: String,
    pub invoice_display_name: Option<String>,
    pub code: String,
    pub interval: String,
    pub description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub trial_period: Option<Decimal>,
    pub pay_in_advance: bool,
    /// Only for yearly and semiannual plans (else none), as Lago.
    pub bill_charges_monthly: Option<bool>,
    /// Free key-value pairs (values are strings or null).
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommitmentAttrs {
    pub amount_cents: i64,
    pub invoice_display_name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CommitmentInput {
    pub amount_cents: Field<i64>,
    pub invoice_display_name: Field<String>,
    pub tax_codes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    pub name: Field<String>,
    pub invoice_display_name: Field<String>,
    pub code: Field<String>,
    pub interval: Field<String>,
    pub description: Field<String>,
    pub amount_cents: Field<i64>,
    pub amount_currency: Field<String>,
    pub trial_period: Field<Decimal>,
    pub pay_in_advance: Field<bool>,
    pub bill_charges_monthly: Field<bool>,
    pub tax_codes: Option<Vec<String>>,
    /// `Null` removes the commitment.
    pub minimum_commitment: Field<CommitmentInput>,
    /// `None`: charges unchanged; a list replaces them (kept by id).
    pub charges: Option<Vec<ChargeInput>>,
    /// A whole object replaces the metadata; null removes them.
    pub metadata: Field<Map<String, Value>>,
}

impl PlanInput {
    pub fn requested_code(&self) -> Option<&str> {
        match &self.code {
            Field::Value(c) => Some(c.as_str()),
            _ => None,
        }
    }
}

pub fn parse_input(map: &Map<String, Value>) -> Result<PlanInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let mut input = PlanInput {
        name: f.string("name"),
        invoice_display_name: f.string("invoice_display_name"),
        code: f.string("code"),
        interval: f.string("interval"),
        description: f.string("description"),
        amount_cents: f.int("amount_cents"),
        amount_currency: f.string("amount_currency"),
        trial_period: f.decimal("trial_period"),
        pay_in_advance: f.bool("pay_in_advance"),
        bill_charges_monthly: f.bool("bill_charges_monthly"),
        tax_codes: f.strings("tax_codes").value(),
        ..PlanInput::default()
    };
    input.minimum_commitment = match f.object("minimum_commitment") {
        Field::Value(m) if m.is_empty() => Field::Null,
        Field::Value(m) => {
            let mut c = Fields::new(m);
            let commitment = CommitmentInput {
                amount_cents: c.int("amount_cents"),
                invoice_display_name: c.string("invoice_display_name"),
                tax_codes: c.strings("tax_codes").value(),
            };
            f.errors.merge(c.errors);
            Field::Value(commitment)
        }
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    };
    input.metadata = match f.object("metadata") {
        Field::Value(m) => Field::Value(m.clone()),
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    };
    if let Field::Value(items) = f.objects("charges") {
        let mut errors = ValidationErrors::new();
        input.charges = Some(items.iter().map(|c| parse_charge(c, &mut errors)).collect());
        f.errors.merge(errors);
    }
    f.errors.into_result().map(|()| input)
}

/// The plan after a create (`current` none) or update request; every rule checked at once. `locked` means
/// subscriptions use the plan.
pub fn apply(
    current: Option<&PlanAttrs>,
    input: &PlanInput,
    locked: bool,
    code_taken: bool,
    errors: &mut ValidationErrors,
) -> PlanAttrs {
    let base = current.cloned().unwrap_or_default();
    let free = !locked;
    let text = |f: &Field<String>, cur: &str| f.clone().or_keep(Some(cur.to_owned())).unwrap_or_default();
    let mut next = PlanAttrs {
        name: text(&input.name, &base.name),
        invoice_display_name: input.invoice_display_name.clone().or_keep(base.invoice_display_name.clone()),
        description: input.description.clone().or_keep(base.description.clone()),
        amount_cents: match input.amount_cents {
            Field::Value(a) => a,
            Field::Absent if current.is_some() => base.amount_cents,
            _ => {
                errors.add("amount_cents", "value_is_mandatory");
                0
            }
        },
        ..base.clone()
    };
    if free {
        next.code = text(&input.code, &base.code);
        next.interval = text(&input.interval, &base.interval);
        next.amount_currency = text(&input.amount_currency, &base.amount_currency);
        next.trial_period = input.trial_period.clone().or_keep(base.trial_period);
        next.pay_in_advance = match input.pay_in_advance {
            Field::Value(b) => b,
            _ => base.pay_in_advance,
        };
        let monthly_allowed = matches!(next.interval.as_str(), "yearly" | "semiannual");
        next.bill_charges_monthly = if monthly_allowed {
            Some(input.bill_charges_monthly.clone().value().or(base.bill_charges_monthly).unwrap_or(false))
        } else {
            None
        };
    }
    next.metadata = input.metadata.clone().or_keep(base.metadata.clone());
    if let Some(m) = &next.metadata
        && !valid_metadata(m)
    {
        errors.add("metadata", "value_is_invalid");
    }
    if next.name.trim().is_empty() {
        errors.add("name", "value_is_mandatory");
    }
    if next.code.trim().is_empty() {
        errors.add("code", "value_is_mandatory");
    }
    if code_taken {
        errors.add("code", "value_already_exist");
    }
    if !INTERVALS.contains(&next.interval.as_str()) {
        errors.add("interval", "value_is_invalid");
    }
    if next.amount_cents < 0 {
        errors.add("amount_cents", "value_is_out_of_range");
    }
    if !CURRENCIES.contains(&next.amount_currency.as_str()) {
        errors.add("amount_currency", "value_is_invalid");
    }
    if next.trial_period.is_some_and(|t| t < Decimal::ZERO) {
        errors.add("trial_period", "value_is_out_of_range");
    }
    next
}

/// Lago's item metadata limits: at most 50 keys of at most 100 characters, each value null or a string of at most
/// 255 characters.
pub fn valid_metadata(m: &Map<String, Value>) -> bool {
    m.len() <= 50
        && m.iter().all(|(k, v)| {
            k.chars().count() <= 100
                && match v {
                    Value::Null => true,
                    Value::String(s) => s.chars().count() <= 255,
                    _ => false,
                }
        })
}

/// The minimum commitment after the request: `None` when there is none.
pub fn apply_commitment(
    current: Option<&CommitmentAttrs>,
    input: &Field<CommitmentInput>,
    errors: &mut ValidationErrors,
) -> Option<CommitmentAttrs> {
    let next = match input {
        Field::Absent => return current.cloned(),
        Field::Null => return None,
        Field::Value(c) => CommitmentAttrs {
            amount_cents: c.amount_cents.clone().or_keep(current.map(|c| c.amount_cents)).unwrap_or(0),
            invoice_display_name: c
                .invoice_display_name
                .clone()
                .or_keep(current.and_then(|c| c.invoice_display_name.clone())),
        },
    };
    if next.amount_cents <= 0 {
        errors.add("amount_cents", "value_is_out_of_range");
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> PlanInput {
        let Value::Object(m) = v else { unreachable!() };
        parse_input(&m).unwrap()
    }

    fn create(v: Value) -> (PlanAttrs, ValidationErrors) {
        let mut e = ValidationErrors::new();
        let p = apply(None, &input(v), false, false, &mut e);
        (p, e)
    }

    #[test]
    fn new_plan_rules() {
        let (_, e) = create(json!({"interval": "daily", "amount_currency": "XYZ", "trial_period": -1}));
        for (f, c) in [
            ("name", "value_is_mandatory"),
            ("code", "value_is_mandatory"),
            ("interval", "value_is_invalid"),
            ("amount_cents", "value_is_mandatory"),
            ("amount_currency", "value_is_invalid"),
            ("trial_period", "value_is_out_of_range"),
        ] {
            assert_eq!(e.get(f).unwrap_or_default(), [c], "{f}");
        }
    }

    #[test]
    fn bill_charges_monthly_only_for_long_intervals() {
        let base = json!({"name": "P", "code": "p", "amount_cents": 100, "amount_currency": "EUR",
                          "bill_charges_monthly": true});
        let mut yearly = base.clone();
        yearly["interval"] = json!("yearly");
        let (p, e) = create(yearly);
        assert!(e.is_empty());
        assert_eq!(p.bill_charges_monthly, Some(true));
        let mut monthly = base;
        monthly["interval"] = json!("monthly");
        assert_eq!(create(monthly).0.bill_charges_monthly, None);
    }

    #[test]
    fn locked_plan_changes_only_what_lago_allows() {
        let (p, _) = create(json!({"name": "P", "code": "p", "interval": "monthly", "amount_cents": 100,
                                  "amount_currency": "EUR", "trial_period": 7}));
        let mut e = ValidationErrors::new();
        let n = apply(
            Some(&p),
            &input(
                json!({"name": "Q", "code": "q", "interval": "yearly", "amount_cents": 200, "amount_currency": "USD"}),
            ),
            true,
            false,
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!((n.name.as_str(), n.amount_cents), ("Q", 200));
        assert_eq!((n.code.as_str(), n.interval.as_str(), n.amount_currency.as_str()), ("p", "monthly", "EUR"));
        assert_eq!(n.trial_period, Some(Decimal::from(7)));
    }

    #[test]
    fn metadata_limits_and_replacement() {
        let (p, e) = create(json!({"name": "P", "code": "p", "interval": "monthly", "amount_cents": 1,
                                  "amount_currency": "EUR", "metadata": {"crm": "42", "note": null}}));
        assert!(e.is_empty());
        assert_eq!(p.metadata.as_ref().map(Map::len), Some(2));
        let (_, e) = create(json!({"metadata": {"n": 1}}));
        assert_eq!(e.get("metadata").unwrap(), ["value_is_invalid"]);
        let (_, e) = create(json!({"metadata": {"k".repeat(101): "v"}}));
        assert!(e.has("metadata"));
        let mut e = ValidationErrors::new();
        let n = apply(Some(&p), &input(json!({"metadata": null})), false, false, &mut e);
        assert_eq!(n.metadata, None);
        let n = apply(Some(&p), &input(json!({"name": "Q"})), false, false, &mut e);
        assert_eq!(n.metadata, p.metadata);
    }

    #[test]
    fn commitment_must_be_positive_and_null_removes_it() {
        let mut e = ValidationErrors::new();
        let i = input(json!({"minimum_commitment": {"amount_cents": 0}}));
        apply_commitment(None, &i.minimum_commitment, &mut e);
        assert_eq!(e.get("amount_cents").unwrap(), ["value_is_out_of_range"]);
        let cur = CommitmentAttrs { amount_cents: 5, invoice_display_name: None };
        let i = input(json!({"minimum_commitment": null}));
        assert_eq!(apply_commitment(Some(&cur), &i.minimum_commitment, &mut e), None);
        let i = input(json!({"name": "x"}));
        assert_eq!(apply_commitment(Some(&cur), &i.minimum_commitment, &mut e), Some(cur));
    }
}
