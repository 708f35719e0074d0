//! Writes a batch of subscription invoices in one transaction, in this order:
//!
//! 1. Lock the organizations of the batch (`FOR NO KEY UPDATE` on their rows): invoice numbers and coupon use of an
//!    organization are decided by one writer at a time.
//! 2. Claim each invoice's period: insert its `invoice_subscriptions` row, `ON CONFLICT DO NOTHING` on
//!    (subscription, start of the charges period). A period billed already (a second clock, a termination racing
//!    the clock) is not claimed, and nothing of that invoice is written.
//! 3. For the claimed invoices only: read the customers' active coupons, apply them invoice after invoice (a coupon
//!    used up by one is gone for the next), compute taxes and totals, take numbers, and insert invoices, fees, taxes
//!    and credits; update the coupons.
//! 4. Commit. The claim's reference to its invoice is checked here (a deferred constraint).
//!
//! A crash before the commit leaves nothing; after it, every claimed invoice is complete. Nothing is billed twice.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::Utc;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::Context;
use super::usage::FeeDraft;
use crate::Result;
use crate::domain::invoice_totals::{AppliedCoupon, CouponLimit, CouponValue, Frequency};
use crate::domain::invoicing::{self, Boundaries, DraftFee, Numbering, Reason};
use crate::store::invoice_rows::{MAX_BINDS, NewInvoice, Rows};
use crate::tracking::{TrackEvent, Tracker};

/// One invoice to write.
pub struct Pending<'a> {
    pub ctx: &'a Context,
    pub reason: Reason,
    pub boundaries: Boundaries,
    pub fees: Vec<FeeDraft>,
    /// The event billed by an invoice of charges paid in advance (its fees are marked paid in advance).
    pub event_transaction_id: Option<String>,
}

/// What a batch wrote: the new invoices (subscription, invoice; in the batch's order), those of them finalized
/// (organization, invoice), and how many periods were billed already.
#[derive(Debug, Default)]
pub struct Written {
    pub invoices: Vec<(Uuid, Uuid)>,
    pub finalized: Vec<(Uuid, Uuid)>,
    pub already_billed: usize,
}

/// Writes `batch` in one transaction and, once committed, reports the finalized invoices to usage tracking.
pub async fn write(pool: &PgPool, tracker: &Tracker, batch: Vec<Pending<'_>>) -> Result<Written> {
    if batch.is_empty() {
        return Ok(Written::default());
    }
    let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::new_v4()).collect();
    let mut tx = pool.begin().await?;
    let written = write_in(&mut tx, batch, ids).await?;
    crate::webhooks::invoices_issued(&mut tx, &written.invoices.iter().map(|(_, id)| *id).collect::<Vec<_>>()).await?;
    tx.commit().await?;
    for &(org, invoice_id) in &written.finalized {
        tracker.track(org, || TrackEvent::InvoiceCreated { invoice_id, invoice_type: "subscription".into() });
    }
    Ok(written)
}

/// [`write`] inside the caller's transaction, with the invoices' ids given (a refreshed draft keeps its id).
pub async fn write_in(tx: &mut PgConnection, batch: Vec<Pending<'_>>, ids: Vec<Uuid>) -> Result<Written> {
    let orgs: BTreeSet<Uuid> = batch.iter().map(|p| p.ctx.sub.organization_id).collect();
    for org in &orgs {
        // NO KEY UPDATE: it excludes other writers of invoices but not the key-share locks that inserting rows
        // referencing the organization takes, so it cannot deadlock with them.
        sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE").bind(org).execute(&mut *tx).await?;
    }
    let claimed = claim(&mut *tx, &batch, &ids).await?;
    let mut written = Written { already_billed: batch.len() - claimed.len(), ..Written::default() };
    let chosen: Vec<(usize, &Pending)> = batch.iter().enumerate().filter(|(i, _)| claimed.contains(&ids[*i])).collect();
    if chosen.is_empty() {
        return Ok(written);
    }
    let customers: Vec<Uuid> =
        chosen.iter().map(|(_, p)| p.ctx.customer.id).collect::<BTreeSet<_>>().into_iter().collect();
    let mut coupons = active_coupons(&mut *tx, &customers).await?;
    let customers_with_notes = crate::store::credit_notes::customers_with_balance(&mut *tx, &customers).await?;
    let mut finalized_with_notes = Vec::new();
    let mut numbers = Numbers::load(&mut *tx, &orgs, &customers).await?;
    let mut rows = Rows::default();
    let mut coupon_updates: HashMap<Uuid, (Option<u32>, bool)> = HashMap::new();
    for (i, p) in chosen {
        let id = ids[i];
        let ctx = p.ctx;
        let fees: Vec<&FeeDraft> = p.fees.iter().filter(|f| f.invoiceable).collect();
        let drafts: Vec<DraftFee> = fees.iter().map(|f| f.draft(ctx.plan_ids())).collect();
        let mine = coupons.entry(ctx.customer.id).or_default();
        let computed = invoicing::compute(&drafts, mine, ctx.currency.code);
        // Later invoices of this customer in the batch see what this one left of each coupon.
        for credit in &computed.credits {
            coupon_updates.insert(credit.coupon, (credit.remaining_periods, credit.terminated));
            if let Some(c) = mine.iter_mut().find(|c| c.id == credit.coupon) {
                if let Some(left) = credit.remaining_periods {
                    c.frequency = Frequency::Recurring { remaining: left };
                }
                if let (Frequency::Once, CouponValue::Fixed { amount_cents }) = (c.frequency, &mut c.value) {
                    *amount_cents -= credit.amount_cents;
                }
            }
        }
        mine.retain(|c| !computed.credits.iter().any(|cr| cr.coupon == c.id && cr.terminated));
        // Lago finalizes the invoices of charges paid in advance at once: no grace period.
        let grace = match p.reason {
            Reason::InAdvanceCharge => 0,
            _ => ctx.customer.attrs.invoice_grace_period.unwrap_or(ctx.org.settings.settings.invoice_grace_period),
        };
        let net_term = ctx.customer.attrs.net_payment_term.unwrap_or(ctx.org.settings.settings.net_payment_term);
        let (issuing, due) = invoicing::invoice_dates(
            p.boundaries.timestamp,
            ctx.tz,
            u32::try_from(grace).unwrap_or(0),
            u32::try_from(net_term).unwrap_or(0),
        );
        let prefix = &ctx.org.settings.settings.document_number_prefix;
        let (status, seq, org_seq, number) = if grace > 0 {
            ("draft", None, None, invoicing::draft_number(prefix))
        } else {
            let (seq, org_seq, numbering) = numbers.next(ctx);
            ("finalized", Some(seq), Some(org_seq), invoicing::invoice_number(prefix, numbering))
        };
        if status == "finalized" && customers_with_notes.contains(&ctx.customer.id) {
            finalized_with_notes.push(id);
        }
        let invoice = NewInvoice {
            id,
            organization_id: ctx.sub.organization_id,
            customer_id: ctx.customer.id,
            invoice_type: "subscription",
            status,
            sequential_id: seq,
            organization_sequential_id: org_seq,
            currency: ctx.currency.code.to_owned(),
            number,
            issuing_date: issuing,
            payment_due_date: due,
            net_payment_term: i32::try_from(net_term).unwrap_or(0),
            payment_status: "pending",
        };
        let new_fees = fees.iter().map(|f| f.to_new(ctx.sub.id)).collect();
        rows.push(invoice, new_fees, &computed, p.event_transaction_id.as_deref());
        written.invoices.push((ctx.sub.id, id));
        if status == "finalized" {
            written.finalized.push((ctx.sub.organization_id, id));
        }
    }
    rows.insert(&mut *tx).await?;
    // Available credit notes pay what is left after taxes (Lago leaves drafts alone until they are finalized).
    for invoice in finalized_with_notes {
        crate::store::credit_notes::apply(&mut *tx, invoice).await?;
    }
    for (coupon, (remaining, terminated)) in coupon_updates {
        sqlx::query(
            "UPDATE applied_coupons SET
                 frequency_duration_remaining = coalesce($2, frequency_duration_remaining),
                 status = CASE WHEN $3 THEN 'terminated' ELSE status END,
                 terminated_at = CASE WHEN $3 THEN now() ELSE terminated_at END
             WHERE id = $1",
        )
        .bind(coupon)
        .bind(remaining.map(|r| i32::try_from(r).unwrap_or(i32::MAX)))
        .bind(terminated)
        .execute(&mut *tx)
        .await?;
    }
    Ok(written)
}

/// Inserts every period's claim; returns the invoice ids whose claim was won.
async fn claim(conn: &mut PgConnection, batch: &[Pending<'_>], ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let mut won = HashSet::new();
    for (chunk, chunk_ids) in batch.chunks(MAX_BINDS / 10).zip(ids.chunks(MAX_BINDS / 10)) {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO invoice_subscriptions (invoice_id, organization_id, subscription_id, invoicing_reason,
                 timestamp, from_datetime, to_datetime, charges_from_datetime, charges_to_datetime,
                 event_transaction_id) ",
        );
        q.push_values(chunk.iter().zip(chunk_ids), |mut b, (p, id)| {
            let bd = &p.boundaries;
            b.push_bind(*id)
                .push_bind(p.ctx.sub.organization_id)
                .push_bind(p.ctx.sub.id)
                .push_bind(p.reason.as_str())
                .push_bind(bd.timestamp)
                .push_bind(bd.fee.map(|f| f.0))
                .push_bind(bd.fee.map(|f| f.1))
                .push_bind(bd.charges.0)
                .push_bind(bd.charges.1)
                .push_bind(p.event_transaction_id.as_deref());
        });
        // Either unique index may refuse a claim (a period billed, a starting invoice issued): no target.
        q.push(" ON CONFLICT DO NOTHING RETURNING invoice_id");
        let rows: Vec<(Uuid,)> = q.build_query_as().fetch_all(&mut *conn).await?;
        won.extend(rows.into_iter().map(|r| r.0));
    }
    Ok(won)
}

/// The active coupons of these customers, in the domain's shape, oldest first; a fixed once-coupon carries what it
/// has left.
pub(super) async fn active_coupons(
    conn: &mut PgConnection,
    customers: &[Uuid],
) -> Result<HashMap<Uuid, Vec<AppliedCoupon>>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        customer_id: Uuid,
        coupon_id: Uuid,
        coupon_type: String,
        amount_cents: Option<i64>,
        amount_currency: Option<String>,
        percentage_rate: Option<Decimal>,
        frequency: String,
        frequency_duration_remaining: Option<i32>,
        created_at: chrono::DateTime<Utc>,
        used_cents: i64,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.id, a.customer_id, a.coupon_id, c.coupon_type, a.amount_cents, a.amount_currency, a.percentage_rate,
                a.frequency, a.frequency_duration_remaining, a.created_at,
                coalesce((SELECT sum(ic.amount_cents) FROM invoice_credits ic JOIN invoices i ON i.id = ic.invoice_id
                          WHERE ic.applied_coupon_id = a.id AND i.status <> 'voided'), 0)::bigint AS used_cents
         FROM applied_coupons a JOIN coupons c ON c.id = a.coupon_id
         WHERE a.customer_id = ANY($1) AND a.status = 'active'
         ORDER BY a.created_at, a.id",
    )
    .bind(customers)
    .fetch_all(&mut *conn)
    .await?;
    let coupon_ids: Vec<Uuid> = rows.iter().map(|r| r.coupon_id).collect::<BTreeSet<_>>().into_iter().collect();
    let targets: Vec<(Uuid, Option<Uuid>, Option<Uuid>)> =
        sqlx::query_as("SELECT coupon_id, plan_id, billable_metric_id FROM coupon_targets WHERE coupon_id = ANY($1)")
            .bind(&coupon_ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut out: HashMap<Uuid, Vec<AppliedCoupon>> = HashMap::new();
    for r in rows {
        let plans: Vec<Uuid> = targets.iter().filter(|t| t.0 == r.coupon_id).filter_map(|t| t.1).collect();
        let metrics: Vec<Uuid> = targets.iter().filter(|t| t.0 == r.coupon_id).filter_map(|t| t.2).collect();
        let limit = if !metrics.is_empty() {
            CouponLimit::BillableMetrics(metrics)
        } else if !plans.is_empty() {
            CouponLimit::Plans(plans)
        } else {
            CouponLimit::None
        };
        let value = if r.coupon_type == "percentage" {
            CouponValue::Percentage { rate: r.percentage_rate.unwrap_or_default() }
        } else {
            let amount = r.amount_cents.unwrap_or(0);
            let left = if r.frequency == "once" { (amount - r.used_cents).max(0) } else { amount };
            CouponValue::Fixed { amount_cents: left }
        };
        let frequency = match r.frequency.as_str() {
            "recurring" => Frequency::Recurring {
                remaining: u32::try_from(r.frequency_duration_remaining.unwrap_or(0)).unwrap_or(0),
            },
            "forever" => Frequency::Forever,
            _ => Frequency::Once,
        };
        out.entry(r.customer_id).or_default().push(AppliedCoupon {
            id: r.id,
            value,
            frequency,
            limit,
            currency: r.amount_currency,
            applied_at: r.created_at,
        });
    }
    Ok(out)
}

/// The next invoice numbers of the batch's customers and organizations (read under the organizations' locks).
struct Numbers {
    customer: HashMap<Uuid, i64>,
    org: HashMap<Uuid, i64>,
}

impl Numbers {
    async fn load(conn: &mut PgConnection, orgs: &BTreeSet<Uuid>, customers: &[Uuid]) -> Result<Numbers> {
        let orgs: Vec<Uuid> = orgs.iter().copied().collect();
        let customer: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT customer_id, coalesce(max(sequential_id), 0) FROM invoices WHERE customer_id = ANY($1)
             GROUP BY customer_id",
        )
        .bind(customers)
        .fetch_all(&mut *conn)
        .await?;
        let org: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT organization_id, coalesce(max(organization_sequential_id), 0) FROM invoices
             WHERE organization_id = ANY($1) GROUP BY organization_id",
        )
        .bind(&orgs)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Numbers { customer: customer.into_iter().collect(), org: org.into_iter().collect() })
    }

    fn next(&mut self, ctx: &Context) -> (i64, i64, Numbering) {
        let seq = self.customer.entry(ctx.customer.id).or_insert(0);
        *seq += 1;
        let org_seq = self.org.entry(ctx.sub.organization_id).or_insert(0);
        *org_seq += 1;
        let tz: chrono_tz::Tz = ctx.org.settings.settings.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
        let numbering = if ctx.org.settings.settings.document_numbering == "per_organization" {
            Numbering::PerOrganization {
                year_month: invoicing::year_month(Utc::now(), tz),
                organization_sequential_id: *org_seq,
            }
        } else {
            Numbering::PerCustomer { customer_sequential_id: ctx.customer.sequential_id, invoice_sequential_id: *seq }
        };
        (*seq, *org_seq, numbering)
    }
}
