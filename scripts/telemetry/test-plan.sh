#!/usr/bin/env bash
# The seed's telemetry test plan, automatic, with real backends: the stack (`stack run starter`,
# replaying recordings/ offline) sends its traces over OTLP/HTTP to Arize Phoenix and serves a
# Prometheus scrape endpoint that a real Prometheus (Debian's) scrapes; the seed's traffic driver
# (driver.py) runs under `opentelemetry-instrument` with the OpenTelemetry OpenAI instrumentation,
# sending its traces to the same Phoenix; then tables.py fills the seed's tables from Phoenix's
# REST API and Prometheus's query API, one row per datum, and the script exits non-zero when a
# row the stack claims is missing. Everything it starts, it stops, also on failure.
#
# Usage: scripts/telemetry/test-plan.sh [--keep] [--screenshot FILE.png]
#   --keep        after the tables, keep Phoenix serving its UI (http://127.0.0.1:$PHOENIX_PORT)
#                 until Ctrl-C, to look at the traces
#   --screenshot  save a picture of the Responses tool-call trace in Phoenix's UI (headless
#                 Chromium, Debian's `chromium`)
# To record the driver's traffic (llama-server and the MCP server running):
#   LLAMA_STACK_TEST_INFERENCE_MODE=record-if-missing scripts/telemetry/test-plan.sh
# The CI variant (no Phoenix, no Prometheus) is tests/telemetry_plan.rs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/telemetry"
WORK="$ROOT/target/telemetry-plan"
STACK_PORT="${STACK_PORT:-8394}"
PHOENIX_PORT="${PHOENIX_PORT:-6006}"
PROM_PORT="${PROM_PORT:-9464}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9091}"
MODE="${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}"
LLAMA="${LLAMACPP_URL:-http://127.0.0.1:8080}"
KEEP=0
SHOT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) KEEP=1; shift ;;
    --screenshot) SHOT="$(realpath -m "$2")"; shift 2 ;;
    *) echo "unknown argument: $1 (usage: $0 [--keep] [--screenshot FILE.png])" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

PIDS=()
PHOENIX_PID=""
cleanup() {
  stop_stack
  for pid in "${PIDS[@]}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  [[ -n "$PHOENIX_PID" ]] && kill "$PHOENIX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK"
# The driver's Python (the OpenAI SDK and the OpenTelemetry distro) and Phoenix, each pinned.
VENV="$("$HERE/venv.sh")"
PHOENIX="$(pinned_venv phoenix "$HERE/phoenix-requirements.txt" phoenix)"
if ! command -v prometheus >/dev/null; then
  echo "installing Prometheus (Debian's package)" >&2
  apt-get install -y -q prometheus >/dev/null
fi

cd "$ROOT"
build_stack

# 1. Phoenix: OTLP/HTTP on /v1/traces, its UI and REST API on the same port; a fresh database.
PHOENIX_WORKING_DIR="$WORK/phoenix" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$PHOENIX_PORT" \
PHOENIX_GRPC_PORT="${PHOENIX_GRPC_PORT:-4327}" PHOENIX_TELEMETRY_ENABLED=false \
  "$PHOENIX/bin/phoenix" serve >"$WORK/phoenix.log" 2>&1 &
PHOENIX_PID=$!
# 2. Prometheus, scraping the stack every second.
cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: llama-stack
    static_configs: [{targets: ["127.0.0.1:$PROM_PORT"]}]
YAML
prometheus --config.file="$WORK/prometheus.yml" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
  --storage.tsdb.path="$WORK/prometheus-data" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PHOENIX_PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$PHOENIX_PID" 2>/dev/null || { tail -n 20 "$WORK/phoenix.log" >&2; echo "Phoenix exited" >&2; exit 1; }
  sleep 0.5
done
# 3. The stack, with the seed's server variables (traces to Phoenix, which takes no metrics: the
#    metrics go to the scrape endpoint) and content capture for the opt-in rows.
start_stack "$ROOT/target/debug/stack" "$STACK_PORT" "$WORK/stack.log" \
  LLAMA_STACK_TEST_INFERENCE_MODE="$MODE" LLAMACPP_URL="$LLAMA" OLLAMA_URL="$LLAMA" VLLM_URL="$LLAMA/v1" \
  SAFETY_MODEL=llamacpp/qwen2.5-coder-0.5b SQLITE_STORE_DIR="$WORK/store" \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PHOENIX_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
  OTEL_SERVICE_NAME=llama-stack-server OTEL_BSP_SCHEDULE_DELAY=200 \
  OTEL_METRICS_EXPORTER=prometheus OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1 \
  OTEL_EXPORTER_PROMETHEUS_PORT="$PROM_PORT" OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
# 4. The driver under the OpenTelemetry distro, with the seed's client variables (no metrics or
#    logs exporter: Phoenix takes traces only).
OTEL_SERVICE_NAME=openai-client OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PHOENIX_PORT" OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=none \
OTEL_LOGS_EXPORTER=none OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true \
  "$VENV/bin/opentelemetry-instrument" "$VENV/bin/python" "$HERE/driver.py" "http://127.0.0.1:$STACK_PORT" \
  >"$WORK/driver.log" 2>&1 || { tail -n 30 "$WORK/driver.log" >&2; echo "the driver failed (log: $WORK/driver.log)" >&2; exit 1; }
# Until Prometheus has scraped the driver's token counts (20 s at most).
for _ in $(seq 1 40); do
  curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" \
    --data-urlencode 'query=sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)' 2>/dev/null | grep -q '"output"' && break
  sleep 0.5
done
stop_stack   # graceful exit (TERM) flushes the last spans
sleep 1

STATUS=0
python3 "$HERE/tables.py" --phoenix "http://127.0.0.1:$PHOENIX_PORT" --prometheus "http://127.0.0.1:$PROMETHEUS_PORT" \
  | tee "$WORK/tables.md" || STATUS=$?
if [[ -n "$SHOT" ]]; then
  python3 "$HERE/screenshot.py" "http://127.0.0.1:$PHOENIX_PORT" "$SHOT"
fi
if [[ $KEEP == 1 ]]; then
  echo "Phoenix: http://127.0.0.1:$PHOENIX_PORT (Ctrl-C stops it)" >&2
  wait "$PHOENIX_PID" || true
fi
exit "$STATUS"
