//! Plans, their charges (with filters), minimum commitment and taxes in Postgres. The API composes these inside one
//! transaction per request, so a rejected request leaves nothing behind.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::sql;
use super::taxes::{self, Tax};
use crate::domain::billable_metric::MetricFilter;
use crate::domain::charge::{ChargeAttrs, FilterAttrs, MetricInfo};
use crate::domain::plan::{CommitmentAttrs, PlanAttrs};
use crate::{Error, Result};

pub const OWNER_PLAN: &str = "plan";

/// A charge filter's values: metric filter key -> the values it matches.
type FilterValues = BTreeMap<String, Vec<String>>;
pub const OWNER_CHARGE: &str = "charge";
pub const OWNER_COMMITMENT: &str = "commitment";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub invoice_display_name: Option<String>,
    pub code: String,
    pub interval: String,
    pub description: Option<String>,
    pub amount_cents: i64,
    pub amount_currency: String,
    pub trial_period: Option<Decimal>,
    pub pay_in_advance: bool,
    pub bill_charges_monthly: Option<bool>,
    pub metadata: Option<Json<Map<String, Value>>>,
    pub created_at: DateTime<Utc>,
}

impl PlanRow {
    pub fn attrs(&self) -> PlanAttrs {
        PlanAttrs {
            name: self.name.clone(),
            invoice_display_name: self.invoice_display_name.clone(),
            code: self.code.clone(),
            interval: self.interval.clone(),
            description: self.description.clone(),
            amount_cents: self.amount_cents,
            amount_currency: self.amount_currency.clone(),
            trial_period: self.trial_period,
            pay_in_advance: self.pay_in_advance,
            bill_charges_monthly: self.bill_charges_monthly,
            metadata: self.metadata.as_ref().map(|m| m.0.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Commitment {
    pub id: Uuid,
    pub attrs: CommitmentAttrs,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub taxes: Vec<Tax>,
}

#[derive(Debug, Clone)]
pub struct StoredFilter {
    pub id: Uuid,
    pub attrs: FilterAttrs,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub id: Uuid,
    pub attrs: ChargeAttrs,
    pub billable_metric_code: String,
    pub created_at: DateTime<Utc>,
    pub filters: Vec<StoredFilter>,
    pub taxes: Vec<Tax>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub row: PlanRow,
    pub commitment: Option<Commitment>,
    pub charges: Vec<Charge>,
    pub taxes: Vec<Tax>,
}

const PLAN_COLUMNS: &str = "id, parent_id, name, invoice_display_name, code, interval, description, amount_cents, \
                            amount_currency, trial_period, pay_in_advance, bill_charges_monthly, metadata, created_at";

/// Whether a live object other than `except` holds `code`.
pub async fn code_taken(conn: &mut PgConnection, org: Uuid, code: &str, except: Option<Uuid>) -> Result<bool> {
    super::code_taken(conn, super::Coded::Plans, org, code, except).await
}

/// Whether subscriptions (any status but canceled) use the plan or one of its overriding children.
pub async fn attached_to_subscriptions(conn: &mut PgConnection, org: Uuid, plan: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM subscriptions s JOIN plans p ON p.id = s.plan_id
                        WHERE s.organization_id = $1 AND (p.id = $2 OR p.parent_id = $2))",
    )
    .bind(org)
    .bind(plan)
    .fetch_one(conn)
    .await?)
}

/// The live metrics with these ids, with their filters; a missing one is absent from the map.
pub async fn metric_infos(conn: &mut PgConnection, org: Uuid, ids: &[Uuid]) -> Result<HashMap<Uuid, MetricInfo>> {
    let rows: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT id, code, aggregation_type, recurring FROM billable_metrics
         WHERE organization_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let filters: Vec<(Uuid, String, Vec<String>)> = sqlx::query_as(
        r#"SELECT f.billable_metric_id, f.key, f."values" FROM billable_metric_filters f
           JOIN billable_metrics m ON m.id = f.billable_metric_id
           WHERE m.organization_id = $1 AND f.billable_metric_id = ANY($2) AND f.deleted_at IS NULL ORDER BY f.key"#,
    )
    .bind(org)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, aggregation_type, recurring)| {
            let filters = filters
                .iter()
                .filter(|(m, _, _)| *m == id)
                .map(|(_, key, values)| MetricFilter { key: key.clone(), values: values.clone() })
                .collect();
            (id, MetricInfo { id, code, aggregation_type, recurring, filters })
        })
        .collect())
}

/// The live top-level plan with this code, locked for update when `lock`.
pub async fn find_row(conn: &mut PgConnection, org: Uuid, code: &str, lock: bool) -> Result<Option<PlanRow>> {
    let lock = if lock { "FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(sql(format!(
        "SELECT {PLAN_COLUMNS} FROM plans
         WHERE organization_id = $1 AND code = $2 AND deleted_at IS NULL AND parent_id IS NULL {lock}"
    )))
    .bind(org)
    .bind(code)
    .fetch_optional(conn)
    .await?)
}

pub async fn find_row_by_id(conn: &mut PgConnection, org: Uuid, id: Uuid) -> Result<Option<PlanRow>> {
    Ok(sqlx::query_as(sql(format!("SELECT {PLAN_COLUMNS} FROM plans WHERE organization_id = $1 AND id = $2")))
        .bind(org)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Plans by id, with their charges and taxes (for a billing run).
pub async fn load_by_ids(conn: &mut PgConnection, org: Uuid, ids: &[Uuid]) -> Result<Vec<Plan>> {
    let rows: Vec<PlanRow> =
        sqlx::query_as(sql(format!("SELECT {PLAN_COLUMNS} FROM plans WHERE organization_id = $1 AND id = ANY($2)")))
            .bind(org)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    load(conn, org, rows).await
}

pub async fn find(pool: &PgPool, org: Uuid, code: &str) -> Result<Option<Plan>> {
    let mut conn = pool.acquire().await?;
    match find_row(&mut conn, org, code, false).await? {
        Some(row) => Ok(load(&mut conn, org, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Loads charges, filters, commitments and taxes of `rows`, keeping their order.
pub async fn load(conn: &mut PgConnection, org: Uuid, rows: Vec<PlanRow>) -> Result<Vec<Plan>> {
    let plan_ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    #[derive(sqlx::FromRow)]
    struct ChargeRow {
        id: Uuid,
        plan_id: Uuid,
        billable_metric_id: Uuid,
        parent_id: Option<Uuid>,
        billable_metric_code: String,
        code: String,
        invoice_display_name: Option<String>,
        charge_model: String,
        pay_in_advance: bool,
        invoiceable: bool,
        prorated: bool,
        min_amount_cents: i64,
        regroup_paid_fees: Option<String>,
        properties: Json<Map<String, Value>>,
        created_at: DateTime<Utc>,
    }
    let charge_rows: Vec<ChargeRow> = sqlx::query_as(
        "SELECT c.id, c.plan_id, c.billable_metric_id, c.parent_id, m.code AS billable_metric_code, c.code,
                c.invoice_display_name, c.charge_model, c.pay_in_advance, c.invoiceable, c.prorated,
                c.min_amount_cents, c.regroup_paid_fees, c.properties, c.created_at
         FROM charges c JOIN billable_metrics m ON m.id = c.billable_metric_id
         WHERE c.organization_id = $1 AND c.plan_id = ANY($2) AND c.deleted_at IS NULL
         ORDER BY c.created_at, c.id",
    )
    .bind(org)
    .bind(&plan_ids)
    .fetch_all(&mut *conn)
    .await?;
    let charge_ids: Vec<Uuid> = charge_rows.iter().map(|c| c.id).collect();
    #[derive(sqlx::FromRow)]
    struct FilterRow {
        id: Uuid,
        charge_id: Uuid,
        invoice_display_name: Option<String>,
        properties: Json<Map<String, Value>>,
        values: Json<BTreeMap<String, Vec<String>>>,
    }
    let filter_rows: Vec<FilterRow> = sqlx::query_as(
        r#"SELECT id, charge_id, invoice_display_name, properties, "values" FROM charge_filters
           WHERE organization_id = $1 AND charge_id = ANY($2) AND deleted_at IS NULL ORDER BY position"#,
    )
    .bind(org)
    .bind(&charge_ids)
    .fetch_all(&mut *conn)
    .await?;
    #[derive(sqlx::FromRow)]
    struct CommitmentRow {
        id: Uuid,
        plan_id: Uuid,
        amount_cents: i64,
        invoice_display_name: Option<String>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    }
    let commitment_rows: Vec<CommitmentRow> = sqlx::query_as(
        "SELECT id, plan_id, amount_cents, invoice_display_name, created_at, updated_at FROM commitments
         WHERE organization_id = $1 AND plan_id = ANY($2)",
    )
    .bind(org)
    .bind(&plan_ids)
    .fetch_all(&mut *conn)
    .await?;
    let commitment_ids: Vec<Uuid> = commitment_rows.iter().map(|c| c.id).collect();
    let mut plan_taxes = taxes::applied(conn, org, OWNER_PLAN, &plan_ids).await?;
    let mut charge_taxes = taxes::applied(conn, org, OWNER_CHARGE, &charge_ids).await?;
    let mut commitment_taxes = taxes::applied(conn, org, OWNER_COMMITMENT, &commitment_ids).await?;

    let mut charges_by_plan: HashMap<Uuid, Vec<Charge>> = HashMap::new();
    for c in charge_rows {
        let filters: Vec<StoredFilter> = filter_rows
            .iter()
            .filter(|f| f.charge_id == c.id)
            .map(|f| StoredFilter {
                id: f.id,
                attrs: FilterAttrs {
                    invoice_display_name: f.invoice_display_name.clone(),
                    properties: f.properties.0.clone(),
                    values: f.values.0.clone(),
                },
            })
            .collect();
        let charge = Charge {
            id: c.id,
            attrs: ChargeAttrs {
                billable_metric_id: c.billable_metric_id,
                parent_id: c.parent_id,
                code: c.code,
                invoice_display_name: c.invoice_display_name,
                charge_model: c.charge_model,
                pay_in_advance: c.pay_in_advance,
                invoiceable: c.invoiceable,
                prorated: c.prorated,
                min_amount_cents: c.min_amount_cents,
                regroup_paid_fees: c.regroup_paid_fees,
                properties: c.properties.0,
                filters: filters.iter().map(|f| f.attrs.clone()).collect(),
            },
            billable_metric_code: c.billable_metric_code,
            created_at: c.created_at,
            filters,
            taxes: charge_taxes.remove(&c.id).unwrap_or_default(),
        };
        charges_by_plan.entry(c.plan_id).or_default().push(charge);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let commitment = commitment_rows.iter().find(|c| c.plan_id == row.id).map(|c| Commitment {
                id: c.id,
                attrs: CommitmentAttrs {
                    amount_cents: c.amount_cents,
                    invoice_display_name: c.invoice_display_name.clone(),
                },
                created_at: c.created_at,
                updated_at: c.updated_at,
                taxes: commitment_taxes.remove(&c.id).unwrap_or_default(),
            });
            Plan {
                charges: charges_by_plan.remove(&row.id).unwrap_or_default(),
                taxes: plan_taxes.remove(&row.id).unwrap_or_default(),
                commitment,
                row,
            }
        })
        .collect())
}

/// Inserts (`id` new) or updates the plan row.
pub async fn write_plan(
    conn: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    parent_id: Option<Uuid>,
    a: &PlanAttrs,
    insert: bool,
) -> Result<PlanRow> {
    let q = if insert {
        format!(
            "INSERT INTO plans (organization_id, id, name, invoice_display_name, code, interval, description,
                 amount_cents, amount_currency, trial_period, pay_in_advance, bill_charges_monthly, parent_id, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {PLAN_COLUMNS}"
        )
    } else {
        format!(
            "UPDATE plans SET name = $3, invoice_display_name = $4, code = $5, interval = $6, description = $7,
                 amount_cents = $8, amount_currency = $9, trial_period = $10, pay_in_advance = $11,
                 bill_charges_monthly = $12, metadata = $14, updated_at = now()
             WHERE organization_id = $1 AND id = $2 AND parent_id IS NOT DISTINCT FROM $13 RETURNING {PLAN_COLUMNS}"
        )
    };
    sqlx::query_as(sql(q))
        .bind(org)
        .bind(id)
        .bind(&a.name)
        .bind(&a.invoice_display_name)
        .bind(&a.code)
        .bind(&a.interval)
        .bind(&a.description)
        .bind(a.amount_cents)
        .bind(&a.amount_currency)
        .bind(a.trial_period)
        .bind(a.pay_in_advance)
        .bind(a.bill_charges_monthly)
        .bind(parent_id)
        .bind(a.metadata.as_ref().map(Json))
        .fetch_optional(conn)
        .await
        .map_err(super::code_conflict)?
        .ok_or(Error::NotFound("plan"))
}

/// Makes the plan's commitment `c` (or removes it); returns its id.
pub async fn write_commitment(
    conn: &mut PgConnection,
    org: Uuid,
    plan: Uuid,
    c: Option<&CommitmentAttrs>,
) -> Result<Option<Uuid>> {
    match c {
        None => {
            sqlx::query("DELETE FROM commitments WHERE organization_id = $1 AND plan_id = $2")
                .bind(org)
                .bind(plan)
                .execute(conn)
                .await?;
            Ok(None)
        }
        Some(c) => Ok(Some(
            sqlx::query_scalar(
                "INSERT INTO commitments (id, organization_id, plan_id, amount_cents, invoice_display_name)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (plan_id) DO UPDATE SET amount_cents = $4, invoice_display_name = $5, updated_at = now()
                 RETURNING id",
            )
            .bind(Uuid::new_v4())
            .bind(org)
            .bind(plan)
            .bind(c.amount_cents)
            .bind(&c.invoice_display_name)
            .fetch_one(conn)
            .await?,
        )),
    }
}

/// Inserts a charge (`id` None) or updates one of the plan's; its filters become exactly `a.filters`. A new charge's
/// `created_at` is the clock, not the transaction start, so a plan's charges list in the order they were sent.
pub async fn write_charge(
    conn: &mut PgConnection,
    org: Uuid,
    plan: Uuid,
    id: Option<Uuid>,
    a: &ChargeAttrs,
) -> Result<Uuid> {
    let q = match id {
        None => {
            "INSERT INTO charges (organization_id, plan_id, id, billable_metric_id, code, invoice_display_name,
                     charge_model, pay_in_advance, invoiceable, prorated, min_amount_cents, regroup_paid_fees,
                     properties, parent_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock_timestamp())
                 RETURNING id"
        }
        Some(_) => {
            "UPDATE charges SET billable_metric_id = $4, code = $5, invoice_display_name = $6,
                     charge_model = $7, pay_in_advance = $8, invoiceable = $9, prorated = $10,
                     min_amount_cents = $11, regroup_paid_fees = $12, properties = $13, parent_id = $14,
                     updated_at = now()
                 WHERE organization_id = $1 AND plan_id = $2 AND id = $3 AND deleted_at IS NULL RETURNING id"
        }
    };
    let id: Uuid = sqlx::query_scalar(q)
        .bind(org)
        .bind(plan)
        .bind(id.unwrap_or_else(Uuid::new_v4))
        .bind(a.billable_metric_id)
        .bind(&a.code)
        .bind(&a.invoice_display_name)
        .bind(&a.charge_model)
        .bind(a.pay_in_advance)
        .bind(a.invoiceable)
        .bind(a.prorated)
        .bind(a.min_amount_cents)
        .bind(&a.regroup_paid_fees)
        .bind(Json(&a.properties))
        .bind(a.parent_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound("charge"))?;
    // A filter sent with the same values as a live one is that filter (its id stays, as in Lago); the others are
    // new, and live filters not sent any more are soft-deleted.
    let live: Vec<(Uuid, Json<FilterValues>)> = sqlx::query_as(
        r#"SELECT id, "values" FROM charge_filters WHERE organization_id = $1 AND charge_id = $2
           AND deleted_at IS NULL"#,
    )
    .bind(org)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut kept: Vec<Uuid> = Vec::with_capacity(a.filters.len());
    for (position, f) in a.filters.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        let same = live.iter().find(|(fid, v)| v.0 == f.values && !kept.contains(fid)).map(|(fid, _)| *fid);
        let filter_id = same.unwrap_or_else(Uuid::new_v4);
        sqlx::query(
            r#"INSERT INTO charge_filters (id, organization_id, charge_id, invoice_display_name, properties, "values",
                   position)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (id) DO UPDATE SET invoice_display_name = $4, properties = $5, position = $7"#,
        )
        .bind(filter_id)
        .bind(org)
        .bind(id)
        .bind(&f.invoice_display_name)
        .bind(Json(&f.properties))
        .bind(Json(&f.values))
        .bind(position)
        .execute(&mut *conn)
        .await?;
        kept.push(filter_id);
    }
    sqlx::query(
        "UPDATE charge_filters SET deleted_at = now() WHERE organization_id = $1 AND charge_id = $2
         AND deleted_at IS NULL AND NOT (id = ANY($3))",
    )
    .bind(org)
    .bind(id)
    .bind(&kept)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Soft-deletes the plan's live charges other than `keep` (with their filters).
pub async fn delete_other_charges(conn: &mut PgConnection, org: Uuid, plan: Uuid, keep: &[Uuid]) -> Result<()> {
    sqlx::query(
        "UPDATE charge_filters SET deleted_at = now()
         WHERE organization_id = $1 AND deleted_at IS NULL AND charge_id IN
             (SELECT id FROM charges WHERE organization_id = $1 AND plan_id = $2 AND deleted_at IS NULL
              AND NOT (id = ANY($3)))",
    )
    .bind(org)
    .bind(plan)
    .bind(keep)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE charges SET deleted_at = now()
         WHERE organization_id = $1 AND plan_id = $2 AND deleted_at IS NULL AND NOT (id = ANY($3))",
    )
    .bind(org)
    .bind(plan)
    .bind(keep)
    .execute(conn)
    .await?;
    Ok(())
}

/// Soft-deletes the plan, its overriding children and all their charges, and ends the subscriptions on them (as
/// Lago's plan deletion does: active ones are terminated, pending ones canceled).
pub async fn delete(conn: &mut PgConnection, org: Uuid, plan: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE subscriptions SET
             status = CASE WHEN status = 'pending' THEN 'canceled' ELSE 'terminated' END,
             canceled_at = CASE WHEN status = 'pending' THEN now() END,
             terminated_at = CASE WHEN status = 'active' THEN now() END,
             updated_at = now()
         WHERE organization_id = $1 AND status IN ('pending', 'active')
         AND plan_id IN (SELECT id FROM plans WHERE organization_id = $1 AND (id = $2 OR parent_id = $2))",
    )
    .bind(org)
    .bind(plan)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE plans SET deleted_at = now() WHERE organization_id = $1 AND (id = $2 OR parent_id = $2)
         AND deleted_at IS NULL",
    )
    .bind(org)
    .bind(plan)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE charges SET deleted_at = now() WHERE organization_id = $1 AND deleted_at IS NULL
         AND plan_id IN (SELECT id FROM plans WHERE organization_id = $1 AND (id = $2 OR parent_id = $2))",
    )
    .bind(org)
    .bind(plan)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list(pool: &PgPool, org: Uuid, limit: i64, offset: i64) -> Result<(Vec<Plan>, i64)> {
    let mut conn = pool.acquire().await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM plans WHERE organization_id = $1 AND deleted_at IS NULL AND parent_id IS NULL",
    )
    .bind(org)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<PlanRow> = sqlx::query_as(sql(format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE organization_id = $1 AND deleted_at IS NULL AND parent_id IS NULL
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
    )))
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((load(&mut conn, org, rows).await?, total))
}

/// Whether a live charge of a live plan uses the metric.
pub async fn metric_attached_to_plan(pool: &PgPool, org: Uuid, metric: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM charges c JOIN plans p ON p.id = c.plan_id
                        WHERE c.organization_id = $1 AND c.billable_metric_id = $2 AND c.deleted_at IS NULL
                        AND p.deleted_at IS NULL)",
    )
    .bind(org)
    .bind(metric)
    .fetch_one(pool)
    .await?)
}
