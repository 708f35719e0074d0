//! The real `billstream` binary: configuration errors, the managed PostgreSQL lifecycle that the README's run command
//! relies on, `org create`, and an existing database through `DATABASE_URL`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::TestPostgres;

const BIN: &str = env!("CARGO_BIN_EXE_billstream");

pub fn billstream(data_dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BILLSTREAM_DATA_DIR", data_dir)
        .env("BILLSTREAM_LISTEN", format!("127.0.0.1:{port}"))
        .env("BILLSTREAM_LOG", "warn");
    cmd
}

/// Starts the server and returns it with the lines it printed on stdout until it was healthy.
pub async fn start(mut cmd: Command, port: u16) -> (Child, Vec<String>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn billstream");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/health")).send().await
            && r.status() == 200
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("billstream exited early: {status}");
        }
        assert!(Instant::now() < deadline, "billstream did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    (child, rx.try_iter().collect())
}

pub fn terminate(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "billstream did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn list_status(port: u16, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/billable_metrics"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn managed_postgres_running(data_dir: &Path) -> bool {
    let pid_file = data_dir.join("pg").join("postmaster.pid");
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

#[test]
fn bad_configuration_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("BILLSTREAM_LISTEN", "not-an-address"),
        ("DATABASE_URL", "mysql://nope"),
        ("LAGO_ORG_API_KEY", "short"),
        ("LAGO_API_URL", "ftp://x"),
        ("BILLSTREAM_MAX_BODY_BYTES", "ten"),
        ("BILLSTREAM_DB_MAX_CONNECTIONS", "0"),
        ("BILLSTREAM_CLICKHOUSE_URL", "tcp://nope"),
        ("BILLSTREAM_CLICKHOUSE_DATABASE", "no-dashes"),
        ("BILLSTREAM_KAFKA_PARTITIONS", "0"),
    ] {
        let out = billstream(dir.path(), 1).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
    // Scale mode without its servers names the missing one, before touching any database.
    let out = billstream(dir.path(), 1).env("BILLSTREAM_MODE", "scale").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LAGO_KAFKA_BOOTSTRAP_SERVERS"));
    let out = billstream(dir.path(), 1)
        .env("BILLSTREAM_MODE", "scale")
        .env("LAGO_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("BILLSTREAM_CLICKHOUSE_URL"));
    assert!(!dir.path().join("pg").exists(), "no database was started");
}

/// The README flow: first start creates the organization and prints its key once; the key works; Ctrl-C (here
/// SIGTERM) stops the server and its PostgreSQL; a second start reuses the data and the organization; `org create`
/// against the running server prints a key of a new organization.
#[tokio::test]
async fn managed_postgres_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    let (child, out) = start(billstream(dir.path(), port), port).await;
    let key_line = out.iter().position(|l| l.contains("API key")).expect("key announced");
    let key = out[key_line + 1].trim().to_owned();
    assert_eq!(key.len(), 36, "{out:?}");
    assert_eq!(list_status(port, &key).await, 200);
    assert_eq!(list_status(port, "wrong-key-123").await, 401);
    assert!(managed_postgres_running(dir.path()));

    // A second organization while the server (and so its PostgreSQL) runs.
    let created = billstream(dir.path(), port).args(["org", "create", "--name", "Acme"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let text = String::from_utf8_lossy(&created.stdout);
    let acme_key =
        text.lines().find_map(|l| l.strip_prefix("api key: ")).expect("org create prints a key").trim().to_owned();
    assert_eq!(list_status(port, &acme_key).await, 200);
    assert!(managed_postgres_running(dir.path()), "org create leaves the server's PostgreSQL running");

    assert!(terminate(child).success());
    assert!(!managed_postgres_running(dir.path()), "PostgreSQL stops with the server");

    let (child, out) = start(billstream(dir.path(), port), port).await;
    assert!(out.iter().all(|l| !l.contains(&key)), "the key is printed only once: {out:?}");
    assert_eq!(list_status(port, &key).await, 200);
    assert_eq!(list_status(port, &acme_key).await, 200);
    assert!(terminate(child).success());
}

#[tokio::test]
async fn existing_database_and_given_key() {
    let db = TestPostgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    let mut cmd = billstream(dir.path(), port);
    cmd.env("DATABASE_URL", db.url()).env("LAGO_ORG_API_KEY", "my-chosen-key-0001");
    let (child, out) = start(cmd, port).await;
    assert!(out.iter().all(|l| !l.contains("my-chosen-key-0001")), "a key given by the user is not echoed");
    assert_eq!(list_status(port, "my-chosen-key-0001").await, 200);
    assert!(!dir.path().join("pg").exists(), "no managed PostgreSQL with DATABASE_URL");
    assert!(terminate(child).success());
}
