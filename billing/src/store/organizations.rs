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

/// The secret of the organization's HMAC-signed webhooks.
pub async fn hmac_key(conn: &mut sqlx::PgConnection, org: Uuid) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT hmac_key FROM organizations WHERE id = $1").bind(org).fetch_one(conn).await?)
}

/// The organization's settings as `PUT /organizations` reads and writes them (catalog issue).
#[derive(Debug, Clone)]
pub struct OrganizationSettings {
    pub id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub settings: crate::domain::organization::OrgSettings,
}

/// The default prefix Lago gives a new organization: the name's first three letters and the id's last four.
const PREFIX: &str = "coalesce(document_number_prefix, upper(left(name, 3)) || '-' || upper(right(id::text, 4)))";

pub async fn settings(conn: &mut sqlx::PgConnection, org: Uuid, lock: bool) -> Result<OrganizationSettings> {
    use crate::domain::organization::TEXT_FIELDS;
    use sqlx::Row as _;
    let row = sqlx::query(super::sql(format!(
        "SELECT id, name, created_at, default_currency, timezone, document_numbering, {PREFIX} AS prefix,
                net_payment_term, invoice_grace_period, invoice_footer, document_locale,
                finalize_zero_amount_invoice, email_settings, {}
         FROM organizations WHERE id = $1 {}",
        TEXT_FIELDS.join(", "),
        // NO KEY UPDATE: serializes the writers of these settings (and invoice numbering) without blocking the
        // key-share locks that inserts referencing the organization take, which would deadlock two invoices.
        if lock { "FOR NO KEY UPDATE" } else { "" }
    )))
    .bind(org)
    .fetch_one(conn)
    .await?;
    let mut text = std::collections::BTreeMap::new();
    for field in TEXT_FIELDS {
        text.insert(field.to_owned(), row.try_get::<Option<String>, _>(field)?);
    }
    Ok(OrganizationSettings {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        settings: crate::domain::organization::OrgSettings {
            text,
            default_currency: row.try_get("default_currency")?,
            timezone: row.try_get("timezone")?,
            document_numbering: row.try_get("document_numbering")?,
            document_number_prefix: row.try_get("prefix")?,
            net_payment_term: i64::from(row.try_get::<i32, _>("net_payment_term")?),
            invoice_grace_period: i64::from(row.try_get::<i32, _>("invoice_grace_period")?),
            invoice_footer: row.try_get("invoice_footer")?,
            document_locale: row.try_get("document_locale")?,
            finalize_zero_amount_invoice: row.try_get("finalize_zero_amount_invoice")?,
            email_settings: row.try_get("email_settings")?,
        },
    })
}

pub async fn save_settings(
    conn: &mut sqlx::PgConnection,
    org: Uuid,
    s: &crate::domain::organization::OrgSettings,
) -> Result<()> {
    use crate::domain::organization::TEXT_FIELDS;
    let sets: Vec<String> = TEXT_FIELDS.iter().enumerate().map(|(i, f)| format!("{f} = ${}", i + 12)).collect();
    let q = format!(
        "UPDATE organizations SET default_currency = $2, timezone = $3, document_numbering = $4,
             document_number_prefix = $5, net_payment_term = $6, invoice_grace_period = $7, invoice_footer = $8,
             document_locale = $9, finalize_zero_amount_invoice = $10, email_settings = $11, updated_at = now(), {}
         WHERE id = $1",
        sets.join(", ")
    );
    let clamp = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    let mut query = sqlx::query(super::sql(q))
        .bind(org)
        .bind(&s.default_currency)
        .bind(&s.timezone)
        .bind(&s.document_numbering)
        .bind(&s.document_number_prefix)
        .bind(clamp(s.net_payment_term))
        .bind(clamp(s.invoice_grace_period))
        .bind(&s.invoice_footer)
        .bind(&s.document_locale)
        .bind(s.finalize_zero_amount_invoice)
        .bind(&s.email_settings);
    for field in TEXT_FIELDS {
        query = query.bind(s.get(field).map(str::to_owned));
    }
    query.execute(conn).await?;
    Ok(())
}
