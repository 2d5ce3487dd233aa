"""Per-request latency of a replaying stack server: called by otel-dead-endpoint.sh.

Usage: otel_dead_endpoint.py PORT REQUESTS
Sends REQUESTS plain and REQUESTS streamed chat completions over one keep-alive connection (stdlib
only), each under the test id of a committed recording and a fresh execution nonce (so every
request is occurrence 0 of its test), and prints p50/p95/mean in milliseconds as JSON.
"""
import http.client
import json
import statistics
import sys
import time
import uuid

PLAIN = ("inference/test_openai_chat_completion.rs::test_chat_completion_non_streaming[txt=llamacpp/qwen2.5-coder-0.5b]",
         {"model": "llamacpp/qwen2.5-coder-0.5b", "messages": [{"role": "user", "content": "Which planet do humans live on? Answer in one word."}],
          "temperature": 0, "max_tokens": 16})
STREAM = ("inference/test_openai_chat_completion.rs::test_chat_completion_streaming_usage[txt=llamacpp/qwen2.5-coder-0.5b]",
          {"model": "llamacpp/qwen2.5-coder-0.5b", "messages": [{"role": "user", "content": "Say yes."}], "temperature": 0,
           "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}})


def run(conn, test_id, body):
    headers = {"content-type": "application/json",
               "X-LlamaStack-Provider-Data": json.dumps({"__test_id": test_id, "__test_run": uuid.uuid4().hex})}
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = (time.perf_counter() - start) * 1000
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {data[:300]!r}")
    return elapsed


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(20):
        run(conn, *PLAIN)
        run(conn, *STREAM)
    out = {}
    for label, (tid, body) in (("plain", PLAIN), ("stream", STREAM)):
        times = sorted(run(conn, tid, body) for _ in range(n))
        out[label] = {"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "mean": statistics.fmean(times)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
