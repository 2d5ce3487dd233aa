#!/usr/bin/env bash
# Runs the client suites: real Llama Stack users' clients against `stack run`, replaying the Rust
# suite's recordings offline (docs/testing.md, 'Client suites').
#
#   python      tests/integration/client-python: llama-stack-client and the OpenAI SDK, sync and
#               async, under pytest (Python 3.12, a venv from client-python/requirements.txt)
#   typescript  tests/integration/client-typescript: npm llama-stack-client and openai under
#               node:test with tsx (node_modules from client-typescript/package-lock.json)
#
# Usually called as `scripts/integration-tests.sh --client python|typescript|all`, which passes its
# --stack-config, --pattern and --collect-only here, and --setup, --suite, --env, --inference-mode
# through the environment.
# shellcheck disable=SC2317  # functions called indirectly ("install_$suite", "run_$suite", the EXIT trap)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/client-suites.sh --client python|typescript|all [options]

Builds the stack, starts `stack run CONFIG` on 127.0.0.1 and a free port (replay mode, offline),
runs the client suite(s) against it with TEST_API_BASE_URL=http://127.0.0.1:PORT, and stops the
server when they end (also on failure or Ctrl-C).

  --client C             python | typescript | all
  --stack-config CONFIG  starter (default) | path/to/run.toml | server:CONFIG[:PORT] (the server to
                         start; without PORT a free one) | http://HOST:PORT (a running stack: none
                         is started)
  --setup NAME           Setup of suites.toml whose env the server gets where unset (LLAMACPP_URL,
                         SAFETY_MODEL, MCP_SERVER_URL...; default: the suite's default setup)
  --pattern TEXT         Only tests matching TEXT (pytest -k TEXT; node --test-name-pattern=TEXT)
  --collect-only         List the tests and check client-mirrors.json; start no server
  -h, --help             This help

Environment: LLAMA_STACK_TEST_INFERENCE_MODE (replay, the default, or live: the client suites replay
the Rust suite's recordings and never record), CLIENT_PYTHON (the Python 3.12 interpreter; default
~/.pyenv/versions/3.12.1/bin/python, else python3.12), TS_CLIENT_PATH (as in Llama Stack: a local
llama-stack-client-typescript checkout to build and use, or an npm version of llama-stack-client,
instead of the locked one). The server's log: target/client-suites-server.log.
USAGE
}

die() { echo "client-suites.sh: $*" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }

CLIENT=""
STACK_CONFIG="${LLAMA_STACK_TEST_STACK_CONFIG:-starter}"
PATTERN=""
COLLECT_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --client)
      need_value "$@"
      case "$2" in python|typescript|all) CLIENT="$2" ;; *) die "--client must be python, typescript or all (got '$2')" ;; esac
      shift 2 ;;
    --stack-config) need_value "$@"; STACK_CONFIG="$2"; shift 2 ;;
    --setup) need_value "$@"; export LLAMA_STACK_TEST_SETUP="$2"; shift 2 ;;
    --pattern) need_value "$@"; PATTERN="$2"; shift 2 ;;
    --collect-only) COLLECT_ONLY=1; shift ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
[[ -n "$CLIENT" ]] || die "--client python|typescript|all is required"
export LLAMA_STACK_TEST_INFERENCE_MODE="${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}"
case "$LLAMA_STACK_TEST_INFERENCE_MODE" in
  replay|live) ;;
  *) die "the client suites replay the Rust suite's recordings (replay) or talk to the provider (live); they never record: record the Rust test they mirror instead (got LLAMA_STACK_TEST_INFERENCE_MODE=$LLAMA_STACK_TEST_INFERENCE_MODE)" ;;
esac
# The stack: a running one (http://...), or the CONFIG (and PORT) of the one to start.
RUNNING_URL="" SERVE_CONFIG="" SERVE_PORT=""
case "$STACK_CONFIG" in
  http://*|https://*) RUNNING_URL="${STACK_CONFIG%/}" ;;
  server:*)
    SERVE_CONFIG="${STACK_CONFIG#server:}"
    if [[ "$SERVE_CONFIG" =~ ^(.+[^:]):([0-9]{1,5})$ ]]; then SERVE_CONFIG="${BASH_REMATCH[1]}" SERVE_PORT="${BASH_REMATCH[2]}"; fi ;;
  *=*) die "the client suites need a server: '$STACK_CONFIG' is an in-process stack; use starter, a run.toml, server:CONFIG[:PORT] or http://HOST:PORT" ;;
  *) SERVE_CONFIG="$STACK_CONFIG" ;;
esac
suites=()
[[ "$CLIENT" == python || "$CLIENT" == all ]] && suites+=(python)
[[ "$CLIENT" == typescript || "$CLIENT" == all ]] && suites+=(typescript)
cd "$ROOT"

# --- installs, from the lock files --------------------------------------------------------------

install_python() {
  local py="${CLIENT_PYTHON:-}"
  if [[ -z "$py" ]]; then
    if [[ -x "$HOME/.pyenv/versions/3.12.1/bin/python" ]]; then
      py="$HOME/.pyenv/versions/3.12.1/bin/python"
    else
      py="$(command -v python3.12 || true)"
    fi
  fi
  [[ -n "$py" && -x "$py" ]] || die "no Python 3.12: install it (pyenv install 3.12.1) or set CLIENT_PYTHON"
  "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' \
    || die "$py is Python $("$py" -c 'import sys; print(sys.version.split()[0])'), not 3.12 (set CLIENT_PYTHON)"
  VENV="$(VENV_PYTHON="$py" pinned_venv client-python-py3.12 "$ROOT/tests/integration/client-python/requirements.txt" llama_stack_client)"
  echo "== python client suite: $("$VENV/bin/python" -c 'import sys, llama_stack_client, openai; print(f"Python {sys.version.split()[0]}, llama-stack-client {llama_stack_client.__version__}, openai {openai.__version__}")')" >&2
}

install_typescript() {
  local dir="$ROOT/tests/integration/client-typescript"
  command -v npm >/dev/null || die "npm is not installed (Node.js 20.6 or later)"
  pinned_node_modules "$dir"
  if [[ -n "${TS_CLIENT_PATH:-}" ]]; then
    # As Llama Stack's integration-tests.sh: a local checkout (built, then installed) or an npm
    # version. Not saved: the lock file stays as it is, and the next run without TS_CLIENT_PATH
    # reinstalls from it.
    if [[ -d "$TS_CLIENT_PATH" ]]; then
      [[ -f "$TS_CLIENT_PATH/package.json" ]] || die "TS_CLIENT_PATH=$TS_CLIENT_PATH has no package.json: not a llama-stack-client-typescript checkout"
      echo "== building llama-stack-client from $TS_CLIENT_PATH" >&2
      (cd "$TS_CLIENT_PATH" && npm install --no-audit --no-fund --loglevel=error >&2 && npm run build >&2)
      (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "$(cd "$TS_CLIENT_PATH" && pwd)" >&2)
    else
      (cd "$dir" && npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error "llama-stack-client@$TS_CLIENT_PATH" >&2)
    fi
    echo "TS_CLIENT_PATH=$TS_CLIENT_PATH" >"$dir/node_modules/.package-lock.sha256"
  fi
  echo "== typescript client suite: node $(node --version), $(cd "$dir" && node -p "['llama-stack-client', 'openai'].map((p) => p + ' ' + JSON.parse(require('fs').readFileSync('node_modules/' + p + '/package.json')).version).join(', ')")" >&2
}

for suite in "${suites[@]}"; do "install_$suite"; done

# --- the server ---------------------------------------------------------------------------------

# The setup's env (suites.toml), where the caller has not set it: the providers the recordings were
# made with (their addresses are not part of the request key).
setup_env() {
  python3 - "$ROOT/suites.toml" <<'PY'
import os, shlex, sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
suite = os.environ.get("LLAMA_STACK_TEST_SUITE") or cfg.get("default_suite", "base")
if suite not in cfg.get("suites", {}):
    sys.exit(f"client-suites.sh: unknown suite {suite!r}; suites.toml has {', '.join(cfg.get('suites', {}))}")
name = os.environ.get("LLAMA_STACK_TEST_SETUP") or cfg["suites"][suite]["default_setup"]
if name not in cfg.get("setups", {}):
    sys.exit(f"client-suites.sh: unknown setup {name!r}; suites.toml has {', '.join(cfg.get('setups', {}))}")
for key, value in cfg["setups"][name].get("env", {}).items():
    if not os.environ.get(key):
        print(f"export {key}={shlex.quote(str(value))}")
PY
}

SERVER_PID=""
STORE_DIR=""
SUITE_PID=""
stop_server() {
  [[ -n "$SUITE_PID" ]] && kill "$SUITE_PID" 2>/dev/null
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [[ -n "$STORE_DIR" ]] && rm -rf "$STORE_DIR"
  return 0
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() {
  local config="$1" port="$2"
  if [[ -z "$port" ]]; then
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  fi
  local env
  env="$(setup_env)" || exit 2
  eval "$env"
  echo "== building the stack" >&2
  build_stack
  SERVER_LOG="$ROOT/target/client-suites-server.log"
  # Stored responses go to a store of this run only (ids the stack generates repeat across runs).
  STORE_DIR="$(mktemp -d)"
  SQLITE_STORE_DIR="$STORE_DIR" "$ROOT/target/debug/stack" run "$config" --host 127.0.0.1 --port "$port" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 1200); do
    if curl -fsS "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1; then
      BASE_URL="http://127.0.0.1:$port"
      echo "== stack run $config: $BASE_URL (pid $SERVER_PID, mode $LLAMA_STACK_TEST_INFERENCE_MODE, log $SERVER_LOG)" >&2
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$SERVER_LOG" >&2
      die "stack run $config exited before answering /v1/health (log: $SERVER_LOG)"
    fi
    sleep 0.1
  done
  die "stack run $config did not answer /v1/health within 120 s (log: $SERVER_LOG)"
}

BASE_URL=""
SERVER_LOG=""
if [[ $COLLECT_ONLY == 0 ]]; then
  if [[ -n "$RUNNING_URL" ]]; then
    BASE_URL="$RUNNING_URL"
    echo "== using the running stack at $BASE_URL" >&2
  else
    start_server "$SERVE_CONFIG" "$SERVE_PORT"
  fi
fi
export TEST_API_BASE_URL="$BASE_URL"

# --- the suites ---------------------------------------------------------------------------------

# in_background CMD...: runs CMD and waits for it, so that a signal to this script stops the run at
# once (the trap stops CMD and the server) rather than after CMD ends.
in_background() {
  "$@" &
  SUITE_PID=$!
  local rc=0
  wait "$SUITE_PID" || rc=$?
  SUITE_PID=""
  return "$rc"
}

run_python() {
  local args=(-m pytest)
  [[ -n "$PATTERN" ]] && args+=(-k "$PATTERN")
  [[ $COLLECT_ONLY == 1 ]] && args+=(--collect-only -q)
  in_background env -C "$ROOT/tests/integration/client-python" PYTHONDONTWRITEBYTECODE=1 \
    "$VENV/bin/python" "${args[@]}"
}

run_typescript() {
  local args=(--import tsx --test --test-reporter=spec)
  [[ -n "$PATTERN" ]] && args+=("--test-name-pattern=$PATTERN")
  in_background env -C "$ROOT/tests/integration/client-typescript" CLIENT_SUITE_COLLECT_ONLY="$COLLECT_ONLY" \
    node "${args[@]}" "$ROOT"/tests/integration/client-typescript/tests/*.test.ts
}

status=0
summary=()
for suite in "${suites[@]}"; do
  echo "== $suite client suite" >&2
  if "run_$suite"; then
    summary+=("$suite: ok")
  else
    rc=$?
    summary+=("$suite: FAILED (exit $rc)")
    status=1
  fi
done
for line in "${summary[@]}"; do echo "== $line" >&2; done
[[ -n "$SERVER_LOG" ]] && echo "== server log: $SERVER_LOG" >&2
exit $status
