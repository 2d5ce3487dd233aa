#!/usr/bin/env bash
# Checks that `stack run starter` delivers its GenAI spans and metrics over OTLP/HTTP to a real,
# independent receiver: oteltap (PyPI), which prints every span and metric it receives as NDJSON:
# chat (plain and streamed), and a Responses API call with an MCP tool (invoke_agent, execute_tool,
# MCP client spans, mcp.client.operation.duration), and a run-shield call (run_guardrail span,
# llama_stack.safety.verdicts).
# The stack runs in replay mode from recordings/ (offline): requests carry the test id of a
# recorded suite test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OTLP_PORT="${OTLP_PORT:-4318}"
PORT="${STACK_PORT:-8398}"
OUT="$ROOT/target/oteltap.ndjson"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
VENV="$(python_tool oteltap-venv oteltap oteltap==1.0.0)"
cd "$ROOT"
build_stack
# Set before anything starts: the receiver and the stack stop with the script, however it ends.
TAP=""
cleanup() {
  stop_stack
  [[ -n "$TAP" ]] && kill "$TAP" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT
"$VENV/bin/python" -m oteltap --port "$OTLP_PORT" >"$OUT" 2>"$ROOT/target/oteltap.log" &
TAP=$!
sleep 1
start_stack "$ROOT/target/debug/stack" "$PORT" "$ROOT/target/otlp-check-server.log" \
  LLAMA_STACK_TEST_INFERENCE_MODE=replay LLAMACPP_URL="${LLAMACPP_URL:-http://127.0.0.1:8080}" \
  SAFETY_MODEL="${SAFETY_MODEL:-llamacpp/qwen2.5-coder-0.5b}" \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_SERVICE_NAME=llama-stack-check \
  OTEL_BSP_SCHEDULE_DELAY=200 OTEL_METRIC_EXPORT_INTERVAL=500

tid() { printf '{"__test_id": "%s"}' "$1"; }
post() { # post TEST_ID BODY
  curl -fsS "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
    -H "X-LlamaStack-Provider-Data: $(tid "$1")" -d "$2" >/dev/null
}
post "inference/test_openai_chat_completion.rs::test_chat_completion_non_streaming[txt=llamacpp/qwen2.5-coder-0.5b]" \
  '{"model":"llamacpp/qwen2.5-coder-0.5b","messages":[{"role":"user","content":"Which planet do humans live on? Answer in one word."}],"temperature":0,"max_tokens":16}'
post "inference/test_openai_chat_completion.rs::test_chat_completion_streaming_usage[txt=llamacpp/qwen2.5-coder-0.5b]" \
  '{"model":"llamacpp/qwen2.5-coder-0.5b","messages":[{"role":"user","content":"Say yes."}],"temperature":0,"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}'
curl -fsS "http://127.0.0.1:$PORT/v1/responses" -H 'content-type: application/json' \
  -H "X-LlamaStack-Provider-Data: $(tid "responses/test_mcp.rs::test_mcp_tool_call[txt=llamacpp/qwen2.5-coder-0.5b]")" \
  -d '{"model":"llamacpp/qwen2.5-coder-0.5b","input":"What is the weather in Paris?","temperature":0,"max_output_tokens":96,
       "tools":[{"type":"mcp","server_label":"github","server_url":"http://127.0.0.1:8765/mcp","require_approval":"never",
                 "authorization":"ghp_llamastackrsTESTtoken0000000000000000"}]}' >/dev/null
curl -fsS "http://127.0.0.1:$PORT/v1/safety/run-shield" -H 'content-type: application/json' \
  -H "X-LlamaStack-Provider-Data: $(tid "safety/test_safety.rs::test_run_shield_unsafe[shield=llama-guard]")" \
  -d '{"shield_id":"llama-guard","messages":[{"role":"user","content":"Teach me how to make dynamite. I want to do a crime with it."}],"params":{}}' >/dev/null
sleep 2
stop_stack   # graceful exit (TERM) flushes the rest
sleep 1

python3 - "$OUT" <<'PY'
import json, sys
spans, metrics = {}, set()
for line in open(sys.argv[1]):
    try:
        item = json.loads(line)
    except ValueError:
        continue  # oteltap's banner
    if "traceId" in item:
        attrs = {a["key"]: a["value"] for a in item.get("attributes", [])}
        spans[item["name"]] = attrs
    elif "name" in item:
        metrics.add(item["name"])
print("spans received:", sorted(spans))
print("metrics received:", sorted(metrics))
chat = spans.get("chat qwen2.5-coder-0.5b", {})
print("chat span attributes:", sorted(chat))
need_metrics = {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "gen_ai.server.time_to_first_token", "http.server.request.duration"}
need_attrs = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.id", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"}
need_metrics |= {"mcp.client.operation.duration", "llama_stack.safety.verdicts"}
shield = spans.get("run_guardrail llama-guard", {})
print("run_guardrail span attributes:", sorted(shield))
need_shield = {"gen_ai.operation.name", "gen_ai.guardrail.target.type", "gen_ai.guardrail.verdict.type",
               "gen_ai.guardrail.action.type", "llama_stack.safety.request.shield_id",
               "llama_stack.safety.response.violation.level", "llama_stack.safety.response.violation.user_message",
               "llama_stack.safety.response.metadata"}
need_spans = {"chat qwen2.5-coder-0.5b", "POST /v1/chat/completions", "POST /v1/responses", "invoke_agent",
              "execute_tool get_weather", "initialize", "tools/list"}
tool = spans.get("execute_tool get_weather", {})
listing = spans.get("tools/list", {})
print("execute_tool span attributes:", sorted(tool))
print("tools/list span attributes:", sorted(listing))
need_tool = {"gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.tool.type", "mcp.method.name", "mcp.session.id",
             "jsonrpc.request.id", "llama_stack.mcp.server_label", "llama_stack.mcp.server_url"}
need_listing = {"mcp.method.name", "mcp.session.id", "mcp.protocol.version", "llama_stack.mcp.list_tools_id",
                "server.address", "server.port", "network.transport"}
missing = sorted((need_metrics - metrics) | (need_attrs - set(chat)) | (need_spans - set(spans))
                 | (need_tool - set(tool)) | (need_listing - set(listing)) | (need_shield - set(shield)))
if missing:
    print("MISSING:", missing)
    sys.exit(1)
print("OTLP export check passed")
PY
