//! The `EventLog` seam: where an accepted batch goes before the HTTP acknowledgement. Embedded mode appends straight
//! to the Postgres event store (through the group commit); scale mode will append to a Kafka topic.

use futures::future::BoxFuture;
use schemas::event::Event;

/// Receipt that the events are durable: once a client sees it, they are never lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The log cannot take events right now (database or broker down, queue full): the client should retry.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The log refused the events for another reason; retrying the same request will not help.
    #[error("event log write failed: {0}")]
    Failed(String),
}

pub trait EventLog: Send + Sync + 'static {
    /// Makes `events` durable, all or none, and returns once they are.
    fn append(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, LogError>>;
}
