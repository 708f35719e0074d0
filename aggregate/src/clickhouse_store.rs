//! Scale mode's event store: two ClickHouse tables (18.16 and later), written by the sink.
//!
//! - `events_raw`: every accepted event as sent, `ReplacingMergeTree` on the identity with a version that makes the
//!   first accepted copy survive merges.
//! - `events_enriched`: the same events keyed for aggregation, `ORDER BY (organization_id, external_subscription_id,
//!   code, timestamp_us, transaction_id)`, with `value` (the metric's aggregation property as `Decimal(38, 9)`) and
//!   `group_key` (the event's filter and group properties, sorted by key) extracted by the sink.
//!
//! Timestamps are Unix microseconds in `Int64` columns: 18.16 has no `DateTime64`, and events carry microseconds.
//!
//! Exactly-once does not rest on merges (they run whenever ClickHouse likes). A write skips identities that
//! `events_enriched` already holds (within a day of the event's timestamp, so the check reads a bounded slice of the
//! sort key whatever the history) and repeats within the batch; and every read keeps one row per identity, the first
//! ingested (`ORDER BY ingested_us LIMIT 1 BY identity`), so a replayed batch that raced past the check, or a crash
//! between the two inserts, never counts an event twice. `LIMIT 1 BY` rather than `argMin`: ClickHouse's aggregate
//! functions skip NULL arguments, so `argMin(nullable_column, ingested_us)` could return a later copy's value; and
//! rather than `FINAL`: it only collapses rows with equal sort keys, which in `events_enriched` include code and time.
//!
//! `events_enriched` is written after `events_raw`, so it is the table the "already stored" check reads: an identity
//! found there has both rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use clickhouse::{Client, Row};
use futures::FutureExt;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use schemas::event::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::recent_identities::{Lookup, RecentIdentities};
use crate::store::{EventQuery, EventStore, ScanBatches, ScanColumn, ScanFilter, StoreError, Written};
use datafusion::arrow::array::RecordBatch;
use std::sync::Arc;

/// What the sink extracts from an event for aggregation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrichment {
    /// The metric's aggregation property as a number, when it is one (rounded to 9 decimals).
    pub value: Option<Decimal>,
    /// `key=value` pairs of the event's filter and group properties, sorted by key, joined by `\u{1f}`.
    pub group_key: String,
}

const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS events_raw (
        organization_id String,
        external_subscription_id String,
        transaction_id String,
        code String,
        timestamp_us Int64,
        properties String,
        precise_total_amount_cents Nullable(String),
        ingested_us Int64,
        version UInt64
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY (organization_id, external_subscription_id, transaction_id)",
    "CREATE TABLE IF NOT EXISTS events_enriched (
        organization_id String,
        external_subscription_id String,
        code String,
        timestamp_us Int64,
        transaction_id String,
        properties String,
        precise_total_amount_cents Nullable(String),
        ingested_us Int64,
        value Nullable(Decimal(38, 9)),
        group_key String
    ) ENGINE = MergeTree
    ORDER BY (organization_id, external_subscription_id, code, timestamp_us, transaction_id)",
];

/// Identities checked against the store per query (keeps the query text far below `max_query_size`).
const CHECK_CHUNK: usize = 5_000;

/// How far from an event's timestamp the sink looks for a stored copy of its identity: a day. A retry carries the
/// same event, so the same timestamp, or one the server gave it a little later when the client sent none. A copy
/// further apart is stored, and reads still count it once in any period holding both.
pub const DEDUP_REACH_MICROS: i64 = 86_400_000_000;

#[derive(Clone)]
pub struct ClickHouseStore {
    client: Client,
}

#[derive(Debug, Row, Serialize)]
struct RawRow<'a> {
    organization_id: String,
    external_subscription_id: &'a str,
    transaction_id: &'a str,
    code: &'a str,
    timestamp_us: i64,
    properties: &'a str,
    precise_total_amount_cents: Option<String>,
    ingested_us: i64,
    version: u64,
}

#[derive(Debug, Row, Serialize)]
struct EnrichedRow<'a> {
    organization_id: String,
    external_subscription_id: &'a str,
    code: &'a str,
    timestamp_us: i64,
    transaction_id: &'a str,
    properties: &'a str,
    precise_total_amount_cents: Option<String>,
    ingested_us: i64,
    value: Option<i128>,
    group_key: &'a str,
}

#[derive(Debug, Row, Deserialize)]
struct EventRow {
    organization_id: String,
    external_subscription_id: String,
    transaction_id: String,
    code: String,
    timestamp_us: i64,
    properties: String,
    precise_total_amount_cents: Option<String>,
    ingested_us: i64,
}

/// A row of a batch scan, borrowed from the response buffer: columns the scan does not need come as `''` / `0`,
/// properties as one array.
#[derive(Debug, Row, Deserialize)]
struct ScanRow<'a> {
    organization_id: &'a str,
    external_subscription_id: &'a str,
    code: &'a str,
    transaction_id: &'a str,
    timestamp_us: i64,
    ingested_us: i64,
    #[serde(borrow)]
    props: Vec<Option<&'a str>>,
    /// The whole properties when they nest an object or an array ([`NESTED_PROPERTIES`]), else empty.
    nested: &'a str,
}

/// A property's text as Postgres' `->>` gives it, from the JSON string (18.16 has no `JSONExtract*`): a string's
/// unescaped value, a number's or boolean's literal as sent, null when missing or JSON null. `visitParam*` reads the
/// first `"key":` at any depth, which is the top-level one only when nothing nests: properties that nest an object
/// or an array come whole instead ([`NESTED_PROPERTIES`]) and are read in Rust ([`top_level_text`]).
const PROPERTY_TEXT: &str = "if(substring(visitParamExtractRaw(properties, ?), 1, 1) = '\"', \
     toNullable(visitParamExtractString(properties, ?)), \
     nullIf(nullIf(visitParamExtractRaw(properties, ?), ''), 'null'))";

/// The properties, when a `{` after the first character or a `[` shows they may nest (a brace inside a string
/// value sends them too, harmlessly); else `''`.
const NESTED_PROPERTIES: &str =
    "if(position(substring(properties, 2), '{') > 0 OR position(properties, '[') > 0, properties, '')";

/// A top-level property's text as Postgres' `->>` gives it (see [`PROPERTY_TEXT`]); a repeated key's last value
/// counts, as in `jsonb`.
fn top_level_text(properties: &str, key: &str) -> Option<String> {
    let map: HashMap<String, &serde_json::value::RawValue> = serde_json::from_str(properties).ok()?;
    let raw = map.get(key)?.get();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).ok(),
        _ if raw == "null" => None,
        _ => Some(raw.to_owned()),
    }
}

/// Transaction id, timestamp and receipt time of a stored identity, as [`RecentIdentities::load`] takes them.
type StoredIdentity<'a> = (&'a str, i64, i64);

#[derive(Debug, Row, Deserialize)]
struct RecentRow {
    organization_id: String,
    external_subscription_id: String,
    transaction_id: String,
    /// Of the first ingested copy (aliases must differ from the columns: 18.16 resolves an alias inside aggregates).
    first_timestamp_us: i64,
    first_ingested_us: i64,
}

#[derive(Debug, Row, Deserialize)]
struct IdentityRow {
    organization_id: String,
    external_subscription_id: String,
    transaction_id: String,
    ingested_us: i64,
}

/// Sorts `indices` (into `events`) in `events_raw`'s order: organization, subscription, transaction id. The
/// organization id is stored as text, which sorts as its bytes do (fixed-width lowercase hex); ClickHouse compares
/// strings as bytes, as Rust does.
fn in_raw_order(events: &[Event], indices: &mut [usize]) {
    indices.sort_unstable_by(|&a, &b| {
        let (x, y) = (&events[a], &events[b]);
        (x.organization_id, &x.external_subscription_id, &x.transaction_id).cmp(&(
            y.organization_id,
            &y.external_subscription_id,
            &y.transaction_id,
        ))
    });
}

/// Sorts `indices` in `events_enriched`'s order: organization, subscription, code, timestamp, transaction id.
fn in_enriched_order(events: &[Event], indices: &mut [usize]) {
    indices.sort_unstable_by(|&a, &b| {
        let (x, y) = (&events[a], &events[b]);
        (x.organization_id, &x.external_subscription_id, &x.code, micros(x.timestamp), &x.transaction_id).cmp(&(
            y.organization_id,
            &y.external_subscription_id,
            &y.code,
            micros(y.timestamp),
            &y.transaction_id,
        ))
    });
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::Failed(format!("timestamp out of range: {us}")))
}

/// `Decimal(38, 9)` travels as an `i128` scaled by 10^9.
fn scaled(value: Decimal) -> Option<i128> {
    let v = value.round_dp(9);
    let mantissa = v.mantissa();
    10i128.checked_pow(9 - v.scale()).and_then(|f| mantissa.checked_mul(f))
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        let organization_id = Uuid::parse_str(&r.organization_id)
            .map_err(|e| StoreError::Failed(format!("bad organization id {}: {e}", r.organization_id)))?;
        let precise_total_amount_cents = match r.precise_total_amount_cents {
            None => None,
            Some(s) => Some(s.parse::<Decimal>().map_err(|e| StoreError::Failed(format!("bad amount {s}: {e}")))?),
        };
        Ok(Event {
            organization_id,
            external_subscription_id: r.external_subscription_id,
            transaction_id: r.transaction_id,
            code: r.code,
            timestamp: from_micros(r.timestamp_us)?,
            properties: r.properties,
            precise_total_amount_cents,
            ingested_at: from_micros(r.ingested_us)?,
        })
    }
}

/// Connection failures and server restarts are `Unavailable` (retry later); anything else is `Failed`.
fn ch_error(e: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => StoreError::Unavailable(e.to_string()),
        other => {
            let text = other.to_string();
            // A server that is shutting down or overloaded answers with these codes; the write can be retried.
            if text.contains("Code: 210") || text.contains("Code: 202") || text.contains("Code: 241") {
                StoreError::Unavailable(text)
            } else {
                StoreError::Failed(text)
            }
        }
    }
}

/// The columns of an event, as the reads select them.
const EVENT_COLUMNS: &str = "organization_id, external_subscription_id, transaction_id, code, timestamp_us, properties, \
     precise_total_amount_cents, ingested_us";

impl ClickHouseStore {
    /// A store on `database` of the server at `url` (e.g. `http://127.0.0.1:8123`). Validation is off and
    /// compression is none: with validation on, the crate speaks formats 18.16 does not know, and its LZ4 reads are
    /// unreliable there (../shared/INFRA.md); on loopback compression buys nothing.
    pub fn new(url: &str, database: &str) -> Self {
        let client = Client::default()
            .with_url(url)
            .with_database(database)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None)
            .with_setting("max_query_size", "67108864");
        ClickHouseStore { client }
    }

    /// Creates the database (when missing) and the tables. Idempotent; run on every start.
    pub async fn migrate(url: &str, database: &str) -> Result<(), StoreError> {
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || database.is_empty() {
            return Err(StoreError::Failed(format!("bad ClickHouse database name `{database}` (letters, digits, _)")));
        }
        let admin =
            Client::default().with_url(url).with_validation(false).with_compression(clickhouse::Compression::None);
        admin.query(&format!("CREATE DATABASE IF NOT EXISTS {database}")).execute().await.map_err(ch_error)?;
        let store = ClickHouseStore::new(url, database);
        for sql in MIGRATIONS {
            store.client.query(sql).execute().await.map_err(ch_error)?;
        }
        Ok(())
    }

    /// True when the server answers.
    pub async fn ping(&self) -> bool {
        self.client.query("SELECT 1").fetch_one::<u8>().await.is_ok()
    }

    /// Stores the events that are new (first occurrence in `events`, identity not yet in `events_enriched`) with
    /// their enrichments (same order and length as `events`), `events_raw` first. A stored identity with the same
    /// receipt time is the replay of this very record (the sink read it again after a crash), not a duplicate.
    pub async fn write_enriched(&self, events: &[Event], enrichments: &[Enrichment]) -> Result<Written, StoreError> {
        self.write_enriched_knowing(events, enrichments, None).await
    }

    /// [`ClickHouseStore::write_enriched`], asking the store only about identities `recent` does not know (loading
    /// the subscriptions it has not seen first), and adding what was stored to it.
    pub async fn write_enriched_knowing(
        &self,
        events: &[Event],
        enrichments: &[Enrichment],
        mut recent: Option<&mut RecentIdentities>,
    ) -> Result<Written, StoreError> {
        if events.len() != enrichments.len() {
            return Err(StoreError::Failed("one enrichment per event expected".into()));
        }
        let (firsts, mut duplicates) = crate::store::first_occurrences(events);
        let mut new = Vec::with_capacity(firsts.len());
        let mut unknown = firsts;
        if let Some(recent) = recent.as_deref_mut() {
            self.load_recent(events, &unknown, recent).await?;
            let mut bounds: HashMap<(Uuid, &str), Option<i64>> = HashMap::new();
            let mut ask = Vec::new();
            for i in unknown {
                let e = &events[i];
                let from = *bounds
                    .entry((e.organization_id, e.external_subscription_id.as_str()))
                    .or_insert_with(|| recent.complete_from(e.organization_id, &e.external_subscription_id));
                let found = recent.lookup(
                    from,
                    e.organization_id,
                    &e.external_subscription_id,
                    &e.transaction_id,
                    micros(e.timestamp),
                );
                match found {
                    Lookup::New => new.push(i),
                    Lookup::Stored { ingested_us } if ingested_us != micros(e.ingested_at) => duplicates.push(i),
                    Lookup::Stored { .. } => {}
                    Lookup::Unknown => ask.push(i),
                }
            }
            unknown = ask;
        }
        let stored = self.stored_identities(events, &unknown).await?;
        for i in unknown {
            let e = &events[i];
            match stored.get(&(e.organization_id, e.external_subscription_id.clone(), e.transaction_id.clone())) {
                None => new.push(i),
                Some(&ingested_us) if ingested_us != micros(e.ingested_at) => duplicates.push(i),
                Some(_) => {}
            }
        }
        duplicates.sort_unstable();
        if new.is_empty() {
            return Ok(Written { new: 0, duplicates });
        }
        // Rows go in each table's sort order: ClickHouse checks whether an inserted block is already sorted and
        // then skips sorting it (comparisons of the string key columns were the largest cost of its inserts).
        in_raw_order(events, &mut new);
        let mut raw = self.client.insert::<RawRow<'_>>("events_raw").await.map_err(ch_error)?;
        for &i in &new {
            let e = &events[i];
            let ingested_us = micros(e.ingested_at);
            raw.write(&RawRow {
                organization_id: e.organization_id.to_string(),
                external_subscription_id: &e.external_subscription_id,
                transaction_id: &e.transaction_id,
                code: &e.code,
                timestamp_us: micros(e.timestamp),
                properties: &e.properties,
                precise_total_amount_cents: e.precise_total_amount_cents.map(|d| d.to_string()),
                ingested_us,
                // Highest version survives a merge: the earliest ingested copy.
                version: u64::MAX - ingested_us.max(0) as u64,
            })
            .await
            .map_err(ch_error)?;
        }
        raw.end().await.map_err(ch_error)?;
        in_enriched_order(events, &mut new);
        let mut enriched = self.client.insert::<EnrichedRow<'_>>("events_enriched").await.map_err(ch_error)?;
        for &i in &new {
            let (e, x) = (&events[i], &enrichments[i]);
            enriched
                .write(&EnrichedRow {
                    organization_id: e.organization_id.to_string(),
                    external_subscription_id: &e.external_subscription_id,
                    code: &e.code,
                    timestamp_us: micros(e.timestamp),
                    transaction_id: &e.transaction_id,
                    properties: &e.properties,
                    precise_total_amount_cents: e.precise_total_amount_cents.map(|d| d.to_string()),
                    ingested_us: micros(e.ingested_at),
                    value: x.value.and_then(scaled),
                    group_key: &x.group_key,
                })
                .await
                .map_err(ch_error)?;
        }
        enriched.end().await.map_err(ch_error)?;
        if let Some(recent) = recent {
            for &i in &new {
                let e = &events[i];
                recent.add(
                    e.organization_id,
                    &e.external_subscription_id,
                    &e.transaction_id,
                    micros(e.timestamp),
                    micros(e.ingested_at),
                );
            }
        }
        Ok(Written { new: new.len() as u64, duplicates })
    }

    /// Loads into `recent` the stored identities of the subscriptions among `events[indices]` it has not loaded:
    /// those with a timestamp from [`RecentIdentities::window_start`] on (events of the last hour then need no store
    /// query; older ones, rarer, still ask the store). One query for all of them.
    async fn load_recent(
        &self,
        events: &[Event],
        indices: &[usize],
        recent: &mut RecentIdentities,
    ) -> Result<(), StoreError> {
        let mut missing: Vec<(Uuid, &str)> =
            indices.iter().map(|&i| (events[i].organization_id, events[i].external_subscription_id.as_str())).collect();
        missing.sort_unstable();
        missing.dedup();
        missing.retain(|&(org, sub)| recent.complete_from(org, sub).is_none());
        // Full, the memory takes no more subscriptions (the store is asked for them) until expiry makes room.
        if missing.is_empty() || !recent.has_room() {
            return Ok(());
        }
        let from = recent.window_start(Utc::now().timestamp_micros());
        for chunk in missing.chunks(CHECK_CHUNK) {
            let mut orgs: Vec<String> = chunk.iter().map(|(org, _)| org.to_string()).collect();
            orgs.dedup();
            let subs: Vec<&str> = chunk.iter().map(|&(_, sub)| sub).collect();
            let rows: Vec<RecentRow> = self
                .client
                .query(
                    "SELECT organization_id, external_subscription_id, transaction_id,
                            argMin(timestamp_us, ingested_us) AS first_timestamp_us,
                            min(ingested_us) AS first_ingested_us
                     FROM events_enriched
                     WHERE organization_id IN (SELECT arrayJoin(?))
                       AND external_subscription_id IN (SELECT arrayJoin(?))
                       AND timestamp_us >= ?
                     GROUP BY organization_id, external_subscription_id, transaction_id
                     LIMIT ?",
                )
                .bind(orgs)
                .bind(subs)
                .bind(from)
                .bind(recent.room() as u64 + 1)
                .fetch_all()
                .await
                .map_err(ch_error)?;
            if rows.len() > recent.room() {
                // These subscriptions do not fit: the store is asked for them.
                return Ok(());
            }
            let mut found: HashMap<(Uuid, &str), Vec<StoredIdentity<'_>>> =
                chunk.iter().map(|&key| (key, Vec::new())).collect();
            for r in &rows {
                let Ok(org) = Uuid::parse_str(&r.organization_id) else { continue };
                // Other pairs of the organizations and subscriptions asked for are not loaded.
                if let Some(list) = found.get_mut(&(org, r.external_subscription_id.as_str())) {
                    list.push((r.transaction_id.as_str(), r.first_timestamp_us, r.first_ingested_us));
                }
            }
            for ((org, sub), stored) in found {
                recent.load(org, sub, from, stored);
            }
        }
        Ok(())
    }

    /// The identities among `events[indices]` that `events_enriched` already holds, with the receipt time (in
    /// microseconds) of the copy reads keep.
    async fn stored_identities(
        &self,
        events: &[Event],
        indices: &[usize],
    ) -> Result<HashMap<(Uuid, String, String), i64>, StoreError> {
        let mut found = HashMap::new();
        for chunk in indices.chunks(CHECK_CHUNK) {
            let mut orgs: Vec<String> = chunk.iter().map(|&i| events[i].organization_id.to_string()).collect();
            let mut subs: Vec<&str> = chunk.iter().map(|&i| events[i].external_subscription_id.as_str()).collect();
            let mut txs: Vec<&str> = chunk.iter().map(|&i| events[i].transaction_id.as_str()).collect();
            for v in [&mut subs, &mut txs] {
                v.sort_unstable();
                v.dedup();
            }
            orgs.sort_unstable();
            orgs.dedup();
            let mut codes: Vec<&str> = chunk.iter().map(|&i| events[i].code.as_str()).collect();
            codes.sort_unstable();
            codes.dedup();
            let times = chunk.iter().map(|&i| micros(events[i].timestamp));
            let (from, to) = (times.clone().min().unwrap_or(0), times.max().unwrap_or(0));
            // Organization, subscription, code and time follow the sort key, so the check reads only the batch's
            // subscriptions around its timestamps, however long their history; exact identities are matched below.
            let rows: Vec<IdentityRow> = self
                .client
                .query(
                    "SELECT organization_id, external_subscription_id, transaction_id, min(ingested_us) AS ingested_us
                     FROM events_enriched
                     WHERE organization_id IN (SELECT arrayJoin(?))
                       AND external_subscription_id IN (SELECT arrayJoin(?))
                       AND code IN (SELECT arrayJoin(?))
                       AND timestamp_us >= ? AND timestamp_us <= ?
                       AND transaction_id IN (SELECT arrayJoin(?))
                     GROUP BY organization_id, external_subscription_id, transaction_id",
                )
                .bind(orgs)
                .bind(subs)
                .bind(codes)
                .bind(from.saturating_sub(DEDUP_REACH_MICROS))
                .bind(to.saturating_add(DEDUP_REACH_MICROS))
                .bind(txs)
                .fetch_all()
                .await
                .map_err(ch_error)?;
            for r in rows {
                if let Ok(org) = Uuid::parse_str(&r.organization_id) {
                    found.insert((org, r.external_subscription_id, r.transaction_id), r.ingested_us);
                }
            }
        }
        Ok(found)
    }

    async fn fetch_events(&self, query: clickhouse::query::Query) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = query.fetch_all().await.map_err(ch_error)?;
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn scan_rows(&self, f: &ScanFilter) -> Result<Vec<Event>, StoreError> {
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events_enriched
             WHERE organization_id = ? AND timestamp_us >= ? AND timestamp_us < ?"
        );
        if !f.external_subscription_ids.is_empty() {
            sql.push_str(" AND external_subscription_id IN (SELECT arrayJoin(?))");
        }
        if !f.codes.is_empty() {
            sql.push_str(" AND code IN (SELECT arrayJoin(?))");
        }
        sql.push_str(" ORDER BY ingested_us LIMIT 1 BY organization_id, external_subscription_id, transaction_id");
        let mut q = self.client.query(&sql).bind(f.organization_id.to_string()).bind(micros(f.from)).bind(micros(f.to));
        if !f.external_subscription_ids.is_empty() {
            q = q.bind(&f.external_subscription_ids);
        }
        if !f.codes.is_empty() {
            q = q.bind(&f.codes);
        }
        self.fetch_events(q).await
    }

    /// The scan as batches. Each identity once, the first ingested, decided in the query (`LIMIT 1 BY` after
    /// sorting on `ingested_us`), before merges; only the needed properties leave the server.
    async fn scan_columns(&self, f: &ScanFilter, columns: &[ScanColumn]) -> Result<Vec<RecordBatch>, StoreError> {
        let wants = |c: ScanColumn| columns.contains(&c);
        let keys: Vec<&str> = columns
            .iter()
            .filter_map(|c| match c {
                ScanColumn::Property(k) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        let props = if keys.is_empty() {
            "[CAST(NULL AS Nullable(String))]".to_owned()
        } else {
            format!("[{}]", vec![PROPERTY_TEXT; keys.len()].join(", "))
        };
        let pick = |wanted: bool, column: &str, empty: &str| if wanted { column.to_owned() } else { empty.to_owned() };
        // The inner query carries through its sort only the identity, the order and the wanted values.
        let mut sql = format!(
            "SELECT {org} AS o_, {sub} AS s_, {code} AS c_, {tx} AS x_, t_, {ing} AS i_, p_, n_
             FROM (SELECT external_subscription_id, transaction_id, ingested_us, {org_inner} AS o_,
                          {code_inner} AS c_, {ts} AS t_, {props} AS p_, {nested} AS n_
                   FROM events_enriched
                   WHERE organization_id = ? AND timestamp_us >= ? AND timestamp_us < ?",
            org = pick(wants(ScanColumn::OrganizationId), "o_", "''"),
            sub = pick(wants(ScanColumn::ExternalSubscriptionId), "external_subscription_id", "''"),
            code = pick(wants(ScanColumn::Code), "c_", "''"),
            tx = pick(wants(ScanColumn::TransactionId), "transaction_id", "''"),
            ing = pick(wants(ScanColumn::IngestedAt), "ingested_us", "toInt64(0)"),
            org_inner = pick(wants(ScanColumn::OrganizationId), "organization_id", "''"),
            code_inner = pick(wants(ScanColumn::Code), "code", "''"),
            ts = pick(wants(ScanColumn::Timestamp), "timestamp_us", "toInt64(0)"),
            nested = if keys.is_empty() { "''" } else { NESTED_PROPERTIES },
        );
        if !f.external_subscription_ids.is_empty() {
            sql.push_str(" AND external_subscription_id IN (SELECT arrayJoin(?))");
        }
        if !f.codes.is_empty() {
            sql.push_str(" AND code IN (SELECT arrayJoin(?))");
        }
        sql.push_str(" ORDER BY ingested_us LIMIT 1 BY external_subscription_id, transaction_id)");
        let mut q = self.client.query(&sql);
        for k in &keys {
            q = q.bind(*k).bind(*k).bind(*k);
        }
        q = q.bind(f.organization_id.to_string()).bind(micros(f.from)).bind(micros(f.to));
        if !f.external_subscription_ids.is_empty() {
            q = q.bind(&f.external_subscription_ids);
        }
        if !f.codes.is_empty() {
            q = q.bind(&f.codes);
        }
        // The dedup sorts every matching row: spill it to disk past 1 GB rather than fail at the memory limit.
        q = q.with_setting("max_bytes_before_external_sort", "1000000000");
        let mut cursor = q.fetch::<ScanRow<'_>>().map_err(ch_error)?;
        let mut out = ScanBatches::new(columns);
        while let Some(r) = cursor.next().await.map_err(ch_error)? {
            let mut p = 0;
            for (i, c) in columns.iter().enumerate() {
                match c {
                    ScanColumn::OrganizationId => out.text(i, Some(r.organization_id)),
                    ScanColumn::ExternalSubscriptionId => out.text(i, Some(r.external_subscription_id)),
                    ScanColumn::Code => out.text(i, Some(r.code)),
                    ScanColumn::TransactionId => out.text(i, Some(r.transaction_id)),
                    ScanColumn::Timestamp => out.int(i, r.timestamp_us),
                    ScanColumn::IngestedAt => out.int(i, r.ingested_us),
                    ScanColumn::Property(key) => {
                        if r.nested.is_empty() {
                            out.text(i, r.props.get(p).copied().flatten());
                        } else {
                            out.text(i, top_level_text(r.nested, key).as_deref());
                        }
                        p += 1;
                    }
                }
            }
            out.end_row()?;
        }
        out.finish()
    }

    async fn find_row(&self, org: Uuid, transaction_id: &str) -> Result<Option<Event>, StoreError> {
        let q = self
            .client
            .query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events_raw WHERE organization_id = ? AND transaction_id = ?
                 ORDER BY ingested_us, external_subscription_id LIMIT 1"
            ))
            .bind(org.to_string())
            .bind(transaction_id);
        Ok(self.fetch_events(q).await?.into_iter().next())
    }

    async fn list_rows(&self, q: &EventQuery) -> Result<(Vec<Event>, i64), StoreError> {
        let mut conditions = String::from("organization_id = ?");
        if q.external_subscription_id.is_some() {
            conditions.push_str(" AND external_subscription_id = ?");
        }
        if q.code.is_some() {
            conditions.push_str(" AND code = ?");
        }
        if q.timestamp_from.is_some() {
            conditions.push_str(" AND timestamp_us >= ?");
        }
        if q.timestamp_to.is_some() {
            conditions.push_str(" AND timestamp_us <= ?");
        }
        let deduped = format!(
            "(SELECT {EVENT_COLUMNS} FROM events_raw WHERE {conditions}
              ORDER BY ingested_us LIMIT 1 BY organization_id, external_subscription_id, transaction_id)"
        );
        let bind = |mut query: clickhouse::query::Query| {
            query = query.bind(q.organization_id.to_string());
            if let Some(s) = &q.external_subscription_id {
                query = query.bind(s);
            }
            if let Some(c) = &q.code {
                query = query.bind(c);
            }
            if let Some(t) = q.timestamp_from {
                query = query.bind(micros(t));
            }
            if let Some(t) = q.timestamp_to {
                query = query.bind(micros(t));
            }
            query
        };
        // The same count as the page's subquery (distinct identities among the matching rows), without reading and
        // sorting every column.
        let total: u64 = bind(self.client.query(&format!(
            "SELECT uniqExact(organization_id, external_subscription_id, transaction_id) FROM events_raw
             WHERE {conditions}"
        )))
        .fetch_one()
        .await
        .map_err(ch_error)?;
        let page = bind(self.client.query(&format!(
            "SELECT {EVENT_COLUMNS} FROM {deduped} ORDER BY timestamp_us DESC, transaction_id ASC LIMIT ?, ?"
        )))
        .bind(q.offset.max(0))
        .bind(q.limit.max(0));
        Ok((self.fetch_events(page).await?, total as i64))
    }
}

impl EventStore for ClickHouseStore {
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Written, StoreError>> {
        async move {
            let plain = vec![Enrichment::default(); events.len()];
            self.write_enriched(events, &plain).await
        }
        .boxed()
    }

    fn scan<'a>(&'a self, filter: &'a ScanFilter) -> BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        self.scan_rows(filter).boxed()
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
        self.find_row(organization_id, transaction_id).boxed()
    }

    fn list<'a>(&'a self, query: &'a EventQuery) -> BoxFuture<'a, Result<(Vec<Event>, i64), StoreError>> {
        self.list_rows(query).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows' order must be the order ClickHouse sorts the key columns in (the organization id as its text,
    /// strings as bytes), or it sorts the block itself: check against exactly that, on varied keys.
    #[test]
    fn rows_go_in_the_tables_key_order() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let ids = ["", "a", "a\u{0}", "ab", "b", "é", "Z", "a-1", "a-10", "a-2"];
        let events: Vec<Event> = (0..500)
            .map(|_| Event {
                organization_id: Uuid::from_u128(u128::from(next(4)) << (8 * next(16))),
                external_subscription_id: ids[next(10) as usize].into(),
                transaction_id: ids[next(10) as usize].into(),
                code: ids[next(10) as usize].into(),
                timestamp: DateTime::from_timestamp_micros(next(5) as i64 - 2).unwrap()
                    + chrono::Duration::nanoseconds(next(1000) as i64),
                properties: "{}".into(),
                precise_total_amount_cents: None,
                ingested_at: DateTime::from_timestamp_micros(0).unwrap(),
            })
            .collect();
        let mut indices: Vec<usize> = (0..events.len()).collect();
        in_raw_order(&events, &mut indices);
        let raw: Vec<_> = indices
            .iter()
            .map(|&i| {
                let e = &events[i];
                (
                    e.organization_id.to_string().into_bytes(),
                    e.external_subscription_id.as_bytes(),
                    e.transaction_id.as_bytes(),
                )
            })
            .collect();
        assert!(raw.is_sorted());
        in_enriched_order(&events, &mut indices);
        let enriched: Vec<_> = indices
            .iter()
            .map(|&i| {
                let e = &events[i];
                (
                    e.organization_id.to_string().into_bytes(),
                    e.external_subscription_id.as_bytes(),
                    e.code.as_bytes(),
                    micros(e.timestamp),
                    e.transaction_id.as_bytes(),
                )
            })
            .collect();
        assert!(enriched.is_sorted());
    }

    #[test]
    fn decimals_travel_scaled_by_a_billion() {
        assert_eq!(scaled("1.5".parse().unwrap()), Some(1_500_000_000));
        assert_eq!(scaled("-0.000000001".parse().unwrap()), Some(-1));
        assert_eq!(scaled("0.0000000004".parse().unwrap()), Some(0));
        assert_eq!(scaled("123456789012345678.123456789".parse().unwrap()), Some(123_456_789_012_345_678_123_456_789));
    }

    #[test]
    fn nested_properties_are_read_at_the_top_level_only() {
        let p =
            r#"{"meta": {"gb": "999"}, "gb": "1.50", "n": 2.50, "ok": true, "none": null, "esc": "a\"b", "l": [1]}"#;
        assert_eq!(top_level_text(p, "gb").as_deref(), Some("1.50"));
        assert_eq!(top_level_text(p, "n").as_deref(), Some("2.50"), "a number's literal as sent");
        assert_eq!(top_level_text(p, "ok").as_deref(), Some("true"));
        assert_eq!(top_level_text(p, "none"), None);
        assert_eq!(top_level_text(p, "esc").as_deref(), Some("a\"b"));
        assert_eq!(top_level_text(p, "l").as_deref(), Some("[1]"));
        assert_eq!(top_level_text(r#"{"meta": {"gb": "999"}}"#, "gb"), None, "a nested key is no property");
        assert_eq!(top_level_text(r#"{"gb": "1", "gb": "2"}"#, "gb").as_deref(), Some("2"), "the last, as jsonb");
    }
}
