//! The PostgreSQL the process uses: `DATABASE_URL` when given, else a managed local server in `<data-dir>/pg` that
//! listens on a Unix socket only and is stopped again on shutdown (when this process started it).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use testkit::postgres::{Cluster, ClusterSpec, SUPERUSER};

use crate::config::Config;

/// Name of the database the managed server holds.
const MANAGED_DB: &str = "billstream";
/// Only names the socket file: the managed server opens no TCP port.
const MANAGED_PORT: u16 = 5432;

/// A pool plus, when this process started the managed server, the handle that stops it.
pub struct Database {
    pub pool: PgPool,
    managed: Option<Cluster>,
}

impl Database {
    pub async fn open(config: &Config) -> anyhow::Result<Database> {
        match &config.database_url {
            Some(url) => {
                let options = PgConnectOptions::from_str(url).context("DATABASE_URL")?;
                let pool = pool(options, config.db_max_connections).await.context("connecting to DATABASE_URL")?;
                Ok(Database { pool, managed: None })
            }
            None => open_managed(config).await,
        }
    }

    /// Closes the pool and stops the managed server if this process started it.
    pub async fn shutdown(self) {
        self.pool.close().await;
        if let Some(cluster) = self.managed {
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => tracing::info!("managed PostgreSQL stopped"),
                Ok(Err(e)) => tracing::error!(error = %e, "stopping managed PostgreSQL"),
                Err(e) => tracing::error!(error = %e, "stopping managed PostgreSQL"),
            }
        }
    }
}

async fn pool(options: PgConnectOptions, max: u32) -> Result<PgPool, sqlx::Error> {
    let options = options.log_statements(tracing::log::LevelFilter::Trace);
    PgPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(10)).connect_with(options).await
}

async fn open_managed(config: &Config) -> anyhow::Result<Database> {
    let data_dir = absolute(&config.data_dir)?;
    let spec = ClusterSpec {
        data_dir: data_dir.join("pg"),
        socket_dir: data_dir.join("run"),
        port: MANAGED_PORT,
        tcp: false,
        fsync: true,
        log_file: data_dir.join("log").join("postgres.log"),
    };
    let socket_dir = spec.socket_dir.clone();
    let started = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Cluster>> {
        let cluster = Cluster::new(spec)?;
        if cluster.is_running() {
            // Another billstream process (e.g. the server, while `org create` runs) owns it: use it, leave it running.
            return Ok(None);
        }
        let fresh = !cluster.is_initialized();
        cluster.init_if_needed()?;
        cluster.start()?;
        tracing::info!(data_dir = %cluster.spec().data_dir.display(), fresh, "managed PostgreSQL started");
        Ok(Some(cluster))
    })
    .await
    .context("starting managed PostgreSQL")??;

    let base = PgConnectOptions::new().socket(&socket_dir).port(MANAGED_PORT).username(SUPERUSER);
    let admin = pool(base.clone().database("postgres"), 1).await.context("connecting to managed PostgreSQL")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(MANAGED_DB)
        .fetch_one(&admin)
        .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {MANAGED_DB}"))).execute(&admin).await?;
    }
    admin.close().await;
    let pool = pool(base.database(MANAGED_DB), config.db_max_connections).await?;
    Ok(Database { pool, managed: started })
}

fn absolute(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("BILLSTREAM_DATA_DIR: cannot create {}", path.display()))?;
    std::fs::canonicalize(path).with_context(|| format!("BILLSTREAM_DATA_DIR: cannot resolve {}", path.display()))
}
