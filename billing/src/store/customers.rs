//! Customers in Postgres: create-or-update by `external_id` under the organization's row lock (which also numbers
//! them: `sequential_id` and `slug` as Lago), metadata, applied taxes, soft deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use super::sql;
use super::taxes::{self, Tax};
use crate::domain::customer::{CustomerAttrs, Metadata, SHIPPING_FIELDS, TEXT_FIELDS};
use crate::{Error, Result};

pub const OWNER: &str = "customer";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredMetadata {
    pub id: Uuid,
    pub key: String,
    pub value: String,
    pub display_in_invoice: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: Uuid,
    pub sequential_id: i64,
    pub slug: String,
    pub attrs: CustomerAttrs,
    /// The customer's timezone, else the organization's.
    pub applicable_timezone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Vec<StoredMetadata>,
    pub taxes: Vec<Tax>,
}

fn text_columns() -> Vec<String> {
    TEXT_FIELDS.iter().map(|f| (*f).to_owned()).chain(SHIPPING_FIELDS.iter().map(|f| format!("shipping_{f}"))).collect()
}

fn select_columns() -> String {
    let text: Vec<String> = text_columns().iter().map(|c| format!("c.{c}")).collect();
    format!(
        "c.id, c.external_id, c.sequential_id, c.slug, c.net_payment_term, c.invoice_grace_period,
         c.document_locale, c.finalize_zero_amount_invoice, c.skip_invoice_custom_sections, c.created_at,
         c.updated_at, o.timezone AS org_timezone, {}",
        text.join(", ")
    )
}

fn from_row(row: &PgRow) -> Result<Customer> {
    let mut text = BTreeMap::new();
    for column in text_columns() {
        let value: Option<String> = row.try_get(column.as_str())?;
        text.insert(column, value);
    }
    let attrs = CustomerAttrs {
        external_id: row.try_get("external_id")?,
        text,
        net_payment_term: row.try_get::<Option<i32>, _>("net_payment_term")?.map(i64::from),
        invoice_grace_period: row.try_get::<Option<i32>, _>("invoice_grace_period")?.map(i64::from),
        document_locale: row.try_get("document_locale")?,
        finalize_zero_amount_invoice: row.try_get("finalize_zero_amount_invoice")?,
        skip_invoice_custom_sections: row.try_get("skip_invoice_custom_sections")?,
    };
    let org_timezone: String = row.try_get("org_timezone")?;
    Ok(Customer {
        id: row.try_get("id")?,
        sequential_id: row.try_get("sequential_id")?,
        slug: row.try_get("slug")?,
        applicable_timezone: attrs.get("timezone").map(str::to_owned).unwrap_or(org_timezone),
        attrs,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        metadata: Vec::new(),
        taxes: Vec::new(),
    })
}

/// Adds metadata and taxes to loaded customers.
async fn complete(conn: &mut PgConnection, org: Uuid, mut customers: Vec<Customer>) -> Result<Vec<Customer>> {
    let ids: Vec<Uuid> = customers.iter().map(|c| c.id).collect();
    let mut applied = taxes::applied(conn, org, OWNER, &ids).await?;
    #[derive(sqlx::FromRow)]
    struct MetaRow {
        customer_id: Uuid,
        #[sqlx(flatten)]
        meta: StoredMetadata,
    }
    let metas: Vec<MetaRow> = sqlx::query_as(
        "SELECT customer_id, id, key, value, display_in_invoice, created_at FROM customer_metadata
         WHERE organization_id = $1 AND customer_id = ANY($2) ORDER BY created_at, key",
    )
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for c in &mut customers {
        c.taxes = applied.remove(&c.id).unwrap_or_default();
        c.metadata = metas.iter().filter(|m| m.customer_id == c.id).map(|m| m.meta.clone()).collect();
    }
    Ok(customers)
}

/// The live customer with this external id.
pub async fn find_in(conn: &mut PgConnection, org: Uuid, external_id: &str, lock: bool) -> Result<Option<Customer>> {
    let lock = if lock { "FOR UPDATE OF c" } else { "" };
    let row = sqlx::query(sql(format!(
        "SELECT {} FROM customers c JOIN organizations o ON o.id = c.organization_id
         WHERE c.organization_id = $1 AND c.external_id = $2 AND c.deleted_at IS NULL {lock}",
        select_columns()
    )))
    .bind(org)
    .bind(external_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(complete(conn, org, vec![from_row(&row)?]).await?.pop()),
        None => Ok(None),
    }
}

/// A customer by id, deleted or not: invoices still bill a customer deleted since.
pub async fn find_by_id(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Option<Customer>> {
    let row = sqlx::query(sql(format!(
        "SELECT {} FROM customers c JOIN organizations o ON o.id = c.organization_id
         WHERE c.organization_id = $1 AND c.id = $2",
        select_columns()
    )))
    .bind(org)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(complete(conn, org, vec![from_row(&row)?]).await?.pop()),
        None => Ok(None),
    }
}

/// Customers by id, deleted or not (for a billing run).
pub async fn find_by_ids(conn: &mut PgConnection, org: Uuid, ids: &[Uuid]) -> Result<Vec<Customer>> {
    let rows = sqlx::query(sql(format!(
        "SELECT {} FROM customers c JOIN organizations o ON o.id = c.organization_id
         WHERE c.organization_id = $1 AND c.id = ANY($2)",
        select_columns()
    )))
    .bind(org)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let customers = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    complete(conn, org, customers).await
}

pub async fn find(pool: &PgPool, org: Uuid, external_id: &str) -> Result<Option<Customer>> {
    let mut conn = pool.acquire().await?;
    find_in(&mut conn, org, external_id, false).await
}

/// What a create-or-update computes from the stored customer (None when new).
pub type Change = (CustomerAttrs, Option<Vec<Metadata>>);

/// Creates or updates the customer `external_id` atomically: `change` sees the current state (under lock) and
/// returns the new one; `tax_codes`, when given, replace the applied taxes. Returns the stored customer.
pub async fn upsert<F>(
    pool: &PgPool,
    org: Uuid,
    external_id: &str,
    tax_codes: Option<&[String]>,
    change: F,
) -> Result<Customer>
where
    F: FnOnce(Option<&CustomerAttrs>) -> Result<Change>,
{
    let mut tx = pool.begin().await?;
    let customer = upsert_in(&mut tx, org, external_id, tax_codes, change).await?;
    tx.commit().await?;
    Ok(customer)
}

/// `upsert` inside the caller's transaction.
pub async fn upsert_in<F>(
    tx: &mut PgConnection,
    org: Uuid,
    external_id: &str,
    tax_codes: Option<&[String]>,
    change: F,
) -> Result<Customer>
where
    F: FnOnce(Option<&CustomerAttrs>) -> Result<Change>,
{
    // One writer per organization at a time: numbering and the find-or-create stay race free.
    sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE").bind(org).execute(&mut *tx).await?;
    let current = find_in(tx, org, external_id, true).await?;
    let (attrs, metadata) = change(current.as_ref().map(|c| &c.attrs))?;
    let columns = text_columns();
    let id = match &current {
        Some(c) => {
            let sets: Vec<String> = columns.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 8)).collect();
            let q = format!(
                "UPDATE customers SET net_payment_term = $3, invoice_grace_period = $4, document_locale = $5,
                     finalize_zero_amount_invoice = $6, skip_invoice_custom_sections = $7, updated_at = now(), {}
                 WHERE organization_id = $1 AND id = $2",
                sets.join(", ")
            );
            let mut query = sqlx::query(sql(q)).bind(org).bind(c.id);
            query = bind_common(query, &attrs);
            for column in &columns {
                query = query.bind(attrs.get(column).map(str::to_owned));
            }
            query.execute(&mut *tx).await?;
            c.id
        }
        None => {
            let id = Uuid::new_v4();
            let placeholders: Vec<String> = (0..columns.len()).map(|i| format!("${}", i + 9)).collect();
            let q = format!(
                "INSERT INTO customers (organization_id, id, net_payment_term, invoice_grace_period, document_locale,
                     finalize_zero_amount_invoice, skip_invoice_custom_sections, external_id, sequential_id, slug, {})
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, n.seq,
                     coalesce(o.document_number_prefix, upper(left(o.name, 3)) || '-' || upper(right(o.id::text, 4)))
                         || '-' || lpad(n.seq::text, 3, '0'),
                     {}
                 FROM organizations o,
                     (SELECT coalesce(max(sequential_id), 0) + 1 AS seq FROM customers WHERE organization_id = $1) n
                 WHERE o.id = $1",
                columns.join(", "),
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sql(q)).bind(org).bind(id);
            query = bind_common(query, &attrs);
            query = query.bind(&attrs.external_id);
            for column in &columns {
                query = query.bind(attrs.get(column).map(str::to_owned));
            }
            query.execute(&mut *tx).await?;
            id
        }
    };
    if let Some(metadata) = metadata {
        replace_metadata(tx, org, id, &metadata).await?;
    }
    if let Some(codes) = tax_codes {
        let found = taxes::resolve_codes(tx, org, codes).await?;
        taxes::set_applied(tx, org, OWNER, id, &found).await?;
    }
    use crate::webhooks::WebhookType::{CustomerCreated, CustomerUpdated};
    crate::webhooks::enqueue_one(tx, if current.is_some() { CustomerUpdated } else { CustomerCreated }, org, id)
        .await?;
    find_in(tx, org, &attrs.external_id, false).await?.ok_or(Error::NotFound("customer"))
}

/// Gives a customer without a currency this one (its first subscription's plan currency, as Lago).
pub async fn set_currency_if_blank(conn: &mut PgConnection, org: Uuid, customer: Uuid, currency: &str) -> Result<()> {
    sqlx::query("UPDATE customers SET currency = $3 WHERE organization_id = $1 AND id = $2 AND currency IS NULL")
        .bind(org)
        .bind(customer)
        .bind(currency)
        .execute(conn)
        .await?;
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_common<'q>(query: Query<'q>, a: &CustomerAttrs) -> Query<'q> {
    query
        .bind(a.net_payment_term.and_then(|n| i32::try_from(n).ok()))
        .bind(a.invoice_grace_period.and_then(|n| i32::try_from(n).ok()))
        .bind(a.document_locale.clone())
        .bind(a.finalize_zero_amount_invoice.clone())
        .bind(a.skip_invoice_custom_sections)
}

/// Metadata become exactly `list`; an entry whose key is kept keeps its id.
async fn replace_metadata(conn: &mut PgConnection, org: Uuid, customer: Uuid, list: &[Metadata]) -> Result<()> {
    let keys: Vec<&str> = list.iter().map(|m| m.key.as_str()).collect();
    sqlx::query(
        "DELETE FROM customer_metadata WHERE organization_id = $1 AND customer_id = $2 AND NOT (key = ANY($3))",
    )
    .bind(org)
    .bind(customer)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    for m in list {
        sqlx::query(
            "INSERT INTO customer_metadata (id, organization_id, customer_id, key, value, display_in_invoice)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (customer_id, key) DO UPDATE SET value = $5, display_in_invoice = $6",
        )
        .bind(Uuid::new_v4())
        .bind(org)
        .bind(customer)
        .bind(&m.key)
        .bind(&m.value)
        .bind(m.display_in_invoice)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Soft-deletes the customer (its external id can be used again); returns it as it was.
pub async fn delete(conn: &mut PgConnection, org: Uuid, external_id: &str) -> Result<Customer> {
    let customer = find_in(conn, org, external_id, true).await?.ok_or(Error::NotFound("customer"))?;
    sqlx::query("UPDATE customers SET deleted_at = now() WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(customer.id)
        .execute(&mut *conn)
        .await?;
    Ok(customer)
}

/// Lago's customer list filters; empty lists and `None` filter nothing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Case-insensitive substring of name, firstname, lastname, legal name, external id or email.
    pub search_term: Option<String>,
    pub countries: Vec<String>,
    pub states: Vec<String>,
    pub zipcodes: Vec<String>,
    pub currencies: Vec<String>,
    pub has_tax_identification_number: Option<bool>,
    pub customer_type: Option<String>,
    pub has_customer_type: Option<bool>,
    /// Billstream has only `customer` accounts: asking for other types only matches nothing.
    pub account_types: Vec<String>,
    /// (key, value): a value must match; an empty value means the key must be absent.
    pub metadata: Vec<(String, String)>,
}

pub async fn list(
    pool: &PgPool,
    org: Uuid,
    filter: &ListFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Customer>, i64)> {
    let mut conn = pool.acquire().await?;
    // Every condition is a constant text with numbered parameters; values are always bound.
    let condition = "c.organization_id = $1 AND c.deleted_at IS NULL
        AND ($2::text IS NULL OR c.name ILIKE $2 OR c.firstname ILIKE $2 OR c.lastname ILIKE $2
             OR c.legal_name ILIKE $2 OR c.external_id ILIKE $2 OR c.email ILIKE $2)
        AND (cardinality($3::text[]) = 0 OR c.country = ANY($3))
        AND (cardinality($4::text[]) = 0 OR c.state = ANY($4))
        AND (cardinality($5::text[]) = 0 OR c.zipcode = ANY($5))
        AND (cardinality($6::text[]) = 0 OR c.currency = ANY($6))
        AND ($7::boolean IS NULL OR (c.tax_identification_number IS NOT NULL) = $7)
        AND ($8::text IS NULL OR c.customer_type = $8)
        AND ($9::boolean IS NULL OR (c.customer_type IS NOT NULL) = $9)
        AND (cardinality($10::text[]) = 0 OR 'customer' = ANY($10))
        AND NOT EXISTS (
            SELECT 1 FROM unnest($11::text[], $12::text[]) AS f(key, value)
            WHERE CASE WHEN f.value = ''
                  THEN EXISTS (SELECT 1 FROM customer_metadata m WHERE m.customer_id = c.id AND m.key = f.key)
                  ELSE NOT EXISTS (SELECT 1 FROM customer_metadata m
                                   WHERE m.customer_id = c.id AND m.key = f.key AND m.value = f.value) END)";
    // A LIKE pattern matching the term anywhere, its own `%`, `_` and `\` taken literally.
    let pattern = filter.search_term.as_ref().map(|t| {
        let escaped: String = t
            .chars()
            .flat_map(|ch| match ch {
                '%' | '_' | '\\' => vec!['\\', ch],
                _ => vec![ch],
            })
            .collect();
        format!("%{escaped}%")
    });
    let keys: Vec<&str> = filter.metadata.iter().map(|(k, _)| k.as_str()).collect();
    let values: Vec<&str> = filter.metadata.iter().map(|(_, v)| v.as_str()).collect();
    macro_rules! bind_filter {
        ($q:expr) => {
            $q.bind(org)
                .bind(&pattern)
                .bind(&filter.countries)
                .bind(&filter.states)
                .bind(&filter.zipcodes)
                .bind(&filter.currencies)
                .bind(filter.has_tax_identification_number)
                .bind(&filter.customer_type)
                .bind(filter.has_customer_type)
                .bind(&filter.account_types)
                .bind(&keys)
                .bind(&values)
        };
    }
    let total: i64 =
        bind_filter!(sqlx::query_scalar(sql(format!("SELECT count(*) FROM customers c WHERE {condition}"))))
            .fetch_one(&mut *conn)
            .await?;
    let rows = bind_filter!(sqlx::query(sql(format!(
        "SELECT {} FROM customers c JOIN organizations o ON o.id = c.organization_id
         WHERE {condition}
         ORDER BY c.created_at DESC, c.id LIMIT $13 OFFSET $14",
        select_columns()
    ))))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let customers = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok((complete(&mut conn, org, customers).await?, total))
}
