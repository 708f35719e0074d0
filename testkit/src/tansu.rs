//! A throwaway Kafka-protocol broker: tansu with SQLite storage in a temp folder, on a free loopback port, with the
//! advertised listener set to that port (its default, `localhost:9092`, would send clients elsewhere). Tests share one
//! per process ([`Broker::shared`]) and each uses its own topic; fault tests start their own to restart it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Error;
use crate::process::{Launch, Managed, find_binary, port_open, temp_root, wait_until};

/// The topic Billstream appends events to.
pub const EVENTS_TOPIC: &str = "billstream.events";

const INSTALL_HINT: &str = "the tansu broker was not found on PATH or in ~/.cargo/bin: install it with \
    `cargo install tansu --locked --features libsql,dynostore` (about ten minutes; scripts/setup.sh does it)";

pub struct Broker {
    process: Managed,
    program: PathBuf,
    port: u16,
}

static SHARED: OnceLock<Result<Broker, String>> = OnceLock::new();
static NEXT_TOPIC: AtomicU32 = AtomicU32::new(0);

/// Where `cargo install` puts binaries.
fn cargo_bin() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo").join("bin"));
    }
    dirs
}

impl Broker {
    /// The process-wide broker with topic `billstream.events`; panics with the reason when it cannot start.
    pub fn shared() -> &'static Broker {
        let started = SHARED.get_or_init(|| {
            let broker = Self::start().map_err(|e| e.to_string())?;
            broker.create_topic(EVENTS_TOPIC, 3).map_err(|e| e.to_string())?;
            Ok(broker)
        });
        match started {
            Ok(broker) => broker,
            Err(reason) => panic!("cannot start the test broker (tansu): {reason}"),
        }
    }

    /// A broker of its own, stopped and deleted on drop (or by the watchdog when the process dies).
    pub fn start() -> Result<Broker, Error> {
        let program = find_binary("tansu", &cargo_bin()).ok_or_else(|| Error::Missing(INSTALL_HINT.into()))?;
        let root = temp_root("billstream-tansu-")?;
        let port = crate::free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let launch = Launch {
            program: program.clone(),
            // The SQLite path is taken relative to the working folder, which is the broker's temp folder.
            args: vec![
                "broker".into(),
                "--listener-url".into(),
                url.clone(),
                "--advertised-listener-url".into(),
                url,
                "--storage-engine".into(),
                "sqlite://tansu.db".into(),
            ],
            cwd: root.clone(),
            log: root.join("broker.log"),
        };
        let broker = Broker { process: Managed::new(root, launch)?, program, port };
        broker.restart()?;
        Ok(broker)
    }

    /// Starts the broker again on the same storage and port and waits until it accepts connections.
    pub fn restart(&self) -> Result<(), Error> {
        self.process.spawn()?;
        if wait_until(Duration::from_secs(30), || port_open(self.port)) {
            Ok(())
        } else {
            Err(Error::Failed(format!("tansu did not open its port:\n{}", self.process.log_tail())))
        }
    }

    /// Stops the broker (SIGTERM; its storage is kept for [`restart`](Self::restart)).
    pub fn stop(&self) -> Result<(), Error> {
        self.process.signal_and_wait("TERM")
    }

    /// Bootstrap servers for a Kafka client: `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), Error> {
        let out = Command::new(&self.program)
            .args(["topic", "create", "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &partitions.to_string(), name])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running tansu topic create", e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Failed(format!(
                "tansu topic create {name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// A fresh topic name for one test (not created: Billstream creates its topic on start).
    pub fn topic_name(&self) -> String {
        let n = NEXT_TOPIC.fetch_add(1, Ordering::Relaxed);
        format!("billstream.events.t{}_{n}", std::process::id())
    }
}
