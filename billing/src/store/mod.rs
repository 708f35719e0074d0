//! Postgres repositories. Every function that reads or writes tenant data takes the organization and filters on it.

pub mod analytics;
pub mod billable_metrics;
pub mod credit_notes;
pub mod fees;
pub mod invoice_rows;
pub mod invoices;
pub mod organizations;
pub mod past_usage;
pub mod taxes;

/// A query text built with `format!` from constant column lists (never from input), as sqlx wants it marked.
pub(crate) fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Catalog objects whose `code` is unique among the organization's live rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Coded {
    BillableMetrics,
    AddOns,
    Taxes,
    Coupons,
    /// Only parent plans: a subscription's override plan shares its parent's code.
    Plans,
}

impl Coded {
    fn scope(self) -> &'static str {
        match self {
            Coded::BillableMetrics => "billable_metrics WHERE deleted_at IS NULL",
            Coded::AddOns => "add_ons WHERE deleted_at IS NULL",
            Coded::Taxes => "taxes WHERE deleted_at IS NULL",
            Coded::Coupons => "coupons WHERE deleted_at IS NULL",
            Coded::Plans => "plans WHERE deleted_at IS NULL AND parent_id IS NULL",
        }
    }
}

/// Whether a live object other than `except` holds `code`.
pub(crate) async fn code_taken<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    table: Coded,
    org: uuid::Uuid,
    code: &str,
    except: Option<uuid::Uuid>,
) -> crate::Result<bool> {
    Ok(sqlx::query_scalar(sql(format!(
        "SELECT EXISTS (SELECT 1 FROM {} AND organization_id = $1 AND code = $2 AND id IS DISTINCT FROM $3)",
        table.scope()
    )))
    .bind(org)
    .bind(code)
    .bind(except)
    .fetch_one(executor)
    .await?)
}

/// A unique-index race on the code is the same answer as the up-front check.
pub(crate) fn code_conflict(e: sqlx::Error) -> crate::Error {
    if crate::error::is_unique_violation(&e) {
        crate::Error::Validation(schemas::error::field_error("code", "value_already_exist"))
    } else {
        crate::Error::Database(e)
    }
}
pub mod add_ons;
pub mod coupons;
pub mod customers;
pub mod plans;
pub mod subscriptions;
