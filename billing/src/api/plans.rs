//! `/api/v1/plans`: create, show by code, update (charges kept by id, replaced otherwise), delete, list.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use schemas::body::{JsonObject, take_root};
use schemas::objects::plan::{
    ChargeEnvelope, ChargeFilterObject, ChargeObject, ChargesPage, CommitmentObject, PlanEnvelope, PlanObject,
    PlansPage,
};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId, ValidationErrors};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::ApiState;
use crate::domain::charge::{self, ChargeAttrs};
use crate::domain::plan::{self as domain, PlanInput};
use crate::store::plans::{self as store, Plan};
use crate::store::taxes;
use crate::tracking::{PlanFacts, TrackEvent};
use crate::{Error, Result};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/plans", post(create).get(list))
        .route("/api/v1/plans/{code}", get(show).put(update).delete(destroy))
        .route("/api/v1/plans/{code}/charges", get(list_charges).post(create_charge))
        .route(
            "/api/v1/plans/{code}/metadata",
            axum::routing::post(replace_metadata).patch(merge_metadata).delete(delete_metadata),
        )
        .route("/api/v1/plans/{code}/metadata/{key}", axum::routing::delete(delete_metadata_key))
        .route("/api/v1/plans/{code}/charges/{charge_code}", get(show_charge).put(update_charge).delete(destroy_charge))
}

const ROOT: &str = "plan";

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<PlanEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let plan = save(&mut tx, org, None, None, &input).await?;
    tx.commit().await.map_err(Error::from)?;
    state.tracker.track(org, || TrackEvent::PlanCreated(facts(&plan)));
    Ok(Json(PlanEnvelope { plan: render(&plan) }))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<PlanEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let row = store::find_row(&mut tx, org, &code, true).await?.ok_or(ApiError::NotFound(ROOT))?;
    let current = store::load(&mut tx, org, vec![row]).await?.pop().ok_or(ApiError::NotFound(ROOT))?;
    let plan = save(&mut tx, org, Some(&current), None, &input).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(PlanEnvelope { plan: render(&plan) }))
}

/// Validates the request against the current plan (none: a new plan, a child of `parent` when given) and writes
/// the result; the caller owns the transaction, so any error leaves nothing behind.
pub(super) async fn save(
    conn: &mut PgConnection,
    org: Uuid,
    current: Option<&Plan>,
    parent: Option<Uuid>,
    input: &PlanInput,
) -> Result<Plan> {
    let locked = match current {
        Some(p) => store::attached_to_subscriptions(conn, org, p.row.id).await?,
        None => false,
    };
    let code_taken = match input.requested_code() {
        Some(code) if !locked && parent.is_none() => {
            store::code_taken(conn, org, code, current.map(|p| p.row.id)).await?
        }
        _ => false,
    };
    let existing = |id: Option<Uuid>| current.and_then(|p| p.charges.iter().find(|c| Some(c.id) == id));

    // Each charge's metric: the one sent, else (updating a charge) the stored one. A locked charge keeps its metric.
    let mut metric_ids = Vec::new();
    if let Some(charges) = &input.charges {
        for c in charges {
            let stored = existing(c.id).map(|s| s.attrs.billable_metric_id);
            let id = match (stored, locked) {
                (Some(id), true) => id,
                _ => c.billable_metric_id.or(stored).ok_or(Error::NotFound("billable_metric"))?,
            };
            metric_ids.push(id);
        }
    }
    let metrics = store::metric_infos(conn, org, &metric_ids).await?;
    if metric_ids.iter().any(|id| !metrics.contains_key(id)) {
        return Err(Error::NotFound("billable_metrics"));
    }

    let mut errors = ValidationErrors::new();
    let attrs = domain::apply(current.map(|p| p.row.attrs()).as_ref(), input, locked, code_taken, &mut errors);
    let commitment = domain::apply_commitment(
        current.and_then(|p| p.commitment.as_ref().map(|c| &c.attrs)),
        &input.minimum_commitment,
        &mut errors,
    );
    let mut charges: Option<Vec<(Option<Uuid>, ChargeAttrs)>> = None;
    if let Some(list) = &input.charges {
        let mut built = Vec::with_capacity(list.len());
        let mut explicit = Vec::with_capacity(list.len());
        for (c, metric_id) in list.iter().zip(&metric_ids) {
            let stored = existing(c.id);
            let metric = metrics.get(metric_id).ok_or(Error::NotFound("billable_metrics"))?;
            let attrs = charge::build(c, stored.map(|s| &s.attrs), metric, locked && stored.is_some(), &mut errors);
            explicit.push(c.code.is_some() || stored.is_some());
            built.push((stored.map(|s| s.id), attrs));
        }
        let mut attrs_only: Vec<ChargeAttrs> = built.iter().map(|(_, a)| a.clone()).collect();
        charge::assign_codes(&mut attrs_only, &explicit, &mut errors);
        for ((_, a), with_code) in built.iter_mut().zip(attrs_only) {
            a.code = with_code.code;
        }
        charges = Some(built);
    }
    errors.into_result()?;

    let (plan_id, insert) = match current {
        Some(p) => (p.row.id, false),
        None => (Uuid::new_v4(), true),
    };
    let row = store::write_plan(conn, org, plan_id, parent, &attrs, insert).await?;
    if let Some(codes) = &input.tax_codes {
        let found = taxes::resolve_codes(conn, org, codes).await?;
        taxes::set_applied(conn, org, store::OWNER_PLAN, row.id, &found).await?;
    }
    let commitment_id = store::write_commitment(conn, org, row.id, commitment.as_ref()).await?;
    if let (Some(id), schemas::input::Field::Value(c)) = (commitment_id, &input.minimum_commitment)
        && let Some(codes) = &c.tax_codes
    {
        let found = taxes::resolve_codes(conn, org, codes).await?;
        taxes::set_applied(conn, org, store::OWNER_COMMITMENT, id, &found).await?;
    }
    if let (Some(list), Some(inputs)) = (&charges, &input.charges) {
        let mut kept = Vec::with_capacity(list.len());
        for ((id, attrs), c) in list.iter().zip(inputs) {
            let id = store::write_charge(conn, org, row.id, *id, attrs).await?;
            if let Some(codes) = &c.tax_codes {
                let found = taxes::resolve_codes(conn, org, codes).await?;
                taxes::set_applied(conn, org, store::OWNER_CHARGE, id, &found).await?;
            }
            kept.push(id);
        }
        store::delete_other_charges(conn, org, row.id, &kept).await?;
    }
    store::load(conn, org, vec![row]).await?.pop().ok_or(Error::NotFound("plan"))
}

/// What usage tracking reports of a plan: its shape, not its prices.
fn facts(plan: &Plan) -> PlanFacts {
    use rust_decimal::prelude::ToPrimitive;
    PlanFacts {
        code: plan.row.code.clone(),
        name: plan.row.name.clone(),
        interval: plan.row.interval.clone(),
        pay_in_advance: plan.row.pay_in_advance,
        trial_period: plan.row.trial_period.and_then(|t| t.to_f64()),
        charge_models: plan.charges.iter().map(|c| c.attrs.charge_model.clone()).collect(),
    }
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<PlanEnvelope>, ApiError> {
    let plan = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(PlanEnvelope { plan: render(&plan) }))
}

async fn destroy(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<PlanEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let row = store::find_row(&mut tx, org, &code, true).await?.ok_or(ApiError::NotFound(ROOT))?;
    let plan = store::load(&mut tx, org, vec![row]).await?.pop().ok_or(ApiError::NotFound(ROOT))?;
    store::delete(&mut tx, org, plan.row.id).await?;
    tx.commit().await.map_err(Error::from)?;
    state.tracker.track(org, || TrackEvent::PlanDeleted(facts(&plan)));
    // Lago answers before its deletion job runs, so the plan it returns is marked pending deletion.
    Ok(Json(PlanEnvelope { plan: PlanObject { pending_deletion: true, ..render(&plan) } }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Query(query): Query<PageQuery>,
) -> Result<Json<PlansPage>, ApiError> {
    let page = query.page();
    let (plans, total) = store::list(&state.pool, org, page.limit(), page.offset()).await?;
    Ok(Json(PlansPage { plans: plans.iter().map(render).collect(), meta: page.meta(total) }))
}

pub(super) fn render(p: &Plan) -> PlanObject {
    let r = &p.row;
    PlanObject {
        lago_id: r.id,
        name: r.name.clone(),
        invoice_display_name: r.invoice_display_name.clone(),
        created_at: timestamp(r.created_at),
        code: r.code.clone(),
        interval: r.interval.clone(),
        description: r.description.clone(),
        amount_cents: r.amount_cents,
        amount_currency: r.amount_currency.clone(),
        trial_period: r.trial_period.map(|t| t.normalize()),
        pay_in_advance: r.pay_in_advance,
        bill_charges_monthly: r.bill_charges_monthly,
        bill_fixed_charges_monthly: r.bill_charges_monthly.map(|_| false),
        customers_count: 0,
        active_subscriptions_count: 0,
        draft_invoices_count: 0,
        parent_id: r.parent_id,
        pending_deletion: false,
        charges: p.charges.iter().map(render_charge).collect(),
        fixed_charges: Vec::new(),
        usage_thresholds: Vec::new(),
        taxes: p.taxes.iter().map(super::taxes::render).collect(),
        minimum_commitment: p.commitment.as_ref().map(|c| CommitmentObject {
            lago_id: c.id,
            plan_code: r.code.clone(),
            invoice_display_name: c.attrs.invoice_display_name.clone(),
            amount_cents: c.attrs.amount_cents,
            interval: r.interval.clone(),
            created_at: timestamp(c.created_at),
            updated_at: timestamp(c.updated_at),
            taxes: c.taxes.iter().map(super::taxes::render).collect(),
        }),
        metadata: r.metadata.as_ref().map(|m| m.0.clone()),
    }
}

/// A plan as a create/update request body, the starting point of a customer-specific copy.
fn as_request(p: &Plan, keep_charge_ids: bool) -> serde_json::Map<String, Value> {
    let r = &p.row;
    let codes = |taxes: &[taxes::Tax]| Value::from(taxes.iter().map(|t| t.code.clone()).collect::<Vec<_>>());
    let charges: Vec<Value> = p
        .charges
        .iter()
        .map(|c| {
            let a = &c.attrs;
            let mut m = serde_json::json!({
                "billable_metric_id": a.billable_metric_id, "code": a.code,
                "invoice_display_name": a.invoice_display_name, "charge_model": a.charge_model,
                "pay_in_advance": a.pay_in_advance, "invoiceable": a.invoiceable, "prorated": a.prorated,
                "min_amount_cents": a.min_amount_cents, "regroup_paid_fees": a.regroup_paid_fees,
                "properties": a.properties, "tax_codes": codes(&c.taxes),
                "filters": a.filters.iter().map(|f| serde_json::json!({
                    "invoice_display_name": f.invoice_display_name, "properties": f.properties, "values": f.values,
                })).collect::<Vec<_>>(),
            });
            if keep_charge_ids {
                m["id"] = Value::from(c.id.to_string());
            }
            m
        })
        .collect();
    let value = serde_json::json!({
        "name": r.name, "invoice_display_name": r.invoice_display_name, "code": r.code, "interval": r.interval,
        "description": r.description, "amount_cents": r.amount_cents, "amount_currency": r.amount_currency,
        "trial_period": r.trial_period.map(|t| t.to_string()), "pay_in_advance": r.pay_in_advance,
        "bill_charges_monthly": r.bill_charges_monthly, "tax_codes": codes(&p.taxes), "charges": charges,
        "metadata": r.metadata.as_ref().map(|m| m.0.clone()),
        "minimum_commitment": p.commitment.as_ref().map(|c| serde_json::json!({
            "amount_cents": c.attrs.amount_cents, "invoice_display_name": c.attrs.invoice_display_name,
            "tax_codes": codes(&c.taxes),
        })),
    });
    match value {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Lago's `plan_overrides`: the subscription gets its own copy of `parent` (a child plan with the parent's code)
/// with the given fields changed; overriding again updates that copy (`child`). Charges are overridden by the id of
/// the parent's charge.
pub(super) async fn override_plan(
    conn: &mut PgConnection,
    org: Uuid,
    parent: &Plan,
    child: Option<&Plan>,
    overrides: &serde_json::Map<String, Value>,
) -> Result<Plan> {
    const PLAN_FIELDS: [&str; 8] = [
        "amount_cents",
        "amount_currency",
        "description",
        "name",
        "invoice_display_name",
        "trial_period",
        "tax_codes",
        "minimum_commitment",
    ];
    const CHARGE_FIELDS: [&str; 5] = ["invoice_display_name", "min_amount_cents", "properties", "filters", "tax_codes"];
    let base = child.unwrap_or(parent);
    let mut request = as_request(base, child.is_some());
    for field in PLAN_FIELDS {
        if let Some(v) = overrides.get(field) {
            request.insert(field.to_owned(), v.clone());
        }
    }
    // Which charge of `base` each parent charge is.
    let base_index = |parent_charge: Uuid| {
        base.charges.iter().position(|c| {
            if child.is_some() { c.attrs.parent_id == Some(parent_charge) } else { c.id == parent_charge }
        })
    };
    if let Some(Value::Array(list)) = overrides.get("charges") {
        for o in list {
            let id = o.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
            let index = id.and_then(base_index).ok_or(Error::NotFound("charge"))?;
            if let Some(Value::Object(target)) = request.get_mut("charges").and_then(|c| c.get_mut(index)) {
                for field in CHARGE_FIELDS {
                    if let Some(v) = o.get(field) {
                        target.insert(field.to_owned(), v.clone());
                    }
                }
            }
        }
    }
    let mut input = domain::parse_input(&request)?;
    if child.is_none()
        && let Some(charges) = input.charges.as_mut()
    {
        for (c, parent_charge) in charges.iter_mut().zip(&parent.charges) {
            c.parent_id = Some(parent_charge.id);
        }
    }
    save(conn, org, child, Some(parent.row.id), &input).await
}

pub(super) fn render_charge(c: &store::Charge) -> ChargeObject {
    ChargeObject {
        lago_id: c.id,
        lago_billable_metric_id: c.attrs.billable_metric_id,
        code: c.attrs.code.clone(),
        invoice_display_name: c.attrs.invoice_display_name.clone(),
        billable_metric_code: c.billable_metric_code.clone(),
        created_at: timestamp(c.created_at),
        charge_model: c.attrs.charge_model.clone(),
        invoiceable: c.attrs.invoiceable,
        regroup_paid_fees: c.attrs.regroup_paid_fees.clone(),
        pay_in_advance: c.attrs.pay_in_advance,
        prorated: c.attrs.prorated,
        min_amount_cents: c.attrs.min_amount_cents,
        accepts_target_wallet: false,
        properties: charge::render_properties(&c.attrs.properties),
        applied_pricing_unit: None,
        lago_parent_id: c.attrs.parent_id,
        filters: c
            .filters
            .iter()
            .map(|f| ChargeFilterObject {
                lago_id: f.id,
                charge_code: c.attrs.code.clone(),
                invoice_display_name: f.attrs.invoice_display_name.clone(),
                properties: charge::render_properties(&f.attrs.properties),
                values: f.attrs.values.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect(),
            })
            .collect(),
        taxes: c.taxes.iter().map(super::taxes::render).collect(),
    }
}

// `/plans/{code}/charges`: one charge of a plan at a time. Each change is made as a plan update carrying the plan's
// other charges unchanged, so every plan and charge rule (and the lock of a plan in use) applies the same way.

/// The plan `code`, locked, with its charges.
async fn locked_plan(conn: &mut PgConnection, org: Uuid, code: &str) -> Result<Plan> {
    let row = store::find_row(conn, org, code, true).await?.ok_or(Error::NotFound("plan"))?;
    store::load(conn, org, vec![row]).await?.pop().ok_or(Error::NotFound("plan"))
}

fn charge_by_code<'a>(plan: &'a Plan, code: &str) -> Result<&'a store::Charge> {
    plan.charges.iter().find(|c| c.attrs.code == code).ok_or(Error::NotFound("charge"))
}

/// Saves `plan` with its charges replaced by `charges` (request objects).
async fn save_charges(conn: &mut PgConnection, org: Uuid, plan: &Plan, charges: Vec<Value>) -> Result<Plan> {
    let mut request = as_request(plan, true);
    request.insert("charges".into(), Value::Array(charges));
    let input = domain::parse_input(&request)?;
    save(conn, org, Some(plan), None, &input).await
}

fn current_charges(plan: &Plan) -> Vec<Value> {
    match as_request(plan, true).remove("charges") {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    }
}

async fn list_charges(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<ChargesPage>, ApiError> {
    let plan = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    let page = query.page();
    // Newest first, as Lago lists them.
    let mut charges: Vec<&store::Charge> = plan.charges.iter().collect();
    charges.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let total = i64::try_from(charges.len()).unwrap_or(i64::MAX);
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit()).unwrap_or(usize::MAX);
    let charges = charges.into_iter().skip(offset).take(limit).map(render_charge).collect();
    Ok(Json(ChargesPage { charges, meta: page.meta(total) }))
}

async fn show_charge(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((code, charge_code)): Path<(String, String)>,
) -> Result<Json<ChargeEnvelope>, ApiError> {
    let plan = store::find(&state.pool, org, &code).await?.ok_or(ApiError::NotFound(ROOT))?;
    Ok(Json(ChargeEnvelope { charge: render_charge(charge_by_code(&plan, &charge_code)?) }))
}

async fn create_charge(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<ChargeEnvelope>, ApiError> {
    let mut new = take_root(body, "charge")?;
    new.remove("id");
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let plan = locked_plan(&mut tx, org, &code).await?;
    let before: Vec<Uuid> = plan.charges.iter().map(|c| c.id).collect();
    let mut charges = current_charges(&plan);
    charges.push(Value::Object(new));
    let saved = save_charges(&mut tx, org, &plan, charges).await?;
    let created = saved.charges.iter().find(|c| !before.contains(&c.id)).ok_or(Error::NotFound("charge"))?;
    let object = render_charge(created);
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(ChargeEnvelope { charge: object }))
}

async fn update_charge(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((code, charge_code)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Json<ChargeEnvelope>, ApiError> {
    let sent = take_root(body, "charge")?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let plan = locked_plan(&mut tx, org, &code).await?;
    let id = charge_by_code(&plan, &charge_code)?.id;
    let id_text = Value::from(id.to_string());
    let mut charges = current_charges(&plan);
    for c in charges.iter_mut().filter(|c| c.get("id") == Some(&id_text)) {
        if let Value::Object(entry) = c {
            // As Lago's charge update: the metric stays; properties not sent fall back to the model's defaults.
            entry.remove("properties");
            for (k, v) in &sent {
                if k != "id" && k != "billable_metric_id" {
                    entry.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let saved = save_charges(&mut tx, org, &plan, charges).await?;
    let updated = saved.charges.iter().find(|c| c.id == id).ok_or(Error::NotFound("charge"))?;
    let object = render_charge(updated);
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(ChargeEnvelope { charge: object }))
}

async fn destroy_charge(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((code, charge_code)): Path<(String, String)>,
) -> Result<Json<ChargeEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let plan = locked_plan(&mut tx, org, &code).await?;
    let removed = charge_by_code(&plan, &charge_code)?;
    let object = render_charge(removed);
    let id_text = Value::from(removed.id.to_string());
    let charges = current_charges(&plan).into_iter().filter(|c| c.get("id") != Some(&id_text)).collect();
    save_charges(&mut tx, org, &plan, charges).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(ChargeEnvelope { charge: object }))
}

// `/plans/{code}/metadata`: Lago's metadata endpoints, each a plan update of the metadata alone.

#[derive(Debug, serde::Serialize)]
struct MetadataEnvelope {
    metadata: Option<serde_json::Map<String, Value>>,
}

/// Sets the plan's metadata to `next` (None removes them) and returns what is stored.
async fn set_metadata(
    state: &ApiState,
    org: Uuid,
    code: &str,
    next: impl FnOnce(Option<serde_json::Map<String, Value>>) -> Result<Option<serde_json::Map<String, Value>>>,
) -> Result<Json<MetadataEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let plan = locked_plan(&mut tx, org, code).await?;
    let current = plan.row.metadata.as_ref().map(|m| m.0.clone());
    let mut request = serde_json::Map::new();
    request.insert("metadata".into(), next(current)?.map(Value::Object).unwrap_or(Value::Null));
    let input = domain::parse_input(&request)?;
    let saved = save(&mut tx, org, Some(&plan), None, &input).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(MetadataEnvelope { metadata: saved.row.metadata.map(|m| m.0) }))
}

/// The `metadata` object of a metadata request body (null is none).
fn metadata_body(mut body: serde_json::Map<String, Value>) -> Result<Option<serde_json::Map<String, Value>>> {
    match body.remove("metadata") {
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(Value::Null) => Ok(None),
        _ => Err(Error::Validation(schemas::error::field_error("metadata", "value_is_invalid"))),
    }
}

async fn replace_metadata(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<MetadataEnvelope>, ApiError> {
    let sent = metadata_body(body)?;
    set_metadata(&state, org, &code, |_| Ok(sent)).await
}

async fn merge_metadata(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<MetadataEnvelope>, ApiError> {
    let sent = metadata_body(body)?.unwrap_or_default();
    set_metadata(&state, org, &code, |current| {
        let mut merged = current.unwrap_or_default();
        merged.extend(sent);
        Ok(Some(merged))
    })
    .await
}

async fn delete_metadata(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(code): Path<String>,
) -> Result<Json<MetadataEnvelope>, ApiError> {
    set_metadata(&state, org, &code, |_| Ok(None)).await
}

async fn delete_metadata_key(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((code, key)): Path<(String, String)>,
) -> Result<Json<MetadataEnvelope>, ApiError> {
    set_metadata(&state, org, &code, |current| {
        // As Lago: a plan without metadata has no key to delete.
        let mut m = current.ok_or(Error::NotFound("metadata"))?;
        m.remove(&key);
        Ok(Some(m))
    })
    .await
}
