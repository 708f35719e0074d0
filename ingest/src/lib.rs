//! Usage events in: the HTTP ingest handlers, their validation and batching, the `EventLog` seam with its embedded
//! (Postgres) and scale (Kafka) adapters, and the `sink` role that moves the log into the event store.
//!
//! Empty until the ingest issue lands; the crate exists so the workspace has its final shape.
