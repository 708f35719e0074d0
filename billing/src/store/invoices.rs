//! Invoices in Postgres: finalization (numbering), voiding, and reading an invoice whole (fees, fee taxes, invoice
//! taxes, coupon credits, billing periods) for the API. Writing a new invoice is the invoicer's, in one transaction.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::sql;
use crate::domain::invoicing::{self, Numbering};
use crate::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub sequential_id: Option<i64>,
    pub number: String,
    pub invoice_type: String,
    pub status: String,
    pub payment_status: String,
    pub currency: String,
    pub issuing_date: NaiveDate,
    pub payment_due_date: NaiveDate,
    pub net_payment_term: i32,
    pub fees_amount_cents: i64,
    pub coupons_amount_cents: i64,
    pub credit_notes_amount_cents: i64,
    pub sub_total_excluding_taxes_amount_cents: i64,
    pub taxes_amount_cents: i64,
    pub sub_total_including_taxes_amount_cents: i64,
    pub prepaid_credit_amount_cents: i64,
    pub total_amount_cents: i64,
    pub voided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, customer_id, sequential_id, number, invoice_type, status, payment_status, currency, \
    issuing_date, payment_due_date, net_payment_term, fees_amount_cents, coupons_amount_cents, \
    credit_notes_amount_cents, sub_total_excluding_taxes_amount_cents, taxes_amount_cents, \
    sub_total_including_taxes_amount_cents, prepaid_credit_amount_cents, total_amount_cents, voided_at, created_at, \
    updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeeRow {
    pub id: Uuid,
    pub subscription_id: Option<Uuid>,
    pub charge_id: Option<Uuid>,
    pub charge_filter_id: Option<Uuid>,
    pub fee_type: String,
    pub item_code: String,
    pub item_name: String,
    pub item_invoice_display_name: Option<String>,
    pub item_filter_invoice_display_name: Option<String>,
    pub item_description: Option<String>,
    pub item_id: Uuid,
    pub item_type: String,
    pub filters: Option<Json<Value>>,
    pub grouped_by: Json<Map<String, Value>>,
    pub amount_cents: i64,
    pub precise_amount_cents: Decimal,
    pub amount_currency: String,
    pub taxes_amount_cents: i64,
    pub taxes_precise_amount_cents: Decimal,
    pub taxes_rate: Decimal,
    pub precise_coupons_amount_cents: Decimal,
    pub units: Decimal,
    pub total_aggregated_units: Decimal,
    pub events_count: Option<i64>,
    pub unit_amount_cents: i64,
    pub precise_unit_amount: Decimal,
    pub pay_in_advance: bool,
    pub invoiceable: bool,
    pub from_datetime: Option<DateTime<Utc>>,
    pub to_datetime: Option<DateTime<Utc>>,
    pub payment_status: String,
    pub created_at: DateTime<Utc>,
    pub external_subscription_id: Option<String>,
    pub description: Option<String>,
    /// The event a fee of a charge paid in advance bills.
    pub pay_in_advance_event_transaction_id: Option<String>,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// The columns of [`FeeRow`], from `fees f LEFT JOIN subscriptions s ON s.id = f.subscription_id`.
pub(crate) const FEE_COLUMNS: &str = "f.id, f.subscription_id, f.charge_id, f.charge_filter_id, f.fee_type, \
    f.item_code, f.item_name, f.item_invoice_display_name, f.item_filter_invoice_display_name, f.item_description, \
    f.item_id, f.item_type, f.filters, f.grouped_by, f.amount_cents, f.precise_amount_cents, f.amount_currency, \
    f.taxes_amount_cents, f.taxes_precise_amount_cents, f.taxes_rate, f.precise_coupons_amount_cents, f.units, \
    f.total_aggregated_units, f.events_count, f.unit_amount_cents, f.precise_unit_amount, f.pay_in_advance, \
    f.invoiceable, f.from_datetime, f.to_datetime, f.payment_status, f.created_at, \
    s.external_id AS external_subscription_id, f.description, f.pay_in_advance_event_transaction_id, \
    f.succeeded_at, f.failed_at, f.refunded_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeeTaxRow {
    pub id: Uuid,
    pub fee_id: Uuid,
    pub tax_id: Option<Uuid>,
    pub tax_code: String,
    pub tax_name: String,
    pub tax_rate: Decimal,
    pub amount_cents: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvoiceTaxRow {
    pub id: Uuid,
    pub tax_id: Option<Uuid>,
    pub tax_code: String,
    pub tax_name: String,
    pub tax_description: Option<String>,
    pub tax_rate: Decimal,
    pub amount_cents: i64,
    pub fees_amount_cents: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CreditRow {
    pub id: Uuid,
    /// The applied coupon or the credit note that gave the credit.
    pub item_id: Uuid,
    /// `coupon` or `credit_note`.
    pub item_type: String,
    /// A coupon's code and name; a credit note's number and its invoice's number.
    pub item_code: String,
    pub item_name: String,
    /// Coupons apply before taxes, credit notes after.
    pub before_taxes: bool,
    pub amount_cents: i64,
    pub amount_currency: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PeriodRow {
    pub subscription_id: Uuid,
    pub external_subscription_id: String,
    pub plan_id: Uuid,
    pub invoicing_reason: String,
    pub from_datetime: Option<DateTime<Utc>>,
    pub to_datetime: Option<DateTime<Utc>>,
    pub charges_from_datetime: DateTime<Utc>,
    pub charges_to_datetime: DateTime<Utc>,
}

/// An invoice with everything the API renders.
#[derive(Debug, Clone)]
pub struct Invoice {
    pub row: InvoiceRow,
    pub fees: Vec<FeeRow>,
    pub fee_taxes: Vec<FeeTaxRow>,
    pub taxes: Vec<InvoiceTaxRow>,
    pub credits: Vec<CreditRow>,
    pub periods: Vec<PeriodRow>,
    pub metadata: Vec<MetadataRow>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MetadataRow {
    pub id: Uuid,
    pub key: String,
    pub value: String,
    pub created_at: DateTime<Utc>,
}

/// One metadata pair of an update: an `id` updates that pair, none adds one.
#[derive(Debug, Clone)]
pub struct MetadataInput {
    pub id: Option<Uuid>,
    pub key: String,
    pub value: String,
}

/// Sets a finalized or voided invoice's payment status; returns the status it had (None: no such invoice). The
/// fees follow the invoice, and a change sends `invoice.payment_status_updated`, as in Lago.
pub async fn set_payment_status(
    conn: &mut PgConnection,
    org: Uuid,
    invoice: Uuid,
    payment_status: &str,
) -> Result<Option<String>> {
    let old: Option<String> =
        sqlx::query_scalar("SELECT payment_status FROM invoices WHERE organization_id = $1 AND id = $2 FOR UPDATE")
            .bind(org)
            .bind(invoice)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(old) = old else { return Ok(None) };
    if old != payment_status {
        sqlx::query("UPDATE invoices SET payment_status = $2, updated_at = now() WHERE id = $1")
            .bind(invoice)
            .bind(payment_status)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE fees SET payment_status = $2, updated_at = now() WHERE invoice_id = $1")
            .bind(invoice)
            .bind(payment_status)
            .execute(&mut *conn)
            .await?;
        crate::webhooks::enqueue_one(conn, crate::webhooks::WebhookType::InvoicePaymentStatusUpdated, org, invoice)
            .await?;
    }
    Ok(Some(old))
}

/// Replaces an invoice's metadata as Lago does: pairs with an id are updated, pairs without one are added, and the
/// pairs left out are removed.
pub async fn set_metadata(conn: &mut PgConnection, org: Uuid, invoice: Uuid, items: &[MetadataInput]) -> Result<()> {
    let keep: Vec<Uuid> = items.iter().filter_map(|m| m.id).collect();
    sqlx::query("DELETE FROM invoice_metadata WHERE invoice_id = $1 AND NOT (id = ANY($2))")
        .bind(invoice)
        .bind(&keep)
        .execute(&mut *conn)
        .await?;
    for m in items {
        match m.id {
            Some(id) => {
                sqlx::query("UPDATE invoice_metadata SET key = $3, value = $4 WHERE invoice_id = $1 AND id = $2")
                    .bind(invoice)
                    .bind(id)
                    .bind(&m.key)
                    .bind(&m.value)
                    .execute(&mut *conn)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO invoice_metadata (id, invoice_id, organization_id, key, value) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(Uuid::new_v4())
                .bind(invoice)
                .bind(org)
                .bind(&m.key)
                .bind(&m.value)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Finalizes a draft: it takes the next number of its customer and of its organization (under a lock on each, so
/// numbers never repeat or skip) and its number. A finalized or voided invoice is left as it is.
pub async fn finalize(conn: &mut PgConnection, org: Uuid, invoice: Uuid) -> Result<()> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT customer_id, status FROM invoices WHERE organization_id = $1 AND id = $2 FOR UPDATE")
            .bind(org)
            .bind(invoice)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((customer, status)) = row else { return Err(Error::NotFound("invoice")) };
    if status != "draft" {
        return Ok(());
    }
    let settings = super::organizations::settings(conn, org, true).await?;
    // NO KEY UPDATE (as for the organization): this transaction and a concurrent one have each inserted an invoice
    // referencing the customer, holding its key-share lock; FOR UPDATE would make them wait on each other.
    let customer_seq: i64 = sqlx::query_scalar("SELECT sequential_id FROM customers WHERE id = $1 FOR NO KEY UPDATE")
        .bind(customer)
        .fetch_one(&mut *conn)
        .await?;
    let (next_customer, next_org): (i64, i64) = sqlx::query_as(
        "SELECT coalesce((SELECT max(sequential_id) FROM invoices WHERE customer_id = $2), 0) + 1,
                coalesce((SELECT max(organization_sequential_id) FROM invoices WHERE organization_id = $1), 0) + 1",
    )
    .bind(org)
    .bind(customer)
    .fetch_one(&mut *conn)
    .await?;
    let tz: chrono_tz::Tz = settings.settings.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let numbering = if settings.settings.document_numbering == "per_organization" {
        Numbering::PerOrganization {
            year_month: invoicing::year_month(Utc::now(), tz),
            organization_sequential_id: next_org,
        }
    } else {
        Numbering::PerCustomer { customer_sequential_id: customer_seq, invoice_sequential_id: next_customer }
    };
    sqlx::query(
        "UPDATE invoices SET status = 'finalized', sequential_id = $3, organization_sequential_id = $4, number = $5,
             finalized_at = now(), updated_at = now()
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(invoice)
    .bind(next_customer)
    .bind(next_org)
    .bind(invoicing::invoice_number(&settings.settings.document_number_prefix, numbering))
    .execute(&mut *conn)
    .await?;
    // Credit notes pay invoices once they are final.
    super::credit_notes::apply(conn, invoice).await?;
    crate::webhooks::invoice_finalized(conn, org, invoice).await
}

/// Voids a finalized invoice (Lago refuses to void a draft or a voided invoice).
pub async fn void(conn: &mut PgConnection, org: Uuid, invoice: Uuid) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE invoices SET status = 'voided', voided_at = now(), updated_at = now()
         WHERE organization_id = $1 AND id = $2 AND status = 'finalized'",
    )
    .bind(org)
    .bind(invoice)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 1 {
        crate::webhooks::enqueue_one(conn, crate::webhooks::WebhookType::InvoiceVoided, org, invoice).await?;
    }
    Ok(n == 1)
}

pub async fn status(conn: &mut PgConnection, org: Uuid, invoice: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT status FROM invoices WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(invoice)
        .fetch_optional(conn)
        .await?)
}

/// The taxes applied to `fees`, by tax code.
pub(crate) async fn fee_taxes(conn: &mut PgConnection, org: Uuid, fees: &[Uuid]) -> Result<Vec<FeeTaxRow>> {
    Ok(sqlx::query_as(
        "SELECT id, fee_id, tax_id, tax_code, tax_name, tax_rate, amount_cents, created_at FROM fee_taxes
         WHERE organization_id = $1 AND fee_id = ANY($2) ORDER BY tax_code",
    )
    .bind(org)
    .bind(fees)
    .fetch_all(&mut *conn)
    .await?)
}

async fn complete(conn: &mut PgConnection, org: Uuid, rows: Vec<InvoiceRow>) -> Result<Vec<Invoice>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    #[derive(sqlx::FromRow)]
    struct Fee {
        invoice_id: Uuid,
        #[sqlx(flatten)]
        fee: FeeRow,
    }
    let fees: Vec<Fee> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT f.invoice_id, {FEE_COLUMNS}
         FROM fees f LEFT JOIN subscriptions s ON s.id = f.subscription_id
         WHERE f.organization_id = $1 AND f.invoice_id = ANY($2) ORDER BY f.invoice_id, f.position"
    )))
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let fee_ids: Vec<Uuid> = fees.iter().map(|f| f.fee.id).collect();
    let fee_taxes = fee_taxes(conn, org, &fee_ids).await?;
    #[derive(sqlx::FromRow)]
    struct Tax {
        invoice_id: Uuid,
        #[sqlx(flatten)]
        tax: InvoiceTaxRow,
    }
    let taxes: Vec<Tax> = sqlx::query_as(
        "SELECT invoice_id, id, tax_id, tax_code, tax_name, tax_description, tax_rate, amount_cents,
                fees_amount_cents, created_at
         FROM invoice_taxes WHERE organization_id = $1 AND invoice_id = ANY($2) ORDER BY position",
    )
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    #[derive(sqlx::FromRow)]
    struct Credit {
        invoice_id: Uuid,
        #[sqlx(flatten)]
        credit: CreditRow,
    }
    let credits: Vec<Credit> = sqlx::query_as(
        "SELECT ic.invoice_id, ic.id, coalesce(ic.applied_coupon_id, ic.credit_note_id) AS item_id,
                CASE WHEN ic.applied_coupon_id IS NULL THEN 'credit_note' ELSE 'coupon' END AS item_type,
                coalesce(c.code, cn.number) AS item_code, coalesce(c.name, ci.number) AS item_name,
                ic.applied_coupon_id IS NOT NULL AS before_taxes, ic.amount_cents, ic.amount_currency
         FROM invoice_credits ic
         LEFT JOIN applied_coupons a ON a.id = ic.applied_coupon_id
         LEFT JOIN coupons c ON c.id = a.coupon_id
         LEFT JOIN credit_notes cn ON cn.id = ic.credit_note_id
         LEFT JOIN invoices ci ON ci.id = cn.invoice_id
         WHERE ic.organization_id = $1 AND ic.invoice_id = ANY($2) ORDER BY ic.position",
    )
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    #[derive(sqlx::FromRow)]
    struct Period {
        invoice_id: Uuid,
        #[sqlx(flatten)]
        period: PeriodRow,
    }
    let periods: Vec<Period> = sqlx::query_as(
        "SELECT i.invoice_id, i.subscription_id, s.external_id AS external_subscription_id, s.plan_id,
                i.invoicing_reason, i.from_datetime, i.to_datetime, i.charges_from_datetime, i.charges_to_datetime
         FROM invoice_subscriptions i JOIN subscriptions s ON s.id = i.subscription_id
         WHERE i.organization_id = $1 AND i.invoice_id = ANY($2) ORDER BY s.created_at",
    )
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    #[derive(sqlx::FromRow)]
    struct Meta {
        invoice_id: Uuid,
        #[sqlx(flatten)]
        meta: MetadataRow,
    }
    let metadata: Vec<Meta> = sqlx::query_as(
        "SELECT invoice_id, id, key, value, created_at FROM invoice_metadata
         WHERE organization_id = $1 AND invoice_id = ANY($2) ORDER BY created_at, id",
    )
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let fees: Vec<FeeRow> = fees.iter().filter(|f| f.invoice_id == row.id).map(|f| f.fee.clone()).collect();
            Invoice {
                fee_taxes: fee_taxes.iter().filter(|t| fees.iter().any(|f| f.id == t.fee_id)).cloned().collect(),
                fees,
                taxes: taxes.iter().filter(|t| t.invoice_id == row.id).map(|t| t.tax.clone()).collect(),
                credits: credits.iter().filter(|c| c.invoice_id == row.id).map(|c| c.credit.clone()).collect(),
                periods: periods.iter().filter(|p| p.invoice_id == row.id).map(|p| p.period.clone()).collect(),
                metadata: metadata.iter().filter(|m| m.invoice_id == row.id).map(|m| m.meta.clone()).collect(),
                row,
            }
        })
        .collect())
}

pub async fn get(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Option<Invoice>> {
    let rows: Vec<InvoiceRow> =
        sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM invoices WHERE organization_id = $1 AND id = $2")))
            .bind(org)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(complete(conn, org, rows).await?.pop())
}

/// The list's filters (Lago's `GET /invoices` query).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub external_customer_id: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    pub invoice_type: Option<String>,
    pub currency: Option<String>,
    pub issuing_date_from: Option<NaiveDate>,
    pub issuing_date_to: Option<NaiveDate>,
}

pub async fn list(pool: &PgPool, org: Uuid, f: &ListFilter, limit: i64, offset: i64) -> Result<(Vec<Invoice>, i64)> {
    #[derive(sqlx::FromRow)]
    struct Counted {
        #[sqlx(flatten)]
        row: InvoiceRow,
        total: i64,
    }
    let mut conn = pool.acquire().await?;
    let columns = COLUMNS.split(", ").map(|c| format!("i.{}", c.trim())).collect::<Vec<_>>().join(", ");
    // The count rides along each row; a page past the end has none, so the first page's first row tells it.
    let query = |limit: i64, offset: i64| {
        sqlx::query_as::<_, Counted>(sql(format!(
            "SELECT {columns}, count(*) OVER () AS total FROM invoices i WHERE i.organization_id = $1
                AND ($2::text IS NULL OR i.customer_id IN
                     (SELECT id FROM customers WHERE organization_id = $1 AND external_id = $2))
                AND ($3::text IS NULL OR i.status = $3)
                AND ($4::text IS NULL OR i.payment_status = $4)
                AND ($5::text IS NULL OR i.invoice_type = $5)
                AND ($6::text IS NULL OR i.currency = $6)
                AND ($7::date IS NULL OR i.issuing_date >= $7)
                AND ($8::date IS NULL OR i.issuing_date <= $8)
             ORDER BY i.created_at DESC, i.id DESC LIMIT $9 OFFSET $10"
        )))
        .bind(org)
        .bind(f.external_customer_id.clone())
        .bind(f.status.clone())
        .bind(f.payment_status.clone())
        .bind(f.invoice_type.clone())
        .bind(f.currency.clone())
        .bind(f.issuing_date_from)
        .bind(f.issuing_date_to)
        .bind(limit)
        .bind(offset)
    };
    let rows: Vec<Counted> = query(limit, offset).fetch_all(&mut *conn).await?;
    let count = match rows.first() {
        Some(r) => r.total,
        None if offset > 0 => query(1, 0).fetch_optional(&mut *conn).await?.map_or(0, |r| r.total),
        None => 0,
    };
    let rows = rows.into_iter().map(|r| r.row).collect();
    Ok((complete(&mut conn, org, rows).await?, count))
}
