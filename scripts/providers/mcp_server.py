"""A real MCP server (official Python SDK, `mcp==1.30.0`, FastMCP) for recording the stack's MCP traffic.

Streamable HTTP, stateful (sessions with `mcp-session-id`), on 127.0.0.1 only, at
http://127.0.0.1:$MCP_PORT/mcp. Every answer is deterministic except the session id.

Tools:
  get_weather(city)                 fixed table (Paris, Tokyo, New York, London, Berlin); any other
                                    city gets a fixed default answer with "source": "default"
  list_repositories()               the same 3 repositories every time, as a JSON array
  get_repository_issues(repository) always fails: the result has isError true and the text
                                    "Error executing tool get_repository_issues: rate limit exceeded for repository <repository>"

Env:
  MCP_PORT                  port (default 8765)
  MCP_REQUIRED_TOKEN        if set, every HTTP request must carry `Authorization: Bearer <token>`, else 401
  MCP_REQUIRED_HEADER       if set, `Name: value`; every HTTP request must carry that header with that value, else 401
  MCP_MAX_LIFETIME_SECONDS  the server exits by itself after this many seconds (default 7200)

Started and stopped by scripts/providers/mcp.sh (see docs/mcp-server.md).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sys
import threading
from typing import Annotated

import uvicorn
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp.server.fastmcp import FastMCP

HOST = "127.0.0.1"  # loopback only, on purpose: not configurable
PATH = "/mcp"

log = logging.getLogger("mcp_server")

mcp = FastMCP(
    name="llama-stack-rs-test-mcp",
    instructions="Deterministic test tools: weather for a few cities, and a fixed set of repositories.",
    host=HOST,
    streamable_http_path=PATH,
    # stateful (the default): sessions with mcp-session-id, SSE answers, GET stream, DELETE
    stateless_http=False,
    json_response=False,
)

WEATHER = {
    "paris": {"city": "Paris", "temperature": 18, "unit": "celsius", "conditions": "partly cloudy", "humidity": 62},
    "tokyo": {"city": "Tokyo", "temperature": 24, "unit": "celsius", "conditions": "sunny", "humidity": 55},
    "new york": {"city": "New York", "temperature": 12, "unit": "celsius", "conditions": "light rain", "humidity": 81},
    "london": {"city": "London", "temperature": 14, "unit": "celsius", "conditions": "overcast", "humidity": 77},
    "berlin": {"city": "Berlin", "temperature": 16, "unit": "celsius", "conditions": "clear", "humidity": 58},
}

REPOSITORIES = [
    {"name": "llama-stack-rs", "full_name": "acme/llama-stack-rs", "private": False, "stars": 128},
    {"name": "recordings", "full_name": "acme/recordings", "private": True, "stars": 3},
    {"name": "weather-bot", "full_name": "acme/weather-bot", "private": False, "stars": 42},
]


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


@mcp.tool(structured_output=False)
def get_weather(
    city: Annotated[str, Field(description="Name of the city, e.g. Paris, Tokyo or New York")],
) -> str:
    """Get the current weather for a city: temperature in degrees Celsius, conditions and humidity (percent)."""
    key = city.split(",")[0].strip().lower()
    found = WEATHER.get(key)
    if found is None:
        # unknown cities get a fixed answer instead of an error, so any question gets a repeatable result
        found = {"city": city.strip(), "temperature": 20, "unit": "celsius", "conditions": "clear", "humidity": 50,
                 "source": "default"}
    return _json(found)


@mcp.tool(structured_output=False)
def list_repositories() -> str:
    """List the repositories that the access token can see (name, full_name, private, stars)."""
    return _json(REPOSITORIES)


@mcp.tool(structured_output=False)
def get_repository_issues(
    repository: Annotated[str, Field(description="Full name of the repository, e.g. acme/llama-stack-rs")],
) -> str:
    """List the open issues of a repository."""
    # always fails: the tool-error case (the result comes back with isError true)
    raise RuntimeError(f"rate limit exceeded for repository {repository}")


class RequireHeaders:
    """Pure ASGI middleware: every HTTP request must carry the required headers, else 401 with a JSON body."""

    def __init__(self, app: ASGIApp, required: list[tuple[str, str, str]]):
        self.app = app
        # (lowercase header name, expected value, message when missing or wrong)
        self.required = [(n.lower().encode("latin-1"), v.encode("latin-1"), m) for n, v, m in required]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.required:
            headers: dict[bytes, bytes] = {}
            for name, value in scope.get("headers", []):
                headers.setdefault(name.lower(), value)
            for name, expected, message in self.required:
                got = headers.get(name, b"").strip()
                if name == b"authorization" and got[:7].lower() == b"bearer ":
                    got = b"Bearer " + got[7:].strip()  # the scheme is case-insensitive (RFC 6750)
                if not got or not hmac.compare_digest(got, expected):
                    log.warning("401 for %s %s: %s", scope.get("method"), scope.get("path"), message)
                    body = _json({"error": "unauthorized", "message": message}).encode()
                    await send({
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="mcp"'),
                        ],
                    })
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def required_headers() -> list[tuple[str, str, str]]:
    required = []
    token = os.environ.get("MCP_REQUIRED_TOKEN", "")
    if token:
        required.append(("authorization", f"Bearer {token}", "missing or invalid bearer token"))
    custom = os.environ.get("MCP_REQUIRED_HEADER", "")
    if custom:
        name, sep, value = custom.partition(":")
        if not sep or not name.strip() or not value.strip():
            sys.exit(f"mcp_server: MCP_REQUIRED_HEADER must look like 'Name: value', got {custom!r}")
        required.append((name.strip(), value.strip(), f"missing or invalid header {name.strip()}"))
    return required


async def serve(port: int, lifetime: float) -> None:
    required = required_headers()
    app = RequireHeaders(mcp.streamable_http_app(), required)
    config = uvicorn.Config(app, host=HOST, port=port, log_level="info", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)

    async def watchdog() -> None:
        await asyncio.sleep(lifetime)
        log.warning("maximum lifetime of %s s reached, exiting", lifetime)
        server.should_exit = True

    # backstop in case a graceful shutdown hangs
    hard = threading.Timer(lifetime + 30, lambda: os._exit(0))
    hard.daemon = True
    hard.start()
    task = asyncio.create_task(watchdog())
    log.info(
        "serving http://%s:%d%s (token required: %s, header required: %s, max lifetime %s s)",
        HOST, port, PATH, bool(os.environ.get("MCP_REQUIRED_TOKEN")),
        os.environ.get("MCP_REQUIRED_HEADER", "").partition(":")[0] or "no", lifetime,
    )
    try:
        await server.serve()
    finally:
        task.cancel()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    port = int(os.environ.get("MCP_PORT", "8765"))
    lifetime = float(os.environ.get("MCP_MAX_LIFETIME_SECONDS", "7200"))
    asyncio.run(serve(port, lifetime))


if __name__ == "__main__":
    main()
