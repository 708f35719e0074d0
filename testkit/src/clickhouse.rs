//! A throwaway ClickHouse server (Debian's `clickhouse-server` 18.16) on free loopback ports, with its own
//! `config.xml`/`users.xml` in a temp folder. Tests share one per process ([`ClickHouseServer::shared`]) and each takes
//! its own database; fault tests start their own so they can stop and restart it.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Error;
use crate::process::{Launch, Managed, find_binary, http, port_open, temp_root, wait_until, write_file};

const INSTALL_HINT: &str = "ClickHouse server not found: install it with \
    `apt-get install -y clickhouse-server clickhouse-client` (scripts/setup.sh does it)";

pub struct ClickHouseServer {
    process: Managed,
    http_port: u16,
}

static SHARED: OnceLock<Result<ClickHouseServer, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl ClickHouseServer {
    /// The process-wide server; panics with the reason (e.g. how to install ClickHouse) when it cannot start.
    pub fn shared() -> &'static ClickHouseServer {
        match SHARED.get_or_init(|| Self::start().map_err(|e| e.to_string())) {
            Ok(server) => server,
            Err(reason) => panic!("cannot start the test ClickHouse server: {reason}"),
        }
    }

    /// A server of its own, stopped and deleted on drop (or by the watchdog when the process dies).
    pub fn start() -> Result<ClickHouseServer, Error> {
        let program = find_binary("clickhouse-server", &[PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .ok_or_else(|| Error::Missing(INSTALL_HINT.into()))?;
        let root = temp_root("billstream-ch-")?;
        let http_port = crate::free_port()?;
        let tcp_port = crate::free_port()?;
        let interserver_port = crate::free_port()?;
        for dir in ["data", "tmp", "user_files", "format_schemas", "log"] {
            std::fs::create_dir_all(root.join(dir)).map_err(|e| Error::io("creating ClickHouse folders", e))?;
        }
        let r = root.display();
        write_file(
            &root.join("config.xml"),
            &format!(
                r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{r}/log/server.log</log><errorlog>{r}/log/error.log</errorlog><size>10M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <max_connections>256</max_connections>
    <path>{r}/data/</path>
    <tmp_path>{r}/tmp/</tmp_path>
    <user_files_path>{r}/user_files/</user_files_path>
    <format_schema_path>{r}/format_schemas/</format_schema_path>
    <users_config>{r}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
"#
            ),
        )?;
        write_file(
            &root.join("users.xml"),
            r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#,
        )?;
        let launch = Launch {
            program,
            args: vec![format!("--config-file={r}/config.xml")],
            cwd: root.clone(),
            log: root.join("log").join("stdout.log"),
        };
        let server = ClickHouseServer { process: Managed::new(root, launch)?, http_port };
        server.restart()?;
        Ok(server)
    }

    /// Starts the server again on the same folder and ports and waits until it answers.
    pub fn restart(&self) -> Result<(), Error> {
        self.process.spawn()?;
        let ready = wait_until(Duration::from_secs(60), || {
            port_open(self.http_port) && http(self.http_port, "/ping", None).is_ok_and(|(s, _)| s == 200)
        });
        if ready {
            Ok(())
        } else {
            Err(Error::Failed(format!("ClickHouse did not become ready:\n{}", self.process.log_tail())))
        }
    }

    /// Stops the server (SIGTERM; data is kept for [`restart`](Self::restart)).
    pub fn stop(&self) -> Result<(), Error> {
        self.process.signal_and_wait("TERM")
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The HTTP URL of the server, e.g. `http://127.0.0.1:18123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs one statement; the result as text.
    pub fn execute(&self, sql: &str) -> Result<String, Error> {
        let (status, body) = http(self.http_port, "/", Some(sql))?;
        if status == 200 { Ok(body) } else { Err(Error::Failed(format!("ClickHouse ({status}): {body}"))) }
    }

    /// Creates a fresh empty database and returns its name (left to the server's deletion at exit).
    pub fn database(&self) -> String {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{n}", std::process::id());
        self.execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating ClickHouse database {name}: {e}"));
        name
    }
}
