//! The roles and commands of the binary: `all`/`serve` run the HTTP API, `migrate` and `org create` do their one job.

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::{Cli, Command, Config, OrgCommand};
use crate::database::Database;
use crate::http::HttpSettings;
use crate::{AppState, app};
use ingest::GroupCommitConfig;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    let api_key = config.resolve_api_key().map_err(anyhow::Error::msg)?;
    match cli.command.unwrap_or(Command::All) {
        Command::All => with_database(&config, |pool| all(config.clone(), api_key, pool)).await,
        Command::Serve => with_database(&config, |pool| serve(config.clone(), api_key, pool)).await,
        Command::Worker => with_database(&config, |pool| worker(config.clone(), pool)).await,
        Command::Migrate => {
            with_database(&config, |pool| async move {
                billing::migrate(&pool).await?;
                println!("migrations applied");
                Ok(())
            })
            .await
        }
        Command::Org { command: OrgCommand::Create { name } } => {
            with_database(&config, |pool| async move {
                billing::migrate(&pool).await?;
                let (org, key) = billing::store::organizations::create(&pool, &name, None).await?;
                println!("organization: {} ({})", org.name, org.id);
                println!("api key: {key}");
                Ok(())
            })
            .await
        }
    }
}

/// Opens the database, runs `work`, and always closes it again (stopping the managed server if we started it).
async fn with_database<F, Fut>(config: &Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(PgPool) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let db = Database::open(config).await?;
    let result = work(db.pool.clone()).await;
    db.shutdown().await;
    result
}

/// Every role in one process: the billing clock runs beside the API and stops with it.
async fn all(config: Config, api_key: Option<String>, pool: PgPool) -> anyhow::Result<()> {
    billing::migrate(&pool).await?;
    let clock = tokio::spawn(billing_clock(config.clone(), pool.clone()));
    let served = serve(config, api_key, pool).await;
    clock.abort();
    served
}

/// The `worker` role alone, until Ctrl-C or SIGTERM.
async fn worker(config: Config, pool: PgPool) -> anyhow::Result<()> {
    billing::migrate(&pool).await?;
    tracing::info!(every_seconds = config.billing_tick_seconds, "billing clock started");
    tokio::select! {
        () = billing_clock(config, pool) => {},
        () = shutdown_signal() => {},
    }
    Ok(())
}

/// The billing clock reads usage from the same event store the API writes.
async fn billing_clock(config: Config, pool: PgPool) {
    let events: std::sync::Arc<dyn aggregate::EventStore> =
        std::sync::Arc::new(aggregate::postgres::PgEventStore::new(pool.clone()));
    let every = std::time::Duration::from_secs(config.billing_tick_seconds);
    billing::clock::run(pool, events, std::sync::Arc::new(billing::clock::SystemClock), every).await;
}

async fn serve(config: Config, api_key: Option<String>, pool: PgPool) -> anyhow::Result<()> {
    billing::migrate(&pool).await?;
    bootstrap_organization(&config, api_key.as_deref(), &pool).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("BILLSTREAM_LISTEN: cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "billstream is ready");
    let settings = HttpSettings {
        max_body_bytes: config.max_body_bytes,
        events_batch_limit: config.events_batch_limit,
        group_commit: GroupCommitConfig { max_inflight: config.ingest_max_inflight, ..GroupCommitConfig::default() },
    };
    let state = AppState::embedded(pool, settings);
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("shutting down");
    Ok(())
}

/// On first start, creates the default organization and prints its API key once; later starts reuse it.
async fn bootstrap_organization(config: &Config, api_key: Option<&str>, pool: &PgPool) -> anyhow::Result<()> {
    use billing::store::organizations;
    match organizations::first(pool).await? {
        Some(org) => {
            if let Some(key) = api_key {
                organizations::ensure_api_key(pool, org.id, key).await?;
            }
            tracing::info!(organization = %org.name, "using existing organization");
        }
        None => {
            let (org, key) = organizations::create(pool, &config.default_org_name, api_key).await?;
            if api_key.is_some() {
                println!("Created organization \"{}\" with the API key from LAGO_ORG_API_KEY.", org.name);
            } else {
                println!("Created organization \"{}\". Its API key (shown only this once):", org.name);
                println!("{key}");
                println!(
                    "Use it as: curl -H \"Authorization: Bearer {key}\" http://localhost:{}/api/v1/billable_metrics",
                    config.listen.port()
                );
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
