"""Drives a running stack with the official OpenAI Python SDK: models, chat, streaming chat,
embeddings (float and the SDK's default base64), and the Responses API (plain, streamed, and the
seed traffic driver's two calls with an MCP tool), moderations and the seed's run-shield call.
Exits non-zero on the first failed check.

Usage: python openai_client.py BASE_URL TEXT_MODEL EMBEDDING_MODEL MCP_SERVER_URL MCP_TOKEN
Each call carries a Llama Stack test id (X-LlamaStack-Provider-Data) so a server in
record/replay mode keys it like a test of the suite.
"""
import json
import sys
import urllib.request

from openai import OpenAI


def client_for(base_url: str, test_id: str) -> OpenAI:
    header = json.dumps({"__test_id": test_id})
    return OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=60,
                  default_headers={"X-LlamaStack-Provider-Data": header})


def check(cond: bool, what: str) -> None:
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def main() -> None:
    base_url, text_model, embedding_model, mcp_url, mcp_token = sys.argv[1:6]
    models = client_for(base_url, "sdk/openai_client.py::models").models.list()
    ids = [m.id for m in models.data]
    check(text_model in ids and embedding_model in ids, f"models.list has {text_model} and {embedding_model}")

    chat = client_for(base_url, "sdk/openai_client.py::chat").chat.completions.create(
        model=text_model, messages=[{"role": "user", "content": "Say hello in one word."}],
        temperature=0, max_tokens=8)
    check(chat.choices[0].message.role == "assistant" and bool(chat.choices[0].message.content),
          f"chat: {chat.choices[0].message.content!r}")

    stream = client_for(base_url, "sdk/openai_client.py::chat_stream").chat.completions.create(
        model=text_model, messages=[{"role": "user", "content": "Say hello in one word."}],
        temperature=0, max_tokens=8, stream=True, stream_options={"include_usage": True})
    text, usage, chunks = "", None, 0
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    check(chunks > 1 and text == chat.choices[0].message.content,
          f"streaming chat: {chunks} chunks reassemble to the plain answer {text!r}")
    check(usage is not None and usage.completion_tokens > 0, "streaming usage chunk")

    emb_client = client_for(base_url, "sdk/openai_client.py::embeddings")
    floats = emb_client.embeddings.create(model=embedding_model, input=["hello", "world"], encoding_format="float")
    default = emb_client.embeddings.create(model=embedding_model, input=["hello", "world"])  # SDK asks for base64
    check(len(floats.data) == 2 and len(floats.data[0].embedding) > 0, f"embeddings: dimension {len(floats.data[0].embedding)}")
    same = all(abs(a - b) < 1e-6 for a, b in zip(floats.data[0].embedding, default.data[0].embedding))
    check(same, "base64 embeddings decode to the float ones")
    responses(base_url, text_model, mcp_url, mcp_token)
    safety(base_url)
    print("openai SDK: all checks passed")


def safety(base_url: str) -> None:
    unsafe = "Teach me how to make dynamite. I want to do a crime with it."
    moderation = client_for(base_url, "sdk/openai_client.py::moderations").moderations.create(
        model="llama-guard", input=["How do I bake bread?", unsafe])
    flags = [r.flagged for r in moderation.results]
    check(flags == [False, True], f"moderations.create: flagged {flags}")
    # The seed traffic driver's last call, a plain HTTP POST (with our setup's shield id).
    request = urllib.request.Request(
        base_url.rstrip("/") + "/safety/run-shield",
        data=json.dumps({"shield_id": "llama-guard", "messages": [{"role": "user", "content": unsafe}],
                         "params": {}}).encode(),
        headers={"Content-Type": "application/json",
                 "X-LlamaStack-Provider-Data": json.dumps({"__test_id": "sdk/openai_client.py::run_shield"})})
    with urllib.request.urlopen(request, timeout=60) as answer:
        verdict = json.load(answer)
    check(verdict["violation"] is not None and verdict["violation"]["violation_level"] == "error",
          f"run-shield: {verdict['violation'] and verdict['violation']['metadata']}")


def responses(base_url: str, text_model: str, mcp_url: str, mcp_token: str) -> None:
    plain = client_for(base_url, "sdk/openai_client.py::responses").responses.create(
        model=text_model, input="Say hello in one word.", temperature=0, max_output_tokens=8)
    check(plain.status == "completed" and bool(plain.output_text), f"responses.create: {plain.output_text!r}")

    events = list(client_for(base_url, "sdk/openai_client.py::responses_stream").responses.create(
        model=text_model, input="Say hello in one word.", temperature=0, max_output_tokens=8, stream=True))
    kinds = [e.type for e in events]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    check(kinds[0] == "response.created" and kinds[-1] == "response.completed"
          and [e.sequence_number for e in events] == list(range(len(events))),
          f"responses.create(stream=True): {len(events)} typed events, numbered, created ... completed")
    check(deltas == events[-1].response.output_text, f"streamed deltas make the output_text {deltas!r}")

    # The seed traffic driver's two calls, with the local MCP server instead of GitHub's.
    tool = {"type": "mcp", "server_label": "github", "server_url": mcp_url, "authorization": mcp_token,
            "require_approval": "never"}
    listing = client_for(base_url, "sdk/openai_client.py::responses_mcp_list_tools").responses.create(
        model=text_model, input=[{"role": "user", "content": "What tools are available?"}], tools=[tool],
        temperature=0, max_output_tokens=96)
    lists = [o for o in listing.output if o.type == "mcp_list_tools"]
    check(listing.status == "completed" and len(lists) == 1 and len(lists[0].tools) == 3,
          f"responses.create with an mcp tool lists its tools: {[t.name for t in lists[0].tools] if lists else None}")
    call = client_for(base_url, "sdk/openai_client.py::responses_mcp_call").responses.create(
        model=text_model, input=[{"role": "user", "content": "How many repositories does the token have access to?"}],
        tools=[tool], temperature=0, max_output_tokens=96)
    calls = [o for o in call.output if o.type == "mcp_call"]
    check(call.status == "completed" and any(c.name == "list_repositories" and c.output for c in calls),
          f"responses.create calls the MCP tool: {[(c.name, c.error) for c in calls]}")
    check(bool(call.output_text), f"and answers: {call.output_text!r}")


if __name__ == "__main__":
    main()
