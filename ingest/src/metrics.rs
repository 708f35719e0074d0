//! Metric names of the ingest stage.

/// Events by outcome: `accepted` (new), `duplicate` (identity already stored), `rejected` (failed validation). In scale
/// mode `accepted` counts events the broker acknowledged (repeats included), and the sink counts `stored` (new) and
/// `duplicate`.
pub const EVENTS_TOTAL: &str = "billstream_ingest_events_total";
/// Time from request to acknowledgement, by endpoint.
pub const REQUEST_DURATION: &str = "billstream_ingest_request_duration_seconds";
/// Rows per group-commit write.
pub const BATCH_ROWS: &str = "billstream_ingest_batch_rows";
/// Duration of one group-commit write.
pub const FLUSH_DURATION: &str = "billstream_ingest_flush_duration_seconds";
/// Invalid events recorded for the events.errors report, by kind.
pub const EVENT_ERRORS_TOTAL: &str = "billstream_ingest_event_errors_total";
/// Events sent again with an identity already stored (each gets an `event.error` webhook).
pub const DUPLICATE_EVENTS_TOTAL: &str = "billstream_ingest_duplicate_events_total";
/// Committed groups the post-validation queue had no room for (their errors are not recorded).
pub const VALIDATION_DROPPED_TOTAL: &str = "billstream_ingest_validation_dropped_total";
/// Records the Kafka producer could not get acknowledged (the request got a 503).
pub const PRODUCE_ERRORS_TOTAL: &str = "billstream_ingest_produce_errors_total";
/// Kafka producers replaced by a fresh one after a failed record.
pub const PRODUCER_RESTARTS_TOTAL: &str = "billstream_ingest_producer_restarts_total";
/// Produce retries librdkafka made since start (from its statistics).
pub const PRODUCE_RETRIES: &str = "billstream_ingest_produce_retries";
/// Produce request transmit errors librdkafka saw since start (from its statistics).
pub const PRODUCE_TRANSMIT_ERRORS: &str = "billstream_ingest_produce_transmit_errors";
/// Events the sink's consumer group is behind the end of the log (from librdkafka's statistics).
pub const SINK_LAG_EVENTS: &str = "billstream_sink_lag_events";
/// Events per sink flush.
pub const SINK_BATCH_ROWS: &str = "billstream_sink_batch_rows";
/// Duration of one sink flush (enrich, ClickHouse inserts, error records), successful ones only.
pub const SINK_FLUSH_DURATION: &str = "billstream_sink_flush_duration_seconds";
/// Sink flush attempts that failed and were retried, by stage.
pub const SINK_FLUSH_ERRORS_TOTAL: &str = "billstream_sink_flush_errors_total";
/// Records the sink could not decode (skipped).
pub const SINK_BAD_RECORDS_TOTAL: &str = "billstream_sink_bad_records_total";
/// Stored identities the sink remembers, so that most events need no store query to be deduplicated.
pub const SINK_REMEMBERED_IDENTITIES: &str = "billstream_sink_remembered_identities";
/// Stored identities the sink remembers approximately, once the exact memory is full (a "maybe" asks the store).
pub const SINK_FILTERED_IDENTITIES: &str = "billstream_sink_filtered_identities";
