#!/usr/bin/env bash
# Checks that the official OpenAI Python SDK works unchanged against `stack run starter`:
# models, chat, streaming chat with usage, embeddings (float and base64), and `responses.create`
# plain, streamed and with an MCP tool (the seed traffic driver's two calls), moderations, and
# the seed's run-shield call.
#
# By default the stack runs in replay mode from recordings/ (offline: no model, no MCP server).
# To record:
#   eval "$(scripts/providers/llamacpp.sh start)"; eval "$(scripts/providers/mcp.sh start)"
#   LLAMA_STACK_TEST_INFERENCE_MODE=record-if-missing scripts/check-openai-sdk.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${SDK_CHECK_PORT:-8399}"
export LLAMA_STACK_TEST_INFERENCE_MODE="${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}"
export LLAMACPP_URL="${LLAMACPP_URL:-http://127.0.0.1:8080}"
export SAFETY_MODEL="${SAFETY_MODEL:-llamacpp/qwen2.5-coder-0.5b}"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
VENV="$(python_tool openai-sdk-venv openai openai)"
echo "check-openai-sdk.sh: openai $("$VENV/bin/python" -c 'import openai; print(openai.__version__)'), mode $LLAMA_STACK_TEST_INFERENCE_MODE" >&2

cd "$ROOT"
build_stack
LOG="$ROOT/target/sdk-check-server.log"
# Set before the stack starts: whatever fails from here on (the start itself, the client), the
# stack stops with the script.
trap stop_stack EXIT
start_stack "$ROOT/target/debug/stack" "$PORT" "$LOG"
"$VENV/bin/python" "$ROOT/scripts/sdk/openai_client.py" "http://127.0.0.1:$PORT/v1" \
  "${LLAMA_STACK_TEST_TEXT_MODEL:-llamacpp/qwen2.5-coder-0.5b}" "${LLAMA_STACK_TEST_EMBEDDING_MODEL:-llamacpp/all-minilm-l6-v2}" \
  "${MCP_SERVER_URL:-http://127.0.0.1:8765/mcp}" "${MCP_REQUIRED_TOKEN:-ghp_llamastackrsTESTtoken0000000000000000}"
