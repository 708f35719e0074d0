//! `subscription.termination_alert`, as Lago's clock sends it: for each active subscription whose `ending_at` falls
//! (as a UTC date) a configured number of days from today (Lago's `LAGO_SUBSCRIPTION_TERMINATION_ALERT_SENT_AT_DAYS`,
//! default 15 and 45), one alert that day. Each (subscription, day) is claimed in the transaction that queues its
//! webhooks, so several workers or repeated looks send it once.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::WebhookType;
use crate::Result;

/// Queues the alerts due at `now`; returns how many subscriptions were alerted.
pub async fn alert_due(pool: &PgPool, now: DateTime<Utc>, days_before: &[u32]) -> Result<usize> {
    if days_before.is_empty() {
        return Ok(0);
    }
    let dates: Vec<chrono::NaiveDate> =
        days_before.iter().map(|d| (now + Duration::days(i64::from(*d))).date_naive()).collect();
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "WITH due AS (
             SELECT id, organization_id FROM subscriptions
             WHERE status = 'active' AND ending_at IS NOT NULL
               AND (ending_at AT TIME ZONE 'UTC')::date = ANY($1::date[])),
         claimed AS (
             INSERT INTO subscription_termination_alerts (subscription_id, day)
             SELECT id, $2 FROM due ON CONFLICT DO NOTHING RETURNING subscription_id)
         SELECT d.organization_id, d.id FROM due d JOIN claimed c ON c.subscription_id = d.id ORDER BY 1, 2",
    )
    .bind(&dates)
    .bind(now.date_naive())
    .fetch_all(&mut *tx)
    .await?;
    super::enqueue(&mut tx, WebhookType::SubscriptionTerminationAlert, &due).await?;
    tx.commit().await?;
    Ok(due.len())
}
