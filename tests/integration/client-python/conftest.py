"""Fixtures of the Python client suite: real Llama Stack users' clients (`llama-stack-client`
and the OpenAI SDK, sync and async) against a running stack, replaying the Rust suite's
recordings (docs/testing.md, 'Client suites').

TEST_API_BASE_URL is the stack's address (http://127.0.0.1:PORT, no /v1); scripts/integration-tests.sh
--client python starts a replaying `stack run starter` and sets it.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path

import pytest

import mirrors

SDKS = ("openai", "llama_stack_client")
MODES = ("sync", "async")


def pytest_configure(config):
    config.addinivalue_line("markers", "sdks(*names): the SDKs the test runs with (default: openai and llama_stack_client)")
    config.addinivalue_line(
        "markers",
        "fresh_test_run: also send a new __test_run nonce, so the ids the stack generates for the "
        "mirrored test (MCP call ids, sent back to the provider) start at 0 as in one run of the Rust test")


def pytest_generate_tests(metafunc):
    if "client" not in metafunc.fixturenames:
        return
    sdks = metafunc.definition.get_closest_marker("sdks")
    kinds = [(s, m) for s in (sdks.args if sdks else SDKS) for m in MODES]
    metafunc.parametrize("client_kind", kinds, ids=[f"{s}-{m}" for s, m in kinds])


def mirror_key(item_path: Path, name: str) -> str:
    return f"{item_path.resolve().relative_to(mirrors.INTEGRATION_DIR).as_posix()}::{name}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """The mapping check, before any deselection (-k): fails the collection with what to fix."""
    table = mirrors.load()
    # Problems of this suite's entries, and of the file itself (the TypeScript suite reports its own).
    problems = [p for key, p in table.problems
                if key is None or key.startswith("client-python/") or not key.startswith("client-")]
    seen_files = {}
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        key = mirror_key(item.path, item.originalname)
        seen_files[item.path.resolve()] = item.module
        if key not in table.keys:
            problems.append(mirrors.missing_entry(key))
    # Entries of a collected file that name no test there: a renamed or removed client test.
    prefix_of = {mirror_key(path, ""): module for path, module in seen_files.items()}
    for key in table.keys:
        for prefix, module in prefix_of.items():
            if key.startswith(prefix) and not callable(getattr(module, key[len(prefix):], None)):
                problems.append(f"{key}: {Path(module.__file__).name} has no test named {key[len(prefix):]}: "
                                f"rename or remove the entry")
    for key in table.keys:
        file = key.split("::", 1)[0]
        if file.startswith("client-python/") and not (mirrors.INTEGRATION_DIR / file).is_file():
            problems.append(f"{key}: {file} does not exist: rename or remove the entry")
    if problems:
        raise pytest.UsageError(mirrors.describe(sorted(set(problems))))


@pytest.fixture(scope="session")
def base_url() -> str:
    url = os.environ.get("TEST_API_BASE_URL", "").rstrip("/")
    if not url:
        pytest.exit("TEST_API_BASE_URL is not set: run `scripts/integration-tests.sh --client python`, "
                    "or point it at a stack that replays recordings/ (http://127.0.0.1:PORT)", returncode=4)
    return url


@pytest.fixture
def mirror(request) -> mirrors.Mirror:
    """This test's entry in client-mirrors.json."""
    return mirrors.load().mirrors[mirror_key(request.node.path, request.node.originalname)]


@pytest.fixture(scope="session")
def client_with_models(base_url):
    """What Llama Stack's `client_with_models` fixture does before its tests: list the providers
    (there must be an inference one), then the models (the clients check theirs are served). A
    stack without GET /v1/providers gets a warning here, and test_models.py::test_providers_list
    says so; the other tests go on."""
    from llama_stack_client import LlamaStackClient, NotFoundError

    client = LlamaStackClient(base_url=base_url, max_retries=0, timeout=60)
    try:
        providers = [p for p in client.providers.list() if p.api == "inference"]
        assert providers, "No inference providers found"
    except NotFoundError as e:
        warnings.warn(f"providers.list(): {e}", stacklevel=1)
    return client, {m.id for m in client.models.list()}


@pytest.fixture
async def client(request, client_kind, base_url, mirror, client_with_models):
    """A client of kind `client_kind` that sends the mirrored Rust test's id, as Llama Stack's
    clients do: `provider_data=` for llama-stack-client, the header for the OpenAI SDK."""
    sdk, mode = client_kind
    _, model_ids = client_with_models
    for kind, model in mirror.models.items():
        if kind != "shield":
            assert model in model_ids, f"{mirror.rust_id}: {model} is not served: {sorted(model_ids)}"
    data = mirror.provider_data(fresh_run=request.node.get_closest_marker("fresh_test_run") is not None)
    common = {"max_retries": 0, "timeout": 60}
    if sdk == "openai":
        import openai

        cls = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
        headers = {mirrors.PROVIDER_DATA_HEADER: json.dumps(data)} if data else {}
        c = cls(base_url=f"{base_url}/v1", api_key="not-needed", default_headers=headers, **common)
    else:
        import llama_stack_client

        cls = llama_stack_client.LlamaStackClient if mode == "sync" else llama_stack_client.AsyncLlamaStackClient
        c = cls(base_url=base_url, provider_data=data or None, **common)
    yield c
    closed = c.close()
    if inspect.isawaitable(closed):
        await closed
