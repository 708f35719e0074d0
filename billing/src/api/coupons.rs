//! `/api/v1/coupons` (create, show, update, delete, list) and applied coupons (`POST /applied_coupons`, lists,
//! `DELETE /customers/{external_customer_id}/applied_coupons/{id}`).

use axum::extract::{Path, Query, RawQuery, State};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use schemas::body::{JsonObject, take_root};
use schemas::objects::coupon::{
    AppliedCouponEnvelope, AppliedCouponObject, AppliedCouponsPage, CouponEnvelope, CouponObject, CouponsPage,
};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};
use uuid::Uuid;

use super::ApiState;
use crate::domain::coupon::{self as domain, CouponInput};
use crate::store::coupons::{self as store, Applied, AppliedFilter, Coupon};
use crate::store::customers;
use crate::tracking::TrackEvent;
use crate::{Error, Result};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/coupons", post(create).get(list))
        .route("/api/v1/coupons/{code}", get(show).put(update).delete(destroy))
        .route("/api/v1/applied_coupons", post(apply).get(list_applied))
        .route("/api/v1/customers/{external_id}/applied_coupons", get(list_customer_applied))
        .route("/api/v1/customers/{external_id}/applied_coupons/{id}", delete(remove_applied))
}

const ROOT: &str = "coupon";

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<CouponEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let coupon = save(&mut tx, org, None, &input).await?;
    tx.commit().await.map_err(Error::from)?;
    state.tracker.track(org, || TrackEvent::CouponCreated {
        coupon_code: coupon.row.code.clone(),
        coupon_name: coupon.row.name.clone(),
    });
    Ok(Json(CouponEnvelope { coupon: render(&coupon) }))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<CouponEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let row = store::find_row(&mut tx, org, &code, true).await?.ok_or(ApiError::NotFound(ROOT))?;
    let current = store::load(&mut tx, org, vec![row]).await?.pop().ok_or(ApiError::NotFound(ROOT))?;
    let coupon = save(&mut tx, org, Some(&current), &input).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(CouponEnvelope { coupon: render(&coupon) }))
}

/// Validates and writes a new coupon or an update. Limitations: plans or metrics (not both), every code known.
async fn save(
    conn: &mut sqlx::PgConnection,
    org: Uuid,
    current: Option<&Coupon>,
    input: &CouponInput,
) -> Result<Coupon> {
    let applied = match current {
        Some(c) => store::is_applied(conn, org, c.row.id).await?,
        None => false,
    };
    let code_taken = match input.requested_code() {
        Some(code) if !applied => store::code_taken(conn, org, code, current.map(|c| c.row.id)).await?,
        _ => false,
    };
    let attrs = domain::apply(current.map(|c| c.row.attrs()).as_ref(), input, applied, code_taken, Utc::now())?;
    let mut targets = None;
    if !applied {
        let plan_codes = input.applies_to.plan_codes.clone().filter(|c| !c.is_empty());
        let metric_codes = input.applies_to.billable_metric_codes.clone().filter(|c| !c.is_empty());
        let plans = match &plan_codes {
            Some(codes) => Some(store::plan_ids(conn, org, codes).await?.ok_or(Error::NotFound("plans"))?),
            None => None,
        };
        let metrics = match &metric_codes {
            Some(codes) => Some(store::metric_ids(conn, org, codes).await?.ok_or(Error::NotFound("billable_metrics"))?),
            None => None,
        };
        if plans.is_some() && metrics.is_some() {
            return Err(Error::NotAllowed("only_one_limitation_type_per_coupon_allowed"));
        }
        let sent = input.applies_to.plan_codes.is_some() || input.applies_to.billable_metric_codes.is_some();
        if current.is_none() || sent {
            targets = Some((plans.unwrap_or_default(), metrics.unwrap_or_default()));
        }
    }
    let row = store::write(conn, org, current.map(|c| c.row.id), &attrs).await?;
    if let Some((plans, metrics)) = targets {
        store::set_targets(conn, org, row.id, &plans, &metrics).await?;
    }
    store::load(conn, org, vec![row]).await?.pop().ok_or(Error::NotFound("coupon"))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<CouponEnvelope>, ApiError> {
    let coupon = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(CouponEnvelope { coupon: render(&coupon) }))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<CouponEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let row = store::find_row(&mut tx, org, &code, true).await?.ok_or(ApiError::NotFound(ROOT))?;
    store::delete(&mut tx, org, row.id).await?;
    let deleted = sqlx::query_as(
        "SELECT id, name, code, description, coupon_type, amount_cents, amount_currency, percentage_rate, frequency,
                frequency_duration, reusable, expiration, expiration_at, status, terminated_at, created_at, deleted_at
         FROM coupons WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(row.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(Error::from)?;
    let coupon = store::load(&mut tx, org, vec![deleted]).await?.pop().ok_or(ApiError::NotFound(ROOT))?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(CouponEnvelope { coupon: render(&coupon) }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(query): Query<PageQuery>,
) -> Result<Json<CouponsPage>, ApiError> {
    let page = query.page();
    let (coupons, total) = store::list(&state.pool, org, page.limit(), page.offset()).await?;
    Ok(Json(CouponsPage { coupons: coupons.iter().map(render).collect(), meta: page.meta(total) }))
}

fn rate(r: Option<rust_decimal::Decimal>) -> Option<String> {
    r.map(|r| r.normalize().to_string())
}

fn render(c: &Coupon) -> CouponObject {
    let r = &c.row;
    CouponObject {
        lago_id: r.id,
        name: r.name.clone(),
        code: r.code.clone(),
        description: r.description.clone(),
        coupon_type: r.coupon_type.clone(),
        amount_cents: r.amount_cents,
        amount_currency: r.amount_currency.clone(),
        percentage_rate: rate(r.percentage_rate),
        frequency: r.frequency.clone(),
        frequency_duration: r.frequency_duration.map(i64::from),
        reusable: r.reusable,
        limited_plans: !c.plan_codes.is_empty(),
        limited_billable_metrics: !c.billable_metric_codes.is_empty(),
        plan_codes: c.plan_codes.clone(),
        billable_metric_codes: c.billable_metric_codes.clone(),
        created_at: timestamp(r.created_at),
        expiration: r.expiration.clone(),
        expiration_at: r.expiration_at.map(timestamp),
        terminated_at: r.terminated_at.map(timestamp),
    }
}

async fn apply(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<AppliedCouponEnvelope>, ApiError> {
    let body = take_root(body, "applied_coupon")?;
    // Identifiers as Rails casts them (a number is its text).
    let text =
        |k: &str| schemas::input::Fields::new(&body).string(k).value().map(|s| s.trim().to_owned()).unwrap_or_default();
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let customer = customers::find_in(&mut tx, org, &text("external_customer_id"), true)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let coupon = store::find_row(&mut tx, org, &text("coupon_code"), false)
        .await?
        .filter(|c| c.status == "active")
        .ok_or(ApiError::NotFound("coupon"))?;
    let terms = domain::applied_terms(&coupon.attrs(), &body)?;
    if store::overlaps(&mut tx, org, coupon.id, customer.id).await? {
        return Err(ApiError::NotAllowed("plan_overlapping"));
    }
    if !coupon.reusable && store::applied_before(&mut tx, org, coupon.id, customer.id).await? {
        return Err(schemas::error::field_error("coupon", "coupon_is_not_reusable").into());
    }
    if coupon.coupon_type == "fixed_amount"
        && let Some(currency) = &terms.amount_currency
    {
        customers::set_currency_if_blank(&mut tx, org, customer.id, currency).await?;
    }
    let applied = store::apply(&mut tx, org, coupon.id, customer.id, &terms).await?;
    tx.commit().await.map_err(Error::from)?;
    state.tracker.track(org, || TrackEvent::AppliedCouponCreated {
        customer_id: customer.id,
        coupon_code: coupon.code.clone(),
        coupon_name: coupon.name.clone(),
    });
    Ok(Json(AppliedCouponEnvelope { applied_coupon: render_applied(&applied) }))
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

async fn list_applied_with(
    state: &ApiState,
    org: Uuid,
    raw: &Option<String>,
    external_customer_id: Option<String>,
) -> Result<Json<AppliedCouponsPage>, ApiError> {
    let pairs = query_pairs(raw);
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let page = PageQuery { page: get("page"), per_page: get("per_page") }.page();
    let filter = AppliedFilter {
        status: get("status"),
        external_customer_id: external_customer_id.or_else(|| get("external_customer_id")),
        coupon_codes: pairs.iter().filter(|(k, _)| k == "coupon_code[]").map(|(_, v)| v.clone()).collect(),
    };
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let (rows, total) = store::list_applied(&mut tx, org, &filter, page.limit(), page.offset()).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(AppliedCouponsPage {
        applied_coupons: rows
            .iter()
            .map(|a| AppliedCouponObject { credits: Some(Vec::new()), ..render_applied(a) })
            .collect(),
        meta: page.meta(total),
    }))
}

async fn list_applied(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AppliedCouponsPage>, ApiError> {
    list_applied_with(&state, org, &raw, None).await
}

async fn list_customer_applied(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_customer_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AppliedCouponsPage>, ApiError> {
    customers::find(&state.pool, org, &external_customer_id).await?.ok_or(ApiError::NotFound("customer"))?;
    list_applied_with(&state, org, &raw, Some(external_customer_id)).await
}

async fn remove_applied(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((external_customer_id, id)): Path<(String, String)>,
) -> Result<Json<AppliedCouponEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let customer =
        customers::find_in(&mut tx, org, &external_customer_id, false).await?.ok_or(ApiError::NotFound("customer"))?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("applied_coupon"))?;
    let applied = store::get_applied(&mut tx, org, id)
        .await?
        .filter(|a| a.customer_id == customer.id)
        .ok_or(ApiError::NotFound("applied_coupon"))?;
    store::terminate_applied(&mut tx, org, applied.id).await?;
    let applied = store::get_applied(&mut tx, org, applied.id).await?.ok_or(ApiError::NotFound("applied_coupon"))?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(AppliedCouponEnvelope { applied_coupon: render_applied(&applied) }))
}

fn render_applied(a: &Applied) -> AppliedCouponObject {
    // Nothing is consumed until invoices exist, so a one-off fixed amount has all of it left.
    let remaining = (a.frequency == "once" && a.coupon_type == "fixed_amount").then_some(a.amount_cents).flatten();
    AppliedCouponObject {
        lago_id: a.id,
        lago_coupon_id: a.coupon_id,
        coupon_code: a.coupon_code.clone(),
        coupon_name: a.coupon_name.clone(),
        coupon_description: a.coupon_description.clone(),
        coupon_status: a.coupon_status.clone(),
        coupon_deleted_at: a.coupon_deleted_at.map(timestamp),
        lago_customer_id: a.customer_id,
        external_customer_id: a.external_customer_id.clone(),
        status: a.status.clone(),
        amount_cents: a.amount_cents,
        amount_cents_remaining: remaining,
        amount_currency: a.amount_currency.clone(),
        percentage_rate: rate(a.percentage_rate),
        frequency: a.frequency.clone(),
        frequency_duration: a.frequency_duration.map(i64::from),
        frequency_duration_remaining: a.frequency_duration_remaining.map(i64::from),
        expiration_at: a.coupon_expiration_at.map(timestamp),
        created_at: timestamp(a.created_at),
        terminated_at: a.terminated_at.map(timestamp),
        credits: None,
    }
}
