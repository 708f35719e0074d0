//! Aggregation jobs on DataFusion: the totals of one billable metric for many subscriptions over one window, in one
//! scan of the event store and one query.
//!
//! The scan reads only the organization, subscriptions, code and time range the job needs (the store's filter is
//! the pushdown). Each event is assigned its charge filter bucket and pricing group with the same functions as the
//! reference semantics, then the rows go to DataFusion as an Arrow batch whose `value` column holds the aggregated
//! property as `Decimal128(38, 9)` (null when it is not a plain decimal, so such events are skipped as Lago does).
//! Weighted sums run as window functions over the time-ordered rows, with the opening level as a synthetic first
//! row, and are divided by the period's length in rust_decimal.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::DateTime;
use datafusion::arrow::array::{
    Array, ArrayRef, Decimal128Array, Decimal128Builder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::semantics::{
    AggregationType, ChargeFilter, EventRow, Group, MetricSpec, Total, VALUE_SCALE, Window, ceil_to_second, filters_of,
    from_raw, group_of, property_text, round_units, to_raw, value_of, weighted_average,
};
use crate::store::{EventStore, ScanFilter, StoreError};

/// Scale of the `value` column: the nine decimal places of the aggregation semantics.
const SCALE: i8 = VALUE_SCALE as i8;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("aggregation engine: {0}")]
    Engine(String),
}

impl From<datafusion::error::DataFusionError> for JobError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        JobError::Engine(e.to_string())
    }
}

/// One metric for many subscriptions over one window.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub organization_id: Uuid,
    pub code: String,
    pub metric: MetricSpec,
    pub subscriptions: Vec<String>,
    pub window: Window,
    pub filters: Vec<ChargeFilter>,
    pub grouped_by: Vec<String>,
    /// Added to the opening level of a weighted sum in every bucket of the subscription (absent: 0). A recurring
    /// weighted sum already opens at the level carried over from the events before the window, computed in the
    /// same scan; this is for a level known from elsewhere.
    pub initial_levels: HashMap<String, Decimal>,
}

/// One bucket's total for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionTotal {
    pub external_subscription_id: String,
    pub filter: Option<usize>,
    pub group: Group,
    pub total: Total,
}

/// Runs `job` against `store`.
pub async fn run(store: &dyn EventStore, job: &JobSpec) -> Result<Vec<SubscriptionTotal>, JobError> {
    let started = Instant::now();
    // Recurring sums and unique counts count all history; a recurring weighted sum reads it to open each bucket at
    // its level carried over from before the window (folded into the window's start by `to_batch`).
    let no_lower_bound = job.metric.recurring
        && matches!(
            job.metric.aggregation_type,
            AggregationType::Sum | AggregationType::UniqueCount | AggregationType::WeightedSum
        );
    let filter = ScanFilter {
        organization_id: job.organization_id,
        external_subscription_ids: job.subscriptions.clone(),
        codes: vec![job.code.clone()],
        // Ingest refuses timestamps before year 1, so that is "all history".
        from: if no_lower_bound {
            DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(job.window.from)
        } else {
            job.window.from
        },
        to: job.window.to + chrono::Duration::microseconds(1),
    };
    let events = store.scan(&filter).await?;
    ::metrics::counter!("billstream_aggregate_rows_scanned_total").increment(events.len() as u64);
    let batch = to_batch(job, &events)?;
    let rows = query(job, batch).await?;
    let totals = complete(job, rows);
    ::metrics::histogram!("billstream_aggregate_job_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(totals)
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("sub", DataType::Utf8, false),
        Field::new("bucket", DataType::Int64, false),
        Field::new("grp", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("ing", DataType::Int64, false),
        Field::new("value", DataType::Decimal128(38, SCALE), true),
        Field::new("text", DataType::Utf8, true),
        Field::new("op", DataType::Utf8, false),
        Field::new("real", DataType::Int64, false),
    ]))
}

struct Columns {
    sub: StringBuilder,
    bucket: Int64Builder,
    grp: StringBuilder,
    ts: Int64Builder,
    ing: Int64Builder,
    value: Decimal128Builder,
    text: StringBuilder,
    op: StringBuilder,
    real: Int64Builder,
}

impl Columns {
    fn new() -> Self {
        Columns {
            sub: StringBuilder::new(),
            bucket: Int64Builder::new(),
            grp: StringBuilder::new(),
            ts: Int64Builder::new(),
            ing: Int64Builder::new(),
            value: Decimal128Builder::new(),
            text: StringBuilder::new(),
            op: StringBuilder::new(),
            real: Int64Builder::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        sub: &str,
        bucket: i64,
        grp: &str,
        ts: i64,
        ing: i64,
        value: Option<i128>,
        text: Option<&str>,
        op: &str,
        real: bool,
    ) {
        self.sub.append_value(sub);
        self.bucket.append_value(bucket);
        self.grp.append_value(grp);
        self.ts.append_value(ts);
        self.ing.append_value(ing);
        self.value.append_option(value);
        self.text.append_option(text);
        self.op.append_value(op);
        self.real.append_value(i64::from(real));
    }

    fn finish(mut self) -> Result<RecordBatch, JobError> {
        let value =
            self.value.finish().with_precision_and_scale(38, SCALE).map_err(|e| JobError::Engine(e.to_string()))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.sub.finish()),
            Arc::new(self.bucket.finish()),
            Arc::new(self.grp.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.ing.finish()),
            Arc::new(value),
            Arc::new(self.text.finish()),
            Arc::new(self.op.finish()),
            Arc::new(self.real.finish()),
        ];
        RecordBatch::try_new(schema(), columns).map_err(|e| JobError::Engine(e.to_string()))
    }
}

fn group_key(group: &Group) -> String {
    serde_json::to_string(group).unwrap_or_default()
}

fn to_batch(job: &JobSpec, events: &[schemas::event::Event]) -> Result<RecordBatch, JobError> {
    let field = job.metric.field_name.as_deref().unwrap_or("");
    let mut cols = Columns::new();
    let mut opened: BTreeMap<(String, i64, String), ()> = BTreeMap::new();
    let weighted = job.metric.aggregation_type == AggregationType::WeightedSum;
    for e in events {
        let properties: serde_json::Value = serde_json::from_str(&e.properties).unwrap_or(serde_json::Value::Null);
        let text = property_text(&properties, field);
        let value = text.as_deref().and_then(value_of).and_then(to_raw);
        let op = property_text(&properties, "operation_type").unwrap_or_else(|| "add".into());
        let grp = group_key(&group_of(&properties, &job.grouped_by));
        let hit = filters_of(&job.filters, &properties);
        let buckets: Vec<i64> = if hit.is_empty() { vec![-1] } else { hit.iter().map(|i| *i as i64).collect() };
        for bucket in buckets {
            if weighted {
                // The opening level, as a first row at the window's start of every bucket that has events.
                let key = (e.external_subscription_id.clone(), bucket, grp.clone());
                if opened.insert(key, ()).is_none() {
                    let initial = job.initial_levels.get(&e.external_subscription_id).copied().unwrap_or_default();
                    let from = job.window.from.timestamp_micros();
                    cols.push(
                        &e.external_subscription_id,
                        bucket,
                        &grp,
                        from,
                        i64::MIN,
                        to_raw(initial),
                        None,
                        "add",
                        false,
                    );
                }
            }
            // A weighted sum's change from before the window moves the opening level: it lands on the window's
            // start and is not counted as an event of the period.
            let before = weighted && e.timestamp < job.window.from;
            let ts = if before { job.window.from } else { e.timestamp };
            cols.push(
                &e.external_subscription_id,
                bucket,
                &grp,
                ts.timestamp_micros(),
                e.ingested_at.timestamp_micros(),
                value,
                text.as_deref(),
                &op,
                !before,
            );
        }
    }
    cols.finish()
}

/// The SQL computing (sub, bucket, grp, units, count) per type; `units` is a Decimal128 or an integer count.
fn sql(metric: &MetricSpec, end_micros: i64) -> String {
    let by = "sub, bucket, grp";
    match metric.aggregation_type {
        AggregationType::Count => format!("SELECT {by}, COUNT(*) AS units, COUNT(*) AS n FROM events GROUP BY {by}"),
        AggregationType::Sum => {
            format!(
                "SELECT {by}, SUM(value) AS units, COUNT(value) AS n FROM events WHERE value IS NOT NULL GROUP BY {by}"
            )
        }
        AggregationType::Max => {
            format!(
                "SELECT {by}, MAX(value) AS units, COUNT(value) AS n FROM events WHERE value IS NOT NULL GROUP BY {by}"
            )
        }
        AggregationType::Latest => format!(
            "SELECT {by}, last_value(value ORDER BY ts, ing) AS units, COUNT(value) AS n
             FROM events WHERE value IS NOT NULL GROUP BY {by}"
        ),
        AggregationType::UniqueCount => format!(
            "SELECT {by}, SUM(CASE WHEN last_op = 'add' THEN 1 ELSE 0 END) AS units,
                    SUM(CASE WHEN last_op = 'add' THEN 1 ELSE 0 END) AS n
             FROM (SELECT {by}, text, last_value(op ORDER BY ts, ing) AS last_op FROM events GROUP BY {by}, text) v
             GROUP BY {by}"
        ),
        // Each row holds its level (running sum of changes) until the next row or the end of the window.
        AggregationType::WeightedSum => format!(
            "SELECT {by}, SUM(level * CAST(next_ts - ts AS DECIMAL(20, 0))) AS units, SUM(real) AS n
             FROM (SELECT {by}, ts, real,
                          SUM(value) OVER (PARTITION BY {by} ORDER BY ts, ing ROWS UNBOUNDED PRECEDING) AS level,
                          LEAD(ts, 1, {end_micros}) OVER (PARTITION BY {by} ORDER BY ts, ing) AS next_ts
                   FROM events WHERE value IS NOT NULL) w
             GROUP BY {by}"
        ),
    }
}

struct Row {
    sub: String,
    bucket: i64,
    grp: String,
    /// Units, or for weighted sums Σ level × microseconds in 10^-9 units (divided later).
    units: Decimal,
    raw: Option<i128>,
    count: u64,
}

async fn query(job: &JobSpec, batch: RecordBatch) -> Result<Vec<Row>, JobError> {
    let ctx = SessionContext::new();
    ctx.register_batch("events", batch)?;
    let end = ceil_to_second(job.window.to).timestamp_micros();
    let results = ctx.sql(&sql(&job.metric, end)).await?.collect().await?;
    let mut rows = Vec::new();
    for b in results {
        let sub = column::<StringArray>(&b, 0)?;
        let bucket = column::<Int64Array>(&b, 1)?;
        let grp = column::<StringArray>(&b, 2)?;
        let count = column::<Int64Array>(&b, 4)?;
        let units = b.column(3);
        for i in 0..b.num_rows() {
            let (value, raw) = if let Some(d) = units.as_any().downcast_ref::<Decimal128Array>() {
                if d.is_null(i) {
                    (Decimal::ZERO, Some(0))
                } else {
                    let scale = u32::try_from(d.scale()).unwrap_or(0);
                    (from_raw(d.value(i), scale), (scale == VALUE_SCALE).then(|| d.value(i)))
                }
            } else if let Some(n) = units.as_any().downcast_ref::<Int64Array>() {
                (Decimal::from(n.value(i)), None)
            } else {
                return Err(JobError::Engine(format!("unexpected units type {}", units.data_type())));
            };
            rows.push(Row {
                sub: sub.value(i).to_owned(),
                bucket: bucket.value(i),
                grp: grp.value(i).to_owned(),
                units: value,
                raw,
                count: u64::try_from(count.value(i)).unwrap_or(0),
            });
        }
    }
    Ok(rows)
}

fn column<T: 'static>(b: &RecordBatch, i: usize) -> Result<&T, JobError> {
    b.column(i).as_any().downcast_ref::<T>().ok_or_else(|| JobError::Engine(format!("unexpected type of column {i}")))
}

/// Turns query rows into totals: weighted sums divided by the period, latest floored at zero, rounding applied, and
/// a zero total for every subscription bucket without events.
fn complete(job: &JobSpec, rows: Vec<Row>) -> Vec<SubscriptionTotal> {
    let period_micros = i128::from(job.window.duration_days) * 86_400_000_000;
    let mut out: Vec<SubscriptionTotal> = Vec::new();
    for r in rows {
        let mut units = r.units;
        match job.metric.aggregation_type {
            AggregationType::WeightedSum => units = weighted_average(r.raw.unwrap_or(0), period_micros),
            AggregationType::Latest => units = units.max(Decimal::ZERO),
            _ => {}
        }
        if let Some((f, p)) = job.metric.rounding {
            units = round_units(units, f, p);
        }
        out.push(SubscriptionTotal {
            external_subscription_id: r.sub,
            filter: usize::try_from(r.bucket).ok(),
            group: serde_json::from_str(&r.grp).unwrap_or_default(),
            total: Total { units, count: r.count },
        });
    }
    // Buckets without events get a zero total; a set keeps this linear for jobs over many subscriptions.
    let present: std::collections::HashSet<(String, Option<usize>)> =
        out.iter().map(|t| (t.external_subscription_id.clone(), t.filter)).collect();
    for sub in &job.subscriptions {
        for filter in std::iter::once(None).chain((0..job.filters.len()).map(Some)) {
            if !present.contains(&(sub.clone(), filter)) {
                let mut units = Decimal::ZERO;
                if let Some((f, p)) = job.metric.rounding {
                    units = round_units(units, f, p);
                }
                out.push(SubscriptionTotal {
                    external_subscription_id: sub.clone(),
                    filter,
                    group: vec![None; job.grouped_by.len()],
                    total: Total { units, count: 0 },
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.external_subscription_id, a.filter, &a.group).cmp(&(&b.external_subscription_id, b.filter, &b.group))
    });
    out
}

/// The reference computation of the same job over already-loaded events, for tests and checks.
pub fn reference(job: &JobSpec, events: &[schemas::event::Event]) -> Vec<SubscriptionTotal> {
    let mut out = Vec::new();
    for sub in &job.subscriptions {
        let rows: Vec<EventRow> = events
            .iter()
            .filter(|e| &e.external_subscription_id == sub && e.code == job.code)
            .map(|e| EventRow {
                timestamp: e.timestamp,
                ingested_at: e.ingested_at,
                properties: serde_json::from_str(&e.properties).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        let initial = job.initial_levels.get(sub).copied().unwrap_or_default();
        for b in
            crate::semantics::aggregate_charge(&job.metric, &job.filters, &job.grouped_by, &rows, &job.window, initial)
        {
            out.push(SubscriptionTotal {
                external_subscription_id: sub.clone(),
                filter: b.filter,
                group: b.group,
                total: b.total,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.external_subscription_id, a.filter, &a.group).cmp(&(&b.external_subscription_id, b.filter, &b.group))
    });
    out
}
