"""Per-request latency of a replaying stack server for a plain chat and for a two-turn Responses API
call with an MCP tool (list tools, call get_weather, answer): called by responses-replay.sh.

Usage: responses_replay.py PORT REQUESTS
Each request carries the test id of a committed recording and a fresh execution nonce, so every
request replays occurrence 0 of its test with the ids the test minted. Interleaves the two kinds
over one keep-alive connection (stdlib only) and prints p50/p95/mean in milliseconds and the ratio.
"""
import http.client
import json
import sys

from replay_client import post, summary

MODEL = "llamacpp/qwen2.5-coder-0.5b"
CHAT = ("/v1/chat/completions",
        f"inference/test_openai_chat_completion.rs::test_chat_completion_non_streaming[txt={MODEL}]",
        {"model": MODEL, "messages": [{"role": "user", "content": "Which planet do humans live on? Answer in one word."}],
         "temperature": 0, "max_tokens": 16})
MCP = ("/v1/responses",
       f"responses/test_mcp.rs::test_mcp_tool_call[txt={MODEL}]",
       {"model": MODEL, "input": "What is the weather in Paris?", "temperature": 0, "max_output_tokens": 96,
        "tools": [{"type": "mcp", "server_label": "github", "server_url": "http://127.0.0.1:8765/mcp",
                   "authorization": "ghp_llamastackrsTESTtoken0000000000000000", "require_approval": "never"}]})


def run(conn, path, test_id, body):
    elapsed, data = post(conn, path, test_id, body)
    if path == "/v1/responses":
        r = json.loads(data)
        kinds = [i["type"] for i in r["output"]]
        if r["status"] != "completed" or kinds != ["mcp_list_tools", "mcp_call", "message"]:
            raise SystemExit(f"unexpected response: {r['status']} {kinds} {r.get('error')}")
    return elapsed


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(20):
        run(conn, *CHAT)
        run(conn, *MCP)
    times = {"chat": [], "mcp_response": []}
    for _ in range(n):
        times["chat"].append(run(conn, *CHAT))
        times["mcp_response"].append(run(conn, *MCP))
    out = {}
    for label, t in times.items():
        out[label] = summary(t)
    out["ratio_p50"] = out["mcp_response"]["p50"] / out["chat"]["p50"]
    out["ratio_mean"] = out["mcp_response"]["mean"] / out["chat"]["mean"]
    for k in ("chat", "mcp_response"):
        v = out[k]
        print(f"{k:<13} p50 {v['p50']:.3f} ms  p95 {v['p95']:.3f} ms  mean {v['mean']:.3f} ms")
    print(f"MCP response / chat: {out['ratio_p50']:.2f}x at p50, {out['ratio_mean']:.2f}x mean (target: at most 3x)")


if __name__ == "__main__":
    main()
