//! The roles and commands of the binary: `all`/`serve` run the HTTP API (`all` also runs the billing clock, the
//! webhook dispatcher and, in scale mode, the sink), `worker` runs the billing clock and the webhook dispatcher,
//! `sink` moves the event log into ClickHouse, `migrate` and `org create`/`org show` do their one job.

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::{Cli, Command, Config, Mode, OrgCommand};
use crate::database::Database;
use crate::http::HttpSettings;
use crate::scale::Scale;
use crate::{AppState, app};
use billing::tracking::{TrackEvent, Tracker};
use ingest::GroupCommitConfig;

/// How long a stopping process waits for the tracking queue to be sent.
const TRACKING_FLUSH_ON_EXIT: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    let api_key = config.resolve_api_key().map_err(anyhow::Error::msg)?;
    if let Some(key) = &config.rsa_private_key {
        let key = billing::webhooks::signing::SigningKey::from_base64_pem(key)
            .map_err(|e| anyhow::anyhow!("LAGO_RSA_PRIVATE_KEY: {e}"))?;
        billing::webhooks::signing::configure(key);
    }
    if config.scale.mode == Mode::Scale {
        // Before any database is opened: a missing broker or ClickHouse address stops start-up at once.
        config.scale.require().map_err(anyhow::Error::msg)?;
    }
    match cli.command.unwrap_or(Command::All) {
        Command::All => {
            let tracker = start_tracker(&config)?;
            with_database(&config, |pool| serve(config.clone(), api_key, pool, tracker, true)).await
        }
        Command::Serve => {
            let tracker = start_tracker(&config)?;
            with_database(&config, |pool| serve(config.clone(), api_key, pool, tracker, false)).await
        }
        Command::Sink => with_database(&config, |pool| sink(config.clone(), pool)).await,
        Command::Worker => {
            let tracker = start_tracker(&config)?;
            with_database(&config, |pool| worker(config.clone(), pool, tracker)).await
        }
        Command::Migrate => {
            let scale = config.scale.clone();
            with_database(&config, |pool| async move {
                billing::migrate(&pool).await?;
                if scale.mode == Mode::Scale {
                    Scale::connect(&scale).await?;
                }
                println!("migrations applied");
                Ok(())
            })
            .await
        }
        Command::Org { command: OrgCommand::Show { id } } => {
            with_database(&config, |pool| async move {
                billing::migrate(&pool).await?;
                let org = match id {
                    Some(id) => id,
                    None => billing::store::organizations::first(&pool).await?.context("no organization yet")?.id,
                };
                let object = billing::api::organization_object(&pool, org).await?;
                println!("{}", serde_json::to_string_pretty(&object)?);
                Ok(())
            })
            .await
        }
        Command::Org { command: OrgCommand::Create { name } } => {
            let tracker = start_tracker(&config)?;
            with_database(&config, |pool| async move {
                billing::migrate(&pool).await?;
                let (org, key) = billing::store::organizations::create(&pool, &name, None).await?;
                println!("organization: {} ({})", org.name, org.id);
                println!("api key: {key}");
                tracker.track(org.id, || TrackEvent::OrganizationRegistered);
                // The command exits next: send now, briefly, whatever the endpoint does.
                tracker.flush(TRACKING_FLUSH_ON_EXIT).await;
                Ok(())
            })
            .await
        }
    }
}

/// The usage tracker of a command that reports events (the API, the worker, `org create`). Opted out, or without a
/// write key: an empty tracker, and none of the tracking code runs.
fn start_tracker(config: &Config) -> anyhow::Result<Tracker> {
    Ok(match config.tracking.settings() {
        Some(settings) => Tracker::start(settings)?,
        None => Tracker::disabled(),
    })
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

/// The `worker` role alone, until Ctrl-C or SIGTERM; it reads usage from the mode's event store.
async fn worker(config: Config, pool: PgPool, tracker: Tracker) -> anyhow::Result<()> {
    billing::migrate(&pool).await?;
    let events: Arc<dyn aggregate::EventStore> = match config.scale.mode {
        Mode::Embedded => Arc::new(aggregate::postgres::PgEventStore::new(pool.clone())),
        Mode::Scale => Arc::new(Scale::connect(&config.scale).await?.store),
    };
    let probe = probe_server(&config);
    tracing::info!(every_seconds = config.billing_tick_seconds, "billing clock started");
    let webhooks = tokio::spawn(dispatcher(config.clone(), pool.clone()));
    tokio::select! {
        () = billing_clock(&config, pool, events, tracker.clone()) => {},
        () = shutdown_signal() => {},
    }
    webhooks.abort();
    probe.abort();
    tracker.flush(TRACKING_FLUSH_ON_EXIT).await;
    Ok(())
}

/// `/metrics` and `/health` on BILLSTREAM_LISTEN for the roles without the API (sink, worker), so Prometheus
/// scrapes every stage and an orchestrator can probe them. Best effort: a role beside `serve` on the same address
/// runs on without it (with a warning) rather than stopping the pipeline.
fn probe_server(config: &Config) -> tokio::task::JoinHandle<()> {
    use axum::routing::get;
    let listen = config.listen;
    tokio::spawn(async move {
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%listen, error = %e, "no /metrics for this role: BILLSTREAM_LISTEN is taken");
                return;
            }
        };
        let handle = crate::telemetry::prometheus();
        let router = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/metrics", get(move || std::future::ready(handle.render())));
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    })
}

/// The webhook dispatcher and the hourly events.errors report, beside the billing clock.
async fn dispatcher(config: Config, pool: PgPool) {
    let clock: Arc<dyn billing::clock::Clock> = Arc::new(billing::clock::SystemClock);
    billing::webhooks::dispatcher::run(pool, config.webhook_settings(), clock).await;
}

async fn billing_clock_owned(config: Config, pool: PgPool, events: Arc<dyn aggregate::EventStore>, tracker: Tracker) {
    billing_clock(&config, pool, events, tracker).await;
}

async fn billing_clock(config: &Config, pool: PgPool, events: Arc<dyn aggregate::EventStore>, tracker: Tracker) {
    let every = std::time::Duration::from_secs(config.billing_tick_seconds);
    billing::clock::run(pool, events, tracker, Arc::new(billing::clock::SystemClock), every).await;
}

/// The HTTP API; the `all` role (`with_roles`) also runs the billing clock and, in scale mode, the sink, in the
/// same process.
async fn serve(
    config: Config,
    api_key: Option<String>,
    pool: PgPool,
    tracker: Tracker,
    with_roles: bool,
) -> anyhow::Result<()> {
    billing::migrate(&pool).await?;
    let scale = match config.scale.mode {
        Mode::Embedded => None,
        Mode::Scale => Some(Scale::connect(&config.scale).await?),
    };
    bootstrap_organization(&config, api_key.as_deref(), &pool, &tracker).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("BILLSTREAM_LISTEN: cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "billstream is ready");
    let settings = HttpSettings {
        max_body_bytes: config.max_body_bytes,
        events_batch_limit: config.events_batch_limit,
        group_commit: GroupCommitConfig { max_inflight: config.ingest_max_inflight, ..GroupCommitConfig::default() },
    };
    let state = match &scale {
        None => AppState::embedded(pool.clone(), settings),
        Some(scale) => {
            if with_roles {
                tokio::spawn(scale.sink(pool.clone())?.run());
            }
            AppState::scale(pool.clone(), settings, scale)
        }
    };
    let state = AppState { tracker: tracker.clone(), ..state };
    // The billing clock reads usage from the same event store the API writes.
    let clock = with_roles.then(|| {
        tokio::spawn(billing_clock_owned(config.clone(), pool.clone(), state.ingest.store.clone(), tracker.clone()))
    });
    let webhooks = with_roles.then(|| tokio::spawn(dispatcher(config.clone(), pool.clone())));
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown_signal()).await?;
    for task in [clock, webhooks].into_iter().flatten() {
        task.abort();
    }
    tracker.flush(TRACKING_FLUSH_ON_EXIT).await;
    tracing::info!("shutting down");
    Ok(())
}

/// The sink role (scale mode only): runs until SIGTERM or Ctrl-C.
async fn sink(config: Config, pool: PgPool) -> anyhow::Result<()> {
    if config.scale.mode != Mode::Scale {
        anyhow::bail!("BILLSTREAM_MODE: the sink runs in scale mode only (BILLSTREAM_MODE=scale)");
    }
    billing::migrate(&pool).await?;
    let scale = Scale::connect(&config.scale).await?;
    let sink = scale.sink(pool)?;
    let probe = probe_server(&config);
    tracing::info!(topic = %scale.kafka.topic, group = %scale.sink_group, "sink is running");
    tokio::select! {
        () = sink.run() => {},
        () = shutdown_signal() => tracing::info!("sink shutting down"),
    }
    probe.abort();
    Ok(())
}

/// On first start, creates the default organization and prints its API key once; later starts reuse it.
async fn bootstrap_organization(
    config: &Config,
    api_key: Option<&str>,
    pool: &PgPool,
    tracker: &Tracker,
) -> anyhow::Result<()> {
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
            tracker.track(org.id, || TrackEvent::OrganizationRegistered);
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
