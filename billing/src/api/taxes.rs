//! `/api/v1/taxes`: create, show by code, update, delete, list.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::objects::tax::{TaxEnvelope, TaxObject, TaxesPage};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::domain::tax as domain;
use crate::store::taxes::{self as store, Tax};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/taxes", post(create).get(list))
        .route("/api/v1/taxes/{code}", get(show).put(update).delete(destroy))
}

const ROOT: &str = "tax";

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<TaxEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let taken = match input.requested_code() {
        Some(code) => store::code_taken(&state.pool, org, code, None).await?,
        None => false,
    };
    let attrs = domain::build_new(input, taken)?;
    let tax = store::create(&state.pool, org, &attrs).await?;
    Ok(Json(TaxEnvelope { tax: render(&tax) }))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<TaxEnvelope>, ApiError> {
    let tax = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(TaxEnvelope { tax: render(&tax) }))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<TaxEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let current = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    let taken = match input.requested_code() {
        Some(code) => store::code_taken(&state.pool, org, code, Some(current.id)).await?,
        None => false,
    };
    let attrs = domain::apply_update(&current.attrs(), input, taken)?;
    let tax = store::update(&state.pool, org, current.id, &attrs).await?;
    Ok(Json(TaxEnvelope { tax: render(&tax) }))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<TaxEnvelope>, ApiError> {
    let tax = store::delete(&state.pool, org, &code).await?;
    Ok(Json(TaxEnvelope { tax: render(&tax) }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(query): Query<PageQuery>,
) -> Result<Json<TaxesPage>, ApiError> {
    let page = query.page();
    let (taxes, total) = store::list(&state.pool, org, page.limit(), page.offset()).await?;
    Ok(Json(TaxesPage { taxes: taxes.iter().map(render).collect(), meta: page.meta(total) }))
}

pub(super) fn render(t: &Tax) -> TaxObject {
    TaxObject {
        lago_id: t.id,
        name: t.name.clone(),
        code: t.code.clone(),
        rate: t.rate.normalize(),
        description: t.description.clone(),
        applied_to_organization: t.applied_to_organization,
        add_ons_count: 0,
        customers_count: 0,
        plans_count: 0,
        charges_count: 0,
        commitments_count: 0,
        created_at: timestamp(t.created_at),
    }
}
