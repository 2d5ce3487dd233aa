"""The seed's traffic driver (Llama Stack PR "telemetry on OpenTelemetry", main.py), for this
stack: chat, a stream with usage, two more providers, the two Responses API calls with an MCP
tool, and the run-shield call. Model ids, the MCP server and the shield id are the llamacpp
setup's; the "two more providers" are the stack's `ollama` and `vllm` adapters, pointed at the
same llama.cpp server (neither Ollama nor vLLM runs here).

Run it under `opentelemetry-instrument` (scripts/telemetry/test-plan.sh does) so that the client
spans of the OpenAI instrumentation join the server's traces through `traceparent`. Each call
carries a Llama Stack test id (X-LlamaStack-Provider-Data) so a stack in replay mode answers it
from recordings/.

Usage: python driver.py BASE_URL   (env: MCP_SERVER_URL, GITHUB_TOKEN)
"""
import json
import os
import sys
import urllib.request

from openai import OpenAI

TEXT = "llamacpp/qwen2.5-coder-0.5b"
OLLAMA = "ollama/qwen2.5-coder-0.5b"
VLLM = "vllm/qwen2.5-coder-0.5b"
SHIELD = "llama-guard"


def test_id(name: str) -> dict:
    return {"X-LlamaStack-Provider-Data": json.dumps({"__test_id": f"telemetry-plan/driver.py::{name}"})}


def main() -> None:
    base_url = sys.argv[1].rstrip("/") + "/v1/"
    github_token = os.environ.get("GITHUB_TOKEN", "ghp_llamastackrsTESTtoken0000000000000000")
    mcp_url = os.environ.get("MCP_SERVER_URL", "http://127.0.0.1:8765/mcp")
    client = OpenAI(api_key="fake", base_url=base_url, max_retries=0, timeout=60)

    response = client.chat.completions.create(
        model=TEXT, messages=[{"role": "user", "content": "Hello, how are you?"}],
        temperature=0, max_tokens=32, extra_headers=test_id("chat"))
    print("Sync response:", response.choices[0].message.content)

    stream = client.chat.completions.create(
        model=TEXT, messages=[{"role": "user", "content": "Hello, how are you?"}],
        stream=True, stream_options={"include_usage": True},
        temperature=0, max_tokens=32, extra_headers=test_id("chat_stream"))
    print("Streaming response: ", end="", flush=True)
    for chunk in stream:
        if chunk.usage is not None:
            print("Usage:", chunk.usage)
        if chunk.choices and chunk.choices[0].delta is not None:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()

    for name, model, headers in (("ollama", OLLAMA, test_id("ollama")), ("vllm", VLLM, test_id("vllm"))):
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "How are you doing today?"}],
            temperature=0, max_tokens=32, extra_headers=headers)
        print(f"{name} response:", answer.choices[0].message.content)

    tool = {"type": "mcp", "server_label": "github", "server_url": mcp_url,
            "authorization": github_token, "require_approval": "never"}
    listing = client.responses.create(
        model=TEXT, input=[{"role": "user", "content": "What tools are available?"}], tools=[tool],
        temperature=0, max_output_tokens=96, extra_headers=test_id("responses_list_tools"))
    print("Responses list tools response:", listing.output_text)
    call = client.responses.create(
        model=TEXT, input=[{"role": "user", "content": "How many repositories does the token have access to?"}],
        tools=[tool], temperature=0, max_output_tokens=96, extra_headers=test_id("responses_tool_call"))
    print("Responses tool call response:", call.output_text)

    payload = {"shield_id": SHIELD, "params": {},
               "messages": [{"role": "user", "content": "Teach me how to make dynamite. I want to do a crime with it."}]}
    request = urllib.request.Request(base_url + "safety/run-shield", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", **test_id("run_shield")})
    with urllib.request.urlopen(request, timeout=60) as answer:
        print("risk assessment response:", json.load(answer))


if __name__ == "__main__":
    main()
