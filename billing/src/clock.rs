//! The billing clock (the `worker` role): on each tick it bills every active subscription whose latest period
//! boundary (in its customer's timezone, else the organization's) has passed since its last invoice, and issues the
//! final invoice of every subscription terminated without one (a termination whose invoice was interrupted, a
//! downgrade or `ending_at` reached), in one billing run (`invoicer::run_due`). Each invoice is idempotent on its
//! period, so ticks may repeat, overlap or run in several processes: a period is billed once. A failed run is
//! retried whole on the next tick. Events of charges paid in advance are billed by a faster loop beside it
//! (`invoicer::in_advance::run`), and by each tick too.
//!
//! Time comes from a [`Clock`]: production uses the system time, tests set it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use aggregate::EventStore;

use crate::Result;
use crate::invoicer;
use crate::tracking::{TrackEvent, Tracker};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A time that tests set.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(t))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|g| *g).unwrap_or_else(|_| Utc::now())
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    pub invoices: usize,
    pub already_billed: usize,
    pub failed: usize,
}

/// Bills what is due at `now`: refreshes the statuses time changes, then one billing run over every organization.
pub async fn tick(pool: &PgPool, events: &dyn EventStore, tracker: &Tracker, now: DateTime<Utc>) -> Result<Tick> {
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM organizations").fetch_all(pool).await?;
    for org in &orgs {
        let mut conn = pool.acquire().await?;
        crate::store::subscriptions::refresh(&mut conn, *org).await?;
        crate::store::coupons::refresh(&mut conn, *org).await?;
    }
    finalize_drafts(pool, events, tracker, now).await?;
    let started = invoicer::issue_missing_starts(pool, events, tracker, now).await?;
    invoicer::credit_notes::issue_missing(pool, tracker, now).await?;
    let in_advance = invoicer::in_advance::drain(pool, events, tracker, now).await?;
    let report = invoicer::run_due(pool, events, tracker, now).await?;
    Ok(Tick {
        invoices: report.invoices + started + in_advance,
        already_billed: report.already_billed,
        failed: report.failed,
    })
}

/// Finalizes the drafts whose grace period is over: their issuing date (the billing day plus the grace period)
/// has come in the customer's timezone. Each is computed again first (events may have come in during the grace
/// period), then takes its number.
async fn finalize_drafts(pool: &PgPool, events: &dyn EventStore, tracker: &Tracker, now: DateTime<Utc>) -> Result<()> {
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT i.organization_id, i.id FROM invoices i
         JOIN customers c ON c.id = i.customer_id JOIN organizations o ON o.id = i.organization_id
         WHERE i.status = 'draft' AND i.issuing_date <= ($1 AT TIME ZONE coalesce(c.timezone, o.timezone))::date
         ORDER BY i.organization_id, i.created_at",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    for (org, invoice) in due {
        let mut tx = pool.begin().await?;
        invoicer::refresh::refresh(&mut tx, events, org, invoice).await?;
        crate::store::invoices::finalize(&mut tx, org, invoice).await?;
        tx.commit().await?;
        tracker.track(org, || TrackEvent::InvoiceCreated { invoice_id: invoice, invoice_type: "subscription".into() });
    }
    Ok(())
}

/// How often the worker looks for queued events paid in advance: their fees come this long after the event.
const IN_ADVANCE_EVERY: Duration = Duration::from_millis(250);

/// Runs [`tick`] every `every`, and bills queued events paid in advance every [`IN_ADVANCE_EVERY`], until the
/// process stops.
pub async fn run(pool: PgPool, events: Arc<dyn EventStore>, tracker: Tracker, clock: Arc<dyn Clock>, every: Duration) {
    let in_advance =
        invoicer::in_advance::run(pool.clone(), events.clone(), tracker.clone(), clock.clone(), IN_ADVANCE_EVERY);
    tokio::join!(ticks(pool, events, tracker, clock, every), in_advance);
}

async fn ticks(pool: PgPool, events: Arc<dyn EventStore>, tracker: Tracker, clock: Arc<dyn Clock>, every: Duration) {
    loop {
        let started = std::time::Instant::now();
        let outcome = tick(&pool, events.as_ref(), &tracker, clock.now()).await;
        ::metrics::histogram!("billstream_billing_tick_duration_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(t) => {
                ::metrics::counter!("billstream_billing_ticks_total", "outcome" => "ok").increment(1);
                // Invoices of batches that failed to write are billed again on a later tick.
                ::metrics::counter!("billstream_billing_invoices_failed_total").increment(t.failed as u64);
                if t.invoices > 0 || t.failed > 0 {
                    tracing::info!(invoices = t.invoices, failed = t.failed, "billing clock tick");
                }
            }
            Err(e) => {
                ::metrics::counter!("billstream_billing_ticks_total", "outcome" => "error").increment(1);
                tracing::warn!(error = %e, "billing clock tick failed; retrying");
            }
        }
        tokio::time::sleep(every).await;
    }
}
