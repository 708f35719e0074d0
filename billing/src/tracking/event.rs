//! The activation events Billstream reports, and the properties each carries. Every field is a non-financial
//! identifier: the types below have no room for an amount, a price, a tax, a customer's name or email, or metadata,
//! so no call site can leak one; [`FORBIDDEN_KEYS`] is what a test checks every payload against.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Property names that must never be sent, whatever the event: money, taxes, personal data, free-form metadata.
pub const FORBIDDEN_KEYS: &[&str] = &[
    "amount",
    "cents",
    "price",
    "tax",
    "total",
    "balance",
    "email",
    "firstname",
    "lastname",
    "customer_name",
    "legal_name",
    "phone",
    "address",
    "metadata",
];

/// Whether a property name is one [`FORBIDDEN_KEYS`] rules out (a substring match: `plan_amount_cents` is out).
pub fn is_forbidden(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    FORBIDDEN_KEYS.iter().any(|f| key.contains(f))
}

/// A billable metric, as its created and deleted events describe it.
#[derive(Debug, Clone)]
pub struct MetricFacts {
    pub code: String,
    pub name: String,
    pub aggregation_type: String,
    pub aggregation_property: Option<String>,
}

/// A plan, as its created and deleted events describe it: its shape, never its prices.
#[derive(Debug, Clone)]
pub struct PlanFacts {
    pub code: String,
    pub name: String,
    pub interval: String,
    pub pay_in_advance: bool,
    pub trial_period: Option<f64>,
    /// The charge model of each charge.
    pub charge_models: Vec<String>,
}

/// One activation event of an organization.
#[derive(Debug, Clone)]
pub enum TrackEvent {
    OrganizationRegistered,
    BillableMetricCreated(MetricFacts),
    BillableMetricDeleted(MetricFacts),
    PlanCreated(PlanFacts),
    PlanDeleted(PlanFacts),
    CustomerCreated {
        customer_id: Uuid,
        created_at: DateTime<Utc>,
    },
    CustomerDeleted {
        customer_id: Uuid,
        deleted_at: DateTime<Utc>,
    },
    SubscriptionCreated {
        customer_id: Uuid,
        plan_code: String,
        plan_name: String,
        /// `create`, `upgrade` or `downgrade`, as Lago.
        subscription_type: String,
        billing_time: String,
        created_at: DateTime<Utc>,
    },
    CouponCreated {
        coupon_code: String,
        coupon_name: String,
    },
    AppliedCouponCreated {
        customer_id: Uuid,
        coupon_code: String,
        coupon_name: String,
    },
    AddOnCreated {
        addon_code: String,
        addon_name: String,
        addon_invoice_display_name: Option<String>,
    },
    AppliedAddOnCreated {
        customer_id: Uuid,
        addon_code: String,
        addon_name: String,
    },
    InvoiceCreated {
        invoice_id: Uuid,
        invoice_type: String,
    },
    PaymentStatusChanged {
        invoice_id: Uuid,
        payment_status: String,
    },
    /// `credit_note_method`: `credit`, `refund` or `both`.
    CreditNoteIssued {
        credit_note_id: Uuid,
        invoice_id: Uuid,
        credit_note_method: String,
    },
}

impl TrackEvent {
    /// Lago's event name.
    pub fn name(&self) -> &'static str {
        match self {
            TrackEvent::OrganizationRegistered => "organization_registered",
            TrackEvent::BillableMetricCreated(_) => "billable_metric_created",
            TrackEvent::BillableMetricDeleted(_) => "billable_metric_deleted",
            TrackEvent::PlanCreated(_) => "plan_created",
            TrackEvent::PlanDeleted(_) => "plan_deleted",
            TrackEvent::CustomerCreated { .. } => "customer_created",
            TrackEvent::CustomerDeleted { .. } => "customer_deleted",
            TrackEvent::SubscriptionCreated { .. } => "subscription_created",
            TrackEvent::CouponCreated { .. } => "coupon_created",
            TrackEvent::AppliedCouponCreated { .. } => "applied_coupon_created",
            TrackEvent::AddOnCreated { .. } => "add_on_created",
            TrackEvent::AppliedAddOnCreated { .. } => "applied_add_on_created",
            TrackEvent::InvoiceCreated { .. } => "invoice_created",
            TrackEvent::PaymentStatusChanged { .. } => "payment_status_changed",
            TrackEvent::CreditNoteIssued { .. } => "credit_note_issued",
        }
    }

    /// The event's own properties (the organization, hosting type and version are added by the message).
    pub fn properties(&self) -> Map<String, Value> {
        let value = match self {
            TrackEvent::OrganizationRegistered => json!({}),
            TrackEvent::BillableMetricCreated(m) | TrackEvent::BillableMetricDeleted(m) => json!({
                "code": m.code,
                "name": m.name,
                "aggregation_type": m.aggregation_type,
                "aggregation_property": m.aggregation_property,
            }),
            TrackEvent::PlanCreated(p) | TrackEvent::PlanDeleted(p) => {
                let count = |model: &str| p.charge_models.iter().filter(|m| *m == model).count();
                json!({
                    "code": p.code,
                    "name": p.name,
                    "plan_interval": p.interval,
                    "plan_period": if p.pay_in_advance { "advance" } else { "arrears" },
                    "trial": p.trial_period,
                    "nb_charges": p.charge_models.len(),
                    "nb_standard_charges": count("standard"),
                    "nb_percentage_charges": count("percentage"),
                    "nb_graduated_charges": count("graduated"),
                    "nb_package_charges": count("package"),
                })
            }
            TrackEvent::CustomerCreated { customer_id, created_at } => json!({
                "customer_id": customer_id,
                "created_at": instant(created_at),
            }),
            TrackEvent::CustomerDeleted { customer_id, deleted_at } => json!({
                "customer_id": customer_id,
                "deleted_at": instant(deleted_at),
            }),
            TrackEvent::SubscriptionCreated {
                customer_id,
                plan_code,
                plan_name,
                subscription_type,
                billing_time,
                created_at,
            } => json!({
                "customer_id": customer_id,
                "plan_code": plan_code,
                "plan_name": plan_name,
                "subscription_type": subscription_type,
                "billing_time": billing_time,
                "created_at": instant(created_at),
            }),
            TrackEvent::CouponCreated { coupon_code, coupon_name } => json!({
                "coupon_code": coupon_code,
                "coupon_name": coupon_name,
            }),
            TrackEvent::AppliedCouponCreated { customer_id, coupon_code, coupon_name } => json!({
                "customer_id": customer_id,
                "coupon_code": coupon_code,
                "coupon_name": coupon_name,
            }),
            TrackEvent::AddOnCreated { addon_code, addon_name, addon_invoice_display_name } => json!({
                "addon_code": addon_code,
                "addon_name": addon_name,
                "addon_invoice_display_name": addon_invoice_display_name,
            }),
            TrackEvent::AppliedAddOnCreated { customer_id, addon_code, addon_name } => json!({
                "customer_id": customer_id,
                "addon_code": addon_code,
                "addon_name": addon_name,
            }),
            TrackEvent::InvoiceCreated { invoice_id, invoice_type } => json!({
                "invoice_id": invoice_id,
                "invoice_type": invoice_type,
            }),
            TrackEvent::PaymentStatusChanged { invoice_id, payment_status } => json!({
                "invoice_id": invoice_id,
                "payment_status": payment_status,
            }),
            TrackEvent::CreditNoteIssued { credit_note_id, invoice_id, credit_note_method } => json!({
                "credit_note_id": credit_note_id,
                "invoice_id": invoice_id,
                "credit_note_method": credit_note_method,
            }),
        };
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

fn instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_event() -> Vec<TrackEvent> {
        let metric = MetricFacts {
            code: "api_calls".into(),
            name: "API calls".into(),
            aggregation_type: "sum_agg".into(),
            aggregation_property: Some("calls".into()),
        };
        let plan = PlanFacts {
            code: "pro".into(),
            name: "Pro".into(),
            interval: "monthly".into(),
            pay_in_advance: true,
            trial_period: Some(14.0),
            charge_models: vec!["standard".into(), "graduated".into(), "standard".into()],
        };
        let id = Uuid::nil();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        vec![
            TrackEvent::OrganizationRegistered,
            TrackEvent::BillableMetricCreated(metric.clone()),
            TrackEvent::BillableMetricDeleted(metric),
            TrackEvent::PlanCreated(plan.clone()),
            TrackEvent::PlanDeleted(plan),
            TrackEvent::CustomerCreated { customer_id: id, created_at: at },
            TrackEvent::CustomerDeleted { customer_id: id, deleted_at: at },
            TrackEvent::SubscriptionCreated {
                customer_id: id,
                plan_code: "pro".into(),
                plan_name: "Pro".into(),
                subscription_type: "create".into(),
                billing_time: "calendar".into(),
                created_at: at,
            },
            TrackEvent::CouponCreated { coupon_code: "c".into(), coupon_name: "C".into() },
            TrackEvent::AppliedCouponCreated { customer_id: id, coupon_code: "c".into(), coupon_name: "C".into() },
            TrackEvent::AddOnCreated {
                addon_code: "a".into(),
                addon_name: "A".into(),
                addon_invoice_display_name: None,
            },
            TrackEvent::AppliedAddOnCreated { customer_id: id, addon_code: "a".into(), addon_name: "A".into() },
            TrackEvent::InvoiceCreated { invoice_id: id, invoice_type: "subscription".into() },
            TrackEvent::PaymentStatusChanged { invoice_id: id, payment_status: "succeeded".into() },
            TrackEvent::CreditNoteIssued { credit_note_id: id, invoice_id: id, credit_note_method: "credit".into() },
        ]
    }

    #[test]
    fn no_event_carries_money_or_personal_data() {
        let events = every_event();
        assert_eq!(events.len(), 15, "the issue's fifteen events");
        for e in events {
            for key in e.properties().keys() {
                assert!(!is_forbidden(key), "{} carries {key}", e.name());
            }
        }
    }

    #[test]
    fn forbidden_names_are_caught_inside_longer_ones() {
        assert!(is_forbidden("plan_amount_cents"));
        assert!(is_forbidden("Email"));
        assert!(is_forbidden("taxes_rate"));
        assert!(!is_forbidden("aggregation_type"));
        assert!(!is_forbidden("invoice_id"));
    }

    #[test]
    fn a_plan_counts_its_charges_by_model_and_names_its_period() {
        let plan = every_event().remove(3);
        let p = plan.properties();
        assert_eq!(p["nb_charges"], 3);
        assert_eq!(p["nb_standard_charges"], 2);
        assert_eq!(p["nb_graduated_charges"], 1);
        assert_eq!(p["nb_package_charges"], 0);
        assert_eq!(p["plan_period"], "advance");
        assert_eq!(p["trial"], 14.0);
    }

    #[test]
    fn a_metric_reports_its_aggregation() {
        let p = every_event().remove(1).properties();
        assert_eq!(p["code"], "api_calls");
        assert_eq!(p["aggregation_type"], "sum_agg");
        assert_eq!(p["aggregation_property"], "calls");
    }
}
