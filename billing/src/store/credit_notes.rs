//! Credit notes as stored: the note, its items and its taxes.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::sql;
use crate::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CreditNoteRow {
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub sequential_id: i32,
    pub number: String,
    pub issuing_date: NaiveDate,
    pub reason: String,
    pub description: Option<String>,
    pub credit_status: Option<String>,
    pub refund_status: Option<String>,
    pub currency: String,
    pub total_amount_cents: i64,
    pub credit_amount_cents: i64,
    pub refund_amount_cents: i64,
    pub offset_amount_cents: i64,
    pub balance_amount_cents: i64,
    pub taxes_amount_cents: i64,
    pub taxes_rate: Decimal,
    pub sub_total_excluding_taxes_amount_cents: i64,
    pub coupons_adjustment_amount_cents: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, invoice_id, sequential_id, number, issuing_date, reason, description, credit_status,
    refund_status, currency, total_amount_cents, credit_amount_cents, refund_amount_cents, offset_amount_cents,
    balance_amount_cents, taxes_amount_cents, taxes_rate, sub_total_excluding_taxes_amount_cents,
    coupons_adjustment_amount_cents, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub credit_note_id: Uuid,
    pub id: Uuid,
    pub fee_id: Uuid,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaxRow {
    pub credit_note_id: Uuid,
    pub id: Uuid,
    pub tax_id: Option<Uuid>,
    pub tax_code: String,
    pub tax_name: String,
    pub tax_description: Option<String>,
    pub tax_rate: Decimal,
    pub amount_cents: i64,
    pub base_amount_cents: i64,
    pub created_at: DateTime<Utc>,
}

/// A credit note with its items and taxes.
#[derive(Debug, Clone)]
pub struct CreditNote {
    pub row: CreditNoteRow,
    pub items: Vec<ItemRow>,
    pub taxes: Vec<TaxRow>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub external_customer_id: Option<String>,
    pub reason: Option<String>,
    pub credit_status: Option<String>,
    pub currency: Option<String>,
    pub invoice_number: Option<String>,
}

async fn complete(conn: &mut PgConnection, rows: Vec<CreditNoteRow>) -> Result<Vec<CreditNote>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT credit_note_id, id, fee_id, amount_cents FROM credit_note_items
         WHERE credit_note_id = ANY($1) ORDER BY created_at, id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let taxes: Vec<TaxRow> = sqlx::query_as(
        "SELECT credit_note_id, id, tax_id, tax_code, tax_name, tax_description, tax_rate, amount_cents,
                base_amount_cents, created_at
         FROM credit_note_taxes WHERE credit_note_id = ANY($1) ORDER BY position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| CreditNote {
            items: items.iter().filter(|i| i.credit_note_id == row.id).cloned().collect(),
            taxes: taxes.iter().filter(|t| t.credit_note_id == row.id).cloned().collect(),
            row,
        })
        .collect())
}

pub async fn get(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Option<CreditNote>> {
    let row: Option<CreditNoteRow> =
        sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM credit_notes WHERE organization_id = $1 AND id = $2")))
            .bind(org)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(complete(conn, row.into_iter().collect()).await?.pop())
}

/// A page of the organization's credit notes, newest first, and how many match.
pub async fn list(
    conn: &mut PgConnection,
    org: Uuid,
    f: &ListFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CreditNote>, i64)> {
    #[derive(sqlx::FromRow)]
    struct Counted {
        #[sqlx(flatten)]
        row: CreditNoteRow,
        total: i64,
    }
    let columns = COLUMNS.split(',').map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ");
    // The count rides along each row; a page past the end has none, so the first page's first row tells it.
    let query = |limit: i64, offset: i64| {
        sqlx::query_as::<_, Counted>(sql(format!(
            "SELECT {columns}, count(*) OVER () AS total FROM credit_notes c
             WHERE c.organization_id = $1
               AND ($2::text IS NULL OR c.customer_id IN
                    (SELECT id FROM customers WHERE organization_id = $1 AND external_id = $2))
               AND ($3::text IS NULL OR c.reason = $3)
               AND ($4::text IS NULL OR c.credit_status = $4)
               AND ($5::text IS NULL OR c.currency = $5)
               AND ($6::text IS NULL OR c.invoice_id IN
                    (SELECT id FROM invoices WHERE organization_id = $1 AND number = $6))
             ORDER BY c.created_at DESC, c.id DESC LIMIT $7 OFFSET $8"
        )))
        .bind(org)
        .bind(f.external_customer_id.clone())
        .bind(f.reason.clone())
        .bind(f.credit_status.clone())
        .bind(f.currency.clone())
        .bind(f.invoice_number.clone())
        .bind(limit)
        .bind(offset)
    };
    let rows: Vec<Counted> = query(limit, offset).fetch_all(&mut *conn).await?;
    let total = match rows.first() {
        Some(r) => r.total,
        None if offset > 0 => query(1, 0).fetch_optional(&mut *conn).await?.map_or(0, |r| r.total),
        None => 0,
    };
    Ok((complete(conn, rows.into_iter().map(|r| r.row).collect()).await?, total))
}

/// Which of `customers` have a credit note with a balance left.
pub async fn customers_with_balance(conn: &mut PgConnection, customers: &[Uuid]) -> Result<HashSet<Uuid>> {
    let rows: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT customer_id FROM credit_notes
         WHERE customer_id = ANY($1) AND balance_amount_cents > 0 AND voided_at IS NULL",
    )
    .bind(customers)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Pays finalized `invoice` with its customer's available credit notes of its currency, oldest first, after taxes:
/// one credit line per note used, the notes' balances lowered (a note at zero is `consumed`), the invoice's total
/// lowered. Returns what the notes paid.
pub async fn apply(conn: &mut PgConnection, invoice: Uuid) -> Result<i64> {
    let row: Option<(Uuid, Uuid, String, i64, String)> = sqlx::query_as(
        "SELECT organization_id, customer_id, currency, total_amount_cents, status FROM invoices WHERE id = $1 FOR UPDATE",
    )
    .bind(invoice)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((org, customer, currency, total, status)) = row else { return Ok(0) };
    if status != "finalized" || total <= 0 {
        return Ok(0);
    }
    let notes: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT id, balance_amount_cents FROM credit_notes
         WHERE customer_id = $1 AND currency = $2 AND balance_amount_cents > 0 AND voided_at IS NULL
           AND invoice_id <> $3
         ORDER BY created_at, id FOR UPDATE",
    )
    .bind(customer)
    .bind(&currency)
    .bind(invoice)
    .fetch_all(&mut *conn)
    .await?;
    let balances: Vec<i64> = notes.iter().map(|n| n.1).collect();
    let takes = crate::domain::credit_note::consume(&balances, total);
    let mut position: i32 =
        sqlx::query_scalar("SELECT coalesce(max(position) + 1, 0) FROM invoice_credits WHERE invoice_id = $1")
            .bind(invoice)
            .fetch_one(&mut *conn)
            .await?;
    let mut used = 0;
    for ((note, _), take) in notes.iter().zip(takes).filter(|(_, take)| *take > 0) {
        sqlx::query(
            "INSERT INTO invoice_credits (id, invoice_id, organization_id, credit_note_id, amount_cents, amount_currency,
                 position)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4())
        .bind(invoice)
        .bind(org)
        .bind(note)
        .bind(take)
        .bind(&currency)
        .bind(position)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE credit_notes SET balance_amount_cents = balance_amount_cents - $2,
                 credit_status = CASE WHEN balance_amount_cents - $2 = 0 THEN 'consumed' ELSE credit_status END,
                 updated_at = now()
             WHERE id = $1",
        )
        .bind(note)
        .bind(take)
        .execute(&mut *conn)
        .await?;
        position += 1;
        used += take;
    }
    if used > 0 {
        sqlx::query(
            "UPDATE invoices SET credit_notes_amount_cents = credit_notes_amount_cents + $2,
                 total_amount_cents = total_amount_cents - $2, updated_at = now()
             WHERE id = $1",
        )
        .bind(invoice)
        .bind(used)
        .execute(&mut *conn)
        .await?;
    }
    Ok(used)
}
