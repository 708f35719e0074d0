//! Metric names of the aggregate stage. Labels stay bounded: the aggregation type, never an organization or a
//! metric code.

use crate::semantics::AggregationType;

/// Duration of one aggregation job (scan, prepare, query), by `aggregation`.
pub const JOB_DURATION: &str = "billstream_aggregate_job_duration_seconds";
/// Rows the event stores returned to aggregation scans (after dedup), by `aggregation`.
pub const ROWS_SCANNED_TOTAL: &str = "billstream_aggregate_rows_scanned_total";

/// The `aggregation` label of a job.
pub fn aggregation_label(t: AggregationType) -> &'static str {
    match t {
        AggregationType::Count => "count",
        AggregationType::Sum => "sum",
        AggregationType::Max => "max",
        AggregationType::UniqueCount => "unique_count",
        AggregationType::Latest => "latest",
        AggregationType::WeightedSum => "weighted_sum",
    }
}
