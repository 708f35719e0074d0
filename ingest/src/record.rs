//! The record format of topic `billstream.events` (pure: events in, bytes out, and back).
//!
//! One record holds the events of one subscription from one request; why that layout is in `kafka.rs`. Its payload is
//! binary: a format byte, then the fields with their lengths in front, so neither the API nor the sink escapes or
//! scans the properties' JSON text again, and a record is about a quarter smaller than the JSON it replaced (the
//! broker's cost grows with the bytes: tansu on SQLite stores each record in full).
//!
//! ```text
//! record   = 0x01 organization_id(16 bytes) text(external_subscription_id) varint(event count) event*
//! event    = text(transaction_id) text(code) i64(timestamp_us) text(properties) amount i64(ingested_us)
//! amount   = 0x00 | 0x01 text(decimal)
//! text     = varint(byte length) UTF-8 bytes
//! i64      = 8 bytes, little-endian; timestamps are Unix microseconds
//! varint   = unsigned LEB128
//! ```
//!
//! Records written before this format (a JSON object, first byte `{`) are still read, so a log written by an older
//! version drains after an upgrade.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::event::Event;
use serde::Deserialize;
use uuid::Uuid;

/// The first byte of a binary record.
const FORMAT_V1: u8 = 1;

/// The record key: organization id bytes then the subscription id, so one subscription maps to one partition.
pub fn record_key(organization_id: Uuid, external_subscription_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + external_subscription_id.len());
    key.extend_from_slice(organization_id.as_bytes());
    key.extend_from_slice(external_subscription_id.as_bytes());
    key
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Encodes events that share organization and subscription (the first event's are written) into one payload.
pub fn encode_record(events: &[&Event]) -> Vec<u8> {
    let (organization_id, subscription) =
        events.first().map_or((Uuid::nil(), ""), |e| (e.organization_id, e.external_subscription_id.as_str()));
    let size: usize = events.iter().map(|e| e.transaction_id.len() + e.code.len() + e.properties.len() + 32).sum();
    let mut out = Vec::with_capacity(32 + subscription.len() + size);
    out.push(FORMAT_V1);
    out.extend_from_slice(organization_id.as_bytes());
    put_text(&mut out, subscription);
    put_varint(&mut out, events.len() as u64);
    for e in events {
        put_text(&mut out, &e.transaction_id);
        put_text(&mut out, &e.code);
        out.extend_from_slice(&e.timestamp.timestamp_micros().to_le_bytes());
        put_text(&mut out, &e.properties);
        match e.precise_total_amount_cents {
            None => out.push(0),
            Some(d) => {
                out.push(1);
                put_text(&mut out, &d.to_string());
            }
        }
        out.extend_from_slice(&e.ingested_at.timestamp_micros().to_le_bytes());
    }
    out
}

/// Decodes a record payload; `None` when it is not one (such a record can never be stored, and is skipped).
pub fn decode_record(payload: &[u8]) -> Option<Vec<Event>> {
    match payload.first()? {
        &FORMAT_V1 => Reader { rest: &payload[1..] }.record(),
        b'{' => decode_json_record(payload),
        _ => None,
    }
}

/// Reads a binary payload front to back; every read checks the bytes are there.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn time(&mut self) -> Option<DateTime<Utc>> {
        let micros = i64::from_le_bytes(self.take(8)?.try_into().ok()?);
        DateTime::<Utc>::from_timestamp_micros(micros)
    }

    fn record(mut self) -> Option<Vec<Event>> {
        let organization_id = Uuid::from_slice(self.take(16)?).ok()?;
        let external_subscription_id = self.text()?;
        let count = usize::try_from(self.varint()?).ok()?;
        // An event takes at least 20 bytes: a corrupt count cannot make this allocate more than the payload warrants.
        let mut events = Vec::with_capacity(count.min(self.rest.len() / 20));
        for _ in 0..count {
            let transaction_id = self.text()?.to_owned();
            let code = self.text()?.to_owned();
            let timestamp = self.time()?;
            let properties = self.text()?.to_owned();
            let precise_total_amount_cents = match self.byte()? {
                0 => None,
                1 => Some(self.text()?.parse::<Decimal>().ok()?),
                _ => return None,
            };
            let ingested_at = self.time()?;
            events.push(Event {
                organization_id,
                external_subscription_id: external_subscription_id.to_owned(),
                transaction_id,
                code,
                timestamp,
                properties,
                precise_total_amount_cents,
                ingested_at,
            });
        }
        self.rest.is_empty().then_some(events)
    }
}

/// One event of a JSON record (the format before the binary one).
#[derive(Deserialize)]
struct JsonEvent<'a> {
    #[serde(rename = "t", borrow)]
    transaction_id: Cow<'a, str>,
    #[serde(rename = "c", borrow)]
    code: Cow<'a, str>,
    #[serde(rename = "ts")]
    timestamp_us: i64,
    #[serde(rename = "p", borrow)]
    properties: Cow<'a, str>,
    #[serde(rename = "a", default)]
    precise_total_amount_cents: Option<String>,
    #[serde(rename = "i")]
    ingested_us: i64,
}

#[derive(Deserialize)]
struct JsonRecord<'a> {
    #[serde(rename = "o")]
    organization_id: Uuid,
    #[serde(rename = "s", borrow)]
    external_subscription_id: Cow<'a, str>,
    #[serde(rename = "e", borrow)]
    events: Vec<JsonEvent<'a>>,
}

fn decode_json_record(payload: &[u8]) -> Option<Vec<Event>> {
    let record: JsonRecord<'_> = serde_json::from_slice(payload).ok()?;
    let time = |us: i64| DateTime::<Utc>::from_timestamp_micros(us);
    record
        .events
        .into_iter()
        .map(|w| {
            Some(Event {
                organization_id: record.organization_id,
                external_subscription_id: record.external_subscription_id.clone().into_owned(),
                transaction_id: w.transaction_id.into_owned(),
                code: w.code.into_owned(),
                timestamp: time(w.timestamp_us)?,
                properties: w.properties.into_owned(),
                precise_total_amount_cents: match w.precise_total_amount_cents {
                    None => None,
                    Some(s) => Some(s.parse::<Decimal>().ok()?),
                },
                ingested_at: time(w.ingested_us)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tx: &str, amount: Option<&str>) -> Event {
        Event {
            organization_id: Uuid::from_u128(42),
            external_subscription_id: "sub \"1\" é".into(),
            transaction_id: tx.into(),
            code: "storage".into(),
            timestamp: DateTime::from_timestamp_micros(1_700_000_000_250_001).unwrap(),
            properties: r#"{"gb":"1.5","nested":{"a":[1,2]},"s":"\"\\ü"}"#.into(),
            precise_total_amount_cents: amount.map(|a| a.parse().unwrap()),
            ingested_at: DateTime::from_timestamp_micros(-62_135_596_800_000_000).unwrap(),
        }
    }

    #[test]
    fn records_round_trip() {
        // A 200-byte id needs a two-byte length.
        let long = "x".repeat(200);
        let events = vec![event("tx-1", Some("1234.500000001")), event(&long, None), event("", Some("-0.5"))];
        let refs: Vec<&Event> = events.iter().collect();
        let payload = encode_record(&refs);
        assert_eq!(payload[0], FORMAT_V1);
        assert_eq!(decode_record(&payload).unwrap(), events);
        assert_eq!(decode_record(&encode_record(&[])).unwrap(), vec![]);
    }

    #[test]
    fn damaged_records_are_refused_not_misread() {
        let events = [event("tx-1", Some("12.5")), event("tx-2", None)];
        let refs: Vec<&Event> = events.iter().collect();
        let payload = encode_record(&refs);
        // Cut anywhere, or with a byte more, it is not a record.
        for end in 0..payload.len() {
            assert!(decode_record(&payload[..end]).is_none(), "cut at {end}");
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode_record(&longer).is_none());
        // An unknown format byte, an unknown amount tag, a count larger than the events there.
        assert!(decode_record(&[7, 1, 2]).is_none());
        let amount_tag = payload.len() - 9;
        let mut bad = payload.clone();
        bad[amount_tag] = 2;
        assert!(decode_record(&bad).is_none());
        let mut bad = payload.clone();
        bad[1 + 16 + 1 + events[0].external_subscription_id.len()] = 3;
        assert!(decode_record(&bad).is_none());
        assert!(decode_record(b"not json").is_none());
    }

    #[test]
    fn json_records_of_earlier_versions_are_still_read() {
        let json = r#"{"o":"00000000-0000-0000-0000-00000000002a","s":"sub \"1\" é","e":[
            {"t":"tx-1","c":"storage","ts":1700000000250001,"p":"{\"gb\":\"1.5\",\"nested\":{\"a\":[1,2]},\"s\":\"\\\"\\\\ü\"}","a":"1234.500000001","i":-62135596800000000},
            {"t":"tx-2","c":"storage","ts":1700000000250001,"p":"{\"gb\":\"1.5\",\"nested\":{\"a\":[1,2]},\"s\":\"\\\"\\\\ü\"}","i":-62135596800000000}]}"#;
        assert_eq!(
            decode_record(json.as_bytes()).unwrap(),
            vec![event("tx-1", Some("1234.500000001")), event("tx-2", None)]
        );
    }

    #[test]
    fn keys_tell_subscriptions_apart() {
        let org = Uuid::from_u128(42);
        assert_ne!(record_key(org, "a"), record_key(org, "b"));
        assert_eq!(&record_key(org, "a")[..16], org.as_bytes());
    }
}
