"""The Responses API through the clients: text, streamed events, and an MCP tool the stack lists
and calls (its MCP traffic replays from the mirrored Rust test's recordings too)."""

from __future__ import annotations

import os

import pytest

from helpers import call, collect, output_text

# As in tests/integration/responses/mod.rs: the MCP server and the fake token the recordings were
# made with (the host and port are not part of the request key; the path is).
MCP_TOKEN = "ghp_llamastackrsTESTtoken0000000000000000"


def mcp_tool() -> dict:
    return {"type": "mcp", "server_label": "github",
            "server_url": os.environ.get("MCP_SERVER_URL") or "http://127.0.0.1:8765/mcp",
            "authorization": MCP_TOKEN, "require_approval": "never"}


def items(response, kind: str) -> list:
    return [item for item in response.output if item.type == kind]


def before(kinds: list[str], expected: list[str]) -> bool:
    """`expected` appear in `kinds` in this order (others may come between)."""
    at = 0
    for kind in expected:
        if kind not in kinds[at:]:
            return False
        at += kinds[at:].index(kind) + 1
    return True


async def test_response_text_non_streaming(client, mirror):
    r = await call(client.responses.create(
        model=mirror.model("txt"), input="Which planet do humans live on? Answer in one word.",
        temperature=0, max_output_tokens=16))
    assert r.status == "completed" and r.model == mirror.model("txt"), r
    messages = items(r, "message")
    assert len(messages) == 1 and messages[0].role == "assistant", r.output
    assert output_text(r).strip(), r
    assert r.store is True and r.error is None


async def test_response_text_streaming(client, mirror):
    events = await collect(await call(client.responses.create(
        model=mirror.model("txt"), input="Name two colors.", temperature=0, max_output_tokens=24, stream=True)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert before(kinds, ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
                          "response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]), kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = events[-1].response
    assert completed.status == "completed" and output_text(completed) == deltas
    # The streamed response is stored like any other (this reaches no provider).
    stored = await call(client.responses.retrieve(completed.id))
    assert stored.id == completed.id and output_text(stored) == deltas


@pytest.mark.fresh_test_run
async def test_mcp_list_tools(client, mirror):
    r = await call(client.responses.create(
        model=mirror.model("txt"), input=[{"role": "user", "content": "What tools are available?"}],
        tools=[mcp_tool()], temperature=0, max_output_tokens=96))
    assert r.status == "completed", r
    listing = items(r, "mcp_list_tools")
    assert len(listing) == 1 and r.output[0].type == "mcp_list_tools", r.output
    names = sorted(t.name for t in listing[0].tools)
    assert names == ["get_repository_issues", "get_weather", "list_repositories"], names
    assert MCP_TOKEN not in r.model_dump_json()


@pytest.mark.fresh_test_run
async def test_mcp_tool_call(client, mirror):
    r = await call(client.responses.create(
        model=mirror.model("txt"), input="What is the weather in Paris?", tools=[mcp_tool()],
        temperature=0, max_output_tokens=96))
    assert r.status == "completed", r.error
    kinds = [item.type for item in r.output]
    assert kinds[0] == "mcp_list_tools" and kinds[-1] == "message", kinds
    calls = items(r, "mcp_call")
    assert calls and calls[0].name == "get_weather" and calls[0].server_label == "github", calls
    assert calls[0].error is None and "Paris" in calls[0].output, calls[0]
    assert output_text(r).strip()


@pytest.mark.fresh_test_run
async def test_mcp_tool_call_streaming(client, mirror):
    events = await collect(await call(client.responses.create(
        model=mirror.model("txt"), input="What is the weather in Paris?", tools=[mcp_tool()],
        temperature=0, max_output_tokens=96, stream=True)))
    kinds = [e.type for e in events]
    assert before(kinds, ["response.mcp_list_tools.in_progress", "response.mcp_list_tools.completed",
                          "response.mcp_call.in_progress", "response.mcp_call_arguments.delta",
                          "response.mcp_call_arguments.done", "response.mcp_call.completed",
                          "response.output_text.delta", "response.completed"]), kinds
    completed = events[-1].response
    assert completed.status == "completed"
    assert [i.type for i in completed.output] == ["mcp_list_tools", "mcp_call", "message"], completed.output
