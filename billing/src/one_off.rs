//! Issues one-off invoices (Lago's `POST /invoices`): add-on fees priced and taxed by `domain::one_off`, totals by
//! `domain::invoicing::compute` (no coupons: Lago applies none to one-off invoices), written with
//! `store::invoice_rows` and finalized, all in one transaction. A one-off invoice has no grace period (Lago keeps
//! that for subscription invoices): it is issued and numbered at once, dated today in the customer's timezone.
//!
//! A rejected request writes nothing: every lookup and check happens before the first insert, and the customer's
//! currency (set when it had none, as Lago does) changes inside the same transaction as the invoice.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::Map;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::invoice_totals;
use crate::domain::invoicing::{self, DraftFee};
use crate::domain::money::Currency;
use crate::domain::one_off::{self, OneOffInput};
use crate::store::add_ons::{self, AddOn};
use crate::store::invoice_rows::{self, NewFee, NewInvoice};
use crate::store::taxes::Tax;
use crate::store::{customers, organizations};
use crate::{Error, Result};

const TAX_COLUMNS: &str = "id, name, code, description, rate, applied_to_organization, created_at";

/// The organization's default taxes (the last level of the hierarchy).
async fn organization_taxes(conn: &mut PgConnection, org: Uuid) -> Result<Vec<Tax>> {
    Ok(sqlx::query_as(crate::store::sql(format!(
        "SELECT {TAX_COLUMNS} FROM taxes
         WHERE organization_id = $1 AND applied_to_organization AND deleted_at IS NULL ORDER BY code"
    )))
    .bind(org)
    .fetch_all(conn)
    .await?)
}

/// The live taxes among `codes`, in the order asked; Lago ignores a code that names no tax here.
async fn taxes_by_code(conn: &mut PgConnection, org: Uuid, codes: &[String]) -> Result<Vec<Tax>> {
    let rows: Vec<Tax> = sqlx::query_as(crate::store::sql(format!(
        "SELECT {TAX_COLUMNS} FROM taxes WHERE organization_id = $1 AND code = ANY($2) AND deleted_at IS NULL"
    )))
    .bind(org)
    .bind(codes)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<Tax> = Vec::new();
    for code in codes {
        if let Some(t) = rows.iter().find(|t| &t.code == code)
            && !out.iter().any(|o| o.id == t.id)
        {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// Creates, finalizes and numbers the one-off invoice; returns its id.
pub async fn create(pool: &PgPool, org: Uuid, input: OneOffInput, now: DateTime<Utc>) -> Result<Uuid> {
    // Lookups and checks hold one pooled connection at a time and no transaction: a request that is refused never
    // waits on a lock, and concurrent requests cannot starve the pool by each holding a connection while asking
    // for another. The customer needs no lock here: its currency is set only if still blank (one atomic update)
    // and finalization locks it while taking the next number.
    let customer = match &input.external_customer_id {
        Some(id) => customers::find_in(&mut *pool.acquire().await?, org, id, false).await?,
        None => None,
    };
    let customer = customer.ok_or(Error::NotFound("customer"))?;
    if input.fees.is_empty() {
        return Err(Error::NotFound("fees"));
    }
    let mut found: HashMap<String, AddOn> = HashMap::new();
    for fee in &input.fees {
        let code = fee.add_on_code.as_deref().ok_or(Error::NotFound("add_on"))?;
        if !found.contains_key(code) {
            let add_on = add_ons::find(pool, org, code).await?.ok_or(Error::NotFound("add_on"))?;
            found.insert(code.to_owned(), add_on);
        }
    }
    let mut errors = input.errors.clone();
    let currency = match one_off::currency(input.currency.as_deref(), customer.attrs.get("currency")) {
        Ok(c) => Currency::from_code(&c),
        Err(e) => {
            errors.merge(e);
            None
        }
    };
    let Some(currency) = currency.filter(|_| errors.is_empty()) else { return Err(Error::Validation(errors)) };

    let mut tx = pool.begin().await?;
    let org_taxes = organization_taxes(&mut tx, org).await?;
    let mut fees = Vec::with_capacity(input.fees.len());
    for fee in &input.fees {
        let add_on = fee.add_on_code.as_deref().and_then(|c| found.get(c)).ok_or(Error::NotFound("add_on"))?;
        let explicit = match &fee.tax_codes {
            Some(codes) => Some(taxes_by_code(&mut tx, org, codes).await?),
            None => None,
        };
        let unit_amount_cents = fee.unit_amount_cents.unwrap_or(add_on.row.amount_cents);
        let (amount_cents, precise_amount_cents) = one_off::fee_amount(unit_amount_cents, fee.units);
        fees.push(NewFee {
            subscription_id: None,
            charge_id: None,
            charge_filter_id: None,
            fee_type: "add_on",
            item_id: add_on.row.id,
            item_type: "AddOn",
            item_code: add_on.row.code.clone(),
            item_name: add_on.row.name.clone(),
            item_description: add_on.row.description.clone(),
            // Lago's fee name: the fee's own display name, else the add-on's (else its name, at rendering).
            item_invoice_display_name: fee
                .invoice_display_name
                .clone()
                .or_else(|| add_on.row.invoice_display_name.clone().filter(|n| !n.is_empty())),
            item_filter_invoice_display_name: None,
            description: fee.description.clone().or_else(|| add_on.row.description.clone()),
            filters: None,
            grouped_by: Map::new(),
            amount_cents,
            precise_amount_cents,
            units: fee.units.unwrap_or(Decimal::ONE),
            events_count: None,
            unit_amount_cents,
            precise_unit_amount: Decimal::from(unit_amount_cents) / currency.subunits(),
            invoiceable: true,
            from: Some(fee.from_datetime.unwrap_or(now)),
            to: Some(fee.to_datetime.unwrap_or(now)),
            taxes: one_off::fee_taxes(explicit, &add_on.taxes, &customer.taxes, &org_taxes),
        });
    }
    let drafts: Vec<DraftFee> = fees
        .iter()
        .map(|f| DraftFee {
            amount_cents: f.amount_cents,
            plans: Vec::new(),
            billable_metric: None,
            taxes: f.taxes.iter().map(|t| invoice_totals::Tax { code: t.code.clone(), rate: t.rate }).collect(),
        })
        .collect();
    let computed = invoicing::compute(&drafts, &[], currency.code);
    if computed.totals.total_amount_cents < 0 {
        // Lago's invoice validation: a negative unit amount may not make a negative invoice.
        return Err(Error::Validation(schemas::error::field_error("total_amount_cents", "value_is_out_of_range")));
    }

    let settings = organizations::settings(&mut tx, org, false).await?;
    let net_term = customer.attrs.net_payment_term.unwrap_or(settings.settings.net_payment_term);
    let tz: Tz = customer.applicable_timezone.parse().unwrap_or(Tz::UTC);
    let (issuing, due) = invoicing::invoice_dates(now, tz, 0, u32::try_from(net_term).unwrap_or(0));
    customers::set_currency_if_blank(&mut tx, org, customer.id, currency.code).await?;
    let invoice = NewInvoice {
        id: Uuid::new_v4(),
        organization_id: org,
        customer_id: customer.id,
        invoice_type: "one_off",
        // Written as a draft, then numbered by `finalize` in the same transaction.
        status: "draft",
        sequential_id: None,
        organization_sequential_id: None,
        currency: currency.code.to_owned(),
        number: invoicing::draft_number(&settings.settings.document_number_prefix),
        issuing_date: issuing,
        payment_due_date: due,
        net_payment_term: i32::try_from(net_term).unwrap_or(0),
        // Nothing to pay is paid (Lago).
        payment_status: if computed.totals.total_amount_cents > 0 { "pending" } else { "succeeded" },
    };
    let id = invoice.id;
    let mut rows = invoice_rows::Rows::default();
    rows.push(invoice, fees, &computed, None);
    rows.insert(&mut tx).await?;
    crate::store::invoices::finalize(&mut tx, org, id).await?;
    tx.commit().await?;
    ::metrics::counter!("billstream_invoices_total", "reason" => "one_off").increment(1);
    Ok(id)
}
