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
pub(crate) const BATCH: i64 = 500;

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

/// Queues the `event.error` webhooks of recorded duplicates not sent yet; returns how many were queued.
///
/// Set-based: one statement takes and marks a batch, one queues all its webhooks. A pass of two statements per
/// sending (and a sort of every unsent row to take the oldest) fell behind a steady stream of duplicates in a load
/// run: 500 sendings per pass, while thousands a second came in.
pub async fn send_due(pool: &PgPool) -> Result<usize> {
    let mut tx = pool.begin().await?;
    // No ORDER BY: the order of these webhooks carries no meaning, and a sort of the whole backlog grew with it.
    let rows: Vec<Row> = sqlx::query_as(
        r#"WITH taken AS (
               SELECT organization_id, external_subscription_id, transaction_id, ingested_at
               FROM event_duplicates WHERE sent_at IS NULL LIMIT $1 FOR UPDATE SKIP LOCKED)
           UPDATE event_duplicates d SET sent_at = now()
           FROM taken t
           WHERE d.organization_id = t.organization_id AND d.external_subscription_id = t.external_subscription_id
             AND d.transaction_id = t.transaction_id AND d.ingested_at = t.ingested_at
           RETURNING d.organization_id, d.external_subscription_id, d.transaction_id, d.ingested_at, d.code,
                     d."timestamp", d.properties::text, d.precise_total_amount_cents"#,
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut orgs = Vec::with_capacity(rows.len());
    let mut bodies = Vec::with_capacity(rows.len());
    for (org, sub, transaction_id, ingested_at, code, timestamp, properties, amount) in rows {
        let event = Event {
            organization_id: org,
            transaction_id,
            external_subscription_id: sub,
            code,
            timestamp,
            properties,
            precise_total_amount_cents: amount,
            ingested_at,
        };
        orgs.push(org);
        bodies.push(super::envelope(WebhookType::EventError, org, &object(&event).to_string()));
    }
    if !orgs.is_empty() {
        super::enqueue_bodies(&mut tx, WebhookType::EventError, &orgs, &bodies).await?;
    }
    tx.commit().await?;
    Ok(orgs.len())
}

/// Forgets the sendings reported more than a week ago (by the database's clock, which marked them); returns how
/// many. Run with the periodic clean-up, not every pass: without an index on `sent_at` it reads the whole table
/// (24 ms a pass in a load run with retries).
pub async fn forget_reported(pool: &PgPool) -> Result<u64> {
    let n = sqlx::query("DELETE FROM event_duplicates WHERE sent_at < now() - interval '7 days'")
        .execute(pool)
        .await?
        .rows_affected();
    Ok(n)
}
