//! A local PostgreSQL cluster driven by the server's own tools (`initdb`, `pg_ctl`).
//!
//! PostgreSQL refuses to run as root, so when this process is root every server command runs through `runuser` as an
//! unprivileged system user (`postgres` from Debian's package, else a `billstream` user created on the spot) that owns
//! the cluster's folder. The same code serves the managed embedded mode of the binary (a persistent folder, Unix
//! socket only) and the throwaway servers of tests (a temp folder, a loopback TCP port, fsync off).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::Error;

/// The folder holding `initdb`, `pg_ctl` and `postgres` of one installed PostgreSQL version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    bin_dir: PathBuf,
}

const INSTALL_HINT: &str = "install PostgreSQL's server package (Debian: `apt-get install -y postgresql`), or set DATABASE_URL to an existing server";

impl PgBinaries {
    /// Looks on `PATH` first, then in Debian's `/usr/lib/postgresql/<version>/bin`, newest version first.
    pub fn find() -> Result<Self, Error> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if let Ok(real) = fs::canonicalize(dir.join("initdb"))
                    && let Some(parent) = real.parent()
                {
                    candidates.push(parent.to_path_buf());
                }
            }
        }
        if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versions.into_iter().map(|(_, p)| p));
        }
        candidates
            .into_iter()
            .find(|dir| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file()))
            .map(|bin_dir| PgBinaries { bin_dir })
            .ok_or_else(|| {
                Error::Missing(format!("PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}"))
            })
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The `psql` client shipped beside the server.
    pub fn psql(&self) -> PathBuf {
        self.tool("psql")
    }
}

/// Where a cluster lives and how it listens.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The cluster's data folder (`PGDATA`).
    pub data_dir: PathBuf,
    /// Folder of the Unix socket (`unix_socket_directories`).
    pub socket_dir: PathBuf,
    /// TCP port; with `tcp: false` it only names the socket file `.s.PGSQL.<port>`.
    pub port: u16,
    /// Listen on 127.0.0.1 as well as on the socket.
    pub tcp: bool,
    /// Turn fsync off: only for throwaway test servers, whose data may be lost.
    pub fsync: bool,
    /// The server's log file.
    pub log_file: PathBuf,
}

/// A cluster on disk, started or not.
#[derive(Debug)]
pub struct Cluster {
    bins: PgBinaries,
    spec: ClusterSpec,
    run_as: Option<String>,
}

/// The database superuser that `initdb` creates; connections are trusted on the socket and on loopback only.
pub const SUPERUSER: &str = "postgres";

impl Cluster {
    /// Prepares (but does not start) a cluster; when running as root, picks or creates the unprivileged user that will
    /// own it and gives that user its folders.
    pub fn new(spec: ClusterSpec) -> Result<Self, Error> {
        let bins = PgBinaries::find()?;
        let run_as = if running_as_root() { Some(unprivileged_user()?) } else { None };
        for dir in [&spec.data_dir, &spec.socket_dir] {
            fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        if let Some(parent) = spec.log_file.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let cluster = Cluster { bins, spec, run_as };
        if let Some(user) = &cluster.run_as {
            // initdb insists on owning PGDATA with mode 0700.
            fs::set_permissions(&cluster.spec.data_dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("setting data folder mode", e))?;
            for path in [&cluster.spec.data_dir, &cluster.spec.socket_dir] {
                chown_recursive(path, user)?;
            }
            if let Some(parent) = cluster.spec.log_file.parent() {
                chown_recursive(parent, user)?;
            }
            for path in [&cluster.spec.data_dir, &cluster.spec.socket_dir] {
                grant_traverse(path)?;
            }
        }
        Ok(cluster)
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// True once `initdb` has run in the data folder.
    pub fn is_initialized(&self) -> bool {
        self.spec.data_dir.join("PG_VERSION").is_file()
    }

    /// Runs `initdb` when the folder holds no cluster yet.
    pub fn init_if_needed(&self) -> Result<(), Error> {
        if self.is_initialized() {
            return Ok(());
        }
        let data = self.spec.data_dir.display().to_string();
        let mut args = vec!["-D", &data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"];
        if !self.spec.fsync {
            args.push("--no-sync");
        }
        self.run_tool("initdb", &args)?;
        Ok(())
    }

    /// True when a postmaster is running on this data folder.
    pub fn is_running(&self) -> bool {
        let data = self.spec.data_dir.display().to_string();
        self.run_tool("pg_ctl", &["-D", &data, "status"]).is_ok()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), Error> {
        let mut opts = format!(
            "-c port={} -c unix_socket_directories='{}' -c listen_addresses='{}'",
            self.spec.port,
            self.spec.socket_dir.display(),
            if self.spec.tcp { "127.0.0.1" } else { "" }
        );
        if !self.spec.fsync {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let data = self.spec.data_dir.display().to_string();
        let log = self.spec.log_file.display().to_string();
        self.run_tool("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &opts, "start"]).map_err(|e| {
            let tail = fs::read_to_string(&self.spec.log_file).unwrap_or_default();
            let tail: String =
                tail.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            Error::Failed(format!("{e}\nserver log ({}):\n{tail}", self.spec.log_file.display()))
        })?;
        Ok(())
    }

    /// Stops the server ("fast": open sessions are cut, committed data is kept).
    pub fn stop(&self) -> Result<(), Error> {
        let data = self.spec.data_dir.display().to_string();
        self.run_tool("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])?;
        Ok(())
    }

    /// The shell command that stops this cluster, for a watchdog process that outlives us.
    pub fn stop_command(&self) -> String {
        let pg_ctl = self.bins.tool("pg_ctl");
        let core = format!("'{}' -D '{}' -m immediate -w stop", pg_ctl.display(), self.spec.data_dir.display());
        match &self.run_as {
            Some(user) => format!("runuser -u {user} -- {core}"),
            None => core,
        }
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> Result<Output, Error> {
        let path = self.bins.tool(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&path);
                c
            }
            None => Command::new(&path),
        };
        cmd.args(args).stdin(Stdio::null()).current_dir(&self.spec.socket_dir);
        let out = cmd.output().map_err(|e| Error::io(format!("running {}", path.display()), e))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Failed(format!(
                "{tool} {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

/// Root's effective uid is 0; `/proc/self` is owned by the process's effective user.
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `postgres` when Debian's package created it, else a `billstream` system user made here.
fn unprivileged_user() -> Result<String, Error> {
    if user_exists("postgres") {
        return Ok("postgres".into());
    }
    if !user_exists("billstream") {
        let status = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "billstream"])
            .status()
            .map_err(|e| Error::io("running useradd", e))?;
        if !status.success() {
            return Err(Error::Failed("could not create the system user `billstream` to run PostgreSQL".into()));
        }
    }
    Ok("billstream".into())
}

fn chown_recursive(path: &Path, user: &str) -> Result<(), Error> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .map_err(|e| Error::io("running chown", e))?;
    if status.success() { Ok(()) } else { Err(Error::Failed(format!("chown -R {user}: {} failed", path.display()))) }
}

/// The server user must be able to reach its folders: each ancestor gets the traverse bit (`o+x`, not read) when it
/// lacks it, e.g. `/root` when the project lives under root's home.
fn grant_traverse(path: &Path) -> Result<(), Error> {
    let abs = fs::canonicalize(path).map_err(|e| Error::io(format!("resolving {}", path.display()), e))?;
    for dir in abs.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001))
                .map_err(|e| Error::io(format!("granting traverse on {}", dir.display()), e))?;
            eprintln!(
                "billstream: granted traverse permission (o+x) on {} so PostgreSQL's user can reach its data",
                dir.display()
            );
        }
    }
    Ok(())
}
