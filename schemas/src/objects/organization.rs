//! `organization`, in the order of Lago's organization serializer.

use serde::Serialize;

use super::tax::TaxObject;

#[derive(Debug, Clone, Serialize)]
pub struct OrganizationObject {
    pub lago_id: uuid::Uuid,
    pub name: String,
    pub default_currency: String,
    pub created_at: String,
    pub webhook_url: Option<String>,
    pub webhook_urls: Vec<String>,
    pub country: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub state: Option<String>,
    pub zipcode: Option<String>,
    pub email: Option<String>,
    pub city: Option<String>,
    pub legal_name: Option<String>,
    pub legal_number: Option<String>,
    pub timezone: String,
    pub net_payment_term: i64,
    pub email_settings: Vec<String>,
    pub document_numbering: String,
    pub document_number_prefix: String,
    pub tax_identification_number: Option<String>,
    pub finalize_zero_amount_invoice: bool,
    pub billing_configuration: OrganizationBillingConfiguration,
    pub events_store: &'static str,
    pub taxes: Vec<TaxObject>,
    /// The secret of HMAC-signed webhooks (a Billstream addition to the object).
    pub hmac_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrganizationBillingConfiguration {
    pub invoice_footer: Option<String>,
    pub invoice_grace_period: i64,
    pub document_locale: String,
}

#[derive(Debug, Serialize)]
pub struct OrganizationEnvelope {
    pub organization: OrganizationObject,
}
