//! Queues the subscriptions whose new events feed a charge paid in advance, so the worker bills those events as
//! they arrive (Lago creates such fees when the event comes in). Both ingest paths call [`Marker::mark`] after the
//! events are stored and before they are acknowledged (embedded) or their offsets committed (sink): a crash in
//! between leaves the events unacknowledged, and their retry or replay queues them again. A subscription queued
//! twice is billed once, since billing skips the events it has already billed.

use schemas::event::Event;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct Marker {
    pool: PgPool,
}

impl Marker {
    pub fn new(pool: PgPool) -> Self {
        Marker { pool }
    }

    /// Queues each active subscription among `events` whose plan has a live charge paid in advance on the event's
    /// metric; returns how many rows were queued.
    pub async fn mark(&self, events: &[Event]) -> Result<u64, sqlx::Error> {
        // The earliest event timestamp of each (organization, subscription, code).
        let mut first: std::collections::BTreeMap<(Uuid, &str, &str), chrono::DateTime<chrono::Utc>> =
            std::collections::BTreeMap::new();
        for e in events {
            let key = (e.organization_id, e.external_subscription_id.as_str(), e.code.as_str());
            let at = first.entry(key).or_insert(e.timestamp);
            *at = (*at).min(e.timestamp);
        }
        if first.is_empty() {
            return Ok(0);
        }
        let orgs: Vec<Uuid> = first.keys().map(|k| k.0).collect();
        let subs: Vec<&str> = first.keys().map(|k| k.1).collect();
        let codes: Vec<&str> = first.keys().map(|k| k.2).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> = first.values().copied().collect();
        let done = sqlx::query(
            "INSERT INTO in_advance_queue (subscription_id, first_event_at)
             SELECT s.id, min(k.ts)
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS k(org, sub, code, ts)
             JOIN subscriptions s ON s.organization_id = k.org AND s.external_id = k.sub AND s.status = 'active'
             JOIN charges c ON c.plan_id = s.plan_id AND c.pay_in_advance AND c.deleted_at IS NULL
             JOIN billable_metrics m ON m.id = c.billable_metric_id AND m.code = k.code AND m.deleted_at IS NULL
             GROUP BY s.id",
        )
        .bind(&orgs)
        .bind(&subs)
        .bind(&codes)
        .bind(&times)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
