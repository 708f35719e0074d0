#!/usr/bin/env bash
# One command to run every test: installs what the tests need, then runs the whole workspace's tests. The tests
# start their own throwaway servers; nothing needs to run beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_python_client
setup_scale
setup_observability
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billstream/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --workspace --all-targets "$@"
