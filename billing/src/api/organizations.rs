//! `PUT /api/v1/organizations`: the organization's settings (timezone, default currency, webhook URL, invoice grace
//! period, net payment term, document numbering and prefix, legal and address fields). `GET` shows them, with the
//! `hmac_key` that signs the organization's HMAC webhooks (Lago's REST API has no `GET`; its UI shows the key).

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::objects::organization::{OrganizationBillingConfiguration, OrganizationEnvelope, OrganizationObject};
use schemas::objects::timestamp;
use schemas::{ApiError, OrgId};

use super::ApiState;
use crate::Error;
use crate::domain::organization as domain;
use crate::store::organizations::{self as store, OrganizationSettings};
use crate::store::taxes::Tax;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/organizations", get(show).put(update))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
) -> Result<Json<OrganizationEnvelope>, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(Error::from)?;
    let saved = store::settings(&mut conn, org, false).await?;
    Ok(Json(OrganizationEnvelope { organization: rendered(&mut conn, &saved).await? }))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<OrganizationEnvelope>, ApiError> {
    let input = take_root(body, "organization")?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let current = store::settings(&mut tx, org, true).await?;
    let next = domain::apply(&current.settings, &input)?;
    store::save_settings(&mut tx, org, &next).await?;
    // As Lago: the organization's webhook URL is its first webhook endpoint's.
    if let Some(url) = input.get("webhook_url").and_then(|v| v.as_str()).filter(|u| !u.trim().is_empty()) {
        super::webhooks::set_first_endpoint(&mut tx, org, url.trim()).await?;
    }
    let saved = store::settings(&mut tx, org, false).await?;
    let organization = rendered(&mut tx, &saved).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(OrganizationEnvelope { organization }))
}

/// The organization as `GET /api/v1/organizations` renders it (for `billstream org show`).
pub async fn organization_object(pool: &sqlx::PgPool, org: uuid::Uuid) -> crate::Result<OrganizationObject> {
    let mut conn = pool.acquire().await?;
    let saved = store::settings(&mut conn, org, false).await?;
    rendered(&mut conn, &saved).await.map_err(|e| Error::Internal(format!("{e:?}")))
}

/// The organization object with its taxes and HMAC key.
async fn rendered(conn: &mut sqlx::PgConnection, o: &OrganizationSettings) -> Result<OrganizationObject, ApiError> {
    let taxes: Vec<Tax> = sqlx::query_as(
        "SELECT id, name, code, description, rate, applied_to_organization, created_at FROM taxes
         WHERE organization_id = $1 AND applied_to_organization AND deleted_at IS NULL ORDER BY code",
    )
    .bind(o.id)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let hmac_key = store::hmac_key(conn, o.id).await?;
    let urls: Vec<String> = sqlx::query_scalar(
        "SELECT webhook_url FROM webhook_endpoints WHERE organization_id = $1 ORDER BY created_at, id",
    )
    .bind(o.id)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    Ok(render(o, &taxes, hmac_key, urls))
}

/// `webhook_urls` are the organization's endpoints, `webhook_url` the first (as Lago).
fn render(o: &OrganizationSettings, taxes: &[Tax], hmac_key: String, webhook_urls: Vec<String>) -> OrganizationObject {
    let s = &o.settings;
    let text = |f: &str| s.get(f).map(str::to_owned);
    OrganizationObject {
        lago_id: o.id,
        name: o.name.clone(),
        default_currency: s.default_currency.clone(),
        created_at: timestamp(o.created_at),
        webhook_url: webhook_urls.first().cloned().or_else(|| text("webhook_url")),
        webhook_urls,
        country: text("country"),
        address_line1: text("address_line1"),
        address_line2: text("address_line2"),
        state: text("state"),
        zipcode: text("zipcode"),
        email: text("email"),
        city: text("city"),
        legal_name: text("legal_name"),
        legal_number: text("legal_number"),
        timezone: s.timezone.clone(),
        net_payment_term: s.net_payment_term,
        email_settings: s.email_settings.clone(),
        document_numbering: s.document_numbering.clone(),
        document_number_prefix: s.document_number_prefix.clone(),
        tax_identification_number: text("tax_identification_number"),
        finalize_zero_amount_invoice: s.finalize_zero_amount_invoice,
        billing_configuration: OrganizationBillingConfiguration {
            invoice_footer: s.invoice_footer.clone(),
            invoice_grace_period: s.invoice_grace_period,
            document_locale: s.document_locale.clone(),
        },
        events_store: "postgres",
        taxes: taxes.iter().map(super::taxes::render).collect(),
        hmac_key,
    }
}
