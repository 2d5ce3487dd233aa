#!/usr/bin/env bash
# Slow clients must not take the server down (issue 12): starts `stack run starter` (release, in
# replay), opens N connections that send half a request and stop, and measures /v1/health
# meanwhile and after the server's header timeout (10 s) has dropped them. Stops what it started.
#
# Usage: scripts/bench/slow-clients.sh [N]   (default 2000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PORT:-8396}"
WORK="$ROOT/target/bench"
mkdir -p "$WORK"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
ulimit -n 8192 2>/dev/null || true
trap stop_stack EXIT
cd "$ROOT"
cargo build -q --release --features replay --bin stack
start_stack "$ROOT/target/release/stack" "$PORT" "$WORK/slow-clients.log" \
  LLAMA_STACK_TEST_INFERENCE_MODE=replay LLAMACPP_URL=http://127.0.0.1:1 SQLITE_STORE_DIR="$WORK/slow-store"
python3 - "$PORT" "${1:-2000}" <<'PY'
import socket, statistics, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
def health(k=20):
    out = []
    for _ in range(k):
        t = time.perf_counter()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=30).read()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out), max(out)
slow = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
    slow.append(s)
p50, mx = health()
print(f"{n} half-sent requests held open: /v1/health p50 {p50:.2f} ms, max {mx:.2f} ms")
time.sleep(11)
closed = 0
for s in slow:
    # Closed by the server: end of stream (possibly after its 408), or a reset. Still open: a
    # read that times out.
    s.settimeout(0.01)
    try:
        s.recv(4096)
        closed += 1
    except (socket.timeout, BlockingIOError):
        pass
    except OSError:
        closed += 1
p50, mx = health()
print(f"after the 10 s header timeout: {closed} of {n} closed by the server; /v1/health p50 {p50:.2f} ms, max {mx:.2f} ms")
PY
