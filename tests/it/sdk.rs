//! Lago's official Python client (`lago-python-client` from PyPI) against the real `billstream` binary: the SDK
//! flow of the catalog issue must succeed unchanged. The client lives in a virtualenv that `scripts/setup.sh`
//! creates; without it this test fails and says how to make it.

use std::path::PathBuf;
use std::process::Command;

use testkit::TestPostgres;

use crate::binary::{billstream, start, terminate};

/// The virtualenv's python: `BILLSTREAM_PYTHON`, else `$HOME/.cache/billstream/venv/bin/python`.
fn venv_python() -> PathBuf {
    if let Ok(p) = std::env::var("BILLSTREAM_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/billstream/venv/bin/python")
}

#[tokio::test]
async fn lago_python_client_flow() {
    let python = venv_python();
    let has_client =
        Command::new(&python).args(["-c", "import lago_python_client"]).output().is_ok_and(|o| o.status.success());
    assert!(
        has_client,
        "{} cannot import lago_python_client: run scripts/setup.sh (it creates the virtualenv and installs \
         lago-python-client), or point BILLSTREAM_PYTHON at a python that has it",
        python.display()
    );

    let db = TestPostgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    let key = "sdk-flow-key-0001";
    let mut cmd = billstream(dir.path(), port);
    cmd.env("DATABASE_URL", db.url()).env("LAGO_ORG_API_KEY", key);
    let (child, _) = start(cmd, port).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/lago_client_flow.py");
    let out = Command::new(&python)
        .arg(script)
        .env("LAGO_API_URL", format!("http://127.0.0.1:{port}"))
        .env("LAGO_API_KEY", key)
        .output()
        .expect("run the python client");
    assert!(terminate(child).success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Lago client flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("every call succeeded"), "{stdout}");
}
