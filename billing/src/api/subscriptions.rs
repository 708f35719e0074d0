//! `/api/v1/subscriptions`: create (new, upgrade, downgrade, with `plan_overrides`), update, show, list with Lago's
//! filters, terminate (DELETE; `status=pending` cancels a pending one).

use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{Duration, Utc};
use schemas::body::{JsonObject, take_root};
use schemas::input::Field;
use schemas::objects::plan::{ChargeEnvelope, ChargesPage};
use schemas::objects::subscription::{SubscriptionEnvelope, SubscriptionObject, SubscriptionsPage};
use schemas::objects::timestamp;
use schemas::pagination::PageQuery;
use schemas::{ApiError, OrgId, ValidationErrors};
use sqlx::PgConnection;
use uuid::Uuid;

use super::ApiState;
use crate::domain::customer::timezone;
use crate::domain::subscription::{self as domain, PlanChange};
use crate::store::customers;
use crate::store::plans::{self, Plan};
use crate::store::subscriptions::{self as store, ListFilter, NewRow, Subscription};
use crate::tracking::TrackEvent;
use crate::{Error, Result};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/subscriptions", post(create).get(list))
        .route("/api/v1/subscriptions/{external_id}", get(show).put(update).delete(terminate))
        .route("/api/v1/customers/{external_id}/subscriptions", get(list_for_customer))
        .route("/api/v1/subscriptions/{external_id}/charges", get(list_charges))
        .route("/api/v1/subscriptions/{external_id}/charges/{charge_code}", get(show_charge).put(override_charge))
}

const ROOT: &str = "subscription";

/// The query string as (key, value) pairs; `status[]` may repeat.
fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn query_value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn tz_of(name: &str) -> chrono_tz::Tz {
    timezone(name).unwrap_or(chrono_tz::UTC)
}

async fn create(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    JsonObject(body): JsonObject,
) -> Result<Json<SubscriptionEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let now = Utc::now();
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    // As Lago: an unknown plan is a 404 before the other checks.
    let plan_row = match &input.plan_code {
        Some(code) => plans::find_row(&mut tx, org, code, false).await?,
        None => None,
    };
    let plan_row = plan_row.ok_or(ApiError::NotFound("plan"))?;
    let new = domain::validate_new(&input, now)?;
    let external_customer_id = input.external_customer_id.clone().unwrap_or_default();
    // Lago creates the customer when the API names an unknown one.
    let mut customer_created = false;
    let customer = match customers::find_in(&mut tx, org, &external_customer_id, false).await? {
        Some(c) => c,
        None => {
            customer_created = true;
            customers::upsert_in(&mut tx, org, &external_customer_id, None, |_| {
                let input = crate::domain::customer::CustomerInput {
                    external_id: Field::Value(external_customer_id.clone()),
                    ..Default::default()
                };
                Ok(crate::domain::customer::upsert(None, input)?)
            })
            .await?
        }
    };
    let parent = plans::load(&mut tx, org, vec![plan_row]).await?.pop().ok_or(ApiError::NotFound("plan"))?;
    let plan = match &input.plan_overrides {
        Some(overrides) => super::plans::override_plan(&mut tx, org, &parent, None, overrides).await?,
        None => parent.clone(),
    };
    customers::set_currency_if_blank(&mut tx, org, customer.id, &plan.row.amount_currency).await?;
    let tz = tz_of(&customer.applicable_timezone);

    let current = match store::find(&mut tx, org, &new.external_id, "active", true).await? {
        Some(s) => Some(s),
        None => store::find(&mut tx, org, &new.external_id, "pending", true).await?,
    };
    if let Some(cur) = &current
        && cur.customer_id != customer.id
    {
        return Err(schemas::error::field_error("external_id", "value_already_exist").into());
    }
    // Lago's `subscription_type` of usage tracking; a pending subscription taking another plan is no new one.
    let mut kind = None;
    let id = match current {
        None => {
            kind = Some("create");
            let status = domain::initial_status(new.subscription_at, now, tz);
            store::insert(
                &mut tx,
                org,
                &NewRow {
                    customer_id: customer.id,
                    plan_id: plan.row.id,
                    external_id: &new.external_id,
                    name: new.name.as_deref(),
                    status,
                    billing_time: &new.billing_time,
                    subscription_at: new.subscription_at,
                    started_at: (status == "active").then_some(new.subscription_at),
                    ending_at: new.ending_at,
                    previous_subscription_id: None,
                    activates_at: None,
                },
            )
            .await?
        }
        Some(cur) if cur.status == "pending" => {
            // Not started yet: it simply takes the new plan.
            store::update(&mut tx, org, cur.id, cur.name.as_deref(), cur.subscription_at, cur.ending_at, plan.row.id)
                .await?;
            cur.id
        }
        Some(cur) => {
            let change = domain::plan_change(
                cur.plan_id == plan.row.id,
                domain::yearly_amount_cents(&cur.plan_interval, cur.plan_amount_cents),
                domain::yearly_amount_cents(&plan.row.interval, plan.row.amount_cents),
            );
            kind = match change {
                PlanChange::Same => None,
                PlanChange::Upgrade => Some("upgrade"),
                PlanChange::Downgrade => Some("downgrade"),
            };
            change_plan(&mut tx, org, &cur, &plan, change, new.name.as_deref(), now, tz).await?
        }
    };
    let sub = store::get(&mut tx, org, id).await?;
    let object = render(&mut tx, org, &sub, true).await?;
    tx.commit().await.map_err(Error::from)?;
    if customer_created {
        state
            .tracker
            .track(org, || TrackEvent::CustomerCreated { customer_id: customer.id, created_at: customer.created_at });
    }
    if let Some(kind) = kind {
        state.tracker.track(org, || TrackEvent::SubscriptionCreated {
            customer_id: customer.id,
            plan_code: plan.row.code.clone(),
            plan_name: plan.row.name.clone(),
            subscription_type: kind.to_owned(),
            billing_time: sub.billing_time.clone(),
            created_at: sub.created_at,
        });
    }
    // Lago bills at once what the change calls for: an upgraded subscription's last period, and the first period
    // of a plan paid in advance.
    let changed: Vec<uuid::Uuid> = sub.previous_subscription_id.into_iter().chain(std::iter::once(sub.id)).collect();
    crate::invoicer::bill_changes(&state.pool, state.events.as_ref(), &state.tracker, org, &changed, state.clock.now())
        .await;
    Ok(Json(SubscriptionEnvelope { subscription: object }))
}

/// An active subscription asked onto another plan: an upgrade replaces it now, a downgrade waits (pending) until
/// the current billing period ends. Returns the subscription to render.
#[allow(clippy::too_many_arguments)]
async fn change_plan(
    conn: &mut PgConnection,
    org: Uuid,
    cur: &Subscription,
    plan: &Plan,
    change: PlanChange,
    name: Option<&str>,
    now: chrono::DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Uuid> {
    let row = |status, started_at, activates_at| NewRow {
        customer_id: cur.customer_id,
        plan_id: plan.row.id,
        external_id: &cur.external_id,
        name: name.or(cur.name.as_deref()),
        status,
        billing_time: &cur.billing_time,
        subscription_at: cur.subscription_at,
        started_at,
        ending_at: cur.ending_at,
        previous_subscription_id: Some(cur.id),
        activates_at,
    };
    match change {
        PlanChange::Same => Ok(cur.id),
        PlanChange::Upgrade => {
            store::terminate(conn, org, cur.id).await?;
            store::insert(conn, org, &row("active", Some(now), None)).await
        }
        PlanChange::Downgrade => {
            // A later downgrade replaces an earlier one.
            sqlx::query(
                "UPDATE subscriptions SET status = 'canceled', canceled_at = now(), updated_at = now()
                 WHERE organization_id = $1 AND previous_subscription_id = $2 AND status = 'pending'",
            )
            .bind(org)
            .bind(cur.id)
            .execute(&mut *conn)
            .await?;
            let started = cur.started_at.unwrap_or(cur.subscription_at);
            let (_, end) = domain::current_period(
                &cur.plan_interval,
                false,
                &cur.billing_time,
                started,
                cur.subscription_at,
                now,
                tz,
            );
            // The next period starts right after the last instant of this one.
            let boundary = end + Duration::microseconds(1);
            store::insert(conn, org, &row("pending", None, Some(boundary))).await
        }
    }
}

/// Lago's lookup: `status` when given, else the active one, else (only one exists) whatever it is.
async fn find_for(conn: &mut PgConnection, org: Uuid, external_id: &str, status: Option<&str>) -> Result<Subscription> {
    let found = match status {
        Some(s) => store::find(conn, org, external_id, s, true).await?,
        None => match store::find(conn, org, external_id, "active", true).await? {
            Some(s) => Some(s),
            None => store::find(conn, org, external_id, "pending", true).await?,
        },
    };
    found.ok_or(Error::NotFound("subscription"))
}

async fn update(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonObject(body): JsonObject,
) -> Result<Json<SubscriptionEnvelope>, ApiError> {
    let input = domain::parse_input(&take_root(body, ROOT)?)?;
    let status = query_value(&query_pairs(&raw), "status");
    let now = Utc::now();
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let sub = find_for(&mut tx, org, &external_id, status.as_deref()).await?;
    let mut errors = ValidationErrors::new();
    // Only a subscription that has not started can move its start.
    let subscription_at = match (&input.subscription_at, sub.status.as_str()) {
        (Some(s), "pending") if sub.activates_at.is_none() => match domain::parse_datetime(s) {
            Some(t) => t,
            None => {
                errors.add("subscription_at", "invalid_date");
                sub.subscription_at
            }
        },
        _ => sub.subscription_at,
    };
    let ending_at =
        domain::check_ending_at(&input.ending_at, Some(subscription_at), now, &mut errors).unwrap_or(sub.ending_at);
    let termination = domain::termination_options(
        input.on_termination_credit_note.as_deref(),
        input.on_termination_invoice.as_deref(),
    );
    if let Err(e) = &termination {
        errors.merge(e.clone());
    }
    errors.into_result()?;
    let (credit_note, invoice) = termination.unwrap_or_default();
    store::set_termination_options(&mut tx, org, sub.id, credit_note.as_deref(), invoice.as_deref()).await?;
    let name = input.name.clone().or_keep(sub.name.clone());
    let mut plan_id = sub.plan_id;
    if let Some(overrides) = &input.plan_overrides {
        let current = plans::find_row_by_id(&mut tx, org, sub.plan_id).await?.ok_or(Error::NotFound("plan"))?;
        let (parent_id, child) = match current.parent_id {
            Some(parent) => (parent, Some(current)),
            None => (current.id, None),
        };
        let parent_row = plans::find_row_by_id(&mut tx, org, parent_id).await?.ok_or(Error::NotFound("plan"))?;
        let parent = plans::load(&mut tx, org, vec![parent_row]).await?.pop().ok_or(Error::NotFound("plan"))?;
        let child = match child {
            Some(c) => plans::load(&mut tx, org, vec![c]).await?.pop(),
            None => None,
        };
        plan_id = super::plans::override_plan(&mut tx, org, &parent, child.as_ref(), overrides).await?.row.id;
    }
    store::update(&mut tx, org, sub.id, name.as_deref(), subscription_at, ending_at, plan_id).await?;
    store::refresh(&mut tx, org).await?;
    let sub = store::get(&mut tx, org, sub.id).await?;
    let object = render(&mut tx, org, &sub, true).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(SubscriptionEnvelope { subscription: object }))
}

async fn show(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SubscriptionEnvelope>, ApiError> {
    let status = query_value(&query_pairs(&raw), "status").unwrap_or_else(|| "active".into());
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let sub = store::find(&mut tx, org, &external_id, &status, false).await?.ok_or(ApiError::NotFound(ROOT))?;
    let object = render(&mut tx, org, &sub, true).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(SubscriptionEnvelope { subscription: object }))
}

async fn terminate(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SubscriptionEnvelope>, ApiError> {
    let pairs = query_pairs(&raw);
    let pending = query_value(&pairs, "status").as_deref() == Some("pending");
    let (credit_note, invoice) = domain::termination_options(
        query_value(&pairs, "on_termination_credit_note").as_deref(),
        query_value(&pairs, "on_termination_invoice").as_deref(),
    )?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let status = if pending { "pending" } else { "active" };
    let sub = store::find(&mut tx, org, &external_id, status, true).await?.ok_or(ApiError::NotFound(ROOT))?;
    store::set_termination_options(&mut tx, org, sub.id, credit_note.as_deref(), invoice.as_deref()).await?;
    if pending {
        store::cancel(&mut tx, org, sub.id).await?;
    } else {
        store::terminate(&mut tx, org, sub.id).await?;
    }
    let sub = store::get(&mut tx, org, sub.id).await?;
    let object = render(&mut tx, org, &sub, false).await?;
    tx.commit().await.map_err(Error::from)?;
    if !pending {
        // Lago bills the last period at once. The termination is committed first; if this invoice fails, the
        // billing clock issues it on its next tick (it looks for terminated subscriptions without one).
        crate::invoicer::bill_changes(
            &state.pool,
            state.events.as_ref(),
            &state.tracker,
            org,
            &[sub.id],
            state.clock.now(),
        )
        .await;
    }
    Ok(Json(SubscriptionEnvelope { subscription: object }))
}

async fn list(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SubscriptionsPage>, ApiError> {
    list_with(&state, org, &raw, None).await
}

/// `GET /customers/{external_id}/subscriptions`: the same list for one (existing) customer.
async fn list_for_customer(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SubscriptionsPage>, ApiError> {
    customers::find(&state.pool, org, &external_id).await?.ok_or(ApiError::NotFound("customer"))?;
    list_with(&state, org, &raw, Some(external_id)).await
}

async fn list_with(
    state: &ApiState,
    org: Uuid,
    raw: &Option<String>,
    external_customer_id: Option<String>,
) -> Result<Json<SubscriptionsPage>, ApiError> {
    let pairs = query_pairs(raw);
    let page = PageQuery { page: query_value(&pairs, "page"), per_page: query_value(&pairs, "per_page") }.page();
    let mut statuses: Vec<String> =
        pairs.iter().filter(|(k, _)| k == "status[]" || k == "status").map(|(_, v)| v.clone()).collect();
    if statuses.is_empty() {
        statuses.push("active".into());
    }
    let filter = ListFilter {
        external_customer_id: external_customer_id
            .or_else(|| query_value(&pairs, "external_customer_id"))
            .filter(|s| !s.is_empty()),
        plan_code: query_value(&pairs, "plan_code").filter(|s| !s.is_empty()),
        statuses,
        currency: query_value(&pairs, "currency").filter(|s| !s.is_empty()).map(|c| c.to_uppercase()),
    };
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    store::refresh(&mut tx, org).await?;
    let (subs, total) = store::list(&mut tx, org, &filter, page.limit(), page.offset()).await?;
    let mut objects = Vec::with_capacity(subs.len());
    for s in &subs {
        objects.push(render(&mut tx, org, s, false).await?);
    }
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(SubscriptionsPage { subscriptions: objects, meta: page.meta(total) }))
}

pub(super) async fn render(
    conn: &mut PgConnection,
    org: Uuid,
    s: &Subscription,
    with_plan: bool,
) -> Result<SubscriptionObject> {
    let plan = if with_plan {
        match plans::find_row_by_id(conn, org, s.plan_id).await? {
            Some(row) => plans::load(conn, org, vec![row]).await?.pop().map(|p| super::plans::render(&p)),
            None => None,
        }
    } else {
        None
    };
    let period = match (s.status.as_str(), s.started_at) {
        ("active", Some(started)) => Some(domain::current_period(
            &s.plan_interval,
            s.plan_bill_charges_monthly == Some(true),
            &s.billing_time,
            started,
            s.subscription_at,
            Utc::now(),
            tz_of(&s.timezone),
        )),
        _ => None,
    };
    let ts = |t: Option<chrono::DateTime<Utc>>| t.map(timestamp);
    Ok(SubscriptionObject {
        lago_id: s.id,
        external_id: s.external_id.clone(),
        lago_customer_id: s.customer_id,
        external_customer_id: s.external_customer_id.clone(),
        name: s.name.clone(),
        plan_code: s.plan_code.clone(),
        plan_amount_cents: s.plan_amount_cents,
        plan_amount_currency: s.plan_amount_currency.clone(),
        status: s.status.clone(),
        billing_time: s.billing_time.clone(),
        subscription_at: timestamp(s.subscription_at),
        started_at: ts(s.started_at),
        trial_ended_at: ts(domain::trial_ended_at(s.started_at, s.plan_trial_period, Utc::now())),
        ending_at: ts(s.ending_at),
        terminated_at: ts(s.terminated_at),
        canceled_at: ts(s.canceled_at),
        created_at: timestamp(s.created_at),
        previous_plan_code: s.previous_plan_code.clone(),
        next_plan_code: s.next_plan_code.clone(),
        downgrade_plan_date: s.next_activates_at.map(|t| t.with_timezone(&tz_of(&s.timezone)).date_naive().to_string()),
        current_billing_period_started_at: period.map(|p| timestamp(p.0)),
        current_billing_period_ending_at: period.map(|p| timestamp(p.1)),
        on_termination_credit_note: s.on_termination_credit_note.clone().unwrap_or_else(|| "credit".into()),
        on_termination_invoice: s.on_termination_invoice.clone(),
        progressive_billing_disabled: false,
        consolidate_invoice: true,
        purchase_order_number: None,
        cancellation_reason: None,
        activated_at: ts(s.started_at),
        plan,
        activation_rules: Vec::new(),
    })
}

// `/subscriptions/{external_id}/charges`: the charges of the plan a subscription is on, and Lago's per-subscription
// charge override (which gives the subscription its own copy of the plan, as `plan_overrides` does).

/// The subscription in `subscription_status` (or `status`, else active), and its plan with charges.
async fn subscription_and_plan(
    conn: &mut PgConnection,
    org: Uuid,
    external_id: &str,
    raw: &Option<String>,
) -> Result<(Subscription, Plan)> {
    let pairs = query_pairs(raw);
    let status = query_value(&pairs, "subscription_status")
        .or_else(|| query_value(&pairs, "status"))
        .unwrap_or_else(|| "active".into());
    store::refresh(conn, org).await?;
    let sub = store::find(conn, org, external_id, &status, true).await?.ok_or(Error::NotFound("subscription"))?;
    let row = plans::find_row_by_id(conn, org, sub.plan_id).await?.ok_or(Error::NotFound("plan"))?;
    let plan = plans::load(conn, org, vec![row]).await?.pop().ok_or(Error::NotFound("plan"))?;
    Ok((sub, plan))
}

async fn list_charges(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path(external_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ChargesPage>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let (_, plan) = subscription_and_plan(&mut tx, org, &external_id, &raw).await?;
    tx.commit().await.map_err(Error::from)?;
    let pairs = query_pairs(&raw);
    let page = PageQuery { page: query_value(&pairs, "page"), per_page: query_value(&pairs, "per_page") }.page();
    let mut charges: Vec<&plans::Charge> = plan.charges.iter().collect();
    charges.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let total = i64::try_from(charges.len()).unwrap_or(i64::MAX);
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit()).unwrap_or(usize::MAX);
    let charges = charges.into_iter().skip(offset).take(limit).map(super::plans::render_charge).collect();
    Ok(Json(ChargesPage { charges, meta: page.meta(total) }))
}

async fn show_charge(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((external_id, charge_code)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ChargeEnvelope>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let (_, plan) = subscription_and_plan(&mut tx, org, &external_id, &raw).await?;
    tx.commit().await.map_err(Error::from)?;
    let charge = plan.charges.iter().find(|c| c.attrs.code == charge_code).ok_or(ApiError::NotFound("charge"))?;
    Ok(Json(ChargeEnvelope { charge: super::plans::render_charge(charge) }))
}

/// Lago's charge override: only the display name, minimum, properties, filters and taxes of the charge change, in
/// the subscription's own copy of the plan (made on the first override).
async fn override_charge(
    State(state): State<ApiState>,
    Extension(OrgId(org)): Extension<OrgId>,
    Path((external_id, charge_code)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    JsonObject(body): JsonObject,
) -> Result<Json<ChargeEnvelope>, ApiError> {
    let sent = take_root(body, "charge")?;
    let mut tx = state.pool.begin().await.map_err(Error::from)?;
    let (sub, plan) = subscription_and_plan(&mut tx, org, &external_id, &raw).await?;
    let charge = plan.charges.iter().find(|c| c.attrs.code == charge_code).ok_or(ApiError::NotFound("charge"))?;
    let (parent, child, parent_charge) = match plan.row.parent_id {
        Some(parent_id) => {
            let row = plans::find_row_by_id(&mut tx, org, parent_id).await?.ok_or(Error::NotFound("plan"))?;
            let parent = plans::load(&mut tx, org, vec![row]).await?.pop().ok_or(Error::NotFound("plan"))?;
            let parent_charge = charge.attrs.parent_id.ok_or(Error::NotFound("charge"))?;
            (parent, Some(plan.clone()), parent_charge)
        }
        None => (plan.clone(), None, charge.id),
    };
    let mut entry = serde_json::Map::new();
    entry.insert("id".into(), serde_json::Value::from(parent_charge.to_string()));
    for field in ["invoice_display_name", "min_amount_cents", "properties", "filters", "tax_codes"] {
        if let Some(v) = sent.get(field) {
            entry.insert(field.into(), v.clone());
        }
    }
    let mut overrides = serde_json::Map::new();
    overrides.insert("charges".into(), serde_json::Value::Array(vec![serde_json::Value::Object(entry)]));
    let copy = super::plans::override_plan(&mut tx, org, &parent, child.as_ref(), &overrides).await?;
    if copy.row.id != sub.plan_id {
        store::update(&mut tx, org, sub.id, sub.name.as_deref(), sub.subscription_at, sub.ending_at, copy.row.id)
            .await?;
    }
    let overridden =
        copy.charges.iter().find(|c| c.attrs.parent_id == Some(parent_charge)).ok_or(Error::NotFound("charge"))?;
    let object = super::plans::render_charge(overridden);
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(ChargeEnvelope { charge: object }))
}
