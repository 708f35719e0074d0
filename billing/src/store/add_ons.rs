//! Add-ons in Postgres with their applied taxes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::sql;
use super::taxes::{self, Tax};
use crate::domain::add_on::AddOnAttrs;
use crate::{Error, Result};

pub const OWNER: &str = "add_on";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: Uuid,
    pub name: String,
    pub invoice_display_name: Option<String>,
    pub code: String,
    pub description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AddOn {
    pub row: Row,
    pub taxes: Vec<Tax>,
}

impl AddOn {
    pub fn attrs(&self) -> AddOnAttrs {
        let r = &self.row;
        AddOnAttrs {
            name: r.name.clone(),
            invoice_display_name: r.invoice_display_name.clone(),
            code: r.code.clone(),
            description: r.description.clone(),
            amount_cents: r.amount_cents,
            amount_currency: r.amount_currency.clone(),
        }
    }
}

const COLUMNS: &str = "id, name, invoice_display_name, code, description, amount_cents, amount_currency, created_at";

/// Whether a live object other than `except` holds `code`.
pub async fn code_taken(pool: &PgPool, org: Uuid, code: &str, except: Option<Uuid>) -> Result<bool> {
    super::code_taken(pool, super::Coded::AddOns, org, code, except).await
}

/// Creates (`id` = None) or updates the add-on, and sets its taxes when `tax_codes` is given; all or nothing.
pub async fn save(
    pool: &PgPool,
    org: Uuid,
    id: Option<Uuid>,
    a: &AddOnAttrs,
    tax_codes: Option<&[String]>,
) -> Result<AddOn> {
    let mut tx = pool.begin().await?;
    let q = match id {
        None => format!(
            "INSERT INTO add_ons (organization_id, name, invoice_display_name, code, description, amount_cents,
                 amount_currency, id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ),
        Some(_) => format!(
            "UPDATE add_ons SET name = $2, invoice_display_name = $3, code = $4, description = $5, amount_cents = $6,
                 amount_currency = $7, updated_at = now()
             WHERE organization_id = $1 AND id = $8 AND deleted_at IS NULL RETURNING {COLUMNS}"
        ),
    };
    let row: Row = sqlx::query_as(sql(q))
        .bind(org)
        .bind(&a.name)
        .bind(&a.invoice_display_name)
        .bind(&a.code)
        .bind(&a.description)
        .bind(a.amount_cents)
        .bind(&a.amount_currency)
        .bind(id.unwrap_or_else(Uuid::new_v4))
        .fetch_optional(&mut *tx)
        .await
        .map_err(super::code_conflict)?
        .ok_or(Error::NotFound("add_on"))?;
    if let Some(codes) = tax_codes {
        let found = taxes::resolve_codes(&mut tx, org, codes).await?;
        taxes::set_applied(&mut tx, org, OWNER, row.id, &found).await?;
    }
    let add_on = load(&mut tx, org, vec![row]).await?.into_iter().next().ok_or(Error::NotFound("add_on"))?;
    tx.commit().await?;
    Ok(add_on)
}

async fn load(conn: &mut PgConnection, org: Uuid, rows: Vec<Row>) -> Result<Vec<AddOn>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut applied = taxes::applied(conn, org, OWNER, &ids).await?;
    Ok(rows.into_iter().map(|row| AddOn { taxes: applied.remove(&row.id).unwrap_or_default(), row }).collect())
}

pub async fn find(pool: &PgPool, org: Uuid, code: &str) -> Result<Option<AddOn>> {
    let mut conn = pool.acquire().await?;
    let row: Option<Row> = sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM add_ons WHERE organization_id = $1 AND code = $2 AND deleted_at IS NULL"
    )))
    .bind(org)
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(load(&mut conn, org, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

pub async fn delete(pool: &PgPool, org: Uuid, code: &str) -> Result<AddOn> {
    let add_on = find(pool, org, code).await?.ok_or(Error::NotFound("add_on"))?;
    sqlx::query("UPDATE add_ons SET deleted_at = now() WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL")
        .bind(org)
        .bind(add_on.row.id)
        .execute(pool)
        .await?;
    Ok(add_on)
}

pub async fn list(pool: &PgPool, org: Uuid, limit: i64, offset: i64) -> Result<(Vec<AddOn>, i64)> {
    let mut conn = pool.acquire().await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM add_ons WHERE organization_id = $1 AND deleted_at IS NULL")
            .bind(org)
            .fetch_one(&mut *conn)
            .await?;
    let rows: Vec<Row> = sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM add_ons WHERE organization_id = $1 AND deleted_at IS NULL
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
    )))
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((load(&mut conn, org, rows).await?, total))
}
