//! The analytics reports' reads (Lago's `Analytics::*` queries): finalized invoices, their fees and credit notes,
//! summed per month in Postgres. Months are UTC calendar months (`date_trunc` of a date, or of a timestamp taken in
//! UTC so the session's time zone plays no part). Amounts come back as exact numerics; the API rounds each
//! month's total once. MRR's spreading is the domain's (`domain::analytics`): its fees are returned one by one.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// What a report is narrowed to: the months `first..=last` (first days of month), and optionally a currency
/// (upper case) and a customer (external id, live customers only).
#[derive(Debug, Clone)]
pub struct Filter {
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub currency: Option<String>,
    pub external_customer_id: Option<String>,
}

pub async fn organization_created_at(conn: &mut PgConnection, org: Uuid) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT created_at FROM organizations WHERE id = $1").bind(org).fetch_one(conn).await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrossRevenue {
    pub month: NaiveDate,
    pub currency: String,
    pub amount_cents: Decimal,
    pub invoices_count: i64,
}

/// Finalized invoices by issuing month, less what their credit notes refunded, plus the fees of charges paid in
/// advance that no invoice carries (by the month they were created; they count no invoice).
pub async fn gross_revenue(conn: &mut PgConnection, org: Uuid, f: &Filter) -> Result<Vec<GrossRevenue>> {
    Ok(sqlx::query_as(
        "WITH revenue AS (
            SELECT date_trunc('month', i.issuing_date::timestamp)::date AS month, i.currency,
                   i.total_amount_cents - COALESCE((SELECT sum(cn.refund_amount_cents) FROM credit_notes cn
                                                    WHERE cn.invoice_id = i.id), 0) AS amount_cents,
                   1 AS invoices_count
            FROM invoices i JOIN customers c ON c.id = i.customer_id
            WHERE i.organization_id = $1 AND i.status = 'finalized'
              AND ($2::text IS NULL OR (c.external_id = $2 AND c.deleted_at IS NULL))
            UNION ALL
            SELECT date_trunc('month', fe.created_at AT TIME ZONE 'UTC')::date, fe.amount_currency, fe.amount_cents, 0
            FROM fees fe JOIN subscriptions s ON s.id = fe.subscription_id JOIN customers c ON c.id = s.customer_id
            WHERE fe.organization_id = $1 AND fe.invoice_id IS NULL AND fe.pay_in_advance AND fe.deleted_at IS NULL
              AND ($2::text IS NULL OR (c.external_id = $2 AND c.deleted_at IS NULL))
         )
         SELECT month, currency, sum(amount_cents)::numeric AS amount_cents,
                sum(invoices_count)::bigint AS invoices_count
         FROM revenue
         WHERE month BETWEEN $3 AND $4 AND ($5::text IS NULL OR currency = $5)
         GROUP BY month, currency
         ORDER BY month, currency",
    )
    .bind(org)
    .bind(&f.external_customer_id)
    .bind(f.first)
    .bind(f.last)
    .bind(&f.currency)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvoicedUsage {
    pub month: NaiveDate,
    pub code: String,
    pub currency: String,
    pub amount_cents: Decimal,
}

/// Charge fees of finalized invoices, less their coupon share, by the month the fee was created and the billable
/// metric; newest month first, biggest amount first.
pub async fn invoiced_usage(conn: &mut PgConnection, org: Uuid, f: &Filter) -> Result<Vec<InvoicedUsage>> {
    Ok(sqlx::query_as(
        "SELECT month, code, currency, sum(amount) AS amount_cents
         FROM (SELECT date_trunc('month', fe.created_at AT TIME ZONE 'UTC')::date AS month, bm.code,
                      fe.amount_currency AS currency, fe.amount_cents - fe.precise_coupons_amount_cents AS amount
               FROM fees fe JOIN invoices i ON i.id = fe.invoice_id
               JOIN charges ch ON ch.id = fe.charge_id JOIN billable_metrics bm ON bm.id = ch.billable_metric_id
               WHERE fe.organization_id = $1 AND fe.fee_type = 'charge' AND i.status = 'finalized') usage
         WHERE month BETWEEN $2 AND $3 AND ($4::text IS NULL OR currency = $4)
         GROUP BY month, code, currency
         ORDER BY month DESC, amount_cents DESC, code, currency",
    )
    .bind(org)
    .bind(f.first)
    .bind(f.last)
    .bind(&f.currency)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionFee {
    pub currency: String,
    /// The fee less its coupon share, plus its taxes.
    pub amount: Decimal,
    pub issuing_date: NaiveDate,
    pub interval: String,
    pub pay_in_advance: bool,
    pub from_datetime: Option<DateTime<Utc>>,
    pub to_datetime: Option<DateTime<Utc>>,
}

/// Every subscription fee of the finalized invoices, with its plan's interval and timing: MRR spreads them over
/// months (possibly outside the window) before the window applies, so they are not narrowed by month here.
pub async fn subscription_fees(
    conn: &mut PgConnection,
    org: Uuid,
    currency: Option<&str>,
) -> Result<Vec<SubscriptionFee>> {
    Ok(sqlx::query_as(
        "SELECT fe.amount_currency AS currency,
                fe.amount_cents - fe.precise_coupons_amount_cents + fe.taxes_amount_cents AS amount,
                i.issuing_date, p.interval, p.pay_in_advance, fe.from_datetime, fe.to_datetime
         FROM fees fe JOIN invoices i ON i.id = fe.invoice_id
         JOIN subscriptions s ON s.id = fe.subscription_id JOIN plans p ON p.id = s.plan_id
         WHERE fe.organization_id = $1 AND fe.fee_type = 'subscription' AND i.status = 'finalized'
           AND ($2::text IS NULL OR fe.amount_currency = $2)",
    )
    .bind(org)
    .bind(currency)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvoiceCollection {
    pub month: NaiveDate,
    pub payment_status: String,
    pub currency: String,
    pub invoices_count: i64,
    pub amount_cents: Decimal,
}

/// Finalized invoices by issuing month, payment status and currency.
pub async fn invoice_collection(conn: &mut PgConnection, org: Uuid, f: &Filter) -> Result<Vec<InvoiceCollection>> {
    Ok(sqlx::query_as(
        "SELECT date_trunc('month', issuing_date::timestamp)::date AS month, payment_status, currency,
                count(*) AS invoices_count, sum(total_amount_cents)::numeric AS amount_cents
         FROM invoices
         WHERE organization_id = $1 AND status = 'finalized'
           AND date_trunc('month', issuing_date::timestamp)::date BETWEEN $2 AND $3
           AND ($4::text IS NULL OR currency = $4)
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3",
    )
    .bind(org)
    .bind(f.first)
    .bind(f.last)
    .bind(&f.currency)
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueBalance {
    pub month: NaiveDate,
    pub currency: String,
    pub amount_cents: Decimal,
    pub invoice_ids: Vec<Uuid>,
}

/// Finalized invoices not paid (`pending` or `failed`) whose due date is before `today`, by the month they fell
/// due: what is owed, less what their credit notes offset, and which invoices.
pub async fn overdue_balance(
    conn: &mut PgConnection,
    org: Uuid,
    f: &Filter,
    today: NaiveDate,
) -> Result<Vec<OverdueBalance>> {
    Ok(sqlx::query_as(
        "SELECT date_trunc('month', i.payment_due_date::timestamp)::date AS month, i.currency,
                sum(i.total_amount_cents - COALESCE(cn.offset_cents, 0))::numeric AS amount_cents,
                array_agg(i.id ORDER BY i.payment_due_date, i.id) AS invoice_ids
         FROM invoices i JOIN customers c ON c.id = i.customer_id
         LEFT JOIN (SELECT invoice_id, sum(offset_amount_cents) AS offset_cents FROM credit_notes
                    WHERE organization_id = $1 GROUP BY invoice_id) cn ON cn.invoice_id = i.id
         WHERE i.organization_id = $1 AND i.status = 'finalized' AND i.payment_status IN ('pending', 'failed')
           AND i.payment_due_date < $2
           AND ($3::text IS NULL OR (c.external_id = $3 AND c.deleted_at IS NULL))
           AND date_trunc('month', i.payment_due_date::timestamp)::date BETWEEN $4 AND $5
           AND ($6::text IS NULL OR i.currency = $6)
         GROUP BY 1, 2
         ORDER BY 1, 2",
    )
    .bind(org)
    .bind(today)
    .bind(&f.external_customer_id)
    .bind(f.first)
    .bind(f.last)
    .bind(&f.currency)
    .fetch_all(conn)
    .await?)
}
