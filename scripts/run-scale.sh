#!/usr/bin/env bash
# One command to run Billstream locally in scale mode: installs what is missing (ClickHouse, the tansu broker, build
# tools), builds the release binary, starts tansu (SQLite storage) and ClickHouse on loopback with their data in
# ./billstream-data, then `billstream all` (HTTP API + sink) with its managed PostgreSQL, on port 3000.
# Ctrl-C stops everything. Ports: BROKER_PORT (default 19092), CLICKHOUSE_PORT (HTTP, default 18123).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_scale
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billstream/target}"
cargo build --release --bin billstream

DATA="$(pwd)/${BILLSTREAM_DATA_DIR:-billstream-data}"
BROKER_PORT="${BROKER_PORT:-19092}"
CLICKHOUSE_PORT="${CLICKHOUSE_PORT:-18123}"
CH_TCP_PORT=$((CLICKHOUSE_PORT + 1))
CH_INTER_PORT=$((CLICKHOUSE_PORT + 2))
TANSU="$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")"
mkdir -p "$DATA/tansu" "$DATA/clickhouse"/{data,tmp,user_files,format_schemas,log}

CH="$DATA/clickhouse"
cat >"$CH/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$CH/log/server.log</log><errorlog>$CH/log/error.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CLICKHOUSE_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <interserver_http_port>$CH_INTER_PORT</interserver_http_port>
    <path>$CH/data/</path>
    <tmp_path>$CH/tmp/</tmp_path>
    <user_files_path>$CH/user_files/</user_files_path>
    <format_schema_path>$CH/format_schemas/</format_schema_path>
    <users_config>$CH/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
cat >"$CH/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default></default></quotas>
</yandex>
XML

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

clickhouse-server --config-file="$CH/config.xml" >"$CH/log/stdout.log" 2>&1 &
pids+=($!)
(cd "$DATA/tansu" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" --storage-engine sqlite://tansu.db) \
    >"$DATA/tansu/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$CLICKHOUSE_PORT/ping" >/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break
    sleep 0.1
done

export BILLSTREAM_MODE=scale
export LAGO_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT"
export BILLSTREAM_CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_PORT"
export BILLSTREAM_DATA_DIR="$DATA"
"$CARGO_TARGET_DIR/release/billstream" "$@" &
pids+=($!)
wait "${pids[-1]}"
