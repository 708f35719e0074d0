//! Embedded mode's `EventLog`: concurrent requests are coalesced into one store write.
//!
//! A single task takes requests off a queue. When a write slot is free it drains whatever has queued (up to
//! `max_rows`) into one group and writes it in a task of its own; while every slot is busy, requests keep queueing,
//! so groups grow with load and a lone request is written at once, without waiting for a timer.
//!
//! Guarantees, and what a crash leaves behind:
//! - a request is acknowledged only after the write holding its events has committed, so an acknowledged event is in
//!   the store; a crash before the commit loses only unacknowledged events, which the client retries;
//! - a write is one transaction, so a request's events are all stored or none are;
//! - the store skips identities it already holds, so a retry after a lost acknowledgement stores nothing twice;
//! - when a group write fails for a reason other than the store being unavailable, each request of the group is
//!   written on its own, so that one request the store refuses cannot fail the others;
//! - the store queues events for charges paid in advance for billing in the same write, so an acknowledged event
//!   is queued.

use std::sync::Arc;
use std::time::Instant;

use aggregate::{EventStore, StoreError};
use futures::FutureExt;
use futures::future::BoxFuture;
use schemas::event::Event;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::log::{Ack, EventLog, LogError};
use crate::metrics as names;
use crate::validation::Committed;

#[derive(Debug, Clone, Copy)]
pub struct GroupCommitConfig {
    /// Most rows in one write.
    pub max_rows: usize,
    /// Writes in flight at once. One writer lets groups grow largest while a write runs; on the 2-core reference
    /// machine it measured best (load-tests/, with wrk: about 19-28k single-event requests/s at 1, 12-19k at 2).
    pub max_inflight: usize,
    /// Requests that may wait in the queue; beyond it requests get 503 (back-pressure) instead of piling up.
    pub queue_depth: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig { max_rows: 10_000, max_inflight: 1, queue_depth: 50_000 }
    }
}

struct Pending {
    events: Vec<Event>,
    done: oneshot::Sender<Result<Ack, LogError>>,
}

/// Handle of the group-commit writer; cheap to clone.
#[derive(Clone)]
pub struct GroupCommitLog {
    queue: mpsc::Sender<Pending>,
}

/// Receives each committed group, e.g. for the post-validation of events and the duplicates' webhooks.
pub type CommitListener = mpsc::Sender<Committed>;

impl GroupCommitLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn EventStore>, config: GroupCommitConfig, listener: Option<CommitListener>) -> Self {
        let (queue, rx) = mpsc::channel(config.queue_depth.max(1));
        tokio::spawn(run(rx, store, config, listener));
        GroupCommitLog { queue }
    }
}

impl EventLog for GroupCommitLog {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, LogError>> {
        async move {
            let (done, acked) = oneshot::channel();
            self.queue
                .try_send(Pending { events, done })
                .map_err(|_| LogError::Unavailable("ingest queue is full or closed".into()))?;
            acked.await.map_err(|_| LogError::Unavailable("event writer stopped".into()))?
        }
        .boxed()
    }
}

async fn run(
    mut rx: mpsc::Receiver<Pending>,
    store: Arc<dyn EventStore>,
    config: GroupCommitConfig,
    listener: Option<CommitListener>,
) {
    let slots = Arc::new(Semaphore::new(config.max_inflight.max(1)));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot before draining is what lets groups grow under load.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut rows = first.events.len();
        let mut group = vec![first];
        while rows < config.max_rows {
            match rx.try_recv() {
                Ok(p) => {
                    rows += p.events.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let store = store.clone();
        let listener = listener.clone();
        tokio::spawn(async move {
            flush(store.as_ref(), group, listener.as_ref()).await;
            drop(slot);
        });
    }
}

async fn flush(store: &dyn EventStore, group: Vec<Pending>, listener: Option<&CommitListener>) {
    let mut events = Vec::with_capacity(group.iter().map(|p| p.events.len()).sum());
    let mut waiters = Vec::with_capacity(group.len());
    let mut sizes = Vec::with_capacity(group.len());
    for p in group {
        sizes.push(p.events.len());
        events.extend(p.events);
        waiters.push(p.done);
    }
    match write(store, &events).await {
        Ok(duplicates) => {
            for w in waiters {
                let _ = w.send(Ok(Ack));
            }
            notify(listener, Committed { events, duplicates });
        }
        Err(StoreError::Unavailable(reason)) => {
            tracing::warn!(%reason, rows = events.len(), "event store unavailable; requests will be retried by clients");
            for w in waiters {
                let _ = w.send(Err(LogError::Unavailable(reason.clone())));
            }
        }
        Err(StoreError::Failed(reason)) if waiters.len() > 1 => {
            tracing::warn!(%reason, requests = waiters.len(), "group write failed; writing its requests one by one");
            let mut rest = events.into_iter();
            for (w, n) in waiters.into_iter().zip(sizes) {
                let own: Vec<Event> = rest.by_ref().take(n).collect();
                match write(store, &own).await {
                    Ok(duplicates) => {
                        let _ = w.send(Ok(Ack));
                        notify(listener, Committed { events: own, duplicates });
                    }
                    Err(e) => {
                        let _ = w.send(Err(log_error(e)));
                    }
                }
            }
        }
        Err(e) => {
            for w in waiters {
                let _ = w.send(Err(log_error(e.clone())));
            }
        }
    }
}

fn log_error(e: StoreError) -> LogError {
    match e {
        StoreError::Unavailable(reason) => LogError::Unavailable(reason),
        StoreError::Failed(reason) => LogError::Failed(reason),
    }
}

/// Writes a group; returns which of its events were duplicates.
async fn write(store: &dyn EventStore, events: &[Event]) -> Result<Vec<usize>, StoreError> {
    let started = Instant::now();
    let written = store.write(events).await?;
    let new = written.new;
    ::metrics::histogram!(names::FLUSH_DURATION).record(started.elapsed().as_secs_f64());
    ::metrics::histogram!(names::BATCH_ROWS).record(events.len() as f64);
    ::metrics::counter!(names::EVENTS_TOTAL, "outcome" => "accepted").increment(new);
    ::metrics::counter!(names::EVENTS_TOTAL, "outcome" => "duplicate")
        .increment(events.len() as u64 - new.min(events.len() as u64));
    Ok(written.duplicates)
}

fn notify(listener: Option<&CommitListener>, group: Committed) {
    if let Some(l) = listener
        && l.try_send(group).is_err()
    {
        ::metrics::counter!(names::VALIDATION_DROPPED_TOTAL).increment(1);
    }
}
