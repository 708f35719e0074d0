//! A throwaway Prometheus server (Debian's `prometheus` 2.42) scraping given loopback targets every second, with its
//! data in a temp folder; tests evaluate PromQL through its HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;
use crate::process::{Launch, Managed, find_binary, http, port_open, temp_root, wait_until, write_file};

const INSTALL_HINT: &str = "Prometheus not found: install it with `apt-get install -y --no-install-recommends prometheus` (scripts/setup.sh does it)";

pub struct PrometheusServer {
    _process: Managed,
    port: u16,
}

impl PrometheusServer {
    /// Starts a server that scrapes `targets` (`host:port`, path `/metrics`) every second.
    pub fn start(targets: &[String]) -> Result<PrometheusServer, Error> {
        let program = find_binary("prometheus", &[PathBuf::from("/usr/bin")])
            .ok_or_else(|| Error::Missing(INSTALL_HINT.into()))?;
        let root = temp_root("billstream-prom-")?;
        let port = crate::free_port()?;
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        write_file(
            &root.join("prometheus.yml"),
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: billstream\n    \
                 static_configs:\n      - targets: [{list}]\n"
            ),
        )?;
        let r = root.display();
        let launch = Launch {
            program,
            args: vec![
                format!("--config.file={r}/prometheus.yml"),
                format!("--storage.tsdb.path={r}/data"),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            cwd: root.clone(),
            log: root.join("prometheus.log"),
        };
        let process = Managed::new(root, launch)?;
        process.spawn()?;
        let ready = wait_until(Duration::from_secs(30), || {
            port_open(port) && http(port, "/-/ready", None).is_ok_and(|(s, _)| s == 200)
        });
        if !ready {
            return Err(Error::Failed(format!("Prometheus did not become ready:\n{}", process.log_tail())));
        }
        Ok(PrometheusServer { _process: process, port })
    }

    /// An instant query: the API's JSON answer, as text.
    pub fn query(&self, expr: &str) -> Result<String, Error> {
        let (status, body) = http(self.port, &format!("/api/v1/query?query={}", encode(expr)), None)?;
        if status == 200 { Ok(body) } else { Err(Error::Failed(format!("Prometheus ({status}) for `{expr}`: {body}"))) }
    }
}

/// Percent-encodes a query parameter (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(super::encode("sum(rate(x[1m])) by (le)"), "sum%28rate%28x%5B1m%5D%29%29%20by%20%28le%29");
    }
}
