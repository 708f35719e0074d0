//! The hourly `events.errors` webhook: for each organization with invalid events recorded in an hour, one webhook
//! listing their transaction ids by kind. Both event stores record invalid events in Postgres `event_errors`
//! (embedded mode when the group commit writes them, scale mode in the sink), so one query serves both modes.
//!
//! An hour is reported once it is over, plus a minute for records still on their way; each (organization, hour)
//! is claimed in `events_errors_reports` in the transaction that queues its webhook, so several workers or a
//! repeated tick report it once. Hours older than a day are not reported any more.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::WebhookType;
use crate::Result;

/// Lago's four lists, in its order.
const KINDS: [&str; 4] = ["invalid_code", "missing_aggregation_property", "missing_group_key", "invalid_filter_values"];

/// Reports every finished hour not reported yet; returns how many reports were queued.
pub async fn report_due(pool: &PgPool, now: DateTime<Utc>) -> Result<usize> {
    let Ok(end) = (now - Duration::minutes(1)).duration_trunc(Duration::hours(1)) else { return Ok(0) };
    let start = end - Duration::days(1);
    let due: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT DISTINCT e.organization_id, date_trunc('hour', e.created_at)
         FROM event_errors e
         WHERE e.created_at >= $1 AND e.created_at < $2
           AND NOT EXISTS (SELECT 1 FROM events_errors_reports r
                           WHERE r.organization_id = e.organization_id AND r.hour = date_trunc('hour', e.created_at))
         ORDER BY 2, 1",
    )
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    let mut queued = 0;
    for (org, hour) in due {
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO events_errors_reports (organization_id, hour) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(hour)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            continue;
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT kind, transaction_id FROM event_errors
             WHERE organization_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY 1, 2",
        )
        .bind(org)
        .bind(hour)
        .bind(hour + Duration::hours(1))
        .fetch_all(&mut *tx)
        .await?;
        super::enqueue_object(&mut tx, WebhookType::EventsErrors, org, &object(&rows)).await?;
        tx.commit().await?;
        queued += 1;
    }
    Ok(queued)
}

/// `{"invalid_code": [...], "missing_aggregation_property": [...], ...}` from `(kind, transaction_id)` rows.
fn object(rows: &[(String, String)]) -> Value {
    let mut lists: BTreeMap<&str, Vec<&str>> = KINDS.iter().map(|k| (*k, Vec::new())).collect();
    for (kind, tx) in rows {
        if let Some(list) = lists.get_mut(kind.as_str()) {
            list.push(tx);
        }
    }
    let mut out = serde_json::Map::new();
    for kind in KINDS {
        out.insert(kind.to_owned(), json!(lists.get(kind).cloned().unwrap_or_default()));
    }
    Value::Object(out)
}
