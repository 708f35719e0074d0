//! Subscriptions in Postgres, and the status changes that time brings. There is no billing clock yet, so those
//! changes are applied when subscriptions are read or written (`refresh`): a pending subscription whose day has come
//! (in its customer's timezone) becomes active, a downgrade replaces its previous subscription when the period ends,
//! and an active one past its `ending_at` is terminated. Each is a single UPDATE, so a crash leaves either the old or
//! the new state.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::sql;
use crate::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Subscription {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub plan_id: Uuid,
    pub external_id: String,
    pub name: Option<String>,
    pub status: String,
    pub billing_time: String,
    pub subscription_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ending_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub previous_subscription_id: Option<Uuid>,
    pub activates_at: Option<DateTime<Utc>>,
    pub on_termination_credit_note: Option<String>,
    pub on_termination_invoice: String,
    pub created_at: DateTime<Utc>,
    // Joined for rendering.
    pub external_customer_id: String,
    pub timezone: String,
    pub plan_code: String,
    pub plan_amount_cents: i64,
    pub plan_amount_currency: String,
    pub plan_interval: String,
    pub plan_bill_charges_monthly: Option<bool>,
    pub plan_trial_period: Option<rust_decimal::Decimal>,
    pub previous_plan_code: Option<String>,
    pub next_plan_code: Option<String>,
    pub next_activates_at: Option<DateTime<Utc>>,
}

const SELECT: &str =
    "SELECT s.id, s.organization_id, s.customer_id, s.plan_id, s.external_id, s.name, s.status, s.billing_time,
        s.subscription_at, s.started_at, s.ending_at, s.terminated_at, s.canceled_at, s.previous_subscription_id,
        s.activates_at, s.on_termination_credit_note, s.on_termination_invoice, s.created_at,
        c.external_id AS external_customer_id,
        coalesce(c.timezone, o.timezone) AS timezone, p.code AS plan_code, p.amount_cents AS plan_amount_cents,
        p.amount_currency AS plan_amount_currency, p.interval AS plan_interval,
        p.bill_charges_monthly AS plan_bill_charges_monthly, p.trial_period AS plan_trial_period,
        pp.code AS previous_plan_code,
        np.code AS next_plan_code, n.activates_at AS next_activates_at
    FROM subscriptions s
    JOIN customers c ON c.id = s.customer_id
    JOIN organizations o ON o.id = s.organization_id
    JOIN plans p ON p.id = s.plan_id
    LEFT JOIN subscriptions ps ON ps.id = s.previous_subscription_id
    LEFT JOIN plans pp ON pp.id = ps.plan_id
    LEFT JOIN subscriptions n ON n.previous_subscription_id = s.id AND n.status = 'pending'
    LEFT JOIN plans np ON np.id = n.plan_id";

/// Applies the status changes that are due for the organization (see the module doc).
pub async fn refresh(conn: &mut PgConnection, org: Uuid) -> Result<()> {
    use crate::webhooks::WebhookType::{SubscriptionStarted, SubscriptionTerminated};
    // Downgrades whose period ended: the previous subscription ends, then the next one starts, at the boundary
    // (two statements, so the one-live-subscription index never sees both active).
    let mut terminated: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE subscriptions s SET status = 'terminated', terminated_at = n.activates_at, updated_at = now()
         FROM subscriptions n
         WHERE s.organization_id = $1 AND s.status = 'active' AND n.organization_id = $1
         AND n.previous_subscription_id = s.id AND n.status = 'pending' AND n.activates_at <= now()
         RETURNING s.id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    let mut started: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE subscriptions SET status = 'active', started_at = activates_at, updated_at = now()
         WHERE organization_id = $1 AND status = 'pending' AND activates_at IS NOT NULL AND activates_at <= now()
         RETURNING id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    // Pending subscriptions whose day has come in the customer's timezone.
    let by_day: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE subscriptions s SET status = 'active', started_at = s.subscription_at, updated_at = now()
         FROM customers c, organizations o
         WHERE s.organization_id = $1 AND s.status = 'pending' AND s.activates_at IS NULL
         AND c.id = s.customer_id AND o.id = s.organization_id
         AND (s.subscription_at AT TIME ZONE coalesce(c.timezone, o.timezone))::date
             <= (now() AT TIME ZONE coalesce(c.timezone, o.timezone))::date
         RETURNING s.id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    started.extend(by_day);
    // Active subscriptions past their end date, and the downgrades that were waiting for them.
    let ended: Vec<Uuid> = sqlx::query_scalar(
        "WITH ended AS (
             UPDATE subscriptions SET status = 'terminated', terminated_at = ending_at, updated_at = now()
             WHERE organization_id = $1 AND status = 'active' AND ending_at IS NOT NULL AND ending_at <= now()
             RETURNING id),
         canceled AS (
             UPDATE subscriptions s SET status = 'canceled', canceled_at = now(), updated_at = now()
             FROM ended WHERE s.organization_id = $1 AND s.previous_subscription_id = ended.id
             AND s.status = 'pending')
         SELECT id FROM ended",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    terminated.extend(ended);
    let pairs = |ids: &[Uuid]| ids.iter().map(|id| (org, *id)).collect::<Vec<_>>();
    crate::webhooks::enqueue(conn, SubscriptionTerminated, &pairs(&terminated)).await?;
    crate::webhooks::enqueue(conn, SubscriptionStarted, &pairs(&started)).await
}

/// What a billing run at `now` looks at, in every organization: active subscriptions that started before `now`,
/// and subscriptions terminated in the last week whose final invoice is missing (a termination whose invoice was
/// interrupted, a downgrade or `ending_at` reached).
pub async fn billable(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Subscription>> {
    Ok(sqlx::query_as(sql(format!(
        "{SELECT} WHERE (s.status = 'active' AND coalesce(s.started_at, s.subscription_at) < $1)
            OR (s.status = 'terminated' AND s.on_termination_invoice = 'generate'
                AND s.terminated_at > $1 - interval '7 days' AND s.terminated_at <= $1
                AND NOT EXISTS (SELECT 1 FROM invoice_subscriptions i WHERE i.subscription_id = s.id
                                AND i.invoicing_reason = 'subscription_terminating'))
         ORDER BY s.organization_id, s.customer_id, s.id"
    )))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

pub async fn get(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Subscription> {
    sqlx::query_as(sql(format!("{SELECT} WHERE s.organization_id = $1 AND s.id = $2")))
        .bind(org)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(Error::NotFound("subscription"))
}

/// The subscription `external_id` in `status` (the latest one for terminated/canceled), locked when asked.
pub async fn find(
    conn: &mut PgConnection,
    org: Uuid,
    external_id: &str,
    status: &str,
    lock: bool,
) -> Result<Option<Subscription>> {
    let id: Option<Uuid> = sqlx::query_scalar(sql(format!(
        "SELECT id FROM subscriptions WHERE organization_id = $1 AND external_id = $2 AND status = $3
         ORDER BY terminated_at DESC NULLS FIRST, started_at DESC NULLS LAST, created_at DESC LIMIT 1 {}",
        if lock { "FOR UPDATE" } else { "" }
    )))
    .bind(org)
    .bind(external_id)
    .bind(status)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => Ok(Some(get(conn, org, id).await?)),
        None => Ok(None),
    }
}

pub struct NewRow<'a> {
    pub customer_id: Uuid,
    pub plan_id: Uuid,
    pub external_id: &'a str,
    pub name: Option<&'a str>,
    pub status: &'a str,
    pub billing_time: &'a str,
    pub subscription_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ending_at: Option<DateTime<Utc>>,
    pub previous_subscription_id: Option<Uuid>,
    pub activates_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut PgConnection, org: Uuid, r: &NewRow<'_>) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO subscriptions (id, organization_id, customer_id, plan_id, external_id, name, status,
             billing_time, subscription_at, started_at, ending_at, previous_subscription_id, activates_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(org)
    .bind(r.customer_id)
    .bind(r.plan_id)
    .bind(r.external_id)
    .bind(r.name)
    .bind(r.status)
    .bind(r.billing_time)
    .bind(r.subscription_at)
    .bind(r.started_at)
    .bind(r.ending_at)
    .bind(r.previous_subscription_id)
    .bind(r.activates_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::Validation(schemas::error::field_error("external_id", "value_already_exist"))
        } else {
            Error::Database(e)
        }
    })?;
    if r.status == "active" {
        crate::webhooks::enqueue_one(conn, crate::webhooks::WebhookType::SubscriptionStarted, org, id).await?;
    }
    Ok(id)
}

/// Terminates an active subscription now and cancels the downgrade waiting for it.
pub async fn terminate(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<()> {
    let ended = sqlx::query(
        "UPDATE subscriptions SET status = 'terminated', terminated_at = now(), updated_at = now()
         WHERE organization_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(org)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if ended.rows_affected() == 1 {
        crate::webhooks::enqueue_one(conn, crate::webhooks::WebhookType::SubscriptionTerminated, org, id).await?;
    }
    sqlx::query(
        "UPDATE subscriptions SET status = 'canceled', canceled_at = now(), updated_at = now()
         WHERE organization_id = $1 AND previous_subscription_id = $2 AND status = 'pending'",
    )
    .bind(org)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels a pending subscription.
pub async fn cancel(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE subscriptions SET status = 'canceled', canceled_at = now(), updated_at = now()
         WHERE organization_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(org)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every live subscription of a customer (when the customer is deleted): active ones terminate, pending ones
/// are canceled.
pub async fn terminate_all_of_customer(conn: &mut PgConnection, org: Uuid, customer: Uuid) -> Result<()> {
    let terminated: Vec<Option<Uuid>> = sqlx::query_scalar(
        "UPDATE subscriptions SET
             status = CASE WHEN status = 'pending' THEN 'canceled' ELSE 'terminated' END,
             canceled_at = CASE WHEN status = 'pending' THEN now() END,
             terminated_at = CASE WHEN status = 'active' THEN now() END,
             updated_at = now()
         WHERE organization_id = $1 AND customer_id = $2 AND status IN ('pending', 'active')
         RETURNING CASE WHEN status = 'terminated' THEN id END",
    )
    .bind(org)
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?;
    let ended: Vec<(Uuid, Uuid)> = terminated.into_iter().flatten().map(|id| (org, id)).collect();
    crate::webhooks::enqueue(conn, crate::webhooks::WebhookType::SubscriptionTerminated, &ended).await
}

/// Sets the changeable fields of a subscription.
pub async fn update(
    conn: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    name: Option<&str>,
    subscription_at: DateTime<Utc>,
    ending_at: Option<DateTime<Utc>>,
    plan_id: Uuid,
) -> Result<()> {
    sqlx::query(
        "UPDATE subscriptions SET name = $3, subscription_at = $4, ending_at = $5, plan_id = $6, updated_at = now()
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .bind(name)
    .bind(subscription_at)
    .bind(ending_at)
    .bind(plan_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct ListFilter {
    pub external_customer_id: Option<String>,
    pub plan_code: Option<String>,
    pub statuses: Vec<String>,
    /// The plan's currency.
    pub currency: Option<String>,
}

pub async fn list(
    conn: &mut PgConnection,
    org: Uuid,
    filter: &ListFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Subscription>, i64)> {
    let condition = "s.organization_id = $1 AND ($2::text IS NULL OR c.external_id = $2)
        AND ($3::text IS NULL OR p.code = $3) AND s.status = ANY($4) AND ($5::text IS NULL OR p.amount_currency = $5)";
    let total: i64 = sqlx::query_scalar(sql(format!(
        "SELECT count(*) FROM subscriptions s JOIN customers c ON c.id = s.customer_id
         JOIN plans p ON p.id = s.plan_id WHERE {condition}"
    )))
    .bind(org)
    .bind(&filter.external_customer_id)
    .bind(&filter.plan_code)
    .bind(&filter.statuses)
    .bind(&filter.currency)
    .fetch_one(&mut *conn)
    .await?;
    let rows =
        sqlx::query_as(sql(format!("{SELECT} WHERE {condition} ORDER BY s.created_at DESC, s.id LIMIT $6 OFFSET $7")))
            .bind(org)
            .bind(&filter.external_customer_id)
            .bind(&filter.plan_code)
            .bind(&filter.statuses)
            .bind(&filter.currency)
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await?;
    Ok((rows, total))
}

/// Records what terminating the subscription will do (each option only when given).
pub async fn set_termination_options(
    conn: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    credit_note: Option<&str>,
    invoice: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE subscriptions SET on_termination_credit_note = coalesce($3, on_termination_credit_note),
             on_termination_invoice = coalesce($4, on_termination_invoice), updated_at = now()
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .bind(credit_note)
    .bind(invoice)
    .execute(conn)
    .await?;
    Ok(())
}
