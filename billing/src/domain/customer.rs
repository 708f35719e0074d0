//! Customers: Lago's create-or-update by `external_id`. Fields absent from the request keep their value (for a new
//! customer: empty); every rule is checked on the result and all errors are reported at once.

use std::collections::BTreeMap;

use schemas::ValidationErrors;
use schemas::input::{Field, Fields};
use serde_json::{Map, Value};

use super::lists::{COUNTRIES, CURRENCIES, TIMEZONES};

/// The free-text columns of a customer, by their API name (shipping ones come from `shipping_address`, billing
/// ones from `billing_configuration`).
pub const TEXT_FIELDS: [&str; 19] = [
    "name",
    "firstname",
    "lastname",
    "email",
    "currency",
    "timezone",
    "country",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zipcode",
    "phone",
    "url",
    "logo_url",
    "legal_name",
    "legal_number",
    "tax_identification_number",
    "customer_type",
];
/// `shipping_address` keys; stored as `shipping_<key>`.
pub const SHIPPING_FIELDS: [&str; 6] = ["address_line1", "address_line2", "city", "zipcode", "state", "country"];
/// Lago's UI languages, the only accepted `document_locale` values.
pub const DOCUMENT_LOCALES: [&str; 9] = ["en", "fr", "nb", "de", "it", "es", "sv", "pt-BR", "zh-TW"];
pub const FINALIZE_ZERO_AMOUNT: [&str; 3] = ["inherit", "skip", "finalize"];
pub const CUSTOMER_TYPES: [&str; 2] = ["company", "individual"];
/// Lago keeps at most this many metadata entries per customer.
pub const MAX_METADATA: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub key: String,
    pub value: String,
    pub display_in_invoice: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerAttrs {
    pub external_id: String,
    /// Every key of `TEXT_FIELDS` and `shipping_<SHIPPING_FIELDS>`.
    pub text: BTreeMap<String, Option<String>>,
    pub net_payment_term: Option<i64>,
    pub invoice_grace_period: Option<i64>,
    pub document_locale: Option<String>,
    pub finalize_zero_amount_invoice: String,
    pub skip_invoice_custom_sections: bool,
}

impl CustomerAttrs {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.text.get(field).and_then(|v| v.as_deref())
    }
}

#[derive(Debug, Clone, Default)]
pub struct CustomerInput {
    pub external_id: Field<String>,
    pub text: BTreeMap<String, Field<String>>,
    pub net_payment_term: Field<i64>,
    pub invoice_grace_period: Field<i64>,
    pub document_locale: Field<String>,
    pub finalize_zero_amount_invoice: Field<String>,
    pub skip_invoice_custom_sections: Field<bool>,
    pub metadata: Field<Vec<Metadata>>,
    pub tax_codes: Field<Vec<String>>,
}

pub fn parse_input(map: &Map<String, Value>) -> Result<CustomerInput, ValidationErrors> {
    let mut f = Fields::new(map);
    let mut input = CustomerInput {
        external_id: f.string("external_id"),
        net_payment_term: f.int("net_payment_term"),
        finalize_zero_amount_invoice: f.string("finalize_zero_amount_invoice"),
        skip_invoice_custom_sections: f.bool("skip_invoice_custom_sections"),
        tax_codes: f.strings("tax_codes"),
        ..CustomerInput::default()
    };
    for field in TEXT_FIELDS {
        input.text.insert(field.to_owned(), f.string(field));
    }
    if let Field::Value(shipping) = f.object("shipping_address") {
        let mut s = Fields::with_prefix(shipping, "shipping_address.");
        for field in SHIPPING_FIELDS {
            input.text.insert(format!("shipping_{field}"), s.string(field));
        }
        f.errors.merge(s.errors);
    }
    if let Field::Value(billing) = f.object("billing_configuration") {
        let mut b = Fields::with_prefix(billing, "billing_configuration.");
        input.invoice_grace_period = b.int("invoice_grace_period");
        input.document_locale = b.string("document_locale");
        f.errors.merge(b.errors);
    }
    match f.objects("metadata") {
        Field::Value(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                let mut m = Fields::with_prefix(item, "metadata.");
                let key = m.string("key").value().unwrap_or_default();
                let value = m.string("value").value().unwrap_or_default();
                let display_in_invoice = m.bool("display_in_invoice").value().unwrap_or(false);
                f.errors.merge(m.errors);
                list.push(Metadata { key, value, display_in_invoice });
            }
            input.metadata = Field::Value(list);
        }
        Field::Null => input.metadata = Field::Null,
        Field::Absent => {}
    }
    f.errors.into_result().map(|()| input)
}

/// The customer after a create-or-update request. `current` is the stored customer with that `external_id`, if
/// any. Returns the new attributes and, when the request sent them, the new metadata list.
pub fn upsert(
    current: Option<&CustomerAttrs>,
    input: CustomerInput,
) -> Result<(CustomerAttrs, Option<Vec<Metadata>>), ValidationErrors> {
    let mut e = ValidationErrors::new();
    let mut next = current.cloned().unwrap_or_else(|| CustomerAttrs {
        finalize_zero_amount_invoice: "inherit".into(),
        ..CustomerAttrs::default()
    });
    if current.is_none() {
        next.external_id = input.external_id.value().map(|s| s.trim().to_owned()).unwrap_or_default();
        if next.external_id.is_empty() {
            e.add("external_id", "value_is_mandatory");
        }
    }
    for (field, value) in input.text {
        let value = match value {
            Field::Absent => continue,
            Field::Null => None,
            Field::Value(v) if field.ends_with("country") => Some(v.to_uppercase()),
            Field::Value(v) => Some(v),
        };
        // Lago turns blank address fields into null.
        let blank_is_null = field.contains("address") || field.ends_with("city") || field.ends_with("zipcode");
        let value = if blank_is_null { value.filter(|v| !v.trim().is_empty()) } else { value };
        next.text.insert(field, value);
    }
    next.net_payment_term = input.net_payment_term.or_keep(next.net_payment_term);
    next.invoice_grace_period = input.invoice_grace_period.or_keep(next.invoice_grace_period);
    next.document_locale = input.document_locale.or_keep(next.document_locale);
    match input.finalize_zero_amount_invoice {
        Field::Value(v) if FINALIZE_ZERO_AMOUNT.contains(&v.as_str()) => next.finalize_zero_amount_invoice = v,
        Field::Value(_) => e.add("finalize_zero_amount_invoice", "invalid_value"),
        Field::Null => next.finalize_zero_amount_invoice = "inherit".into(),
        Field::Absent => {}
    }
    if let Field::Value(b) = input.skip_invoice_custom_sections {
        next.skip_invoice_custom_sections = b;
    }
    let metadata = input.metadata.value();
    if let Some(list) = &metadata {
        validate_metadata(list, &mut e);
    }
    validate(&next, &mut e);
    e.into_result().map(|()| (next, metadata))
}

fn validate_metadata(list: &[Metadata], e: &mut ValidationErrors) {
    if list.len() > MAX_METADATA {
        e.add("metadata", "invalid_count");
    }
    for (i, m) in list.iter().enumerate() {
        if m.key.trim().is_empty() {
            e.add("metadata.key", "value_is_mandatory");
        } else if m.key.chars().count() > 20 {
            e.add("metadata.key", "value_is_too_long");
        } else if list[..i].iter().any(|o| o.key == m.key) {
            e.add("metadata.key", "value_already_exist");
        }
        if m.value.trim().is_empty() {
            e.add("metadata.value", "value_is_mandatory");
        } else if m.value.chars().count() > 100 {
            e.add("metadata.value", "value_is_too_long");
        }
    }
}

fn validate(c: &CustomerAttrs, e: &mut ValidationErrors) {
    if let Some(currency) = c.get("currency")
        && !CURRENCIES.contains(&currency)
    {
        e.add("currency", "value_is_invalid");
    }
    if let Some(tz) = c.get("timezone")
        && !is_timezone(tz)
    {
        e.add("timezone", "invalid_timezone");
    }
    for field in ["country", "shipping_country"] {
        if let Some(country) = c.get(field)
            && !COUNTRIES.contains(&country)
        {
            e.add(field, "not_a_valid_country_code");
        }
    }
    if let Some(email) = c.get("email")
        && !email.is_empty()
        && !email.split(',').all(|one| is_email(one.trim()))
    {
        e.add("email", "invalid_email_format");
    }
    if c.get("name").is_some_and(|n| n.chars().count() > 255) {
        e.add("name", "value_is_too_long");
    }
    if let Some(t) = c.get("customer_type")
        && !CUSTOMER_TYPES.contains(&t)
    {
        e.add("customer_type", "value_is_invalid");
    }
    if let Some(locale) = &c.document_locale
        && !DOCUMENT_LOCALES.contains(&locale.as_str())
    {
        e.add("document_locale", "not_a_valid_language_code");
    }
    // Days, stored as 32-bit integers.
    let out_of_range = |n: i64| n < 0 || n > i64::from(i32::MAX);
    if c.net_payment_term.is_some_and(out_of_range) {
        e.add("net_payment_term", "value_is_out_of_range");
    }
    if c.invoice_grace_period.is_some_and(out_of_range) {
        e.add("invoice_grace_period", "value_is_out_of_range");
    }
}

/// A timezone Lago accepts (its list of Rails zone names plus `UTC`) that chrono-tz can compute periods in.
pub fn is_timezone(name: &str) -> bool {
    timezone(name).is_some()
}

/// The zone of an accepted name. Lago's spec lists Rails' `Etc/GMT+12` as `GMT+12`; both are taken.
pub fn timezone(name: &str) -> Option<chrono_tz::Tz> {
    if TIMEZONES.contains(&name) {
        name.parse().ok().or_else(|| format!("Etc/{name}").parse().ok())
    } else if name == "Etc/GMT+12" {
        name.parse().ok()
    } else {
        None
    }
}

/// One address: `local@domain.tld` with a dotted, alphanumeric-and-dash domain, as Lago's pattern requires.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> CustomerInput {
        match v {
            Value::Object(m) => parse_input(&m).unwrap(),
            _ => unreachable!(),
        }
    }

    fn errors(v: Value) -> ValidationErrors {
        upsert(None, input(v)).unwrap_err()
    }

    #[test]
    fn every_lago_timezone_is_known_to_chrono_tz() {
        for tz in TIMEZONES {
            assert!(is_timezone(tz), "{tz}");
        }
        assert!(!is_timezone("Mars/Olympus"));
        assert!(!is_timezone("utc"));
    }

    #[test]
    fn emails() {
        assert!(is_email("a.b+c@example.co.uk"));
        for bad in ["", "a", "a@b", "@b.com", "a@.com", "a b@c.com", "a@b..com"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn new_customer_defaults_and_upcased_country() {
        let (c, meta) = upsert(
            None,
            input(json!({"external_id": " c1 ", "name": "Acme", "country": "fr", "currency": "EUR",
                         "timezone": "Europe/Paris", "email": "a@b.com, c@d.org",
                         "billing_configuration": {"invoice_grace_period": 3, "document_locale": "fr"},
                         "shipping_address": {"city": "Lyon", "address_line1": ""}})),
        )
        .unwrap();
        assert_eq!(c.external_id, "c1");
        assert_eq!(c.get("country"), Some("FR"));
        assert_eq!(c.get("shipping_city"), Some("Lyon"));
        assert_eq!(c.get("shipping_address_line1"), None);
        assert_eq!((c.invoice_grace_period, c.document_locale.as_deref()), (Some(3), Some("fr")));
        assert_eq!(c.finalize_zero_amount_invoice, "inherit");
        assert!(meta.is_none());
    }

    #[test]
    fn every_rule_is_reported() {
        let e = errors(json!({"currency": "EURO", "timezone": "Mars/Base", "country": "XX", "email": "nope",
            "customer_type": "robot", "net_payment_term": 3_000_000_000i64, "finalize_zero_amount_invoice": "never",
            "billing_configuration": {"invoice_grace_period": -2, "document_locale": "xx"},
            "shipping_address": {"country": "ZZ"}}));
        let expected = [
            ("external_id", "value_is_mandatory"),
            ("currency", "value_is_invalid"),
            ("timezone", "invalid_timezone"),
            ("country", "not_a_valid_country_code"),
            ("shipping_country", "not_a_valid_country_code"),
            ("email", "invalid_email_format"),
            ("customer_type", "value_is_invalid"),
            ("net_payment_term", "value_is_out_of_range"),
            ("invoice_grace_period", "value_is_out_of_range"),
            ("document_locale", "not_a_valid_language_code"),
            ("finalize_zero_amount_invoice", "invalid_value"),
        ];
        for (field, code) in expected {
            assert_eq!(e.get(field).unwrap_or_default(), [code], "{field}");
        }
    }

    #[test]
    fn metadata_rules() {
        let six: Vec<Value> = (0..6).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect();
        assert!(errors(json!({"external_id": "c", "metadata": six})).has("metadata"));
        let e = errors(json!({"external_id": "c", "metadata": [{"key": "a", "value": ""},
            {"key": "a", "value": "x"}, {"key": "k".repeat(21), "value": "x"}]}));
        assert_eq!(e.get("metadata.value").unwrap(), ["value_is_mandatory"]);
        assert_eq!(e.get("metadata.key").unwrap(), ["value_already_exist", "value_is_too_long"]);
    }

    #[test]
    fn update_keeps_absent_fields_and_clears_nulls() {
        let (c, _) = upsert(None, input(json!({"external_id": "c", "name": "A", "email": "a@b.co"}))).unwrap();
        let (n, meta) = upsert(
            Some(&c),
            input(json!({"external_id": "ignored", "email": null, "metadata": [{"key": "k", "value": "v"}]})),
        )
        .unwrap();
        assert_eq!((n.external_id.as_str(), n.get("name"), n.get("email")), ("c", Some("A"), None));
        assert_eq!(meta.unwrap()[0].key, "k");
    }
}
