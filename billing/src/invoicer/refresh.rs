//! Refreshing a draft invoice (Lago's refresh, and the first step of finalizing a draft): its fees are computed
//! again from the events received since, for the same periods, with the coupons it had used given back first. It
//! keeps its id and creation time. All in one transaction, so a failure leaves the draft as it was.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use aggregate::EventStore;

use super::{contexts, usage, writer};
use crate::domain::invoicing::Reason;
use crate::store::subscriptions;
use crate::{Error, Result};

/// What refreshing found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The draft was computed again.
    Done,
    /// Not a draft: left as it is.
    NotDraft,
    /// Not a subscription invoice: Lago refuses to refresh it.
    NotSubscription,
}

pub async fn refresh(tx: &mut PgConnection, events: &dyn EventStore, org: Uuid, invoice: Uuid) -> Result<Refreshed> {
    let row: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT status, invoice_type, created_at FROM invoices WHERE organization_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(org)
    .bind(invoice)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, kind, created_at)) = row else { return Err(Error::NotFound("invoice")) };
    if kind != "subscription" {
        return Ok(Refreshed::NotSubscription);
    }
    if status != "draft" {
        return Ok(Refreshed::NotDraft);
    }
    let billed: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT subscription_id, invoicing_reason, timestamp FROM invoice_subscriptions WHERE invoice_id = $1",
    )
    .bind(invoice)
    .fetch_all(&mut *tx)
    .await?;
    // Give back what the draft took of its coupons: a period of a recurring coupon, and the coupon itself if the
    // draft used it up (a fixed once-coupon's remainder is computed from the credits, which go with the draft).
    sqlx::query(
        "UPDATE applied_coupons a SET
             frequency_duration_remaining = CASE WHEN a.frequency = 'recurring'
                 THEN a.frequency_duration_remaining + 1 ELSE a.frequency_duration_remaining END,
             status = 'active', terminated_at = NULL
         FROM invoice_credits ic WHERE ic.invoice_id = $1 AND ic.applied_coupon_id = a.id",
    )
    .bind(invoice)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM invoices WHERE id = $1").bind(invoice).execute(&mut *tx).await?;
    let mut subs = Vec::new();
    for (id, _, _) in &billed {
        subs.push(subscriptions::get(&mut *tx, org, *id).await?);
    }
    let ctxs = contexts(&mut *tx, subs).await?;
    let mut batch = Vec::new();
    for (ctx, (_, reason, at)) in ctxs.iter().zip(&billed) {
        let reason = match reason.as_str() {
            "subscription_terminating" => Reason::Terminating,
            "subscription_starting" => Reason::Starting,
            _ => Reason::Periodic,
        };
        let Some(b) = ctx.boundaries(reason, *at) else { continue };
        let mut fees: Vec<usage::FeeDraft> = ctx.subscription_fee(&b).into_iter().collect();
        if reason != Reason::Starting {
            let window = super::charges_window(&b);
            fees.extend(
                usage::charge_fees(events, &[ctx], &[window], |c| !c.attrs.pay_in_advance)
                    .await?
                    .remove(&ctx.sub.id)
                    .unwrap_or_default(),
            );
            ctx.true_ups(&b, &mut fees);
        }
        batch.push(writer::Pending { ctx, reason, boundaries: b, fees, event_transaction_id: None });
    }
    let ids = vec![invoice; batch.len().min(1)];
    writer::write_in(&mut *tx, batch.into_iter().take(1).collect(), ids).await?;
    sqlx::query("UPDATE invoices SET created_at = $2 WHERE id = $1")
        .bind(invoice)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
    Ok(Refreshed::Done)
}
