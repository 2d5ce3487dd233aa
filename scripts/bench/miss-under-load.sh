#!/usr/bin/env bash
# A replay miss on a large body must not stall the server (issue 12): starts `stack run starter`
# in replay (release build), sends CONCURRENT chat requests of about 1 MB that are not
# recorded, and polls /v1/health every 5 ms meanwhile; prints the misses' latency and the health
# checks' p50 and maximum. Stops what it started.
#
# Usage: scripts/bench/miss-under-load.sh [MESSAGES [CONCURRENT]]   (default 10000 messages, ~1 MB; 1)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PORT:-8397}"
WORK="$ROOT/target/bench"
mkdir -p "$WORK"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap stop_stack EXIT
cd "$ROOT"
cargo build -q --release --features replay --bin stack
start_stack "$ROOT/target/release/stack" "$PORT" "$WORK/miss-under-load.log" \
  LLAMA_STACK_TEST_INFERENCE_MODE=replay LLAMACPP_URL=http://127.0.0.1:1 SQLITE_STORE_DIR="$WORK/miss-store"
python3 - "http://127.0.0.1:$PORT" "${1:-10000}" "${2:-1}" <<'PY'
import json, statistics, sys, threading, time, urllib.request, urllib.error
base, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"model": "llamacpp/qwen2.5-coder-0.5b", "messages": [
    {"role": "user", "content": f"message {i}: the quick brown fox jumps over the lazy dog"} for i in range(n)]}).encode()
misses, health, done = [], [], threading.Event()
def miss():
    req = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={
        "content-type": "application/json",
        "X-LlamaStack-Provider-Data": json.dumps({"__test_id": "bench/miss-under-load"})})
    t = time.perf_counter()
    try:
        urllib.request.urlopen(req, timeout=120).read()
    except urllib.error.HTTPError as e:
        size = len(e.read())
        misses.append((time.perf_counter() - t, e.code, size))
def poll():
    while not done.is_set():
        t = time.perf_counter()
        urllib.request.urlopen(base + "/v1/health", timeout=30).read()
        health.append(time.perf_counter() - t)
        time.sleep(0.005)
poller = threading.Thread(target=poll); poller.start()
time.sleep(0.2)
workers = [threading.Thread(target=miss) for _ in range(conc)]
[w.start() for w in workers]; [w.join() for w in workers]
done.set(); poller.join()
print(f"body: {len(body)/1e6:.2f} MB ({n} messages), {conc} concurrent miss(es)")
for secs, code, size in misses:
    print(f"miss: HTTP {code} in {secs*1000:.0f} ms, error body {size} bytes")
print(f"/v1/health during the misses: {len(health)} checks, p50 {statistics.median(health)*1000:.2f} ms, max {max(health)*1000:.2f} ms")
PY
