//! The billing REST API, Lago's paths and objects. Handlers read the request, call the domain, call the store and
//! render; every failure is an `ApiError` in Lago's shape. Authentication happens before (the `OrgId` extension).

mod add_ons;
mod analytics;
mod billable_metrics;
mod coupons;
mod credit_notes;
mod customers;
mod estimates;
mod fees;
mod invoices;
mod one_off_invoices;
mod organizations;
mod past_usage;
mod plans;
mod preview;
mod subscriptions;
mod taxes;
mod webhooks;

pub use organizations::organization_object;
pub(crate) use webhooks::render_object as render_webhook_object;

use std::sync::Arc;

use aggregate::EventStore;
use axum::Router;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::tracking::Tracker;

/// What the billing handlers need: the database, the event store usage is read from, the time, and where usage
/// tracking goes (empty when it is off).
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub events: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub tracker: Tracker,
}

/// Every billing route, under `/api/v1`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(billable_metrics::routes())
        .merge(taxes::routes())
        .merge(add_ons::routes())
        .merge(customers::routes())
        .merge(plans::routes())
        .merge(subscriptions::routes())
        .merge(coupons::routes())
        .merge(organizations::routes())
        .merge(invoices::routes())
        .merge(estimates::routes())
        .merge(preview::routes())
        .merge(one_off_invoices::routes())
        .merge(past_usage::routes())
        .merge(credit_notes::routes())
        .merge(fees::routes())
        .merge(webhooks::routes())
        .merge(analytics::routes())
}
