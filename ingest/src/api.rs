//! `/api/v1/events`: single and batch ingest, one event by transaction id, and the event list.

use std::sync::Arc;
use std::time::Instant;

use aggregate::{EventQuery, EventStore};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use schemas::body::RawBody;
use schemas::event::Event;
use schemas::objects::event::{EventEnvelope, EventObject, EventsPage, write_events_envelope};
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId, ValidationErrors};
use serde::Deserialize;

use crate::log::{EventLog, LogError};
use crate::metrics as names;
use crate::parse::{self, Context};

/// Lago's default batch size limit.
pub const DEFAULT_BATCH_LIMIT: usize = 100;

#[derive(Clone)]
pub struct IngestState {
    pub log: Arc<dyn EventLog>,
    pub store: Arc<dyn EventStore>,
    pub batch_limit: usize,
}

pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/api/v1/events", post(create).get(list))
        .route("/api/v1/events/batch", post(create_batch))
        .route("/api/v1/events/{transaction_id}", get(show))
}

fn context(state: &IngestState, org: OrgId) -> Context {
    Context { organization_id: org.0, received_at: Utc::now(), batch_limit: state.batch_limit }
}

fn rejected(n: u64) {
    ::metrics::counter!(names::EVENTS_TOTAL, "outcome" => "rejected").increment(n);
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Unavailable(reason) => ApiError::Unavailable(reason),
            LogError::Failed(reason) => ApiError::Internal(reason),
        }
    }
}

async fn append(state: &IngestState, events: Vec<Event>) -> Result<(), ApiError> {
    state.log.append(events).await?;
    Ok(())
}

async fn create(
    State(state): State<IngestState>,
    Extension(org): Extension<OrgId>,
    RawBody(body): RawBody,
) -> Result<Json<EventEnvelope>, ApiError> {
    let started = Instant::now();
    let ctx = context(&state, org);
    let event = parse::parse_single(&mut body.to_vec(), &ctx).inspect_err(|_| rejected(1))?;
    let object = EventObject::render(&event);
    append(&state, vec![event]).await?;
    ::metrics::histogram!(names::REQUEST_DURATION, "endpoint" => "single").record(started.elapsed().as_secs_f64());
    Ok(Json(EventEnvelope { event: object }))
}

async fn create_batch(
    State(state): State<IngestState>,
    Extension(org): Extension<OrgId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let ctx = context(&state, org);
    let events = parse::parse_batch(&mut body.to_vec(), &ctx).inspect_err(|_| rejected(1))?;
    // About 330 bytes of response per event.
    let mut rendered = Vec::with_capacity(64 + events.len() * 340);
    write_events_envelope(&events, &mut rendered);
    append(&state, events).await?;
    ::metrics::histogram!(names::REQUEST_DURATION, "endpoint" => "batch").record(started.elapsed().as_secs_f64());
    Ok(([(header::CONTENT_TYPE, "application/json")], rendered).into_response())
}

async fn show(
    State(state): State<IngestState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(transaction_id): Path<String>,
) -> Result<Json<EventEnvelope>, ApiError> {
    let event = state.store.find(org, &transaction_id).await.map_err(ApiError::internal)?;
    let event = event.ok_or(ApiError::NotFound("event"))?;
    Ok(Json(EventEnvelope { event: EventObject::render(&event) }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    external_subscription_id: Option<String>,
    code: Option<String>,
    timestamp_from: Option<String>,
    timestamp_to: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// An ISO 8601 date or date-time (`2022-08-08`, `2022-08-08T10:00:00Z`), as Lago's list filters take.
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

async fn list(
    State(state): State<IngestState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(q): Query<ListQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let mut errors = ValidationErrors::new();
    let mut bound = |field: &str, value: &Option<String>| match value.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let t = parse_instant(v);
            if t.is_none() {
                errors.add(field, "invalid_date");
            }
            t
        }
    };
    let timestamp_from = bound("timestamp_from", &q.timestamp_from);
    let timestamp_to = bound("timestamp_to", &q.timestamp_to);
    errors.into_result()?;
    let page = q.page.page();
    let query = EventQuery {
        organization_id: org,
        external_subscription_id: q.external_subscription_id.filter(|s| !s.is_empty()),
        code: q.code.filter(|s| !s.is_empty()),
        timestamp_from,
        timestamp_to,
        limit: page.limit(),
        offset: page.offset(),
    };
    let (events, total) = state.store.list(&query).await.map_err(ApiError::internal)?;
    Ok(Json(EventsPage { events: events.iter().map(EventObject::render).collect(), meta: page.meta(total) }))
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn list_bounds_take_dates_and_datetimes() {
        assert_eq!(parse_instant("2022-08-08").unwrap().to_rfc3339(), "2022-08-08T00:00:00+00:00");
        assert_eq!(parse_instant("2022-08-08T10:00:00+02:00").unwrap().to_rfc3339(), "2022-08-08T08:00:00+00:00");
        assert!(parse_instant("yesterday").is_none());
    }
}
