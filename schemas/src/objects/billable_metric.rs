//! `billable_metric` and the list envelope `billable_metrics` + `meta`.

use serde::Serialize;

use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct BillableMetricObject {
    pub lago_id: uuid::Uuid,
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub aggregation_type: String,
    pub weighted_interval: Option<String>,
    pub recurring: bool,
    pub rounding_function: Option<String>,
    pub rounding_precision: Option<i32>,
    pub created_at: String,
    pub field_name: Option<String>,
    /// The spec types this as a string (never null), so a metric without an expression renders `""`.
    pub expression: String,
    /// Deprecated counters Lago still renders (always 0) on create, update, delete and list, but not on show.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    pub filters: Vec<BillableMetricFilterObject>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counters {
    pub active_subscriptions_count: u64,
    pub draft_invoices_count: u64,
    pub plans_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BillableMetricFilterObject {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BillableMetricEnvelope {
    pub billable_metric: BillableMetricObject,
}

#[derive(Debug, Serialize)]
pub struct BillableMetricsPage {
    pub billable_metrics: Vec<BillableMetricObject>,
    pub meta: PaginationMeta,
}
