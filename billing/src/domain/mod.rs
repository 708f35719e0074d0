//! Pure business rules: no I/O, no sqlx, no axum. Adapters load state, call these functions and store the result.

pub mod billable_metric;
pub mod charge_models;
pub mod expression;
pub mod invoice_totals;
pub mod money;
pub mod periods;
