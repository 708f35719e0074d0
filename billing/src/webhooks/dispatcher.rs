//! The dispatcher (the `worker` role): claims due outbox rows, renders, signs and POSTs them, and records each
//! attempt. See the module above for what a crash at each step leaves behind. Requests leave through the
//! [`WebhookSender`] port; [`HttpSender`] (reqwest, rustls) is its adapter.
//!
//! Retries follow Lago: `LAGO_WEBHOOK_ATTEMPTS` attempts in all (default 3), each waiting `retries⁴ + 2` units
//! (plus up to 15 % of `retries⁴` of jitter) after a non-2xx answer, a timeout or a refused connection; the unit is
//! one second (`BILLSTREAM_WEBHOOK_BACKOFF_MS` changes it, for tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::signing::{self, SigningKey};
use crate::clock::Clock;
use crate::metrics as names;
use crate::{Error, Result};

/// How the dispatcher sends and retries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts in all before a webhook is `failed` (Lago's `LAGO_WEBHOOK_ATTEMPTS`).
    pub attempts: u32,
    /// Timeout of one POST, connection included (Lago's `LAGO_WEBHOOK_TIMEOUT_SECONDS`).
    pub timeout: Duration,
    /// The unit of the backoff (one second in Lago).
    pub backoff_unit: Duration,
    /// Pause between two looks at the outbox when it had nothing due.
    pub poll: Duration,
    /// Rows claimed (and sent concurrently) at once.
    pub batch: i64,
    /// The `iss` claim of JWT signatures (`LAGO_API_URL`).
    pub issuer: String,
    /// Pause between two looks for hours to report in `events.errors` and termination alerts to send.
    pub report_every: Duration,
    /// Days before a subscription's `ending_at` when `subscription.termination_alert` is sent.
    pub termination_alert_days: Vec<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            attempts: 3,
            timeout: Duration::from_secs(30),
            backoff_unit: Duration::from_secs(1),
            poll: Duration::from_secs(1),
            batch: 20,
            issuer: "http://localhost:3000".into(),
            report_every: Duration::from_secs(60),
            termination_alert_days: vec![15, 45],
        }
    }
}

impl Settings {
    /// The wait after the `retries`-th failed attempt.
    pub fn backoff(&self, retries: u32, jitter: f64) -> Duration {
        let r4 = f64::from(retries.min(100)).powi(4);
        self.backoff_unit.mul_f64(r4 + 2.0 + jitter.clamp(0.0, 1.0) * r4 * 0.15)
    }
}

/// One POST of a webhook: where, with which headers, which bytes.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a str,
}

/// What a POST came to: the answer's status and the start of its body, or the transport error.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub http_status: Option<u16>,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// The port webhooks leave through; [`HttpSender`] is the real adapter.
pub trait WebhookSender: Send + Sync + 'static {
    fn send<'a>(&'a self, delivery: Delivery<'a>) -> futures::future::BoxFuture<'a, Answer>;
}

/// POSTs over HTTP(S) with a timeout on the whole exchange.
pub struct HttpSender {
    client: reqwest::Client,
}

impl HttpSender {
    pub fn new(timeout: Duration) -> Result<HttpSender> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Internal(format!("webhook HTTP client: {e}")))?;
        Ok(HttpSender { client })
    }
}

impl WebhookSender for HttpSender {
    fn send<'a>(&'a self, d: Delivery<'a>) -> futures::future::BoxFuture<'a, Answer> {
        Box::pin(async move {
            let mut request = self.client.post(d.url).header("Content-Type", "application/json");
            for (name, value) in d.headers {
                request = request.header(name, value);
            }
            match request.body(d.body.to_owned()).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    Answer { http_status: Some(status), response: Some(snippet(&text)), error: None }
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    };
                    Answer { error: Some(format!("{kind}: {e}")), ..Answer::default() }
                }
            }
        })
    }
}

/// Runs the dispatcher, the `event.error` webhooks of duplicate events, the hourly `events.errors` report and the
/// termination alerts until the task is dropped.
pub async fn run(pool: PgPool, settings: Settings, clock: Arc<dyn Clock>) {
    let sender = match HttpSender::new(settings.timeout) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; nothing will be sent");
            return;
        }
    };
    let mut last_report: Option<Instant> = None;
    loop {
        if last_report.is_none_or(|t| t.elapsed() >= settings.report_every) {
            last_report = Some(Instant::now());
            if let Err(e) = super::events_errors::report_due(&pool, clock.now()).await {
                tracing::warn!(error = %e, "events.errors report failed; retrying");
            }
            let days = &settings.termination_alert_days;
            if let Err(e) = super::termination_alerts::alert_due(&pool, clock.now(), days).await {
                tracing::warn!(error = %e, "subscription termination alerts failed; retrying");
            }
            if let Err(e) = clean_up(&pool, clock.now()).await {
                tracing::warn!(error = %e, "webhook clean-up failed; retrying");
            }
            if let Err(e) = super::event_error::forget_reported(&pool).await {
                tracing::warn!(error = %e, "forgetting reported duplicates failed; retrying");
            }
        }
        // Duplicates are reported as they come, not with the hourly report.
        let more_duplicates = match super::event_error::send_due(&pool).await {
            Ok(n) => n as i64 >= super::event_error::BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "event.error webhooks failed; retrying");
                false
            }
        };
        match dispatch_once(&pool, &sender, &settings).await {
            // A full batch: there may be more due at once.
            Ok(n) if n as i64 >= settings.batch => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook dispatch failed; retrying"),
        }
        if more_duplicates {
            continue;
        }
        if let Ok(pending) =
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM webhooks WHERE status IN ('pending', 'retrying')")
                .fetch_one(&pool)
                .await
        {
            metrics::gauge!(names::WEBHOOKS_PENDING).set(pending as f64);
        }
        tokio::time::sleep(settings.poll).await;
    }
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    organization_id: Uuid,
    webhook_type: String,
    object_type: String,
    object_id: Option<Uuid>,
    body: Option<String>,
    retries: i32,
    webhook_url: String,
    signature_algo: String,
    hmac_key: String,
}

/// One attempt: the answer and when it was made.
struct Outcome {
    started_at: DateTime<Utc>,
    elapsed: Duration,
    answer: Answer,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.answer.http_status.is_some_and(|s| (200..300).contains(&s))
    }

    fn http_status(&self) -> Option<i32> {
        self.answer.http_status.map(i32::from)
    }
}

/// The start of a response body kept with an attempt.
const RESPONSE_SNIPPET: usize = 2048;

/// Claims up to `batch` due webhooks, sends them and records the outcomes, in one transaction held throughout.
/// Returns how many were claimed.
pub async fn dispatch_once(pool: &PgPool, sender: &dyn WebhookSender, settings: &Settings) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let claimed: Vec<Claimed> = sqlx::query_as(
        "SELECT w.id, w.organization_id, w.webhook_type, w.object_type, w.object_id, w.body, w.retries,
                e.webhook_url, e.signature_algo, o.hmac_key
         FROM webhooks w JOIN webhook_endpoints e ON e.id = w.webhook_endpoint_id
         JOIN organizations o ON o.id = w.organization_id
         WHERE w.status IN ('pending', 'retrying') AND w.next_attempt_at <= now()
         ORDER BY w.next_attempt_at, w.created_at LIMIT $1
         FOR UPDATE OF w SKIP LOCKED",
    )
    .bind(settings.batch)
    .fetch_all(&mut *tx)
    .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let key: Option<Arc<SigningKey>> =
        if claimed.iter().any(|c| c.signature_algo == "jwt") { Some(signing::key(pool).await?) } else { None };
    let mut sends = Vec::with_capacity(claimed.len());
    for c in &claimed {
        let body = match &c.body {
            Some(b) => b.clone(),
            None => match render_body(&mut tx, c).await {
                Ok(Some(b)) => b,
                // The object is gone (it cannot be, as nothing is deleted, but a webhook must not loop), or cannot
                // be rendered: that will not change by trying again. A database error is retried with the batch.
                Ok(None) => {
                    give_up(&mut tx, c.id, "the object of this webhook no longer exists").await?;
                    continue;
                }
                Err(Error::Internal(why)) => {
                    tracing::error!(webhook = %c.id, error = %why, "webhook object cannot be rendered");
                    give_up(&mut tx, c.id, &why).await?;
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        let signature = match c.signature_algo.as_str() {
            "hmac" => signing::hmac_signature(&c.hmac_key, body.as_bytes()),
            _ => match &key {
                Some(k) => signing::jwt_signature(k, &body, &settings.issuer)?,
                None => return Err(Error::Internal("no signing key".into())),
            },
        };
        let headers = vec![
            ("X-Lago-Signature", signature),
            ("X-Lago-Signature-Algorithm", c.signature_algo.clone()),
            ("X-Lago-Unique-Key", c.id.to_string()),
        ];
        sends.push((c, body, headers));
    }
    let outcomes = futures::future::join_all(sends.iter().map(|(c, body, headers)| {
        let delivery = Delivery { url: &c.webhook_url, headers: headers.clone(), body };
        attempt(sender, delivery)
    }))
    .await;
    for ((c, body, _), outcome) in sends.iter().zip(outcomes) {
        record(&mut tx, settings, c, body, &outcome).await?;
    }
    tx.commit().await?;
    Ok(claimed.len())
}

async fn attempt(sender: &dyn WebhookSender, delivery: Delivery<'_>) -> Outcome {
    let started_at = Utc::now();
    let started = Instant::now();
    let answer = sender.send(delivery).await;
    Outcome { started_at, elapsed: started.elapsed(), answer }
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(RESPONSE_SNIPPET) {
        Some((i, _)) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

async fn record(conn: &mut PgConnection, settings: &Settings, c: &Claimed, body: &str, o: &Outcome) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_attempts (webhook_id, attempt, http_status, response, error, started_at, duration_ms)
         SELECT $1, coalesce(max(attempt), 0) + 1, $2, $3, $4, $5, $6 FROM webhook_attempts WHERE webhook_id = $1",
    )
    .bind(c.id)
    .bind(o.http_status())
    .bind(&o.answer.response)
    .bind(&o.answer.error)
    .bind(o.started_at)
    .bind(i32::try_from(o.elapsed.as_millis()).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    let retries = u32::try_from(c.retries).unwrap_or(0);
    let status = if o.succeeded() {
        "succeeded"
    } else if retries + 1 < settings.attempts {
        "retrying"
    } else {
        "failed"
    };
    let wait = settings.backoff(retries + 1, jitter(c.id));
    sqlx::query(
        "UPDATE webhooks SET status = $2, body = $3, http_status = $4, response = coalesce($5, $6),
             retries = retries + CASE WHEN $2 = 'succeeded' THEN 0 ELSE 1 END,
             last_retried_at = CASE WHEN $2 = 'succeeded' THEN last_retried_at ELSE now() END,
             next_attempt_at = now() + make_interval(secs => $7), endpoint = $8, updated_at = now()
         WHERE id = $1",
    )
    .bind(c.id)
    .bind(status)
    .bind(body)
    .bind(o.http_status())
    .bind(&o.answer.response)
    .bind(&o.answer.error)
    .bind(wait.as_secs_f64())
    .bind(&c.webhook_url)
    .execute(&mut *conn)
    .await?;
    metrics::counter!(names::WEBHOOKS_SENT_TOTAL, "status" => status).increment(1);
    metrics::histogram!(names::WEBHOOK_DELIVERY_SECONDS).record(o.elapsed.as_secs_f64());
    if !o.succeeded() {
        tracing::info!(webhook = %c.id, org_id = %c.organization_id, webhook_type = %c.webhook_type, status,
            http_status = ?o.answer.http_status, error = ?o.answer.error, "webhook not delivered");
    }
    Ok(())
}

/// A per-webhook jitter in [0, 1) without a random number generator: spread enough for backoff.
fn jitter(id: Uuid) -> f64 {
    f64::from(id.as_bytes()[15]) / 256.0
}

async fn give_up(conn: &mut PgConnection, id: Uuid, why: &str) -> Result<()> {
    sqlx::query("UPDATE webhooks SET status = 'failed', response = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(why)
        .execute(conn)
        .await?;
    Ok(())
}

/// The envelope around the object as the API renders it now.
async fn render_body(conn: &mut PgConnection, c: &Claimed) -> Result<Option<String>> {
    let Some(id) = c.object_id else { return Ok(None) };
    let object =
        crate::api::render_webhook_object(conn, c.organization_id, &c.webhook_type, &c.object_type, id).await?;
    Ok(object.map(|o| super::envelope_of(&c.webhook_type, &c.object_type, c.organization_id, &o.to_string())))
}

/// How long a delivered or failed webhook (with its attempts) is kept after its last change: Lago's 90 days.
pub const RETENTION_DAYS: i64 = 90;

/// Deletes the delivered and failed webhooks older than [`RETENTION_DAYS`], a thousand at a time so no statement
/// holds many locks; returns how many went.
pub async fn clean_up(pool: &PgPool, now: DateTime<Utc>) -> Result<u64> {
    let before = now - chrono::Duration::days(RETENTION_DAYS);
    let mut deleted = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM webhooks WHERE id IN (
                 SELECT id FROM webhooks WHERE updated_at < $1 AND status IN ('succeeded', 'failed') LIMIT 1000)",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
        deleted += n;
        if n < 1000 {
            return Ok(deleted);
        }
    }
}

/// Sends a `failed` (or still retrying) webhook again at once, as Lago's retry does; a succeeded one is refused.
pub async fn retry(pool: &PgPool, org: Uuid, id: Uuid) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE webhooks SET status = 'pending', next_attempt_at = now(), updated_at = now()
         WHERE organization_id = $1 AND id = $2 AND status <> 'succeeded'",
    )
    .bind(org)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_lagos_polynomial() {
        let s = Settings::default();
        assert_eq!(s.backoff(1, 0.0), Duration::from_secs(3));
        assert_eq!(s.backoff(2, 0.0), Duration::from_secs(18));
        assert!(s.backoff(2, 0.99) < Duration::from_secs(21));
    }
}
