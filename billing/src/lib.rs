//! The billing service: the catalog (billable metrics, and later plans, customers, subscriptions), the pure domain
//! rules that validate and price it, the Postgres repositories that keep it, and the REST API that serves it.
//!
//! Layering: `domain` is pure (no sqlx, no axum); `store` loads and saves; `api` reads requests, calls the domain,
//! calls the store and renders Lago's objects.

pub mod api;
pub mod clock;
pub mod domain;
pub mod error;
pub mod invoicer;
pub mod metrics;
pub mod one_off;
pub mod store;
pub mod tracking;
pub mod webhooks;

pub use error::{Error, Result};

/// Applies the embedded Postgres migrations (idempotent; safe to run from several processes).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<()> {
    sqlx::migrate!("./migrations").run(pool).await.map_err(|e| Error::Internal(format!("migrations failed: {e}")))
}
