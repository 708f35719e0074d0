//! Reading and checking the bodies of `POST /events` and `POST /events/batch` (pure: bytes in, events or a Lago-shaped
//! error out). Parsing uses simd-json on the raw body.
//!
//! The synchronous checks of the event contract happen here, so that whatever is acknowledged can be stored: a value
//! the store could refuse (a NUL byte, an over-long id, a timestamp outside the representable range) is a 422 now,
//! never a failed write that would also fail the other requests of its group commit.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::event::Event;
use schemas::{ApiError, ValidationErrors};
use serde_json::{Map, Value as Json, json};
use simd_json::BorrowedValue as Value;
use simd_json::StaticNode;
use simd_json::prelude::*;
use uuid::Uuid;

/// Longest `transaction_id`, `code` and `external_subscription_id` accepted (they are index keys).
pub const MAX_ID_LEN: usize = 255;
/// Deepest nesting of objects and arrays inside `properties`.
pub const MAX_PROPERTIES_DEPTH: usize = 32;
/// Timestamps from year 1 to year 9999, as Unix seconds.
const MIN_TIMESTAMP: i64 = -62_135_596_800;
const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// What the parser needs besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub organization_id: Uuid,
    /// The time of receipt: the timestamp of events that carry none, and their `ingested_at`.
    pub received_at: DateTime<Utc>,
    /// Most events one batch may hold.
    pub batch_limit: usize,
}

fn bad_json() -> ApiError {
    ApiError::BadRequest("Bad Request".into())
}

fn missing_root(root: &str) -> ApiError {
    ApiError::BadRequest(format!("BadRequest: param is missing or the value is empty or invalid: {root}"))
}

fn parse_body(body: &mut [u8]) -> Result<Value<'_>, ApiError> {
    simd_json::to_borrowed_value(body).map_err(|_| bad_json())
}

/// `POST /api/v1/events`: `{"event": {...}}`.
pub fn parse_single(body: &mut [u8], ctx: &Context) -> Result<Event, ApiError> {
    let root = parse_body(body)?;
    let event =
        root.get("event").and_then(|e| e.as_object()).filter(|o| !o.is_empty()).ok_or_else(|| missing_root("event"))?;
    read_event(event, ctx).map_err(ApiError::Validation)
}

/// `POST /api/v1/events/batch`: `{"events": [...]}`, all valid or none stored; errors are keyed by index.
pub fn parse_batch(body: &mut [u8], ctx: &Context) -> Result<Vec<Event>, ApiError> {
    let root = parse_body(body)?;
    let events = match root.get("events").and_then(|e| e.as_array()) {
        Some(list) if !list.is_empty() => list,
        _ => return Err(ApiError::ValidationDetails(json!({"events": ["no_events"]}))),
    };
    if events.len() > ctx.batch_limit {
        return Err(ApiError::ValidationDetails(json!({"events": ["too_many_events"]})));
    }
    let mut accepted = Vec::with_capacity(events.len());
    let mut errors = Map::new();
    for (index, item) in events.iter().enumerate() {
        let result = match item.as_object() {
            Some(event) => read_event(event, ctx),
            None => Err(schemas::error::field_error("event", "value_is_invalid")),
        };
        match result {
            Ok(event) if errors.is_empty() => accepted.push(event),
            Ok(_) => {}
            Err(e) => {
                errors.insert(index.to_string(), e.to_json());
            }
        }
    }
    if errors.is_empty() { Ok(accepted) } else { Err(ApiError::ValidationDetails(Json::Object(errors))) }
}

type Object<'a> = simd_json::value::borrowed::Object<'a>;

fn read_event(o: &Object<'_>, ctx: &Context) -> Result<Event, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let transaction_id = read_id(o, "transaction_id", &mut errors);
    let external_subscription_id = read_id(o, "external_subscription_id", &mut errors);
    let code = read_id(o, "code", &mut errors);
    let timestamp = match read_timestamp(o.get("timestamp"), ctx.received_at) {
        Some(t) => t,
        None => {
            errors.add("timestamp", "invalid_format");
            ctx.received_at
        }
    };
    let properties = match o.get("properties") {
        None | Some(Value::Static(StaticNode::Null)) => "{}".to_owned(),
        Some(p @ Value::Object(_)) if clean(p, 0) => p.encode(),
        Some(_) => {
            errors.add("properties", "value_is_invalid");
            String::new()
        }
    };
    let precise_total_amount_cents = match o.get("precise_total_amount_cents") {
        None | Some(Value::Static(StaticNode::Null)) => None,
        Some(v) => match scalar_text(v).and_then(|t| parse_decimal(&t)) {
            Some(d) => Some(d),
            None => {
                errors.add("precise_total_amount_cents", "value_is_invalid");
                None
            }
        },
    };
    errors.into_result()?;
    Ok(Event {
        organization_id: ctx.organization_id,
        external_subscription_id: external_subscription_id.unwrap_or_default(),
        transaction_id: transaction_id.unwrap_or_default(),
        code: code.unwrap_or_default(),
        timestamp,
        properties,
        precise_total_amount_cents,
        ingested_at: ctx.received_at,
    })
}

/// A string or number, as text (Lago stores scalars given for string fields as their text).
fn scalar_text<'a>(v: &'a Value<'_>) -> Option<Cow<'a, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_ref())),
        Value::Static(StaticNode::I64(n)) => Some(Cow::Owned(n.to_string())),
        Value::Static(StaticNode::U64(n)) => Some(Cow::Owned(n.to_string())),
        Value::Static(StaticNode::F64(n)) if n.is_finite() => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn read_id(o: &Object<'_>, field: &str, errors: &mut ValidationErrors) -> Option<String> {
    match o.get(field) {
        None | Some(Value::Static(StaticNode::Null)) => {
            errors.add(field, "value_is_mandatory");
            None
        }
        Some(v) => match scalar_text(v) {
            Some(t) if t.trim().is_empty() => {
                errors.add(field, "value_is_mandatory");
                None
            }
            Some(t) if t.len() > MAX_ID_LEN => {
                errors.add(field, "value_is_too_long");
                None
            }
            Some(t) if t.contains('\0') => {
                errors.add(field, "value_is_invalid");
                None
            }
            Some(t) => Some(t.into_owned()),
            None => {
                errors.add(field, "value_is_invalid");
                None
            }
        },
    }
}

/// Unix seconds as an integer, a float or a numeric string; absent, null or false is the time of receipt. `None`
/// when the value is not a usable timestamp.
fn read_timestamp(v: Option<&Value<'_>>, received_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let seconds = match v {
        None | Some(Value::Static(StaticNode::Null | StaticNode::Bool(false))) => return Some(received_at),
        Some(Value::Static(StaticNode::I64(n))) => Decimal::from(*n),
        Some(Value::Static(StaticNode::U64(n))) => Decimal::from(*n),
        Some(Value::Static(StaticNode::F64(f))) => Decimal::from_str(&f.to_string()).ok()?,
        Some(Value::String(s)) => parse_decimal(s)?,
        Some(_) => return None,
    };
    timestamp_from_seconds(seconds)
}

/// Rounds to the microsecond, the precision the stores keep.
pub fn timestamp_from_seconds(seconds: Decimal) -> Option<DateTime<Utc>> {
    let micros = seconds.checked_mul(Decimal::from(1_000_000))?.round();
    let micros = i64::try_from(micros).ok()?;
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&micros.div_euclid(1_000_000)) {
        return None;
    }
    DateTime::from_timestamp_micros(micros)
}

/// A decimal number written plainly (`12.5`, ` -3 `) or in scientific notation (`1.6e9`).
fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Decimal::from_str(t).ok().or_else(|| if t.contains(['e', 'E']) { Decimal::from_scientific(t).ok() } else { None })
}

/// Properties must be storable as JSON: no NUL in any key or string, and not nested too deep.
fn clean(v: &Value<'_>, depth: usize) -> bool {
    if depth > MAX_PROPERTIES_DEPTH {
        return false;
    }
    match v {
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => items.iter().all(|i| clean(i, depth + 1)),
        Value::Object(o) => o.iter().all(|(k, i)| !k.contains('\0') && clean(i, depth + 1)),
        Value::Static(StaticNode::F64(f)) => f.is_finite(),
        Value::Static(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            organization_id: Uuid::from_u128(1),
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            batch_limit: 3,
        }
    }

    fn single(body: &str) -> Result<Event, ApiError> {
        parse_single(&mut body.as_bytes().to_vec(), &ctx())
    }

    fn batch(body: &str) -> Result<Vec<Event>, ApiError> {
        parse_batch(&mut body.as_bytes().to_vec(), &ctx())
    }

    fn details(e: ApiError) -> Json {
        match e {
            ApiError::Validation(v) => v.to_json(),
            ApiError::ValidationDetails(v) => v,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_full_event() {
        let e = single(
            r#"{"event": {"transaction_id": "tx1", "external_subscription_id": "sub1", "code": "calls",
            "timestamp": 1651240791.123, "properties": {"gb": 10, "region": "eu", "nested": {"a": [1, 2]}},
            "precise_total_amount_cents": "12.345", "external_customer_id": "ignored"}}"#,
        )
        .unwrap();
        assert_eq!(
            (e.transaction_id.as_str(), e.external_subscription_id.as_str(), e.code.as_str()),
            ("tx1", "sub1", "calls")
        );
        assert_eq!(e.timestamp.timestamp_micros(), 1_651_240_791_123_000);
        assert_eq!(
            serde_json::from_str::<Json>(&e.properties).unwrap(),
            json!({"gb": 10, "region": "eu", "nested": {"a": [1, 2]}})
        );
        assert_eq!(e.precise_total_amount_cents, Some(Decimal::from_str("12.345").unwrap()));
        assert_eq!(e.ingested_at, ctx().received_at);
    }

    #[test]
    fn timestamp_forms() {
        let ts = |t: &str| {
            single(&format!(
                r#"{{"event": {{"transaction_id": "t", "external_subscription_id": "s", "code": "c"{t}}}}}"#
            ))
        };
        let micros = |t: &str| ts(t).unwrap().timestamp.timestamp_micros();
        assert_eq!(micros(""), 1_700_000_000_000_000);
        assert_eq!(micros(r#", "timestamp": null"#), 1_700_000_000_000_000);
        assert_eq!(micros(r#", "timestamp": false"#), 1_700_000_000_000_000);
        assert_eq!(micros(r#", "timestamp": 1651240791"#), 1_651_240_791_000_000);
        assert_eq!(micros(r#", "timestamp": "1651240791.5""#), 1_651_240_791_500_000);
        assert_eq!(micros(r#", "timestamp": " 1.6e9 ""#), 1_600_000_000_000_000);
        assert_eq!(micros(r#", "timestamp": -10"#), -10_000_000);
        for bad in [r#""2022-04-29 08:59:51""#, r#""abc""#, r#""""#, "true", "[1]", "{}", "1e20", r#""NaN""#] {
            let e = ts(&format!(r#", "timestamp": {bad}"#)).unwrap_err();
            assert_eq!(details(e), json!({"timestamp": ["invalid_format"]}), "{bad}");
        }
    }

    /// Found by the fuzzer: a timestamp near Decimal's limit overflowed the conversion to microseconds (a panic).
    #[test]
    fn regression_huge_timestamp_string_is_invalid_not_a_panic() {
        let body = r#"{"event": {"transaction_id": "t", "external_subscription_id": "s", "code": "c", "timestamp": "79228162514264337593543950335"}}"#;
        assert_eq!(details(single(body).unwrap_err()), json!({"timestamp": ["invalid_format"]}));
    }

    #[test]
    fn required_fields_are_listed_together() {
        let e = single(r#"{"event": {"properties": {}}}"#).unwrap_err();
        assert_eq!(
            details(e),
            json!({"transaction_id": ["value_is_mandatory"], "external_subscription_id": ["value_is_mandatory"], "code": ["value_is_mandatory"]})
        );
        let e = single(r#"{"event": {"transaction_id": " ", "external_subscription_id": {"a": 1}, "code": 42}}"#)
            .unwrap_err();
        assert_eq!(
            details(e),
            json!({"transaction_id": ["value_is_mandatory"], "external_subscription_id": ["value_is_invalid"]})
        );
    }

    #[test]
    fn numbers_are_taken_as_ids() {
        let e = single(r#"{"event": {"transaction_id": 123, "external_subscription_id": "s", "code": "c"}}"#).unwrap();
        assert_eq!(e.transaction_id, "123");
    }

    #[test]
    fn store_hostile_values_are_rejected() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        let e = single(&format!(r#"{{"event": {{"transaction_id": "{long}", "external_subscription_id": "s\u0000", "code": "c", "properties": {{"a": "\u0000"}}}}}}"#)).unwrap_err();
        assert_eq!(
            details(e),
            json!({"transaction_id": ["value_is_too_long"], "external_subscription_id": ["value_is_invalid"], "properties": ["value_is_invalid"]})
        );
    }

    #[test]
    fn properties_must_be_a_shallow_enough_object() {
        for bad in [r#""gb""#, "[1]", "5"] {
            let e = single(&format!(r#"{{"event": {{"transaction_id": "t", "external_subscription_id": "s", "code": "c", "properties": {bad}}}}}"#)).unwrap_err();
            assert_eq!(details(e), json!({"properties": ["value_is_invalid"]}), "{bad}");
        }
        let deep = format!("{}1{}", "[".repeat(MAX_PROPERTIES_DEPTH + 1), "]".repeat(MAX_PROPERTIES_DEPTH + 1));
        let e = single(&format!(r#"{{"event": {{"transaction_id": "t", "external_subscription_id": "s", "code": "c", "properties": {{"a": {deep}}}}}}}"#)).unwrap_err();
        assert_eq!(details(e), json!({"properties": ["value_is_invalid"]}));
        // Nesting beyond the parser's own limit is not JSON we read at all.
        let abyss = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(single(&abyss), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn malformed_and_rootless_bodies_are_400() {
        assert!(matches!(single("{"), Err(ApiError::BadRequest(m)) if m == "Bad Request"));
        assert!(matches!(single("\u{1}"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_single(&mut [0xff, 0xfe], &ctx()), Err(ApiError::BadRequest(_))));
        for body in ["{}", r#"{"event": {}}"#, r#"{"event": "x"}"#, "[]"] {
            assert!(matches!(single(body), Err(ApiError::BadRequest(m)) if m.ends_with(": event")), "{body}");
        }
    }

    #[test]
    fn batch_limits() {
        assert_eq!(details(batch(r#"{"events": []}"#).unwrap_err()), json!({"events": ["no_events"]}));
        assert_eq!(details(batch(r#"{}"#).unwrap_err()), json!({"events": ["no_events"]}));
        let ev = r#"{"transaction_id": "t", "external_subscription_id": "s", "code": "c"}"#;
        let four = format!(r#"{{"events": [{ev}, {ev}, {ev}, {ev}]}}"#);
        assert_eq!(details(batch(&four).unwrap_err()), json!({"events": ["too_many_events"]}));
        let three = format!(r#"{{"events": [{ev}, {ev}, {ev}]}}"#);
        assert_eq!(batch(&three).unwrap().len(), 3);
    }

    #[test]
    fn batch_rejects_whole_and_names_each_bad_index() {
        let body = r#"{"events": [
            {"transaction_id": "a", "external_subscription_id": "s", "code": "c"},
            {"transaction_id": "b", "external_subscription_id": "s", "code": "c", "timestamp": "yesterday"},
            "not an event"
        ]}"#;
        assert_eq!(
            details(batch(body).unwrap_err()),
            json!({"1": {"timestamp": ["invalid_format"]}, "2": {"event": ["value_is_invalid"]}})
        );
    }

    #[test]
    fn precise_amount_is_a_decimal() {
        let amount = |v: &str| {
            single(&format!(
                r#"{{"event": {{"transaction_id": "t", "external_subscription_id": "s", "code": "c", "precise_total_amount_cents": {v}}}}}"#
            ))
        };
        assert_eq!(
            amount(r#""0.000000001""#).unwrap().precise_total_amount_cents,
            Decimal::from_str("0.000000001").ok()
        );
        assert_eq!(amount("250").unwrap().precise_total_amount_cents, Some(Decimal::from(250)));
        assert_eq!(
            details(amount(r#""abc""#).unwrap_err()),
            json!({"precise_total_amount_cents": ["value_is_invalid"]})
        );
    }
}
