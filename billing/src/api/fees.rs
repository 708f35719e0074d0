//! `/api/v1/fees`: every fee of the organization, as its invoice renders it, including the fees without an invoice
//! that charges paid in advance but not invoiceable create. Only those can change payment status or be deleted;
//! an invoiced fee follows its invoice (Lago's `invoiced_fee`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use schemas::body::JsonObject;
use schemas::objects::invoice::FeeObject;
use schemas::pagination::{PageQuery, PaginationMeta};
use schemas::{ApiError, OrgId, ValidationErrors};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::ApiState;
use super::invoices::fee_object;
use crate::Error;
use crate::store::fees::{self as store, Fee, ListFilter, Refused};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/fees", get(list))
        .route("/api/v1/fees/{lago_id}", get(show).put(update).delete(destroy))
}

const ROOT: &str = "fee";
const FEE_TYPES: [&str; 6] = ["charge", "add_on", "subscription", "credit", "commitment", "fixed_charge"];
const PAYMENT_STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "refunded"];

#[derive(Serialize)]
struct FeeEnvelope {
    fee: FeeObject,
}

#[derive(Serialize)]
struct FeesPage {
    fees: Vec<FeeObject>,
    meta: PaginationMeta,
}

fn render(f: &Fee) -> FeeObject {
    let taxes: Vec<_> = f.taxes.iter().collect();
    fee_object(&f.row, &taxes, f.invoice_id, f.customer_id, f.external_customer_id.clone())
}

/// A malformed id finds nothing, as in Lago.
fn lago_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::NotFound(ROOT))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<FeeEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let fee = store::get(&mut conn, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(FeeEnvelope { fee: render(&fee) }))
}

/// An ISO 8601 time filter; anything else is Lago's `invalid_date`.
fn time(q: &BTreeMap<String, String>, key: &str, errors: &mut ValidationErrors) -> Option<DateTime<Utc>> {
    let raw = q.get(key)?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => Some(d.and_time(chrono::NaiveTime::MIN).and_utc()),
            Err(_) => {
                errors.add(key, "invalid_date");
                None
            }
        },
    }
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(page): Query<PageQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<FeesPage>, ApiError> {
    let q: BTreeMap<String, String> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let mut errors = ValidationErrors::default();
    let fee_type = q.get("fee_type").cloned();
    if fee_type.as_deref().is_some_and(|t| !FEE_TYPES.contains(&t)) {
        errors.add("fee_type", "value_is_invalid");
    }
    let payment_status = q.get("payment_status").cloned();
    if payment_status.as_deref().is_some_and(|s| !PAYMENT_STATUSES.contains(&s)) {
        errors.add("payment_status", "value_is_invalid");
    }
    let mut range = |from: &str, to: &str| (time(&q, from, &mut errors), time(&q, to, &mut errors));
    let created_at = range("created_at_from", "created_at_to");
    let succeeded_at = range("succeeded_at_from", "succeeded_at_to");
    let failed_at = range("failed_at_from", "failed_at_to");
    let refunded_at = range("refunded_at_from", "refunded_at_to");
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = ListFilter {
        external_subscription_id: q.get("external_subscription_id").cloned(),
        external_customer_id: q.get("external_customer_id").cloned(),
        currency: q.get("currency").cloned(),
        fee_type,
        billable_metric_code: q.get("billable_metric_code").cloned(),
        payment_status,
        event_transaction_id: q.get("event_transaction_id").cloned(),
        created_at,
        succeeded_at,
        failed_at,
        refunded_at,
    };
    let p = page.page();
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let (fees, total) = store::list(&mut conn, org, &filter, p.limit(), p.offset()).await?;
    Ok(Json(FeesPage { fees: fees.iter().map(render).collect(), meta: p.meta(total) }))
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::NotFound => ApiError::NotFound(ROOT),
        Refused::Invoiced => ApiError::NotAllowed("invoiced_fee"),
    }
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<FeeEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let Some(Value::Object(input)) = body.get("fee") else {
        return Err(ApiError::BadRequest("BadRequest: param is missing or the value is empty or invalid: fee".into()));
    };
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    if let Some(status) = input.get("payment_status") {
        let status = status.as_str().filter(|s| PAYMENT_STATUSES.contains(s));
        // The fee must exist (and be standalone) before its input is judged, as in Lago.
        let current = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
        if current.invoice_id.is_some() {
            return Err(ApiError::NotAllowed("invoiced_fee"));
        }
        let Some(status) = status else {
            let mut errors = ValidationErrors::default();
            errors.add("payment_status", "value_is_invalid");
            return Err(ApiError::Validation(errors));
        };
        store::set_payment_status(&mut tx, org, id, status).await?.map_err(refused)?;
    }
    let fee = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(FeeEnvelope { fee: render(&fee) }))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<FeeEnvelope>, ApiError> {
    let id = lago_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let fee = store::get(&mut tx, org, id).await?.ok_or(ApiError::NotFound(ROOT))?;
    store::discard(&mut tx, org, id).await?.map_err(refused)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(FeeEnvelope { fee: render(&fee) }))
}
