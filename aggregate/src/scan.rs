//! A DataFusion table over an event store scan: `EventScanTable` is the events of one organization, with the
//! event columns and the properties a job asked for. Projections and the filters the store can apply itself
//! (subscription and code equality or `IN` lists, timestamp ranges) are pushed down into one `scan_batches` call,
//! so DataFusion never sees rows or columns the query does not need; other filters stay with DataFusion.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::DateTime;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use uuid::Uuid;

use crate::store::{EventStore, ScanColumn, ScanFilter, scan_schema};

/// Events of one organization as a table; see the module documentation.
pub struct EventScanTable {
    store: Arc<dyn EventStore>,
    organization_id: Uuid,
    columns: Vec<ScanColumn>,
    schema: SchemaRef,
}

impl fmt::Debug for EventScanTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventScanTable").field("organization_id", &self.organization_id).finish()
    }
}

impl EventScanTable {
    /// The organization's events with every event column and `properties` (named `properties.<key>`).
    pub fn new(store: Arc<dyn EventStore>, organization_id: Uuid, properties: &[String]) -> Self {
        let columns = ScanColumn::all(properties);
        let schema = scan_schema(&columns);
        EventScanTable { store, organization_id, columns, schema }
    }
}

/// What a pushed-down filter says about the scan.
enum Pushed {
    Subscriptions(Vec<String>),
    Codes(Vec<String>),
    /// `[from, to)` in microseconds; either may be open.
    Time(Option<i64>, Option<i64>),
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(Column { name, .. }) => Some(name.as_str()),
        _ => None,
    }
}

fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

fn int(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Some(*v),
        _ => None,
    }
}

/// The filter as a store condition, when the store can apply it exactly.
fn pushed(e: &Expr) -> Option<Pushed> {
    let list = |name: &str, values: Vec<String>| match name {
        "external_subscription_id" => Some(Pushed::Subscriptions(values)),
        "code" => Some(Pushed::Codes(values)),
        _ => None,
    };
    match e {
        // DataFusion rewrites a short `IN` list as equalities joined by `OR`.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => match (pushed(left)?, pushed(right)?) {
            (Pushed::Subscriptions(mut a), Pushed::Subscriptions(b)) => {
                a.extend(b);
                Some(Pushed::Subscriptions(a))
            }
            (Pushed::Codes(mut a), Pushed::Codes(b)) => {
                a.extend(b);
                Some(Pushed::Codes(a))
            }
            _ => None,
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let name = column_name(left)?;
            if *op == Operator::Eq {
                return list(name, vec![text(right)?]);
            }
            if name != "timestamp" {
                return None;
            }
            let v = int(right)?;
            match op {
                Operator::GtEq => Some(Pushed::Time(Some(v), None)),
                Operator::Gt => Some(Pushed::Time(Some(v.checked_add(1)?), None)),
                Operator::Lt => Some(Pushed::Time(None, Some(v))),
                Operator::LtEq => Some(Pushed::Time(None, Some(v.checked_add(1)?))),
                _ => None,
            }
        }
        Expr::InList(inlist) if !inlist.negated => {
            let values = inlist.list.iter().map(text).collect::<Option<Vec<_>>>()?;
            list(column_name(&inlist.expr)?, values)
        }
        _ => None,
    }
}

/// Narrows `current` (`None`: no condition yet) to the values also in `values`.
fn intersect(current: Option<BTreeSet<String>>, values: Vec<String>) -> Option<BTreeSet<String>> {
    let values: BTreeSet<String> = values.into_iter().collect();
    Some(match current {
        None => values,
        Some(c) => c.intersection(&values).cloned().collect(),
    })
}

/// Year 1 to year 9999: the times ingest accepts.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_800_000_000;

#[async_trait]
impl TableProvider for EventScanTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if pushed(f).is_some() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (mut subs, mut codes) = (None, None);
        let (mut from, mut to) = (MIN_MICROS, MAX_MICROS);
        for f in filters {
            match pushed(f) {
                Some(Pushed::Subscriptions(v)) => subs = intersect(subs, v),
                Some(Pushed::Codes(v)) => codes = intersect(codes, v),
                Some(Pushed::Time(a, b)) => {
                    from = from.max(a.unwrap_or(MIN_MICROS));
                    to = to.min(b.unwrap_or(MAX_MICROS));
                }
                // Only the filters we answered Exact for come here.
                None => return Err(DataFusionError::Plan(format!("filter not pushed down: {f}"))),
            }
        }
        let columns: Vec<ScanColumn> = match projection {
            Some(p) => p.iter().map(|&i| self.columns[i].clone()).collect(),
            None => self.columns.clone(),
        };
        let schema = scan_schema(&columns);
        // An empty list after narrowing matches nothing; the store reads an empty list as "all".
        let nothing = subs.as_ref().is_some_and(BTreeSet::is_empty)
            || codes.as_ref().is_some_and(BTreeSet::is_empty)
            || from >= to;
        let batches = if nothing {
            Vec::new()
        } else {
            let time = |us: i64| {
                DateTime::from_timestamp_micros(us)
                    .ok_or_else(|| DataFusionError::Plan(format!("timestamp out of range: {us}")))
            };
            let filter = ScanFilter {
                organization_id: self.organization_id,
                external_subscription_ids: subs.map(|s| s.into_iter().collect()).unwrap_or_default(),
                codes: codes.map(|s| s.into_iter().collect()).unwrap_or_default(),
                from: time(from)?,
                to: time(to)?,
            };
            self.store.scan_batches(&filter, &columns).await.map_err(|e| DataFusionError::External(Box::new(e)))?
        };
        Ok(MemorySourceConfig::try_new_exec(&[batches], schema, None)?)
    }
}
