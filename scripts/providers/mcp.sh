#!/usr/bin/env bash
# Start, stop or inspect a real MCP server (official Python SDK mcp==1.30.0, FastMCP, streamable HTTP,
# stateful sessions, loopback only) serving the deterministic test tools of scripts/providers/mcp_server.py:
#   get_weather(city), list_repositories(), get_repository_issues(repository) (always fails: isError true)
#
# Everything comes from PyPI, pinned in scripts/providers/mcp-requirements.txt, installed once in a cached venv.
# `start` prints `export MCP_SERVER_URL=http://127.0.0.1:PORT/mcp`, so `eval "$(scripts/providers/mcp.sh start)"` works.
#
# Usage: scripts/providers/mcp.sh start|stop|status|url|install
# Env:   MCP_PORT (default 8765), MCP_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/llama-stack-rs/mcp),
#        MCP_REQUIRED_TOKEN (require `Authorization: Bearer <token>`; default: the integration suite's
#        fake test token, tests/integration/responses/mod.rs MCP_TOKEN; set it empty to require none),
#        MCP_REQUIRED_HEADER (`Name: value`),
#        MCP_MAX_LIFETIME_SECONDS (default 7200: the server exits by itself after that)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
CACHE="${MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llama-stack-rs/mcp}"
PORT="${MCP_PORT:-8765}"
RUN_DIR="$CACHE/run"
PID_FILE="$RUN_DIR/mcp-server-$PORT.pid"
LOG_FILE="$RUN_DIR/mcp-server-$PORT.log"
VENV="$CACHE/venv"
REQUIREMENTS="$ROOT/scripts/providers/mcp-requirements.txt"
SERVER="$ROOT/scripts/providers/mcp_server.py"
URL="http://127.0.0.1:$PORT/mcp"
# The fake credential the integration suite sends (and checks never reaches disk).
export MCP_REQUIRED_TOKEN="${MCP_REQUIRED_TOKEN-ghp_llamastackrsTESTtoken0000000000000000}"

log() { echo "mcp.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

python_bin() {
  if command -v python3.11 >/dev/null 2>&1; then echo python3.11; else echo python3; fi
}

ensure_venv() {
  local want have=""
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
  [[ -f "$VENV/.requirements.sha256" ]] && have="$(cat "$VENV/.requirements.sha256")"
  if [[ ! -x "$VENV/bin/python" || "$have" != "$want" ]]; then
    log "installing $(grep -E '^mcp==' "$REQUIREMENTS") and its pinned dependencies into $VENV"
    rm -rf "$VENV"
    "$(python_bin)" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$want" >"$VENV/.requirements.sha256"
  fi
}

running_pid() { pidfile_running "$PID_FILE"; }

# any HTTP answer on /mcp (406 without the right Accept header, 401 when a token is required) means it serves
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL" 2>/dev/null || true; }

start() {
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    echo "export MCP_SERVER_URL=$URL"
    return 0
  fi
  ensure_venv
  mkdir -p "$RUN_DIR"
  log "starting the MCP server on $URL (log: $LOG_FILE)"
  # Until it is ready, a start that fails (exit, timeout) or is interrupted stops the server.
  trap stop EXIT
  MCP_PORT="$PORT" nohup "$VENV/bin/python" "$SERVER" >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  local i code
  for i in $(seq 1 120); do
    kill -0 "$(cat "$PID_FILE")" 2>/dev/null || { tail -n 30 "$LOG_FILE" >&2; rm -f "$PID_FILE"; die "the MCP server exited during start"; }
    if grep -q "Uvicorn running on" "$LOG_FILE"; then
      code="$(http_code)"
      if [[ -n "$code" && "$code" != "000" ]]; then
        trap - EXIT
        log "ready after ~$((i / 4)) s"
        echo "export MCP_SERVER_URL=$URL"
        return 0
      fi
    fi
    sleep 0.25
  done
  tail -n 30 "$LOG_FILE" >&2
  die "the MCP server did not become ready within 30 s"
}

stop() { pidfile_stop "$PID_FILE" mcp.sh; }

status() { pidfile_status "$PID_FILE" "$URL"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  install) ensure_venv && log "ready: $VENV" ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|status|url|install" >&2; exit 2 ;;
esac
