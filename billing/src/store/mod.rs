//! Postgres repositories. Every function that reads or writes tenant data takes the organization and filters on it.

pub mod billable_metrics;
pub mod organizations;
