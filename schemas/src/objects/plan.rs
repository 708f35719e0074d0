//! `plan` with its `charges` (and their `filters`), `minimum_commitment` and `taxes`; the list envelope `plans`.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use super::tax::TaxObject;
use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct PlanObject {
    pub lago_id: uuid::Uuid,
    pub name: String,
    /// Left out when unset: the spec types it as a non-null string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_display_name: Option<String>,
    pub created_at: String,
    pub code: String,
    pub interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
    /// Days, a JSON number as Lago renders its float column.
    #[serde(skip_serializing_if = "Option::is_none", with = "rust_decimal::serde::float_option")]
    pub trial_period: Option<Decimal>,
    pub pay_in_advance: bool,
    pub bill_charges_monthly: Option<bool>,
    pub bill_fixed_charges_monthly: Option<bool>,
    pub customers_count: u64,
    pub active_subscriptions_count: u64,
    pub draft_invoices_count: u64,
    pub parent_id: Option<uuid::Uuid>,
    pub pending_deletion: bool,
    pub charges: Vec<ChargeObject>,
    pub fixed_charges: Vec<Value>,
    pub usage_thresholds: Vec<Value>,
    pub taxes: Vec<TaxObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_commitment: Option<CommitmentObject>,
    /// Rendered only when the plan has metadata, as Lago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChargeObject {
    pub lago_id: uuid::Uuid,
    pub lago_billable_metric_id: uuid::Uuid,
    pub code: String,
    pub invoice_display_name: Option<String>,
    pub billable_metric_code: String,
    pub created_at: String,
    pub charge_model: String,
    pub invoiceable: bool,
    pub regroup_paid_fees: Option<String>,
    pub pay_in_advance: bool,
    pub prorated: bool,
    pub min_amount_cents: i64,
    pub accepts_target_wallet: bool,
    pub properties: Map<String, Value>,
    pub applied_pricing_unit: Option<Value>,
    pub lago_parent_id: Option<uuid::Uuid>,
    pub filters: Vec<ChargeFilterObject>,
    pub taxes: Vec<TaxObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChargeFilterObject {
    pub lago_id: uuid::Uuid,
    pub charge_code: String,
    pub invoice_display_name: Option<String>,
    pub properties: Map<String, Value>,
    pub values: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitmentObject {
    pub lago_id: uuid::Uuid,
    pub plan_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_display_name: Option<String>,
    pub amount_cents: i64,
    pub interval: String,
    pub created_at: String,
    pub updated_at: String,
    pub taxes: Vec<TaxObject>,
}

#[derive(Debug, Serialize)]
pub struct PlanEnvelope {
    pub plan: PlanObject,
}

#[derive(Debug, Serialize)]
pub struct PlansPage {
    pub plans: Vec<PlanObject>,
    pub meta: PaginationMeta,
}

#[derive(Debug, Serialize)]
pub struct ChargeEnvelope {
    pub charge: ChargeObject,
}

#[derive(Debug, Serialize)]
pub struct ChargesPage {
    pub charges: Vec<ChargeObject>,
    pub meta: PaginationMeta,
}
