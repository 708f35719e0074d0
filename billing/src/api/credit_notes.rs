//! `/api/v1/credit_notes`: list and show the credit notes the billing service issued, with their items (each with
//! the fee it credits, as the invoice renders it) and taxes.

use axum::extract::{Path, Query, RawQuery, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use schemas::objects::credit_note::*;
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};
use uuid::Uuid;

use super::ApiState;
use super::invoices::{number, render};
use crate::Error;
use crate::store::credit_notes::{self as store, CreditNote, ListFilter};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/credit_notes", get(list)).route("/api/v1/credit_notes/{lago_id}", get(show))
}

const ROOT: &str = "credit_note";

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<CreditNoteEnvelope>, ApiError> {
    // A malformed id finds nothing, as in Lago.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound(ROOT))?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let note = store::get(&mut conn, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    let entity = billing_entity(&mut conn, org).await?;
    Ok(Json(CreditNoteEnvelope { credit_note: render_note(&mut conn, org, &entity, &note).await? }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(page): Query<PageQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CreditNotesPage>, ApiError> {
    let q: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let filter = ListFilter {
        external_customer_id: q.get("external_customer_id").cloned(),
        reason: q.get("reason").cloned(),
        credit_status: q.get("credit_status").cloned(),
        currency: q.get("currency").cloned(),
        invoice_number: q.get("invoice_number").cloned(),
    };
    let p = page.page();
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let (notes, total) = store::list(&mut conn, org, &filter, p.limit(), p.offset()).await?;
    let entity = billing_entity(&mut conn, org).await?;
    let mut out = Vec::with_capacity(notes.len());
    for n in &notes {
        out.push(render_note(&mut conn, org, &entity, n).await?);
    }
    Ok(Json(CreditNotesPage { credit_notes: out, meta: p.meta(total) }))
}

/// The code of the organization's default billing entity, read once per request.
async fn billing_entity(conn: &mut sqlx::PgConnection, org: Uuid) -> Result<String, ApiError> {
    let name: String = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
        .bind(org)
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::from)?;
    Ok(crate::domain::organization::billing_entity_code(&name))
}

async fn render_note(
    conn: &mut sqlx::PgConnection,
    org: Uuid,
    billing_entity_code: &str,
    n: &CreditNote,
) -> Result<CreditNoteObject, ApiError> {
    let r = &n.row;
    // Each item shows its fee as the credited invoice shows it.
    let invoice = crate::store::invoices::get(conn, org, r.invoice_id).await?.ok_or(ApiError::NotFound("invoice"))?;
    let rendered = render(conn, org, &invoice).await?;
    let items = n
        .items
        .iter()
        .filter_map(|item| {
            let fee = rendered.fees.iter().find(|f| f.lago_id == Some(item.fee_id))?.clone();
            Some(CreditNoteItemObject {
                lago_id: item.id,
                amount_cents: item.amount_cents,
                amount_currency: r.currency.clone(),
                fee,
            })
        })
        .collect();
    Ok(CreditNoteObject {
        lago_id: r.id,
        billing_entity_code: Some(billing_entity_code.to_owned()),
        sequential_id: i64::from(r.sequential_id),
        number: r.number.clone(),
        lago_invoice_id: r.invoice_id,
        invoice_number: rendered.number.clone(),
        issuing_date: r.issuing_date.to_string(),
        credit_status: r.credit_status.clone(),
        refund_status: r.refund_status.clone(),
        reason: r.reason.clone(),
        description: r.description.clone(),
        currency: r.currency.clone(),
        total_amount_cents: r.total_amount_cents,
        taxes_amount_cents: r.taxes_amount_cents,
        taxes_rate: number(r.taxes_rate),
        sub_total_excluding_taxes_amount_cents: r.sub_total_excluding_taxes_amount_cents,
        balance_amount_cents: r.balance_amount_cents,
        credit_amount_cents: r.credit_amount_cents,
        refund_amount_cents: r.refund_amount_cents,
        offset_amount_cents: r.offset_amount_cents,
        coupons_adjustment_amount_cents: r.coupons_adjustment_amount_cents,
        created_at: timestamp(r.created_at),
        updated_at: timestamp(r.updated_at),
        file_url: None,
        self_billed: false,
        customer: rendered.customer.clone(),
        items,
        applied_taxes: n
            .taxes
            .iter()
            .map(|t| CreditNoteAppliedTaxObject {
                lago_id: t.id,
                lago_credit_note_id: r.id,
                lago_tax_id: t.tax_id,
                tax_name: t.tax_name.clone(),
                tax_code: t.tax_code.clone(),
                tax_rate: number(t.tax_rate),
                tax_description: t.tax_description.clone(),
                base_amount_cents: t.base_amount_cents,
                amount_cents: t.amount_cents,
                amount_currency: r.currency.clone(),
                created_at: timestamp(t.created_at),
            })
            .collect(),
    })
}
