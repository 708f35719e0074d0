//! `/api/v1/add_ons`: create, show by code, update, delete, list.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::objects::add_on::{AddOnEnvelope, AddOnObject, AddOnsPage};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::domain::add_on as domain;
use crate::store::add_ons::{self as store, AddOn};
use crate::tracking::TrackEvent;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/add_ons", post(create).get(list))
        .route("/api/v1/add_ons/{code}", get(show).put(update).delete(destroy))
}

const ROOT: &str = "add_on";

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<AddOnEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let taken = match input.requested_code() {
        Some(code) => store::code_taken(&state.pool, org, code, None).await?,
        None => false,
    };
    let tax_codes = input.tax_codes.clone().value();
    let attrs = domain::build_new(input, taken)?;
    let add_on = store::save(&state.pool, org, None, &attrs, tax_codes.as_deref()).await?;
    state.tracker.track(org, || TrackEvent::AddOnCreated {
        addon_code: add_on.row.code.clone(),
        addon_name: add_on.row.name.clone(),
        addon_invoice_display_name: add_on.row.invoice_display_name.clone(),
    });
    Ok(Json(AddOnEnvelope { add_on: render(&add_on) }))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<AddOnEnvelope>, ApiError> {
    let add_on = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(AddOnEnvelope { add_on: render(&add_on) }))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<AddOnEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let current = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    let taken = match input.requested_code() {
        Some(code) => store::code_taken(&state.pool, org, code, Some(current.row.id)).await?,
        None => false,
    };
    let tax_codes = input.tax_codes.clone().value();
    let attrs = domain::apply_update(&current.attrs(), input, taken)?;
    let add_on = store::save(&state.pool, org, Some(current.row.id), &attrs, tax_codes.as_deref()).await?;
    Ok(Json(AddOnEnvelope { add_on: render(&add_on) }))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<AddOnEnvelope>, ApiError> {
    let add_on = store::delete(&state.pool, org, &code).await?;
    Ok(Json(AddOnEnvelope { add_on: render(&add_on) }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(query): Query<PageQuery>,
) -> Result<Json<AddOnsPage>, ApiError> {
    let page = query.page();
    let (add_ons, total) = store::list(&state.pool, org, page.limit(), page.offset()).await?;
    Ok(Json(AddOnsPage { add_ons: add_ons.iter().map(render).collect(), meta: page.meta(total) }))
}

fn render(a: &AddOn) -> AddOnObject {
    let r = &a.row;
    AddOnObject {
        lago_id: r.id,
        name: r.name.clone(),
        invoice_display_name: r.invoice_display_name.clone(),
        code: r.code.clone(),
        amount_cents: r.amount_cents,
        amount_currency: r.amount_currency.clone(),
        created_at: timestamp(r.created_at),
        description: r.description.clone(),
        taxes: a.taxes.iter().map(super::taxes::render).collect(),
    }
}
