//! Organizations and their API keys.

use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub default_currency: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A new API key: a random UUID, the format of Lago's keys.
pub fn generate_api_key() -> String {
    Uuid::new_v4().to_string()
}

/// Creates an organization with one API key (`api_key`, else a generated one); returns it with the key.
pub async fn create(pool: &PgPool, name: &str, api_key: Option<&str>) -> Result<(Organization, String)> {
    let key = api_key.map(str::to_owned).unwrap_or_else(generate_api_key);
    let mut tx = pool.begin().await?;
    let org: Organization = sqlx::query_as(
        "INSERT INTO organizations (id, name) VALUES ($1, $2)
         RETURNING id, name, timezone, default_currency, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO api_keys (id, organization_id, value) VALUES ($1, $2, $3)")
        .bind(Uuid::new_v4())
        .bind(org.id)
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((org, key))
}

/// The organization owning `key`, if any.
pub async fn find_by_api_key(pool: &PgPool, key: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT organization_id FROM api_keys WHERE value = $1")
        .bind(key)
        .fetch_optional(pool)
        .await?)
}

/// The oldest organization: the default one a fresh installation creates.
pub async fn first(pool: &PgPool) -> Result<Option<Organization>> {
    Ok(sqlx::query_as(
        "SELECT id, name, timezone, default_currency, created_at FROM organizations ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?)
}

/// Adds `key` to `org` unless some organization already has it; returns the owner of the key afterwards.
pub async fn ensure_api_key(pool: &PgPool, org: Uuid, key: &str) -> Result<Uuid> {
    sqlx::query("INSERT INTO api_keys (id, organization_id, value) VALUES ($1, $2, $3) ON CONFLICT (value) DO NOTHING")
        .bind(Uuid::new_v4())
        .bind(org)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT organization_id FROM api_keys WHERE value = $1").bind(key).fetch_one(pool).await?)
}
