//! Usage events at rest and their totals: the `EventStore` seam with its adapters (Postgres now, ClickHouse with the
//! scale mode), and, with the aggregation issue, the DataFusion jobs that turn events into totals per subscription,
//! filter and group.

pub mod clickhouse_store;
pub mod details;
pub mod identity_filter;
pub mod jobs;
pub mod metrics;
pub mod postgres;
pub mod prorated;
pub mod recent_identities;
pub mod scan;
pub mod semantics;
pub mod store;

pub use store::{EventQuery, EventStore, ScanFilter, StoreError, Written};
