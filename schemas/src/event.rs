//! A usage event as accepted by ingest and kept by the event stores (the contract of ARCHITECTURE.md).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A validated event. Its identity is `(organization_id, external_subscription_id, transaction_id)`: the first
/// accepted event with an identity counts, later ones change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub organization_id: Uuid,
    pub external_subscription_id: String,
    pub transaction_id: String,
    pub code: String,
    /// When the usage happened (microsecond precision).
    pub timestamp: DateTime<Utc>,
    /// The `properties` object as compact JSON text.
    pub properties: String,
    pub precise_total_amount_cents: Option<Decimal>,
    /// When Billstream received it.
    pub ingested_at: DateTime<Utc>,
}

/// Namespace of event ids: `lago_id` is derived from the identity, so a retried event has the id of the first one.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c61_676f_2d65_7665_6e74_2d69_6473_0001);

impl Event {
    pub fn lago_id(&self) -> Uuid {
        event_id(self.organization_id, &self.external_subscription_id, &self.transaction_id)
    }
}

/// The id of the event with this identity.
pub fn event_id(organization_id: Uuid, external_subscription_id: &str, transaction_id: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + external_subscription_id.len() + transaction_id.len() + 1);
    name.extend_from_slice(organization_id.as_bytes());
    name.extend_from_slice(external_subscription_id.as_bytes());
    // A separator that cannot occur in either id (NUL is rejected at ingest), so ("a","bc") != ("ab","c").
    name.push(0);
    name.extend_from_slice(transaction_id.as_bytes());
    Uuid::new_v5(&EVENT_ID_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_depends_on_the_whole_identity_only() {
        let org = Uuid::from_u128(7);
        assert_eq!(event_id(org, "sub", "tx"), event_id(org, "sub", "tx"));
        assert_ne!(event_id(org, "sub", "tx"), event_id(org, "sub", "tx2"));
        assert_ne!(event_id(org, "a", "bc"), event_id(org, "ab", "c"));
        assert_ne!(event_id(org, "sub", "tx"), event_id(Uuid::from_u128(8), "sub", "tx"));
    }
}
