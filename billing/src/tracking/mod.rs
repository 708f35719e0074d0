//! Product usage tracking (opt-out), as Lago's "Tracking & Analytics" page describes it: a minimal activation flow
//! (`organization_registered`, `plan_created`, `invoice_created`, ...) sent to Segment's batch API so Billstream's
//! makers see which features are used. Never an amount, a price, a tax, a customer's name or email, or metadata
//! ([`event`]).
//!
//! Off the request path: [`Tracker::track`] builds one small message and pushes it on a bounded in-memory queue
//! (the oldest is dropped, and counted, when full); a background task sends the queue every flush interval, or at
//! once when a batch is full. A slow or unreachable endpoint delays nothing but that task. With tracking off
//! (`LAGO_DISABLE_SEGMENT=true`, `BILLSTREAM_DISABLE_TRACKING=true`, or no write key) the tracker is empty: no
//! task runs and `track` returns before its event is even built.

pub mod event;
pub mod queue;
pub mod segment;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::Notify;
use uuid::Uuid;

pub use event::{MetricFacts, PlanFacts, TrackEvent};

use crate::metrics::{TRACKING_MESSAGES_TOTAL, TRACKING_QUEUE_DEPTH};
use queue::Bounded;
use segment::Outcome;

/// Segment's batch endpoint, the default destination.
pub const SEGMENT_BATCH_URL: &str = "https://api.segment.io/v1/batch";

/// Where and how often to send.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub write_key: String,
    pub flush_every: Duration,
    pub sender: segment::Sender,
    /// Messages kept while the endpoint is slow or away; beyond it the oldest go.
    pub queue_capacity: usize,
    /// Timeout of one batch request.
    pub timeout: Duration,
    /// Tries of one batch before it is given up (answers that cannot change, such as a bad key, are not retried).
    pub attempts: u32,
}

impl Settings {
    pub fn new(url: String, write_key: String, flush_every: Duration, hosting_type: &'static str) -> Self {
        Settings {
            url,
            write_key,
            flush_every,
            sender: segment::Sender { hosting_type, version: env!("CARGO_PKG_VERSION").to_owned() },
            queue_capacity: 10_000,
            timeout: Duration::from_secs(10),
            attempts: 3,
        }
    }
}

/// The handle API handlers and the billing clock report through; cheap to clone. Empty when tracking is off.
#[derive(Clone, Default)]
pub struct Tracker {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    settings: Settings,
    /// Messages serialized once, when tracked: the batch is assembled from them as they are.
    queue: Mutex<Bounded<Box<RawValue>>>,
    /// Woken when a batch is full, so a burst is sent before the interval ends.
    full: Notify,
    /// Held while a batch is out: a flush waits for the batch the background task is sending.
    sending: tokio::sync::Mutex<()>,
    client: reqwest::Client,
}

impl Tracker {
    /// Tracking off: nothing is built, queued or sent.
    pub fn disabled() -> Tracker {
        Tracker { inner: None }
    }

    /// Tracking on: starts the sending task on the current Tokio runtime. It stops when the last handle is dropped.
    pub fn start(settings: Settings) -> crate::Result<Tracker> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| crate::Error::Internal(format!("tracking HTTP client: {e}")))?;
        let inner = Arc::new(Inner {
            queue: Mutex::new(Bounded::new(settings.queue_capacity)),
            settings,
            full: Notify::new(),
            sending: tokio::sync::Mutex::new(()),
            client,
        });
        tokio::spawn(send_loop(Arc::downgrade(&inner)));
        Ok(Tracker { inner: Some(inner) })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Reports `event` of organization `org`. Never waits and never fails; `event` is called only when tracking is on.
    pub fn track(&self, org: Uuid, event: impl FnOnce() -> TrackEvent) {
        let Some(inner) = &self.inner else { return };
        let message = inner.settings.sender.message(org, &event(), chrono::Utc::now());
        let message = match serde_json::value::to_raw_value(&message) {
            Ok(m) if m.get().len() <= segment::MAX_MESSAGE_BYTES => m,
            _ => {
                ::metrics::counter!(TRACKING_MESSAGES_TOTAL, "outcome" => "dropped_too_large").increment(1);
                return;
            }
        };
        let (dropped, depth) = {
            let mut q = inner.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (q.push(message), q.len())
        };
        if dropped > 0 {
            ::metrics::counter!(TRACKING_MESSAGES_TOTAL, "outcome" => "dropped_queue_full").increment(dropped as u64);
        }
        ::metrics::gauge!(TRACKING_QUEUE_DEPTH).set(depth as f64);
        if depth >= segment::BATCH_MESSAGES {
            inner.full.notify_one();
        }
    }

    /// Sends everything queued now (before a short-lived command exits, or at shutdown), bounded by `within`.
    pub async fn flush(&self, within: Duration) {
        let Some(inner) = &self.inner else { return };
        if tokio::time::timeout(within, send_queued(inner)).await.is_err() {
            tracing::debug!("tracking: flush did not finish in time; the rest is dropped");
        }
    }
}

async fn send_loop(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let every = strong.settings.flush_every;
        let full = async { strong.full.notified().await };
        tokio::select! {
            () = tokio::time::sleep(every) => {},
            () = full => {},
        }
        send_queued(&strong).await;
    }
}

/// Sends the queue in batches until it is empty.
async fn send_queued(inner: &Inner) {
    let _sending = inner.sending.lock().await;
    loop {
        let batch: Vec<Box<RawValue>> = {
            let mut q = inner.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let batch = q.take(segment::BATCH_MESSAGES);
            ::metrics::gauge!(TRACKING_QUEUE_DEPTH).set(q.len() as f64);
            batch
        };
        if batch.is_empty() {
            return;
        }
        send_batch(inner, &batch).await;
    }
}

async fn send_batch(inner: &Inner, batch: &[Box<RawValue>]) {
    let s = &inner.settings;
    let body = segment::batch_body(batch, chrono::Utc::now());
    let mut attempt = 1;
    let outcome = loop {
        match segment::post(&inner.client, &s.url, &s.write_key, &body, s.timeout).await {
            Outcome::Retry(why) if attempt < s.attempts => {
                tracing::debug!(attempt, error = %why, "tracking: batch not accepted; retrying");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    let n = batch.len() as u64;
    match outcome {
        Outcome::Sent => ::metrics::counter!(TRACKING_MESSAGES_TOTAL, "outcome" => "sent").increment(n),
        Outcome::Retry(why) | Outcome::Refused(why) => {
            // Tracking is best effort: a failure is a debug line and a counter, never an operator's problem.
            tracing::debug!(error = %why, messages = n, "tracking: batch dropped");
            ::metrics::counter!(TRACKING_MESSAGES_TOTAL, "outcome" => "dropped_send_failed").increment(n);
        }
    }
}
