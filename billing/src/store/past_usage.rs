//! A subscription's past usage, read back from what was billed (Lago's `PastUsageQuery`): one period per billed
//! charges period of its invoices, newest first, with the charge fees stored on that invoice. Nothing is
//! re-aggregated, so past usage is exactly what the customer was invoiced.
//!
//! Voided invoices are left out (a voided invoice bills nothing; Lago itself still lists its period).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::Result;

/// The filters of one request; the customer and subscription are external ids.
#[derive(Debug, Clone)]
pub struct Filter {
    pub external_customer_id: String,
    pub external_subscription_id: String,
    /// Only the fees of charges on this metric.
    pub billable_metric_id: Option<Uuid>,
}

/// One billed period of the subscription, with its invoice's totals.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Period {
    pub invoice_id: Uuid,
    pub charges_from_datetime: DateTime<Utc>,
    pub charges_to_datetime: DateTime<Utc>,
    pub issuing_date: NaiveDate,
    pub currency: String,
    pub fees_amount_cents: i64,
    /// The sum of the taxes of every fee of the invoice (Lago's `taxes_amount_cents` here).
    pub fees_taxes_amount_cents: i64,
}

/// A stored charge fee of the subscription, with what the usage rendering needs of its charge and metric.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChargeFee {
    pub invoice_id: Uuid,
    pub charge_id: Uuid,
    pub charge_model: String,
    pub charge_invoice_display_name: Option<String>,
    pub billable_metric_id: Uuid,
    pub metric_name: String,
    pub metric_code: String,
    pub aggregation_type: Option<String>,
    pub charge_filter_id: Option<Uuid>,
    pub item_filter_invoice_display_name: Option<String>,
    pub filters: Option<Json<Value>>,
    pub grouped_by: Json<Map<String, Value>>,
    pub amount_cents: i64,
    pub units: Decimal,
    pub events_count: Option<i64>,
}

const PERIODS: &str = "FROM invoice_subscriptions i
    JOIN subscriptions s ON s.id = i.subscription_id
    JOIN customers c ON c.id = s.customer_id
    JOIN invoices inv ON inv.id = i.invoice_id
    WHERE i.organization_id = $1 AND c.external_id = $2 AND c.deleted_at IS NULL AND s.external_id = $3
      AND inv.status <> 'voided'";

/// The periods on this page (newest first) and how many there are in all.
pub async fn periods(pool: &PgPool, org: Uuid, f: &Filter, limit: i64, offset: i64) -> Result<(Vec<Period>, i64)> {
    let mut conn = pool.acquire().await?;
    let total: i64 = sqlx::query_scalar(super::sql(format!("SELECT count(*) {PERIODS}")))
        .bind(org)
        .bind(&f.external_customer_id)
        .bind(&f.external_subscription_id)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<Period> = sqlx::query_as(super::sql(format!(
        "SELECT i.invoice_id, i.charges_from_datetime, i.charges_to_datetime, inv.issuing_date, inv.currency,
                inv.fees_amount_cents,
                (SELECT coalesce(sum(fe.taxes_amount_cents), 0)::bigint FROM fees fe WHERE fe.invoice_id = inv.id)
                    AS fees_taxes_amount_cents
         {PERIODS}
         ORDER BY i.charges_from_datetime DESC, i.invoice_id LIMIT $4 OFFSET $5"
    )))
    .bind(org)
    .bind(&f.external_customer_id)
    .bind(&f.external_subscription_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, total))
}

/// The charge fees of the subscription on these invoices, in invoice order.
pub async fn charge_fees(pool: &PgPool, org: Uuid, f: &Filter, invoices: &[Uuid]) -> Result<Vec<ChargeFee>> {
    Ok(sqlx::query_as(
        "SELECT fe.invoice_id, fe.charge_id, ch.charge_model, ch.invoice_display_name AS charge_invoice_display_name,
                bm.id AS billable_metric_id, bm.name AS metric_name, bm.code AS metric_code, bm.aggregation_type,
                fe.charge_filter_id, fe.item_filter_invoice_display_name, fe.filters, fe.grouped_by, fe.amount_cents,
                fe.units, fe.events_count
         FROM fees fe
         JOIN subscriptions s ON s.id = fe.subscription_id
         JOIN charges ch ON ch.id = fe.charge_id
         JOIN billable_metrics bm ON bm.id = ch.billable_metric_id
         WHERE fe.organization_id = $1 AND fe.invoice_id = ANY($2) AND fe.fee_type = 'charge'
           AND s.external_id = $3 AND ($4::uuid IS NULL OR bm.id = $4)
         ORDER BY fe.invoice_id, fe.position",
    )
    .bind(org)
    .bind(invoices)
    .bind(&f.external_subscription_id)
    .bind(f.billable_metric_id)
    .fetch_all(pool)
    .await?)
}
