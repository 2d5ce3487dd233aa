#!/usr/bin/env bash
# The seed's telemetry test plan, automatic: the stack (`stack run starter`, replaying recordings/
# offline) exports to a real OTLP receiver (oteltap) and serves a Prometheus scrape endpoint that
# a real Prometheus (Debian's) scrapes; the seed's traffic driver (driver.py) runs under
# `opentelemetry-instrument` with the OpenTelemetry OpenAI instrumentation, exporting to the same
# receiver; then the seed's tables are filled from what arrived, one row per datum, and the script
# exits non-zero when a row the stack claims is missing. Everything it starts, it stops.
#
# Usage: scripts/telemetry/test-plan.sh
# To record the driver's traffic (llama-server and the MCP server running):
#   LLAMA_STACK_TEST_INFERENCE_MODE=record-if-missing scripts/telemetry/test-plan.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/telemetry"
WORK="$ROOT/target/telemetry-plan"
STACK_PORT="${STACK_PORT:-8394}"
OTLP_PORT="${OTLP_PORT:-4318}"
PROM_PORT="${PROM_PORT:-9464}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9091}"
MODE="${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}"
LLAMA="${LLAMACPP_URL:-http://127.0.0.1:8080}"
mkdir -p "$WORK"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}" "${STACK_PID:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The driver's Python: the OpenAI SDK and the OpenTelemetry distro, pinned.
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/llama-stack-rs/telemetry-plan-venv"
if [[ ! -x "$VENV/bin/opentelemetry-instrument" ]]; then
  echo "installing the driver's packages into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
fi
TAP="$(python_tool oteltap-venv oteltap==1.0.0 oteltap)"
if ! command -v prometheus >/dev/null; then
  echo "installing Prometheus (Debian's package)" >&2
  apt-get install -y -q prometheus >/dev/null
fi

cd "$ROOT"
cargo build -q --features replay --bin stack

# 1. The trace and metric receiver.
"$TAP/bin/python" -m oteltap --port "$OTLP_PORT" >"$WORK/oteltap.ndjson" 2>"$WORK/oteltap.log" &
PIDS+=($!)
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
sleep 1
# 3. The stack, with the seed's server variables (plus the scrape endpoint and content capture
#    for the opt-in rows).
start_stack "$ROOT/target/debug/stack" "$STACK_PORT" "$WORK/stack.log" \
  LLAMA_STACK_TEST_INFERENCE_MODE="$MODE" LLAMACPP_URL="$LLAMA" OLLAMA_URL="$LLAMA" VLLM_URL="$LLAMA/v1" \
  SAFETY_MODEL=llamacpp/qwen2.5-coder-0.5b SQLITE_STORE_DIR="$WORK/store" \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
  OTEL_SERVICE_NAME=llama-stack-server OTEL_BSP_SCHEDULE_DELAY=200 OTEL_METRIC_EXPORT_INTERVAL=500 \
  OTEL_METRICS_EXPORTER=otlp,prometheus OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1 \
  OTEL_EXPORTER_PROMETHEUS_PORT="$PROM_PORT" OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
# 4. The driver under the OpenTelemetry distro, with the seed's client variables.
OTEL_SERVICE_NAME=openai-client OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp \
OTEL_LOGS_EXPORTER=otlp OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true \
OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true \
  "$VENV/bin/opentelemetry-instrument" "$VENV/bin/python" "$HERE/driver.py" "http://127.0.0.1:$STACK_PORT" \
  >"$WORK/driver.log" 2>&1 || { tail -n 30 "$WORK/driver.log" >&2; echo "the driver failed (log: $WORK/driver.log)" >&2; exit 1; }
# Until Prometheus has scraped the driver's token counts (20 s at most).
for _ in $(seq 1 40); do
  curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" \
    --data-urlencode 'query=sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)' >"$WORK/prom-tokens.json" || true
  grep -q '"output"' "$WORK/prom-tokens.json" 2>/dev/null && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" >"$WORK/prom-targets.json" || true
curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" \
  --data-urlencode 'query=sum(http_server_request_duration_seconds_count)' >"$WORK/prom-http.json"
kill -TERM "$STACK_PID"; wait "$STACK_PID" 2>/dev/null || true   # flushes the last spans
STACK_PID=""
sleep 1

python3 "$HERE/tables.py" "$WORK/oteltap.ndjson" "$WORK/prom-tokens.json" "$WORK/prom-http.json"
