//! Billable metrics: reading the API input, Lago's validation rules, and the update rules (partial; fields that
//! change how usage is counted are frozen while a plan uses the metric).
//!
//! Error codes follow Lago (`value_is_mandatory`, `value_is_invalid`, `not_compatible_with_aggregation_type`,
//! `invalid_expression`); where Lago fails with a 500 on an out-of-range enum, this answers 422 `value_is_invalid`.

use std::collections::BTreeMap;

use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::expression;

/// The aggregation types a metric can be created with through the API.
pub const AGGREGATION_TYPES: [&str; 6] =
    ["count_agg", "sum_agg", "max_agg", "unique_count_agg", "weighted_sum_agg", "latest_agg"];
/// Lago's custom aggregation needs a premium feature that Billstream does not offer.
pub const CUSTOM_AGGREGATION: &str = "custom_agg";
pub const ROUNDING_FUNCTIONS: [&str; 3] = ["round", "ceil", "floor"];
pub const WEIGHTED_INTERVALS: [&str; 1] = ["seconds"];

/// Types whose units cannot carry over from one period to the next.
const NON_RECURRING_TYPES: [&str; 3] = ["count_agg", "max_agg", "latest_agg"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricFilter {
    pub key: String,
    /// Distinct values, in the order first sent.
    pub values: Vec<String>,
}

/// The settable fields of a billable metric; `name`, `code` and `aggregation_type` are present once valid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricAttrs {
    pub name: Option<String>,
    pub code: Option<String>,
    pub description: Option<String>,
    pub aggregation_type: Option<String>,
    pub field_name: Option<String>,
    pub weighted_interval: Option<String>,
    pub recurring: bool,
    pub rounding_function: Option<String>,
    pub rounding_precision: Option<i32>,
    pub expression: Option<String>,
}

/// A create or update request as sent: each field absent, null or a value.
#[derive(Debug, Clone, Default)]
pub struct MetricInput {
    pub name: Field<String>,
    pub code: Field<String>,
    pub description: Field<String>,
    pub aggregation_type: Field<String>,
    pub field_name: Field<String>,
    pub weighted_interval: Field<String>,
    pub recurring: Field<bool>,
    pub rounding_function: Field<String>,
    pub rounding_precision: Field<i32>,
    pub expression: Field<String>,
    pub filters: Field<Vec<MetricFilter>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 403 with this Lago code.
    Forbidden(&'static str),
    /// 422 validation errors.
    Invalid(ValidationErrors),
}

impl From<ValidationErrors> for Rejection {
    fn from(e: ValidationErrors) -> Self {
        Rejection::Invalid(e)
    }
}

/// Reads the `billable_metric` object; type errors and malformed filters are returned all at once.
pub fn parse_input(map: &Map<String, Value>) -> Result<MetricInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let mut input = MetricInput {
        name: f.string("name"),
        code: f.string("code"),
        description: f.string("description"),
        aggregation_type: f.string("aggregation_type"),
        field_name: f.string("field_name"),
        weighted_interval: f.string("weighted_interval"),
        recurring: f.bool("recurring"),
        rounding_function: f.string("rounding_function"),
        rounding_precision: Field::Absent,
        expression: f.string("expression"),
        filters: Field::Absent,
    };
    input.rounding_precision = match f.int("rounding_precision") {
        Field::Value(n) => match i32::try_from(n) {
            Ok(n) => Field::Value(n),
            Err(_) => {
                f.errors.add("rounding_precision", "value_is_invalid");
                Field::Absent
            }
        },
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    };
    input.filters = match f.objects("filters") {
        Field::Value(items) => Field::Value(parse_filters(&items, &mut f.errors)),
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    };
    f.errors.into_result().map(|()| input)
}

/// Lago's filter rules: every filter needs a key and at least one value (flat error keys `key` / `values`);
/// values are de-duplicated; a repeated key replaces the earlier one.
fn parse_filters(items: &[&Map<String, Value>], errors: &mut ValidationErrors) -> Vec<MetricFilter> {
    let mut by_key: BTreeMap<String, MetricFilter> = BTreeMap::new();
    for item in items {
        let mut f = Fields::new(item);
        let key = f.string("key").value().filter(|k| !k.trim().is_empty());
        let values = f.strings("values").value().filter(|v| !v.is_empty());
        let Some(values) = values else {
            errors.add("values", "value_is_mandatory");
            continue;
        };
        let Some(key) = key else {
            errors.add("key", "value_is_mandatory");
            continue;
        };
        let mut distinct: Vec<String> = Vec::with_capacity(values.len());
        for v in values {
            if !distinct.contains(&v) {
                distinct.push(v);
            }
        }
        by_key.insert(key.clone(), MetricFilter { key, values: distinct });
    }
    by_key.into_values().collect()
}

/// A new metric from a create request: defaults applied, then every rule checked. `code_taken` says whether another
/// live metric of the organization already has the requested code (the caller looks it up).
pub fn build_new(input: MetricInput, code_taken: bool) -> Result<(MetricAttrs, Vec<MetricFilter>), Rejection> {
    let attrs = MetricAttrs {
        name: input.name.value(),
        code: input.code.value(),
        description: input.description.value(),
        aggregation_type: input.aggregation_type.value(),
        field_name: input.field_name.value(),
        weighted_interval: input.weighted_interval.value(),
        recurring: input.recurring.value().unwrap_or(false),
        rounding_function: input.rounding_function.value(),
        rounding_precision: input.rounding_precision.value(),
        expression: input.expression.value(),
    };
    let attrs = checked(normalize(attrs), code_taken)?;
    Ok((attrs, input.filters.value().unwrap_or_default()))
}

/// The metric after an update request. Fields absent from the request keep their value. While a plan uses the
/// metric only `name`, `description` and `filters` change; the other fields are ignored, as Lago does, so that
/// usage already billed keeps its meaning. Returns the new filters when the request sent a list.
pub fn apply_update(
    current: &MetricAttrs,
    input: MetricInput,
    attached_to_plan: bool,
    code_taken: bool,
) -> Result<(MetricAttrs, Option<Vec<MetricFilter>>), Rejection> {
    let mut next = current.clone();
    next.name = input.name.or_keep(current.name.clone());
    next.description = input.description.or_keep(current.description.clone());
    if !attached_to_plan {
        next.code = input.code.or_keep(current.code.clone());
        next.aggregation_type = input.aggregation_type.or_keep(current.aggregation_type.clone());
        next.field_name = input.field_name.or_keep(current.field_name.clone());
        next.weighted_interval = input.weighted_interval.or_keep(current.weighted_interval.clone());
        next.rounding_function = input.rounding_function.or_keep(current.rounding_function.clone());
        next.rounding_precision = input.rounding_precision.or_keep(current.rounding_precision);
        next.expression = input.expression.or_keep(current.expression.clone());
        match input.recurring {
            Field::Value(r) => next.recurring = r,
            Field::Null => {
                // Lago fails with a 500 here (NOT NULL column); a clear 422 is better.
                return Err(Rejection::Invalid(schemas::error::field_error("recurring", "value_is_invalid")));
            }
            Field::Absent => {}
        }
    }
    let next = checked(normalize(next), code_taken)?;
    // `filters: null` leaves them unchanged; a list (even empty) replaces them.
    Ok((next, input.filters.value()))
}

/// Lago's `before_validation` steps: blank strings are no value, and a count has no field.
fn normalize(mut a: MetricAttrs) -> MetricAttrs {
    let blank_to_none = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    a.rounding_function = blank_to_none(a.rounding_function);
    a.expression = blank_to_none(a.expression);
    a.field_name = blank_to_none(a.field_name);
    if a.aggregation_type.as_deref() == Some("count_agg") {
        a.field_name = None;
    }
    a
}

fn checked(a: MetricAttrs, code_taken: bool) -> Result<MetricAttrs, Rejection> {
    if a.aggregation_type.as_deref() == Some(CUSTOM_AGGREGATION) {
        return Err(Rejection::Forbidden("feature_unavailable"));
    }
    let mut errors = validate(&a);
    if code_taken {
        errors.add("code", "value_already_exist");
    }
    errors.into_result()?;
    Ok(a)
}

/// The code a create or update request asks for (to look up whether another metric holds it).
pub fn requested_code(input: &MetricInput) -> Option<&str> {
    match &input.code {
        Field::Value(c) => Some(c.as_str()),
        _ => None,
    }
}

/// Every rule on the fields of one metric alone (code uniqueness needs the other metrics: see `code_taken`).
pub fn validate(a: &MetricAttrs) -> ValidationErrors {
    let mut e = ValidationErrors::new();
    let agg = a.aggregation_type.as_deref().filter(|t| AGGREGATION_TYPES.contains(t));
    if a.recurring && agg.is_some_and(|t| NON_RECURRING_TYPES.contains(&t)) {
        e.add("recurring", "not_compatible_with_aggregation_type");
    }
    if let Some(expr) = &a.expression
        && !expression::is_valid(expr)
    {
        e.add("expression", "invalid_expression");
    }
    if a.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        e.add("name", "value_is_mandatory");
    }
    if agg != Some("count_agg") && a.field_name.is_none() {
        e.add("field_name", "value_is_mandatory");
    }
    if agg.is_none() {
        e.add("aggregation_type", "value_is_invalid");
    }
    if a.code.as_deref().is_none_or(|c| c.trim().is_empty()) {
        e.add("code", "value_is_mandatory");
    }
    match (&a.weighted_interval, agg) {
        (None, Some("weighted_sum_agg")) => e.add("weighted_interval", "value_is_invalid"),
        (Some(w), _) if !WEIGHTED_INTERVALS.contains(&w.as_str()) => e.add("weighted_interval", "value_is_invalid"),
        _ => {}
    }
    if let Some(r) = &a.rounding_function
        && !ROUNDING_FUNCTIONS.contains(&r.as_str())
    {
        e.add("rounding_function", "value_is_invalid");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> MetricInput {
        match v {
            Value::Object(m) => parse_input(&m).unwrap(),
            _ => unreachable!(),
        }
    }

    fn errors(v: Value) -> ValidationErrors {
        match build_new(input(v), false) {
            Err(Rejection::Invalid(e)) => e,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    fn codes<'a>(e: &'a ValidationErrors, field: &str) -> Vec<&'a str> {
        e.get(field).unwrap_or_default().iter().map(String::as_str).collect()
    }

    #[test]
    fn minimal_count_metric_is_valid_and_drops_field_name() {
        let (a, filters) = build_new(
            input(json!({"name": "API calls", "code": "calls", "aggregation_type": "count_agg", "field_name": "x"})),
            false,
        )
        .unwrap();
        assert_eq!(a.field_name, None);
        assert!(!a.recurring);
        assert!(filters.is_empty());
    }

    #[test]
    fn every_missing_field_is_reported_at_once() {
        let e = errors(json!({"description": "x"}));
        assert_eq!(codes(&e, "name"), ["value_is_mandatory"]);
        assert_eq!(codes(&e, "code"), ["value_is_mandatory"]);
        assert_eq!(codes(&e, "aggregation_type"), ["value_is_invalid"]);
        assert_eq!(codes(&e, "field_name"), ["value_is_mandatory"]);
    }

    #[test]
    fn field_name_required_except_for_count() {
        for t in ["sum_agg", "max_agg", "unique_count_agg", "latest_agg"] {
            let e = errors(json!({"name": "n", "code": "c", "aggregation_type": t}));
            assert_eq!(codes(&e, "field_name"), ["value_is_mandatory"], "{t}");
        }
        let e = errors(
            json!({"name": "n", "code": "c", "aggregation_type": "weighted_sum_agg", "weighted_interval": "seconds"}),
        );
        assert_eq!(codes(&e, "field_name"), ["value_is_mandatory"]);
    }

    #[test]
    fn recurring_only_where_units_can_carry_over() {
        for t in ["count_agg", "max_agg", "latest_agg"] {
            let e =
                errors(json!({"name": "n", "code": "c", "aggregation_type": t, "field_name": "f", "recurring": true}));
            assert_eq!(codes(&e, "recurring"), ["not_compatible_with_aggregation_type"], "{t}");
        }
        for t in ["sum_agg", "unique_count_agg"] {
            let ok = build_new(
                input(json!({"name": "n", "code": "c", "aggregation_type": t, "field_name": "f", "recurring": true})),
                false,
            );
            assert!(ok.is_ok(), "{t}");
        }
    }

    #[test]
    fn weighted_sum_needs_seconds_interval() {
        let e = errors(json!({"name": "n", "code": "c", "aggregation_type": "weighted_sum_agg", "field_name": "f"}));
        assert_eq!(codes(&e, "weighted_interval"), ["value_is_invalid"]);
        let e = errors(
            json!({"name": "n", "code": "c", "aggregation_type": "weighted_sum_agg", "field_name": "f", "weighted_interval": "minutes"}),
        );
        assert_eq!(codes(&e, "weighted_interval"), ["value_is_invalid"]);
        let (a, _) = build_new(input(json!({"name": "n", "code": "c", "aggregation_type": "weighted_sum_agg", "field_name": "f", "weighted_interval": "seconds", "recurring": true})), false).unwrap();
        assert_eq!(a.weighted_interval.as_deref(), Some("seconds"));
    }

    #[test]
    fn unknown_aggregation_and_rounding_are_invalid() {
        let e = errors(
            json!({"name": "n", "code": "c", "aggregation_type": "avg_agg", "field_name": "f", "rounding_function": "up"}),
        );
        assert_eq!(codes(&e, "aggregation_type"), ["value_is_invalid"]);
        assert_eq!(codes(&e, "rounding_function"), ["value_is_invalid"]);
        let (a, _) = build_new(input(json!({"name": "n", "code": "c", "aggregation_type": "sum_agg", "field_name": "f", "rounding_function": "ceil", "rounding_precision": -2})), false).unwrap();
        assert_eq!((a.rounding_function.as_deref(), a.rounding_precision), (Some("ceil"), Some(-2)));
    }

    #[test]
    fn taken_code_is_reported_with_the_other_errors() {
        let e = match build_new(input(json!({"code": "c", "aggregation_type": "count_agg"})), true) {
            Err(Rejection::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(codes(&e, "code"), ["value_already_exist"]);
        assert_eq!(codes(&e, "name"), ["value_is_mandatory"]);
    }

    #[test]
    fn custom_aggregation_is_a_missing_feature() {
        let r = build_new(input(json!({"name": "n", "code": "c", "aggregation_type": "custom_agg"})), false);
        assert_eq!(r.unwrap_err(), Rejection::Forbidden("feature_unavailable"));
    }

    #[test]
    fn expression_is_checked() {
        let e = errors(
            json!({"name": "n", "code": "c", "aggregation_type": "sum_agg", "field_name": "f", "expression": "round("}),
        );
        assert_eq!(codes(&e, "expression"), ["invalid_expression"]);
        assert!(build_new(input(json!({"name": "n", "code": "c", "aggregation_type": "sum_agg", "field_name": "f", "expression": "event.properties.a * 2"})), false).is_ok());
    }

    #[test]
    fn wrong_types_are_invalid_values() {
        let m =
            json!({"name": {"x": 1}, "recurring": "maybe", "rounding_precision": 99999999999i64, "filters": "region"});
        let Value::Object(m) = m else { unreachable!() };
        let e = parse_input(&m).unwrap_err();
        for f in ["name", "recurring", "rounding_precision", "filters"] {
            assert_eq!(codes(&e, f), ["value_is_invalid"], "{f}");
        }
    }

    #[test]
    fn filters_need_key_and_values_and_dedupe() {
        let m = json!({"filters": [{"key": "region", "values": []}, {"key": "", "values": ["a"]}]});
        let Value::Object(m) = m else { unreachable!() };
        let e = parse_input(&m).unwrap_err();
        assert_eq!(codes(&e, "values"), ["value_is_mandatory"]);
        assert_eq!(codes(&e, "key"), ["value_is_mandatory"]);

        let (_, filters) = build_new(input(json!({"name": "n", "code": "c", "aggregation_type": "count_agg",
            "filters": [{"key": "region", "values": ["eu", "us", "eu"]}, {"key": "cloud", "values": ["aws"]}, {"key": "region", "values": ["ap"]}]})), false)
        .unwrap();
        assert_eq!(
            filters,
            vec![
                MetricFilter { key: "cloud".into(), values: vec!["aws".into()] },
                MetricFilter { key: "region".into(), values: vec!["ap".into()] },
            ]
        );
    }

    fn stored() -> MetricAttrs {
        build_new(input(json!({"name": "Storage", "code": "storage", "aggregation_type": "sum_agg", "field_name": "gb", "description": "d"})), false)
            .unwrap()
            .0
    }

    #[test]
    fn update_is_partial_and_null_clears() {
        let (next, filters) =
            apply_update(&stored(), input(json!({"name": "Disk", "description": null})), false, false).unwrap();
        assert_eq!(next.name.as_deref(), Some("Disk"));
        assert_eq!(next.description, None);
        assert_eq!(next.code.as_deref(), Some("storage"));
        assert_eq!(filters, None);
    }

    #[test]
    fn update_revalidates_the_result() {
        let r = apply_update(&stored(), input(json!({"aggregation_type": "max_agg", "recurring": true})), false, false);
        match r {
            Err(Rejection::Invalid(e)) => assert_eq!(codes(&e, "recurring"), ["not_compatible_with_aggregation_type"]),
            other => panic!("{other:?}"),
        }
        assert!(apply_update(&stored(), input(json!({"recurring": null})), false, false).is_err());
    }

    #[test]
    fn attached_metric_keeps_how_usage_is_counted() {
        let (next, filters) = apply_update(
            &stored(),
            input(json!({"name": "Disk", "code": "disk", "aggregation_type": "max_agg", "filters": []})),
            true,
            false,
        )
        .unwrap();
        assert_eq!(next.name.as_deref(), Some("Disk"));
        assert_eq!(next.code.as_deref(), Some("storage"));
        assert_eq!(next.aggregation_type.as_deref(), Some("sum_agg"));
        assert_eq!(filters, Some(vec![]));
    }
}
