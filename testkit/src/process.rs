//! A server process in a temporary folder that a test can stop, kill and start again on the same folder and ports, with
//! a watchdog that stops it and deletes the folder once the test process is gone (however it ends).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;

/// Finds an executable on `PATH`, then in the extra folders given (e.g. `~/.cargo/bin`).
pub fn find_binary(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(extra.iter().cloned());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// How to launch the server: the command is rebuilt on each start.
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub log: PathBuf,
}

/// One server process and its folder.
pub(crate) struct Managed {
    pub root: PathBuf,
    launch: Launch,
    child: Mutex<Option<Child>>,
    pid_file: PathBuf,
}

impl Managed {
    /// Creates the watchdog; does not start the server.
    pub fn new(root: PathBuf, launch: Launch) -> Result<Self, Error> {
        let pid_file = root.join("server.pid");
        let cleanup = format!(
            "[ -f '{pid}' ] && kill -KILL $(cat '{pid}') 2>/dev/null; sleep 0.5; rm -rf '{root}'",
            pid = pid_file.display(),
            root = root.display()
        );
        crate::spawn_watchdog(&cleanup)?;
        Ok(Managed { root, launch, child: Mutex::new(None), pid_file })
    }

    /// Starts the process (when it is not running).
    pub fn spawn(&self) -> Result<(), Error> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = guard.as_mut()
            && c.try_wait().ok().flatten().is_none()
        {
            return Ok(());
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.launch.log)
            .map_err(|e| Error::io(format!("opening {}", self.launch.log.display()), e))?;
        let err = log.try_clone().map_err(|e| Error::io("cloning a log handle", e))?;
        let child = Command::new(&self.launch.program)
            .args(&self.launch.args)
            .current_dir(&self.launch.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", self.launch.program.display()), e))?;
        fs::write(&self.pid_file, child.id().to_string()).map_err(|e| Error::io("writing the pid file", e))?;
        *guard = Some(child);
        Ok(())
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) and waits for the process to exit.
    pub fn signal_and_wait(&self, signal: &str) -> Result<(), Error> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut child) = guard.take() else { return Ok(()) };
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Failed(format!("{} did not stop on SIG{signal}", self.launch.program.display())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.launch.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        let _ = self.signal_and_wait("KILL");
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A fresh folder that outlives this handle (the watchdog removes it).
pub(crate) fn temp_root(prefix: &str) -> Result<PathBuf, Error> {
    Ok(tempfile::Builder::new().prefix(prefix).tempdir().map_err(|e| Error::io("creating a temp dir", e))?.keep())
}

/// Polls `ready` until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// True when a TCP connection to 127.0.0.1:`port` succeeds.
pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok()
}

/// A minimal HTTP/1.0 POST (or GET without a body) to 127.0.0.1: the status and the body.
pub(crate) fn http(port: u16, path: &str, body: Option<&str>) -> Result<(u16, String), Error> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))
        .map_err(|e| Error::io("connecting", e))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| Error::io("socket timeout", e))?;
    let request = match body {
        Some(b) => format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        ),
        None => format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    };
    stream.write_all(request.as_bytes()).map_err(|e| Error::io("sending a request", e))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| Error::io("reading a response", e))?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
