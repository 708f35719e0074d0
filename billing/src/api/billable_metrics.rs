//! `/api/v1/billable_metrics`: create, show by code, update, delete, list.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::objects::billable_metric::{
    BillableMetricEnvelope, BillableMetricFilterObject, BillableMetricObject, BillableMetricsPage, Counters,
};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::Error;
use crate::domain::billable_metric::{self as domain, Rejection};
use crate::store::billable_metrics::{self as store, Metric};
use crate::tracking::{MetricFacts, TrackEvent};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/billable_metrics", post(create).get(list))
        .route("/api/v1/billable_metrics/{code}", get(show).put(update).patch(update).delete(destroy))
}

const ROOT: &str = "billable_metric";

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Invalid(e) => Error::Validation(e),
            Rejection::Forbidden(code) => Error::Forbidden(code),
        }
    }
}

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<BillableMetricEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let code_taken = match domain::requested_code(&input) {
        Some(code) => store::code_taken(&state.pool, org, code, None).await?,
        None => false,
    };
    let (attrs, filters) = domain::build_new(input, code_taken).map_err(Error::from)?;
    let metric = store::create(&state.pool, org, &attrs, &filters).await?;
    state.tracker.track(org, || TrackEvent::BillableMetricCreated(facts(&metric)));
    Ok(envelope(&metric, true))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<BillableMetricEnvelope>, ApiError> {
    let metric = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(envelope(&metric, false))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<BillableMetricEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let current = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    let code_taken = match domain::requested_code(&input) {
        Some(new_code) => store::code_taken(&state.pool, org, new_code, Some(current.id)).await?,
        None => false,
    };
    let attached_to_plan = crate::store::plans::metric_attached_to_plan(&state.pool, org, current.id).await?;
    let metric = store::update(&state.pool, org, &code, move |current| {
        Ok(domain::apply_update(&current.attrs, input, attached_to_plan, code_taken)?)
    })
    .await?;
    Ok(envelope(&metric, true))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<BillableMetricEnvelope>, ApiError> {
    let metric = store::delete(&state.pool, org, &code).await?;
    state.tracker.track(org, || TrackEvent::BillableMetricDeleted(facts(&metric)));
    Ok(envelope(&metric, true))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(query): Query<PageQuery>,
) -> Result<Json<BillableMetricsPage>, ApiError> {
    let page = query.page();
    let (metrics, total) = store::list(&state.pool, org, page.limit(), page.offset()).await?;
    Ok(Json(BillableMetricsPage {
        billable_metrics: metrics.iter().map(|m| render(m, true)).collect(),
        meta: page.meta(total),
    }))
}

/// What usage tracking reports of a metric.
fn facts(m: &Metric) -> MetricFacts {
    MetricFacts {
        code: m.attrs.code.clone().unwrap_or_default(),
        name: m.attrs.name.clone().unwrap_or_default(),
        aggregation_type: m.attrs.aggregation_type.clone().unwrap_or_default(),
        aggregation_property: m.attrs.field_name.clone(),
    }
}

fn envelope(metric: &Metric, counters: bool) -> Json<BillableMetricEnvelope> {
    Json(BillableMetricEnvelope { billable_metric: render(metric, counters) })
}

fn render(m: &Metric, counters: bool) -> BillableMetricObject {
    let a = &m.attrs;
    BillableMetricObject {
        lago_id: m.id,
        name: a.name.clone().unwrap_or_default(),
        code: a.code.clone().unwrap_or_default(),
        description: a.description.clone(),
        aggregation_type: a.aggregation_type.clone().unwrap_or_default(),
        weighted_interval: a.weighted_interval.clone(),
        recurring: a.recurring,
        rounding_function: a.rounding_function.clone(),
        rounding_precision: a.rounding_precision,
        created_at: timestamp(m.created_at),
        field_name: a.field_name.clone(),
        expression: a.expression.clone().unwrap_or_default(),
        counters: counters.then(Counters::default),
        filters: m
            .filters
            .iter()
            .map(|f| BillableMetricFilterObject { key: f.key.clone(), values: f.values.clone() })
            .collect(),
    }
}
