//! `subscription` (with its `plan` where Lago includes it) and the list envelope `subscriptions` + `meta`.

use serde::Serialize;

use super::plan::PlanObject;
use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionObject {
    pub lago_id: uuid::Uuid,
    pub external_id: String,
    pub lago_customer_id: uuid::Uuid,
    pub external_customer_id: String,
    pub name: Option<String>,
    pub plan_code: String,
    pub plan_amount_cents: i64,
    pub plan_amount_currency: String,
    pub status: String,
    pub billing_time: String,
    pub subscription_at: String,
    pub started_at: Option<String>,
    pub trial_ended_at: Option<String>,
    pub ending_at: Option<String>,
    pub terminated_at: Option<String>,
    pub canceled_at: Option<String>,
    pub created_at: String,
    pub previous_plan_code: Option<String>,
    pub next_plan_code: Option<String>,
    pub downgrade_plan_date: Option<String>,
    pub current_billing_period_started_at: Option<String>,
    pub current_billing_period_ending_at: Option<String>,
    /// Lago renders null unless the plan is paid in advance, but the spec's enum has no null and the field is
    /// required, so Billstream always renders Lago's termination default, `credit`.
    pub on_termination_credit_note: String,
    pub on_termination_invoice: String,
    pub progressive_billing_disabled: bool,
    pub consolidate_invoice: bool,
    pub purchase_order_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    pub activated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanObject>,
    pub activation_rules: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionEnvelope {
    pub subscription: SubscriptionObject,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionsPage {
    pub subscriptions: Vec<SubscriptionObject>,
    pub meta: PaginationMeta,
}
