//! Billable metrics and their filters in Postgres. Deletion is soft (`deleted_at`), as in Lago: the code can be used
//! again at once, and later issues' charges and invoices keep pointing at the old row.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::billable_metric::{MetricAttrs, MetricFilter};
use crate::{Error, Result};

/// A stored metric with its live filters (keys sorted, values sorted).
#[derive(Debug, Clone)]
pub struct Metric {
    pub id: Uuid,
    pub attrs: MetricAttrs,
    pub created_at: DateTime<Utc>,
    pub filters: Vec<MetricFilter>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    code: String,
    description: Option<String>,
    aggregation_type: String,
    field_name: Option<String>,
    weighted_interval: Option<String>,
    recurring: bool,
    rounding_function: Option<String>,
    rounding_precision: Option<i32>,
    expression: Option<String>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, code, description, aggregation_type, field_name, weighted_interval, recurring, \
                       rounding_function, rounding_precision, expression, created_at";

impl Row {
    fn into_metric(self, filters: Vec<MetricFilter>) -> Metric {
        Metric {
            id: self.id,
            attrs: MetricAttrs {
                name: Some(self.name),
                code: Some(self.code),
                description: self.description,
                aggregation_type: Some(self.aggregation_type),
                field_name: self.field_name,
                weighted_interval: self.weighted_interval,
                recurring: self.recurring,
                rounding_function: self.rounding_function,
                rounding_precision: self.rounding_precision,
                expression: self.expression,
            },
            created_at: self.created_at,
            filters,
        }
    }
}

/// Whether a live object other than `except` holds `code`.
pub async fn code_taken(pool: &PgPool, org: Uuid, code: &str, except: Option<Uuid>) -> Result<bool> {
    super::code_taken(pool, super::Coded::BillableMetrics, org, code, except).await
}

pub async fn create(pool: &PgPool, org: Uuid, attrs: &MetricAttrs, filters: &[MetricFilter]) -> Result<Metric> {
    let mut tx = pool.begin().await?;
    let row: Row = sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO billable_metrics (id, organization_id, name, code, description, aggregation_type, field_name,
             weighted_interval, recurring, rounding_function, rounding_precision, expression)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(org)
    .bind(&attrs.name)
    .bind(&attrs.code)
    .bind(&attrs.description)
    .bind(&attrs.aggregation_type)
    .bind(&attrs.field_name)
    .bind(&attrs.weighted_interval)
    .bind(attrs.recurring)
    .bind(&attrs.rounding_function)
    .bind(attrs.rounding_precision)
    .bind(&attrs.expression)
    .fetch_one(&mut *tx)
    .await
    .map_err(super::code_conflict)?;
    replace_filters(&mut tx, row.id, filters).await?;
    let filters = load_filters(&mut tx, row.id).await?;
    tx.commit().await?;
    Ok(row.into_metric(filters))
}

pub async fn find(pool: &PgPool, org: Uuid, code: &str) -> Result<Option<Metric>> {
    let mut conn = pool.acquire().await?;
    find_in(&mut conn, org, code, false).await
}

pub async fn find_in(conn: &mut PgConnection, org: Uuid, code: &str, for_update: bool) -> Result<Option<Metric>> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM billable_metrics
         WHERE organization_id = $1 AND code = $2 AND deleted_at IS NULL {lock}"
    )))
    .bind(org)
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => {
            let filters = load_filters(conn, row.id).await?;
            Ok(Some(row.into_metric(filters)))
        }
        None => Ok(None),
    }
}

/// Updates the metric `code` under a row lock: `change` gets the current state and returns the new attributes and,
/// when the request sent a list, the new filters. Nothing is written when it fails.
pub async fn update<F>(pool: &PgPool, org: Uuid, code: &str, change: F) -> Result<Metric>
where
    F: FnOnce(&Metric) -> Result<(MetricAttrs, Option<Vec<MetricFilter>>)>,
{
    let mut tx = pool.begin().await?;
    let current = find_in(&mut tx, org, code, true).await?.ok_or(Error::NotFound("billable_metric"))?;
    let (attrs, filters) = change(&current)?;
    let row: Row = sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE billable_metrics SET name = $2, code = $3, description = $4, aggregation_type = $5, field_name = $6,
             weighted_interval = $7, recurring = $8, rounding_function = $9, rounding_precision = $10,
             expression = $11, updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(current.id)
    .bind(&attrs.name)
    .bind(&attrs.code)
    .bind(&attrs.description)
    .bind(&attrs.aggregation_type)
    .bind(&attrs.field_name)
    .bind(&attrs.weighted_interval)
    .bind(attrs.recurring)
    .bind(&attrs.rounding_function)
    .bind(attrs.rounding_precision)
    .bind(&attrs.expression)
    .fetch_one(&mut *tx)
    .await
    .map_err(super::code_conflict)?;
    if let Some(filters) = filters {
        replace_filters(&mut tx, row.id, &filters).await?;
    }
    let filters = load_filters(&mut tx, row.id).await?;
    tx.commit().await?;
    Ok(row.into_metric(filters))
}

/// Soft-deletes the metric and its filters; returns it as it was.
pub async fn delete(pool: &PgPool, org: Uuid, code: &str) -> Result<Metric> {
    let mut tx = pool.begin().await?;
    let metric = find_in(&mut tx, org, code, true).await?.ok_or(Error::NotFound("billable_metric"))?;
    sqlx::query("UPDATE billable_metrics SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(metric.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE billable_metric_filters SET deleted_at = now() WHERE billable_metric_id = $1 AND deleted_at IS NULL",
    )
    .bind(metric.id)
    .execute(&mut *tx)
    .await?;
    // As Lago: the charges pricing the metric go with it (plans keep their other charges).
    sqlx::query(
        "UPDATE charges SET deleted_at = now() WHERE organization_id = $1 AND billable_metric_id = $2
         AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(metric.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(metric)
}

/// One page of live metrics, newest first (Lago's order), and the count of all of them.
pub async fn list(pool: &PgPool, org: Uuid, limit: i64, offset: i64) -> Result<(Vec<Metric>, i64)> {
    let mut conn = pool.acquire().await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM billable_metrics WHERE organization_id = $1 AND deleted_at IS NULL")
            .bind(org)
            .fetch_one(&mut *conn)
            .await?;
    let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM billable_metrics
         WHERE organization_id = $1 AND deleted_at IS NULL
         ORDER BY created_at DESC, id ASC
         LIMIT $2 OFFSET $3"
    )))
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let filter_rows: Vec<(Uuid, String, Vec<String>)> = sqlx::query_as(
        r#"SELECT billable_metric_id, key, "values" FROM billable_metric_filters
           WHERE billable_metric_id = ANY($1) AND deleted_at IS NULL ORDER BY key"#,
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let metrics = rows
        .into_iter()
        .map(|row| {
            let filters = filter_rows
                .iter()
                .filter(|(id, _, _)| *id == row.id)
                .map(|(_, key, values)| sorted_filter(key.clone(), values.clone()))
                .collect();
            row.into_metric(filters)
        })
        .collect();
    Ok((metrics, total))
}

fn sorted_filter(key: String, mut values: Vec<String>) -> MetricFilter {
    values.sort();
    MetricFilter { key, values }
}

async fn load_filters(conn: &mut PgConnection, metric: Uuid) -> Result<Vec<MetricFilter>> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        r#"SELECT key, "values" FROM billable_metric_filters
           WHERE billable_metric_id = $1 AND deleted_at IS NULL ORDER BY key"#,
    )
    .bind(metric)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(k, v)| sorted_filter(k, v)).collect())
}

/// Makes the live filters exactly `filters`: kept keys are updated in place (their ids stay, for charge filters),
/// new keys are inserted, keys no longer listed are soft-deleted.
async fn replace_filters(conn: &mut PgConnection, metric: Uuid, filters: &[MetricFilter]) -> Result<()> {
    let keys: Vec<&str> = filters.iter().map(|f| f.key.as_str()).collect();
    sqlx::query(
        "UPDATE billable_metric_filters SET deleted_at = now()
         WHERE billable_metric_id = $1 AND deleted_at IS NULL AND NOT (key = ANY($2))",
    )
    .bind(metric)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    for filter in filters {
        let updated = sqlx::query(
            r#"UPDATE billable_metric_filters SET "values" = $3, updated_at = now()
               WHERE billable_metric_id = $1 AND key = $2 AND deleted_at IS NULL"#,
        )
        .bind(metric)
        .bind(&filter.key)
        .bind(&filter.values)
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                r#"INSERT INTO billable_metric_filters (id, billable_metric_id, key, "values") VALUES ($1, $2, $3, $4)"#,
            )
            .bind(Uuid::new_v4())
            .bind(metric)
            .bind(&filter.key)
            .bind(&filter.values)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
