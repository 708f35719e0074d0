//! `coupon`, `applied_coupon` and their list envelopes. Percentage rates are decimal strings, as Lago renders them.

use serde::Serialize;

use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct CouponObject {
    pub lago_id: uuid::Uuid,
    pub name: String,
    pub code: String,
    pub description: Option<String>,
    pub coupon_type: String,
    pub amount_cents: Option<i64>,
    pub amount_currency: Option<String>,
    pub percentage_rate: Option<String>,
    pub frequency: String,
    pub frequency_duration: Option<i64>,
    pub reusable: bool,
    pub limited_plans: bool,
    pub limited_billable_metrics: bool,
    pub plan_codes: Vec<String>,
    pub billable_metric_codes: Vec<String>,
    pub created_at: String,
    pub expiration: String,
    pub expiration_at: Option<String>,
    pub terminated_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedCouponObject {
    pub lago_id: uuid::Uuid,
    pub lago_coupon_id: uuid::Uuid,
    pub coupon_code: String,
    pub coupon_name: String,
    pub coupon_description: Option<String>,
    pub coupon_status: String,
    pub coupon_deleted_at: Option<String>,
    pub lago_customer_id: uuid::Uuid,
    pub external_customer_id: String,
    pub status: String,
    pub amount_cents: Option<i64>,
    pub amount_cents_remaining: Option<i64>,
    pub amount_currency: Option<String>,
    pub percentage_rate: Option<String>,
    pub frequency: String,
    pub frequency_duration: Option<i64>,
    pub frequency_duration_remaining: Option<i64>,
    pub expiration_at: Option<String>,
    pub created_at: String,
    pub terminated_at: Option<String>,
    /// The invoice credits the coupon gave, in lists (as Lago); none until invoices exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Serialize)]
pub struct CouponEnvelope {
    pub coupon: CouponObject,
}

#[derive(Debug, Serialize)]
pub struct CouponsPage {
    pub coupons: Vec<CouponObject>,
    pub meta: PaginationMeta,
}

#[derive(Debug, Serialize)]
pub struct AppliedCouponEnvelope {
    pub applied_coupon: AppliedCouponObject,
}

#[derive(Debug, Serialize)]
pub struct AppliedCouponsPage {
    pub applied_coupons: Vec<AppliedCouponObject>,
    pub meta: PaginationMeta,
}
