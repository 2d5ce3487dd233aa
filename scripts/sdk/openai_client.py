"""Drives a running stack with the official OpenAI Python SDK: models, chat, streaming chat,
embeddings (float and the SDK's default base64). Exits non-zero on the first failed check.

Usage: python openai_client.py BASE_URL TEXT_MODEL EMBEDDING_MODEL
Each call carries a Llama Stack test id (X-LlamaStack-Provider-Data) so a server in
record/replay mode keys it like a test of the suite.
"""
import json
import sys

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
    base_url, text_model, embedding_model = sys.argv[1:4]
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
    print("openai SDK: all checks passed")


if __name__ == "__main__":
    main()
