"""What the replay benchmarks share: one timed POST to a replaying stack server (stdlib only).

Each request carries the test id of a committed recording and a fresh execution nonce, so it
replays occurrence 0 of its test with the ids that test minted.
"""
import json
import statistics
import time
import uuid


def post(conn, path, test_id, body):
    """POSTs `body` to `path` over the keep-alive `conn`; returns (milliseconds, answer bytes).
    Exits on a status other than 200."""
    headers = {"content-type": "application/json",
               "X-LlamaStack-Provider-Data": json.dumps({"__test_id": test_id, "__test_run": uuid.uuid4().hex})}
    start = time.perf_counter()
    conn.request("POST", path, json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = (time.perf_counter() - start) * 1000
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {data[:300]!r}")
    return elapsed, data


def summary(times):
    """p50, p95 and mean of a list of milliseconds."""
    times = sorted(times)
    return {"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "mean": statistics.fmean(times)}
