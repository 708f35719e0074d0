//! The billing crate's metric names, in the `billstream_<stage>_<what>_<unit>` scheme.

/// Webhook delivery attempts, by `status`: `succeeded`, `retrying` (will be tried again) or `failed` (gave up).
pub const WEBHOOKS_SENT_TOTAL: &str = "billstream_webhooks_sent_total";
/// Duration of one webhook POST, answered or not.
pub const WEBHOOK_DELIVERY_SECONDS: &str = "billstream_webhook_delivery_seconds";
/// Webhooks in the outbox still to be sent (pending or waiting for a retry).
pub const WEBHOOKS_PENDING: &str = "billstream_webhooks_pending";
