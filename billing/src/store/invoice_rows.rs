//! Writing a new invoice's rows: the invoice, its fees with their taxes, its tax lines and coupon credits, from the
//! domain's [`Computed`] money. The caller owns the transaction, so an invoice is stored whole or not at all, and
//! whatever else must change with it (billing periods, coupon state, numbering) commits in the same one.
//!
//! The invoice is written as a draft with its draft number; `invoices::finalize` numbers it when it is final.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::taxes::Tax;
use crate::Result;
use crate::domain::invoicing::Computed;

/// The invoice row.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub invoice_type: &'static str,
    pub currency: String,
    pub number: String,
    pub issuing_date: NaiveDate,
    pub payment_due_date: NaiveDate,
    pub net_payment_term: i32,
    pub payment_status: &'static str,
}

/// One fee as stored; `taxes` are the taxes chosen for it (the amounts come from [`Computed`]).
#[derive(Debug, Clone)]
pub struct NewFee {
    pub subscription_id: Option<Uuid>,
    pub charge_id: Option<Uuid>,
    pub charge_filter_id: Option<Uuid>,
    pub fee_type: &'static str,
    pub item_id: Uuid,
    pub item_type: &'static str,
    pub item_code: String,
    pub item_name: String,
    pub item_description: Option<String>,
    pub item_invoice_display_name: Option<String>,
    pub item_filter_invoice_display_name: Option<String>,
    pub description: Option<String>,
    pub filters: Option<Value>,
    pub grouped_by: Map<String, Value>,
    pub amount_cents: i64,
    pub precise_amount_cents: Decimal,
    pub units: Decimal,
    pub events_count: Option<i64>,
    pub unit_amount_cents: i64,
    pub precise_unit_amount: Decimal,
    pub invoiceable: bool,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub taxes: Vec<Tax>,
}

fn position(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// Inserts the invoice (status `draft`), `fees` (zipped with `computed.fees`, in order), their taxes, the
/// invoice's tax lines and its coupon credits.
pub async fn insert(
    conn: &mut PgConnection,
    org: Uuid,
    invoice: &NewInvoice,
    fees: &[NewFee],
    computed: &Computed,
) -> Result<()> {
    let t = &computed.totals;
    sqlx::query(
        "INSERT INTO invoices (id, organization_id, customer_id, number, invoice_type, status, payment_status,
             currency, issuing_date, payment_due_date, net_payment_term, fees_amount_cents, coupons_amount_cents,
             sub_total_excluding_taxes_amount_cents, taxes_amount_cents, sub_total_including_taxes_amount_cents,
             total_amount_cents)
         VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(invoice.id)
    .bind(org)
    .bind(invoice.customer_id)
    .bind(&invoice.number)
    .bind(invoice.invoice_type)
    .bind(invoice.payment_status)
    .bind(&invoice.currency)
    .bind(invoice.issuing_date)
    .bind(invoice.payment_due_date)
    .bind(invoice.net_payment_term)
    .bind(t.fees_amount_cents)
    .bind(t.coupons_amount_cents)
    .bind(t.sub_total_excluding_taxes_amount_cents)
    .bind(t.taxes_amount_cents)
    .bind(t.sub_total_including_taxes_amount_cents)
    .bind(t.total_amount_cents)
    .execute(&mut *conn)
    .await?;
    for (i, (fee, priced)) in fees.iter().zip(&computed.fees).enumerate() {
        let fee_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO fees (id, organization_id, invoice_id, position, subscription_id, charge_id, charge_filter_id,
                 fee_type, item_code, item_name, item_invoice_display_name, item_filter_invoice_display_name,
                 item_description, item_id, item_type, filters, grouped_by, amount_cents, precise_amount_cents,
                 amount_currency, taxes_amount_cents, taxes_precise_amount_cents, taxes_rate,
                 precise_coupons_amount_cents, units, total_aggregated_units, events_count, unit_amount_cents,
                 precise_unit_amount, invoiceable, from_datetime, to_datetime, description)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $23, $24, $25, $25, $26, $27, $28, $29, $30, $31, $32)",
        )
        .bind(fee_id)
        .bind(org)
        .bind(invoice.id)
        .bind(position(i))
        .bind(fee.subscription_id)
        .bind(fee.charge_id)
        .bind(fee.charge_filter_id)
        .bind(fee.fee_type)
        .bind(&fee.item_code)
        .bind(&fee.item_name)
        .bind(&fee.item_invoice_display_name)
        .bind(&fee.item_filter_invoice_display_name)
        .bind(&fee.item_description)
        .bind(fee.item_id)
        .bind(fee.item_type)
        .bind(fee.filters.as_ref().map(sqlx::types::Json))
        .bind(sqlx::types::Json(&fee.grouped_by))
        .bind(fee.amount_cents)
        .bind(fee.precise_amount_cents)
        .bind(&invoice.currency)
        .bind(priced.taxes_amount_cents)
        .bind(priced.taxes_precise_amount_cents)
        .bind(priced.taxes_rate)
        .bind(priced.precise_coupons_cents)
        .bind(fee.units)
        .bind(fee.events_count)
        .bind(fee.unit_amount_cents)
        .bind(fee.precise_unit_amount)
        .bind(fee.invoiceable)
        .bind(fee.from)
        .bind(fee.to)
        .bind(&fee.description)
        .execute(&mut *conn)
        .await?;
        for (code, cents) in &priced.taxes {
            let Some(tax) = fee.taxes.iter().find(|t| &t.code == code) else { continue };
            sqlx::query(
                "INSERT INTO fee_taxes (id, fee_id, organization_id, tax_id, tax_code, tax_name, tax_rate, amount_cents)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::new_v4())
            .bind(fee_id)
            .bind(org)
            .bind(tax.id)
            .bind(&tax.code)
            .bind(&tax.name)
            .bind(tax.rate)
            .bind(cents)
            .execute(&mut *conn)
            .await?;
        }
    }
    for (i, line) in computed.taxes.iter().enumerate() {
        let tax = fees.iter().flat_map(|f| &f.taxes).find(|t| t.code == line.code);
        sqlx::query(
            "INSERT INTO invoice_taxes (id, invoice_id, organization_id, tax_id, tax_code, tax_name, tax_description,
                 tax_rate, amount_cents, fees_amount_cents, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Uuid::new_v4())
        .bind(invoice.id)
        .bind(org)
        .bind(tax.map(|t| t.id))
        .bind(&line.code)
        .bind(tax.map_or_else(|| line.code.clone(), |t| t.name.clone()))
        .bind(tax.and_then(|t| t.description.clone()))
        .bind(line.rate)
        .bind(line.amount_cents)
        .bind(line.fees_amount_cents)
        .bind(position(i))
        .execute(&mut *conn)
        .await?;
    }
    for (i, credit) in computed.credits.iter().enumerate() {
        sqlx::query(
            "INSERT INTO invoice_credits (id, invoice_id, organization_id, applied_coupon_id, amount_cents,
                 amount_currency, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4())
        .bind(invoice.id)
        .bind(org)
        .bind(credit.coupon)
        .bind(credit.amount_cents)
        .bind(&invoice.currency)
        .bind(position(i))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
