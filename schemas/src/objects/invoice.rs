//! `invoice` with its fees, billing periods, coupon credits and taxes, the list envelope `invoices` + `meta`, and
//! the `customer_usage` of the current period.

use serde::Serialize;
use uuid::Uuid;

use super::customer::CustomerObject;
use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceObject {
    pub lago_id: Uuid,
    pub billing_entity_code: Option<String>,
    /// Taken at finalization; a draft has none (Lago renders null there, which its spec forbids, so it is left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequential_id: Option<i64>,
    pub number: String,
    pub issuing_date: String,
    pub payment_due_date: String,
    pub payment_overdue: bool,
    pub net_payment_term: i64,
    pub invoice_type: String,
    pub status: String,
    pub payment_status: String,
    pub currency: String,
    pub fees_amount_cents: i64,
    pub coupons_amount_cents: i64,
    pub credit_notes_amount_cents: i64,
    pub sub_total_excluding_taxes_amount_cents: i64,
    pub taxes_amount_cents: i64,
    pub sub_total_including_taxes_amount_cents: i64,
    pub prepaid_credit_amount_cents: i64,
    pub progressive_billing_credit_amount_cents: i64,
    pub total_amount_cents: i64,
    /// What is left to pay (Lago's; Billstream records no payments, so the total, and 0 once voided).
    pub total_due_amount_cents: i64,
    pub total_paid_amount_cents: i64,
    pub version_number: i64,
    pub self_billed: bool,
    pub created_at: String,
    pub updated_at: String,
    pub voided_at: Option<String>,
    pub customer: CustomerObject,
    pub metadata: Vec<serde_json::Value>,
    pub applied_taxes: Vec<InvoiceAppliedTaxObject>,
    pub applied_invoice_custom_sections: Vec<serde_json::Value>,
    pub applied_usage_thresholds: Vec<serde_json::Value>,
    pub billing_periods: Vec<BillingPeriodObject>,
    pub credits: Vec<CreditObject>,
    pub fees: Vec<FeeObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceAppliedTaxObject {
    pub lago_id: Uuid,
    pub lago_invoice_id: Uuid,
    pub lago_tax_id: Option<Uuid>,
    pub tax_name: String,
    pub tax_code: String,
    pub tax_rate: serde_json::Number,
    pub tax_description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub fees_amount_cents: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BillingPeriodObject {
    pub lago_subscription_id: Uuid,
    pub external_subscription_id: String,
    pub lago_plan_id: Uuid,
    pub subscription_from_datetime: String,
    pub subscription_to_datetime: String,
    pub charges_from_datetime: String,
    pub charges_to_datetime: String,
    pub invoicing_reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditObject {
    pub lago_id: Uuid,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub before_taxes: bool,
    pub item: CreditItem,
    pub invoice: CreditInvoice,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditItem {
    pub lago_item_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditInvoice {
    pub lago_id: Uuid,
    pub payment_status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeeObject {
    /// None for an estimate, which is stored nowhere.
    pub lago_id: Option<Uuid>,
    pub lago_charge_id: Option<Uuid>,
    pub lago_charge_filter_id: Option<Uuid>,
    pub lago_invoice_id: Option<Uuid>,
    pub lago_true_up_fee_id: Option<Uuid>,
    pub lago_true_up_parent_fee_id: Option<Uuid>,
    pub lago_subscription_id: Option<Uuid>,
    pub lago_customer_id: Option<Uuid>,
    pub external_customer_id: Option<String>,
    pub external_subscription_id: Option<String>,
    pub invoice_display_name: Option<String>,
    pub amount_cents: i64,
    pub precise_amount: String,
    pub precise_total_amount: String,
    pub amount_currency: String,
    pub taxes_amount_cents: i64,
    pub taxes_precise_amount: String,
    pub taxes_rate: serde_json::Number,
    pub units: String,
    pub precise_unit_amount: String,
    pub total_aggregated_units: String,
    pub total_amount_cents: i64,
    pub total_amount_currency: String,
    pub events_count: Option<i64>,
    pub pay_in_advance: bool,
    pub invoiceable: bool,
    pub from_date: Option<String>,
    pub to_date: Option<String>,
    pub payment_status: String,
    pub created_at: Option<String>,
    pub succeeded_at: Option<String>,
    pub failed_at: Option<String>,
    pub refunded_at: Option<String>,
    pub event_transaction_id: Option<String>,
    pub description: Option<String>,
    pub precise_coupons_amount_cents: String,
    pub sub_total_excluding_taxes_amount_cents: i64,
    pub sub_total_excluding_taxes_precise_amount_cents: String,
    pub self_billed: bool,
    pub item: FeeItem,
    pub applied_taxes: Vec<FeeAppliedTaxObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeeItem {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub invoice_display_name: String,
    pub filter_invoice_display_name: Option<String>,
    pub filters: Option<serde_json::Value>,
    pub lago_item_id: Uuid,
    pub item_type: String,
    pub grouped_by: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeeAppliedTaxObject {
    pub lago_id: Uuid,
    pub lago_fee_id: Uuid,
    pub lago_tax_id: Option<Uuid>,
    pub tax_name: String,
    pub tax_code: String,
    pub tax_rate: serde_json::Number,
    pub tax_description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct InvoiceEnvelope {
    pub invoice: InvoiceObject,
}

#[derive(Debug, Serialize)]
pub struct InvoicesPage {
    pub invoices: Vec<InvoiceObject>,
    pub meta: PaginationMeta,
}

/// `customer_usage`: the current period's charges, priced, for one subscription.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerUsageObject {
    pub from_datetime: String,
    pub to_datetime: String,
    pub issuing_date: String,
    pub lago_invoice_id: Option<Uuid>,
    pub currency: String,
    pub amount_cents: i64,
    pub taxes_amount_cents: i64,
    pub total_amount_cents: i64,
    pub charges_usage: Vec<ChargeUsageObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChargeUsageObject {
    pub units: String,
    pub total_aggregated_units: String,
    pub events_count: i64,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub charge: ChargeUsageCharge,
    pub billable_metric: ChargeUsageMetric,
    pub filters: Vec<FilterUsageObject>,
    pub grouped_usage: Vec<GroupedUsageObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChargeUsageCharge {
    pub lago_id: Uuid,
    pub charge_model: String,
    pub invoice_display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChargeUsageMetric {
    pub lago_id: Uuid,
    pub name: String,
    pub code: String,
    pub aggregation_type: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterUsageObject {
    pub units: String,
    pub total_aggregated_units: String,
    pub amount_cents: i64,
    pub events_count: i64,
    pub invoice_display_name: Option<String>,
    pub values: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupedUsageObject {
    pub amount_cents: i64,
    pub events_count: i64,
    pub units: String,
    pub total_aggregated_units: String,
    pub grouped_by: serde_json::Map<String, serde_json::Value>,
    pub filters: Vec<FilterUsageObject>,
}

#[derive(Debug, Serialize)]
pub struct CustomerUsageEnvelope {
    pub customer_usage: CustomerUsageObject,
}

/// `usage_periods`: a subscription's billed periods, newest first, each as a usage object of its invoice.
#[derive(Debug, Serialize)]
pub struct CustomerPastUsage {
    pub usage_periods: Vec<CustomerUsageObject>,
    pub meta: PaginationMeta,
}
