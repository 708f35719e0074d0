#!/usr/bin/env bash
# Installs what Billstream needs on Debian/Ubuntu when it is missing: PostgreSQL's server, a C toolchain, curl, and
# the Rust toolchain (through rustup). Safe to run again: it only installs what is absent.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need_apt+=(postgresql)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
command -v runuser >/dev/null || need_apt+=(util-linux)

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Debian's postgresql package may start a cluster service on port 5432; Billstream never uses it (it runs its own
# server in its data folder), so it is left as the system has it.

if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "setup: installing the Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi

# The SDK compatibility test runs Lago's official Python client (lago-python-client from PyPI) from a virtualenv.
# `setup_python_client` creates it when missing; scripts/test.sh calls it.
BILLSTREAM_VENV="${BILLSTREAM_VENV:-$HOME/.cache/billstream/venv}"
setup_python_client() {
    local need=()
    command -v python3 >/dev/null || need+=(python3)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: installing ${need[*]}"
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    if ! "$BILLSTREAM_VENV/bin/python" -c 'import lago_python_client' >/dev/null 2>&1; then
        echo "setup: installing lago-python-client into $BILLSTREAM_VENV"
        python3 -m venv "$BILLSTREAM_VENV"
        "$BILLSTREAM_VENV/bin/pip" install -q --disable-pip-version-check lago-python-client
    fi
    export BILLSTREAM_PYTHON="$BILLSTREAM_VENV/bin/python"
}

# Scale mode's servers: Debian's ClickHouse 18.16, the build tools of librdkafka (bundled by the rdkafka crate:
# cmake, curl and zlib headers), and the tansu broker from crates.io (about ten minutes to build on 2 cores, once;
# cargo keeps the binary in ~/.cargo/bin). `setup_scale` installs what is missing; scripts/test.sh calls it.
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
setup_scale() {
    local need=()
    command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server)
    command -v clickhouse-client >/dev/null || need+=(clickhouse-client)
    command -v cmake >/dev/null || need+=(cmake)
    [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
    [ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: installing ${need[*]}"
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    if ! command -v tansu >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
        echo "setup: building the tansu broker $TANSU_VERSION (cargo install, about ten minutes)"
        # Its own target folder, so the workspace's build cache is not mixed with it; SQLite storage (libsql) is
        # what the tests use, dynostore adds the in-memory engine.
        CARGO_TARGET_DIR="$HOME/.cache/billstream/tansu-build" \
            cargo install tansu --version "$TANSU_VERSION" --locked --features libsql,dynostore
    fi
}

# The observability test: Debian's Prometheus (it scrapes a running Billstream and evaluates every dashboard query)
# and docker-compose (it validates docker-compose.yml without a Docker daemon). `setup_observability` installs what is
# missing; scripts/test.sh calls it.
setup_observability() {
    local need=()
    command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || need+=(prometheus)
    command -v docker-compose >/dev/null || need+=(docker-compose)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: installing ${need[*]}"
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}
