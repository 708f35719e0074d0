//! The organization's settings that `PUT /organizations` changes (Lago's organization and default billing entity):
//! partial update, every rule checked at once.

use std::collections::BTreeMap;

use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::customer::{DOCUMENT_LOCALES, is_email, is_timezone};
use super::lists::{COUNTRIES, CURRENCIES};

pub const DOCUMENT_NUMBERINGS: [&str; 2] = ["per_customer", "per_organization"];
pub const EMAIL_SETTINGS: [&str; 3] = ["invoice.finalized", "credit_note.created", "payment_receipt.created"];
/// Free-text fields, by their API (and column) name.
pub const TEXT_FIELDS: [&str; 11] = [
    "webhook_url",
    "country",
    "address_line1",
    "address_line2",
    "state",
    "zipcode",
    "email",
    "city",
    "legal_name",
    "legal_number",
    "tax_identification_number",
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgSettings {
    pub text: BTreeMap<String, Option<String>>,
    pub default_currency: String,
    pub timezone: String,
    pub document_numbering: String,
    pub document_number_prefix: String,
    pub net_payment_term: i64,
    pub invoice_grace_period: i64,
    pub invoice_footer: Option<String>,
    pub document_locale: String,
    pub finalize_zero_amount_invoice: bool,
    pub email_settings: Vec<String>,
}

impl OrgSettings {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.text.get(field).and_then(|v| v.as_deref())
    }
}

/// A `http(s)://host...` URL, as Lago's URL validator wants.
pub fn is_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            let host = host.split(':').next().unwrap_or_default();
            !host.is_empty() && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Applies an update request to the current settings.
pub fn apply(current: &OrgSettings, map: &Map<String, Value>) -> Result<OrgSettings, ValidationErrors> {
    let mut f = Fields::new(map);
    let mut next = current.clone();
    for field in TEXT_FIELDS {
        match f.string(field) {
            Field::Absent => {}
            Field::Null => {
                next.text.insert(field.to_owned(), None);
            }
            Field::Value(v) => {
                let v = if field == "country" { v.to_uppercase() } else { v };
                next.text.insert(field.to_owned(), Some(v).filter(|v| !v.trim().is_empty()));
            }
        }
    }
    let mut e = ValidationErrors::new();
    let mut required = |f: &mut Fields, field: &str, target: &mut String, upper: bool| match f.string(field) {
        Field::Value(v) => *target = if upper { v.to_uppercase() } else { v },
        Field::Null => e.add(field, "value_is_invalid"),
        Field::Absent => {}
    };
    required(&mut f, "default_currency", &mut next.default_currency, true);
    required(&mut f, "timezone", &mut next.timezone, false);
    required(&mut f, "document_numbering", &mut next.document_numbering, false);
    required(&mut f, "document_number_prefix", &mut next.document_number_prefix, true);
    match f.int("net_payment_term") {
        Field::Value(n) => next.net_payment_term = n,
        Field::Null => e.add("net_payment_term", "value_is_invalid"),
        Field::Absent => {}
    }
    match f.bool("finalize_zero_amount_invoice") {
        Field::Value(b) => next.finalize_zero_amount_invoice = b,
        Field::Null => e.add("finalize_zero_amount_invoice", "value_is_invalid"),
        Field::Absent => {}
    }
    if let Field::Value(list) = f.strings("email_settings") {
        next.email_settings = list;
    }
    if let Field::Value(billing) = f.object("billing_configuration") {
        let mut b = Fields::with_prefix(billing, "billing_configuration.");
        next.invoice_footer = b.string("invoice_footer").or_keep(next.invoice_footer.clone());
        match b.int("invoice_grace_period") {
            Field::Value(n) => next.invoice_grace_period = n,
            Field::Null => e.add("invoice_grace_period", "value_is_invalid"),
            Field::Absent => {}
        }
        if let Field::Value(l) = b.string("document_locale") {
            next.document_locale = l;
        }
        f.errors.merge(b.errors);
    }
    e.merge(f.errors);
    validate(&next, &mut e);
    e.into_result().map(|()| next)
}

fn validate(o: &OrgSettings, e: &mut ValidationErrors) {
    if let Some(url) = o.get("webhook_url")
        && !is_url(url)
    {
        e.add("webhook_url", "url_is_invalid");
    }
    if let Some(c) = o.get("country")
        && !COUNTRIES.contains(&c)
    {
        e.add("country", "not_a_valid_country_code");
    }
    if let Some(email) = o.get("email")
        && !email.split(',').all(|one| is_email(one.trim()))
    {
        e.add("email", "invalid_email_format");
    }
    if !CURRENCIES.contains(&o.default_currency.as_str()) {
        e.add("default_currency", "value_is_invalid");
    }
    if !is_timezone(&o.timezone) {
        e.add("timezone", "invalid_timezone");
    }
    if !DOCUMENT_NUMBERINGS.contains(&o.document_numbering.as_str()) {
        e.add("document_numbering", "value_is_invalid");
    }
    match o.document_number_prefix.chars().count() {
        0 => e.add("document_number_prefix", "value_is_too_short"),
        n if n > 10 => e.add("document_number_prefix", "value_is_too_long"),
        _ => {}
    }
    let out_of_range = |n: i64| n < 0 || n > i64::from(i32::MAX);
    if out_of_range(o.net_payment_term) {
        e.add("net_payment_term", "value_is_out_of_range");
    }
    if out_of_range(o.invoice_grace_period) {
        e.add("invoice_grace_period", "value_is_out_of_range");
    }
    if o.invoice_footer.as_deref().is_some_and(|f| f.chars().count() > 600) {
        e.add("invoice_footer", "value_is_too_long");
    }
    if !DOCUMENT_LOCALES.contains(&o.document_locale.as_str()) {
        e.add("document_locale", "not_a_valid_language_code");
    }
    if o.email_settings.iter().any(|s| !EMAIL_SETTINGS.contains(&s.as_str())) {
        e.add("email_settings", "unsupported_value");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn current() -> OrgSettings {
        OrgSettings {
            default_currency: "USD".into(),
            timezone: "UTC".into(),
            document_numbering: "per_customer".into(),
            document_number_prefix: "ACM-1234".into(),
            document_locale: "en".into(),
            finalize_zero_amount_invoice: true,
            ..OrgSettings::default()
        }
    }

    fn apply_json(v: Value) -> Result<OrgSettings, ValidationErrors> {
        let Value::Object(m) = v else { unreachable!() };
        apply(&current(), &m)
    }

    #[test]
    fn partial_update() {
        let o = apply_json(json!({"timezone": "Europe/Paris", "default_currency": "eur", "country": "fr",
            "webhook_url": "https://hooks.example.com/lago", "document_number_prefix": "new",
            "billing_configuration": {"invoice_grace_period": 3, "document_locale": "fr", "invoice_footer": "Thanks"}}))
        .unwrap();
        assert_eq!(
            (o.timezone.as_str(), o.default_currency.as_str(), o.get("country")),
            ("Europe/Paris", "EUR", Some("FR"))
        );
        assert_eq!((o.document_number_prefix.as_str(), o.invoice_grace_period), ("NEW", 3));
        assert_eq!(o.document_numbering, "per_customer");
    }

    #[test]
    fn every_rule() {
        let e = apply_json(json!({"timezone": "Nowhere", "default_currency": "XXX", "country": "ZZ",
            "webhook_url": "ftp://x", "email": "nope", "document_numbering": "per_year",
            "document_number_prefix": "ELEVENCHARS", "net_payment_term": -1, "email_settings": ["invoice.paid"],
            "billing_configuration": {"invoice_grace_period": -1, "document_locale": "xx"}}))
        .unwrap_err();
        for (f, c) in [
            ("timezone", "invalid_timezone"),
            ("default_currency", "value_is_invalid"),
            ("country", "not_a_valid_country_code"),
            ("webhook_url", "url_is_invalid"),
            ("email", "invalid_email_format"),
            ("document_numbering", "value_is_invalid"),
            ("document_number_prefix", "value_is_too_long"),
            ("net_payment_term", "value_is_out_of_range"),
            ("invoice_grace_period", "value_is_out_of_range"),
            ("document_locale", "not_a_valid_language_code"),
            ("email_settings", "unsupported_value"),
        ] {
            assert_eq!(e.get(f).unwrap_or_default(), [c], "{f}");
        }
    }

    #[test]
    fn urls() {
        assert!(is_url("https://example.com"));
        assert!(is_url("http://localhost:8080/hook?x=1"));
        assert!(!is_url("https://"));
        assert!(!is_url("example.com"));
    }
}

/// The code of an organization's default billing entity, as Lago derives it from the name: lowercase, every run of
/// other characters than ASCII letters and digits made one `_`, none at the ends.
pub fn billing_entity_code(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

#[cfg(test)]
mod billing_entity_tests {
    #[test]
    fn billing_entity_codes_are_the_parameterized_name() {
        assert_eq!(super::billing_entity_code("Acme Corp."), "acme_corp");
        assert_eq!(super::billing_entity_code("  Hooli -- EU "), "hooli_eu");
    }
}
