//! Postgres repositories. Every function that reads or writes tenant data takes the organization and filters on it.

pub mod billable_metrics;
pub mod organizations;
pub mod taxes;

/// A query text built with `format!` from constant column lists (never from input), as sqlx wants it marked.
pub(crate) fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}
pub mod add_ons;
pub mod coupons;
pub mod customers;
pub mod plans;
pub mod subscriptions;
