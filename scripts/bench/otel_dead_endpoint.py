"""Per-request latency of a replaying stack server: called by otel-dead-endpoint.sh.

Usage: otel_dead_endpoint.py PORT REQUESTS
Sends REQUESTS plain and REQUESTS streamed chat completions over one keep-alive connection (stdlib
only), each under the test id of a committed recording and a fresh execution nonce (so every
request is occurrence 0 of its test), and prints p50/p95/mean in milliseconds as JSON.
"""
import http.client
import json
import sys

from replay_client import post, summary

PLAIN = ("inference/test_openai_chat_completion.rs::test_chat_completion_non_streaming[txt=llamacpp/qwen2.5-coder-0.5b]",
         {"model": "llamacpp/qwen2.5-coder-0.5b", "messages": [{"role": "user", "content": "Which planet do humans live on? Answer in one word."}],
          "temperature": 0, "max_tokens": 16})
STREAM = ("inference/test_openai_chat_completion.rs::test_chat_completion_streaming_usage[txt=llamacpp/qwen2.5-coder-0.5b]",
          {"model": "llamacpp/qwen2.5-coder-0.5b", "messages": [{"role": "user", "content": "Say yes."}], "temperature": 0,
           "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}})


def run(conn, test_id, body):
    return post(conn, "/v1/chat/completions", test_id, body)[0]


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(20):
        run(conn, *PLAIN)
        run(conn, *STREAM)
    out = {}
    for label, (tid, body) in (("plain", PLAIN), ("stream", STREAM)):
        out[label] = summary([run(conn, tid, body) for _ in range(n)])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
