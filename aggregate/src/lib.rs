//! Exact per-period usage totals: the `EventStore` seam (Postgres and ClickHouse scans as Arrow batches) and the
//! DataFusion jobs that turn events into totals per subscription, filter and group.
//!
//! Empty until the aggregation issue lands; the crate exists so the workspace has its final shape.
