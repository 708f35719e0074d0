//! Real servers on loopback, in temporary folders, for tests and benchmarks: no test depends on a server started by
//! hand, and a missing server binary is an error that says how to install it, never a silent skip.
//!
//! The PostgreSQL launcher in [`postgres`] also runs the binary's managed embedded database, so the code that starts
//! servers exists once.

pub mod clickhouse;
pub mod postgres;
mod process;
pub mod prometheus;
pub mod tansu;

pub use clickhouse::ClickHouseServer;
pub use process::find_binary;
pub use prometheus::PrometheusServer;
pub use tansu::Broker;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::{Cluster, ClusterSpec, SUPERUSER};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Failed(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("binding a loopback port", e))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::io("reading the bound port", e))
}

/// One throwaway PostgreSQL server per test process, started on first use.
///
/// A watchdog shell process stops the server and deletes its folder once this process is gone, however it ends
/// (statics are never dropped, and a killed test binary runs no destructors).
pub struct TestPostgres {
    cluster: Cluster,
    port: u16,
}

static SERVER: OnceLock<Result<TestPostgres, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl TestPostgres {
    /// The process-wide server; panics with the reason (e.g. how to install PostgreSQL) when it cannot start.
    pub fn shared() -> &'static TestPostgres {
        match SERVER.get_or_init(|| Self::start().map_err(|e| e.to_string())) {
            Ok(server) => server,
            Err(reason) => panic!("cannot start the test PostgreSQL server: {reason}"),
        }
    }

    fn start() -> Result<TestPostgres, Error> {
        let root: PathBuf = tempfile::Builder::new()
            .prefix("billstream-pg-")
            .tempdir()
            .map_err(|e| Error::io("creating a temp dir", e))?
            .keep();
        let port = free_port()?;
        let cluster = Cluster::new(ClusterSpec {
            data_dir: root.join("data"),
            socket_dir: root.join("run"),
            port,
            tcp: true,
            fsync: false,
            log_file: root.join("log").join("postgres.log"),
        })?;
        spawn_watchdog(&format!("{}; rm -rf '{}'", cluster.stop_command(), root.display()))?;
        cluster.init_if_needed()?;
        cluster.start()?;
        Ok(TestPostgres { cluster, port })
    }

    /// URL of a database on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh empty database; it is dropped when the returned guard is.
    pub fn database(&'static self) -> TestDatabase {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{n}", std::process::id());
        self.psql(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        TestDatabase { server: self, name }
    }

    fn psql(&self, sql: &str) -> Result<(), Error> {
        let psql = postgres::PgBinaries::find()?;
        let out = Command::new(psql.psql())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url("postgres"), "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running psql", e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Failed(format!("psql: {}", String::from_utf8_lossy(&out.stderr))))
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// A database of the shared test server, dropped (with its open sessions) on drop.
pub struct TestDatabase {
    server: &'static TestPostgres,
    name: String,
}

impl TestDatabase {
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: the watchdog removes the whole server at exit anyway.
        let _ = self.server.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Runs `cleanup` in a detached shell once the current process has exited.
pub(crate) fn spawn_watchdog(cleanup: &str) -> Result<(), Error> {
    let script = format!("while kill -0 {} 2>/dev/null; do sleep 0.5; done; {cleanup}", std::process::id());
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("spawning the cleanup watchdog", e))?;
    Ok(())
}
