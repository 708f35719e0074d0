//! The billing crate's metric names, in the `billstream_<stage>_<what>_<unit>` scheme.

/// Webhook delivery attempts, by `status`: `succeeded`, `retrying` (will be tried again) or `failed` (gave up).
pub const WEBHOOKS_SENT_TOTAL: &str = "billstream_webhooks_sent_total";
/// Duration of one webhook POST, answered or not.
pub const WEBHOOK_DELIVERY_SECONDS: &str = "billstream_webhook_delivery_seconds";
/// Webhooks in the outbox still to be sent (pending or waiting for a retry).
pub const WEBHOOKS_PENDING: &str = "billstream_webhooks_pending";
/// Usage-tracking messages, by `outcome`: `sent`, `dropped_queue_full`, `dropped_send_failed`, `dropped_too_large`.
pub const TRACKING_MESSAGES_TOTAL: &str = "billstream_tracking_messages_total";
/// Usage-tracking messages waiting to be sent.
pub const TRACKING_QUEUE_DEPTH: &str = "billstream_tracking_queue_depth";
