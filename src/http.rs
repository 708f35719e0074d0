//! The HTTP application: every crate's routes behind authentication, `/health`, `/metrics`, Lago's 404 for unknown
//! routes, the body size limit, request metrics labelled by route template, and the one place server faults are
//! logged.

use std::sync::Arc;
use std::time::Instant;

use aggregate::EventStore;
use aggregate::postgres::PgEventStore;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use billing::api::ApiState;
use billing::tracking::Tracker;
use ingest::{EventLog, GroupCommitConfig, GroupCommitLog, IngestState};
use metrics_exporter_prometheus::PrometheusHandle;
use schemas::ApiError;
use schemas::error::InternalDetail;
use serde_json::json;
use sqlx::PgPool;

use crate::auth::{self, Keys};

/// Settings of the HTTP application.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub events_batch_limit: usize,
    pub group_commit: GroupCommitConfig,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: 5 * 1024 * 1024,
            events_batch_limit: ingest::api::DEFAULT_BATCH_LIMIT,
            group_commit: GroupCommitConfig::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub prometheus: PrometheusHandle,
    pub settings: HttpSettings,
    pub keys: Keys,
    pub ingest: IngestState,
    /// The time billing reads (the system's; tests set their own).
    pub clock: Arc<dyn billing::clock::Clock>,
    /// Where usage tracking goes; off unless the process turns it on.
    pub tracker: Tracker,
}

impl AppState {
    /// The embedded mode: events go through the group commit into Postgres, and are checked asynchronously for the
    /// events.errors report. Starts those background tasks on the current runtime.
    pub fn embedded(pool: PgPool, settings: HttpSettings) -> Self {
        let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone()));
        let recorder = ingest::validation::Recorder::start(pool.clone(), 4096);
        let log: Arc<dyn EventLog> =
            Arc::new(GroupCommitLog::start(store.clone(), settings.group_commit, Some(recorder)));
        AppState {
            keys: Keys::new(pool.clone()),
            ingest: IngestState { log, store, batch_limit: settings.events_batch_limit },
            pool,
            prometheus: crate::telemetry::prometheus(),
            settings,
            clock: Arc::new(billing::clock::SystemClock),
            tracker: Tracker::disabled(),
        }
    }

    /// The scale mode: events go to the Kafka log (acknowledged once the broker has them) and are read from
    /// ClickHouse, which the sink fills; invalid events are recorded by the sink.
    pub fn scale(pool: PgPool, settings: HttpSettings, scale: &crate::scale::Scale) -> Self {
        let store: Arc<dyn EventStore> = Arc::new(scale.store.clone());
        let log: Arc<dyn EventLog> = Arc::new(scale.log.clone());
        AppState {
            keys: Keys::new(pool.clone()),
            ingest: IngestState { log, store, batch_limit: settings.events_batch_limit },
            pool,
            prometheus: crate::telemetry::prometheus(),
            settings,
            clock: Arc::new(billing::clock::SystemClock),
            tracker: Tracker::disabled(),
        }
    }
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    let api = billing::api::routes()
        .with_state(ApiState {
            pool: state.pool.clone(),
            events: state.ingest.store.clone(),
            clock: state.clock.clone(),
            tracker: state.tracker.clone(),
        })
        .merge(ingest::routes().with_state(state.ingest.clone()))
        .route_layer(middleware::from_fn_with_state(state.keys.clone(), auth::require_org));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .with_state(state.clone())
        .route_layer(middleware::from_fn(tag_route))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn(observe))
}

/// Lago's catch-all: unknown paths and methods are 404 `resource_not_found`, before authentication.
async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// 200 once the server runs (it listens only after migrations) and its database answers.
async fn health(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool).await {
        Ok(_) => Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.prometheus.render()).into_response()
}

/// The matched route template, carried from routing (inside) to `observe` (outside) on the response.
#[derive(Clone)]
struct RouteTemplate(String);

async fn tag_route(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Some(m) = matched {
        response.extensions_mut().insert(RouteTemplate(m.as_str().to_owned()));
    }
    response
}

/// Counts and times every request by method, route template and status, and logs each server fault once.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    let route = response.extensions().get::<RouteTemplate>().map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    let status = response.status().as_u16().to_string();
    let labels = [("method", method.clone()), ("route", route), ("status", status)];
    metrics::counter!("billstream_http_requests_total", &labels).increment(1);
    metrics::histogram!("billstream_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() {
        tracing::error!(%method, %path, error = %detail, "request failed");
    }
    response
}
