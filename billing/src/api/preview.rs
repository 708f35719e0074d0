//! `POST /api/v1/invoices/preview`: the invoice a customer's active subscriptions would get at the end of their
//! current period, with the usage so far, or (with `plan_code`) the first invoice of a new subscription to that
//! plan; stored nowhere. Its fees have no id, and the invoice the nil id (Lago
//! renders null there, which its spec forbids).

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use schemas::body::JsonObject;
use schemas::objects::invoice::InvoiceEnvelope;
use schemas::{ApiError, OrgId};
use serde_json::Value;

use super::ApiState;
use crate::Error;
use crate::invoicer::preview::{new_subscription, preview, subscriptions_of};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/invoices/preview", post(invoice_preview))
}

async fn invoice_preview(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<InvoiceEnvelope>, ApiError> {
    let Some(Value::Object(customer)) = body.get("customer") else {
        return Err(ApiError::BadRequest(
            "BadRequest: param is missing or the value is empty or invalid: customer".into(),
        ));
    };
    let external_ids: Vec<String> = match body.get("subscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(s)) => s
            .get("external_ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        // Lago's own answer for this case.
        Some(_) => return Err(ApiError::BadRequest("subscriptions_must_be_an_object".into())),
    };
    let external_customer_id = customer.get("external_id").and_then(Value::as_str).unwrap_or_default();
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let found = crate::store::customers::find_in(&mut conn, org, external_customer_id, false)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let subs = match body.get("plan_code").and_then(Value::as_str) {
        // A new subscription to this plan, stored nowhere (Lago's preview of a subscription to come).
        Some(plan_code) => {
            let billing_time = match body.get("billing_time").and_then(Value::as_str) {
                None => "calendar",
                Some(t @ ("calendar" | "anniversary")) => t,
                Some(_) => {
                    let mut e = schemas::ValidationErrors::default();
                    e.add("billing_time", "value_is_invalid");
                    return Err(ApiError::Validation(e));
                }
            };
            let at = match body.get("subscription_at").and_then(Value::as_str) {
                None => state.clock.now(),
                Some(text) => chrono::DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).map_err(|_| {
                    let mut e = schemas::ValidationErrors::default();
                    e.add("subscription_at", "invalid_date");
                    ApiError::Validation(e)
                })?,
            };
            let sub = new_subscription(&state.pool, org, found.id, plan_code, billing_time, at).await?;
            vec![sub.ok_or(ApiError::NotFound("plan"))?]
        }
        None => subscriptions_of(&state.pool, org, found.id, &external_ids).await?,
    };
    if subs.is_empty() {
        return Err(ApiError::NotFound("subscription"));
    }
    let invoice = preview(&state.pool, state.events.as_ref(), subs, state.clock.now()).await?;
    let mut object = super::invoices::render(&mut conn, org, &invoice).await?;
    for fee in &mut object.fees {
        fee.lago_id = None;
        fee.lago_invoice_id = None;
    }
    Ok(Json(InvoiceEnvelope { invoice: object }))
}
