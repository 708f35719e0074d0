//! Invoice preview (free here, premium in Lago): the invoice a customer's subscriptions would get at the end of
//! their current period, with the usage so far, computed by the billing run's own code (fees, true-ups, coupons,
//! taxes) and stored nowhere. It is returned in the stored invoice's shape so the API renders it the same way.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use aggregate::EventStore;

use super::{Context, contexts, usage, writer};
use crate::domain::invoicing::{self, Reason};
use crate::store::invoices::{CreditRow, FeeRow, FeeTaxRow, Invoice, InvoiceRow, InvoiceTaxRow, PeriodRow};
use crate::store::subscriptions::{self, Subscription};
use crate::{Error, Result};

/// The next invoice of `subs` (active subscriptions of one customer), as of `now`.
pub async fn preview(
    pool: &sqlx::PgPool,
    events: &dyn EventStore,
    subs: Vec<Subscription>,
    now: DateTime<Utc>,
) -> Result<Invoice> {
    let mut conn = pool.acquire().await?;
    let ctxs = contexts(&mut conn, subs).await?;
    let first = ctxs.first().ok_or(Error::NotFound("subscription"))?;
    let customer = first.customer.id;
    let coupons = writer::active_coupons(&mut conn, &[customer]).await?.remove(&customer).unwrap_or_default();
    let coupon_names: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT a.id, c.code, c.name FROM applied_coupons a JOIN coupons c ON c.id = a.coupon_id WHERE a.customer_id = $1",
    )
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    let mut fees: Vec<(&Context, usage::FeeDraft)> = Vec::new();
    let mut periods = Vec::new();
    let mut timestamp = now;
    for ctx in &ctxs {
        // A new subscription to a plan paid in advance is invoiced its first period when it starts; otherwise the
        // invoice comes at the boundary that ends the current period (the first instant of the next one).
        let new = ctx.sub.status == NEW;
        let starting = new && ctx.plan.row.pay_in_advance;
        // A new subscription's next invoice ends its first period.
        let reference = if new { ctx.sub.subscription_at } else { now };
        let (reason, at) = if starting {
            (Reason::Starting, ctx.sub.subscription_at)
        } else {
            (Reason::Periodic, ctx.current_window(reference).to + chrono::Duration::microseconds(1))
        };
        let Some(b) = ctx.boundaries(reason, at) else { continue };
        timestamp = b.timestamp;
        let window = super::charges_window(&b);
        let mut mine: Vec<usage::FeeDraft> = ctx.subscription_fee(&b).into_iter().collect();
        if !starting {
            mine.extend(
                usage::charge_fees(events, &[ctx], &[window], |c| !c.attrs.pay_in_advance)
                    .await?
                    .remove(&ctx.sub.id)
                    .unwrap_or_default(),
            );
            ctx.true_ups(&b, &mut mine);
        }
        periods.push(PeriodRow {
            subscription_id: ctx.sub.id,
            external_subscription_id: ctx.sub.external_id.clone(),
            plan_id: ctx.plan.row.id,
            invoicing_reason: reason.as_str().into(),
            from_datetime: b.fee.map(|f| f.0),
            to_datetime: b.fee.map(|f| f.1),
            charges_from_datetime: b.charges.0,
            charges_to_datetime: b.charges.1,
        });
        fees.extend(mine.into_iter().filter(|f| f.invoiceable).map(|f| (ctx, f)));
    }
    let drafts: Vec<_> = fees.iter().map(|(ctx, f)| f.draft(ctx.plan_ids())).collect();
    let computed = invoicing::compute(&drafts, &coupons, first.currency.code);
    let grace = first.customer.attrs.invoice_grace_period.unwrap_or(first.org.settings.settings.invoice_grace_period);
    let net_term = first.customer.attrs.net_payment_term.unwrap_or(first.org.settings.settings.net_payment_term);
    let (issuing, due) = invoicing::invoice_dates(
        timestamp,
        first.tz,
        u32::try_from(grace).unwrap_or(0),
        u32::try_from(net_term).unwrap_or(0),
    );
    let t = computed.totals;
    let invoice_id = Uuid::nil();
    let mut fee_rows = Vec::new();
    let mut fee_taxes = Vec::new();
    for ((ctx, f), priced) in fees.iter().zip(&computed.fees) {
        let id = Uuid::new_v4();
        for (code, cents) in &priced.taxes {
            if let Some(tax) = f.taxes.iter().find(|t| &t.code == code) {
                fee_taxes.push(FeeTaxRow {
                    id: Uuid::new_v4(),
                    fee_id: id,
                    tax_id: Some(tax.id),
                    tax_code: tax.code.clone(),
                    tax_name: tax.name.clone(),
                    tax_rate: tax.rate,
                    amount_cents: *cents,
                    created_at: now,
                });
            }
        }
        fee_rows.push(FeeRow {
            id,
            subscription_id: Some(ctx.sub.id),
            charge_id: f.charge_id,
            charge_filter_id: f.charge_filter_id,
            fee_type: f.fee_type.into(),
            item_code: f.item_code.clone(),
            item_name: f.item_name.clone(),
            item_invoice_display_name: f.item_invoice_display_name.clone(),
            item_filter_invoice_display_name: f.item_filter_invoice_display_name.clone(),
            item_description: f.item_description.clone(),
            item_id: f.item_id,
            item_type: f.item_type.into(),
            filters: f.filters.clone().map(Json),
            grouped_by: Json(f.grouped_by.clone()),
            amount_cents: f.amount_cents,
            precise_amount_cents: f.precise_amount_cents,
            amount_currency: ctx.currency.code.into(),
            taxes_amount_cents: priced.taxes_amount_cents,
            taxes_precise_amount_cents: priced.taxes_precise_amount_cents,
            taxes_rate: priced.taxes_rate,
            precise_coupons_amount_cents: priced.precise_coupons_cents,
            units: f.units,
            total_aggregated_units: f.units,
            events_count: f.events_count,
            unit_amount_cents: f.unit_amount_cents,
            precise_unit_amount: f.precise_unit_amount,
            pay_in_advance: false,
            invoiceable: true,
            from_datetime: f.from,
            to_datetime: f.to,
            payment_status: "pending".into(),
            created_at: now,
            external_subscription_id: Some(ctx.sub.external_id.clone()),
            description: None,
            pay_in_advance_event_transaction_id: None,
            succeeded_at: None,
            failed_at: None,
            refunded_at: None,
        });
    }
    let stored_taxes = super::store_taxes(&fees.iter().map(|(_, f)| f).collect::<Vec<_>>());
    Ok(Invoice {
        row: InvoiceRow {
            id: invoice_id,
            customer_id: customer,
            sequential_id: None,
            number: invoicing::draft_number(&first.org.settings.settings.document_number_prefix),
            invoice_type: "subscription".into(),
            status: "draft".into(),
            payment_status: "pending".into(),
            currency: first.currency.code.into(),
            issuing_date: issuing,
            payment_due_date: due,
            net_payment_term: i32::try_from(net_term).unwrap_or(0),
            fees_amount_cents: t.fees_amount_cents,
            coupons_amount_cents: t.coupons_amount_cents,
            credit_notes_amount_cents: 0,
            sub_total_excluding_taxes_amount_cents: t.sub_total_excluding_taxes_amount_cents,
            taxes_amount_cents: t.taxes_amount_cents,
            sub_total_including_taxes_amount_cents: t.sub_total_including_taxes_amount_cents,
            prepaid_credit_amount_cents: 0,
            total_amount_cents: t.total_amount_cents,
            voided_at: None,
            created_at: now,
            updated_at: now,
        },
        fees: fee_rows,
        fee_taxes,
        taxes: computed
            .taxes
            .iter()
            .map(|line| {
                let tax = stored_taxes.get(&line.code);
                InvoiceTaxRow {
                    id: Uuid::new_v4(),
                    tax_id: tax.map(|t| t.id),
                    tax_code: line.code.clone(),
                    tax_name: tax.map_or_else(|| line.code.clone(), |t| t.name.clone()),
                    tax_description: tax.and_then(|t| t.description.clone()),
                    tax_rate: line.rate,
                    amount_cents: line.amount_cents,
                    fees_amount_cents: line.fees_amount_cents,
                    created_at: now,
                }
            })
            .collect(),
        credits: computed
            .credits
            .iter()
            .map(|c| {
                let (code, name) = coupon_names
                    .iter()
                    .find(|n| n.0 == c.coupon)
                    .map(|n| (n.1.clone(), n.2.clone()))
                    .unwrap_or_default();
                CreditRow {
                    id: Uuid::new_v4(),
                    item_id: c.coupon,
                    item_type: "coupon".into(),
                    item_code: code,
                    item_name: name,
                    before_taxes: true,
                    amount_cents: c.amount_cents,
                    amount_currency: first.currency.code.into(),
                }
            })
            .collect(),
        periods,
        metadata: Vec::new(),
    })
}

/// The status of a subscription that exists only for a preview.
const NEW: &str = "preview";

/// A subscription of `customer` to plan `plan_code` that is stored nowhere: Lago's preview of a new subscription.
/// `None` when the organization has no such plan.
pub async fn new_subscription(
    pool: &sqlx::PgPool,
    org: Uuid,
    customer: Uuid,
    plan_code: &str,
    billing_time: &str,
    subscription_at: DateTime<Utc>,
) -> Result<Option<Subscription>> {
    let mut conn = pool.acquire().await?;
    let Some(plan) = crate::store::plans::find_row(&mut conn, org, plan_code, false).await? else { return Ok(None) };
    let (external_customer_id, timezone): (String, String) = sqlx::query_as(
        "SELECT c.external_id, coalesce(c.timezone, o.timezone) FROM customers c
         JOIN organizations o ON o.id = c.organization_id WHERE c.id = $1",
    )
    .bind(customer)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(Subscription {
        id: Uuid::new_v4(),
        organization_id: org,
        customer_id: customer,
        plan_id: plan.id,
        external_id: String::new(),
        name: None,
        status: NEW.into(),
        billing_time: billing_time.into(),
        subscription_at,
        started_at: Some(subscription_at),
        ending_at: None,
        terminated_at: None,
        canceled_at: None,
        previous_subscription_id: None,
        activates_at: None,
        on_termination_credit_note: None,
        on_termination_invoice: "generate".into(),
        created_at: subscription_at,
        external_customer_id,
        timezone,
        plan_code: plan.code.clone(),
        plan_amount_cents: plan.amount_cents,
        plan_amount_currency: plan.amount_currency.clone(),
        plan_interval: plan.interval.clone(),
        plan_bill_charges_monthly: plan.bill_charges_monthly,
        plan_trial_period: plan.trial_period,
        previous_plan_code: None,
        next_plan_code: None,
        next_activates_at: None,
    }))
}

/// The customer's active subscriptions among `external_ids` (all of them when empty).
pub async fn subscriptions_of(
    pool: &sqlx::PgPool,
    org: Uuid,
    customer: Uuid,
    external_ids: &[String],
) -> Result<Vec<Subscription>> {
    let mut conn = pool.acquire().await?;
    subscriptions::refresh(&mut conn, org).await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM subscriptions WHERE organization_id = $1 AND customer_id = $2 AND status = 'active'
         AND (cardinality($3::text[]) = 0 OR external_id = ANY($3)) ORDER BY created_at",
    )
    .bind(org)
    .bind(customer)
    .bind(external_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for id in ids {
        out.push(subscriptions::get(&mut conn, org, id).await?);
    }
    Ok(out)
}
