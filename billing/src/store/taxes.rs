//! Taxes in Postgres, and the `applied_taxes` links of add-ons, customers, plans and charges to them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::sql;
use crate::domain::tax::TaxAttrs;
use crate::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tax {
    pub id: Uuid,
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub rate: Decimal,
    pub applied_to_organization: bool,
    pub created_at: DateTime<Utc>,
}

impl Tax {
    pub fn attrs(&self) -> TaxAttrs {
        TaxAttrs {
            name: self.name.clone(),
            code: self.code.clone(),
            description: self.description.clone(),
            rate: self.rate,
            applied_to_organization: self.applied_to_organization,
        }
    }
}

const COLUMNS: &str = "id, name, code, description, rate, applied_to_organization, created_at";

/// Whether a live object other than `except` holds `code`.
pub async fn code_taken(pool: &PgPool, org: Uuid, code: &str, except: Option<Uuid>) -> Result<bool> {
    super::code_taken(pool, super::Coded::Taxes, org, code, except).await
}

pub async fn create(pool: &PgPool, org: Uuid, a: &TaxAttrs) -> Result<Tax> {
    sqlx::query_as(sql(format!(
        "INSERT INTO taxes (id, organization_id, name, code, description, rate, applied_to_organization)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(org)
    .bind(&a.name)
    .bind(&a.code)
    .bind(&a.description)
    .bind(a.rate)
    .bind(a.applied_to_organization)
    .fetch_one(pool)
    .await
    .map_err(super::code_conflict)
}

pub async fn find(pool: &PgPool, org: Uuid, code: &str) -> Result<Option<Tax>> {
    Ok(sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM taxes WHERE organization_id = $1 AND code = $2 AND deleted_at IS NULL"
    )))
    .bind(org)
    .bind(code)
    .fetch_optional(pool)
    .await?)
}

pub async fn update(pool: &PgPool, org: Uuid, id: Uuid, a: &TaxAttrs) -> Result<Tax> {
    sqlx::query_as(sql(format!(
        "UPDATE taxes SET name = $3, code = $4, description = $5, rate = $6, applied_to_organization = $7,
             updated_at = now()
         WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(org)
    .bind(id)
    .bind(&a.name)
    .bind(&a.code)
    .bind(&a.description)
    .bind(a.rate)
    .bind(a.applied_to_organization)
    .fetch_optional(pool)
    .await
    .map_err(super::code_conflict)?
    .ok_or(Error::NotFound("tax"))
}

/// Soft-deletes the tax and drops its links (Lago destroys the applied taxes with it).
pub async fn delete(pool: &PgPool, org: Uuid, code: &str) -> Result<Tax> {
    let mut tx = pool.begin().await?;
    let tax: Tax = sqlx::query_as(sql(format!(
        "UPDATE taxes SET deleted_at = now(), updated_at = now()
         WHERE organization_id = $1 AND code = $2 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(org)
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound("tax"))?;
    sqlx::query("DELETE FROM applied_taxes WHERE organization_id = $1 AND tax_id = $2")
        .bind(org)
        .bind(tax.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(tax)
}

pub async fn list(pool: &PgPool, org: Uuid, limit: i64, offset: i64) -> Result<(Vec<Tax>, i64)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM taxes WHERE organization_id = $1 AND deleted_at IS NULL")
        .bind(org)
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM taxes WHERE organization_id = $1 AND deleted_at IS NULL
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
    )))
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// The live taxes with these codes, in the order asked; a code that names no tax is Lago's 404 `tax_not_found`.
pub async fn resolve_codes(conn: &mut PgConnection, org: Uuid, codes: &[String]) -> Result<Vec<Tax>> {
    let rows: Vec<Tax> = sqlx::query_as(sql(format!(
        "SELECT {COLUMNS} FROM taxes WHERE organization_id = $1 AND code = ANY($2) AND deleted_at IS NULL"
    )))
    .bind(org)
    .bind(codes)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(codes.len());
    for code in codes {
        let tax = rows.iter().find(|t| &t.code == code).ok_or(Error::NotFound("tax"))?;
        if !out.iter().any(|t: &Tax| t.id == tax.id) {
            out.push(tax.clone());
        }
    }
    Ok(out)
}

/// Makes the taxes applied to `owner` exactly `taxes`.
pub async fn set_applied(
    conn: &mut PgConnection,
    org: Uuid,
    owner_type: &str,
    owner: Uuid,
    taxes: &[Tax],
) -> Result<()> {
    sqlx::query("DELETE FROM applied_taxes WHERE organization_id = $1 AND owner_type = $2 AND owner_id = $3")
        .bind(org)
        .bind(owner_type)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    let ids: Vec<Uuid> = taxes.iter().map(|t| t.id).collect();
    sqlx::query(
        "INSERT INTO applied_taxes (organization_id, owner_type, owner_id, tax_id)
         SELECT $1, $2, $3, unnest($4::uuid[])",
    )
    .bind(org)
    .bind(owner_type)
    .bind(owner)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The live taxes applied to each of `owners`, ordered by code.
pub async fn applied(
    conn: &mut PgConnection,
    org: Uuid,
    owner_type: &str,
    owners: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Tax>>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        owner_id: Uuid,
        #[sqlx(flatten)]
        tax: Tax,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.owner_id, t.id, t.name, t.code, t.description, t.rate, t.applied_to_organization, t.created_at
         FROM applied_taxes a JOIN taxes t ON t.id = a.tax_id
         WHERE a.organization_id = $1 AND a.owner_type = $2 AND a.owner_id = ANY($3) AND t.deleted_at IS NULL
         ORDER BY t.code",
    )
    .bind(org)
    .bind(owner_type)
    .bind(owners)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<Uuid, Vec<Tax>> = HashMap::new();
    for r in rows {
        out.entry(r.owner_id).or_default().push(r.tax);
    }
    Ok(out)
}
