//! Queues the subscriptions whose new events feed a charge paid in advance, so the worker bills those events as
//! they arrive (Lago creates such fees when the event comes in). The embedded event store does it in the statement
//! that stores the events; the sink calls [`Marker::mark`] after writing ClickHouse and before committing its
//! offsets: a crash in between leaves the offsets uncommitted, and the replay queues the events again. A subscription queued
//! twice is billed once, since billing skips the events it has already billed.

use schemas::event::Event;
use sqlx::PgPool;

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
        let keys = aggregate::postgres::in_advance_keys(events);
        if keys.orgs.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(sqlx::AssertSqlSafe(aggregate::postgres::queue_in_advance_sql(1)))
            .bind(&keys.orgs)
            .bind(&keys.subs)
            .bind(&keys.codes)
            .bind(&keys.first)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
