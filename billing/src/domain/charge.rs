//! Charges of a plan: the charge models, Lago's rules on their `properties` (and on the properties of each charge
//! filter), and the rules tying a charge to its billable metric (pay in advance, proration, dynamic pricing).
//!
//! Properties are kept as the JSON object Lago keeps: amounts are decimal strings (`"0.5"`), sizes and range bounds
//! integers. Like Lago, only the keys a model uses are kept, and `grouped_by` / `pricing_group_keys` are one setting.
//! Error codes are Lago's; property errors are reported under `properties`, as Lago reports them.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use schemas::ValidationErrors;
use schemas::input::{Field, Fields, parse_decimal};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::billable_metric::MetricFilter;

pub const CHARGE_MODELS: [&str; 7] =
    ["standard", "graduated", "volume", "package", "percentage", "graduated_percentage", "dynamic"];
/// Aggregations whose events can be billed as they arrive.
const PAYABLE_IN_ADVANCE: [&str; 3] = ["count_agg", "sum_agg", "unique_count_agg"];
/// The value of a charge filter that matches every value of its key.
pub const ALL_FILTER_VALUES: &str = "__ALL_FILTER_VALUES__";

/// What a charge needs to know about its billable metric.
#[derive(Debug, Clone)]
pub struct MetricInfo {
    pub id: Uuid,
    pub code: String,
    pub aggregation_type: String,
    pub recurring: bool,
    pub filters: Vec<MetricFilter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilterAttrs {
    pub invoice_display_name: Option<String>,
    pub properties: Map<String, Value>,
    /// Metric filter key -> the values it matches, keys sorted.
    pub values: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChargeAttrs {
    pub billable_metric_id: Uuid,
    /// For a charge of a customer-specific plan: the charge of the parent plan it overrides.
    pub parent_id: Option<Uuid>,
    pub code: String,
    pub invoice_display_name: Option<String>,
    pub charge_model: String,
    pub pay_in_advance: bool,
    pub invoiceable: bool,
    pub prorated: bool,
    pub min_amount_cents: i64,
    pub regroup_paid_fees: Option<String>,
    pub properties: Map<String, Value>,
    pub filters: Vec<FilterAttrs>,
}

/// One element of a plan's `charges` as sent.
#[derive(Debug, Clone, Default)]
pub struct ChargeInput {
    pub id: Option<Uuid>,
    /// Set when a plan override copies a parent charge (never read from the request).
    pub parent_id: Option<Uuid>,
    pub billable_metric_id: Option<Uuid>,
    pub code: Option<String>,
    pub invoice_display_name: Field<String>,
    pub charge_model: Option<String>,
    pub pay_in_advance: Option<bool>,
    pub invoiceable: Option<bool>,
    pub prorated: Option<bool>,
    pub min_amount_cents: Option<i64>,
    pub regroup_paid_fees: Field<String>,
    pub properties: Option<Map<String, Value>>,
    pub filters: Option<Vec<FilterInput>>,
    pub tax_codes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct FilterInput {
    pub invoice_display_name: Option<String>,
    pub properties: Option<Map<String, Value>>,
    pub values: BTreeMap<String, Vec<String>>,
}

fn uuid_field(f: &mut Fields, field: &str) -> Option<Uuid> {
    match f.string(field) {
        Field::Value(s) => match Uuid::parse_str(s.trim()) {
            Ok(id) => Some(id),
            Err(_) => {
                let key = f.key(field);
                f.errors.add(key, "value_is_invalid");
                None
            }
        },
        _ => None,
    }
}

/// Reads one charge object; type errors go to `errors` under the plain field name, as Lago reports them.
pub fn parse_charge(map: &Map<String, Value>, errors: &mut ValidationErrors) -> ChargeInput {
    let mut f = Fields::new(map);
    let mut input = ChargeInput {
        id: uuid_field(&mut f, "id"),
        parent_id: None,
        billable_metric_id: uuid_field(&mut f, "billable_metric_id"),
        code: f.string("code").value().filter(|c| !c.trim().is_empty()),
        invoice_display_name: f.string("invoice_display_name"),
        charge_model: f.string("charge_model").value(),
        pay_in_advance: f.bool("pay_in_advance").value(),
        invoiceable: f.bool("invoiceable").value(),
        prorated: f.bool("prorated").value(),
        min_amount_cents: f.int("min_amount_cents").value(),
        regroup_paid_fees: f.string("regroup_paid_fees"),
        properties: f.object("properties").value().cloned(),
        filters: None,
        tax_codes: f.strings("tax_codes").value(),
    };
    if let Field::Value(items) = f.objects("filters") {
        let mut filters = Vec::with_capacity(items.len());
        for item in items {
            let mut ff = Fields::new(item);
            let invoice_display_name = ff.string("invoice_display_name").value();
            let properties = ff.object("properties").value().cloned();
            let mut values = BTreeMap::new();
            match ff.object("values") {
                Field::Value(v) => {
                    for (key, list) in v {
                        let list: Option<Vec<String>> = match list {
                            Value::Array(items) => {
                                items.iter().map(|i| i.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()
                            }
                            _ => None,
                        };
                        match list {
                            Some(list) if !list.is_empty() => {
                                values.insert(key.clone(), list);
                            }
                            _ => errors.add("values", "value_is_invalid"),
                        }
                    }
                }
                _ => errors.add("values", "value_is_mandatory"),
            }
            errors.merge(ff.errors);
            filters.push(FilterInput { invoice_display_name, properties, values });
        }
        input.filters = Some(filters);
    }
    errors.merge(f.errors);
    input
}

/// A plain non-negative decimal string, Lago's `DecimalAmountService#valid_amount?` (strings only: never a float).
pub fn valid_amount(v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => {
            let s = s.trim();
            let plain =
                !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.') && s.matches('.').count() <= 1;
            plain && parse_decimal(s).is_some_and(|d| d >= Decimal::ZERO)
        }
        _ => false,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64)
}

/// Lago's range bounds: each range starts where the previous ended (or one above), the last one is open-ended, and
/// every other one ends above its start.
fn ranges_valid(ranges: &[Value], volume: bool) -> bool {
    let mut next_from = Decimal::ZERO;
    for (i, range) in ranges.iter().enumerate() {
        let Some(from) = range.get("from_value").and_then(json_decimal) else { return false };
        let to = range.get("to_value").filter(|v| !v.is_null());
        let to_value = match to {
            Some(v) => match json_decimal(v) {
                Some(d) => Some(d),
                None => return false,
            },
            None => None,
        };
        if from != next_from && from != next_from + Decimal::ONE {
            return false;
        }
        let last = i == ranges.len() - 1;
        let ok = if last { to_value.is_none() } else { to_value.unwrap_or(Decimal::ZERO) > from };
        if !ok {
            return false;
        }
        next_from = to_value.unwrap_or(Decimal::ZERO) + if volume { Decimal::ONE } else { Decimal::ZERO };
    }
    true
}

fn json_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => parse_decimal(&n.to_string()),
        _ => None,
    }
}

/// The keys a model keeps (Lago's `FilterPropertiesService`).
fn model_keys(model: &str) -> &'static [&'static str] {
    match model {
        "standard" => &["amount"],
        "graduated" => &["graduated_ranges"],
        "volume" => &["volume_ranges"],
        "package" => &["amount", "free_units", "package_size"],
        "percentage" => &[
            "fixed_amount",
            "free_units_per_events",
            "free_units_per_total_aggregation",
            "per_transaction_max_amount",
            "per_transaction_min_amount",
            "rate",
        ],
        "graduated_percentage" => &["graduated_percentage_ranges"],
        _ => &[],
    }
}

/// Lago's defaults when a charge is sent without properties.
pub fn default_properties(model: &str) -> Map<String, Value> {
    let v = match model {
        "standard" => json!({"amount": "0"}),
        "graduated" | "volume" => {
            let key = if model == "graduated" { "graduated_ranges" } else { "volume_ranges" };
            json!({ key: [{"from_value": 0, "to_value": null, "per_unit_amount": "0", "flat_amount": "0"}] })
        }
        "package" => json!({"package_size": 1, "amount": "0", "free_units": 0}),
        "percentage" => json!({"rate": "0"}),
        "graduated_percentage" => json!({"graduated_percentage_ranges": [
            {"from_value": 0, "to_value": null, "rate": "0", "fixed_amount": "0", "flat_amount": "0"}]}),
        _ => json!({}),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Keeps the keys the model uses plus the grouping keys, and checks every rule of the model. Error codes go to
/// `errors` under `properties`.
pub fn check_properties(
    model: &str,
    props: &Map<String, Value>,
    metric: &MetricInfo,
    errors: &mut ValidationErrors,
) -> Map<String, Value> {
    let mut e = |code: &str| errors.add("properties", code);
    let mut out: Map<String, Value> = props
        .iter()
        .filter(|(k, _)| model_keys(model).contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Grouping: `pricing_group_keys` wins over its deprecated alias `grouped_by`; blank entries are dropped.
    let group = props
        .get("pricing_group_keys")
        .filter(|v| !is_blank(v))
        .or_else(|| props.get("grouped_by").filter(|v| !is_blank(v)));
    if let Some(group) = group {
        match group.as_array().and_then(|a| a.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>()) {
            Some(keys) if keys.iter().all(|k| !k.trim().is_empty()) => {
                out.insert("pricing_group_keys".into(), json!(keys));
            }
            _ => e("invalid_type"),
        }
    }
    if let Some(p) = props.get("presentation_group_keys").filter(|v| !is_blank(v)) {
        out.insert("presentation_group_keys".into(), p.clone());
        let items = p.as_array().cloned().unwrap_or_default();
        let values: Vec<&str> = items.iter().filter_map(|i| i.get("value").and_then(Value::as_str)).collect();
        if !p.is_array() || values.len() != items.len() || values.iter().any(|v| v.is_empty()) {
            e("invalid_type");
        }
        if items.len() > 2 {
            e("too_many_keys");
        }
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != values.len() {
            e("value_is_duplicated");
        }
    }
    let latest = metric.aggregation_type == "latest_agg";
    match model {
        "standard" if !valid_amount(props.get("amount")) => e("invalid_amount"),
        "package" => {
            if !valid_amount(props.get("amount")) {
                e("invalid_amount");
            }
            if int(props.get("free_units")).is_none_or(|n| n < 0) {
                e("invalid_free_units");
            }
            if int(props.get("package_size")).is_none_or(|n| n <= 0) {
                e("invalid_package_size");
            }
        }
        "percentage" => {
            if latest {
                e("invalid_value");
            }
            if !valid_amount(props.get("rate")) {
                e("invalid_rate");
            }
            let present = |k: &str| props.get(k).filter(|v| !v.is_null());
            if present("fixed_amount").is_some() && !valid_amount(present("fixed_amount")) {
                e("invalid_fixed_amount");
            }
            if let Some(v) = present("free_units_per_events")
                && int(Some(v)).is_none_or(|n| n <= 0)
            {
                e("invalid_free_units_per_events");
            }
            if let Some(v) = present("free_units_per_total_aggregation")
                && !valid_amount(Some(v))
            {
                e("invalid_free_units_per_total_aggregation");
            }
            let min = present("per_transaction_min_amount");
            let max = present("per_transaction_max_amount");
            for v in [min, max].into_iter().flatten() {
                if !valid_amount(Some(v)) {
                    e("invalid_amount");
                }
            }
            if let (Some(Value::String(a)), Some(Value::String(b))) = (min, max)
                && let (Some(a), Some(b)) = (parse_decimal(a), parse_decimal(b))
                && a > b
            {
                e("per_transaction_max_lower_than_per_transaction_min");
            }
        }
        "graduated" | "volume" | "graduated_percentage" => {
            let key = match model {
                "graduated" => "graduated_ranges",
                "volume" => "volume_ranges",
                _ => "graduated_percentage_ranges",
            };
            if model == "graduated_percentage" && latest {
                e("invalid_value");
            }
            match props.get(key).and_then(Value::as_array).filter(|r| !r.is_empty()) {
                None => e(&format!("missing_{key}")),
                Some(ranges) => {
                    for range in ranges {
                        if model == "graduated_percentage" {
                            if !valid_amount(range.get("flat_amount")) {
                                e("invalid_amount");
                            }
                            if !valid_amount(range.get("rate")) {
                                e("invalid_rate");
                            }
                        } else {
                            if !valid_amount(range.get("per_unit_amount")) {
                                e("invalid_amount");
                            }
                            if !valid_amount(range.get("flat_amount")) {
                                e("invalid_amount");
                            }
                        }
                    }
                    if !ranges_valid(ranges, model == "volume") {
                        e(&format!("invalid_{key}"));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// A charge as it will be stored: defaults applied, then every rule of Lago checked. `current` is the stored charge
/// when the request updates one (matched by id); `locked` says the plan has subscriptions, so what decides how
/// usage is priced for them (metric, model, pay in advance, proration, invoiceable, minimum) cannot change.
pub fn build(
    input: &ChargeInput,
    current: Option<&ChargeAttrs>,
    metric: &MetricInfo,
    locked: bool,
    errors: &mut ValidationErrors,
) -> ChargeAttrs {
    let keep = current.filter(|_| locked);
    let charge_model = match keep {
        Some(c) => c.charge_model.clone(),
        None => input.charge_model.clone().or_else(|| current.map(|c| c.charge_model.clone())).unwrap_or_default(),
    };
    if !CHARGE_MODELS.contains(&charge_model.as_str()) {
        if charge_model == "custom" {
            errors.add("charge_model", "invalid_aggregation_type_or_charge_model");
        } else {
            errors.add("charge_model", if charge_model.is_empty() { "value_is_mandatory" } else { "value_is_invalid" });
        }
    }
    let pick = |sent: Option<bool>, stored: Option<bool>, default: bool| match keep {
        Some(_) => stored.unwrap_or(default),
        None => sent.or(stored).unwrap_or(default),
    };
    let pay_in_advance = pick(input.pay_in_advance, current.map(|c| c.pay_in_advance), false);
    let prorated = pick(input.prorated, current.map(|c| c.prorated), false);
    let invoiceable = pick(input.invoiceable, current.map(|c| c.invoiceable), true);
    let min_amount_cents = match keep {
        Some(c) => c.min_amount_cents,
        None => input.min_amount_cents.or(current.map(|c| c.min_amount_cents)).unwrap_or(0),
    };
    let regroup_paid_fees = match keep {
        Some(c) => c.regroup_paid_fees.clone(),
        None => input.regroup_paid_fees.clone().or_keep(current.and_then(|c| c.regroup_paid_fees.clone())),
    };
    let model = charge_model.as_str();
    let props = match &input.properties {
        Some(p) if !p.is_empty() => p.clone(),
        _ => default_properties(model),
    };
    let properties = check_properties(model, &props, metric, errors);
    let agg = metric.aggregation_type.as_str();
    if model == "dynamic" && agg != "sum_agg" {
        errors.add("charge_model", "invalid_aggregation_type_or_charge_model");
    }
    if pay_in_advance && (model == "volume" || !PAYABLE_IN_ADVANCE.contains(&agg)) {
        errors.add("pay_in_advance", "invalid_aggregation_type_or_charge_model");
    }
    if prorated {
        let allowed = agg != "weighted_sum_agg"
            && metric.recurring
            && if pay_in_advance { model == "standard" } else { matches!(model, "standard" | "volume" | "graduated") };
        if !allowed {
            errors.add("prorated", "invalid_billable_metric_or_charge_model");
        }
    }
    if !pay_in_advance && !invoiceable {
        errors.add("invoiceable", "must_be_true_unless_pay_in_advance");
    }
    if min_amount_cents < 0 {
        errors.add("min_amount_cents", "value_is_out_of_range");
    } else if pay_in_advance && min_amount_cents > 0 {
        errors.add("min_amount_cents", "not_compatible_with_pay_in_advance");
    }
    if let Some(r) = &regroup_paid_fees {
        if r != "invoice" {
            errors.add("regroup_paid_fees", "value_is_invalid");
        } else if !pay_in_advance || invoiceable {
            errors.add("regroup_paid_fees", "only_compatible_with_pay_in_advance_and_non_invoiceable");
        }
    }
    let filters = match &input.filters {
        Some(list) => list.iter().map(|f| build_filter(f, model, metric, errors)).collect(),
        None => current.map(|c| c.filters.clone()).unwrap_or_default(),
    };
    ChargeAttrs {
        billable_metric_id: metric.id,
        parent_id: input.parent_id.or(current.and_then(|c| c.parent_id)),
        code: input.code.clone().or_else(|| current.map(|c| c.code.clone())).unwrap_or_else(|| metric.code.clone()),
        invoice_display_name: input
            .invoice_display_name
            .clone()
            .or_keep(current.and_then(|c| c.invoice_display_name.clone())),
        charge_model,
        pay_in_advance,
        invoiceable,
        prorated,
        min_amount_cents,
        regroup_paid_fees,
        properties,
        filters,
    }
}

fn build_filter(input: &FilterInput, model: &str, metric: &MetricInfo, errors: &mut ValidationErrors) -> FilterAttrs {
    if input.values.is_empty() {
        errors.add("values", "value_is_mandatory");
    }
    for (key, values) in &input.values {
        let known = metric.filters.iter().find(|f| &f.key == key);
        // Either the metric's own values, or the catch-all alone.
        let all = values.len() == 1 && values[0] == ALL_FILTER_VALUES;
        let ok = known.is_some_and(|f| all || values.iter().all(|v| f.values.contains(v)));
        if !ok {
            errors.add("values", "value_is_invalid");
        }
    }
    // Presentation keys are the charge's, not a filter's (Lago drops them here).
    let props = match &input.properties {
        Some(p) if !p.is_empty() => {
            let mut p = p.clone();
            p.remove("presentation_group_keys");
            p
        }
        _ => default_properties(model),
    };
    let properties = check_properties(model, &props, metric, errors);
    let mut values = input.values.clone();
    for list in values.values_mut() {
        list.sort();
        list.dedup();
    }
    FilterAttrs { invoice_display_name: input.invoice_display_name.clone(), properties, values }
}

/// Properties as Lago renders them: `grouped_by` mirrors `pricing_group_keys`.
pub fn render_properties(props: &Map<String, Value>) -> Map<String, Value> {
    let mut out = props.clone();
    if let Some(keys) = props.get("pricing_group_keys") {
        out.insert("grouped_by".into(), keys.clone());
    }
    out
}

/// Charge codes are unique within a plan; without one, Lago derives it from the metric code (`code`, `code_2`, ...).
pub fn assign_codes(charges: &mut [ChargeAttrs], sent: &[bool], errors: &mut ValidationErrors) {
    let mut taken: Vec<String> = Vec::new();
    for (c, explicit) in charges.iter().zip(sent) {
        if *explicit {
            if taken.contains(&c.code) {
                errors.add("code", "value_already_exist");
            }
            taken.push(c.code.clone());
        }
    }
    for (c, explicit) in charges.iter_mut().zip(sent) {
        if !*explicit {
            let base = c.code.clone();
            let mut n = 1;
            while taken.contains(&c.code) {
                n += 1;
                c.code = format!("{base}_{n}");
            }
            taken.push(c.code.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(agg: &str, recurring: bool) -> MetricInfo {
        MetricInfo {
            id: Uuid::nil(),
            code: "calls".into(),
            aggregation_type: agg.into(),
            recurring,
            filters: vec![MetricFilter { key: "region".into(), values: vec!["eu".into(), "us".into()] }],
        }
    }

    fn charge(v: Value) -> ChargeInput {
        let mut e = ValidationErrors::new();
        let Value::Object(m) = v else { unreachable!() };
        let c = parse_charge(&m, &mut e);
        assert!(e.is_empty(), "{e:?}");
        c
    }

    fn errors_of(v: Value, m: &MetricInfo) -> ValidationErrors {
        let mut e = ValidationErrors::new();
        build(&charge(v), None, m, false, &mut e);
        e
    }

    fn props(v: Value) -> Vec<String> {
        errors_of(v, &metric("sum_agg", false)).get("properties").unwrap_or_default().to_vec()
    }

    #[test]
    fn standard_amount_must_be_a_decimal_string() {
        assert!(props(json!({"charge_model": "standard", "properties": {"amount": "0.5"}})).is_empty());
        assert_eq!(props(json!({"charge_model": "standard", "properties": {"amount": 0.5}})), ["invalid_amount"]);
        assert_eq!(props(json!({"charge_model": "standard", "properties": {"amount": "-1"}})), ["invalid_amount"]);
        assert_eq!(props(json!({"charge_model": "standard", "properties": {"amount": "abc"}})), ["invalid_amount"]);
    }

    #[test]
    fn missing_properties_get_lagos_defaults() {
        let mut e = ValidationErrors::new();
        let c = build(&charge(json!({"charge_model": "package"})), None, &metric("sum_agg", false), false, &mut e);
        assert!(e.is_empty());
        assert_eq!(Value::Object(c.properties), json!({"package_size": 1, "amount": "0", "free_units": 0}));
        assert!(c.invoiceable && !c.pay_in_advance && !c.prorated);
        assert_eq!(c.code, "calls");
    }

    #[test]
    fn package_rules() {
        let p = props(
            json!({"charge_model": "package", "properties": {"amount": "1", "package_size": 0, "free_units": -1}}),
        );
        assert_eq!(p, ["invalid_free_units", "invalid_package_size"]);
        assert!(
            props(
                json!({"charge_model": "package", "properties": {"amount": "1", "package_size": 10, "free_units": 0}})
            )
            .is_empty()
        );
    }

    #[test]
    fn graduated_ranges_are_contiguous_from_zero_and_open_ended() {
        let ok = json!({"charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 11, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "2"}]}});
        assert!(props(ok).is_empty());
        let gap = json!({"charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 15, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}});
        assert_eq!(props(gap), ["invalid_graduated_ranges"]);
        let closed = json!({"charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"}]}});
        assert_eq!(props(closed), ["invalid_graduated_ranges"]);
        let not_zero = json!({"charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 5, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}});
        assert_eq!(props(not_zero), ["invalid_graduated_ranges"]);
        let empty = json!({"charge_model": "graduated", "properties": {"graduated_ranges": []}});
        assert_eq!(props(empty), ["missing_graduated_ranges"]);
        let bad_amount = json!({"charge_model": "graduated", "properties": {"graduated_ranges": [
            {"from_value": 0, "to_value": null, "per_unit_amount": 1, "flat_amount": "0"}]}});
        assert_eq!(props(bad_amount), ["invalid_amount"]);
    }

    #[test]
    fn volume_ranges_start_one_above_the_previous_end() {
        let ok = json!({"charge_model": "volume", "properties": {"volume_ranges": [
            {"from_value": 0, "to_value": 100, "per_unit_amount": "2", "flat_amount": "1"},
            {"from_value": 101, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}});
        assert!(props(ok).is_empty());
        let inverted = json!({"charge_model": "volume", "properties": {"volume_ranges": [
            {"from_value": 0, "to_value": 0, "per_unit_amount": "2", "flat_amount": "1"},
            {"from_value": 1, "to_value": null, "per_unit_amount": "1", "flat_amount": "0"}]}});
        assert_eq!(props(inverted), ["invalid_volume_ranges"]);
    }

    #[test]
    fn percentage_rules() {
        assert!(
            props(json!({"charge_model": "percentage", "properties": {"rate": "1.5", "fixed_amount": "0.2",
            "free_units_per_events": 3, "free_units_per_total_aggregation": "100"}}))
            .is_empty()
        );
        let p = props(json!({"charge_model": "percentage", "properties": {"rate": "x", "fixed_amount": "y",
            "free_units_per_events": 0, "free_units_per_total_aggregation": "-1",
            "per_transaction_min_amount": "5", "per_transaction_max_amount": "1"}}));
        assert_eq!(
            p,
            [
                "invalid_rate",
                "invalid_fixed_amount",
                "invalid_free_units_per_events",
                "invalid_free_units_per_total_aggregation",
                "per_transaction_max_lower_than_per_transaction_min"
            ]
        );
        let e =
            errors_of(json!({"charge_model": "percentage", "properties": {"rate": "1"}}), &metric("latest_agg", false));
        assert_eq!(e.get("properties").unwrap(), ["invalid_value"]);
    }

    #[test]
    fn unknown_keys_are_dropped_and_grouping_is_one_setting() {
        let mut e = ValidationErrors::new();
        let c = build(
            &charge(
                json!({"charge_model": "standard", "properties": {"amount": "1", "rate": "2", "grouped_by": ["agent"]}}),
            ),
            None,
            &metric("sum_agg", false),
            false,
            &mut e,
        );
        assert_eq!(Value::Object(c.properties.clone()), json!({"amount": "1", "pricing_group_keys": ["agent"]}));
        assert_eq!(render_properties(&c.properties)["grouped_by"], json!(["agent"]));
        assert_eq!(
            props(json!({"charge_model": "standard", "properties": {"amount": "1", "pricing_group_keys": [""]}})),
            ["invalid_type"]
        );
    }

    #[test]
    fn metric_dependent_rules() {
        let e = errors_of(json!({"charge_model": "volume", "pay_in_advance": true}), &metric("sum_agg", false));
        assert_eq!(e.get("pay_in_advance").unwrap(), ["invalid_aggregation_type_or_charge_model"]);
        let e = errors_of(json!({"charge_model": "standard", "pay_in_advance": true}), &metric("max_agg", false));
        assert!(e.has("pay_in_advance"));
        let e = errors_of(json!({"charge_model": "dynamic"}), &metric("count_agg", false));
        assert_eq!(e.get("charge_model").unwrap(), ["invalid_aggregation_type_or_charge_model"]);
        assert!(errors_of(json!({"charge_model": "dynamic"}), &metric("sum_agg", false)).is_empty());
        // Proration only for recurring metrics, with standard (and in arrears volume / graduated).
        let e = errors_of(json!({"charge_model": "standard", "prorated": true}), &metric("sum_agg", false));
        assert_eq!(e.get("prorated").unwrap(), ["invalid_billable_metric_or_charge_model"]);
        assert!(errors_of(json!({"charge_model": "volume", "prorated": true}), &metric("sum_agg", true)).is_empty());
        let e = errors_of(
            json!({"charge_model": "volume", "prorated": true, "pay_in_advance": true}),
            &metric("sum_agg", true),
        );
        assert!(e.has("prorated"));
        let e = errors_of(json!({"charge_model": "standard", "prorated": true}), &metric("weighted_sum_agg", true));
        assert!(e.has("prorated"));
    }

    #[test]
    fn invoiceable_minimum_and_regrouping() {
        let e = errors_of(json!({"charge_model": "standard", "invoiceable": false}), &metric("sum_agg", false));
        assert_eq!(e.get("invoiceable").unwrap(), ["must_be_true_unless_pay_in_advance"]);
        let e = errors_of(
            json!({"charge_model": "standard", "pay_in_advance": true, "min_amount_cents": 10}),
            &metric("sum_agg", false),
        );
        assert_eq!(e.get("min_amount_cents").unwrap(), ["not_compatible_with_pay_in_advance"]);
        let e =
            errors_of(json!({"charge_model": "standard", "regroup_paid_fees": "invoice"}), &metric("sum_agg", false));
        assert_eq!(e.get("regroup_paid_fees").unwrap(), ["only_compatible_with_pay_in_advance_and_non_invoiceable"]);
        assert!(
            errors_of(
                json!({"charge_model": "standard", "pay_in_advance": true, "invoiceable": false,
            "regroup_paid_fees": "invoice"}),
                &metric("sum_agg", false)
            )
            .is_empty()
        );
        let e = errors_of(json!({"charge_model": "flat"}), &metric("sum_agg", false));
        assert_eq!(e.get("charge_model").unwrap(), ["value_is_invalid"]);
    }

    #[test]
    fn filters_use_the_metric_filter_values_and_their_own_properties() {
        let mut e = ValidationErrors::new();
        let c = build(
            &charge(json!({"charge_model": "standard", "properties": {"amount": "1"}, "filters": [
                {"values": {"region": ["us", "eu", "us"]}, "properties": {"amount": "2"}, "invoice_display_name": "EU+US"},
                {"values": {"region": [ALL_FILTER_VALUES]}, "properties": {"amount": "3"}}]})),
            None,
            &metric("sum_agg", false),
            false,
            &mut e,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.filters[0].values["region"], ["eu", "us"]);
        assert_eq!(c.filters[0].properties["amount"], "2");
        let e = errors_of(
            json!({"charge_model": "standard", "filters": [{"values": {"cloud": ["aws"]}},
            {"values": {"region": ["mars"]}, "properties": {"amount": 1}}]}),
            &metric("sum_agg", false),
        );
        assert_eq!(e.get("values").unwrap(), ["value_is_invalid"]);
        assert_eq!(e.get("properties").unwrap(), ["invalid_amount"]);
        let e = errors_of(
            json!({"charge_model": "standard", "filters": [{"values": {"region": ["eu", ALL_FILTER_VALUES]}}]}),
            &metric("sum_agg", false),
        );
        assert_eq!(e.get("values").unwrap(), ["value_is_invalid"]);
    }

    #[test]
    fn locked_charges_keep_their_pricing_rules() {
        let m = metric("sum_agg", false);
        let mut e = ValidationErrors::new();
        let stored =
            build(&charge(json!({"charge_model": "standard", "properties": {"amount": "1"}})), None, &m, false, &mut e);
        let next = build(
            &charge(json!({"charge_model": "package", "pay_in_advance": true, "properties": {"amount": "2"}})),
            Some(&stored),
            &m,
            true,
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!((next.charge_model.as_str(), next.pay_in_advance), ("standard", false));
        assert_eq!(next.properties["amount"], "2");
    }

    #[test]
    fn codes_are_unique_in_a_plan() {
        let m = metric("sum_agg", false);
        let mut e = ValidationErrors::new();
        let one = build(&charge(json!({"charge_model": "standard"})), None, &m, false, &mut e);
        let mut list = vec![one.clone(), one.clone(), one.clone()];
        assign_codes(&mut list, &[false, false, false], &mut e);
        let codes: Vec<&str> = list.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["calls", "calls_2", "calls_3"]);
        assert!(e.is_empty());
        let mut list2 = vec![one.clone(), one.clone(), one];
        assign_codes(&mut list2, &[true, true, false], &mut e);
        assert_eq!(e.get("code").unwrap(), ["value_already_exist"]);
    }
}
