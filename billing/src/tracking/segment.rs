//! Segment's HTTP tracking API: a `track` message per event, sent in batches (`{"batch": [...]}`) with the write
//! key as the basic-auth user. Building the JSON is pure; [`post`] is the one place it leaves the process.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::event::TrackEvent;

/// Segment takes up to 500 KB per batch and 32 KB per message; our messages are well under 1 KB, so a batch of
/// [`BATCH_MESSAGES`] (analytics-ruby's batch size) stays far below the limit.
pub const BATCH_MESSAGES: usize = 100;
/// A message above this is dropped when tracked rather than sent (Segment would refuse the whole batch).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// Who sends: the hosting type and version every message carries, as Lago's `SegmentTrackJob` adds them.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `self`, or `cloud` when `LAGO_CLOUD=true`.
    pub hosting_type: &'static str,
    pub version: String,
}

impl Sender {
    /// The `track` message of `event` for organization `org` at `at`.
    pub fn message(&self, org: Uuid, event: &TrackEvent, at: DateTime<Utc>) -> Value {
        let mut properties = event.properties();
        properties.insert("organization_id".into(), json!(org));
        properties.insert("hosting_type".into(), json!(self.hosting_type));
        properties.insert("version".into(), json!(self.version));
        json!({
            "type": "track",
            // No user accounts here: the organization is the user Segment groups events by.
            "userId": format!("organization/{org}"),
            "event": event.name(),
            "properties": properties,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "messageId": Uuid::new_v4(),
            "context": {"library": {"name": "billstream", "version": self.version}},
        })
    }
}

/// The body of one batch request, from messages serialized when they were tracked.
pub fn batch_body(messages: &[Box<serde_json::value::RawValue>], sent_at: DateTime<Utc>) -> Value {
    json!({"batch": messages, "sentAt": sent_at.to_rfc3339_opts(SecondsFormat::Millis, true)})
}

/// `Authorization` for a write key: Basic, the key as user, no password.
pub fn authorization(write_key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:")))
}

/// What became of one batch request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Worth another try later: no answer, a timeout, 429 or a 5xx.
    Retry(String),
    /// Refused for good (a 4xx such as a bad write key): trying again would not help.
    Refused(String),
}

/// POSTs one batch.
pub async fn post(client: &reqwest::Client, url: &str, write_key: &str, body: &Value, timeout: Duration) -> Outcome {
    let request = client
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header("Authorization", authorization(write_key))
        .body(body.to_string());
    match request.send().await {
        Ok(r) if r.status().is_success() => Outcome::Sent,
        Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
            Outcome::Retry(format!("HTTP {}", r.status().as_u16()))
        }
        Ok(r) => Outcome::Refused(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_segment_track_call_with_lagos_common_properties() {
        let sender = Sender { hosting_type: "self", version: "1.2.3".into() };
        let org = Uuid::from_u128(7);
        let at = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").map(|t| t.with_timezone(&Utc));
        let at = at.unwrap_or_default();
        let m = sender.message(
            org,
            &TrackEvent::InvoiceCreated { invoice_id: Uuid::nil(), invoice_type: "one_off".into() },
            at,
        );
        assert_eq!(m["type"], "track");
        assert_eq!(m["event"], "invoice_created");
        assert_eq!(m["userId"], format!("organization/{org}"));
        assert_eq!(m["timestamp"], "2026-11-29T10:00:00.000Z");
        assert_eq!(m["properties"]["organization_id"], org.to_string());
        assert_eq!(m["properties"]["hosting_type"], "self");
        assert_eq!(m["properties"]["version"], "1.2.3");
        assert_eq!(m["properties"]["invoice_type"], "one_off");
        assert!(m["messageId"].as_str().is_some_and(|s| s.len() == 36));
        let raw = serde_json::value::to_raw_value(&m).unwrap();
        let body = batch_body(&[raw.clone(), raw], at);
        assert_eq!(body["batch"][1], m);
        assert_eq!(body["batch"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn the_write_key_is_the_basic_auth_user() {
        // base64("key:")
        assert_eq!(authorization("key"), "Basic a2V5Og==");
    }
}
