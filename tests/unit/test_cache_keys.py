"""Cache keys: stable across what cannot change the answer, different for what can."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.cache.keys import cache_key, scope_key
from chatgate.chat_request import chat_request
from chatgate.types import ChatRequest

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def req(**params: Any) -> ChatRequest:
    messages = params.pop("messages", MESSAGES)
    return chat_request("gpt-4o-mini", messages, params, strict=False)  # vendor fields too


def key(request: ChatRequest, model: str = "openai/gpt-4o-mini", **kw: str) -> str:
    return cache_key(request, model, **kw)


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


json_leaf = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    extras=st.dictionaries(st.sampled_from(["top_k", "x_vendor", "min_p", "opts"]), json_value),
    schema=st.dictionaries(st.text(min_size=1, max_size=6), json_value, max_size=5),
    seed=st.integers(0, 2**32),
)
def test_key_ignores_dict_order_at_every_level(
    extras: dict[str, Any], schema: dict[str, Any], seed: int
) -> None:
    body = {
        "temperature": 0,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        **extras,
    }
    rng = random.Random(seed)
    assert key(req(**body)) == key(req(**shuffled(body, rng)))


@settings(max_examples=150, deadline=None)
@given(
    value=st.floats(min_value=0, max_value=2, allow_nan=False),
    whole=st.integers(0, 2),
)
def test_key_ignores_float_formatting(value: float, whole: int) -> None:
    # The same numbers written differently on the wire: repr, scientific, trailing zeros, int.
    plain = repr(value)
    padded = plain + "00" if "." in plain and "e" not in plain else plain
    texts = [plain, f"{value:.17e}", f"{value:.17g}", padded]
    keys = {
        key(
            ChatRequest.model_validate(
                orjson.loads(
                    f'{{"model":"m","messages":[{{"role":"user","content":"x"}}],"temperature":{t}}}'
                )
            )
        )
        for t in texts
    }
    assert len(keys) == 1
    assert key(req(temperature=whole)) == key(req(temperature=float(whole)))
    assert key(req(top_k=whole)) == key(req(top_k=float(whole)))


def test_key_ignores_fields_that_never_change_the_answer() -> None:
    base = key(req(temperature=0))
    assert key(req(temperature=0, user="u1", metadata={"a": "b"})) == base
    assert key(req(temperature=0, stream=True, stream_options={"include_usage": True})) == base
    assert key(req(temperature=0, store=True, prompt_cache_key="k", safety_identifier="s")) == base
    assert key(req(temperature=0, max_tokens=None, tools=None)) == base  # null == not given


def test_key_changes_with_everything_that_can_change_the_answer() -> None:
    base = req(temperature=0)
    variants = [
        req(temperature=0.1),
        req(temperature=0, seed=1),
        req(temperature=0, max_tokens=5),
        req(temperature=0, top_p=0.5),
        req(temperature=0, stop=["x"]),
        req(temperature=0, n=2),
        req(temperature=0, top_k=3),  # vendor extension
        req(temperature=0, response_format={"type": "json_object"}),
        req(
            temperature=0,
            tool_choice="required",
            tools=[{"type": "function", "function": {"name": "f"}}],
        ),
        req(temperature=0, messages=[{"role": "user", "content": "hi"}]),
        req(temperature=0, messages=[MESSAGES[1], MESSAGES[0]]),
        req(
            temperature=0, messages=[MESSAGES[0], {"role": "user", "content": "hi", "name": "bob"}]
        ),
        # a null inside free JSON is meaningful and kept
        req(
            temperature=0,
            tools=[
                {"type": "function", "function": {"name": "f", "parameters": {"default": None}}}
            ],
        ),
    ]
    keys = {key(base)} | {key(v) for v in variants}
    assert len(keys) == len(variants) + 1
    tools_without_null = req(
        temperature=0, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]
    )
    assert key(tools_without_null) != key(variants[-1])


def test_key_separates_models_namespaces_and_partitions_but_not_upstream_names() -> None:
    r = req(temperature=0)
    assert key(r) != key(r, "openai/gpt-4o")
    assert key(r) != key(r, namespace="team-a")
    assert key(r, namespace="team-a") != key(r, namespace="team-b")
    assert key(r) != key(r, partition="http://other:8000/v1")
    # A router group shares answers across its deployments, whatever they call the model.
    other_upstream = chat_request("claude-x", MESSAGES, {"temperature": 0})
    assert key(r, "smart") == key(other_upstream, "smart")
    assert len(key(r)) == 64


def test_scope_ignores_only_the_last_user_text() -> None:
    def scope(r: ChatRequest, model: str = "m") -> str:
        return scope_key(r, model, last_user_index=len(r.messages) - 1)

    a = req(
        temperature=0, messages=[MESSAGES[0], {"role": "user", "content": "capital of France?"}]
    )
    b = req(temperature=0, messages=[MESSAGES[0], {"role": "user", "content": "France's capital?"}])
    assert scope(a) == scope(b)
    other_system = req(
        temperature=0, messages=[{"role": "system", "content": "answer in French"}, a.messages[1]]
    )
    other_tools = req(
        temperature=0, messages=a.messages, tools=[{"type": "function", "function": {"name": "f"}}]
    )
    assert len({scope(a), scope(other_system), scope(other_tools), scope(a, "m2")}) == 4
    assert scope(a) != key(a)
