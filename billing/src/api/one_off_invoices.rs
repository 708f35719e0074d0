//! `POST /api/v1/invoices`: a one-off invoice of add-on fees, issued at once and rendered like any invoice.

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::objects::invoice::InvoiceEnvelope;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::Error;
use crate::domain::one_off;
use crate::tracking::TrackEvent;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/invoices", post(create))
}

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    let input = one_off::parse(&take_root(body, "invoice")?);
    let id = crate::one_off::create(&state.pool, org, input, state.clock.now()).await?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let invoice = crate::store::invoices::get(&mut conn, org, id).await?.ok_or(ApiError::NotFound("invoice"))?;
    for fee in invoice.fees.iter().filter(|f| f.fee_type == "add_on") {
        state.tracker.track(org, || TrackEvent::AppliedAddOnCreated {
            customer_id: invoice.row.customer_id,
            addon_code: fee.item_code.clone(),
            addon_name: fee.item_name.clone(),
        });
    }
    state
        .tracker
        .track(org, || TrackEvent::InvoiceCreated { invoice_id: id, invoice_type: invoice.row.invoice_type.clone() });
    let object = super::invoices::render(&mut conn, org, &invoice).await?;
    Ok(Json(InvoiceEnvelope { invoice: object }))
}
