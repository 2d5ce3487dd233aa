#!/usr/bin/env bash
# Benchmark (issue 13): what recording a large request costs on top of a real provider's own time.
#
# Starts our stack twice against the same real llama-server (scripts/providers/llamacpp.sh): one
# in `live` mode (the recorder passes every request through) and one in `record` mode (each
# request keyed, scrubbed and written as a blob into a temporary directory). Then, round by round,
# sends the same large chat request (38,000 messages, about 4.5 MB: the 4 MB one of `cargo bench
# --bench record` with a round number in each message) to both, in alternating order, and times
# each answer at the client. Each round's request differs (its round number), so every recorded
# one is a new key and a new blob. llama-server reads the whole prompt and answers 400 (it
# exceeds the model's context): its real cost for such a request, which the recorder records like
# any 4xx answer. Both modes must get that answer every round, else the run fails.
#
# Prints a table and writes it to target/bench/record-overhead.md. Stops everything it started.
#
# Usage: scripts/bench/record-overhead.sh [--rounds N (default 4: each mode goes first as often)]
#                                          [--messages N (default 38000)] [--no-build]
# Env:   LLAMACPP_PORT (8080: a running llama-server there is used), BENCH_LLAMACPP_PORT (8434:
#        where it starts its own), BENCH_MODEL (smollm2-135m), BENCH_LIVE_PORT (8441),
#        BENCH_RECORD_PORT (8442)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

ROUNDS=4
MESSAGES=38000
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="${2:?--rounds needs a number}"; shift 2 ;;
    --messages) MESSAGES="${2:?--messages needs a number}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
positive_int --rounds "$ROUNDS"
positive_int --messages "$MESSAGES"

MODEL="${BENCH_MODEL:-smollm2-135m}"
LIVE_PORT="${BENCH_LIVE_PORT:-8441}"
RECORD_PORT="${BENCH_RECORD_PORT:-8442}"
OUT_MD="$ROOT/target/bench/record-overhead.md"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/record-overhead.XXXXXX")"
LIVE_PID=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_stack
  STACK_PID="$LIVE_PID"
  stop_stack
  bench_llamacpp_stop
  if [[ "$rc" == 0 ]]; then rm -rf "$WORK"; else echo "kept $WORK (logs)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STACK_BIN="$(release_stack "$BUILD")"

[[ "$LIVE_PORT" != "$RECORD_PORT" ]] || { echo "BENCH_LIVE_PORT and BENCH_RECORD_PORT must differ" >&2; exit 2; }
# A stack already answering on our ports would be measured instead of ours.
for port in "$LIVE_PORT" "$RECORD_PORT"; do
  if curl -fsS --max-time 2 "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1; then
    echo "something already answers on port $port: stop it, or set BENCH_LIVE_PORT / BENCH_RECORD_PORT" >&2
    exit 1
  fi
done

bench_llamacpp "$WORK/llamacpp.env"
PROVIDER_URL="$BENCH_LLAMACPP_URL"

mkdir -p "$WORK/rec" "$WORK/live-db" "$WORK/record-db"
start_stack "$STACK_BIN" "$LIVE_PORT" "$WORK/live.log" LLAMA_STACK_TEST_INFERENCE_MODE=live \
  LLAMACPP_URL="$PROVIDER_URL" SQLITE_STORE_DIR="$WORK/live-db"
LIVE_PID="$STACK_PID"
start_stack "$STACK_BIN" "$RECORD_PORT" "$WORK/record.log" LLAMA_STACK_TEST_INFERENCE_MODE=record \
  LLAMA_STACK_TEST_RECORDING_DIR="$WORK/rec" LLAMACPP_URL="$PROVIDER_URL" SQLITE_STORE_DIR="$WORK/record-db"

mkdir -p "$(dirname "$OUT_MD")"
python3 - "$LIVE_PORT" "$RECORD_PORT" "$MODEL" "$ROUNDS" "$MESSAGES" "$WORK/rec/responses" "$OUT_MD" <<'PY'
import json, os, statistics, sys, time, urllib.error, urllib.request

live_port, record_port, model, rounds, messages, blobs, out_md = sys.argv[1:]
rounds, messages = int(rounds), int(messages)

def body(round_):
    return json.dumps({"model": f"llamacpp/{model}", "temperature": 0, "max_tokens": 8, "messages": [
        {"role": "user", "content": f"round {round_}, message {i}: the quick brown fox jumps over the lazy dog, then the next one"}
        for i in range(messages)]}).encode()

def ask(port, data, round_):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=data, headers={
        "content-type": "application/json",
        "X-LlamaStack-Provider-Data": json.dumps({"__test_id": f"bench/record-overhead.sh::round_{round_}"})})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            status, answer = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read()
    return time.perf_counter() - started, status, answer

times = {"live": [], "record": []}
statuses, answers, answer_bytes, size = {}, set(), 0, 0
for r in range(1, rounds + 1):
    data = body(r)
    size = len(data)
    order = [("live", live_port), ("record", record_port)]
    if r % 2 == 0:
        order.reverse()
    for name, port in order:
        took, status, answer = ask(port, data, r)
        times[name].append(took)
        statuses.setdefault(status, []).append(name)
        answers.add(answer.decode("utf-8", "replace"))
        answer_bytes = len(answer)
        print(f"round {r}: {name} {took * 1000:.0f} ms (HTTP {status})", file=sys.stderr, flush=True)

# The stack also records the provider's model list when it starts: only this run's requests count.
def ours(path):
    with open(path, "rb") as f:
        return (json.load(f).get("test_id") or "").startswith("bench/record-overhead.sh::")
# Both modes must have had the same answer every time, and the one that says llama-server read
# the whole prompt (a 400 for a prompt past its context): another answer (a wrong model, a
# failure) would time something else.
if len(statuses) != 1 or any("context" not in a for a in answers):
    sys.exit(f"llama-server did not answer as expected (HTTP status: modes {statuses}; answers {sorted(answers)[:2]})")
files = [p for p in (os.path.join(blobs, f) for f in os.listdir(blobs) if f.endswith(".json")) if ours(p)]
if len(files) != rounds:
    sys.exit(f"expected {rounds} recordings in {blobs}, found {len(files)}")
blob = statistics.median(os.path.getsize(f) for f in files)
live, record = statistics.median(times["live"]), statistics.median(times["record"])
diffs = [b - a for a, b in zip(times["live"], times["record"])]
lines = [
    f"Recording a {size / 1e6:.1f} MB chat request ({messages} messages) through our stack against llama-server ({model}); "
    f"its answer: HTTP {next(iter(statuses))}, {answer_bytes} B. {rounds} rounds, medians.",
    "",
    "| mode | per request | by round |",
    "|---|---|---|",
    f"| live (no recording) | {live * 1000:,.0f} ms | {', '.join(f'{t * 1000:,.0f}' for t in times['live'])} |",
    f"| record (a new blob each round) | {record * 1000:,.0f} ms | {', '.join(f'{t * 1000:,.0f}' for t in times['record'])} |",
    "",
    f"Recording's cost: {statistics.median(diffs) * 1000:+,.0f} ms a request (median of the rounds' differences: "
    f"{', '.join(f'{d * 1000:+,.0f}' for d in diffs)} ms), {statistics.median(diffs) / live * 100:+.1f}% of the provider's own time; "
    f"the provider's own time varied by {(max(times['live']) - min(times['live'])) * 1000:,.0f} ms between rounds.",
    f"Blob: {blob / 1e6:.2f} MB for {(size + answer_bytes) / 1e6:.2f} MB of request and answer ({blob / (size + answer_bytes):.2f}x).",
]
text = "\n".join(lines) + "\n"
print(text)
with open(out_md, "w") as f:
    f.write(text)
PY
