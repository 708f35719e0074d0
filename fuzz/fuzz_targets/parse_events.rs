//! Any bytes as the body of `POST /events` and `POST /events/batch`: the parser must answer (an event list or a
//! Lago-shaped error), never panic, and every event it accepts must satisfy the contract.
#![no_main]

use chrono::DateTime;
use ingest::parse::{Context, MAX_ID_LEN, parse_batch, parse_single};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = Context {
        organization_id: uuid::Uuid::from_u128(1),
        received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        batch_limit: 50,
    };
    let mut events = Vec::new();
    if let Ok(e) = parse_single(&mut data.to_vec(), &ctx) {
        events.push(e);
    }
    if let Ok(batch) = parse_batch(&mut data.to_vec(), &ctx) {
        assert!(!batch.is_empty() && batch.len() <= ctx.batch_limit);
        events.extend(batch);
    }
    for e in events {
        for id in [&e.transaction_id, &e.external_subscription_id, &e.code] {
            assert!(!id.trim().is_empty() && id.len() <= MAX_ID_LEN && !id.contains('\0'));
        }
        let properties: serde_json::Value = serde_json::from_str(&e.properties).expect("properties are JSON");
        assert!(properties.is_object());
    }
});
