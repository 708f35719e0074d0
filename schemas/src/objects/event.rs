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

#[derive(Debug, Serialize)]
pub struct EventEnvelope {
    pub event: EventObject,
}

#[derive(Debug, Serialize)]
pub struct EventsEnvelope {
    pub events: Vec<EventObject>,
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

    #[test]
    fn decimals_keep_a_fraction_digit() {
        assert_eq!(decimal_text(Decimal::from(100)), "100.0");
        assert_eq!(decimal_text(Decimal::from_str("123.450").unwrap()), "123.45");
        assert_eq!(decimal_text(Decimal::from_str("0.000000001").unwrap()), "0.000000001");
    }
}
