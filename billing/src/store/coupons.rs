//! Coupons, their plan / billable metric targets, and applied coupons in Postgres.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::sql;
use crate::domain::coupon::{AppliedTerms, CouponAttrs};
use crate::error::is_unique_violation;
use crate::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CouponRow {
    pub id: Uuid,
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub coupon_type: String,
    pub amount_cents: Option<i64>,
    pub amount_currency: Option<String>,
    pub percentage_rate: Option<Decimal>,
    pub frequency: String,
    pub frequency_duration: Option<i32>,
    pub reusable: bool,
    pub expiration: String,
    pub expiration_at: Option<DateTime<Utc>>,
    pub status: String,
    pub terminated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl CouponRow {
    pub fn attrs(&self) -> CouponAttrs {
        CouponAttrs {
            name: self.name.clone(),
            code: self.code.clone(),
            description: self.description.clone(),
            coupon_type: self.coupon_type.clone(),
            amount_cents: self.amount_cents,
            amount_currency: self.amount_currency.clone(),
            percentage_rate: self.percentage_rate,
            frequency: self.frequency.clone(),
            frequency_duration: self.frequency_duration.map(i64::from),
            reusable: self.reusable,
            expiration: self.expiration.clone(),
            expiration_at: self.expiration_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Coupon {
    pub row: CouponRow,
    pub plan_codes: Vec<String>,
    pub billable_metric_codes: Vec<String>,
}

const COLUMNS: &str = "id, name, code, description, coupon_type, amount_cents, amount_currency, percentage_rate, \
                       frequency, frequency_duration, reusable, expiration, expiration_at, status, terminated_at, \
                       created_at, deleted_at";

/// Expired coupons stop being applicable (Lago terminates them with a daily job; Billstream when it reads them).
pub async fn refresh(conn: &mut PgConnection, org: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE coupons SET status = 'terminated', terminated_at = expiration_at, updated_at = now()
         WHERE organization_id = $1 AND status = 'active' AND expiration = 'time_limit' AND expiration_at <= now()",
    )
    .bind(org)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a live object other than `except` holds `code`.
pub async fn code_taken(conn: &mut PgConnection, org: Uuid, code: &str, except: Option<Uuid>) -> Result<bool> {
    super::code_taken(conn, super::Coded::Coupons, org, code, except).await
}

pub async fn is_applied(conn: &mut PgConnection, org: Uuid, coupon: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM applied_coupons WHERE organization_id = $1 AND coupon_id = $2)",
    )
    .bind(org)
    .bind(coupon)
    .fetch_one(conn)
    .await?)
}

pub async fn find_row(conn: &mut PgConnection, org: Uuid, code: &str, lock: bool) -> Result<Option<CouponRow>> {
    Ok(sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM coupons WHERE organization_id = $1 AND code = $2 AND deleted_at IS NULL {}",
        if lock { "FOR UPDATE" } else { "" }
    )))
    .bind(org)
    .bind(code)
    .fetch_optional(conn)
    .await?)
}

pub async fn load(conn: &mut PgConnection, org: Uuid, rows: Vec<CouponRow>) -> Result<Vec<Coupon>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let targets: Vec<(Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT t.coupon_id, p.code, m.code FROM coupon_targets t
         LEFT JOIN plans p ON p.id = t.plan_id LEFT JOIN billable_metrics m ON m.id = t.billable_metric_id
         WHERE t.organization_id = $1 AND t.coupon_id = ANY($2) ORDER BY p.code, m.code",
    )
    .bind(org)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = targets.iter().filter(|(c, _, _)| *c == row.id);
            Coupon {
                plan_codes: mine.clone().filter_map(|(_, p, _)| p.clone()).collect(),
                billable_metric_codes: mine.filter_map(|(_, _, m)| m.clone()).collect(),
                row,
            }
        })
        .collect())
}

pub async fn find(pool: &PgPool, org: Uuid, code: &str) -> Result<Option<Coupon>> {
    let mut tx = pool.begin().await?;
    refresh(&mut tx, org).await?;
    let coupon = match find_row(&mut tx, org, code, false).await? {
        Some(row) => load(&mut tx, org, vec![row]).await?.pop(),
        None => None,
    };
    tx.commit().await?;
    Ok(coupon)
}

/// Ids of the live top-level plans with these codes; `None` when one is unknown.
pub async fn plan_ids(conn: &mut PgConnection, org: Uuid, codes: &[String]) -> Result<Option<Vec<Uuid>>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM plans WHERE organization_id = $1 AND code = ANY($2) AND deleted_at IS NULL
         AND parent_id IS NULL",
    )
    .bind(org)
    .bind(codes)
    .fetch_all(conn)
    .await?;
    Ok((ids.len() == codes.len()).then_some(ids))
}

/// Ids of the live billable metrics with these codes; `None` when one is unknown.
pub async fn metric_ids(conn: &mut PgConnection, org: Uuid, codes: &[String]) -> Result<Option<Vec<Uuid>>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM billable_metrics WHERE organization_id = $1 AND code = ANY($2) AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(codes)
    .fetch_all(conn)
    .await?;
    Ok((ids.len() == codes.len()).then_some(ids))
}

/// Inserts or updates the coupon row.
pub async fn write(conn: &mut PgConnection, org: Uuid, id: Option<Uuid>, a: &CouponAttrs) -> Result<CouponRow> {
    let q = match id {
        None => format!(
            "INSERT INTO coupons (organization_id, id, name, code, description, coupon_type, amount_cents,
                 amount_currency, percentage_rate, frequency, frequency_duration, reusable, expiration, expiration_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
        ),
        Some(_) => format!(
            "UPDATE coupons SET name = $3, code = $4, description = $5, coupon_type = $6, amount_cents = $7,
                 amount_currency = $8, percentage_rate = $9, frequency = $10, frequency_duration = $11,
                 reusable = $12, expiration = $13, expiration_at = $14, updated_at = now()
             WHERE organization_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
    };
    sqlx::query_as(sql(q))
        .bind(org)
        .bind(id.unwrap_or_else(Uuid::new_v4))
        .bind(&a.name)
        .bind(&a.code)
        .bind(&a.description)
        .bind(&a.coupon_type)
        .bind(a.amount_cents)
        .bind(&a.amount_currency)
        .bind(a.percentage_rate)
        .bind(&a.frequency)
        .bind(a.frequency_duration.and_then(|d| i32::try_from(d).ok()))
        .bind(a.reusable)
        .bind(&a.expiration)
        .bind(a.expiration_at)
        .fetch_one(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Validation(schemas::error::field_error("code", "value_already_exist"))
            } else {
                Error::Database(e)
            }
        })
}

/// Makes the coupon's targets exactly these plans or metrics.
pub async fn set_targets(
    conn: &mut PgConnection,
    org: Uuid,
    coupon: Uuid,
    plans: &[Uuid],
    metrics: &[Uuid],
) -> Result<()> {
    sqlx::query("DELETE FROM coupon_targets WHERE organization_id = $1 AND coupon_id = $2")
        .bind(org)
        .bind(coupon)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO coupon_targets (id, organization_id, coupon_id, plan_id)
         SELECT gen_random_uuid(), $1, $2, unnest($3::uuid[])",
    )
    .bind(org)
    .bind(coupon)
    .bind(plans)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO coupon_targets (id, organization_id, coupon_id, billable_metric_id)
         SELECT gen_random_uuid(), $1, $2, unnest($3::uuid[])",
    )
    .bind(org)
    .bind(coupon)
    .bind(metrics)
    .execute(conn)
    .await?;
    Ok(())
}

/// Soft-deletes the coupon and terminates its active applications (as Lago).
pub async fn delete(conn: &mut PgConnection, org: Uuid, coupon: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE coupons SET deleted_at = now(), status = 'terminated', terminated_at = coalesce(terminated_at, now())
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(coupon)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE applied_coupons SET status = 'terminated', terminated_at = now()
         WHERE organization_id = $1 AND coupon_id = $2 AND status = 'active'",
    )
    .bind(org)
    .bind(coupon)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list(pool: &PgPool, org: Uuid, limit: i64, offset: i64) -> Result<(Vec<Coupon>, i64)> {
    let mut tx = pool.begin().await?;
    refresh(&mut tx, org).await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM coupons WHERE organization_id = $1 AND deleted_at IS NULL")
            .bind(org)
            .fetch_one(&mut *tx)
            .await?;
    let rows: Vec<CouponRow> = sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM coupons WHERE organization_id = $1 AND deleted_at IS NULL
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
    )))
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    let coupons = load(&mut tx, org, rows).await?;
    tx.commit().await?;
    Ok((coupons, total))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Applied {
    pub id: Uuid,
    pub coupon_id: Uuid,
    pub coupon_code: String,
    pub coupon_name: String,
    pub coupon_description: Option<String>,
    pub coupon_status: String,
    pub coupon_type: String,
    pub coupon_deleted_at: Option<DateTime<Utc>>,
    pub coupon_expiration_at: Option<DateTime<Utc>>,
    pub customer_id: Uuid,
    pub external_customer_id: String,
    pub status: String,
    pub amount_cents: Option<i64>,
    pub amount_currency: Option<String>,
    pub percentage_rate: Option<Decimal>,
    pub frequency: String,
    pub frequency_duration: Option<i32>,
    pub frequency_duration_remaining: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
}

const APPLIED: &str = "SELECT a.id, a.coupon_id, c.code AS coupon_code, c.name AS coupon_name,
        c.description AS coupon_description, c.status AS coupon_status, c.coupon_type,
        c.deleted_at AS coupon_deleted_at, c.expiration_at AS coupon_expiration_at, a.customer_id,
        cu.external_id AS external_customer_id, a.status, a.amount_cents, a.amount_currency, a.percentage_rate,
        a.frequency, a.frequency_duration, a.frequency_duration_remaining, a.created_at, a.terminated_at
    FROM applied_coupons a JOIN coupons c ON c.id = a.coupon_id JOIN customers cu ON cu.id = a.customer_id";

/// Whether the customer already had this coupon applied (for non-reusable coupons).
pub async fn applied_before(conn: &mut PgConnection, org: Uuid, coupon: Uuid, customer: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM applied_coupons WHERE organization_id = $1 AND coupon_id = $2
                        AND customer_id = $3)",
    )
    .bind(org)
    .bind(coupon)
    .bind(customer)
    .fetch_one(conn)
    .await?)
}

/// Lago's `plan_overlapping`: an active coupon of the customer already targets one of this coupon's plans or
/// metrics (directly, or a plan through its charges' metrics, or the reverse).
pub async fn overlaps(conn: &mut PgConnection, org: Uuid, coupon: Uuid, customer: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "WITH mine AS (SELECT plan_id, billable_metric_id FROM coupon_targets WHERE organization_id = $1
                       AND coupon_id = $2),
              my_plans AS (SELECT plan_id AS id FROM mine WHERE plan_id IS NOT NULL
                           UNION SELECT ch.plan_id FROM charges ch JOIN mine ON ch.billable_metric_id = mine.billable_metric_id
                           WHERE ch.organization_id = $1 AND ch.deleted_at IS NULL),
              my_metrics AS (SELECT billable_metric_id AS id FROM mine WHERE billable_metric_id IS NOT NULL
                             UNION SELECT ch.billable_metric_id FROM charges ch JOIN mine ON ch.plan_id = mine.plan_id
                             WHERE ch.organization_id = $1 AND ch.deleted_at IS NULL)
         SELECT EXISTS (
             SELECT 1 FROM applied_coupons a JOIN coupon_targets t ON t.coupon_id = a.coupon_id
             WHERE a.organization_id = $1 AND a.customer_id = $3 AND a.status = 'active'
             AND (t.plan_id IN (SELECT id FROM my_plans) OR t.billable_metric_id IN (SELECT id FROM my_metrics)))",
    )
    .bind(org)
    .bind(coupon)
    .bind(customer)
    .fetch_one(conn)
    .await?)
}

pub async fn apply(
    conn: &mut PgConnection,
    org: Uuid,
    coupon: Uuid,
    customer: Uuid,
    t: &AppliedTerms,
) -> Result<Applied> {
    let id = Uuid::new_v4();
    let duration = t.frequency_duration.and_then(|d| i32::try_from(d).ok());
    sqlx::query(
        "INSERT INTO applied_coupons (id, organization_id, coupon_id, customer_id, amount_cents, amount_currency,
             percentage_rate, frequency, frequency_duration, frequency_duration_remaining)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(id)
    .bind(org)
    .bind(coupon)
    .bind(customer)
    .bind(t.amount_cents)
    .bind(&t.amount_currency)
    .bind(t.percentage_rate)
    .bind(&t.frequency)
    .bind(duration)
    .execute(&mut *conn)
    .await?;
    get_applied(conn, org, id).await?.ok_or(Error::NotFound("applied_coupon"))
}

pub async fn get_applied(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Option<Applied>> {
    Ok(sqlx::query_as(sql(format!("{APPLIED} WHERE a.organization_id = $1 AND a.id = $2")))
        .bind(org)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn terminate_applied(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE applied_coupons SET status = 'terminated', terminated_at = coalesce(terminated_at, now())
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct AppliedFilter {
    pub status: Option<String>,
    pub external_customer_id: Option<String>,
    pub coupon_codes: Vec<String>,
}

pub async fn list_applied(
    conn: &mut PgConnection,
    org: Uuid,
    f: &AppliedFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Applied>, i64)> {
    let condition = "a.organization_id = $1 AND ($2::text IS NULL OR a.status = $2)
        AND ($3::text IS NULL OR cu.external_id = $3) AND (cardinality($4::text[]) = 0 OR c.code = ANY($4))";
    let total: i64 = sqlx::query_scalar(sql(format!(
        "SELECT count(*) FROM applied_coupons a JOIN coupons c ON c.id = a.coupon_id
         JOIN customers cu ON cu.id = a.customer_id WHERE {condition}"
    )))
    .bind(org)
    .bind(&f.status)
    .bind(&f.external_customer_id)
    .bind(&f.coupon_codes)
    .fetch_one(&mut *conn)
    .await?;
    let rows =
        sqlx::query_as(sql(format!("{APPLIED} WHERE {condition} ORDER BY a.created_at DESC, a.id LIMIT $5 OFFSET $6")))
            .bind(org)
            .bind(&f.status)
            .bind(&f.external_customer_id)
            .bind(&f.coupon_codes)
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await?;
    Ok((rows, total))
}

/// Terminates a customer's active applied coupons (when the customer is deleted, as Lago).
pub async fn terminate_all_of_customer(conn: &mut PgConnection, org: Uuid, customer: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE applied_coupons SET status = 'terminated', terminated_at = now()
         WHERE organization_id = $1 AND customer_id = $2 AND status = 'active'",
    )
    .bind(org)
    .bind(customer)
    .execute(conn)
    .await?;
    Ok(())
}
