#!/usr/bin/env bash
# One command to run Billstream locally in its embedded mode: installs what is missing, builds the release binary and
# starts it on port 3000 with a managed PostgreSQL in ./billstream-data. Ctrl-C stops both. Extra arguments and the
# environment variables of the README are passed on, e.g. `scripts/run.sh --listen 127.0.0.1:4000`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/billstream/target}"
cargo build --release --bin billstream
exec "$CARGO_TARGET_DIR/release/billstream" "$@"
