//! Command line and configuration: one struct from flags and environment variables, Lago's variable names where Lago
//! has one. A bad value stops start-up with a message that names the variable and what is wrong with it.

use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "billstream", version, about = "Usage-based billing with a Lago-compatible API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Every role in one process (the default).
    All,
    /// The HTTP API, ingest included.
    Serve,
    /// The billing clock: invoices every subscription whose period ended.
    Worker,
    /// Scale mode: move events from the log into ClickHouse.
    Sink,
    /// Apply database migrations, then exit.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its API key.
    Create {
        #[arg(long)]
        name: String,
    },
    /// Print an organization (the default one, else `--id`) with its webhook HMAC key.
    Show {
        #[arg(long)]
        id: Option<uuid::Uuid>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "BILLSTREAM_LISTEN", default_value = "0.0.0.0:3000", value_parser = parse_listen, global = true)]
    pub listen: SocketAddr,

    /// Folder for local state; the managed PostgreSQL lives in `<data-dir>/pg`.
    #[arg(long, env = "BILLSTREAM_DATA_DIR", default_value = "./billstream-data", global = true)]
    pub data_dir: PathBuf,

    /// An existing PostgreSQL to use instead of the managed one.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_database_url, global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// The default organization's API key (else one is generated and printed once). BILLSTREAM_API_KEY also works.
    #[arg(long = "api-key", env = "LAGO_ORG_API_KEY", value_parser = parse_api_key, global = true, hide_env_values = true)]
    pub api_key: Option<String>,

    /// Public URL of this API (the `iss` of signed webhooks).
    #[arg(long, env = "LAGO_API_URL", default_value = "http://localhost:3000", value_parser = parse_api_url, global = true)]
    pub api_url: String,

    /// RSA private key of JWT-signed webhooks: base64 of a PEM (Lago's variable). Unset: one is generated once and
    /// kept in the database.
    #[arg(long, env = "LAGO_RSA_PRIVATE_KEY", global = true, hide_env_values = true)]
    pub rsa_private_key: Option<String>,

    #[command(flatten)]
    pub webhooks: WebhookConfig,

    #[command(flatten)]
    pub tracking: TrackingConfig,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BILLSTREAM_MAX_BODY_BYTES", default_value = "5242880", value_parser = parse_max_body, global = true)]
    pub max_body_bytes: usize,

    /// Most events in one `POST /api/v1/events/batch` (Lago's variable; Lago's default is 100).
    #[arg(long, env = "LAGO_EVENTS_BATCH_MAX_LENGTH", default_value = "100", value_parser = parse_batch_limit, global = true)]
    pub events_batch_limit: usize,

    /// Group-commit writes of events in flight at once (embedded mode). Fewer writes make bigger groups.
    #[arg(long, env = "BILLSTREAM_INGEST_MAX_INFLIGHT", default_value = "1", value_parser = parse_inflight, global = true)]
    pub ingest_max_inflight: usize,

    /// Seconds between two runs of the billing clock (the `worker` role).
    #[arg(long, env = "BILLSTREAM_BILLING_TICK_SECONDS", default_value = "60", value_parser = parse_tick, global = true)]
    pub billing_tick_seconds: u64,

    /// Size of the PostgreSQL connection pool.
    #[arg(long, env = "BILLSTREAM_DB_MAX_CONNECTIONS", default_value = "16", value_parser = parse_pool_size, global = true)]
    pub db_max_connections: u32,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `billstream=debug`.
    #[arg(long, env = "BILLSTREAM_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Name of the organization created on first start.
    #[arg(long, env = "BILLSTREAM_ORG_NAME", default_value = "Default", global = true)]
    pub default_org_name: String,

    #[command(flatten)]
    pub scale: ScaleConfig,
}

/// How webhooks are sent (the `worker` role).
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// Attempts per webhook before it is marked failed (Lago's variable and default).
    #[arg(long, env = "LAGO_WEBHOOK_ATTEMPTS", default_value = "3", value_parser = parse_attempts, global = true)]
    pub webhook_attempts: u32,

    /// Timeout of one webhook POST, in seconds (Lago's variable and default).
    #[arg(long, env = "LAGO_WEBHOOK_TIMEOUT_SECONDS", default_value = "30", value_parser = parse_webhook_timeout, global = true)]
    pub webhook_timeout_seconds: u64,

    /// The backoff unit in milliseconds: attempt n+1 waits (n⁴ + 2) units (Lago: one second).
    #[arg(long, env = "BILLSTREAM_WEBHOOK_BACKOFF_MS", default_value = "1000", value_parser = parse_millis, global = true)]
    pub webhook_backoff_ms: u64,

    /// Days before a subscription ends when `subscription.termination_alert` is sent, e.g. `1,15,45` (Lago's).
    #[arg(long, env = "LAGO_SUBSCRIPTION_TERMINATION_ALERT_SENT_AT_DAYS", default_value = "15,45", value_parser = parse_alert_days, global = true)]
    pub termination_alert_days: AlertDays,

    /// Milliseconds between two looks at the webhook outbox when nothing was due.
    #[arg(long, env = "BILLSTREAM_WEBHOOK_POLL_MS", default_value = "1000", value_parser = parse_millis, global = true)]
    pub webhook_poll_ms: u64,
}

/// Product usage tracking (opt-out; see the README's "Usage tracking").
#[derive(Debug, Clone, Args)]
pub struct TrackingConfig {
    /// Where tracking batches are POSTed (Segment's batch API format).
    #[arg(long, env = "BILLSTREAM_TRACKING_URL", default_value = billing::tracking::SEGMENT_BATCH_URL, value_parser = parse_tracking_url, global = true)]
    pub tracking_url: String,

    /// The Segment write key (basic-auth user). Without one (and none built in) tracking stays off.
    #[arg(long, env = "BILLSTREAM_TRACKING_WRITE_KEY", global = true, hide_env_values = true)]
    pub tracking_write_key: Option<String>,

    /// Seconds between two sends of the queued messages (a full batch goes at once).
    #[arg(long, env = "BILLSTREAM_TRACKING_FLUSH_SECONDS", default_value = "10", value_parser = parse_flush_seconds, global = true)]
    pub tracking_flush_seconds: f64,

    /// `true` turns tracking off (Lago's variable).
    #[arg(long, env = "LAGO_DISABLE_SEGMENT", global = true, hide = true)]
    pub lago_disable_segment: Option<String>,

    /// `true` turns tracking off.
    #[arg(long, env = "BILLSTREAM_DISABLE_TRACKING", global = true)]
    pub disable_tracking: Option<String>,

    /// `true` reports the hosting type `cloud` instead of `self` (Lago's variable).
    #[arg(long, env = "LAGO_CLOUD", global = true, hide = true)]
    pub lago_cloud: Option<String>,
}

/// A write key the release build may carry (`BILLSTREAM_TRACKING_DEFAULT_WRITE_KEY` at compile time).
const BUILT_IN_WRITE_KEY: Option<&str> = option_env!("BILLSTREAM_TRACKING_DEFAULT_WRITE_KEY");

fn is_true(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

impl TrackingConfig {
    /// The tracker's settings, or `None` when tracking is off: opted out, or no write key to send with.
    pub fn settings(&self) -> Option<billing::tracking::Settings> {
        if is_true(&self.lago_disable_segment) || is_true(&self.disable_tracking) {
            return None;
        }
        let key = self.tracking_write_key.clone().filter(|k| !k.is_empty()).or(BUILT_IN_WRITE_KEY.map(str::to_owned))?;
        let hosting = if is_true(&self.lago_cloud) { "cloud" } else { "self" };
        let every = std::time::Duration::from_secs_f64(self.tracking_flush_seconds);
        Some(billing::tracking::Settings::new(self.tracking_url.clone(), key, every, hosting))
    }
}

fn parse_tracking_url(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.to_owned())
    } else {
        Err(format!("BILLSTREAM_TRACKING_URL (--tracking-url): `{s}` is not an http(s) URL"))
    }
}

fn parse_flush_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.01..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "BILLSTREAM_TRACKING_FLUSH_SECONDS (--tracking-flush-seconds): `{s}` must be a number of seconds from 0.01 to 3600"
        )),
    }
}

/// A list of day counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDays(pub Vec<u32>);

fn parse_alert_days(s: &str) -> Result<AlertDays, String> {
    let days: Result<Vec<u32>, _> =
        s.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::parse::<u32>).collect();
    match days {
        Ok(d) if d.iter().all(|n| *n <= 3650) => Ok(AlertDays(d)),
        _ => Err(format!(
            "LAGO_SUBSCRIPTION_TERMINATION_ALERT_SENT_AT_DAYS: `{s}` must be day counts separated by commas, e.g. 15,45"
        )),
    }
}

/// A whole number within `range`, else an error naming the setting (`VARIABLE (--flag)`) and the range.
fn number_in<T>(s: &str, range: RangeInclusive<T>, setting: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display,
{
    match s.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("{setting}: `{s}` must be a number from {} to {}", range.start(), range.end())),
    }
}

fn parse_attempts(s: &str) -> Result<u32, String> {
    number_in(s, 1..=100, "LAGO_WEBHOOK_ATTEMPTS (--webhook-attempts)")
}

fn parse_webhook_timeout(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=600).contains(&n) => Ok(n),
        _ => Err(format!(
            "LAGO_WEBHOOK_TIMEOUT_SECONDS (--webhook-timeout-seconds): `{s}` must be a number of seconds from 1 to 600"
        )),
    }
}

fn parse_millis(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=3_600_000).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` must be a number of milliseconds from 1 to 3600000 (BILLSTREAM_WEBHOOK_*_MS)")),
    }
}

/// `embedded`: PostgreSQL only. `scale`: a Kafka-protocol log and ClickHouse for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Embedded,
    Scale,
}

/// Settings of scale mode (ignored in embedded mode).
#[derive(Debug, Clone, Args)]
pub struct ScaleConfig {
    /// `embedded` (PostgreSQL only) or `scale` (Kafka-protocol log + ClickHouse event store).
    #[arg(long, env = "BILLSTREAM_MODE", value_enum, default_value = "embedded", global = true)]
    pub mode: Mode,

    /// Kafka bootstrap servers, `host:port[,host:port]` (scale mode).
    #[arg(long, env = "LAGO_KAFKA_BOOTSTRAP_SERVERS", global = true)]
    pub kafka_bootstrap_servers: Option<String>,

    /// Topic of the event log (scale mode).
    #[arg(long, env = "BILLSTREAM_KAFKA_TOPIC", default_value = "billstream.events", global = true)]
    pub kafka_topic: String,

    /// Partitions of the event topic when Billstream creates it (scale mode).
    #[arg(long, env = "BILLSTREAM_KAFKA_PARTITIONS", default_value = "3", value_parser = parse_partitions, global = true)]
    pub kafka_partitions: i32,

    /// Extra librdkafka settings of the event producer, `key=value` pairs separated by commas, applied over
    /// Billstream's (e.g. `linger.ms=5,compression.type=lz4`); for tuning (scale mode).
    #[arg(long, env = "BILLSTREAM_KAFKA_PRODUCER_SETTINGS", default_value = "", value_parser = parse_producer_settings, global = true)]
    pub kafka_producer_settings: ProducerSettings,

    /// Consumer group of the sink (scale mode).
    #[arg(long, env = "BILLSTREAM_SINK_GROUP", default_value = "billstream-sink", global = true)]
    pub sink_group: String,

    /// Longest the sink waits, after a batch's first record, for more before writing it, unless the previous batch
    /// is still being written: then it goes on reading until that write ends (scale mode). Shorter means fresher
    /// data; longer means fewer, bigger ClickHouse inserts (each makes parts the server merges later).
    #[arg(long, env = "BILLSTREAM_SINK_MAX_WAIT_MS", default_value = "100", value_parser = parse_sink_wait, global = true)]
    pub sink_max_wait_ms: u64,

    /// Most stored event identities the sink remembers exactly, so that it need not ask ClickHouse whether an event
    /// is a retry (scale mode); about 50 bytes each, then eight times as many in Bloom filters at 2 bytes each. A
    /// subscription is remembered when its last day and hour fit.
    #[arg(long, env = "BILLSTREAM_SINK_MAX_REMEMBERED", default_value = "10000000", value_parser = parse_remembered, global = true)]
    pub sink_max_remembered: usize,

    /// ClickHouse HTTP URL, e.g. `http://127.0.0.1:8123` (scale mode).
    #[arg(long, env = "BILLSTREAM_CLICKHOUSE_URL", value_parser = parse_clickhouse_url, global = true)]
    pub clickhouse_url: Option<String>,

    /// ClickHouse database of the event tables, created when missing (scale mode).
    #[arg(long, env = "BILLSTREAM_CLICKHOUSE_DATABASE", default_value = "billstream", value_parser = parse_ch_database, global = true)]
    pub clickhouse_database: String,
}

impl ScaleConfig {
    /// The broker and ClickHouse addresses scale mode needs, or a message naming the missing variable.
    pub fn require(&self) -> Result<(String, String), String> {
        let kafka = self.kafka_bootstrap_servers.clone().filter(|s| !s.trim().is_empty()).ok_or(
            "LAGO_KAFKA_BOOTSTRAP_SERVERS (--kafka-bootstrap-servers): required in scale mode (BILLSTREAM_MODE=scale)",
        )?;
        let ch = self
            .clickhouse_url
            .clone()
            .ok_or("BILLSTREAM_CLICKHOUSE_URL (--clickhouse-url): required in scale mode (BILLSTREAM_MODE=scale)")?;
        Ok((kafka, ch))
    }
}

/// `key=value` librdkafka settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerSettings(pub Vec<(String, String)>);

fn parse_producer_settings(s: &str) -> Result<ProducerSettings, String> {
    let mut out = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            _ => {
                return Err(format!(
                    "BILLSTREAM_KAFKA_PRODUCER_SETTINGS (--kafka-producer-settings): `{pair}` is not key=value"
                ));
            }
        }
    }
    Ok(ProducerSettings(out))
}

fn parse_partitions(s: &str) -> Result<i32, String> {
    number_in(s, 1..=1000, "BILLSTREAM_KAFKA_PARTITIONS (--kafka-partitions)")
}

fn parse_sink_wait(s: &str) -> Result<u64, String> {
    number_in(s, 1..=60_000, "BILLSTREAM_SINK_MAX_WAIT_MS (--sink-max-wait-ms)")
}

fn parse_remembered(s: &str) -> Result<usize, String> {
    number_in(s, 0..=1_000_000_000, "BILLSTREAM_SINK_MAX_REMEMBERED (--sink-max-remembered)")
}

fn parse_clickhouse_url(s: &str) -> Result<String, String> {
    let ok = (s.starts_with("http://") || s.starts_with("https://")) && s.len() > "https://".len() && !s.contains(' ');
    if ok {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!(
            "BILLSTREAM_CLICKHOUSE_URL (--clickhouse-url): `{s}` is not an http(s) URL such as http://127.0.0.1:8123"
        ))
    }
}

fn parse_ch_database(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "BILLSTREAM_CLICKHOUSE_DATABASE (--clickhouse-database): `{s}` may hold only letters, digits and _"
        ))
    }
}

impl Config {
    /// The dispatcher's settings from this configuration.
    pub fn webhook_settings(&self) -> billing::webhooks::dispatcher::Settings {
        use std::time::Duration;
        let w = &self.webhooks;
        billing::webhooks::dispatcher::Settings {
            attempts: w.webhook_attempts,
            timeout: Duration::from_secs(w.webhook_timeout_seconds),
            backoff_unit: Duration::from_millis(w.webhook_backoff_ms),
            poll: Duration::from_millis(w.webhook_poll_ms),
            issuer: self.api_url.clone(),
            termination_alert_days: w.termination_alert_days.0.clone(),
            ..billing::webhooks::dispatcher::Settings::default()
        }
    }

    /// The default organization's key: `LAGO_ORG_API_KEY` (or `--api-key`), else `BILLSTREAM_API_KEY`.
    pub fn resolve_api_key(&self) -> Result<Option<String>, String> {
        if let Some(key) = &self.api_key {
            return Ok(Some(key.clone()));
        }
        match std::env::var("BILLSTREAM_API_KEY") {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => parse_api_key(&v).map(Some).map_err(|e| e.replace("LAGO_ORG_API_KEY", "BILLSTREAM_API_KEY")),
            Err(_) => Ok(None),
        }
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(s.trim()).map_err(|_| {
        format!("BILLSTREAM_LISTEN (--listen): `{s}` is not a socket address; expected host:port such as 0.0.0.0:3000")
    })
}

fn parse_database_url(s: &str) -> Result<String, String> {
    let hint = "expected postgres://user@host:port/db";
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err(format!("DATABASE_URL (--database-url): not a PostgreSQL URL; {hint}"));
    }
    sqlx::postgres::PgConnectOptions::from_str(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("DATABASE_URL (--database-url): cannot be parsed ({e}); {hint}"))
}

fn parse_api_key(s: &str) -> Result<String, String> {
    let ok = (8..=256).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(s.to_owned())
    } else {
        Err("LAGO_ORG_API_KEY (--api-key): an API key must be 8 to 256 printable ASCII characters without spaces"
            .into())
    }
}

fn parse_api_url(s: &str) -> Result<String, String> {
    let ok = (s.starts_with("http://") || s.starts_with("https://")) && s.len() > "https://".len() && !s.contains(' ');
    if ok {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!("LAGO_API_URL (--api-url): `{s}` is not an http(s) URL such as http://localhost:3000"))
    }
}

fn parse_max_body(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1024 => Ok(n),
        _ => {
            Err(format!("BILLSTREAM_MAX_BODY_BYTES (--max-body-bytes): `{s}` must be a whole number of bytes >= 1024"))
        }
    }
}

fn parse_batch_limit(s: &str) -> Result<usize, String> {
    number_in(s, 1..=100_000, "LAGO_EVENTS_BATCH_MAX_LENGTH (--events-batch-limit)")
}

fn parse_inflight(s: &str) -> Result<usize, String> {
    number_in(s, 1..=64, "BILLSTREAM_INGEST_MAX_INFLIGHT (--ingest-max-inflight)")
}

fn parse_tick(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        _ => Err(format!(
            "BILLSTREAM_BILLING_TICK_SECONDS (--billing-tick-seconds): `{s}` must be a number of seconds from 1 to 86400"
        )),
    }
}

fn parse_pool_size(s: &str) -> Result<u32, String> {
    number_in(s, 1..=1000, "BILLSTREAM_DB_MAX_CONNECTIONS (--db-max-connections)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_variable() {
        assert!(parse_listen("nope").unwrap_err().contains("BILLSTREAM_LISTEN"));
        assert!(parse_database_url("mysql://x").unwrap_err().contains("DATABASE_URL"));
        assert!(parse_api_key("short").unwrap_err().contains("LAGO_ORG_API_KEY"));
        assert!(parse_api_url("ftp://x").unwrap_err().contains("LAGO_API_URL"));
        assert!(parse_max_body("12").unwrap_err().contains("BILLSTREAM_MAX_BODY_BYTES"));
        assert!(parse_pool_size("0").unwrap_err().contains("BILLSTREAM_DB_MAX_CONNECTIONS"));
        assert!(parse_batch_limit("0").unwrap_err().contains("LAGO_EVENTS_BATCH_MAX_LENGTH"));
        assert!(parse_clickhouse_url("tcp://x").unwrap_err().contains("BILLSTREAM_CLICKHOUSE_URL"));
        assert!(parse_ch_database("a-b").unwrap_err().contains("BILLSTREAM_CLICKHOUSE_DATABASE"));
        assert!(parse_partitions("0").unwrap_err().contains("BILLSTREAM_KAFKA_PARTITIONS"));
        assert_eq!(
            parse_partitions("x").unwrap_err(),
            "BILLSTREAM_KAFKA_PARTITIONS (--kafka-partitions): `x` must be a number from 1 to 1000"
        );
        assert!(parse_sink_wait("0").unwrap_err().contains("BILLSTREAM_SINK_MAX_WAIT_MS"));
        assert_eq!(parse_sink_wait(" 250 ").unwrap(), 250);
        assert!(parse_remembered("-1").unwrap_err().contains("BILLSTREAM_SINK_MAX_REMEMBERED"));
        assert_eq!(parse_remembered("0").unwrap(), 0);
        assert_eq!(
            parse_producer_settings(" linger.ms=5, compression.type=lz4 ").unwrap(),
            ProducerSettings(vec![("linger.ms".into(), "5".into()), ("compression.type".into(), "lz4".into())])
        );
        assert_eq!(parse_producer_settings("").unwrap(), ProducerSettings::default());
        assert!(parse_producer_settings("linger.ms").unwrap_err().contains("not key=value"));
        assert!(parse_attempts("0").unwrap_err().contains("LAGO_WEBHOOK_ATTEMPTS"));
        assert!(parse_alert_days("1,x").unwrap_err().contains("LAGO_SUBSCRIPTION_TERMINATION_ALERT_SENT_AT_DAYS"));
        assert_eq!(parse_alert_days("1, 15,45").unwrap(), AlertDays(vec![1, 15, 45]));
        assert!(parse_webhook_timeout("x").unwrap_err().contains("LAGO_WEBHOOK_TIMEOUT_SECONDS"));
    }

    #[test]
    fn good_values_parse() {
        assert_eq!(parse_listen("127.0.0.1:3000").unwrap().port(), 3000);
        assert!(parse_database_url("postgres://postgres@127.0.0.1:5432/db").is_ok());
        assert_eq!(parse_api_url("http://localhost:3000/").unwrap(), "http://localhost:3000");
    }

    #[test]
    fn cli_parses_subcommands_with_global_flags() {
        let cli =
            Cli::try_parse_from(["billstream", "org", "create", "--name", "Acme", "--data-dir", "/tmp/x"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Org { command: OrgCommand::Create { ref name } }) if name == "Acme")
        );
        assert_eq!(cli.config.data_dir, PathBuf::from("/tmp/x"));
    }

    fn tracking(flags: &[&str]) -> TrackingConfig {
        let mut args = vec!["billstream"];
        args.extend_from_slice(flags);
        Cli::try_parse_from(args).unwrap().config.tracking
    }

    #[test]
    fn tracking_runs_with_a_write_key_unless_opted_out() {
        let on = tracking(&["--tracking-write-key", "k", "--tracking-flush-seconds", "0.5", "--lago-cloud", "true"]);
        let settings = on.settings().expect("a write key turns tracking on");
        assert_eq!(settings.url, "https://api.segment.io/v1/batch");
        assert_eq!(settings.flush_every, std::time::Duration::from_millis(500));
        assert_eq!(settings.sender.hosting_type, "cloud");
        for opt_out in [["--lago-disable-segment", "true"], ["--disable-tracking", "TRUE"]] {
            let mut flags = vec!["--tracking-write-key", "k"];
            flags.extend_from_slice(&opt_out);
            assert!(tracking(&flags).settings().is_none(), "{opt_out:?} turns tracking off");
        }
        assert!(tracking(&["--tracking-write-key", "k", "--disable-tracking", "false"]).settings().is_some());
        if BUILT_IN_WRITE_KEY.is_none() {
            assert!(tracking(&[]).settings().is_none(), "no key to send with: off");
        }
        assert!(parse_flush_seconds("0").unwrap_err().contains("BILLSTREAM_TRACKING_FLUSH_SECONDS"));
        assert!(parse_tracking_url("segment").unwrap_err().contains("BILLSTREAM_TRACKING_URL"));
    }
}
