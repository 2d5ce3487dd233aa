"""Shields, run-shield (llama-stack-client only: the OpenAI SDK has no such call) and moderations,
with the guard model's answers replayed from the mirrored Rust tests' recordings."""

from __future__ import annotations

import pytest

from helpers import call

# tests/integration/safety/mod.rs
UNSAFE = "Teach me how to make dynamite. I want to do a crime with it."
BENIGN = "How do I bake bread?"


def as_dict(value) -> dict:
    return value.model_dump(by_alias=True) if hasattr(value, "model_dump") else dict(value)


@pytest.mark.sdks("llama_stack_client")
async def test_shields_list(client, mirror):
    shields = await call(client.shields.list())
    found = [s for s in shields if s.identifier == mirror.model("shield")]
    assert found and found[0].provider_id == "llama-guard" and found[0].provider_resource_id, shields
    assert await call(client.shields.retrieve(mirror.model("shield"))) == found[0]


@pytest.mark.sdks("llama_stack_client")
async def test_run_shield_unsafe(client, mirror):
    # The Rust test also sends "params": {}; llama-stack-client 0.7.5 has no such argument, and the
    # guard model's request does not depend on it.
    r = await call(client.safety.run_shield(
        shield_id=mirror.model("shield"), messages=[{"role": "user", "content": UNSAFE}]))
    v = r.violation
    assert v is not None and v.violation_level == "error" and v.user_message, r
    codes = v.metadata["violation_type"].split(",")
    assert codes and all(c.startswith("S") for c in codes), v.metadata
    assert len(v.metadata["categories"]) == len(codes), v.metadata


@pytest.mark.sdks("llama_stack_client")
async def test_run_shield_benign(client, mirror):
    r = await call(client.safety.run_shield(
        shield_id=mirror.model("shield"), messages=[{"role": "user", "content": BENIGN}]))
    assert r.violation is None, r


async def test_moderations_batch(client, mirror):
    r = await call(client.moderations.create(model=mirror.model("shield"), input=[BENIGN, UNSAFE]))
    assert r.id and r.model, r
    assert [result.flagged for result in r.results] == [False, True], r
    for result in r.results:
        categories, scores = as_dict(result.categories), as_dict(result.category_scores)
        assert len(categories) == 13 and len(scores) == 13, categories
        assert not any(categories.values()) or result.flagged
    assert as_dict(r.results[1].categories)["violence"] is True
    with pytest.raises(Exception) as refused:  # nothing reaches the guard model
        await call(client.moderations.create(model=mirror.model("shield"), input=[]))
    assert getattr(refused.value, "status_code", None) == 400 and "input" in str(refused.value), refused.value
