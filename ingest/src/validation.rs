//! Asynchronous checks of stored events, for the hourly `events.errors` report: events are accepted and kept whatever
//! their code and properties, and those that billing cannot use are recorded here, off the request path.
//!
//! Kinds, as Lago computes them:
//! - `invalid_code`: no live billable metric of the organization has the event's code;
//! - `missing_aggregation_property`: the metric aggregates a property (every type but count) and the event lacks it
//!   (or it is null); for sum, max, weighted sum and latest it must also be a plain decimal number;
//! - `invalid_filter_values`: the event has a filter key of its metric with a value that filter does not list;
//! - `missing_group_key`: the event lacks a property that a charge of its metric on its subscription's plan groups
//!   by (`pricing_group_keys`, formerly `grouped_by`). Lago dropped this check in 2024; Billstream keeps it,
//!   because such events land in a pricing group without a name and are easy to miss.
//!
//! The rules are pure functions; `Recorder` loads the metrics of a committed group in one query and stores the
//! findings with `ON CONFLICT DO NOTHING`, so a retried event is recorded once.

use std::collections::HashMap;

use aggregate::semantics::{plain_decimal, property_text};
use schemas::event::Event;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::metrics as names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidCode,
    MissingAggregationProperty,
    InvalidFilterValues,
    MissingGroupKey,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidCode => "invalid_code",
            ErrorKind::MissingAggregationProperty => "missing_aggregation_property",
            ErrorKind::InvalidFilterValues => "invalid_filter_values",
            ErrorKind::MissingGroupKey => "missing_group_key",
        }
    }
}

/// What the checks need to know of one billable metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricRule {
    pub aggregation_type: String,
    pub field_name: Option<String>,
    pub filters: Vec<(String, Vec<String>)>,
    pub group_keys: Vec<String>,
}

/// Aggregation types whose property must be a number.
const NUMERIC_TYPES: [&str; 4] = ["sum_agg", "max_agg", "weighted_sum_agg", "latest_agg"];

/// The findings for one event, given its properties and its metric (`None`: no live metric has its code).
pub fn check(properties: &Value, rule: Option<&MetricRule>) -> Vec<ErrorKind> {
    let Some(rule) = rule else { return vec![ErrorKind::InvalidCode] };
    let mut found = Vec::new();
    let prop = |key: &str| property_text(properties, key);
    if rule.aggregation_type != "count_agg" {
        let value = rule.field_name.as_deref().and_then(prop);
        let numeric_needed = NUMERIC_TYPES.contains(&rule.aggregation_type.as_str());
        match value {
            None => found.push(ErrorKind::MissingAggregationProperty),
            Some(v) if numeric_needed && plain_decimal(&v).is_none() => {
                found.push(ErrorKind::MissingAggregationProperty)
            }
            Some(_) => {}
        }
    }
    let bad_filter = rule.filters.iter().any(|(key, values)| prop(key).is_some_and(|v| !values.contains(&v)));
    if bad_filter {
        found.push(ErrorKind::InvalidFilterValues);
    }
    if rule.group_keys.iter().any(|k| prop(k).is_none()) {
        found.push(ErrorKind::MissingGroupKey);
    }
    found
}

/// A metric with one of its filters (or none): organization, code, aggregation type, field, filter key and values.
type RuleRow = (Uuid, String, String, Option<String>, Option<String>, Option<Vec<String>>);

/// A committed group of events, and which of them (indices) were duplicates of an identity already stored.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    pub events: Vec<Event>,
    pub duplicates: Vec<usize>,
}

/// Records the findings of committed groups; started once per process in embedded mode.
pub struct Recorder {
    pool: PgPool,
}

/// The metric rules of a set of events: per (organization, code), plus the pricing group keys per (organization,
/// subscription, code).
#[derive(Debug, Default)]
pub struct Rules {
    metrics: HashMap<(Uuid, String), MetricRule>,
    group_keys: HashMap<(Uuid, String, String), Vec<String>>,
}

impl Rules {
    /// The rule that applies to `e` (its metric with its subscription's group keys); `None`: no live metric.
    pub fn rule_for(&self, e: &Event) -> Option<MetricRule> {
        let mut rule = self.metrics.get(&(e.organization_id, e.code.clone())).cloned()?;
        if let Some(keys) =
            self.group_keys.get(&(e.organization_id, e.external_subscription_id.clone(), e.code.clone()))
        {
            rule.group_keys = keys.clone();
        }
        Some(rule)
    }

    /// Calls `f` with each event of `events`, in order, and its rule. Events that follow one another with the same
    /// organization, subscription and code (the events of one request or record, mostly) share one lookup: a lookup
    /// clones the rule and its keys.
    pub fn for_each_rule<'e>(&self, events: &'e [Event], mut f: impl FnMut(&'e Event, Option<&MetricRule>)) {
        let mut last: Option<(&Event, Option<MetricRule>)> = None;
        for e in events {
            let same = last.as_ref().is_some_and(|(p, _)| {
                p.organization_id == e.organization_id
                    && p.code == e.code
                    && p.external_subscription_id == e.external_subscription_id
            });
            if !same {
                last = Some((e, self.rule_for(e)));
            }
            f(e, last.as_ref().and_then(|(_, r)| r.as_ref()));
        }
    }
}

impl Recorder {
    /// A recorder used directly (the sink calls [`Recorder::load`] and [`Recorder::record_findings`] itself).
    pub fn new(pool: PgPool) -> Self {
        Recorder { pool }
    }

    /// Starts the recorder task; returns the sender the group commit notifies.
    pub fn start(pool: PgPool, queue_depth: usize) -> mpsc::Sender<Committed> {
        let (tx, mut rx) = mpsc::channel::<Committed>(queue_depth.max(1));
        let recorder = Recorder { pool };
        tokio::spawn(async move {
            while let Some(mut group) = rx.recv().await {
                // Take what else is waiting, to check it in one query.
                while group.events.len() < 50_000 {
                    match rx.try_recv() {
                        Ok(more) => {
                            let offset = group.events.len();
                            group.duplicates.extend(more.duplicates.into_iter().map(|i| i + offset));
                            group.events.extend(more.events);
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = recorder.record(&group.events).await {
                    tracing::error!(error = %e, events = group.events.len(), "recording event errors failed");
                }
                if let Err(e) = recorder.record_duplicates(&group.events, &group.duplicates).await {
                    tracing::error!(error = %e, "recording duplicate events failed");
                }
            }
        });
        tx
    }

    /// Stores the duplicates among `events` for their `event.error` webhook; idempotent.
    pub async fn record_duplicates(&self, events: &[Event], duplicates: &[usize]) -> Result<(), sqlx::Error> {
        let dups: Vec<&Event> = duplicates.iter().filter_map(|&i| events.get(i)).collect();
        if dups.is_empty() {
            return Ok(());
        }
        ::metrics::counter!(names::DUPLICATE_EVENTS_TOTAL).increment(dups.len() as u64);
        let orgs: Vec<Uuid> = dups.iter().map(|e| e.organization_id).collect();
        let subs: Vec<&str> = dups.iter().map(|e| e.external_subscription_id.as_str()).collect();
        let txs: Vec<&str> = dups.iter().map(|e| e.transaction_id.as_str()).collect();
        let received: Vec<chrono::DateTime<chrono::Utc>> = dups.iter().map(|e| e.ingested_at).collect();
        let codes: Vec<&str> = dups.iter().map(|e| e.code.as_str()).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> = dups.iter().map(|e| e.timestamp).collect();
        let props: Vec<&str> = dups.iter().map(|e| e.properties.as_str()).collect();
        let amounts: Vec<Option<rust_decimal::Decimal>> = dups.iter().map(|e| e.precise_total_amount_cents).collect();
        sqlx::query(
            r#"INSERT INTO event_duplicates (organization_id, external_subscription_id, transaction_id, ingested_at,
                   code, "timestamp", properties, precise_total_amount_cents)
               SELECT o, s, t, i, c, ts, p::jsonb, a
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::timestamptz[],
                           $7::text[], $8::numeric[]) AS u(o, s, t, i, c, ts, p, a)
               ON CONFLICT DO NOTHING"#,
        )
        .bind(&orgs)
        .bind(&subs)
        .bind(&txs)
        .bind(&received)
        .bind(&codes)
        .bind(&times)
        .bind(&props)
        .bind(&amounts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Loads what the checks (and the sink's enrichment) need to know about these events' metrics and charges.
    pub async fn load(&self, events: &[Event]) -> Result<Rules, sqlx::Error> {
        Ok(Rules { metrics: self.rules(events).await?, group_keys: self.group_keys(events).await? })
    }

    async fn rules(&self, events: &[Event]) -> Result<HashMap<(Uuid, String), MetricRule>, sqlx::Error> {
        let mut keys: Vec<(Uuid, &str)> = events.iter().map(|e| (e.organization_id, e.code.as_str())).collect();
        keys.sort_unstable();
        keys.dedup();
        let (orgs, codes): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
        let rows: Vec<RuleRow> = sqlx::query_as(
            r#"SELECT m.organization_id, m.code, m.aggregation_type, m.field_name, f.key, f."values"
               FROM unnest($1::uuid[], $2::text[]) AS k(org, code)
               JOIN billable_metrics m ON m.organization_id = k.org AND m.code = k.code AND m.deleted_at IS NULL
               LEFT JOIN billable_metric_filters f ON f.billable_metric_id = m.id AND f.deleted_at IS NULL"#,
        )
        .bind(&orgs)
        .bind(&codes)
        .fetch_all(&self.pool)
        .await?;
        let mut rules: HashMap<(Uuid, String), MetricRule> = HashMap::new();
        for (org, code, aggregation_type, field_name, key, values) in rows {
            let rule = rules.entry((org, code)).or_insert_with(|| MetricRule {
                aggregation_type,
                field_name,
                ..MetricRule::default()
            });
            if let (Some(k), Some(v)) = (key, values) {
                rule.filters.push((k, v));
            }
        }
        Ok(rules)
    }

    /// The pricing group keys of the charges each event's subscription prices its metric with.
    async fn group_keys(&self, events: &[Event]) -> Result<HashMap<(Uuid, String, String), Vec<String>>, sqlx::Error> {
        let mut keys: Vec<(Uuid, &str, &str)> =
            events.iter().map(|e| (e.organization_id, e.external_subscription_id.as_str(), e.code.as_str())).collect();
        keys.sort_unstable();
        keys.dedup();
        let orgs: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let subs: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let codes: Vec<&str> = keys.iter().map(|k| k.2).collect();
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "SELECT DISTINCT k.org, k.sub, k.code, jsonb_array_elements_text(c.properties -> 'pricing_group_keys')
             FROM unnest($1::uuid[], $2::text[], $3::text[]) AS k(org, sub, code)
             JOIN subscriptions s ON s.organization_id = k.org AND s.external_id = k.sub AND s.status = 'active'
             JOIN charges c ON c.plan_id = s.plan_id AND c.deleted_at IS NULL
             JOIN billable_metrics m ON m.id = c.billable_metric_id AND m.code = k.code AND m.deleted_at IS NULL
             WHERE jsonb_typeof(c.properties -> 'pricing_group_keys') = 'array'",
        )
        .bind(&orgs)
        .bind(&subs)
        .bind(&codes)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<(Uuid, String, String), Vec<String>> = HashMap::new();
        for (org, sub, code, key) in rows {
            out.entry((org, sub, code)).or_default().push(key);
        }
        Ok(out)
    }

    async fn record(&self, events: &[Event]) -> Result<(), sqlx::Error> {
        let rules = self.load(events).await?;
        let mut findings: Vec<Vec<ErrorKind>> = Vec::with_capacity(events.len());
        rules.for_each_rule(events, |e, rule| {
            let properties: Value = serde_json::from_str(&e.properties).unwrap_or(Value::Null);
            findings.push(check(&properties, rule));
        });
        self.record_findings(events, &findings).await
    }

    /// Stores the findings of `events` (`findings[i]` are those of `events[i]`, from [`check`]); idempotent.
    pub async fn record_findings(&self, events: &[Event], findings: &[Vec<ErrorKind>]) -> Result<(), sqlx::Error> {
        let mut orgs = Vec::new();
        let mut subs = Vec::new();
        let mut txs = Vec::new();
        let mut kinds = Vec::new();
        let mut codes = Vec::new();
        let mut times = Vec::new();
        for (e, found) in events.iter().zip(findings) {
            for kind in found {
                ::metrics::counter!(names::EVENT_ERRORS_TOTAL, "kind" => kind.as_str()).increment(1);
                orgs.push(e.organization_id);
                subs.push(e.external_subscription_id.as_str());
                txs.push(e.transaction_id.as_str());
                kinds.push(kind.as_str());
                codes.push(e.code.as_str());
                times.push(e.timestamp);
            }
        }
        if orgs.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO event_errors (organization_id, external_subscription_id, transaction_id, kind, code, event_timestamp)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&orgs)
        .bind(&subs)
        .bind(&txs)
        .bind(&kinds)
        .bind(&codes)
        .bind(&times)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(agg: &str, field: Option<&str>) -> MetricRule {
        MetricRule { aggregation_type: agg.into(), field_name: field.map(Into::into), ..MetricRule::default() }
    }

    #[test]
    fn each_event_gets_its_own_rule_when_lookups_are_shared() {
        let org = Uuid::from_u128(1);
        let mut rules = Rules::default();
        rules.metrics.insert((org, "calls".into()), rule("sum_agg", Some("n")));
        rules.metrics.insert((org, "seats".into()), rule("count_agg", None));
        rules.group_keys.insert((org, "sub-b".into(), "calls".into()), vec!["region".into()]);
        let event = |sub: &str, code: &str| Event {
            organization_id: org,
            external_subscription_id: sub.into(),
            transaction_id: "tx".into(),
            code: code.into(),
            timestamp: chrono::DateTime::from_timestamp_micros(0).unwrap(),
            properties: "{}".into(),
            precise_total_amount_cents: None,
            ingested_at: chrono::DateTime::from_timestamp_micros(0).unwrap(),
        };
        let events = [
            event("sub-a", "calls"),
            event("sub-a", "calls"),
            event("sub-b", "calls"),
            event("sub-b", "seats"),
            event("sub-b", "nope"),
            event("sub-b", "nope"),
            event("sub-a", "calls"),
        ];
        let mut seen = Vec::new();
        rules.for_each_rule(&events, |e, r| seen.push((e.external_subscription_id.clone(), r.cloned())));
        let expected: Vec<_> = events.iter().map(|e| (e.external_subscription_id.clone(), rules.rule_for(e))).collect();
        assert_eq!(seen, expected);
        assert_eq!(seen[2].1.as_ref().map(|r| r.group_keys.clone()), Some(vec!["region".to_owned()]));
        assert_eq!(seen[0].1.as_ref().map(|r| r.group_keys.len()), Some(0));
        assert_eq!(seen[4].1, None);
    }

    #[test]
    fn unknown_code() {
        assert_eq!(check(&json!({}), None), [ErrorKind::InvalidCode]);
    }

    #[test]
    fn count_needs_no_property() {
        assert!(check(&json!({}), Some(&rule("count_agg", None))).is_empty());
    }

    #[test]
    fn aggregated_property_must_be_present() {
        for agg in ["sum_agg", "max_agg", "unique_count_agg", "latest_agg", "weighted_sum_agg"] {
            let r = rule(agg, Some("gb"));
            assert_eq!(check(&json!({"other": 1}), Some(&r)), [ErrorKind::MissingAggregationProperty], "{agg}");
            assert_eq!(check(&json!({"gb": null}), Some(&r)), [ErrorKind::MissingAggregationProperty], "{agg}");
            assert!(check(&json!({"gb": "12.5"}), Some(&r)).is_empty(), "{agg}");
        }
    }

    #[test]
    fn numeric_types_need_a_plain_decimal() {
        let r = rule("sum_agg", Some("gb"));
        for ok in [json!(10), json!("-12"), json!("3.25"), json!(0.5)] {
            assert!(check(&json!({"gb": ok}), Some(&r)).is_empty(), "{ok}");
        }
        for bad in [json!("1e3"), json!("+1"), json!(".5"), json!("abc"), json!(true), json!("1.")] {
            assert_eq!(check(&json!({"gb": bad}), Some(&r)), [ErrorKind::MissingAggregationProperty], "{bad}");
        }
        // unique_count counts any value.
        assert!(check(&json!({"gb": "user-1"}), Some(&rule("unique_count_agg", Some("gb")))).is_empty());
    }

    #[test]
    fn filter_values_must_be_listed_when_present() {
        let mut r = rule("count_agg", None);
        r.filters = vec![("region".into(), vec!["eu".into(), "us".into()])];
        assert!(check(&json!({"region": "eu"}), Some(&r)).is_empty());
        assert!(check(&json!({}), Some(&r)).is_empty(), "a missing filter key goes to the default bucket");
        assert_eq!(check(&json!({"region": "ap"}), Some(&r)), [ErrorKind::InvalidFilterValues]);
    }

    #[test]
    fn group_keys_must_be_present() {
        let mut r = rule("count_agg", None);
        r.group_keys = vec!["workspace".into()];
        assert_eq!(check(&json!({}), Some(&r)), [ErrorKind::MissingGroupKey]);
        assert!(check(&json!({"workspace": "w1"}), Some(&r)).is_empty());
    }
}
