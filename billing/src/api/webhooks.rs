//! Webhook endpoints (`/api/v1/webhook_endpoints`, Lago's CRUD), the public key of JWT signatures
//! (`/api/v1/webhooks/public_key` and `json_public_key`), and two Billstream additions Lago's REST API lacks (its
//! UI has them through GraphQL): the webhooks sent to an endpoint with every attempt
//! (`GET /api/v1/webhook_endpoints/{lago_id}/webhooks`) and sending a failed one again
//! (`POST /api/v1/webhooks/{lago_id}/retry`).
//!
//! Also the objects of webhooks, rendered by the same functions as the API's responses.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use schemas::body::{JsonObject, take_root};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId, ValidationErrors};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::ApiState;
use crate::Error;
use crate::webhooks::{dispatcher, signing};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/webhook_endpoints", post(create).get(list))
        .route("/api/v1/webhook_endpoints/{lago_id}", get(show).put(update).delete(destroy))
        .route("/api/v1/webhook_endpoints/{lago_id}/webhooks", get(list_webhooks))
        .route("/api/v1/webhooks/public_key", get(public_key))
        .route("/api/v1/webhooks/json_public_key", get(json_public_key))
        .route("/api/v1/webhooks/{lago_id}/retry", post(retry))
}

const ROOT: &str = "webhook_endpoint";
/// Lago's limit of endpoints per organization.
const MAX_ENDPOINTS: i64 = 10;

/// Every webhook type Lago defines: an endpoint may subscribe to any of them, sent by Billstream or not yet.
const LAGO_TYPES: &[&str] = &[
    "alert.triggered",
    "billable_metric.created",
    "billable_metric.updated",
    "billable_metric.deleted",
    "customer.created",
    "customer.updated",
    "customer.accounting_provider_created",
    "customer.accounting_provider_error",
    "customer.crm_provider_created",
    "customer.crm_provider_error",
    "customer.payment_provider_created",
    "customer.payment_provider_error",
    "customer.checkout_url_generated",
    "customer.tax_provider_error",
    "customer.vies_check",
    "credit_note.created",
    "credit_note.generated",
    "credit_note.provider_refund_failure",
    "dunning_campaign.finished",
    "event.error",
    "events.errors",
    "feature.created",
    "feature.updated",
    "feature.deleted",
    "fee.created",
    "fee.tax_provider_error",
    "invoice.created",
    "invoice.one_off_created",
    "invoice.paid_credit_added",
    "invoice.generated",
    "invoice.drafted",
    "invoice.ready_to_finalize",
    "invoice.voided",
    "invoice.deleted",
    "invoice.payment_dispute_lost",
    "invoice.payment_status_updated",
    "invoice.payment_overdue",
    "invoice.payment_failure",
    "invoice.resynced",
    "integration.provider_error",
    "order.created",
    "order.executed",
    "order_form.created",
    "order_form.signed",
    "order_form.expired",
    "order_form.voided",
    "payment.succeeded",
    "payment.requires_action",
    "payment_provider.error",
    "payment_receipt.created",
    "payment_receipt.generated",
    "payment_request.created",
    "payment_request.payment_failure",
    "payment_request.payment_status_updated",
    "plan.created",
    "plan.updated",
    "plan.deleted",
    "quote.created",
    "quote.approved",
    "quote.voided",
    "subscription.canceled",
    "subscription.incomplete",
    "subscription.terminated",
    "subscription.started",
    "subscription.updated",
    "subscription.termination_alert",
    "subscription.trial_ended",
    "subscription.usage_threshold_reached",
    "wallet.created",
    "wallet.depleted_ongoing_balance",
    "wallet.terminated",
    "wallet.updated",
    "wallet_transaction.created",
    "wallet_transaction.updated",
    "wallet_transaction.payment_failure",
];

#[derive(Debug, Clone, sqlx::FromRow)]
struct Endpoint {
    id: Uuid,
    organization_id: Uuid,
    webhook_url: String,
    signature_algo: String,
    name: Option<String>,
    event_types: Option<Vec<String>>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, organization_id, webhook_url, signature_algo, name, event_types, created_at";

fn render(e: &Endpoint) -> Value {
    json!({
        "lago_id": e.id,
        "lago_organization_id": e.organization_id,
        "webhook_url": e.webhook_url,
        "signature_algo": e.signature_algo,
        "name": e.name,
        "event_types": e.event_types,
        "created_at": timestamp(e.created_at),
    })
}

/// The fields of a create or update, validated together (every error at once, in Lago's codes).
struct Input {
    webhook_url: Option<String>,
    signature_algo: Option<Option<String>>,
    name: Option<Option<String>>,
    event_types: Option<Option<Vec<String>>>,
}

fn parse_input(body: &Map<String, Value>) -> Result<Input, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let webhook_url = match body.get("webhook_url") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            if !url_is_valid(s.trim()) {
                errors.add("webhook_url", "url_is_invalid");
            }
            Some(s.trim().to_owned())
        }
        None => None,
        Some(_) => {
            errors.add("webhook_url", "value_is_mandatory");
            None
        }
    };
    let signature_algo = match body.get("signature_algo") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s == "jwt" || s == "hmac" => Some(Some(s.clone())),
        Some(_) => {
            errors.add("signature_algo", "value_is_invalid");
            None
        }
    };
    let name = match body.get("name") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => {
            errors.add("name", "value_is_invalid");
            None
        }
    };
    let event_types = match body.get("event_types") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => {
            // As Lago: trimmed, lower-cased, blanks and repeats dropped; `["*"]` means every type.
            let mut types: Vec<String> = Vec::new();
            for item in items {
                let t = item.as_str().map(|s| s.trim().to_lowercase()).unwrap_or_default();
                if !t.is_empty() && !types.contains(&t) {
                    types.push(t);
                }
            }
            if types == ["*"] {
                Some(None)
            } else {
                let invalid: Vec<&String> = types.iter().filter(|t| !LAGO_TYPES.contains(&t.as_str())).collect();
                if !invalid.is_empty() {
                    let list = serde_json::to_string(&invalid).unwrap_or_default();
                    errors.add("event_types", format!("contains invalid types: {list}"));
                }
                Some(Some(types))
            }
        }
        Some(_) => {
            errors.add("event_types", "must_be_array");
            None
        }
    };
    errors.into_result()?;
    Ok(Input { webhook_url, signature_algo, name, event_types })
}

/// Lago's check: an http(s) URL with a host.
fn url_is_valid(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    !host.is_empty() && !url.contains(char::is_whitespace)
}

fn endpoint_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::NotFound(ROOT))
}

fn url_taken(e: sqlx::Error) -> ApiError {
    if crate::error::is_unique_violation(&e) {
        schemas::error::field_error("webhook_url", "value_already_exist").into()
    } else {
        Error::Database(e).into()
    }
}

async fn find(conn: &mut PgConnection, org: Uuid, id: Uuid, lock: bool) -> Result<Endpoint, ApiError> {
    let lock = if lock { "FOR UPDATE" } else { "" };
    sqlx::query_as(crate::store::sql(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE organization_id = $1 AND id = $2 {lock}"
    )))
    .bind(org)
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(Error::from)?
    .ok_or(ApiError::NotFound(ROOT))
}

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let body = take_root(body, ROOT)?;
    let mut errors = ValidationErrors::default();
    let input = match parse_input(&body) {
        Ok(i) => Some(i),
        Err(e) => {
            errors.merge(e);
            None
        }
    };
    if input.as_ref().is_some_and(|i| i.webhook_url.is_none()) && !errors.has("webhook_url") {
        errors.add("webhook_url", "value_is_mandatory");
    }
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    // One writer of an organization's endpoints at a time: the limit holds under concurrent creates.
    sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
        .bind(org)
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE organization_id = $1")
        .bind(org)
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::from)?;
    if count >= MAX_ENDPOINTS {
        errors.add("base", "exceeded_limit");
    }
    let (Some(input), true) = (input, errors.is_empty()) else { return Err(ApiError::Validation(errors)) };
    let endpoint: Endpoint = sqlx::query_as(crate::store::sql(format!(
        "INSERT INTO webhook_endpoints (id, organization_id, webhook_url, signature_algo, name, event_types)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(org)
    .bind(input.webhook_url)
    // Lago's default is JWT.
    .bind(input.signature_algo.flatten().unwrap_or_else(|| "jwt".into()))
    .bind(input.name.flatten())
    .bind(input.event_types.flatten())
    .fetch_one(&mut *tx)
    .await
    .map_err(url_taken)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(json!({ ROOT: render(&endpoint) })))
}

/// Points the organization's first endpoint at `url`, creating it (JWT-signed, Lago's default) when there is none:
/// Lago's `PUT /organizations` `webhook_url`.
pub(super) async fn set_first_endpoint(conn: &mut PgConnection, org: Uuid, url: &str) -> Result<(), ApiError> {
    let first: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM webhook_endpoints WHERE organization_id = $1 ORDER BY created_at, id LIMIT 1 FOR UPDATE",
    )
    .bind(org)
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::from)?;
    let q = match first {
        Some(id) => sqlx::query(
            "UPDATE webhook_endpoints SET webhook_url = $3, updated_at = now() WHERE organization_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(url),
        None => sqlx::query("INSERT INTO webhook_endpoints (organization_id, id, webhook_url) VALUES ($1, $2, $3)")
            .bind(org)
            .bind(Uuid::new_v4())
            .bind(url),
    };
    q.execute(conn).await.map_err(url_taken)?;
    Ok(())
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = page.page();
    let rows: Vec<Endpoint> = sqlx::query_as(crate::store::sql(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE organization_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
    )))
    .bind(org)
    .bind(p.limit())
    .bind(p.offset())
    .fetch_all(&state.pool)
    .await
    .map_err(Error::from)?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE organization_id = $1")
        .bind(org)
        .fetch_one(&state.pool)
        .await
        .map_err(Error::from)?;
    let items: Vec<Value> = rows.iter().map(render).collect();
    Ok(Json(json!({"webhook_endpoints": items, "meta": p.meta(total)})))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = endpoint_id(&id)?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    Ok(Json(json!({ ROOT: render(&find(&mut conn, org, id, false).await?) })))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = endpoint_id(&id)?;
    let body = take_root(body, ROOT)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let current = find(&mut tx, org, id, true).await?;
    let input = parse_input(&body)?;
    let endpoint: Endpoint = sqlx::query_as(crate::store::sql(format!(
        "UPDATE webhook_endpoints SET webhook_url = $3, signature_algo = $4, name = $5, event_types = $6,
             updated_at = now()
         WHERE organization_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(org)
    .bind(id)
    .bind(input.webhook_url.unwrap_or(current.webhook_url))
    .bind(match input.signature_algo {
        None => current.signature_algo,
        Some(algo) => algo.unwrap_or_else(|| "jwt".into()),
    })
    .bind(input.name.unwrap_or(current.name))
    .bind(input.event_types.unwrap_or(current.event_types))
    .fetch_one(&mut *tx)
    .await
    .map_err(url_taken)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(json!({ ROOT: render(&endpoint) })))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = endpoint_id(&id)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let endpoint = find(&mut tx, org, id, true).await?;
    // Its webhooks go with it, as in Lago.
    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(json!({ ROOT: render(&endpoint) })))
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: Uuid,
    webhook_endpoint_id: Uuid,
    webhook_type: String,
    object_type: String,
    object_id: Option<Uuid>,
    endpoint: String,
    status: String,
    retries: i32,
    http_status: Option<i32>,
    response: Option<String>,
    body: Option<String>,
    last_retried_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    webhook_id: Uuid,
    attempt: i32,
    http_status: Option<i32>,
    response: Option<String>,
    error: Option<String>,
    started_at: DateTime<Utc>,
    duration_ms: i32,
}

/// The webhooks of an endpoint, newest first, each with its attempts (Billstream; `?status=` filters).
async fn list_webhooks(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
    Query(filter): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = endpoint_id(&id)?;
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    find(&mut conn, org, id, false).await?;
    let status = filter.get("status").cloned();
    let p = page.page();
    let rows: Vec<WebhookRow> = sqlx::query_as(
        "SELECT id, webhook_endpoint_id, webhook_type, object_type, object_id, endpoint, status, retries,
                http_status, response, body, last_retried_at, created_at, updated_at
         FROM webhooks WHERE organization_id = $1 AND webhook_endpoint_id = $2 AND ($3::text IS NULL OR status = $3)
         ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
    )
    .bind(org)
    .bind(id)
    .bind(&status)
    .bind(p.limit())
    .bind(p.offset())
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhooks
         WHERE organization_id = $1 AND webhook_endpoint_id = $2 AND ($3::text IS NULL OR status = $3)",
    )
    .bind(org)
    .bind(id)
    .bind(&status)
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::from)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT webhook_id, attempt, http_status, response, error, started_at, duration_ms FROM webhook_attempts
         WHERE webhook_id = ANY($1) ORDER BY webhook_id, attempt",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|w| {
            let tries: Vec<Value> = attempts
                .iter()
                .filter(|a| a.webhook_id == w.id)
                .map(|a| {
                    json!({"attempt": a.attempt, "http_status": a.http_status, "response": a.response,
                           "error": a.error, "started_at": timestamp(a.started_at), "duration_ms": a.duration_ms})
                })
                .collect();
            json!({
                "lago_id": w.id,
                "lago_webhook_endpoint_id": w.webhook_endpoint_id,
                "webhook_type": w.webhook_type,
                "object_type": w.object_type,
                "lago_object_id": w.object_id,
                "endpoint": w.endpoint,
                "status": w.status,
                "retries": w.retries,
                "http_status": w.http_status,
                "response": w.response,
                "payload": w.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()),
                "last_retried_at": w.last_retried_at.map(timestamp),
                "created_at": timestamp(w.created_at),
                "updated_at": timestamp(w.updated_at),
                "attempts": tries,
            })
        })
        .collect();
    Ok(Json(json!({"webhooks": items, "meta": p.meta(total)})))
}

/// Queues a webhook that is not succeeded for an attempt at once; a succeeded one is Lago's 405 `is_succeeded`.
async fn retry(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("webhook"))?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM webhooks WHERE organization_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(&state.pool)
            .await
            .map_err(Error::from)?;
    match status.as_deref() {
        None => return Err(ApiError::NotFound("webhook")),
        Some("succeeded") => return Err(ApiError::NotAllowed("is_succeeded")),
        Some(_) => {}
    }
    dispatcher::retry(&state.pool, org, id).await?;
    Ok(Json(json!({"webhook": {"lago_id": id, "status": "pending"}})))
}

/// Lago's deprecated route: the base64 of the PEM public key, as plain text.
async fn public_key(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let key = signing::key(&state.pool).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], key.public_key_base64()).into_response())
}

async fn json_public_key(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let key = signing::key(&state.pool).await?;
    Ok(Json(json!({"webhook": {"public_key": key.public_key_base64()}})))
}

/// The object of a webhook, rendered now as the API renders it (`None`: it no longer exists). A termination alert's
/// subscription also carries its customer, as in Lago.
pub(crate) async fn render_object(
    conn: &mut PgConnection,
    org: Uuid,
    webhook_type: &str,
    object_type: &str,
    id: Uuid,
) -> crate::Result<Option<Value>> {
    let to_value = |v: Result<Value, serde_json::Error>| v.map_err(|e| Error::Internal(format!("render: {e}")));
    let unexpected = |e: ApiError| Error::Internal(format!("render {object_type}: {e:?}"));
    match object_type {
        "invoice" => {
            let Some(invoice) = crate::store::invoices::get(conn, org, id).await? else { return Ok(None) };
            let object = super::invoices::render(conn, org, &invoice).await.map_err(unexpected)?;
            Ok(Some(to_value(serde_json::to_value(object))?))
        }
        "fee" => {
            let Some(fee) = crate::store::fees::get(conn, org, id).await? else { return Ok(None) };
            let taxes: Vec<_> = fee.taxes.iter().collect();
            let object = super::invoices::fee_object(
                &fee.row,
                &taxes,
                fee.invoice_id,
                fee.customer_id,
                fee.external_customer_id,
            );
            Ok(Some(to_value(serde_json::to_value(object))?))
        }
        "subscription" => {
            let sub = crate::store::subscriptions::get(conn, org, id).await?;
            let object = super::subscriptions::render(conn, org, &sub, true).await?;
            let mut value = to_value(serde_json::to_value(object))?;
            if webhook_type == "subscription.termination_alert"
                && let Some(c) = crate::store::customers::find_by_id(conn, org, sub.customer_id).await?
            {
                value["customer"] = to_value(serde_json::to_value(super::customers::render(&c)))?;
            }
            Ok(Some(value))
        }
        "customer" => {
            let Some(c) = crate::store::customers::find_by_id(conn, org, id).await? else { return Ok(None) };
            Ok(Some(to_value(serde_json::to_value(super::customers::render(&c)))?))
        }
        other => Err(Error::Internal(format!("no renderer for webhook object {other}"))),
    }
}
