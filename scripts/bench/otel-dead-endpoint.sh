#!/usr/bin/env bash
# Benchmark: does an OTLP endpoint where nothing listens slow the stack? (Llama Stack lost 20+
# minutes a replay run to this.) Runs `stack run starter` in replay mode from recordings/ with
# (a) no OTEL_* configuration, (b) OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 (closed port),
# interleaved ROUNDS times, REQUESTS plain + REQUESTS streamed chats per round, and prints the
# per-request latency (p50/p95/mean, ms) and the time the server takes to exit on SIGTERM.
#
# Usage: scripts/bench/otel-dead-endpoint.sh [REQUESTS=300] [ROUNDS=3]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQUESTS="${1:-300}"
ROUNDS="${2:-3}"
PORT="${STACK_PORT:-8397}"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# Set before any stack starts: a round that fails (the start, the client) leaves no stack behind.
trap stop_stack EXIT
cargo build -q --release --features replay --bin stack
BIN="$ROOT/target/release/stack"

one() { # one LABEL [ENV...]
  local label="$1"; shift
  start_stack "$BIN" "$PORT" "$ROOT/target/bench-otel-$label.log" \
    LLAMA_STACK_TEST_INFERENCE_MODE=replay LLAMACPP_URL=http://127.0.0.1:8080 "$@"
  local pid=$STACK_PID
  local result
  result="$(python3 "$ROOT/scripts/bench/otel_dead_endpoint.py" "$PORT" "$REQUESTS")"
  local t0 t1
  # The exit is timed here (TERM, then the wait); STACK_PID is cleared once it is reaped.
  t0=$(date +%s.%N); kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; t1=$(date +%s.%N)
  STACK_PID=""
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"{sys.argv[2]:<14} plain p50 {r['plain']['p50']:.3f} p95 {r['plain']['p95']:.3f} mean {r['plain']['mean']:.3f} | stream p50 {r['stream']['p50']:.3f} p95 {r['stream']['p95']:.3f} mean {r['stream']['mean']:.3f} | exit {float(sys.argv[3]):.2f} s\")" \
    "$result" "$label" "$(python3 -c "print($t1 - $t0)")"
}

echo "latency per request in ms ($REQUESTS plain + $REQUESTS streamed per round, release build, replay mode)"
for round in $(seq 1 "$ROUNDS"); do
  one "no-otel"
  one "dead-endpoint" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9
done
