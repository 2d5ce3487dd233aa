# Shared helpers for the scripts in this folder; `source` it. Sets nothing at load time.

# python_tool VENV_NAME IMPORT PIP_ARGS...: a cached venv under ~/.cache/llama-stack-rs with
# `pip install PIP_ARGS` done (checked by importing IMPORT); prints the venv's path. The venv is
# made with $VENV_PYTHON when set (an interpreter; put its version in VENV_NAME), else python3.
python_tool() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/llama-stack-rs/$1" module="$2"
  shift 2
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import $module" 2>/dev/null; then
    echo "installing $* into $venv" >&2
    "${VENV_PYTHON:-python3}" -m venv "$venv" || { echo "cannot create the venv $venv" >&2; return 1; }
    if ! "$venv/bin/pip" install --quiet "$@" >&2 || ! "$venv/bin/python" -c "import $module"; then
      echo "installing $* into $venv failed; removing the half-made venv" >&2
      rm -rf "$venv"
      return 1
    fi
  fi
  echo "$venv"
}

# pinned_venv NAME REQUIREMENTS IMPORT: python_tool for a pinned requirements file; the venv's
# name carries the file's hash, so a changed pin set gets a fresh venv. Prints its path.
pinned_venv() {
  local hash
  hash="$(sha256sum "$2" | cut -c1-12)"
  python_tool "$1-$hash" "$3" -r "$2"
}

# build_stack: target/debug/stack, built exactly as the README's test command builds it
# (`cargo test --features replay`), so the two share one build: `cargo build --bin stack`
# resolves features without the dev-dependencies and would compile much of the workspace again.
build_stack() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && cargo test -q --features replay --no-run >&2)
}

# integration_test_binary: builds as build_stack does and prints the path of the integration
# suite's test executable (tests/integration), to be run directly: `cargo test --test
# integration` would resolve features without the other packages' dev-dependencies and compile
# a third of the workspace again after the README's test command.
integration_test_binary() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  (cd "$root" && cargo test -q --features replay --no-run --message-format=json-render-diagnostics) |
    cargo_executable integration
}

# cargo_executable NAME: reads cargo's JSON messages (--message-format=json...) on stdin and
# prints the last executable built for the target NAME; fails saying so when there is none.
# Reads them with jq when it is installed (a few milliseconds), else with python3 (which takes a
# tenth of a second or more to start, more behind a pyenv shim).
cargo_executable() {
  local found
  if command -v jq >/dev/null 2>&1; then
    found="$(jq -r --arg name "$1" 'select(.reason == "compiler-artifact" and .executable != null
      and .target.name == $name) | .executable' | tail -n 1)"
  else
    found="$(python3 -c '
import json, sys
found = [m["executable"] for m in map(json.loads, filter(str.strip, sys.stdin))
         if m.get("reason") == "compiler-artifact" and m.get("executable")
         and m.get("target", {}).get("name") == sys.argv[1]]
print(found[-1] if found else "")' "$1")"
  fi
  [[ -n "$found" ]] || { echo "cargo built no $1 test executable" >&2; return 1; }
  echo "$found"
}

# start_stack BIN PORT LOG [VAR=VALUE...]: runs `BIN run starter --port PORT` (on 127.0.0.1, the
# stack's default host) with the given environment, logging to LOG; waits (10 s at most) for
# /v1/health. Sets STACK_PID as soon as the process exists, so an EXIT trap the caller set
# beforehand (`trap stop_stack EXIT`) stops it whatever happens next; when the stack does not
# answer in time, stops it itself and fails.
start_stack() {
  local bin="$1" port="$2" log="$3"
  shift 3
  env "$@" "$bin" run starter --port "$port" >"$log" 2>&1 &
  STACK_PID=$!
  local _
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1 && return 0
    kill -0 "$STACK_PID" 2>/dev/null || { tail -n 20 "$log" >&2; echo "the stack exited (log: $log)" >&2; stop_stack; return 1; }
    sleep 0.05
  done
  echo "the stack did not answer /v1/health within 10 s (log: $log); stopping it" >&2
  stop_stack
  return 1
}

# stop_stack: stops the stack start_stack started (STACK_PID): TERM, up to 10 s for it to exit,
# then KILL; reaps it and clears STACK_PID. Does nothing when there is none, so it serves as (or
# in) an EXIT trap and may run twice.
stop_stack() {
  local pid="${STACK_PID:-}" _
  [[ -n "$pid" ]] || return 0
  STACK_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  return 0
}

# Background servers the provider scripts start, tracked by a PID file.

# pidfile_running PID_FILE: prints the PID when that process is alive; fails otherwise.
pidfile_running() {
  [[ -f "$1" ]] || return 1
  local pid
  pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# pidfile_stop PID_FILE NAME: TERM, up to 10 s for it to exit, then KILL; removes the PID file.
pidfile_stop() {
  local pid
  if pid="$(pidfile_running "$1")"; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    echo "$2: stopped (pid $pid)" >&2
  else
    echo "$2: not running" >&2
  fi
  rm -f "$1"
}

# pidfile_status PID_FILE URL: "running (pid N) at URL", or "not running" and exit status 3.
pidfile_status() {
  local pid
  if pid="$(pidfile_running "$1")"; then
    echo "running (pid $pid) at $2"
  else
    echo "not running"
    return 3
  fi
}

# pinned_node_modules DIR: `npm ci` in DIR (from its package-lock.json; no install scripts) unless
# DIR/node_modules was installed from the same lock file, as a stamp with the lock's hash records.
pinned_node_modules() {
  local dir="$1" hash stamp="$1/node_modules/.package-lock.sha256"
  hash="$(sha256sum "$dir/package-lock.json" | cut -c1-64)"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]]; then
    echo "installing $dir/package-lock.json into $dir/node_modules" >&2
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    echo "$hash" >"$stamp"
  fi
}

# positive_int OPTION VALUE: exits 2 saying so unless VALUE is a whole number above zero.
positive_int() {
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "$1 must be a whole number above zero, not '$2'" >&2; exit 2; }
}

# release_stack BUILD: prints the path of target/release/stack (feature `replay`), built first
# when BUILD is 1 (a benchmark's --no-build passes 0: the last binary built); fails saying why.
release_stack() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ "$1" == 1 ]]; then
    echo "cargo build --release --features replay --bin stack" >&2
    (cd "$root" && timeout 3600 cargo build -q --release --features replay --bin stack) >&2 \
      || { echo "cargo build failed or timed out (--no-build runs the last built binary)" >&2; return 1; }
  fi
  [[ -x "$root/target/release/stack" ]] \
    || { echo "$root/target/release/stack is missing: run without --no-build" >&2; return 1; }
  echo "$root/target/release/stack"
}

# A llama-server for the benchmarks (scripts/bench/*.sh), through scripts/providers/llamacpp.sh.

# bench_llamacpp ENV_FILE: uses the llama-server running on LLAMACPP_PORT (default 8080) or on
# BENCH_LLAMACPP_PORT (default 8434), else starts one on the latter (our own port: someone who
# starts the usual one meanwhile gets theirs; the first start builds it, 5 to 7 min), writing its
# environment to ENV_FILE. Sets BENCH_LLAMACPP_URL, and BENCH_LLAMACPP_STARTED=1 when it started
# one (bench_llamacpp_stop stops that one only). Fails saying why.
bench_llamacpp() {
  local sh port own="${BENCH_LLAMACPP_PORT:-8434}"
  sh="$(dirname "${BASH_SOURCE[0]}")/providers/llamacpp.sh"
  BENCH_LLAMACPP_STARTED=0
  for port in "${LLAMACPP_PORT:-8080}" "$own"; do
    if LLAMACPP_PORT="$port" "$sh" status >/dev/null 2>&1; then
      BENCH_LLAMACPP_URL="$(LLAMACPP_PORT="$port" "$sh" url)"
      echo "llama-server already runs at $BENCH_LLAMACPP_URL; using it and leaving it running" >&2
      return 0
    fi
  done
  if (exec 3<>"/dev/tcp/127.0.0.1/$own") 2>/dev/null; then
    echo "port $own is in use by something else than llama-server (set BENCH_LLAMACPP_PORT)" >&2
    return 1
  fi
  echo "starting llama-server on port $own (scripts/providers/llamacpp.sh start; the first start builds it, 5 to 7 min)" >&2
  BENCH_LLAMACPP_STARTED=1
  LLAMACPP_PORT="$own" timeout 1800 "$sh" start >"$1" \
    || { echo "scripts/providers/llamacpp.sh start failed or timed out" >&2; return 1; }
  BENCH_LLAMACPP_URL="$(sed -n 's/^export LLAMACPP_URL=//p' "$1")"
  [[ -n "$BENCH_LLAMACPP_URL" ]] \
    || { echo "scripts/providers/llamacpp.sh start printed no LLAMACPP_URL" >&2; return 1; }
}

# bench_llamacpp_stop: stops the llama-server bench_llamacpp started, if it started one.
bench_llamacpp_stop() {
  [[ "${BENCH_LLAMACPP_STARTED:-0}" == 1 ]] || return 0
  BENCH_LLAMACPP_STARTED=0
  LLAMACPP_PORT="${BENCH_LLAMACPP_PORT:-8434}" "$(dirname "${BASH_SOURCE[0]}")/providers/llamacpp.sh" stop >/dev/null 2>&1 || true
}
