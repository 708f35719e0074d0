//! Lago's credit note objects (`/api/v1/credit_notes`).

use serde::Serialize;
use uuid::Uuid;

use super::customer::CustomerObject;
use super::invoice::FeeObject;
use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct CreditNoteItemObject {
    pub lago_id: Uuid,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub fee: FeeObject,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditNoteAppliedTaxObject {
    pub lago_id: Uuid,
    pub lago_credit_note_id: Uuid,
    pub lago_tax_id: Option<Uuid>,
    pub tax_name: String,
    pub tax_code: String,
    pub tax_rate: serde_json::Number,
    pub tax_description: Option<String>,
    pub base_amount_cents: i64,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditNoteObject {
    pub lago_id: Uuid,
    pub billing_entity_code: Option<String>,
    pub sequential_id: i64,
    pub number: String,
    pub lago_invoice_id: Uuid,
    pub invoice_number: String,
    pub issuing_date: String,
    pub credit_status: Option<String>,
    pub refund_status: Option<String>,
    pub reason: String,
    pub description: Option<String>,
    pub currency: String,
    pub total_amount_cents: i64,
    pub taxes_amount_cents: i64,
    pub taxes_rate: serde_json::Number,
    pub sub_total_excluding_taxes_amount_cents: i64,
    pub balance_amount_cents: i64,
    pub credit_amount_cents: i64,
    pub refund_amount_cents: i64,
    pub offset_amount_cents: i64,
    pub coupons_adjustment_amount_cents: i64,
    pub created_at: String,
    pub updated_at: String,
    pub file_url: Option<String>,
    pub self_billed: bool,
    pub customer: CustomerObject,
    pub items: Vec<CreditNoteItemObject>,
    pub applied_taxes: Vec<CreditNoteAppliedTaxObject>,
}

#[derive(Debug, Serialize)]
pub struct CreditNoteEnvelope {
    pub credit_note: CreditNoteObject,
}

#[derive(Debug, Serialize)]
pub struct CreditNotesPage {
    pub credit_notes: Vec<CreditNoteObject>,
    pub meta: PaginationMeta,
}
