//! Pure business rules: no I/O, no sqlx, no axum. Adapters load state, call these functions and store the result.

pub mod add_on;
pub mod analytics;
pub mod billable_metric;
pub mod charge;
pub mod charge_models;
pub mod coupon;
pub mod credit_note;
pub mod customer;
pub mod expression;
pub mod invoice_totals;
pub mod invoicing;
pub mod lists;
pub mod money;
pub mod one_off;
pub mod organization;
pub mod periods;
pub mod plan;
pub mod subscription;
pub mod tax;
