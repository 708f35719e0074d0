#!/usr/bin/env bash
# Fuzzes the event parser with cargo-fuzz (libFuzzer) for a bounded time: scripts/fuzz.sh [seconds, default 60].
# cargo-fuzz needs nightly-only sanitizer flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
SECONDS_TO_RUN="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billstream/target}-fuzz"
CORPUS="$(mktemp -d /tmp/billstream-fuzz.XXXXXX)"
cd fuzz
# New inputs go to a scratch corpus; the committed seeds are only read.
cargo fuzz run parse_events "$CORPUS" seeds/parse_events -- -max_total_time="$SECONDS_TO_RUN" -max_len=65536
