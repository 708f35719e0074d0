//! The `EventStore` seam: where accepted events are kept and read back, one adapter per mode.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::future::BoxFuture;
use schemas::event::Event;
use uuid::Uuid;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    #[error("event store: {0}")]
    Failed(String),
}

/// Which events a scan reads: one organization, some subscriptions and metric codes (empty = all), `[from, to)`.
#[derive(Debug, Clone)]
pub struct ScanFilter {
    pub organization_id: Uuid,
    pub external_subscription_ids: Vec<String>,
    pub codes: Vec<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One column of a batch scan. Times are Unix microseconds (UTC) in `Int64`; a property is its text as Postgres'
/// `->>` gives it (a string's value, a number's or boolean's literal, null when missing or JSON null).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScanColumn {
    OrganizationId,
    ExternalSubscriptionId,
    Code,
    TransactionId,
    Timestamp,
    IngestedAt,
    Property(String),
}

impl ScanColumn {
    /// The column's name in a scan's schema: the event field's name, or `properties.<key>`.
    pub fn name(&self) -> String {
        match self {
            ScanColumn::OrganizationId => "organization_id".into(),
            ScanColumn::ExternalSubscriptionId => "external_subscription_id".into(),
            ScanColumn::Code => "code".into(),
            ScanColumn::TransactionId => "transaction_id".into(),
            ScanColumn::Timestamp => "timestamp".into(),
            ScanColumn::IngestedAt => "ingested_at".into(),
            ScanColumn::Property(key) => format!("properties.{key}"),
        }
    }

    pub fn field(&self) -> Field {
        match self {
            ScanColumn::Timestamp | ScanColumn::IngestedAt => Field::new(self.name(), DataType::Int64, false),
            ScanColumn::Property(_) => Field::new(self.name(), DataType::Utf8, true),
            _ => Field::new(self.name(), DataType::Utf8, false),
        }
    }

    /// Every event column, then the given properties: the full schema of a scan table.
    pub fn all(properties: &[String]) -> Vec<ScanColumn> {
        let mut columns = vec![
            ScanColumn::OrganizationId,
            ScanColumn::ExternalSubscriptionId,
            ScanColumn::Code,
            ScanColumn::TransactionId,
            ScanColumn::Timestamp,
            ScanColumn::IngestedAt,
        ];
        columns.extend(properties.iter().cloned().map(ScanColumn::Property));
        columns
    }
}

/// The Arrow schema of a scan returning `columns`, in that order.
pub fn scan_schema(columns: &[ScanColumn]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(ScanColumn::field).collect::<Vec<_>>()))
}

/// Rows per batch the stores return.
pub const SCAN_BATCH_ROWS: usize = 64 * 1024;

/// The API's event listing: newest first, optional filters, inclusive time bounds, a page.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub organization_id: Uuid,
    pub external_subscription_id: Option<String>,
    pub code: Option<String>,
    pub timestamp_from: Option<DateTime<Utc>>,
    pub timestamp_to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// How many events were new.
    pub new: u64,
    /// The events (indices into the written slice) whose identity was stored by an earlier sending or earlier in
    /// the same write: a client sent it again (Lago answers with an `event.error` webhook). The replay of a record
    /// already written (same identity, same receipt time) is not a duplicate.
    pub duplicates: Vec<usize>,
}

/// The identity of an event: organization, subscription, transaction.
pub type Identity<'a> = (Uuid, &'a str, &'a str);

/// Splits `events` into the first occurrence of each identity and the later ones (duplicates within the write).
pub fn first_occurrences(events: &[Event]) -> (Vec<usize>, Vec<usize>) {
    let mut seen: std::collections::HashSet<Identity<'_>> = std::collections::HashSet::with_capacity(events.len());
    (0..events.len()).partition(|&i| {
        let e = &events[i];
        seen.insert((e.organization_id, e.external_subscription_id.as_str(), e.transaction_id.as_str()))
    })
}

pub trait EventStore: Send + Sync + 'static {
    /// Stores `events` durably, all or none. An event whose identity is already stored (or repeated earlier in
    /// `events`) is skipped: the first one wins.
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Written, StoreError>>;

    /// Events matching `filter`, each identity once, in no particular order (aggregation sorts what it needs).
    fn scan<'a>(&'a self, filter: &'a ScanFilter) -> BoxFuture<'a, Result<Vec<Event>, StoreError>>;

    /// The same events as `scan`, as Arrow batches (schema `scan_schema(columns)`) holding only `columns`: the store
    /// reads only what the aggregation needs, and dedups on the identity itself.
    fn scan_batches<'a>(
        &'a self,
        filter: &'a ScanFilter,
        columns: &'a [ScanColumn],
    ) -> BoxFuture<'a, Result<Vec<RecordBatch>, StoreError>>;

    /// A shared handle on this store (adapters are cheap handles on a pool or client), for query plans that must own
    /// their source.
    fn handle(&self) -> Arc<dyn EventStore>;

    /// One event of the organization with this transaction id (any subscription).
    fn find<'a>(
        &'a self,
        organization_id: Uuid,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Event>, StoreError>>;

    /// A page of the organization's events and the count of all that match.
    fn list<'a>(&'a self, query: &'a EventQuery) -> BoxFuture<'a, Result<(Vec<Event>, i64), StoreError>>;
}

/// Builds the batches of a scan row by row, in `SCAN_BATCH_ROWS` slices, for the adapters.
pub(crate) struct ScanBatches {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
    done: Vec<RecordBatch>,
}

enum ColumnBuilder {
    Text(datafusion::arrow::array::StringBuilder),
    Int(datafusion::arrow::array::Int64Builder),
}

impl ScanBatches {
    pub(crate) fn new(columns: &[ScanColumn]) -> Self {
        let schema = scan_schema(columns);
        let columns = schema.fields().iter().map(|f| ColumnBuilder::new(f.data_type())).collect();
        ScanBatches { schema, columns, rows: 0, done: Vec::new() }
    }

    /// Column `i` of the current row is text (`None` for null).
    pub(crate) fn text(&mut self, i: usize, v: Option<&str>) {
        if let ColumnBuilder::Text(b) = &mut self.columns[i] {
            b.append_option(v);
        }
    }

    pub(crate) fn int(&mut self, i: usize, v: i64) {
        if let ColumnBuilder::Int(b) = &mut self.columns[i] {
            b.append_value(v);
        }
    }

    /// Ends the current row (every column appended once).
    pub(crate) fn end_row(&mut self) -> Result<(), StoreError> {
        self.rows += 1;
        if self.rows == SCAN_BATCH_ROWS { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| StoreError::Failed(format!("scan batch: {e}")))?;
        self.done.push(batch);
        self.rows = 0;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Vec<RecordBatch>, StoreError> {
        self.flush()?;
        Ok(self.done)
    }
}

impl ColumnBuilder {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Int64 => {
                ColumnBuilder::Int(datafusion::arrow::array::Int64Builder::with_capacity(SCAN_BATCH_ROWS))
            }
            _ => ColumnBuilder::Text(datafusion::arrow::array::StringBuilder::new()),
        }
    }

    fn finish(&mut self) -> datafusion::arrow::array::ArrayRef {
        match self {
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
        }
    }
}
