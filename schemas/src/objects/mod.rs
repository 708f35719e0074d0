//! API objects as Lago renders them. Field order follows Lago's serializers.

pub mod billable_metric;
pub mod event;

use chrono::{DateTime, SecondsFormat, Utc};

/// Lago's timestamps: ISO 8601 in UTC, whole seconds, `Z` suffix.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
pub mod add_on;
pub mod coupon;
pub mod credit_note;
pub mod customer;
pub mod invoice;
pub mod organization;
pub mod plan;
pub mod subscription;
pub mod tax;
