#!/usr/bin/env bash
# Scale mode of load-tests/run.sh (`load-tests/run.sh scale`): starts tansu (SQLite) and ClickHouse in a temp folder,
# `billstream all` in scale mode (API + sink in one process, managed PostgreSQL for the catalog), everything on this
# machine, and prints:
# - batch ingest: acked events/s (k6, BATCH events per request, one subscription per request, so one record each);
# - event-to-queryable latency: a probe sends one event at a time during the batch run and polls ClickHouse (by
#   primary key) until it is there; p50/p99 of acknowledged -> visible; during the batch run at the maximum, during
#   a steady open-model load at STEADY_SHARE (default 0.7) of that maximum, and alone once the sink has caught up;
# - the reference of the same run: the broker's own rate for the same records (same size, same keys, idempotent,
#   acks=all, same linger) produced by librdkafka alone (confluent-kafka from PyPI), and the ratio.
# Called by run.sh with its settings (DURATION, BATCH_VUS, BATCH) and helpers already set up.
set -euo pipefail

setup_scale
"$VENV/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$VENV/bin/pip" install -q confluent-kafka
# nginx (Debian's nginx-light) serves the load generator's ceiling run below.
command -v nginx >/dev/null || { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }; }
PY="$VENV/bin/python"
cargo build --release --bin billstream
BIN="$CARGO_TARGET_DIR/release/billstream"
TANSU="$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")"

WORK="$(mktemp -d /tmp/billstream-load-scale.XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"; BROKER_PORT="$(free_port)"; CH_PORT="$(free_port)"; CH_TCP="$(free_port)"; CH_INTER="$(free_port)"
KEY="load-test-key-$(date +%s)"
CH="$WORK/clickhouse"
mkdir -p "$WORK/tansu" "$CH"/{data,tmp,user_files,format_schemas,log}
cat >"$CH/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$CH/log/server.log</log><errorlog>$CH/log/error.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host><http_port>$CH_PORT</http_port><tcp_port>$CH_TCP</tcp_port>
    <interserver_http_port>$CH_INTER</interserver_http_port>
    <path>$CH/data/</path><tmp_path>$CH/tmp/</tmp_path><user_files_path>$CH/user_files/</user_files_path>
    <format_schema_path>$CH/format_schemas/</format_schema_path><users_config>$CH/users.xml</users_config>
    <default_profile>default</default_profile><default_database>default</default_database><timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
cat >"$CH/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex><profiles><default></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default></default></quotas></yandex>
XML
clickhouse-server --config-file="$CH/config.xml" >"$CH/log/stdout.log" 2>&1 &
CH_PID=$!
(cd "$WORK/tansu" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" --storage-engine sqlite://tansu.db) >"$WORK/tansu/broker.log" 2>&1 &
BROKER_PID=$!
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && { kill -INT "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
    [ -f "$WORK/nginx/nginx.pid" ] && { kill -QUIT "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true; }
    kill -TERM "$BROKER_PID" "$CH_PID" 2>/dev/null || true
    wait "$BROKER_PID" "$CH_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$CH_PORT/ping" >/dev/null && break; sleep 0.1; done

BILLSTREAM_MODE=scale LAGO_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" BILLSTREAM_CLICKHOUSE_URL="http://127.0.0.1:$CH_PORT" \
    "$BIN" --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --api-key "$KEY" --log warn \
    --events-batch-limit 10000 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$WORK/server.err"; exit 1; }
curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/billable_metrics" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' \
    -d '{"billable_metric": {"name": "API calls", "code": "api_calls", "aggregation_type": "sum_agg", "field_name": "gb"}}' \
    >/dev/null

# A value of Billstream's /metrics (an unlabelled series).
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
# "a / b" as a whole percentage.
pct() { python3 -c "print(f'{$1 / max($2, 1) * 100:.0f}%')"; }

# Waits (up to two minutes) until the sink's consumer group has read the whole log.
wait_caught_up() {
    for _ in $(seq 1 600); do
        LAG="$(metric billstream_sink_lag_events)"
        [ "${LAG:-1}" = "0" ] && return
        sleep 0.2
    done
}

# The probe: one event at a time on its own subscription; acknowledged -> found in ClickHouse by primary key.
cat >"$WORK/probe.py" <<'PY'
import json, sys, time, urllib.request, urllib.parse
port, key, ch, seconds, out = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
org = urllib.request.urlopen(f"{ch}/?query=" + urllib.parse.quote(
    "SELECT organization_id FROM billstream.events_raw LIMIT 1")).read().decode().strip()
lat, end, n = [], time.time() + seconds, 0
while time.time() < end:
    n += 1
    tx = f"probe-{time.time_ns()}-{n}"
    body = json.dumps({"event": {"transaction_id": tx, "external_subscription_id": "probe", "code": "api_calls",
                                 "properties": {"gb": "1"}}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        urllib.request.urlopen(req, timeout=30).read()
    except Exception:
        continue
    acked = time.time()
    q = urllib.parse.quote(f"SELECT count() FROM billstream.events_raw WHERE organization_id = '{org}' "
                           f"AND external_subscription_id = 'probe' AND transaction_id = '{tx}'")
    while urllib.request.urlopen(f"{ch}/?query={q}").read().strip() != b"1":
        if time.time() - acked > 30:
            break
        # Polling every 20 ms: faster polls cost ClickHouse CPU the pipeline under test then lacks.
        time.sleep(0.02)
    lat.append(time.time() - acked)
    time.sleep(0.05)
lat.sort()
pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
open(out, "w").write(f"{len(lat)} {pick(0.5):.0f} {pick(0.99):.0f} {lat[-1]*1000 if lat else float('nan'):.0f}")
PY

# The reference: the same records (BATCH events of one subscription, Billstream's binary record layout of
# ingest/src/record.rs and the same size, 500 keys) produced by librdkafka alone with Billstream's producer settings,
# into a topic of its own.
cat >"$WORK/reference.py" <<'PY'
import json, struct, sys, time, uuid
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, seconds, batch = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
# The admin client must outlive the request: dropped at once, it cancels the creation.
admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic("load.reference", 3, 1)]).values():
    future.result(30)
org = uuid.UUID(int=42)
props = json.dumps({"gb": "12.5", "region": "eu-west-1", "operation": "write"}, separators=(",", ":")).encode()
now = int(time.time() * 1e6)
def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
def text(b):
    return varint(len(b)) + b
def record(i):
    out = bytearray(b"\x01") + org.bytes + text(f"sub_{i % 500}".encode()) + varint(batch)
    for j in range(batch):
        out += text(f"batch-{i}-{j}-xxxxxxxxxx".encode()) + text(b"api_calls") + struct.pack("<q", now)
        out += text(props) + b"\x00" + struct.pack("<q", now)
    return bytes(out)
payloads = [record(i) for i in range(500)]
keys = [org.bytes + f"sub_{i}".encode() for i in range(500)]
p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20,
              "batch.num.messages": 10000, "batch.size": 4000000, "compression.type": "none",
              "queue.buffering.max.messages": 1000000, "message.max.bytes": 10000000})
acked = [0]
def done(err, msg):
    if err is None:
        acked[0] += 1
start, i = time.time(), 0
while time.time() - start < seconds:
    try:
        p.produce("load.reference", payloads[i % 500], key=keys[i % 500], on_delivery=done)
        i += 1
    except BufferError:
        p.poll(0.01)
    if i % 100 == 0:
        p.poll(0)
p.flush(120)
elapsed = time.time() - start
print(f"{acked[0] / elapsed:.0f} {acked[0] * batch / elapsed:.0f} {len(payloads[0])}")
PY

# ClickHouse's own cost of the sink's writes: rows shaped as the run's (32 subscriptions, 100 events of one per
# request, the same properties), in blocks of the sink's average flush, each block sorted in the table's key order
# and sent as RowBinary to copies of the two tables in a database of their own, one insert after the other as the
# sink does. All blocks are built before the first insert; the caller counts ClickHouse's CPU until merges end.
cat >"$WORK/clickhouse_reference.py" <<'PY'
import struct, sys, time, urllib.parse, urllib.request
url, total, per_block = sys.argv[1], int(sys.argv[2]), max(100, int(sys.argv[3]))
def text(s):
    b = s.encode()
    n, out = len(b), bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + b
org = "00000000-0000-0000-0000-00000000002a"
props = '{"gb":"12.5","region":"eu-west-1","operation":"write"}'
value = struct.pack("<q", 12_500_000_000) + struct.pack("<q", 0)  # Decimal(38, 9) 12.5 as a little-endian i128
start = int(time.time() * 1e6)
blocks, request = [], 0
for first in range(0, total, per_block):
    events = []
    for i in range(first, min(total, first + per_block)):
        if i % 100 == 0:
            request += 1
        ts = start + request * 1000
        events.append((f"sub_{request % 32}", f"ref-{request % 32}-{request}-{i % 100}", ts))
    raw = b"".join(text(org) + text(s) + text(t) + text("api_calls") + struct.pack("<q", ts) + text(props) + b"\x01"
                   + struct.pack("<q", ts + 500) + struct.pack("<Q", 2**64 - 1 - ts) for s, t, ts in sorted(events))
    enriched = b"".join(text(org) + text(s) + text("api_calls") + struct.pack("<q", ts) + text(t) + text(props)
                        + b"\x01" + struct.pack("<q", ts + 500) + b"\x00" + value + text("")
                        for s, t, ts in sorted(events, key=lambda e: (e[0], e[2], e[1])))
    blocks.append((raw, enriched))
def post(sql, body=b""):
    urllib.request.urlopen(urllib.request.Request(f"{url}/?query={urllib.parse.quote(sql)}", body, method="POST")).read()
post("CREATE DATABASE IF NOT EXISTS loadref")
for table in ("events_raw", "events_enriched"):
    post(f"CREATE TABLE loadref.{table} AS billstream.{table}")
began = time.time()
for raw, enriched in blocks:
    post("INSERT INTO loadref.events_raw FORMAT RowBinary", raw)
    post("INSERT INTO loadref.events_enriched FORMAT RowBinary", enriched)
print(f"{total / (time.time() - began):.0f}")
PY

echo "warming up..."
k6run warmup ENDPOINT=batch VUS=4 DURATION=5s BATCH="$BATCH"
SECS="${DURATION%s}"
echo "batch ingest: $BATCH_VUS clients, $BATCH events per request, $DURATION, with the latency probe"
"$PY" "$WORK/probe.py" "$PORT" "$KEY" "http://127.0.0.1:$CH_PORT" "$SECS" "$WORK/probe.out" &
PROBE=$!
k6run batch ENDPOINT=batch VUS="$BATCH_VUS" DURATION="$DURATION" BATCH="$BATCH"
wait "$PROBE" || true
read -r B_REQS B_EVENTS B_P50 B_P99 B_FAIL <<<"$(summary batch "$BATCH")"
read -r P_N P_P50 P_P99 P_MAX <<<"$(cat "$WORK/probe.out" 2>/dev/null || echo "0 nan nan nan")"
# The sink may still be behind after the batch run: the latency alone is measured once it has caught up.
DRAIN_START=$(date +%s.%N)
wait_caught_up
DRAIN=$(python3 -c "print(f'{$(date +%s.%N) - $DRAIN_START:.1f}')")
# Latency at a steady load below the maximum (open model: requests start at a fixed rate whatever the responses),
# as a deployment with headroom runs: at the maximum every queue on the two shared cores is full by construction.
STEADY_REQS=$(python3 -c "print(max(1, int($B_REQS * ${STEADY_SHARE:-0.7})))")
echo "batch ingest at a steady $STEADY_REQS requests/s (${STEADY_SHARE:-0.7} of the maximum), with the latency probe"
"$PY" "$WORK/probe.py" "$PORT" "$KEY" "http://127.0.0.1:$CH_PORT" "$SECS" "$WORK/probe-steady.out" &
PROBE=$!
k6run steady ENDPOINT=batch RATE="$STEADY_REQS" VUS="$BATCH_VUS" DURATION="$DURATION" BATCH="$BATCH"
wait "$PROBE" || true
read -r S_REQS S_EVENTS S_P50 S_P99 S_FAIL <<<"$(summary steady "$BATCH")"
read -r SP_N SP_P50 SP_P99 SP_MAX <<<"$(cat "$WORK/probe-steady.out" 2>/dev/null || echo "0 nan nan nan")"
wait_caught_up
echo "event-to-queryable latency alone (no other load, sink caught up after ${DRAIN} s), $DURATION"
"$PY" "$WORK/probe.py" "$PORT" "$KEY" "http://127.0.0.1:$CH_PORT" "$SECS" "$WORK/probe-idle.out"
read -r I_N I_P50 I_P99 I_MAX <<<"$(cat "$WORK/probe-idle.out")"
echo "reference: librdkafka alone producing the same records, $DURATION"
T0="$(ticks "$BROKER_PID")"; W0="$(date +%s.%N)"
read -r R_RECORDS R_EVENTS R_BYTES <<<"$("$PY" "$WORK/reference.py" "127.0.0.1:$BROKER_PORT" "$SECS" "$BATCH")"
TANSU_CORES="$(python3 -c "print(f'{($(ticks "$BROKER_PID") - $T0) / $HZ / ($(date +%s.%N) - $W0):.2f}')")"

# The load generator's own ceiling on this machine: the same k6 script and clients against nginx (one worker)
# answering every request with the bytes Billstream answered one such request with. With the CPU per event of k6
# there and of tansu in the reference, it bounds what any pipeline holding both on these cores can reach.
echo "ceiling: the same k6 clients against nginx serving a recorded response, $DURATION"
mkdir -p "$WORK/nginx/www/api/v1/events"
chmod 711 "$WORK" # nginx's worker runs as nobody when started by root
touch "$WORK/nginx/www/api/v1/events/batch"
python3 - "$BATCH" >"$WORK/nginx/request.json" <<'PY'
import json, sys, time
now = int(time.time())
print(json.dumps({"events": [{"transaction_id": f"ceiling-{i}", "external_subscription_id": "sub_0", "code": "api_calls",
                              "properties": {"gb": "12.5", "region": "eu-west-1", "operation": "write"},
                              "timestamp": now} for i in range(int(sys.argv[1]))]}))
PY
curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/events/batch" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary "@$WORK/nginx/request.json" -o "$WORK/nginx/www/response.json"
NGINX_PORT="$(free_port)"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 100000000;
    client_body_temp_path $WORK/nginx/body;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/nginx/www;
        client_body_buffer_size 1m;
        client_max_body_size 10m;
        # The static module refuses POST (405); the error page answers it with the recorded response.
        location /api/ { error_page 405 =200 /response.json; }
    }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done
W0="$(date +%s.%N)"
k6run ceiling BASE_URL="http://127.0.0.1:$NGINX_PORT" ENDPOINT=batch VUS="$BATCH_VUS" DURATION="$DURATION" BATCH="$BATCH"
K6_CORES="$(python3 -c "print(f'{$(cat "$WORK/ceiling.k6cpu") / ($(date +%s.%N) - $W0):.2f}')")"
kill -QUIT "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
read -r C_REQS C_EVENTS C_P50 C_P99 C_FAIL <<<"$(summary ceiling "$BATCH")"
# CPU seconds per event of k6 (at its ceiling) and tansu (in the reference), summed; cores over that: events/s with
# nothing else on the machine.
K6_TANSU_PER_EVENT="$(python3 -c "print($K6_CORES / max($C_EVENTS, 1) + $TANSU_CORES / max($R_EVENTS, 1))")"
BOUND="$(python3 -c "print(f'{$(nproc) / $K6_TANSU_PER_EVENT:.0f}')")"

# Waits (up to a minute) until ClickHouse runs no merge.
merges_done() {
    for _ in $(seq 1 300); do
        [ "$(curl -s "http://127.0.0.1:$CH_PORT/" --data-binary "SELECT count() FROM system.merges")" = "0" ] && return
        sleep 0.2
    done
}
echo "reference: ClickHouse inserting rows of the same shape in the sink's block size, then merging them"
ROWS_SUM="$(metric billstream_sink_batch_rows_sum)"; FLUSHES="$(metric billstream_sink_batch_rows_count)"
PER_FLUSH="$(python3 -c "print(int(${ROWS_SUM:-0} / max(${FLUSHES:-0}, 1)) or 5000)")"
REF_ROWS="${CH_REF_ROWS:-1000000}"
merges_done
CH0="$(ticks "$CH_PID")"
CH_INSERT_RATE="$("$PY" "$WORK/clickhouse_reference.py" "http://127.0.0.1:$CH_PORT" "$REF_ROWS" "$PER_FLUSH")"
merges_done
CH_CPU="$(python3 -c "print(f'{($(ticks "$CH_PID") - $CH0) / $HZ:.1f}')")"
# With ClickHouse's CPU per event added: what k6, tansu and ClickHouse alone leave room for.
BOUND3="$(python3 -c "print(f'{$(nproc) / ($K6_TANSU_PER_EVENT + $CH_CPU / $REF_ROWS):.0f}')")"
STORED="$(curl -s "http://127.0.0.1:$CH_PORT/" --data-binary "SELECT count() FROM billstream.events_enriched")"
# Parts ClickHouse wrote from inserts, and how many of them came already in key order (it then skips sorting).
PARTS="$(curl -s "http://127.0.0.1:$CH_PORT/" --data-binary "SELECT sumIf(value, event = 'MergeTreeDataWriterBlocks'),
    sumIf(value, event = 'MergeTreeDataWriterBlocksAlreadySorted') FROM system.events" | tr '\t' ' ')"
SINK="$(curl -s "http://127.0.0.1:$PORT/metrics" | python3 -c '
import sys
v = {}
for line in sys.stdin:
    if line.startswith(("billstream_sink_batch_rows_", "billstream_sink_flush_duration_seconds_")) and "{" not in line:
        name, value = line.split()
        v[name] = float(value)
n = v.get("billstream_sink_batch_rows_count", 0)
rows = v.get("billstream_sink_batch_rows_sum", 0)
secs = v.get("billstream_sink_flush_duration_seconds_sum", 0)
if n:
    print(f"{n:.0f} sink flushes, {rows / n:.0f} events and {secs / n * 1000:.0f} ms per flush on average")
')"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cat <<EOF

Billstream ingest load test (scale mode), $(date -u +%Y-%m-%dT%H:%MZ)
machine: $(nproc) cores ($CPU), $(free -g | awk '/Mem:/{print $2}') GiB; billstream (API + sink), tansu (SQLite),
ClickHouse 18.16, PostgreSQL and the clients all on the same machine

| measure | value |
|---|---|
| batch: acked events/s ($BATCH per request, $BATCH_VUS clients) | $B_EVENTS |
| batch: requests/s, p50 / p99 ms, failed % | $B_REQS, $B_P50 / $B_P99, $B_FAIL |
| event acked -> visible in ClickHouse, under the batch load: p50 / p99 / max ms ($P_N probes) | $P_P50 / $P_P99 / $P_MAX |
| sink caught up with the log after the batch run in (s) | $DRAIN |
| steady batch load: acked events/s, p50 / p99 ms, failed % | $S_EVENTS, $S_P50 / $S_P99, $S_FAIL |
| event acked -> visible in ClickHouse, under the steady load: p50 / p99 / max ms ($SP_N probes) | $SP_P50 / $SP_P99 / $SP_MAX |
| event acked -> visible in ClickHouse, no other load: p50 / p99 / max ms ($I_N probes) | $I_P50 / $I_P99 / $I_MAX |
| reference: librdkafka alone, same records ($R_BYTES bytes, $BATCH events each): records/s, events/s | $R_RECORDS, $R_EVENTS |
| batch ingest / reference | $(pct "$B_EVENTS" "$R_EVENTS") |
| tansu's CPU during the reference (cores) | $TANSU_CORES |
| ceiling: the same k6 clients against nginx serving a recorded response: events/s, k6's CPU (cores) | $C_EVENTS, $K6_CORES |
| bound with k6 and tansu alone on these cores ($(nproc) / their CPU per event, summed): events/s, share of the reference | $BOUND, $(pct "$BOUND" "$R_EVENTS") |
| batch ingest / that bound | $(pct "$B_EVENTS" "$BOUND") |
| ClickHouse alone: $REF_ROWS rows into both tables in blocks of $PER_FLUSH: rows/s while inserting, CPU seconds until merged | $CH_INSERT_RATE, $CH_CPU |
| bound with k6, tansu and ClickHouse alone on these cores: events/s, share of the reference | $BOUND3, $(pct "$BOUND3" "$R_EVENTS") |
| batch ingest / that bound | $(pct "$B_EVENTS" "$BOUND3") |
| events in events_enriched | $STORED |
| ClickHouse parts written by inserts, of which already in key order | $PARTS |

$SINK
EOF
