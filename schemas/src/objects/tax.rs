//! `tax` and the list envelope `taxes` + `meta`.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct TaxObject {
    pub lago_id: uuid::Uuid,
    pub name: String,
    pub code: String,
    /// A JSON number, as Lago renders its float column (a percentage, not money).
    #[serde(with = "rust_decimal::serde::float")]
    pub rate: Decimal,
    pub description: Option<String>,
    pub applied_to_organization: bool,
    /// Deprecated counters Lago still renders, always 0.
    pub add_ons_count: u64,
    pub customers_count: u64,
    pub plans_count: u64,
    pub charges_count: u64,
    pub commitments_count: u64,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct TaxEnvelope {
    pub tax: TaxObject,
}

#[derive(Debug, Serialize)]
pub struct TaxesPage {
    pub taxes: Vec<TaxObject>,
    pub meta: PaginationMeta,
}
