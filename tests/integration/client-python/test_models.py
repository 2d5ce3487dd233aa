"""Models and providers: what Llama Stack's clients read besides inference. None of it reaches a
provider."""

from __future__ import annotations

import pytest

from helpers import call


async def test_models_list(client, client_kind, mirror):
    models = await call(client.models.list())
    # The OpenAI SDK pages ({"object": "list", "data": [...]}); llama-stack-client unwraps the list.
    data = models.data if client_kind[0] == "openai" else models
    ids = [m.id for m in data]
    assert mirror.model("txt") in ids and mirror.model("emb") in ids, ids
    for m in data:
        assert m.object == "model"
        provider, _, name = m.id.partition("/")
        assert provider and name, m.id


async def test_models_retrieve(client, client_kind, mirror):
    """GET /v1/models/{id}. The Python SDKs percent-encode the id's slash (llamacpp%2Fqwen...).
    llama-stack-client reads Llama Stack's model resource (identifier, provider_resource_id, ...),
    the OpenAI SDK OpenAI's model object (id, object): one answer can carry both."""
    model = mirror.model("txt")
    m = await call(client.models.retrieve(model))
    with pytest.raises(Exception) as unknown:
        await call(client.models.retrieve("nope/not-a-model"))
    assert getattr(unknown.value, "status_code", None) == 404 and model in str(unknown.value), unknown.value
    if client_kind[0] == "llama_stack_client":
        assert m.identifier == model and m.provider_id == model.partition("/")[0], m
        assert m.provider_resource_id == model.partition("/")[2] and m.api_model_type == "llm", m
    else:
        assert m.id == model and m.object == "model", m


@pytest.mark.sdks("llama_stack_client")
async def test_models_custom_metadata(client, mirror):
    """Llama Stack's model objects carry custom_metadata (model_type, provider_id,
    provider_resource_id, and embedding_dimension for embedding models)."""
    by_id = {m.id: m for m in await call(client.models.list())}
    text, embedding = by_id[mirror.model("txt")], by_id[mirror.model("emb")]
    assert text.custom_metadata["model_type"] == "llm", text.custom_metadata
    assert embedding.custom_metadata["model_type"] == "embedding", embedding.custom_metadata
    assert embedding.custom_metadata["embedding_dimension"] > 0, embedding.custom_metadata
    provider, _, name = mirror.model("txt").partition("/")
    assert text.custom_metadata["provider_id"] == provider, text.custom_metadata
    assert text.custom_metadata["provider_resource_id"] == name, text.custom_metadata
    assert text.owned_by == provider, text


@pytest.mark.sdks("llama_stack_client")
async def test_providers_list(client, mirror):
    """What Llama Stack's `client_with_models` fixture calls first. API keys are redacted."""
    providers = await call(client.providers.list())
    for p in providers:
        assert p.api and p.provider_id and p.provider_type and isinstance(p.config, dict), p
        assert p.config.get("api_key") in (None, "********"), p
    wanted = mirror.model("txt").partition("/")[0]
    inference = [p for p in providers if p.provider_id == wanted]
    assert inference and inference[0].api == "inference" and inference[0].health["status"] == "OK", providers
    assert any(p.api == "safety" for p in providers), providers


@pytest.mark.sdks("llama_stack_client")
async def test_provider_inspect(client, mirror):
    wanted = mirror.model("txt").partition("/")[0]
    one = await call(client.providers.retrieve(wanted))
    listed = [p for p in await call(client.providers.list()) if p.provider_id == wanted]
    assert [one] == listed, (one, listed)
    with pytest.raises(Exception) as unknown:
        await call(client.providers.retrieve("no-such-provider"))
    assert getattr(unknown.value, "status_code", None) == 404 and wanted in str(unknown.value), unknown.value
