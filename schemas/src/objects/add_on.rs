//! `add_on` and the list envelope `add_ons` + `meta`.

use serde::Serialize;

use super::tax::TaxObject;
use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct AddOnObject {
    pub lago_id: uuid::Uuid,
    pub name: String,
    pub invoice_display_name: Option<String>,
    pub code: String,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub created_at: String,
    pub description: Option<String>,
    pub taxes: Vec<TaxObject>,
}

#[derive(Debug, Serialize)]
pub struct AddOnEnvelope {
    pub add_on: AddOnObject,
}

#[derive(Debug, Serialize)]
pub struct AddOnsPage {
    pub add_ons: Vec<AddOnObject>,
    pub meta: PaginationMeta,
}
