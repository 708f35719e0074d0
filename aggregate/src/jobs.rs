//! Aggregation jobs on DataFusion: the totals of one billable metric for many subscriptions over one window, in one
//! scan of the event store and one query.
//!
//! The job reads the store through `EventScanTable`: DataFusion pushes the organization, subscriptions, code and time
//! range down to the store, and the projection to the subscription, the times and the properties the metric, its
//! filters and groups need, so the store returns narrow Arrow batches (already deduplicated on the identity). Each
//! row is then given its charge filter bucket and pricing group with the same rules as the reference semantics,
//! and its `value` as `Decimal128(38, 9)` (null when it is not a plain decimal, so such events are skipped as Lago
//! does). The totals are one SQL query over those batches. Weighted sums are the sum of each change times the time
//! left to the end of the window (the same as each level times how long it held, without sorting the rows),
//! opening at the level carried over from before the window (recurring) plus any given level, and are divided by
//! the period's length in rust_decimal.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Decimal128Array, Decimal128Builder, Int64Array, Int64Builder, RecordBatch,
    StringArray, StringBuilder, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionContext, col, ident, lit};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::scan::EventScanTable;
use crate::semantics::{
    AggregationType, ChargeFilter, EventRow, FilterSet, Group, MetricSpec, Total, VALUE_SCALE, Window, ceil_to_second,
    from_raw, group_by, raw_value, round_units, to_raw, weighted_average,
};
use crate::store::{EventStore, StoreError};

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
        // A store failure inside the scan keeps its kind (unavailable: retry later).
        if let datafusion::error::DataFusionError::External(inner) = &e
            && let Some(store) = inner.downcast_ref::<StoreError>()
        {
            return JobError::Store(store.clone());
        }
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
    let scanned = scan(store, job).await?;
    let label = crate::metrics::aggregation_label(job.metric.aggregation_type);
    ::metrics::counter!(crate::metrics::ROWS_SCANNED_TOTAL, "aggregation" => label)
        .increment(scanned.iter().map(|b| b.num_rows() as u64).sum());
    let prepared = prepare(job, &scanned)?;
    let totals = totals(job, prepared).await?;
    ::metrics::histogram!(crate::metrics::JOB_DURATION, "aggregation" => label).record(started.elapsed().as_secs_f64());
    Ok(totals)
}

/// Whether the job reads all history before its window: recurring sums and unique counts count it, and a recurring
/// weighted sum opens at the level it leaves.
fn reads_history(metric: &MetricSpec) -> bool {
    metric.recurring
        && matches!(
            metric.aggregation_type,
            AggregationType::Sum | AggregationType::UniqueCount | AggregationType::WeightedSum
        )
}

/// The properties the job reads, each once: the aggregated field, the unique count's operation, filter and group
/// keys.
fn properties(job: &JobSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |k: &str| {
        if !out.iter().any(|p| p == k) {
            out.push(k.to_owned());
        }
    };
    if job.metric.aggregation_type != AggregationType::Count {
        add(job.metric.field_name.as_deref().unwrap_or(""));
    }
    if job.metric.aggregation_type == AggregationType::UniqueCount {
        add("operation_type");
    }
    for f in &job.filters {
        for k in f.values.keys() {
            add(k);
        }
    }
    for k in &job.grouped_by {
        add(k);
    }
    out
}

/// The job's events from the store, as batches of (subscription, timestamp, ingested_at, properties...).
pub async fn scan(store: &dyn EventStore, job: &JobSpec) -> Result<Vec<RecordBatch>, JobError> {
    let properties = properties(job);
    let table = EventScanTable::new(store.handle(), job.organization_id, &properties);
    // Both ends of the window are included.
    let end = job.window.to.timestamp_micros() + 1;
    let mut keep = col("code").eq(lit(job.code.clone())).and(col("timestamp").lt(lit(end)));
    if !reads_history(&job.metric) {
        keep = keep.and(col("timestamp").gt_eq(lit(job.window.from.timestamp_micros())));
    }
    if !job.subscriptions.is_empty() {
        let subs = job.subscriptions.iter().map(|s| lit(s.clone())).collect();
        keep = keep.and(col("external_subscription_id").in_list(subs, false));
    }
    let mut columns = vec![col("external_subscription_id"), col("timestamp"), col("ingested_at")];
    columns.extend(properties.iter().map(|p| ident(format!("properties.{p}"))));
    let ctx = SessionContext::new();
    Ok(ctx.read_table(Arc::new(table))?.filter(keep)?.select(columns)?.collect().await?)
}

/// The schema `prepare` produces and the totals query reads. `bucket` and `grp` are null when the job has neither
/// filters nor groups (everything is the default bucket's only group).
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sub", DataType::Utf8, false),
        Field::new("bucket", DataType::Int64, true),
        Field::new("grp", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, false),
        Field::new("ing", DataType::Int64, false),
        Field::new("value", DataType::Decimal128(38, SCALE), true),
        Field::new("text", DataType::Utf8, true),
        Field::new("adds", DataType::Boolean, true),
        Field::new("real", DataType::Int64, false),
    ]))
}

/// Whether every row is in the default bucket's only group, so the query groups by subscription alone.
fn single_bucket(job: &JobSpec) -> bool {
    job.filters.is_empty() && job.grouped_by.is_empty()
}

fn group_key(group: &Group) -> String {
    serde_json::to_string(group).unwrap_or_default()
}

fn engine(e: impl std::fmt::Display) -> JobError {
    JobError::Engine(e.to_string())
}

/// Turns scanned batches (as `scan` returns them) into the rows the totals query reads: bucket and group of each
/// event (an event in several filters is one row per filter), its value, and for weighted sums the changes from
/// before the window moved onto its start plus an opening row per bucket for a given initial level.
pub fn prepare(job: &JobSpec, scanned: &[RecordBatch]) -> Result<Vec<RecordBatch>, JobError> {
    let properties = properties(job);
    let index = |key: &str| properties.iter().position(|p| p == key).map(|i| i + 3);
    let field = index(job.metric.field_name.as_deref().unwrap_or(""));
    let operation = index("operation_type");
    let numeric = job.metric.aggregation_type.numeric();
    let unique = job.metric.aggregation_type == AggregationType::UniqueCount;
    let weighted = job.metric.aggregation_type == AggregationType::WeightedSum;
    let from = job.window.from.timestamp_micros();
    let end = ceil_to_second(job.window.to).timestamp_micros();
    let filters = FilterSet::new(&job.filters);
    let single = single_bucket(job);
    let mut opened: HashSet<(String, i64, String)> = HashSet::new();
    let mut out = Vec::with_capacity(scanned.len() + 1);
    for b in scanned {
        let n = b.num_rows();
        let text_of = |i: Option<usize>| -> Result<Option<&StringArray>, JobError> {
            i.map(|i| b.column(i).as_any().downcast_ref::<StringArray>().ok_or_else(|| engine("property column")))
                .transpose()
        };
        let sub = column::<StringArray>(b, 0)?;
        let ts = column::<Int64Array>(b, 1)?;
        let field_text = text_of(field)?;
        let op_text = text_of(operation)?;
        let property_columns: Vec<(&str, &StringArray)> = properties
            .iter()
            .enumerate()
            .map(|(k, p)| Ok((p.as_str(), column::<StringArray>(b, k + 3)?)))
            .collect::<Result<_, JobError>>()?;
        let lookup = |row: usize| {
            let cols = &property_columns;
            move |key: &str| {
                cols.iter().find(|(p, _)| *p == key).and_then(|(_, c)| c.is_valid(row).then(|| c.value(row).to_owned()))
            }
        };
        // Bucket and group of each row, and the source row of each output row when events repeat across filters.
        let mut indices: Vec<u32> = Vec::with_capacity(n);
        let mut buckets = Int64Builder::with_capacity(if single { 0 } else { n });
        let mut groups = StringBuilder::new();
        if !single {
            for row in 0..n {
                let grp = group_key(&group_by(&job.grouped_by, lookup(row)));
                let hit = if filters.is_empty() { Vec::new() } else { filters.of(lookup(row)) };
                let hit: Vec<i64> = if hit.is_empty() { vec![-1] } else { hit.iter().map(|&i| i as i64).collect() };
                for bucket in hit {
                    indices.push(row as u32);
                    buckets.append_value(bucket);
                    groups.append_value(&grp);
                    if weighted && job.initial_levels.contains_key(sub.value(row)) {
                        opened.insert((sub.value(row).to_owned(), bucket, grp.clone()));
                    }
                }
            }
        } else if weighted {
            for row in 0..n {
                if job.initial_levels.contains_key(sub.value(row)) {
                    opened.insert((sub.value(row).to_owned(), -1, "[]".to_owned()));
                }
            }
        }
        let repeated = !single && indices.len() != n;
        let rows = if single { n } else { indices.len() };
        let indices = UInt32Array::from(indices);
        let pick = |a: &ArrayRef| -> Result<ArrayRef, JobError> {
            if repeated { take(a.as_ref(), &indices, None).map_err(engine) } else { Ok(a.clone()) }
        };
        let source = |i: usize| if repeated { indices.value(i) as usize } else { i };
        let mut value = Decimal128Builder::with_capacity(rows);
        let mut adds = BooleanBuilder::with_capacity(if unique { rows } else { 0 });
        let mut real = Int64Builder::with_capacity(rows);
        for i in 0..rows {
            let row = source(i);
            // A weighted sum's change from before the window moves the opening level: it lands on the window's
            // start and is not counted as an event of the period.
            let before = weighted && ts.value(row) < from;
            let at = if before { from } else { ts.value(row) };
            if numeric {
                let v = field_text.filter(|c| c.is_valid(row)).and_then(|c| raw_value(c.value(row)));
                // A weighted sum's row carries its change times the time left to the window's end (see `sql`).
                let v = if weighted { v.map(|v| weigh(v, end - at)).transpose()? } else { v };
                value.append_option(v);
            }
            if unique {
                adds.append_value(op_text.filter(|c| c.is_valid(row)).is_none_or(|c| c.value(row) == "add"));
            }
            real.append_value(i64::from(!before));
        }
        let value: ArrayRef = if numeric {
            Arc::new(value.finish().with_precision_and_scale(38, SCALE).map_err(engine)?)
        } else {
            new_null_array(&DataType::Decimal128(38, SCALE), rows)
        };
        let columns: Vec<ArrayRef> = vec![
            pick(b.column(0))?,
            if single { new_null_array(&DataType::Int64, rows) } else { Arc::new(buckets.finish()) },
            if single { new_null_array(&DataType::Utf8, rows) } else { Arc::new(groups.finish()) },
            pick(b.column(1))?,
            pick(b.column(2))?,
            value,
            match (unique, field) {
                (true, Some(f)) => pick(b.column(f))?,
                _ => new_null_array(&DataType::Utf8, rows),
            },
            if unique { Arc::new(adds.finish()) } else { new_null_array(&DataType::Boolean, rows) },
            Arc::new(real.finish()),
        ];
        out.push(RecordBatch::try_new(schema(), columns).map_err(engine)?);
    }
    if !opened.is_empty() {
        // The given opening levels, as a first row at the window's start of every bucket that has events.
        let mut opened: Vec<_> = opened.into_iter().collect();
        opened.sort();
        let n = opened.len();
        let mut value = Decimal128Builder::with_capacity(n);
        for (sub, _, _) in &opened {
            let level = to_raw(job.initial_levels.get(sub).copied().unwrap_or_default());
            value.append_option(level.map(|l| weigh(l, end - from)).transpose()?);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(opened.iter().map(|o| o.0.as_str()))),
            if single {
                new_null_array(&DataType::Int64, n)
            } else {
                Arc::new(Int64Array::from_iter_values(opened.iter().map(|o| o.1)))
            },
            if single {
                new_null_array(&DataType::Utf8, n)
            } else {
                Arc::new(StringArray::from_iter_values(opened.iter().map(|o| o.2.as_str())))
            },
            Arc::new(Int64Array::from(vec![from; n])),
            Arc::new(Int64Array::from(vec![i64::MIN; n])),
            Arc::new(value.finish().with_precision_and_scale(38, SCALE).map_err(engine)?),
            new_null_array(&DataType::Utf8, n),
            new_null_array(&DataType::Boolean, n),
            Arc::new(Int64Array::from(vec![0; n])),
        ];
        out.push(RecordBatch::try_new(schema(), columns).map_err(engine)?);
    }
    Ok(out)
}

/// A weighted sum's change (raw, 10^-9 units) times the microseconds it holds to the window's end, as a raw
/// `Decimal128(38, 9)`; beyond 38 digits the job fails rather than count a wrong total.
fn weigh(change: i128, micros: i64) -> Result<i128, JobError> {
    change
        .checked_mul(i128::from(micros))
        .filter(|w| w.unsigned_abs() < 10u128.pow(38))
        .ok_or_else(|| JobError::Engine("a weighted sum exceeds 38 digits".into()))
}

/// The totals of `job` from prepared batches: the DataFusion query, then weighted sums divided by the period,
/// rounding, and zero totals for buckets without events.
pub async fn totals(job: &JobSpec, prepared: Vec<RecordBatch>) -> Result<Vec<SubscriptionTotal>, JobError> {
    let rows = query(job, prepared).await?;
    Ok(complete(job, rows))
}

/// The SQL computing (sub, bucket, grp, units, count) per type; `units` is a Decimal128 or an integer count. A job
/// with a single bucket groups by subscription alone.
fn sql(metric: &MetricSpec, single: bool) -> String {
    let by = if single { "sub" } else { "sub, bucket, grp" };
    let inner = match metric.aggregation_type {
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
            "SELECT {by}, SUM(CASE WHEN last_add THEN 1 ELSE 0 END) AS units,
                    SUM(CASE WHEN last_add THEN 1 ELSE 0 END) AS n
             FROM (SELECT {by}, text, last_value(adds ORDER BY ts, ing) AS last_add FROM events GROUP BY {by}, text) v
             GROUP BY {by}"
        ),
        // Each row's level (the running sum of changes) holds until the next row, so the sum of level × duration is
        // the sum of each change × the time from it to the end of the window: Σᵢ (Σⱼ≤ᵢ vⱼ)(tᵢ₊₁ − tᵢ) = Σⱼ vⱼ (end − tⱼ).
        // `prepare` gives each row vⱼ (end − tⱼ), exact in integers, so this is a plain sum with no sort of the rows
        // (rows at one instant weigh 0 between them, so their order never mattered).
        AggregationType::WeightedSum => format!(
            "SELECT {by}, SUM(value) AS units, SUM(real) AS n FROM events WHERE value IS NOT NULL GROUP BY {by}"
        ),
    };
    if single {
        format!("SELECT sub, CAST(-1 AS BIGINT) AS bucket, '[]' AS grp, units, n FROM ({inner}) t")
    } else {
        inner
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

async fn query(job: &JobSpec, prepared: Vec<RecordBatch>) -> Result<Vec<Row>, JobError> {
    let ctx = SessionContext::new();
    // One partition per core, so the partial aggregation runs on all of them.
    let parts = ctx.state().config().target_partitions().max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
    for (i, b) in prepared.into_iter().enumerate() {
        partitions[i % parts].push(b);
    }
    ctx.register_table("events", Arc::new(MemTable::try_new(schema(), partitions)?))?;
    let results = ctx.sql(&sql(&job.metric, single_bucket(job))).await?.collect().await?;
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
