//! The one place invoice rows are inserted: invoices, their fees with their taxes, their tax lines and coupon
//! credits, from the domain's [`Computed`] money, for one invoice (a one-off) or a billing run's batch, in multi-row
//! statements. The caller owns the transaction, so an invoice is stored whole or not at all, and whatever else must
//! change with it (billing periods, coupon state, numbering, webhooks) commits in the same one.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::taxes::Tax;
use crate::Result;
use crate::domain::invoice_totals::InvoiceTax;
use crate::domain::invoicing::Computed;

/// The invoice row.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub invoice_type: &'static str,
    /// `draft` (numbered `PREFIX-DRAFT`) or `finalized` (with its sequence numbers).
    pub status: &'static str,
    pub sequential_id: Option<i64>,
    pub organization_sequential_id: Option<i64>,
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

/// Postgres takes at most 65,535 bound values in one statement.
pub(crate) const MAX_BINDS: usize = 60_000;

fn position(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

struct FeeRow {
    id: Uuid,
    invoice: usize,
    position: i32,
    fee: NewFee,
    /// The event a fee of a charge paid in advance bills (its own invoice, one event).
    event: Option<String>,
    taxes_amount_cents: i64,
    taxes_precise: Decimal,
    taxes_rate: Decimal,
    coupons_precise: Decimal,
}

/// Rows of invoices to insert together.
#[derive(Default)]
pub struct Rows {
    invoices: Vec<(NewInvoice, [i64; 7])>,
    fees: Vec<FeeRow>,
    fee_taxes: Vec<(Uuid, usize, Tax, i64)>,
    invoice_taxes: Vec<(usize, usize, InvoiceTax, Option<Tax>)>,
    credits: Vec<(usize, usize, Uuid, i64)>,
}

impl Rows {
    /// Adds one invoice: `fees` zipped with `computed.fees`, in order, with their taxes, the invoice's tax lines and
    /// its coupon credits.
    pub fn push(&mut self, invoice: NewInvoice, fees: Vec<NewFee>, computed: &Computed, event: Option<&str>) {
        let t = &computed.totals;
        let n = self.invoices.len();
        let all_taxes: Vec<Tax> = fees.iter().flat_map(|f| f.taxes.iter().cloned()).collect();
        for (i, (fee, priced)) in fees.into_iter().zip(&computed.fees).enumerate() {
            let id = Uuid::new_v4();
            for (code, cents) in &priced.taxes {
                if let Some(tax) = fee.taxes.iter().find(|t| &t.code == code) {
                    self.fee_taxes.push((id, n, tax.clone(), *cents));
                }
            }
            self.fees.push(FeeRow {
                id,
                invoice: n,
                position: position(i),
                fee,
                event: event.map(str::to_owned),
                taxes_amount_cents: priced.taxes_amount_cents,
                taxes_precise: priced.taxes_precise_amount_cents,
                taxes_rate: priced.taxes_rate,
                coupons_precise: priced.precise_coupons_cents,
            });
        }
        for (i, line) in computed.taxes.iter().enumerate() {
            let tax = all_taxes.iter().find(|t| t.code == line.code).cloned();
            self.invoice_taxes.push((n, i, line.clone(), tax));
        }
        for (i, credit) in computed.credits.iter().enumerate() {
            self.credits.push((n, i, credit.coupon, credit.amount_cents));
        }
        let totals = [
            t.fees_amount_cents,
            t.coupons_amount_cents,
            t.sub_total_excluding_taxes_amount_cents,
            t.taxes_amount_cents,
            t.sub_total_including_taxes_amount_cents,
            t.credit_notes_amount_cents,
            t.total_amount_cents,
        ];
        self.invoices.push((invoice, totals));
    }

    /// Multi-row inserts, chunked under Postgres' limit of bound values.
    pub async fn insert(&self, conn: &mut PgConnection) -> Result<()> {
        for chunk in self.invoices.chunks(MAX_BINDS / 20) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO invoices (id, organization_id, customer_id, sequential_id, organization_sequential_id,
                     number, invoice_type, status, payment_status, currency, issuing_date, payment_due_date,
                     net_payment_term, fees_amount_cents, coupons_amount_cents, sub_total_excluding_taxes_amount_cents,
                     taxes_amount_cents, sub_total_including_taxes_amount_cents, credit_notes_amount_cents,
                     total_amount_cents, finalized_at) ",
            );
            q.push_values(chunk, |mut b, (r, totals)| {
                b.push_bind(r.id)
                    .push_bind(r.organization_id)
                    .push_bind(r.customer_id)
                    .push_bind(r.sequential_id)
                    .push_bind(r.organization_sequential_id)
                    .push_bind(&r.number)
                    .push_bind(r.invoice_type)
                    .push_bind(r.status)
                    .push_bind(r.payment_status)
                    .push_bind(&r.currency)
                    .push_bind(r.issuing_date)
                    .push_bind(r.payment_due_date)
                    .push_bind(r.net_payment_term);
                for t in totals {
                    b.push_bind(*t);
                }
                b.push_bind((r.status == "finalized").then(Utc::now));
            });
            q.build().execute(&mut *conn).await?;
        }
        let invoice = |n: usize| &self.invoices[n].0;
        for chunk in self.fees.chunks(MAX_BINDS / 35) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO fees (id, organization_id, invoice_id, position, subscription_id, charge_id,
                     charge_filter_id, fee_type, item_code, item_name, item_invoice_display_name,
                     item_filter_invoice_display_name, item_description, item_id, item_type, filters, grouped_by,
                     amount_cents, precise_amount_cents, amount_currency, taxes_amount_cents,
                     taxes_precise_amount_cents, taxes_rate, precise_coupons_amount_cents, units,
                     total_aggregated_units, events_count, unit_amount_cents, precise_unit_amount, invoiceable,
                     from_datetime, to_datetime, pay_in_advance, description, pay_in_advance_event_transaction_id) ",
            );
            q.push_values(chunk, |mut b, r| {
                let (f, inv) = (&r.fee, invoice(r.invoice));
                b.push_bind(r.id)
                    .push_bind(inv.organization_id)
                    .push_bind(inv.id)
                    .push_bind(r.position)
                    .push_bind(f.subscription_id)
                    .push_bind(f.charge_id)
                    .push_bind(f.charge_filter_id)
                    .push_bind(f.fee_type)
                    .push_bind(&f.item_code)
                    .push_bind(&f.item_name)
                    .push_bind(&f.item_invoice_display_name)
                    .push_bind(&f.item_filter_invoice_display_name)
                    .push_bind(&f.item_description)
                    .push_bind(f.item_id)
                    .push_bind(f.item_type)
                    .push_bind(f.filters.as_ref().map(sqlx::types::Json))
                    .push_bind(sqlx::types::Json(&f.grouped_by))
                    .push_bind(f.amount_cents)
                    .push_bind(f.precise_amount_cents)
                    .push_bind(&inv.currency)
                    .push_bind(r.taxes_amount_cents)
                    .push_bind(r.taxes_precise)
                    .push_bind(r.taxes_rate)
                    .push_bind(r.coupons_precise)
                    .push_bind(f.units)
                    .push_bind(f.units)
                    .push_bind(f.events_count)
                    .push_bind(f.unit_amount_cents)
                    .push_bind(f.precise_unit_amount)
                    .push_bind(f.invoiceable)
                    .push_bind(f.from)
                    .push_bind(f.to)
                    .push_bind(r.event.is_some())
                    .push_bind(&f.description)
                    .push_bind(&r.event);
            });
            q.build().execute(&mut *conn).await?;
        }
        for chunk in self.fee_taxes.chunks(MAX_BINDS / 8) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO fee_taxes (id, fee_id, organization_id, tax_id, tax_code, tax_name, tax_rate, amount_cents) ",
            );
            q.push_values(chunk, |mut b, (fee, n, tax, cents)| {
                b.push_bind(Uuid::new_v4())
                    .push_bind(*fee)
                    .push_bind(invoice(*n).organization_id)
                    .push_bind(tax.id)
                    .push_bind(&tax.code)
                    .push_bind(&tax.name)
                    .push_bind(tax.rate)
                    .push_bind(*cents);
            });
            q.build().execute(&mut *conn).await?;
        }
        for chunk in self.invoice_taxes.chunks(MAX_BINDS / 11) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO invoice_taxes (id, invoice_id, organization_id, tax_id, tax_code, tax_name,
                     tax_description, tax_rate, amount_cents, fees_amount_cents, position) ",
            );
            q.push_values(chunk, |mut b, (n, pos, line, tax)| {
                b.push_bind(Uuid::new_v4())
                    .push_bind(invoice(*n).id)
                    .push_bind(invoice(*n).organization_id)
                    .push_bind(tax.as_ref().map(|t| t.id))
                    .push_bind(&line.code)
                    .push_bind(tax.as_ref().map_or_else(|| line.code.clone(), |t| t.name.clone()))
                    .push_bind(tax.as_ref().and_then(|t| t.description.clone()))
                    .push_bind(line.rate)
                    .push_bind(line.amount_cents)
                    .push_bind(line.fees_amount_cents)
                    .push_bind(position(*pos));
            });
            q.build().execute(&mut *conn).await?;
        }
        for chunk in self.credits.chunks(MAX_BINDS / 7) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO invoice_credits (id, invoice_id, organization_id, applied_coupon_id, amount_cents,
                     amount_currency, position) ",
            );
            q.push_values(chunk, |mut b, (n, pos, coupon, cents)| {
                b.push_bind(Uuid::new_v4())
                    .push_bind(invoice(*n).id)
                    .push_bind(invoice(*n).organization_id)
                    .push_bind(*coupon)
                    .push_bind(*cents)
                    .push_bind(&invoice(*n).currency)
                    .push_bind(position(*pos));
            });
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}
