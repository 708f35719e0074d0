//! Per-event detail some charge models need beyond a total: the percentage model prices each transaction (free
//! events, per-transaction minimum and maximum) and the dynamic model sums the prices sent with the events. Read
//! with one scan per metric for many subscriptions, bucketed by the same filter and group rules as the totals.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::jobs::{JobError, JobSpec};
use crate::semantics::{Group, filters_of, group_of, property_text, value_of};
use crate::store::{EventStore, ScanFilter};

/// One bucket's events in time order: each one's aggregated value (1 for a count) and the sum of their
/// `precise_total_amount_cents`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketDetail {
    pub values: Vec<Decimal>,
    pub precise_total_amount_cents: Decimal,
}

/// Key of a bucket: subscription, charge filter (`None`: the default bucket) and pricing group.
pub type BucketKey = (String, Option<usize>, Group);

/// The detail of every bucket of `job` over its window (both ends included).
pub async fn run(store: &dyn EventStore, job: &JobSpec) -> Result<HashMap<BucketKey, BucketDetail>, JobError> {
    let filter = ScanFilter {
        organization_id: job.organization_id,
        external_subscription_ids: job.subscriptions.clone(),
        codes: vec![job.code.clone()],
        from: job.window.from,
        to: job.window.to + chrono::Duration::microseconds(1),
    };
    let mut events = store.scan(&filter).await?;
    events.sort_by_key(|e| (e.timestamp, e.ingested_at));
    let mut out: HashMap<BucketKey, BucketDetail> = HashMap::new();
    for e in events {
        let properties: Value = serde_json::from_str(&e.properties).unwrap_or(Value::Null);
        let value = match &job.metric.field_name {
            Some(field) if job.metric.aggregation_type != crate::semantics::AggregationType::Count => {
                match property_text(&properties, field).as_deref().and_then(value_of) {
                    Some(v) => v,
                    // Lago skips events whose value is not a number.
                    None => continue,
                }
            }
            _ => Decimal::ONE,
        };
        let group = group_of(&properties, &job.grouped_by);
        let hit = filters_of(&job.filters, &properties);
        let buckets: Vec<Option<usize>> = if hit.is_empty() { vec![None] } else { hit.into_iter().map(Some).collect() };
        for bucket in buckets {
            let d = out.entry((e.external_subscription_id.clone(), bucket, group.clone())).or_default();
            d.values.push(value);
            d.precise_total_amount_cents += e.precise_total_amount_cents.unwrap_or_default();
        }
    }
    Ok(out)
}
