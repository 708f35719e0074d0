//! Scale mode under faults, with the real binary: clients keep sending batches of events (retrying each batch until it
//! is acknowledged, as Lago's clients do) while a sink is SIGKILLed, the broker restarts, or ClickHouse stops for a
//! while. After recovery every event is stored exactly once, checked by transaction id. (SIGKILL of the serving
//! process is `events::scale::sigkill_during_load_loses_no_acknowledged_event`.)

use std::collections::HashSet;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use billstream::config::ScaleConfig;
use serde_json::{Value, json};
use testkit::{Broker, ClickHouseServer, TestDatabase};

use crate::binary::{billstream, start};
use crate::support::{StoreProbe, scale_env};

const KEY: &str = "fault-test-key-0001";
const BATCH: usize = 50;
const CLIENTS: usize = 4;

/// A child process killed when the test ends, however it ends (a panicking test must not leave servers behind).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The servers and settings of one fault test.
struct Setup {
    db: TestDatabase,
    dir: tempfile::TempDir,
    port: u16,
    config: ScaleConfig,
    probe: StoreProbe,
}

impl Setup {
    fn new(broker: &Broker, clickhouse: &'static ClickHouseServer) -> Setup {
        let database = clickhouse.database();
        let topic = broker.topic_name();
        let config = ScaleConfig {
            mode: billstream::config::Mode::Scale,
            kafka_bootstrap_servers: Some(broker.bootstrap()),
            kafka_topic: topic.clone(),
            kafka_partitions: 3,
            kafka_producer_settings: Default::default(),
            sink_group: format!("sink-{topic}"),
            sink_max_wait_ms: 100,
            sink_max_remembered: 2_000_000,
            clickhouse_url: Some(clickhouse.url()),
            clickhouse_database: database.clone(),
        };
        Setup {
            db: testkit::TestPostgres::shared().database(),
            dir: tempfile::tempdir().unwrap(),
            port: testkit::free_port().unwrap(),
            config,
            probe: StoreProbe::ClickHouse { server: clickhouse, database },
        }
    }

    /// `billstream <role>` in scale mode.
    fn command(&self, role: &str) -> std::process::Command {
        let mut cmd = billstream(self.dir.path(), self.port);
        cmd.arg(role).env("DATABASE_URL", self.db.url()).env("LAGO_ORG_API_KEY", KEY);
        scale_env(&mut cmd, &self.config);
        cmd
    }

    async fn start(&self, role: &str) -> Guard {
        Guard(start(self.command(role), self.port).await.0)
    }

    /// A sink process (it has no HTTP port to wait for).
    fn spawn_sink(&self) -> Guard {
        Guard(self.command("sink").spawn().expect("spawn the sink"))
    }
}

/// Clients sending batches until `stop`; each batch is resent until it is acknowledged. Returns the acknowledged
/// transaction ids.
fn load(port: u16, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..CLIENTS)
        .map(|c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let txs: Vec<String> = (0..BATCH).map(|i| format!("c{c}-b{n}-e{i}")).collect();
                    let events: Vec<Value> = txs
                        .iter()
                        .map(|t| {
                            json!({"transaction_id": t, "external_subscription_id": format!("sub-{c}-{}", n % 7),
                                   "code": "calls", "properties": {"n": 1}})
                        })
                        .collect();
                    loop {
                        let sent = client
                            .post(format!("http://127.0.0.1:{port}/api/v1/events/batch"))
                            .bearer_auth(KEY)
                            .json(&json!({"events": events}))
                            .timeout(Duration::from_secs(40))
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status() == 200) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    acked.extend(txs);
                    n += 1;
                }
                acked
            })
        })
        .collect()
}

async fn stop_load(stop: &AtomicBool, clients: Vec<tokio::task::JoinHandle<Vec<String>>>) -> Vec<String> {
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.expect("client"));
    }
    acked
}

/// Every acknowledged event stored, none twice, nothing else.
async fn check_exactly_once(probe: &StoreProbe, acked: &[String]) {
    let expected: HashSet<&str> = acked.iter().map(String::as_str).collect();
    assert_eq!(expected.len(), acked.len());
    let rows =
        probe.wait_for(Duration::from_secs(90), "acknowledged events missing", |txs| txs.len() >= expected.len()).await;
    let got: HashSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(rows.len(), got.len(), "an event is stored twice");
    assert_eq!(got, expected, "stored events differ from the acknowledged ones");
    assert_eq!(probe.doubles().await, 0, "an event is stored twice in events_enriched");
}

fn sigkill(child: &mut Guard) {
    std::process::Command::new("kill").arg("-KILL").arg(child.0.id().to_string()).status().unwrap();
    let _ = child.0.wait();
}

/// SIGTERM, and a clean exit within the timeout.
fn shut_down(guard: Guard) {
    let id = guard.0.id();
    let mut guard = guard;
    std::process::Command::new("kill").arg("-TERM").arg(id.to_string()).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while guard.0.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "billstream did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_sigkilled_mid_stream_and_restarted() {
    let setup = Setup::new(Broker::shared(), ClickHouseServer::shared());
    let serve = setup.start("serve").await;
    let mut sink = setup.spawn_sink();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(setup.port, stop.clone());
    setup.probe.wait_for(Duration::from_secs(60), "the sink did not start writing", |t| t.len() >= 1500).await;
    sigkill(&mut sink);
    // Load goes on into the log while no sink runs. The restart waits out the group's session timeout (6 s): tansu
    // 0.6 evicts a dead member only once its session has expired when the next one joins; a sink that joins earlier
    // shares the partitions with the dead member, whose share then waits (seen in this test: events left unread).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let sink = setup.spawn_sink();
    setup.probe.wait_for(Duration::from_secs(60), "load after restart", |t| t.len() >= 4000).await;
    let acked = stop_load(&stop, clients).await;
    check_exactly_once(&setup.probe, &acked).await;
    shut_down(sink);
    shut_down(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_mid_load() {
    let broker = Broker::start().expect("own broker");
    let setup = Setup::new(&broker, ClickHouseServer::shared());
    let all = setup.start("all").await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(setup.port, stop.clone());
    setup.probe.wait_for(Duration::from_secs(60), "load did not get going", |t| t.len() >= 1500).await;
    broker.stop().expect("stop the broker");
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart().expect("restart the broker");
    setup.probe.wait_for(Duration::from_secs(90), "load after the broker restart", |t| t.len() >= 4000).await;
    let acked = stop_load(&stop, clients).await;
    check_exactly_once(&setup.probe, &acked).await;
    shut_down(all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_stopped_for_a_while() {
    let clickhouse: &'static ClickHouseServer = Box::leak(Box::new(ClickHouseServer::start().expect("own ClickHouse")));
    let setup = Setup::new(Broker::shared(), clickhouse);
    let all = setup.start("all").await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(setup.port, stop.clone());
    setup.probe.wait_for(Duration::from_secs(60), "load did not get going", |t| t.len() >= 1500).await;
    clickhouse.stop().expect("stop ClickHouse");
    // Ingest keeps acknowledging (the broker has the events) while the sink retries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    clickhouse.restart().expect("restart ClickHouse");
    setup.probe.wait_for(Duration::from_secs(90), "load after the ClickHouse restart", |t| t.len() >= 4000).await;
    let acked = stop_load(&stop, clients).await;
    check_exactly_once(&setup.probe, &acked).await;
    shut_down(all);
}
