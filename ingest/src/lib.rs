//! Usage events in: the `/api/v1/events` handlers, the parsing and checks of the event contract, the `EventLog` seam
//! with its embedded adapter (group commit into the Postgres event store), and the asynchronous validation that feeds
//! the `events.errors` report; and scale mode's adapters: the Kafka `EventLog` ([`kafka`]), its record format
//! ([`record`]) and the sink that moves the log into ClickHouse ([`sink`]).

pub mod api;
pub mod group_commit;
pub mod in_advance;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod parse;
pub mod record;
pub mod sink;
pub mod validation;

pub use api::{IngestState, routes};
pub use group_commit::{GroupCommitConfig, GroupCommitLog};
pub use log::{Ack, EventLog, LogError};
