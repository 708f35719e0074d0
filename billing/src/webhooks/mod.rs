//! Webhooks, as Lago sends them: an outbox written with the change, a dispatcher that delivers it, and the hourly
//! `events.errors` report.
//!
//! The guarantee, step by step (one outbox row per webhook and endpoint; its id is the `X-Lago-Unique-Key`):
//! 1. **Enqueue** ([`enqueue`]): the row is inserted in the transaction of the change it reports. A crash before
//!    the commit loses both the change and the webhook; after it, both exist. No change without its webhook.
//! 2. **Claim** ([`dispatcher`]): a worker locks due rows (`FOR UPDATE SKIP LOCKED`, so workers never share a
//!    row) in a transaction it holds while sending. A crash or a lost connection ends that transaction: the rows
//!    are due again, untouched, for any worker.
//! 3. **Render and send**: a row without a body gets it rendered now, by the API's own renderers, and the body is
//!    signed and POSTed. A crash after the endpoint received it but before step 4 means it is sent again later,
//!    with the same unique key (at least once; receivers dedupe on the key, as Lago asks them to).
//! 4. **Record**: the attempt (status, start of the response, time) and the row's new state (`succeeded`, or
//!    `retrying` at a later time with exponential backoff, or `failed` after the last attempt) commit together,
//!    with the body, so retries send the same bytes. A failed webhook can be sent again through the API.

pub mod dispatcher;
pub mod event_error;
pub mod events_errors;
pub mod signing;
pub mod termination_alerts;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// The webhook types Billstream sends, each with the object it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookType {
    InvoiceCreated,
    InvoiceDrafted,
    InvoiceVoided,
    InvoiceOneOffCreated,
    InvoicePaymentStatusUpdated,
    FeeCreated,
    SubscriptionStarted,
    SubscriptionTerminated,
    SubscriptionTerminationAlert,
    CustomerCreated,
    CustomerUpdated,
    EventsErrors,
    EventError,
}

impl WebhookType {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::InvoiceCreated => "invoice.created",
            WebhookType::InvoiceDrafted => "invoice.drafted",
            WebhookType::InvoiceVoided => "invoice.voided",
            WebhookType::InvoiceOneOffCreated => "invoice.one_off_created",
            WebhookType::InvoicePaymentStatusUpdated => "invoice.payment_status_updated",
            WebhookType::FeeCreated => "fee.created",
            WebhookType::SubscriptionStarted => "subscription.started",
            WebhookType::SubscriptionTerminated => "subscription.terminated",
            WebhookType::SubscriptionTerminationAlert => "subscription.termination_alert",
            WebhookType::CustomerCreated => "customer.created",
            WebhookType::CustomerUpdated => "customer.updated",
            WebhookType::EventsErrors => "events.errors",
            WebhookType::EventError => "event.error",
        }
    }

    /// The payload's `object_type`, also the key its object is under.
    pub fn object_type(self) -> &'static str {
        match self {
            WebhookType::InvoiceCreated
            | WebhookType::InvoiceDrafted
            | WebhookType::InvoiceVoided
            | WebhookType::InvoiceOneOffCreated
            | WebhookType::InvoicePaymentStatusUpdated => "invoice",
            WebhookType::FeeCreated => "fee",
            WebhookType::SubscriptionStarted
            | WebhookType::SubscriptionTerminated
            | WebhookType::SubscriptionTerminationAlert => "subscription",
            WebhookType::CustomerCreated | WebhookType::CustomerUpdated => "customer",
            WebhookType::EventsErrors => "events_errors",
            WebhookType::EventError => "event_error",
        }
    }

    /// Every type an endpoint may subscribe to through `event_types`.
    pub const ALL: [WebhookType; 13] = [
        WebhookType::InvoiceCreated,
        WebhookType::InvoiceDrafted,
        WebhookType::InvoiceVoided,
        WebhookType::InvoiceOneOffCreated,
        WebhookType::InvoicePaymentStatusUpdated,
        WebhookType::FeeCreated,
        WebhookType::SubscriptionStarted,
        WebhookType::SubscriptionTerminated,
        WebhookType::SubscriptionTerminationAlert,
        WebhookType::CustomerCreated,
        WebhookType::CustomerUpdated,
        WebhookType::EventsErrors,
        WebhookType::EventError,
    ];
}

/// Queues webhook `kind` about each `(organization, object id)`, for every endpoint of that organization that takes
/// the type: one statement whatever the number of objects. Call it inside the transaction of the change.
pub async fn enqueue(conn: &mut PgConnection, kind: WebhookType, objects: &[(Uuid, Uuid)]) -> Result<()> {
    if objects.is_empty() {
        return Ok(());
    }
    let (orgs, ids): (Vec<Uuid>, Vec<Uuid>) = objects.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO webhooks (organization_id, webhook_endpoint_id, webhook_type, object_type, object_id, endpoint)
         SELECT e.organization_id, e.id, $1, $2, o.id, e.webhook_url
         FROM unnest($3::uuid[], $4::uuid[]) WITH ORDINALITY AS o(org, id, n)
         JOIN webhook_endpoints e ON e.organization_id = o.org
         WHERE e.event_types IS NULL OR $1 = ANY(e.event_types)
         ORDER BY o.n, e.created_at",
    )
    .bind(kind.as_str())
    .bind(kind.object_type())
    .bind(&orgs)
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`enqueue`] for one object of one organization.
pub async fn enqueue_one(conn: &mut PgConnection, kind: WebhookType, org: Uuid, id: Uuid) -> Result<()> {
    enqueue(conn, kind, &[(org, id)]).await
}

/// Queues the webhooks of new invoices (a billing run's batch, a termination, an event paid in advance), in one
/// statement each for the batch: `invoice.drafted` for a draft, `invoice.created` for a finalized invoice, and
/// `fee.created` for each fee of a charge paid in advance, as Lago.
pub async fn invoices_issued(conn: &mut PgConnection, invoices: &[Uuid]) -> Result<()> {
    if invoices.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO webhooks (organization_id, webhook_endpoint_id, webhook_type, object_type, object_id, endpoint)
         SELECT i.organization_id, e.id, t.name, 'invoice', i.id, e.webhook_url
         FROM invoices i
         CROSS JOIN LATERAL (SELECT CASE WHEN i.status = 'draft' THEN 'invoice.drafted' ELSE 'invoice.created' END
                             AS name) t
         JOIN webhook_endpoints e ON e.organization_id = i.organization_id
         WHERE i.id = ANY($1) AND (e.event_types IS NULL OR t.name = ANY(e.event_types))
         ORDER BY i.created_at, i.id, e.created_at",
    )
    .bind(invoices)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO webhooks (organization_id, webhook_endpoint_id, webhook_type, object_type, object_id, endpoint)
         SELECT f.organization_id, e.id, 'fee.created', 'fee', f.id, e.webhook_url
         FROM fees f JOIN webhook_endpoints e ON e.organization_id = f.organization_id
         WHERE f.invoice_id = ANY($1) AND f.pay_in_advance
           AND (e.event_types IS NULL OR 'fee.created' = ANY(e.event_types))
         ORDER BY f.invoice_id, f.id, e.created_at",
    )
    .bind(invoices)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues the webhook of a draft just finalized: `invoice.one_off_created` for a one-off invoice, else
/// `invoice.created` (Lago's two names).
pub async fn invoice_finalized(conn: &mut PgConnection, org: Uuid, invoice: Uuid) -> Result<()> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT invoice_type FROM invoices WHERE organization_id = $1 AND id = $2")
            .bind(org)
            .bind(invoice)
            .fetch_optional(&mut *conn)
            .await?;
    let kind = match kind.as_deref() {
        Some("one_off") => WebhookType::InvoiceOneOffCreated,
        _ => WebhookType::InvoiceCreated,
    };
    enqueue_one(conn, kind, org, invoice).await
}

/// Queues a webhook whose object is `object` as given (a report with no stored object of its own).
pub async fn enqueue_object(
    conn: &mut PgConnection,
    kind: WebhookType,
    org: Uuid,
    object: &serde_json::Value,
) -> Result<()> {
    enqueue_bodies(conn, kind, &[org], &[envelope(kind, org, &object.to_string())]).await
}

/// Queues one webhook of `kind` per body (`bodies[i]` from organization `orgs[i]`, an envelope already) to each
/// endpoint of its organization that takes that type, in one statement.
pub async fn enqueue_bodies(
    conn: &mut PgConnection,
    kind: WebhookType,
    orgs: &[Uuid],
    bodies: &[String],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhooks (organization_id, webhook_endpoint_id, webhook_type, object_type, body, endpoint)
         SELECT e.organization_id, e.id, $3, $4, b.body, e.webhook_url
         FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS b(org, body, n)
         JOIN webhook_endpoints e ON e.organization_id = b.org AND (e.event_types IS NULL OR $3 = ANY(e.event_types))
         ORDER BY b.n",
    )
    .bind(orgs)
    .bind(bodies)
    .bind(kind.as_str())
    .bind(kind.object_type())
    .execute(conn)
    .await?;
    Ok(())
}

/// Lago's envelope, keys in Lago's order: `webhook_type`, `object_type`, `organization_id`, then the object under
/// its type. `object_json` is already JSON text.
pub(crate) fn envelope(kind: WebhookType, org: Uuid, object_json: &str) -> String {
    envelope_of(kind.as_str(), kind.object_type(), org, object_json)
}

pub(crate) fn envelope_of(webhook_type: &str, object_type: &str, org: Uuid, object_json: &str) -> String {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"webhook_type\":{},\"object_type\":{},\"organization_id\":\"{org}\",{}:{object_json}}}",
        text(webhook_type),
        text(object_type),
        text(object_type)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_json_in_lagos_key_order() {
        let org = Uuid::nil();
        let body = envelope(WebhookType::InvoiceCreated, org, r#"{"lago_id":"x"}"#);
        assert!(body.starts_with(r#"{"webhook_type":"invoice.created","object_type":"invoice","organization_id""#));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["invoice"]["lago_id"], "x");
    }
}
