//! Fees on their own (`/api/v1/fees`): every fee, with or without an invoice, and the fees without one that charges
//! paid in advance but not invoiceable create per event, with their taxes and their own payment status (Lago's
//! standalone fees).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::invoice_rows::NewFee;
use super::invoices::{FEE_COLUMNS, FeeRow, FeeTaxRow};
use super::sql;
use crate::Result;
use crate::domain::invoice_totals::{self, FeeLine};

/// A fee with what renders it outside an invoice.
#[derive(Debug, Clone)]
pub struct Fee {
    pub row: FeeRow,
    pub invoice_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub external_customer_id: Option<String>,
    pub taxes: Vec<FeeTaxRow>,
}

#[derive(sqlx::FromRow)]
struct Listed {
    invoice_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    external_customer_id: Option<String>,
    #[sqlx(flatten)]
    row: FeeRow,
    total: i64,
}

/// `GET /fees` filters, validated by the API.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub external_subscription_id: Option<String>,
    pub external_customer_id: Option<String>,
    pub currency: Option<String>,
    pub fee_type: Option<String>,
    pub billable_metric_code: Option<String>,
    pub payment_status: Option<String>,
    pub event_transaction_id: Option<String>,
    pub created_at: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub succeeded_at: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub failed_at: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub refunded_at: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

fn select(where_clause: &str) -> String {
    format!(
        "SELECT f.invoice_id, coalesce(s.customer_id, i.customer_id) AS customer_id,
                c.external_id AS external_customer_id, {FEE_COLUMNS}, count(*) OVER () AS total
         FROM fees f
         LEFT JOIN subscriptions s ON s.id = f.subscription_id
         LEFT JOIN invoices i ON i.id = f.invoice_id
         LEFT JOIN customers c ON c.id = coalesce(s.customer_id, i.customer_id)
         WHERE f.organization_id = $1 AND f.deleted_at IS NULL AND {where_clause}"
    )
}

/// A page of the organization's fees, oldest first as in Lago, and how many match in all.
pub async fn list(
    conn: &mut PgConnection,
    org: Uuid,
    f: &ListFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Fee>, i64)> {
    let text = select(
        "($2::text IS NULL OR s.external_id = $2)
         AND ($3::text IS NULL OR c.external_id = $3)
         AND ($4::text IS NULL OR f.amount_currency = upper($4))
         AND ($5::text IS NULL OR f.fee_type = $5)
         AND ($6::text IS NULL OR (f.fee_type = 'charge' AND f.item_code = $6))
         AND ($7::text IS NULL OR f.payment_status = $7)
         AND ($8::text IS NULL OR f.pay_in_advance_event_transaction_id = $8)
         AND ($9::timestamptz IS NULL OR f.created_at >= $9) AND ($10::timestamptz IS NULL OR f.created_at <= $10)
         AND ($11::timestamptz IS NULL OR f.succeeded_at >= $11)
         AND ($12::timestamptz IS NULL OR f.succeeded_at <= $12)
         AND ($13::timestamptz IS NULL OR f.failed_at >= $13) AND ($14::timestamptz IS NULL OR f.failed_at <= $14)
         AND ($15::timestamptz IS NULL OR f.refunded_at >= $15)
         AND ($16::timestamptz IS NULL OR f.refunded_at <= $16)
         ORDER BY f.created_at, f.id LIMIT $17 OFFSET $18",
    );
    // The count rides along each row; a page past the end has none, so the first row of the first page tells it.
    let query = |limit: i64, offset: i64| {
        sqlx::query_as::<_, Listed>(sql(text.clone()))
            .bind(org)
            .bind(f.external_subscription_id.clone())
            .bind(f.external_customer_id.clone())
            .bind(f.currency.clone())
            .bind(f.fee_type.clone())
            .bind(f.billable_metric_code.clone())
            .bind(f.payment_status.clone())
            .bind(f.event_transaction_id.clone())
            .bind(f.created_at.0)
            .bind(f.created_at.1)
            .bind(f.succeeded_at.0)
            .bind(f.succeeded_at.1)
            .bind(f.failed_at.0)
            .bind(f.failed_at.1)
            .bind(f.refunded_at.0)
            .bind(f.refunded_at.1)
            .bind(limit)
            .bind(offset)
    };
    let rows = query(limit, offset).fetch_all(&mut *conn).await?;
    let total = match rows.first() {
        Some(r) => r.total,
        None if offset > 0 => query(1, 0).fetch_optional(&mut *conn).await?.map_or(0, |r| r.total),
        None => 0,
    };
    Ok((with_taxes(conn, org, rows).await?, total))
}

pub async fn get(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Option<Fee>> {
    let rows: Vec<Listed> = sqlx::query_as(sql(select("f.id = $2"))).bind(org).bind(id).fetch_all(&mut *conn).await?;
    Ok(with_taxes(conn, org, rows).await?.pop())
}

async fn with_taxes(conn: &mut PgConnection, org: Uuid, rows: Vec<Listed>) -> Result<Vec<Fee>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.row.id).collect();
    let mut by_fee: std::collections::HashMap<Uuid, Vec<FeeTaxRow>> = std::collections::HashMap::new();
    for t in super::invoices::fee_taxes(conn, org, &ids).await? {
        by_fee.entry(t.fee_id).or_default().push(t);
    }
    Ok(rows
        .into_iter()
        .map(|r| Fee {
            taxes: by_fee.remove(&r.row.id).unwrap_or_default(),
            row: r.row,
            invoice_id: r.invoice_id,
            customer_id: r.customer_id,
            external_customer_id: r.external_customer_id,
        })
        .collect())
}

/// A fee without an invoice: one event of a charge paid in advance that is not invoiceable.
#[derive(Debug, Clone)]
pub struct Standalone {
    pub organization_id: Uuid,
    pub currency: String,
    pub event_transaction_id: String,
    pub fee: NewFee,
}

/// Stores standalone fees with their taxes (computed on the fee alone, as Lago taxes a fee that no invoice will),
/// and queues `fee.created` for each; an event already billed by the same charge is skipped. Returns the new ids.
pub async fn insert_standalone(conn: &mut PgConnection, fees: &[Standalone]) -> Result<Vec<Uuid>> {
    let mut created = Vec::new();
    for s in fees {
        let f = &s.fee;
        let line = FeeLine {
            amount_cents: f.amount_cents,
            plans: Vec::new(),
            billable_metric: None,
            taxes: f.taxes.iter().map(|t| invoice_totals::Tax { code: t.code.clone(), rate: t.rate }).collect(),
            precise_coupons_cents: Decimal::ZERO,
        };
        let taxes = invoice_totals::fee_taxes(&line);
        let precise_taxes: Decimal =
            f.taxes.iter().map(|t| Decimal::from(f.amount_cents) * t.rate / Decimal::ONE_HUNDRED).sum();
        let rate: Decimal = f.taxes.iter().map(|t| t.rate).sum();
        let id: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO fees (id, organization_id, invoice_id, position, subscription_id, charge_id, charge_filter_id,
                 fee_type, item_code, item_name, item_invoice_display_name, item_filter_invoice_display_name,
                 item_description, item_id, item_type, filters, grouped_by, amount_cents, precise_amount_cents,
                 amount_currency, taxes_amount_cents, taxes_precise_amount_cents, taxes_rate, units,
                 total_aggregated_units, events_count, unit_amount_cents, precise_unit_amount, invoiceable,
                 from_datetime, to_datetime, pay_in_advance, pay_in_advance_event_transaction_id)
             VALUES ($1, $2, NULL, 0, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                     $20, $21, $22, $22, $23, $24, $25, false, $26, $27, true, $28)
             ON CONFLICT (subscription_id, charge_id, pay_in_advance_event_transaction_id)
                 WHERE invoice_id IS NULL AND pay_in_advance_event_transaction_id IS NOT NULL
             DO NOTHING RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(s.organization_id)
        .bind(f.subscription_id)
        .bind(f.charge_id)
        .bind(f.charge_filter_id)
        .bind(f.fee_type)
        .bind(&f.item_code)
        .bind(&f.item_name)
        .bind(&f.item_invoice_display_name)
        .bind(&f.item_filter_invoice_display_name)
        .bind(&f.item_description)
        .bind(f.item_id)
        .bind(f.item_type)
        .bind(f.filters.as_ref().map(sqlx::types::Json))
        .bind(sqlx::types::Json(&f.grouped_by))
        .bind(f.amount_cents)
        .bind(f.precise_amount_cents)
        .bind(&s.currency)
        .bind(taxes.total_cents)
        .bind(precise_taxes)
        .bind(rate)
        .bind(f.units)
        .bind(f.events_count)
        .bind(f.unit_amount_cents)
        .bind(f.precise_unit_amount)
        .bind(f.from)
        .bind(f.to)
        .bind(&s.event_transaction_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(id) = id else { continue };
        for (code, cents) in &taxes.lines {
            let Some(tax) = f.taxes.iter().find(|t| &t.code == code) else { continue };
            sqlx::query(
                "INSERT INTO fee_taxes (id, fee_id, organization_id, tax_id, tax_code, tax_name, tax_rate, amount_cents)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::new_v4())
            .bind(id)
            .bind(s.organization_id)
            .bind(tax.id)
            .bind(&tax.code)
            .bind(&tax.name)
            .bind(tax.rate)
            .bind(*cents)
            .execute(&mut *conn)
            .await?;
        }
        crate::webhooks::enqueue_one(conn, crate::webhooks::WebhookType::FeeCreated, s.organization_id, id).await?;
        created.push(id);
    }
    Ok(created)
}

/// Why a fee cannot change.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    /// The fee is on an invoice, whose status it follows.
    Invoiced,
}

/// Locks a fee for a change only a fee without an invoice may take.
async fn lock_standalone(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<std::result::Result<(), Refused>> {
    let invoice: Option<Option<Uuid>> = sqlx::query_scalar(
        "SELECT invoice_id FROM fees WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match invoice {
        None => Err(Refused::NotFound),
        Some(Some(_)) => Err(Refused::Invoiced),
        Some(None) => Ok(()),
    })
}

/// Sets a standalone fee's payment status, with the time of the status it takes (the others cleared), as Lago.
pub async fn set_payment_status(
    conn: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    status: &str,
) -> Result<std::result::Result<(), Refused>> {
    if let Err(refused) = lock_standalone(conn, org, id).await? {
        return Ok(Err(refused));
    }
    sqlx::query(
        "UPDATE fees SET payment_status = $2,
             succeeded_at = CASE WHEN $2 = 'succeeded' THEN now() END,
             failed_at = CASE WHEN $2 = 'failed' THEN now() END,
             refunded_at = CASE WHEN $2 = 'refunded' THEN now() END,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    Ok(Ok(()))
}

/// Discards a standalone fee (it stays stored, out of every listing), as Lago.
pub async fn discard(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<std::result::Result<(), Refused>> {
    if let Err(refused) = lock_standalone(conn, org, id).await? {
        return Ok(Err(refused));
    }
    sqlx::query("UPDATE fees SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(Ok(()))
}
