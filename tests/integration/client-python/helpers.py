"""One test body for sync and async clients: await what is awaitable, iterate what streams."""

from __future__ import annotations

import base64
import inspect
import struct


async def call(result):
    """The result of a client call: awaited for an async client, as is for a sync one."""
    return await result if inspect.isawaitable(result) else result


async def collect(stream) -> list:
    """Every event of a sync or async stream."""
    if hasattr(stream, "__aiter__"):
        return [event async for event in stream]
    return list(stream)


def decode_base64_floats(text: str) -> list[float]:
    """An embedding in `encoding_format: base64`: little-endian f32 values."""
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def usage_of(response) -> dict:
    """`usage` as a dict (llama-stack-client types it as a dict for completions)."""
    usage = response.usage
    return usage if isinstance(usage, dict) else usage.model_dump()


def output_text(response) -> str:
    """The text of a Responses API response's messages (llama-stack-client has no output_text)."""
    return "".join(
        part.text
        for item in response.output
        if item.type == "message"
        for part in item.content
        if getattr(part, "type", None) == "output_text"
    )
