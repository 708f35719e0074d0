//! `customer` and the list envelope `customers` + `meta`, in the order of Lago's customer serializer.

use serde::Serialize;

use super::tax::TaxObject;
use crate::pagination::PaginationMeta;

#[derive(Debug, Clone, Serialize)]
pub struct CustomerObject {
    pub lago_id: uuid::Uuid,
    pub external_id: String,
    pub account_type: &'static str,
    pub name: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub customer_type: Option<String>,
    pub sequential_id: i64,
    pub slug: String,
    pub created_at: String,
    pub updated_at: String,
    pub country: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub state: Option<String>,
    pub zipcode: Option<String>,
    pub email: Option<String>,
    pub city: Option<String>,
    pub url: Option<String>,
    pub phone: Option<String>,
    pub logo_url: Option<String>,
    pub legal_name: Option<String>,
    pub legal_number: Option<String>,
    pub currency: Option<String>,
    pub tax_identification_number: Option<String>,
    pub timezone: Option<String>,
    pub applicable_timezone: String,
    pub net_payment_term: Option<i64>,
    pub external_salesforce_id: Option<String>,
    pub finalize_zero_amount_invoice: String,
    pub billing_configuration: CustomerBillingConfiguration,
    pub shipping_address: AddressObject,
    pub skip_invoice_custom_sections: bool,
    pub metadata: Vec<CustomerMetadataObject>,
    pub taxes: Vec<TaxObject>,
    pub integration_customers: Vec<serde_json::Value>,
    pub applicable_invoice_custom_sections: Vec<serde_json::Value>,
}

/// Unset values are left out: the spec types them as non-null.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerBillingConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_grace_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_locale: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddressObject {
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub zipcode: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerMetadataObject {
    pub lago_id: uuid::Uuid,
    pub key: String,
    pub value: String,
    pub display_in_invoice: bool,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct CustomerEnvelope {
    pub customer: CustomerObject,
}

#[derive(Debug, Serialize)]
pub struct CustomersPage {
    pub customers: Vec<CustomerObject>,
    pub meta: PaginationMeta,
}
