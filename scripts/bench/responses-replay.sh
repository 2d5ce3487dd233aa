#!/usr/bin/env bash
# Benchmark: replaying a two-turn Responses API call with an MCP tool (initialize, tools/list,
# model turn, tools/call, model turn, session end, storage) through the server, against a plain
# chat replay. Runs `stack run starter` (release build) in replay mode from recordings/ with no
# model and no MCP server running, REQUESTS of each kind interleaved, and prints p50/p95/mean in ms
# and the ratio. Target (issue 8): the MCP response costs at most 3x a plain chat.
#
# Usage: scripts/bench/responses-replay.sh [REQUESTS=300]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQUESTS="${1:-300}"
PORT="${STACK_PORT:-8396}"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
cargo build -q --release --features replay --bin stack
DB_DIR="$(mktemp -d)"
trap 'stop_stack; rm -rf "$DB_DIR"' EXIT
start_stack "$ROOT/target/release/stack" "$PORT" "$ROOT/target/bench-responses.log" \
  LLAMA_STACK_TEST_INFERENCE_MODE=replay LLAMACPP_URL=http://127.0.0.1:8080 SQLITE_STORE_DIR="$DB_DIR"
python3 "$ROOT/scripts/bench/responses_replay.py" "$PORT" "$REQUESTS"
