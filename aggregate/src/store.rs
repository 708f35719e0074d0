//! The `EventStore` seam: where accepted events are kept and read back, one adapter per mode.

use chrono::{DateTime, Utc};
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

pub trait EventStore: Send + Sync + 'static {
    /// Stores `events` durably, all or none. An event whose identity is already stored (or repeated earlier in
    /// `events`) is skipped: the first one wins. Returns how many events were new.
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Events matching `filter`, each identity once, in no particular order (aggregation sorts what it needs).
    fn scan<'a>(&'a self, filter: &'a ScanFilter) -> BoxFuture<'a, Result<Vec<Event>, StoreError>>;

    /// One event of the organization with this transaction id (any subscription).
    fn find<'a>(
        &'a self,
        organization_id: Uuid,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Event>, StoreError>>;

    /// A page of the organization's events and the count of all that match.
    fn list<'a>(&'a self, query: &'a EventQuery) -> BoxFuture<'a, Result<(Vec<Event>, i64), StoreError>>;
}
