//! `/api/v1/analytics/*`: Lago's five billing reports (gross revenue, invoiced usage, MRR, invoice collection,
//! overdue balance), month by month from the organization's creation month to the current month of the API's
//! clock. The store sums exact amounts per month; MRR's fees are spread over months by the domain; each month's
//! total is rounded to whole cents once, here, and rendered as Lago's integer `amount_cents`.
//!
//! Filters as Lago's controllers pass them: `currency` (upper-cased) and `months` everywhere,
//! `external_customer_id` on gross revenue and overdue balance only. Billstream has no billing entities, so
//! `billing_entity_code` is ignored and `billing_entity_id` renders null.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::NaiveDate;
use schemas::{ApiError, OrgId, ValidationErrors};
use serde::Serialize;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use uuid::Uuid;

use super::ApiState;
use crate::Error;
use crate::domain::analytics::{self as domain, Interval, MonthWindow, render_month, round_cents};
use crate::domain::lists::CURRENCIES;
use crate::store::analytics::{self as store, Filter};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/analytics/gross_revenue", get(gross_revenue))
        .route("/api/v1/analytics/invoiced_usage", get(invoiced_usage))
        .route("/api/v1/analytics/mrr", get(mrr))
        .route("/api/v1/analytics/invoice_collection", get(invoice_collection))
        .route("/api/v1/analytics/overdue_balance", get(overdue_balance))
}

/// The query of a report; every bad parameter is reported at once. An empty parameter is no filter, as Lago's
/// `present?`.
#[derive(Debug)]
struct ReportQuery {
    currency: Option<String>,
    months: Option<i64>,
    external_customer_id: Option<String>,
}

impl ReportQuery {
    fn parse(raw: Option<&str>) -> Result<ReportQuery, ValidationErrors> {
        let q: BTreeMap<String, String> =
            form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().filter(|(_, v)| !v.is_empty()).collect();
        let mut errors = ValidationErrors::default();
        let currency = q.get("currency").map(|c| c.to_uppercase());
        if currency.as_deref().is_some_and(|c| !CURRENCIES.contains(&c)) {
            errors.add("currency", "value_is_invalid");
        }
        let months = q.get("months").and_then(|m| match m.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add("months", "value_is_invalid");
                None
            }
        });
        errors.into_result()?;
        Ok(ReportQuery { currency, months, external_customer_id: q.get("external_customer_id").cloned() })
    }
}

/// A connection and the request's filter: its months from the organization's creation month to the API clock's
/// month, its currency and, where the report has that filter (`by_customer`), its customer.
async fn prepare(
    state: &ApiState,
    org: Uuid,
    raw: Option<String>,
    by_customer: bool,
) -> Result<(PoolConnection<Postgres>, MonthWindow, Filter), ApiError> {
    let q = ReportQuery::parse(raw.as_deref()).map_err(ApiError::Validation)?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let created = store::organization_created_at(&mut conn, org).await?;
    let window = MonthWindow::new(created, state.clock.now(), q.months);
    let filter = Filter {
        first: window.first,
        last: window.last,
        currency: q.currency,
        external_customer_id: q.external_customer_id.filter(|_| by_customer),
    };
    Ok((conn, window, filter))
}

#[derive(Debug, Serialize)]
struct GrossRevenueObject {
    month: String,
    amount_cents: i64,
    currency: String,
    invoices_count: i64,
    billing_entity_id: Option<Uuid>,
}

#[derive(Debug, Serialize)]
struct GrossRevenues {
    gross_revenues: Vec<GrossRevenueObject>,
}

async fn gross_revenue(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<GrossRevenues>, ApiError> {
    let (mut conn, _, filter) = prepare(&state, org, raw, true).await?;
    let rows = store::gross_revenue(&mut conn, org, &filter).await?;
    let gross_revenues = rows
        .into_iter()
        .map(|r| GrossRevenueObject {
            month: render_month(r.month),
            amount_cents: round_cents(r.amount_cents),
            currency: r.currency,
            invoices_count: r.invoices_count,
            billing_entity_id: None,
        })
        .collect();
    Ok(Json(GrossRevenues { gross_revenues }))
}

#[derive(Debug, Serialize)]
struct InvoicedUsageObject {
    month: String,
    code: String,
    currency: String,
    amount_cents: i64,
}

#[derive(Debug, Serialize)]
struct InvoicedUsages {
    invoiced_usages: Vec<InvoicedUsageObject>,
}

async fn invoiced_usage(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<InvoicedUsages>, ApiError> {
    let (mut conn, _, filter) = prepare(&state, org, raw, false).await?;
    let rows = store::invoiced_usage(&mut conn, org, &filter).await?;
    let invoiced_usages = rows
        .into_iter()
        .map(|r| InvoicedUsageObject {
            month: render_month(r.month),
            code: r.code,
            currency: r.currency,
            amount_cents: round_cents(r.amount_cents),
        })
        .collect();
    Ok(Json(InvoicedUsages { invoiced_usages }))
}

#[derive(Debug, Serialize)]
struct MrrObject {
    month: String,
    amount_cents: i64,
    currency: String,
}

#[derive(Debug, Serialize)]
struct Mrrs {
    mrrs: Vec<MrrObject>,
}

async fn mrr(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Mrrs>, ApiError> {
    let (mut conn, window, filter) = prepare(&state, org, raw, false).await?;
    let rows = store::subscription_fees(&mut conn, org, filter.currency.as_deref()).await?;
    let fees: Vec<domain::SubscriptionFee> = rows
        .into_iter()
        .map(|r| domain::SubscriptionFee {
            currency: r.currency,
            amount: r.amount,
            issuing_date: r.issuing_date,
            // An interval the catalog does not know counts as monthly: whole, in the month of its invoice.
            interval: Interval::parse(&r.interval).unwrap_or(Interval::Monthly),
            pay_in_advance: r.pay_in_advance,
            period: r.from_datetime.zip(r.to_datetime),
        })
        .collect();
    let mrrs = domain::mrr(&fees)
        .into_iter()
        .filter(|((month, _), _)| window.contains(*month))
        .map(|((month, currency), amount)| MrrObject {
            month: render_month(month),
            amount_cents: round_cents(amount),
            currency,
        })
        .collect();
    Ok(Json(Mrrs { mrrs }))
}

/// A month of invoices of one payment status and currency. A month without any has neither (Lago renders them
/// null, which its spec does not allow: they are left out).
#[derive(Debug, Serialize)]
struct InvoiceCollectionObject {
    month: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_status: Option<String>,
    invoices_count: i64,
    amount_cents: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
}

#[derive(Debug, Serialize)]
struct InvoiceCollections {
    invoice_collections: Vec<InvoiceCollectionObject>,
}

async fn invoice_collection(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<InvoiceCollections>, ApiError> {
    let (mut conn, window, filter) = prepare(&state, org, raw, false).await?;
    let rows = store::invoice_collection(&mut conn, org, &filter).await?;
    // Lago lists every month of the window, a month without invoices as a zero line, unless a currency is asked
    // for (the empty months have none).
    let empty_months: Vec<NaiveDate> = if filter.currency.is_none() {
        window.months().into_iter().filter(|m| !rows.iter().any(|r| r.month == *m)).collect()
    } else {
        Vec::new()
    };
    let mut lines: Vec<(NaiveDate, InvoiceCollectionObject)> = rows
        .into_iter()
        .map(|r| {
            let line = InvoiceCollectionObject {
                month: render_month(r.month),
                payment_status: Some(r.payment_status),
                invoices_count: r.invoices_count,
                amount_cents: round_cents(r.amount_cents),
                currency: Some(r.currency),
            };
            (r.month, line)
        })
        .collect();
    lines.extend(empty_months.into_iter().map(|m| {
        let line = InvoiceCollectionObject {
            month: render_month(m),
            payment_status: None,
            invoices_count: 0,
            amount_cents: 0,
            currency: None,
        };
        (m, line)
    }));
    // The store's order (month, status, currency) within a month; the stable sort keeps it.
    lines.sort_by_key(|(m, _)| *m);
    Ok(Json(InvoiceCollections { invoice_collections: lines.into_iter().map(|(_, l)| l).collect() }))
}

#[derive(Debug, Serialize)]
struct OverdueBalanceObject {
    month: String,
    amount_cents: i64,
    currency: String,
    lago_invoice_ids: Vec<Uuid>,
    billing_entity_id: Option<Uuid>,
}

#[derive(Debug, Serialize)]
struct OverdueBalances {
    overdue_balances: Vec<OverdueBalanceObject>,
}

async fn overdue_balance(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OverdueBalances>, ApiError> {
    let (mut conn, _, filter) = prepare(&state, org, raw, true).await?;
    // Overdue as the invoice object's `payment_overdue`: due before today (UTC), by the API's clock.
    let today = state.clock.now().date_naive();
    let rows = store::overdue_balance(&mut conn, org, &filter, today).await?;
    let overdue_balances = rows
        .into_iter()
        .map(|r| OverdueBalanceObject {
            month: render_month(r.month),
            amount_cents: round_cents(r.amount_cents),
            currency: r.currency,
            lago_invoice_ids: r.invoice_ids,
            billing_entity_id: None,
        })
        .collect();
    Ok(Json(OverdueBalances { overdue_balances }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_parsed_with_every_error_at_once() {
        let q = ReportQuery::parse(Some("currency=usd&months=3&external_customer_id=acme&billing_entity_code=x"))
            .expect("valid");
        assert_eq!(q.currency.as_deref(), Some("USD"));
        assert_eq!((q.months, q.external_customer_id.as_deref()), (Some(3), Some("acme")));
        let empty = ReportQuery::parse(Some("currency=&months=")).expect("empty is no filter");
        assert_eq!((empty.currency, empty.months), (None, None));
        let e = ReportQuery::parse(Some("currency=EURO&months=abc")).expect_err("invalid");
        assert_eq!(e.get("currency"), Some(&["value_is_invalid".to_owned()][..]));
        assert_eq!(e.get("months"), Some(&["value_is_invalid".to_owned()][..]));
        assert!(ReportQuery::parse(None).is_ok());
    }
}
