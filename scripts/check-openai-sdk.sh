#!/usr/bin/env bash
# Checks that the official OpenAI Python SDK works unchanged against `stack run starter`:
# models, chat, streaming chat with usage, embeddings (float and base64).
#
# By default the stack runs in replay mode from recordings/ (offline). To record:
#   eval "$(scripts/providers/llamacpp.sh start)"
#   LLAMA_STACK_TEST_INFERENCE_MODE=record-if-missing scripts/check-openai-sdk.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/llama-stack-rs/openai-sdk-venv"
PORT="${SDK_CHECK_PORT:-8399}"
export LLAMA_STACK_TEST_INFERENCE_MODE="${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}"
export LLAMACPP_URL="${LLAMACPP_URL:-http://127.0.0.1:8080}"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  echo "check-openai-sdk.sh: installing the openai SDK into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet openai
fi
echo "check-openai-sdk.sh: openai $("$VENV/bin/python" -c 'import openai; print(openai.__version__)'), mode $LLAMA_STACK_TEST_INFERENCE_MODE" >&2

cd "$ROOT"
cargo build -q --features replay --bin stack
LOG="$ROOT/target/sdk-check-server.log"
"$ROOT/target/debug/stack" run starter --port "$PORT" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { tail -n 20 "$LOG" >&2; echo "the stack exited (log: $LOG)" >&2; exit 1; }
  sleep 0.1
done
"$VENV/bin/python" "$ROOT/scripts/sdk/openai_client.py" "http://127.0.0.1:$PORT/v1" \
  "${LLAMA_STACK_TEST_TEXT_MODEL:-llamacpp/smollm2-135m}" "${LLAMA_STACK_TEST_EMBEDDING_MODEL:-llamacpp/all-minilm-l6-v2}"
