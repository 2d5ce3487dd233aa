#!/usr/bin/env bash
# Benchmark (issue 13): replay throughput of this stack side by side with Llama Stack 0.7.3 and
# nginx, in one run on this machine.
#
#  1. installs Llama Stack 0.7.3 (Python 3.12 from pyenv) into a cached venv pinned by
#     scripts/bench/llamastack-requirements.txt; builds `stack` (release, --features replay);
#  2. uses the llama-server of scripts/providers/llamacpp.sh on LLAMACPP_PORT if one runs, else
#     starts its own on BENCH_LLAMACPP_PORT (so it never stops one that others use);
#  3. records the same chat request and the same streamed chat request (40 tokens: 43 SSE
#     events here, 42 from Llama Stack, which sends no [DONE]) through both stacks against it,
#     each into its own temporary recordings directory (never into recordings/);
#  4. stops llama-server if this script started it, restarts both stacks in replay mode with the
#     provider on a dead port, and checks that each answers both requests as recorded;
#  5. runs the same wrk load (keep-alive, -t1, 5 s a run, one server at a time after a 2 s warm-up)
#     on Llama Stack, on ours and, for chat, on nginx serving our replayed chat bytes. All three
#     stay up and take turns, row by row, for 3 rounds: a server's figure is the median of its
#     rounds and a ratio the median of the rounds' ratios, so that a drift of the machine's speed
#     during the run (other VMs on the host) moves both sides of a ratio alike;
#  6. prints the table and writes it to target/bench/replay-vs-llamastack.md.
#
# Everything it starts is stopped on exit (also on failure, Ctrl-C and timeout).
#
# Usage: scripts/bench/replay-vs-llamastack.sh [--duration SECONDS] [--rounds N] [--no-build] [--keep]
#   --duration S  wrk duration per run (default 5; BENCH_DURATION)
#   --rounds N    rounds of turns (default 3; BENCH_ROUNDS)
#   --no-build    use target/release/stack as it is (else `cargo build --release --features replay`)
#   --keep        keep the temporary directory (recordings, logs, wrk output); kept on failure too
# Env: LS_PYTHON (default ~/.pyenv/versions/3.12.1/bin/python), BENCH_OURS_PORT (8431),
#      BENCH_LS_PORT (8432), BENCH_NGINX_PORT (8433), BENCH_DEAD_PORT (1), LLAMACPP_PORT (8080: a
#      running llama-server there is used), BENCH_LLAMACPP_PORT (8434: where it starts its own),
#      BENCH_MODEL (smollm2-135m), BENCH_CONNS_CHAT ("1 8 32"), BENCH_CONNS_STREAM ("1 8").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/bench"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-3}"
BUILD=1
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="${2:?--duration needs a value}"; shift 2 ;;
    --rounds) ROUNDS="${2:?--rounds needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

positive_int --duration "$DURATION"
positive_int --rounds "$ROUNDS"

LS_VERSION="0.7.3"
LS_PYTHON="${LS_PYTHON:-$HOME/.pyenv/versions/3.12.1/bin/python}"
LOCK="$HERE/llamastack-requirements.txt"
OURS_PORT="${BENCH_OURS_PORT:-8431}"
LS_PORT="${BENCH_LS_PORT:-8432}"
NGINX_PORT="${BENCH_NGINX_PORT:-8433}"
DEAD_URL="http://127.0.0.1:${BENCH_DEAD_PORT:-1}"
MODEL="${BENCH_MODEL:-smollm2-135m}"
CONNS_CHAT="${BENCH_CONNS_CHAT:-1 8 32}"
CONNS_STREAM="${BENCH_CONNS_STREAM:-1 8}"
OUT_MD="$ROOT/target/bench/replay-vs-llamastack.md"
TEST_PREFIX="bench/replay_vs_llamastack.sh"
CHAT_BODY="{\"model\": \"llamacpp/$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France? Answer in one sentence.\"}], \"max_tokens\": 48, \"temperature\": 0}"
STREAM_BODY="{\"model\": \"llamacpp/$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"Count from 1 to 100, separated by commas.\"}], \"max_tokens\": 40, \"temperature\": 0, \"stream\": true}"

T0=$(date +%s)
log() { printf '[%s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - T0))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/replay-vs-llamastack.XXXXXX")"
PIDS=()               # process-group leaders this script started (servers), stopped on exit
OK=0

# stop_pid PID NAME: TERM to the process group PID leads, up to 15 s, then KILL.
stop_pid() {
  local pid="$1" name="$2" _
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored TERM for 15 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid" "server"; done
  bench_llamacpp_stop
  if [[ "$OK" == 1 && "$KEEP" == 0 ]]; then
    rm -rf "$WORK"
  else
    log "kept $WORK (recordings, logs, wrk output)"
  fi
  [[ "$OK" == 1 ]] || log "FAILED (exit $rc) after $(($(date +%s) - T0)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# forget_pid PID: drop PID from the list of servers to stop on exit.
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http URL PID LOG SECONDS NAME: until URL answers 2xx; fails if PID exits or time runs out.
wait_http() {
  local url="$1" pid="$2" logf="$3" secs="$4" name="$5" _
  for _ in $(seq 1 $((secs * 5))); do
    curl -fsS --max-time 2 "$url" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 25 "$logf" >&2
      die "$name exited during start (log: $logf)"
    fi
    sleep 0.2
  done
  tail -n 25 "$logf" >&2
  die "$name did not answer $url within $secs s (log: $logf)"
}

# start_bg NAME LOG CMD...: runs CMD in its own process group (setsid), logging to LOG; sets BG_PID.
start_bg() {
  local name="$1" logf="$2"
  shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  PIDS+=("$BG_PID")
  log "$name started (pid $BG_PID, log $logf)"
}

# ---- 0. tools --------------------------------------------------------------------------------

for tool in curl wrk setsid python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (wrk: apt-get install wrk)"
done
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
  log "nginx is missing; installing Debian's nginx (apt-get)"
  [[ "$(id -u)" == 0 ]] || die "nginx is missing and this is not root: apt-get install nginx"
  timeout 600 apt-get install -y -q nginx >"$WORK/apt.log" 2>&1 \
    || { timeout 600 apt-get update -q >>"$WORK/apt.log" 2>&1 && timeout 600 apt-get install -y -q nginx >>"$WORK/apt.log" 2>&1; } \
    || { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install nginx failed (log: $WORK/apt.log)"; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
for p in "$OURS_PORT" "$LS_PORT" "$NGINX_PORT"; do
  port_free "$p" || die "port $p is in use (set BENCH_OURS_PORT / BENCH_LS_PORT / BENCH_NGINX_PORT)"
done
port_free "${DEAD_URL##*:}" || die "the 'dead' provider port ${DEAD_URL##*:} has a listener (set BENCH_DEAD_PORT)"

# ---- 1. Llama Stack venv, our binary ---------------------------------------------------------

# The venv is named after the lock file's hash and gets a stamp only once the whole install and an
# import check succeeded, so a half-done install is redone instead of half-used.
[[ -x "$LS_PYTHON" ]] || die "Python 3.12 not found at $LS_PYTHON (pyenv install 3.12.1, or set LS_PYTHON)"
"$LS_PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' \
  || die "$LS_PYTHON is not Python 3.12 ($("$LS_PYTHON" --version 2>&1))"
LOCK_HASH="$(grep -v '^#' "$LOCK" | sha256sum | cut -c1-12)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/llama-stack-rs/llamastack-$LS_VERSION-py3.12-$LOCK_HASH"
if [[ ! -f "$VENV/.installed" ]]; then
  log "installing Llama Stack $LS_VERSION into $VENV (from $LOCK; about 1 min)"
  rm -rf "$VENV"
  "$LS_PYTHON" -m venv "$VENV" || die "could not create a venv with $LS_PYTHON"
  timeout 900 "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$LOCK" >"$WORK/pip.log" 2>&1 \
    || { tail -n 20 "$WORK/pip.log" >&2; die "pip install -r $LOCK failed or took over 15 min (log: $WORK/pip.log)"; }
  "$VENV/bin/python" -c 'import llama_stack.core.server.server, llama_stack.testing.api_recorder, ollama, aiohttp' \
    >"$WORK/import.log" 2>&1 || { tail -n 20 "$WORK/import.log" >&2; die "Llama Stack installed but does not import (see above)"; }
  touch "$VENV/.installed"
fi
LS_GOT="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("llama_stack"))')"
[[ "$LS_GOT" == "$LS_VERSION" ]] || die "$VENV has llama_stack $LS_GOT, expected $LS_VERSION"
log "Llama Stack $LS_GOT in $VENV"

STACK_BIN="$(release_stack "$BUILD")" || die "no stack binary to measure"

# ---- 2. llama-server -------------------------------------------------------------------------

bench_llamacpp "$WORK/llamacpp.env" || die "no llama-server for the benchmark"
LIVE_URL="$BENCH_LLAMACPP_URL"
curl -fsS --max-time 10 "$LIVE_URL/v1/models" | grep -q "\"$MODEL\"" \
  || die "llama-server at $LIVE_URL does not serve $MODEL"

# ---- 3. record through both stacks -----------------------------------------------------------

mkdir -p "$WORK/ours-rec" "$WORK/ours-db" "$WORK/ls-db" "$WORK/ls-rec/tests/integration/common" "$WORK/out" "$WORK/wrk"
# Llama Stack stores a test's recordings in <LLAMA_STACK_TEST_RECORDING_DIR>/../../../<dir of the
# test id>/recordings, so the base sits three levels below ls-rec and everything stays in it.
LS_REC_BASE="$WORK/ls-rec/tests/integration/common"
cat >"$WORK/ls-config.yaml" <<'YAML'
version: 2
distro_name: bench
apis:
- inference
providers:
  inference:
  - provider_id: llamacpp
    provider_type: remote::llama-cpp-server
    config:
      base_url: ${env.LLAMACPP_URL}/v1
storage:
  backends:
    kv_default:
      type: kv_sqlite
      db_path: ${env.SQLITE_STORE_DIR}/kvstore.db
    sql_default:
      type: sql_sqlite
      db_path: ${env.SQLITE_STORE_DIR}/sql_store.db
  stores:
    metadata:
      namespace: registry
      backend: kv_default
    inference:
      table_name: inference_store
      backend: sql_default
      max_write_queue_size: 10000
      num_writers: 4
    conversations:
      table_name: openai_conversations
      backend: sql_default
    prompts:
      namespace: prompts
      backend: kv_default
    connectors:
      namespace: connectors
      backend: kv_default
registered_resources:
  models: []
server:
  host: 127.0.0.1
  port: 8321
YAML

# start_ours MODE PROVIDER_URL: our stack in MODE on OURS_PORT.
start_ours() {
  start_bg "ours ($1)" "$WORK/ours-$1.log" env LLAMA_STACK_TEST_INFERENCE_MODE="$1" \
    LLAMA_STACK_TEST_RECORDING_DIR="$WORK/ours-rec" LLAMACPP_URL="$2" SQLITE_STORE_DIR="$WORK/ours-db" \
    "$STACK_BIN" run starter --port "$OURS_PORT"
  wait_http "http://127.0.0.1:$OURS_PORT/v1/health" "$BG_PID" "$WORK/ours-$1.log" 30 "our stack ($1)"
}

# start_ls MODE PROVIDER_URL: Llama Stack in MODE on LS_PORT. Its server only takes the test id
# from X-LlamaStack-Provider-Data when LLAMA_STACK_TEST_STACK_CONFIG_TYPE=server.
start_ls() {
  start_bg "Llama Stack ($1)" "$WORK/ls-$1.log" env LLAMA_STACK_TEST_INFERENCE_MODE="$1" \
    LLAMA_STACK_TEST_RECORDING_DIR="$LS_REC_BASE" LLAMA_STACK_TEST_STACK_CONFIG_TYPE=server \
    LLAMA_STACK_LOG_FORMAT=json LLAMACPP_URL="$2" SQLITE_STORE_DIR="$WORK/ls-db" \
    "$VENV/bin/llama" stack run "$WORK/ls-config.yaml" --port "$LS_PORT"
  wait_http "http://127.0.0.1:$LS_PORT/v1/health" "$BG_PID" "$WORK/ls-$1.log" 120 "Llama Stack ($1)"
}

# ask PORT KIND OUT: POSTs the KIND (chat|stream) request with its test id; fails unless HTTP 200.
ask() {
  local port="$1" kind="$2" out="$3" body code
  if [[ "$kind" == chat ]]; then body="$CHAT_BODY"; else body="$STREAM_BODY"; fi
  code="$(curl -sS -N --max-time 180 -o "$out" -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" \
    -H 'Content-Type: application/json' \
    -H "X-LlamaStack-Provider-Data: {\"__test_id\": \"$TEST_PREFIX::$kind\"}" -d "$body")" || code="curl failed"
  [[ "$code" == 200 ]] || { head -c 2000 "$out" >&2 2>/dev/null; echo >&2; die "$kind request to port $port: HTTP $code"; }
}

log "recording through our stack (LLAMA_STACK_TEST_INFERENCE_MODE=record) into $WORK/ours-rec"
start_ours record "$LIVE_URL"
ask "$OURS_PORT" chat "$WORK/out/ours-chat-record.json"
ask "$OURS_PORT" stream "$WORK/out/ours-stream-record.sse"
stop_pid "$BG_PID" "our stack"; forget_pid "$BG_PID"

log "recording through Llama Stack (LLAMA_STACK_TEST_INFERENCE_MODE=record) into $WORK/ls-rec"
start_ls record "$LIVE_URL"
ask "$LS_PORT" chat "$WORK/out/ls-chat-record.json"
ask "$LS_PORT" stream "$WORK/out/ls-stream-record.sse"
stop_pid "$BG_PID" "Llama Stack"; forget_pid "$BG_PID"

bench_llamacpp_stop
log "recorded: ours $(find "$WORK/ours-rec/responses" -name '*.json' | wc -l) blobs, Llama Stack $(find "$WORK/ls-rec" -name '*.json' | wc -l) files; provider now $DEAD_URL"

# ---- 4. replay checks, 5. load ---------------------------------------------------------------

# Lua scripts for wrk: the same method, body and headers for every server.
for kind in chat stream; do
  if [[ "$kind" == chat ]]; then body="$CHAT_BODY"; else body="$STREAM_BODY"; fi
  cat >"$WORK/$kind.lua" <<LUA
wrk.method = "POST"
wrk.body = [==[$body]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-LlamaStack-Provider-Data"] = [==[{"__test_id": "$TEST_PREFIX::$kind"}]==]
LUA
done

# busy NAME: how busy the CPUs are over 1 s while the server under test idles (other work on the
# machine), appended to $WORK/busy.txt and logged with a warning above 10%.
busy() {
  local a b pct
  a="$(head -n1 /proc/stat)"; sleep 1; b="$(head -n1 /proc/stat)"
  pct="$(printf '%s\n%s\n' "$a" "$b" | awk '{ idle[NR] = $5 + $6; tot[NR] = 0; for (i = 2; i <= NF; i++) tot[NR] += $i }
    END { d = tot[2] - tot[1]; printf "%.0f", (d > 0 ? 100 * (1 - (idle[2] - idle[1]) / d) : 0) }')"
  echo "$1 $pct" >>"$WORK/busy.txt"
  if [[ "$pct" -gt 10 ]]; then
    log "warning: the CPUs are ${pct}% busy with other work before loading $1; its figures will be low"
  fi
}

# load NAME PORT PGID KIND CONNS ROUND: one wrk run; output in $WORK/wrk/NAME-KIND-CONNS-rROUND.txt.
# Also writes NAME-KIND-CONNS-rROUND.cpu: the CPU the server (process group PGID), wrk and
# everything else on the machine used during the run, from /proc and the shell's `times`.
load() {
  local name="$1" port="$2" pgid="$3" kind="$4" conns="$5" round="$6" out before
  out="$WORK/wrk/$name-$kind-$conns-r$round.txt"
  before="$(python3 "$HERE/replay_vs_llamastack.py" cpu-snapshot "$pgid")"
  times >"$WORK/times.before"
  timeout $((DURATION + 60)) wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s --latency \
    -s "$WORK/$kind.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$out" 2>&1 \
    || { cat "$out" >&2; die "wrk against $name ($kind, $conns conns) failed or timed out"; }
  times >"$WORK/times.after"
  python3 "$HERE/replay_vs_llamastack.py" cpu-share "$pgid" "$before" \
    "$WORK/times.before" "$WORK/times.after" >"${out%.txt}.cpu"
  log "  round $round $name $kind c=$conns: $(grep -E 'Requests/sec' "$out" | tr -s ' ') p50 $(grep -E '^ +50%' "$out" | awk '{print $2}'), CPU (% of a core) $(cat "${out%.txt}.cpu")$(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ' | tr '\n' ' ')"
  # A server may go on working after its load (Llama Stack drains its inference store's write
  # queue for seconds): the next run starts on a quiet machine.
  local waited
  waited="$(python3 "$HERE/replay_vs_llamastack.py" settle 60)"
  echo "$name $kind $conns $round $waited" >>"$WORK/settle.txt"
  [[ "$waited" == *settled ]] || log "warning: the machine was still busy 60 s after $name's $kind load"
}

# check_server NAME PORT: checks that the server answers both requests as recorded.
check_server() {
  local name="$1" port="$2"
  ask "$port" chat "$WORK/out/$name-chat-replay.json"
  ask "$port" stream "$WORK/out/$name-stream-replay.sse"
  python3 "$HERE/replay_vs_llamastack.py" check "$name" \
    "$WORK/out/$name-chat-record.json" "$WORK/out/$name-chat-replay.json" \
    "$WORK/out/$name-stream-record.sse" "$WORK/out/$name-stream-replay.sse" >"$WORK/out/$name-check.txt" \
    || { cat "$WORK/out/$name-check.txt" >&2; die "$name's replay does not match its recording"; }
  log "$name replays as recorded: $(tr '\n' ' ' <"$WORK/out/$name-check.txt")"
}

# warm_up PORT KIND: 2 s of the KIND load, not measured.
warm_up() {
  timeout 30 wrk -t1 -c8 -d2s -s "$WORK/$2.lua" "http://127.0.0.1:$1/v1/chat/completions" >/dev/null 2>&1 || true
}

log "Llama Stack in replay mode (provider $DEAD_URL)"
start_ls replay "$DEAD_URL"
LS_PGID=$BG_PID
check_server ls "$LS_PORT"

log "our stack in replay mode (provider $DEAD_URL)"
start_ours replay "$DEAD_URL"
OURS_PGID=$BG_PID
check_server ours "$OURS_PORT"

# nginx: the bytes our stack replays for the chat request, as a static file answering the POST
# (a static file answers POST with 405; error_page turns that into a GET of the same file).
log "nginx serving our replayed chat bytes ($(wc -c <"$WORK/out/ours-chat-replay.json") B)"
mkdir -p "$WORK/nginx/www/v1/chat" "$WORK/nginx/tmp"
cp "$WORK/out/ours-chat-replay.json" "$WORK/nginx/www/v1/chat/completions"
chmod -R a+rX "$WORK/nginx/www"; chmod a+x "$WORK"
{
  echo "daemon off;"
  echo "worker_processes auto;"
  [[ "$(id -u)" == 0 ]] && echo "user root;"
  echo "pid $WORK/nginx/nginx.pid;"
  echo "error_log $WORK/nginx/error.log warn;"
  echo "events { worker_connections 1024; }"
  echo "http {"
  echo "  access_log off;"
  # the temp paths compiled into this nginx (Debian: /var/lib/nginx/...), moved into $WORK
  "$NGINX" -V 2>&1 | tr ' ' '\n' | sed -n 's/^--http-\([a-z-]*\)-temp-path=.*/\1/p' | while read -r m; do
    echo "  ${m//-/_}_temp_path $WORK/nginx/tmp/$m;"
  done
  echo "  sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000000; keepalive_timeout 65;"
  echo "  server {"
  echo "    listen 127.0.0.1:$NGINX_PORT;"
  echo "    root $WORK/nginx/www;"
  echo "    location = /v1/chat/completions { default_type application/json; error_page 405 =200 \$uri; }"
  echo "  }"
  echo "}"
} >"$WORK/nginx/nginx.conf"
"$NGINX" -t -p "$WORK/nginx/" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/test.log" 2>&1 \
  || { cat "$WORK/nginx/test.log" >&2; die "nginx rejects its config ($WORK/nginx/nginx.conf)"; }
start_bg nginx "$WORK/nginx/run.log" "$NGINX" -p "$WORK/nginx/" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf"
NGINX_PGID=$BG_PID
for _ in $(seq 1 50); do port_free "$NGINX_PORT" || break; kill -0 "$NGINX_PGID" 2>/dev/null || break; sleep 0.2; done
code="$(curl -sS --max-time 5 -o "$WORK/out/nginx-chat.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d "$CHAT_BODY" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions")" || code="curl failed"
if [[ "$code" != 200 ]] || ! cmp -s "$WORK/out/nginx-chat.json" "$WORK/out/ours-chat-replay.json"; then
  cat "$WORK/nginx/error.log" "$WORK/nginx/run.log" >&2 2>/dev/null || true
  die "nginx does not serve the chat bytes (HTTP $code)"
fi

# With the three servers up and idle: how busy the machine is with other work.
busy all
for port in "$LS_PORT" "$OURS_PORT"; do warm_up "$port" chat; warm_up "$port" stream; done
warm_up "$NGINX_PORT" chat
python3 "$HERE/replay_vs_llamastack.py" settle 60 >/dev/null

log "$ROUNDS rounds of ${DURATION} s runs, the servers taking turns row by row"
for round in $(seq 1 "$ROUNDS"); do
  for conns in $CONNS_CHAT; do
    load ls "$LS_PORT" "$LS_PGID" chat "$conns" "$round"
    load ours "$OURS_PORT" "$OURS_PGID" chat "$conns" "$round"
    load nginx "$NGINX_PORT" "$NGINX_PGID" chat "$conns" "$round"
  done
  for conns in $CONNS_STREAM; do
    load ls "$LS_PORT" "$LS_PGID" stream "$conns" "$round"
    load ours "$OURS_PORT" "$OURS_PGID" stream "$conns" "$round"
  done
done
for pid in "$NGINX_PGID" "$OURS_PGID" "$LS_PGID"; do stop_pid "$pid" "server"; forget_pid "$pid"; done

# ---- 6. table --------------------------------------------------------------------------------

mkdir -p "$(dirname "$OUT_MD")"
python3 "$HERE/replay_vs_llamastack.py" table "$WORK" "$OUT_MD" \
  --duration "$DURATION" --rounds "$ROUNDS" --conns-chat "$CONNS_CHAT" --conns-stream "$CONNS_STREAM" \
  --ls-version "$LS_GOT" --model "$MODEL" --commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  --elapsed "$(($(date +%s) - T0))" --busy "$WORK/busy.txt" --settle "$WORK/settle.txt"
log "table written to ${OUT_MD#"$ROOT"/}; whole run $(($(date +%s) - T0)) s"
OK=1
