//! `event`, `events` (batch) and the list envelope, as Lago renders them.

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::event::Event;
use crate::pagination::PaginationMeta;

#[derive(Debug, Serialize)]
pub struct EventObject {
    pub lago_id: uuid::Uuid,
    pub transaction_id: String,
    /// Events are linked to customers and subscriptions when billed, not when received: always null here.
    pub lago_customer_id: Option<uuid::Uuid>,
    pub code: String,
    /// ISO 8601 with milliseconds.
    pub timestamp: String,
    pub precise_total_amount_cents: Option<String>,
    pub properties: Box<RawValue>,
    pub lago_subscription_id: Option<uuid::Uuid>,
    pub external_subscription_id: String,
    /// When Billstream received the event (whole seconds).
    pub created_at: String,
}

/// Lago prints decimals with at least one fractional digit (`"100.0"`).
fn decimal_text(d: Decimal) -> String {
    let s = d.normalize().to_string();
    if s.contains('.') { s } else { format!("{s}.0") }
}

impl EventObject {
    pub fn render(e: &Event) -> EventObject {
        // Stored properties are always a JSON object; should one not be, an empty object is rendered.
        let properties = RawValue::from_string(e.properties.clone()).or_else(|_| RawValue::from_string("{}".into()));
        let properties = match properties {
            Ok(p) => p,
            Err(_) => unreachable!("`{{}}` is valid JSON"),
        };
        EventObject {
            lago_id: e.lago_id(),
            transaction_id: e.transaction_id.clone(),
            lago_customer_id: None,
            code: e.code.clone(),
            timestamp: e.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            precise_total_amount_cents: e.precise_total_amount_cents.map(decimal_text),
            properties,
            lago_subscription_id: None,
            external_subscription_id: e.external_subscription_id.clone(),
            created_at: super::timestamp(e.ingested_at),
        }
    }
}

/// Writes `{"events": [...]}` for `events`: the same bytes as serializing `{"events": [EventObject, ...]}` of
/// rendered objects, without building them. Why: a batch response echoes every event, and at ingest rates rendering then
/// serializing each object (cloning its strings, re-validating its properties as JSON) was a large share of the
/// request's CPU. Stored properties are JSON the parser wrote, so they are copied as they are.
pub fn write_events_envelope(events: &[Event], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_event(e, out);
    }
    out.extend_from_slice(b"]}");
}

fn write_event(e: &Event, out: &mut Vec<u8>) {
    let string = |out: &mut Vec<u8>, s: &str| {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    };
    out.extend_from_slice(b"{\"lago_id\":\"");
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(e.lago_id().hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"transaction_id\":");
    string(out, &e.transaction_id);
    out.extend_from_slice(b",\"lago_customer_id\":null,\"code\":");
    string(out, &e.code);
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(e.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true).as_bytes());
    out.extend_from_slice(b"\",\"precise_total_amount_cents\":");
    match e.precise_total_amount_cents {
        Some(d) => string(out, &decimal_text(d)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"properties\":");
    if e.properties.is_empty() {
        out.extend_from_slice(b"{}");
    } else {
        out.extend_from_slice(e.properties.as_bytes());
    }
    out.extend_from_slice(b",\"lago_subscription_id\":null,\"external_subscription_id\":");
    string(out, &e.external_subscription_id);
    out.extend_from_slice(b",\"created_at\":\"");
    out.extend_from_slice(super::timestamp(e.ingested_at).as_bytes());
    out.extend_from_slice(b"\"}");
}

#[derive(Debug, Serialize)]
pub struct EventEnvelope {
    pub event: EventObject,
}

#[derive(Debug, Serialize)]
pub struct EventsPage {
    pub events: Vec<EventObject>,
    pub meta: PaginationMeta,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The batch envelope as serde renders it: the reference the writer is checked against.
    #[derive(Serialize)]
    struct EventsEnvelope {
        events: Vec<EventObject>,
    }

    #[test]
    fn the_envelope_writer_gives_the_serialized_bytes() {
        let e = |tx: &str, amount: Option<&str>, properties: &str| Event {
            organization_id: uuid::Uuid::from_u128(42),
            external_subscription_id: "sub \"1\" \\ é\u{1}".into(),
            transaction_id: tx.into(),
            code: "calls\n".into(),
            timestamp: "2024-05-01T10:00:00.123456Z".parse().unwrap(),
            properties: properties.into(),
            precise_total_amount_cents: amount.map(|a| Decimal::from_str(a).unwrap()),
            ingested_at: "2024-05-01T10:00:01.999Z".parse().unwrap(),
        };
        let events = [
            e("tx-1", Some("1234.5000"), r#"{"gb":"1.5","nested":{"a":[1,2,"\u00e9"]}}"#),
            e("tx-2 \u{7f}", None, "{}"),
            e("tx-3", Some("100"), r#"{"k":null}"#),
        ];
        for n in [0, 1, 3] {
            let expected =
                serde_json::to_vec(&EventsEnvelope { events: events[..n].iter().map(EventObject::render).collect() })
                    .unwrap();
            let mut written = Vec::new();
            write_events_envelope(&events[..n], &mut written);
            assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(expected).unwrap());
        }
    }

    #[test]
    fn decimals_keep_a_fraction_digit() {
        assert_eq!(decimal_text(Decimal::from(100)), "100.0");
        assert_eq!(decimal_text(Decimal::from_str("123.450").unwrap()), "123.45");
        assert_eq!(decimal_text(Decimal::from_str("0.000000001").unwrap()), "0.000000001");
    }
}
