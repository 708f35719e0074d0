//! The embedded event store: the Postgres `events` table.
//!
//! A write is one `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING` in its own transaction: a single
//! statement for any number of rows, atomic, and idempotent on the event identity.

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use schemas::event::Event;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::store::{EventQuery, EventStore, ScanBatches, ScanColumn, ScanFilter, StoreError, Written};
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;
use sqlx::Row as _;
use std::sync::Arc;

#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
}

impl PgEventStore {
    pub fn new(pool: PgPool) -> Self {
        PgEventStore { pool }
    }
}

/// The (organization, subscription, code) keys of `events`, each with its earliest event timestamp, as four
/// parallel arrays: what queues subscriptions for the billing of their charges paid in advance.
pub struct InAdvanceKeys<'a> {
    pub orgs: Vec<Uuid>,
    pub subs: Vec<&'a str>,
    pub codes: Vec<&'a str>,
    pub first: Vec<DateTime<Utc>>,
}

pub fn in_advance_keys(events: &[Event]) -> InAdvanceKeys<'_> {
    let mut first: std::collections::BTreeMap<(Uuid, &str, &str), DateTime<Utc>> = std::collections::BTreeMap::new();
    for e in events {
        let at = first
            .entry((e.organization_id, e.external_subscription_id.as_str(), e.code.as_str()))
            .or_insert(e.timestamp);
        *at = (*at).min(e.timestamp);
    }
    InAdvanceKeys {
        orgs: first.keys().map(|k| k.0).collect(),
        subs: first.keys().map(|k| k.1).collect(),
        codes: first.keys().map(|k| k.2).collect(),
        first: first.values().copied().collect(),
    }
}

/// The statement queueing (billing's `in_advance_queue`) each active subscription among the keys bound from `$p` on
/// ([`InAdvanceKeys`] in order) whose plan has a live charge paid in advance on the key's metric.
pub fn queue_in_advance_sql(p: usize) -> String {
    format!(
        "INSERT INTO in_advance_queue (subscription_id, first_event_at)
         SELECT s.id, min(k.ts)
         FROM unnest(${}::uuid[], ${}::text[], ${}::text[], ${}::timestamptz[]) AS k(org, sub, code, ts)
         JOIN subscriptions s ON s.organization_id = k.org AND s.external_id = k.sub AND s.status = 'active'
         JOIN charges c ON c.plan_id = s.plan_id AND c.pay_in_advance AND c.deleted_at IS NULL
         JOIN billable_metrics m ON m.id = c.billable_metric_id AND m.code = k.code AND m.deleted_at IS NULL
         GROUP BY s.id",
        p,
        p + 1,
        p + 2,
        p + 3
    )
}

fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Failed(other.to_string()),
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    organization_id: Uuid,
    transaction_id: String,
    external_subscription_id: String,
    code: String,
    timestamp: DateTime<Utc>,
    properties: String,
    precise_total_amount_cents: Option<Decimal>,
    ingested_at: DateTime<Utc>,
}

impl From<Row> for Event {
    fn from(r: Row) -> Self {
        Event {
            organization_id: r.organization_id,
            external_subscription_id: r.external_subscription_id,
            transaction_id: r.transaction_id,
            code: r.code,
            timestamp: r.timestamp,
            properties: r.properties,
            precise_total_amount_cents: r.precise_total_amount_cents,
            ingested_at: r.ingested_at,
        }
    }
}

const COLUMNS: &str = r#"organization_id, transaction_id, external_subscription_id, code, "timestamp",
    properties::text AS properties, precise_total_amount_cents, ingested_at"#;

impl PgEventStore {
    async fn insert(&self, events: &[Event]) -> Result<Written, sqlx::Error> {
        let n = events.len();
        let mut orgs = Vec::with_capacity(n);
        let mut txs = Vec::with_capacity(n);
        let mut subs = Vec::with_capacity(n);
        let mut codes = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut props = Vec::with_capacity(n);
        let mut amounts = Vec::with_capacity(n);
        let mut ingested = Vec::with_capacity(n);
        for e in events {
            orgs.push(e.organization_id);
            txs.push(e.transaction_id.as_str());
            subs.push(e.external_subscription_id.as_str());
            codes.push(e.code.as_str());
            times.push(e.timestamp);
            props.push(e.properties.as_str());
            amounts.push(e.precise_total_amount_cents);
            ingested.push(e.ingested_at);
        }
        // The events, and the subscriptions whose charges paid in advance they feed queued for billing, in one
        // statement: one round trip per group commit, and the queue rows commit with the events they announce.
        let keys = in_advance_keys(events);
        let text = format!(
            r#"WITH new AS (
                   INSERT INTO events (organization_id, transaction_id, external_subscription_id, code, "timestamp",
                                       properties, precise_total_amount_cents, ingested_at)
                   SELECT o, t, s, c, ts, p::jsonb, a, i
                   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                               $7::numeric[], $8::timestamptz[]) AS u(o, t, s, c, ts, p, a, i)
                   ON CONFLICT DO NOTHING
                   RETURNING 1),
               queued AS ({} RETURNING 1)
               SELECT count(*) FROM new"#,
            queue_in_advance_sql(9)
        );
        let inserted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(text))
            .bind(&orgs)
            .bind(&txs)
            .bind(&subs)
            .bind(&codes)
            .bind(&times)
            .bind(&props)
            .bind(&amounts)
            .bind(&ingested)
            .bind(&keys.orgs)
            .bind(&keys.subs)
            .bind(&keys.codes)
            .bind(&keys.first)
            .fetch_one(&self.pool)
            .await?;
        let new = u64::try_from(inserted).unwrap_or(0);
        if new == n as u64 {
            return Ok(Written { new, duplicates: Vec::new() });
        }
        Ok(Written { new, duplicates: self.duplicates(events).await? })
    }

    /// After a write that skipped some events: the later occurrences of an identity within `events`, and the first
    /// ones whose stored copy came with another sending (another receipt time).
    async fn duplicates(&self, events: &[Event]) -> Result<Vec<usize>, sqlx::Error> {
        let (firsts, mut duplicates) = crate::store::first_occurrences(events);
        let orgs: Vec<Uuid> = firsts.iter().map(|&i| events[i].organization_id).collect();
        let txs: Vec<&str> = firsts.iter().map(|&i| events[i].transaction_id.as_str()).collect();
        let subs: Vec<&str> = firsts.iter().map(|&i| events[i].external_subscription_id.as_str()).collect();
        let ingested: Vec<DateTime<Utc>> = firsts.iter().map(|&i| events[i].ingested_at).collect();
        // Each identity is looked up by the primary key (organization, transaction): `|| ''` keeps the planner off
        // the scan index (organization, subscription, ...), which it took while the table had no statistics yet and
        // which reads every event of the subscription per identity. Planned per call, not prepared once: a plan
        // cached while `events` was small (a hash join over a sequential scan) stayed in use as the table grew.
        // Either made this 50-65 ms a call in a load run with retries, against about 1 ms.
        let older: Vec<i64> = sqlx::query_scalar(
            "SELECT u.n FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY
                 AS u(o, t, s, i, n)
             JOIN events e ON e.organization_id = u.o AND e.transaction_id = u.t
                          AND e.external_subscription_id || '' = u.s
             WHERE e.ingested_at <> u.i",
        )
        .bind(&orgs)
        .bind(&txs)
        .bind(&subs)
        .bind(&ingested)
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        duplicates.extend(older.into_iter().filter_map(|n| firsts.get(usize::try_from(n - 1).ok()?).copied()));
        duplicates.sort_unstable();
        Ok(duplicates)
    }

    async fn scan_rows(&self, f: &ScanFilter) -> Result<Vec<Event>, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            r#"SELECT {COLUMNS} FROM events
               WHERE organization_id = $1
                 AND (cardinality($2::text[]) = 0 OR external_subscription_id = ANY($2))
                 AND (cardinality($3::text[]) = 0 OR code = ANY($3))
                 AND "timestamp" >= $4 AND "timestamp" < $5"#
        )))
        .bind(f.organization_id)
        .bind(&f.external_subscription_ids)
        .bind(&f.codes)
        .bind(f.from)
        .bind(f.to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Event::from).collect())
    }

    /// The scan as batches: the same rows, each column its own expression (`properties->>key` for a property), read
    /// as a stream. The identity is unique in `events`, so there is nothing to dedup.
    async fn scan_columns(&self, f: &ScanFilter, columns: &[ScanColumn]) -> Result<Vec<RecordBatch>, StoreError> {
        let mut select = Vec::with_capacity(columns.len());
        let mut keys: Vec<&str> = Vec::new();
        for c in columns {
            select.push(match c {
                ScanColumn::OrganizationId => "organization_id::text".to_owned(),
                ScanColumn::ExternalSubscriptionId => "external_subscription_id".to_owned(),
                ScanColumn::Code => "code".to_owned(),
                ScanColumn::TransactionId => "transaction_id".to_owned(),
                // Exact: `extract` gives a numeric of the epoch with its microseconds.
                ScanColumn::Timestamp => r#"(extract(epoch from "timestamp") * 1000000)::int8"#.to_owned(),
                ScanColumn::IngestedAt => "(extract(epoch from ingested_at) * 1000000)::int8".to_owned(),
                ScanColumn::Property(key) => {
                    keys.push(key);
                    format!("properties->>${}", 5 + keys.len())
                }
            });
        }
        if select.is_empty() {
            select.push("1".to_owned());
        }
        let sql = format!(
            r#"SELECT {} FROM events
               WHERE organization_id = $1
                 AND (cardinality($2::text[]) = 0 OR external_subscription_id = ANY($2))
                 AND (cardinality($3::text[]) = 0 OR code = ANY($3))
                 AND "timestamp" >= $4 AND "timestamp" < $5"#,
            select.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.organization_id)
            .bind(&f.external_subscription_ids)
            .bind(&f.codes)
            .bind(f.from)
            .bind(f.to);
        for k in keys {
            q = q.bind(k);
        }
        let mut out = ScanBatches::new(columns);
        let mut rows = q.fetch(&self.pool);
        while let Some(row) = rows.try_next().await.map_err(db_error)? {
            for (i, c) in columns.iter().enumerate() {
                match c {
                    ScanColumn::Timestamp | ScanColumn::IngestedAt => {
                        out.int(i, row.try_get::<i64, _>(i).map_err(db_error)?)
                    }
                    _ => out.text(i, row.try_get::<Option<&str>, _>(i).map_err(db_error)?),
                }
            }
            out.end_row()?;
        }
        out.finish()
    }

    async fn find_row(&self, org: Uuid, transaction_id: &str) -> Result<Option<Event>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM events WHERE organization_id = $1 AND transaction_id = $2
             ORDER BY ingested_at, external_subscription_id LIMIT 1"
        )))
        .bind(org)
        .bind(transaction_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Event::from))
    }

    async fn list_rows(&self, q: &EventQuery) -> Result<(Vec<Event>, i64), sqlx::Error> {
        fn filters(b: &mut QueryBuilder<sqlx::Postgres>, q: &EventQuery) {
            b.push(" WHERE organization_id = ").push_bind(q.organization_id);
            if let Some(s) = &q.external_subscription_id {
                b.push(" AND external_subscription_id = ").push_bind(s);
            }
            if let Some(c) = &q.code {
                b.push(" AND code = ").push_bind(c);
            }
            if let Some(t) = q.timestamp_from {
                b.push(r#" AND "timestamp" >= "#).push_bind(t);
            }
            if let Some(t) = q.timestamp_to {
                b.push(r#" AND "timestamp" <= "#).push_bind(t);
            }
        }
        let mut count = QueryBuilder::new("SELECT count(*) FROM events");
        filters(&mut count, q);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut page = QueryBuilder::new(format!("SELECT {COLUMNS} FROM events"));
        filters(&mut page, q);
        page.push(r#" ORDER BY "timestamp" DESC, transaction_id ASC LIMIT "#).push_bind(q.limit);
        page.push(" OFFSET ").push_bind(q.offset);
        let rows: Vec<Row> = page.build_query_as().fetch_all(&self.pool).await?;
        Ok((rows.into_iter().map(Event::from).collect(), total))
    }
}

impl EventStore for PgEventStore {
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Written, StoreError>> {
        async move { self.insert(events).await.map_err(db_error) }.boxed()
    }

    fn scan<'a>(&'a self, filter: &'a ScanFilter) -> BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        async move { self.scan_rows(filter).await.map_err(db_error) }.boxed()
    }

    fn scan_batches<'a>(
        &'a self,
        filter: &'a ScanFilter,
        columns: &'a [ScanColumn],
    ) -> BoxFuture<'a, Result<Vec<RecordBatch>, StoreError>> {
        self.scan_columns(filter, columns).boxed()
    }

    fn handle(&self) -> Arc<dyn EventStore> {
        Arc::new(self.clone())
    }

    fn find<'a>(
        &'a self,
        organization_id: Uuid,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Event>, StoreError>> {
        async move { self.find_row(organization_id, transaction_id).await.map_err(db_error) }.boxed()
    }

    fn list<'a>(&'a self, query: &'a EventQuery) -> BoxFuture<'a, Result<(Vec<Event>, i64), StoreError>> {
        async move { self.list_rows(query).await.map_err(db_error) }.boxed()
    }
}
