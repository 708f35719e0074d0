//! Metric names of the ingest stage.

/// Events by outcome: `accepted` (new), `duplicate` (identity already stored), `rejected` (failed validation).
pub const EVENTS_TOTAL: &str = "billstream_ingest_events_total";
/// Time from request to acknowledgement, by endpoint.
pub const REQUEST_DURATION: &str = "billstream_ingest_request_duration_seconds";
/// Rows per group-commit write.
pub const BATCH_ROWS: &str = "billstream_ingest_batch_rows";
/// Duration of one group-commit write.
pub const FLUSH_DURATION: &str = "billstream_ingest_flush_duration_seconds";
/// Invalid events recorded for the events.errors report, by kind.
pub const EVENT_ERRORS_TOTAL: &str = "billstream_ingest_event_errors_total";
/// Committed groups the post-validation queue had no room for (their errors are not recorded).
pub const VALIDATION_DROPPED_TOTAL: &str = "billstream_ingest_validation_dropped_total";
