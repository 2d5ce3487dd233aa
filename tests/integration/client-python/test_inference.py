"""Chat completions, completions and embeddings through the clients, each sending the request of
the Rust test it mirrors (tests/integration/inference/), so that test's recordings answer it."""

from __future__ import annotations

import json

import pytest

from helpers import call, collect, decode_base64_floats, usage_of


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_chat_completion_non_streaming(client, mirror):
    r = await call(client.chat.completions.create(
        model=mirror.model("txt"), messages=user("Which planet do humans live on? Answer in one word."),
        temperature=0, max_tokens=16))
    assert r.object == "chat.completion"
    assert r.model == mirror.model("txt")
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip(), r
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


async def test_chat_completion_streaming(client, mirror):
    body = dict(model=mirror.model("txt"), messages=user("Name three colors."), temperature=0, max_tokens=24)
    plain = await call(client.chat.completions.create(**body))
    chunks = await collect(await call(client.chat.completions.create(**body, stream=True)))
    assert len(chunks) > 2, chunks
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [plain.choices[0].finish_reason]


async def test_chat_completion_streaming_usage(client, mirror):
    chunks = await collect(await call(client.chat.completions.create(
        model=mirror.model("txt"), messages=user("Say yes."), temperature=0, max_tokens=8,
        stream=True, stream_options={"include_usage": True})))
    last = chunks[-1]
    assert last.choices == [] and last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0, last


async def test_chat_completion_tools(client, mirror):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    r = await call(client.chat.completions.create(
        model=mirror.model("txt"), messages=user("What is the weather in Paris?"), tools=tools,
        tool_choice="auto", temperature=0, max_tokens=32))
    message = r.choices[0].message
    if message.tool_calls:
        for tool_call in message.tool_calls:
            assert tool_call.type == "function" and tool_call.function.name == "get_weather", tool_call
            assert isinstance(json.loads(tool_call.function.arguments), dict)
        assert r.choices[0].finish_reason == "tool_calls"
    else:
        assert message.content, message


async def test_chat_completion_json_response_format(client, mirror):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    r = await call(client.chat.completions.create(
        model=mirror.model("txt"), messages=user("Give the name and age of a fictional person as JSON."),
        temperature=0, max_tokens=64,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}))
    person = json.loads(r.choices[0].message.content)
    assert isinstance(person["name"], str) and isinstance(person["age"], int), person


async def test_completion_non_streaming(client, mirror):
    r = await call(client.completions.create(
        model=mirror.model("cmpl"), prompt="The capital of France is", temperature=0, max_tokens=8))
    assert r.object == "text_completion"
    assert r.choices[0].text and r.choices[0].finish_reason
    assert usage_of(r)["completion_tokens"] > 0


async def test_completion_streaming(client, mirror):
    body = dict(model=mirror.model("cmpl"), prompt="Once upon a time", temperature=0, max_tokens=12)
    plain = await call(client.completions.create(**body))
    chunks = await collect(await call(client.completions.create(**body, stream=True)))
    assert len(chunks) > 2, chunks
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text


async def test_inference_store(client, mirror):
    """Llama Stack's inference store: a chat completion, plain or streamed, is stored with its input
    messages, retrievable by id and listed by model; an unknown id is a 404."""
    plain_messages = user("Name one primary color. Answer in one word.")
    plain = await call(client.chat.completions.create(
        model=mirror.model("txt"), messages=plain_messages, temperature=0, max_tokens=8))
    streamed_messages = user("Name one ocean. Answer in one word.")
    chunks = await collect(await call(client.chat.completions.create(
        model=mirror.model("txt"), messages=streamed_messages, temperature=0, max_tokens=8, stream=True)))
    streamed_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    for created_id, messages, text in [(plain.id, plain_messages, plain.choices[0].message.content),
                                       (chunks[0].id, streamed_messages, streamed_text)]:
        stored = await call(client.chat.completions.retrieve(created_id))
        assert stored.id == created_id and stored.object == "chat.completion", stored
        assert stored.model == mirror.model("txt"), stored
        assert stored.choices[0].message.content == text, stored
        # llama-stack-client types input_messages; the OpenAI SDK keeps it as an extra field.
        stored_inputs = stored.model_dump(exclude_none=True)["input_messages"]
        assert stored_inputs == messages, stored_inputs
    listed = await call(client.chat.completions.list(model=mirror.model("txt"), limit=100))
    ids = [c.id for c in listed.data]  # the first page (the OpenAI SDK's pages iterate on)
    assert plain.id in ids and chunks[0].id in ids, ids
    with pytest.raises(Exception) as missing:
        await call(client.chat.completions.retrieve("chatcmpl-does-not-exist"))
    assert getattr(missing.value, "status_code", None) == 404, missing.value


async def test_completion_logprobs(client, mirror):
    """OpenAI's completions shape (tokens, token_logprobs, top_logprobs, text_offset), whatever the
    provider answered. (llama-stack-client 0.7.5 types `logprobs` as a bool and its answer in the
    chat shape; it keeps these fields as extra ones, and sends the number as given.)"""
    prompt = "The capital of France is"
    r = await call(client.completions.create(
        model=mirror.model("cmpl"), prompt=prompt, temperature=0, max_tokens=4, logprobs=2))
    choice = r.choices[0].model_dump()
    lp = choice["logprobs"]
    tokens = lp["tokens"]
    assert tokens and all(len(lp[f]) == len(tokens) for f in ("token_logprobs", "top_logprobs", "text_offset")), lp
    assert all(x <= 0 for x in lp["token_logprobs"]), lp
    assert all(1 <= len(top) <= 2 for top in lp["top_logprobs"]), lp
    assert "".join(tokens) == choice["text"], (tokens, choice["text"])
    offsets, at = [], len(prompt)
    for token in tokens:
        offsets.append(at)
        at += len(token)
    assert lp["text_offset"] == offsets, lp


# The OpenAI SDK always sends `encoding_format` (base64 unless told otherwise), which the stack
# forwards to the provider as "float"; the Rust tests send none. They replay the same recordings
# because the recorder's default rules hash an explicit "float" like no format at all (and a
# one-string `input` like a one-element list): docs/recordings.md, "Requests that mean the same".


async def test_embeddings_single_string(client, mirror):
    r = await call(client.embeddings.create(model=mirror.model("emb"), input="The quick brown fox"))
    assert r.object == "list" and len(r.data) == 1
    assert r.data[0].object == "embedding" and r.data[0].index == 0
    vector = r.data[0].embedding
    assert len(vector) > 0 and any(x != 0 for x in vector)


async def test_embeddings_batch(client, mirror):
    inputs = ["cats purr", "dogs bark", "the stock market fell"]
    r = await call(client.embeddings.create(model=mirror.model("emb"), input=inputs))
    assert [d.index for d in r.data] == [0, 1, 2]
    assert len({len(d.embedding) for d in r.data}) == 1
    assert r.data[0].embedding != r.data[2].embedding


async def test_embeddings_base64_matches_float(client, client_kind, mirror):
    floats = await call(client.embeddings.create(model=mirror.model("emb"), input="hello world", encoding_format="float"))
    if client_kind[0] == "openai":
        # The SDK's default: it asks for base64 and decodes it to floats itself.
        decoded = (await call(client.embeddings.create(model=mirror.model("emb"), input="hello world"))).data[0].embedding
    else:
        b64 = await call(client.embeddings.create(model=mirror.model("emb"), input="hello world", encoding_format="base64"))
        assert isinstance(b64.data[0].embedding, str), b64.data[0]
        decoded = decode_base64_floats(b64.data[0].embedding)
    expected = floats.data[0].embedding
    assert len(decoded) == len(expected) > 0
    assert all(abs(a - b) < 1e-6 for a, b in zip(decoded, expected))


async def test_embeddings_dimensions_unsupported(client, mirror):
    """`dimensions` the provider cannot give is a 400 naming the field and both sizes, before any
    provider call (no full-size vectors that silently ignore it)."""
    native = mirror.embedding_dimension()
    with pytest.raises(Exception) as refused:
        await call(client.embeddings.create(model=mirror.model("emb"), input="x", dimensions=native // 2))
    message = str(refused.value)
    assert getattr(refused.value, "status_code", None) == 400, refused.value
    assert "dimensions" in message and str(native) in message and str(native // 2) in message, message
