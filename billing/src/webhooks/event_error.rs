//! `event.error`: an event sent again with an identity already stored is acknowledged (the first one stays, as
//! Lago keeps it) and reported to the organization's endpoints, one webhook per sending, with Lago's error
//! `{"transaction_id": ["value_already_exist"]}` and the event as sent. Ingest records the sendings in
//! `event_duplicates`; this queues their webhooks and marks them sent in one transaction, so each is queued once
//! whichever worker takes it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::event::Event;
use schemas::objects::event::EventObject;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::WebhookType;
use crate::Result;

/// Most sendings one pass takes.
const BATCH: i64 = 500;

type Row = (Uuid, String, String, DateTime<Utc>, String, DateTime<Utc>, String, Option<Decimal>);

/// Lago's `event_error` object for one sending.
fn object(event: &Event) -> Value {
    json!({
        "status": 422,
        "error": "Unprocessable entity",
        "message": json!({"transaction_id": ["value_already_exist"]}).to_string(),
        "event": EventObject::render(event),
    })
}

/// Queues the `event.error` webhooks of recorded duplicates not sent yet, and forgets the sendings reported a week
/// ago; returns how many were queued.
pub async fn send_due(pool: &PgPool) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let rows: Vec<Row> = sqlx::query_as(
        r#"SELECT organization_id, external_subscription_id, transaction_id, ingested_at, code, "timestamp",
                  properties::text, precise_total_amount_cents
           FROM event_duplicates WHERE sent_at IS NULL ORDER BY ingested_at LIMIT $1 FOR UPDATE SKIP LOCKED"#,
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for (org, sub, transaction_id, ingested_at, code, timestamp, properties, amount) in &rows {
        let event = Event {
            organization_id: *org,
            transaction_id: transaction_id.clone(),
            external_subscription_id: sub.clone(),
            code: code.clone(),
            timestamp: *timestamp,
            properties: properties.clone(),
            precise_total_amount_cents: *amount,
            ingested_at: *ingested_at,
        };
        super::enqueue_object(&mut tx, WebhookType::EventError, *org, &object(&event)).await?;
        sqlx::query(
            "UPDATE event_duplicates SET sent_at = now()
             WHERE organization_id = $1 AND external_subscription_id = $2 AND transaction_id = $3 AND ingested_at = $4",
        )
        .bind(org)
        .bind(sub)
        .bind(transaction_id)
        .bind(ingested_at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM event_duplicates WHERE sent_at < now() - interval '7 days'").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.len())
}
