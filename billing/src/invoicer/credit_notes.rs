//! Credit notes issued by the billing service: when a subscription paid in advance is terminated before its period
//! ends, the unused days of the fee it paid come back as a credit note (`order_cancellation`), as Lago does unless
//! the subscription says `on_termination_credit_note: skip`. One transaction writes the note, its item and its
//! taxes; a unique index makes a second attempt (the API, then the clock) write nothing.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Reason, contexts};
use crate::Result;
use crate::domain::credit_note::{self, TerminatedPeriod};
use crate::domain::periods::local_date;
use crate::store::subscriptions;
use crate::tracking::{TrackEvent, Tracker};

/// The subscription fee a termination may credit: the fee of a finalized invoice whose period holds the termination.
#[derive(sqlx::FromRow)]
struct PaidFee {
    id: Uuid,
    invoice_id: Uuid,
    invoice_number: String,
    currency: String,
    amount_cents: i64,
    precise_coupons_amount_cents: Decimal,
    to_datetime: DateTime<Utc>,
    credited: Decimal,
}

/// Issues the termination credit note of subscription `id` if one is due and none exists; returns its id.
pub async fn issue_for_termination(pool: &PgPool, tracker: &Tracker, org: Uuid, id: Uuid) -> Result<Option<Uuid>> {
    let mut tx = pool.begin().await?;
    let sub = subscriptions::get(&mut tx, org, id).await?;
    let Some(terminated_at) = sub.terminated_at.filter(|_| sub.status == "terminated") else { return Ok(None) };
    let mode = sub.on_termination_credit_note.clone().unwrap_or_else(|| "credit".into());
    if mode == "skip" {
        return Ok(None);
    }
    let ctx = match contexts(&mut tx, vec![sub]).await?.pop() {
        Some(ctx) if ctx.plan.row.pay_in_advance => ctx,
        _ => return Ok(None),
    };
    let fee: Option<PaidFee> = sqlx::query_as(
        "SELECT f.id, f.invoice_id, i.number AS invoice_number, i.currency, f.amount_cents,
                f.precise_coupons_amount_cents, f.to_datetime,
                coalesce((SELECT sum(ci.precise_amount_cents) FROM credit_note_items ci WHERE ci.fee_id = f.id), 0)
                    AS credited
         FROM fees f JOIN invoices i ON i.id = f.invoice_id
         WHERE f.subscription_id = $1 AND f.fee_type = 'subscription' AND i.status = 'finalized'
           AND f.from_datetime <= $2 AND f.to_datetime >= $2
         ORDER BY f.created_at DESC LIMIT 1",
    )
    .bind(id)
    .bind(terminated_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(fee) = fee else { return Ok(None) };
    let taxes: Vec<(Option<Uuid>, String, String, Decimal)> = sqlx::query_as(
        "SELECT tax_id, tax_code, tax_name, tax_rate FROM fee_taxes WHERE fee_id = $1 ORDER BY tax_code",
    )
    .bind(fee.id)
    .fetch_all(&mut *tx)
    .await?;
    let Some(b) = ctx.boundaries(Reason::Terminating, terminated_at) else { return Ok(None) };
    let remaining = (local_date(ctx.tz, fee.to_datetime) - local_date(ctx.tz, terminated_at)).num_days();
    let period = TerminatedPeriod {
        plan_amount_cents: ctx.plan.row.amount_cents,
        period_days: i64::from(b.fee_period_days),
        remaining_days: remaining,
        fee_amount_cents: fee.amount_cents,
        fee_precise_coupons_cents: fee.precise_coupons_amount_cents,
        credited_cents: fee.credited,
        taxes: taxes.iter().map(|t| (t.1.clone(), t.3)).collect(),
    };
    let Some(amounts) = credit_note::termination_credit(&period) else { return Ok(None) };
    // Nothing is ever paid through Billstream, so `refund` has nothing to refund: it credits, as Lago does with
    // the unpaid part. `offset` takes the amount off the invoice instead of keeping a balance.
    let (credit, offset) = if mode == "offset" { (0, amounts.total_cents) } else { (amounts.total_cents, 0) };
    let sequential: i32 =
        sqlx::query_scalar("SELECT coalesce(max(sequential_id), 0) + 1 FROM credit_notes WHERE invoice_id = $1")
            .bind(fee.invoice_id)
            .fetch_one(&mut *tx)
            .await?;
    let note = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO credit_notes (id, organization_id, customer_id, invoice_id, subscription_id, sequential_id, number,
             issuing_date, reason, automatic, credit_status, currency, total_amount_cents, credit_amount_cents,
             offset_amount_cents, balance_amount_cents, taxes_amount_cents, precise_taxes_amount_cents, taxes_rate,
             sub_total_excluding_taxes_amount_cents, coupons_adjustment_amount_cents,
             precise_coupons_adjustment_amount_cents)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'order_cancellation', true, $9, $10, $11, $12, $13, $12, $14, $15, $16,
                 $17, $18, $19)
         ON CONFLICT DO NOTHING",
    )
    .bind(note)
    .bind(org)
    .bind(ctx.customer.id)
    .bind(fee.invoice_id)
    .bind(id)
    .bind(sequential)
    .bind(credit_note::number(&fee.invoice_number, i64::from(sequential)))
    .bind(local_date(ctx.tz, terminated_at))
    .bind(if credit > 0 { Some("available") } else { None })
    .bind(&fee.currency)
    .bind(amounts.total_cents)
    .bind(credit)
    .bind(offset)
    .bind(amounts.taxes_cents)
    .bind(amounts.precise_taxes_cents)
    .bind(amounts.taxes_rate)
    .bind(amounts.sub_total_excluding_taxes_cents)
    .bind(amounts.coupons_adjustment_cents)
    .bind(amounts.precise_coupons_adjustment_cents)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO credit_note_items (id, credit_note_id, organization_id, fee_id, amount_cents, precise_amount_cents)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(note)
    .bind(org)
    .bind(fee.id)
    .bind(amounts.item_cents)
    .bind(amounts.item_precise_cents)
    .execute(&mut *tx)
    .await?;
    for (position, line) in amounts.taxes.iter().enumerate() {
        let tax = taxes.iter().find(|t| t.1 == line.code);
        sqlx::query(
            "INSERT INTO credit_note_taxes (id, credit_note_id, organization_id, tax_id, tax_code, tax_name, tax_rate,
                 amount_cents, base_amount_cents, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::new_v4())
        .bind(note)
        .bind(org)
        .bind(tax.and_then(|t| t.0))
        .bind(&line.code)
        .bind(tax.map_or(line.code.as_str(), |t| t.2.as_str()))
        .bind(line.rate)
        .bind(line.amount_cents)
        .bind(line.base_amount_cents)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    ::metrics::counter!("billstream_credit_notes_total").increment(1);
    tracker.track(org, || TrackEvent::CreditNoteIssued {
        credit_note_id: note,
        invoice_id: fee.invoice_id,
        credit_note_method: if credit > 0 { "credit" } else { "offset" }.into(),
    });
    Ok(Some(note))
}

/// Termination credit notes missing for subscriptions on plans paid in advance terminated in the last week (a
/// termination by `ending_at`, or one whose note failed at the API).
pub async fn issue_missing(pool: &PgPool, tracker: &Tracker, now: DateTime<Utc>) -> Result<usize> {
    let missing: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT s.organization_id, s.id FROM subscriptions s JOIN plans p ON p.id = s.plan_id
         WHERE s.status = 'terminated' AND p.pay_in_advance AND s.terminated_at > $1 - interval '7 days'
           AND s.terminated_at <= $1 AND coalesce(s.on_termination_credit_note, 'credit') <> 'skip'
           AND NOT EXISTS (SELECT 1 FROM credit_notes c WHERE c.subscription_id = s.id
                           AND c.reason = 'order_cancellation' AND c.automatic)",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut issued = 0;
    for (org, sub) in missing {
        if issue_for_termination(pool, tracker, org, sub).await?.is_some() {
            issued += 1;
        }
    }
    Ok(issued)
}
