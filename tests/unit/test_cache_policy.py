"""Cache policy and per-request control: what is looked up, what is stored."""

from __future__ import annotations

from typing import Any

import pytest

from chatgate.cache.policy import (
    CacheControl,
    CachePolicy,
    control_from_headers,
    decide,
    parse_control,
    policy_for,
    storable_answer,
    storable_error,
)
from chatgate.chat_request import chat_request
from chatgate.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
)
from chatgate.types import ChatRequest, ChatResponse, Choice, ResponseMessage


def req(**params: Any) -> ChatRequest:
    return chat_request("m", [{"role": "user", "content": "hi"}], params)


def both(
    request: ChatRequest, policy: CachePolicy | None = None, control: Any = None
) -> tuple[bool, bool]:
    d = decide(request, policy or CachePolicy(), parse_control(control))
    return d.lookup, d.store


def test_on_by_default_only_for_repeatable_requests() -> None:
    assert both(req(temperature=0)) == (True, True)
    assert both(req(seed=42)) == (True, True)
    assert both(req(temperature=0.7, seed=1)) == (True, True)
    assert both(req()) == (False, False)  # provider default temperature: sampled
    assert both(req(temperature=0.7)) == (False, False)


def test_model_policy_modes_and_request_overrides() -> None:
    always, never = CachePolicy(mode="always"), CachePolicy(mode="never")
    assert both(req(temperature=1), always) == (True, True)
    assert both(req(temperature=0), never) == (False, False)
    assert both(req(temperature=0.9), control=True) == (True, True)
    assert both(req(temperature=0), never, control=True) == (True, True)
    assert both(req(temperature=0), control=False) == (False, False)
    assert both(req(temperature=0), always, control={"enabled": False}) == (False, False)


def test_no_cache_refreshes_and_no_store_serves_without_storing() -> None:
    assert both(req(temperature=0), control={"no-cache": True}) == (False, True)
    assert both(req(temperature=0), control={"no-store": True}) == (True, False)
    assert both(req(temperature=0), control={"no-cache": True, "no-store": True}) == (False, False)
    # ttl and namespace alone do not opt a sampled request in
    assert both(req(temperature=0.5), control={"ttl": 5, "namespace": "a"}) == (False, False)


def test_ttl_and_namespace_come_from_the_request_then_the_policy() -> None:
    d = decide(req(temperature=0), CachePolicy(ttl=100), CacheControl(ttl=7, namespace="t"), "base")
    assert (d.ttl, d.namespace) == (7, "t")
    d = decide(req(temperature=0), CachePolicy(ttl=None), None, "base")
    assert (d.ttl, d.namespace) == (None, "base")


def test_policy_for_prefers_exact_names_then_patterns() -> None:
    default, exact, pattern = CachePolicy(), CachePolicy(ttl=1), CachePolicy(ttl=2)
    models = {"openai/*": pattern, "openai/gpt-4o": exact}
    assert policy_for("openai/gpt-4o", default, models) is exact
    assert policy_for("openai/gpt-4o-mini", default, models) is pattern
    assert policy_for("anthropic/claude", default, models) is default


@pytest.mark.parametrize(
    ("control", "param"),
    [
        ({"nocache": True}, "cache.nocache"),
        ({"no-cache": "yes"}, "cache.no-cache"),
        ({"ttl": 0}, "cache.ttl"),
        ({"ttl": "600"}, "cache.ttl"),
        ({"namespace": ""}, "cache.namespace"),
        ({"namespace": " padded"}, "cache.namespace"),
        ("on", "cache"),
    ],
)
def test_bad_control_names_the_field(control: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_control(control)
    assert info.value.param == param


def test_policy_validates_its_fields() -> None:
    with pytest.raises(InvalidRequestError, match="mode"):
        CachePolicy(mode="sometimes")  # type: ignore[arg-type]  # the wrong value is the test
    with pytest.raises(InvalidRequestError, match=r"CachePolicy\.ttl"):
        CachePolicy(ttl=-1)


def test_headers_become_control() -> None:
    raw = [
        (b"Cache-Control", b"no-cache, max-stale=5"),
        (b"x-chatgate-cache-ttl", b"600"),
        (b"X-Chatgate-Cache-Namespace", b"team-a"),
    ]
    assert control_from_headers(raw) == CacheControl(no_cache=True, ttl=600, namespace="team-a")
    assert control_from_headers({"cache-control": "no-store"}) == CacheControl(no_store=True)
    assert control_from_headers({"cache-control": "max-age=0"}) == CacheControl(no_cache=True)
    assert control_from_headers({"cache-control": "max-age=60", "accept": "x"}) is None
    assert control_from_headers([]) is None


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x-chatgate-cache-ttl": "ten"}, "x-chatgate-cache-ttl"),
        ({"x-chatgate-cache-ttl": "-5"}, "header x-chatgate-cache-ttl"),
        ({"x-chatgate-cache-namespace": "a" * 200}, "header x-chatgate-cache-namespace"),
    ],
)
def test_bad_headers_name_the_header(headers: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        control_from_headers(headers)
    assert info.value.param == param
    assert "x-chatgate-cache" in str(info.value)


def answer(*finish: str) -> ChatResponse:
    choices = [
        Choice(index=i, message=ResponseMessage(content="x"), finish_reason=f)
        for i, f in enumerate(finish)
    ]
    return ChatResponse(choices=choices)


def test_truncated_answers_are_stored_only_when_asked() -> None:
    assert storable_answer(answer("stop"), CachePolicy())
    assert storable_answer(answer("tool_calls"), CachePolicy())
    assert not storable_answer(answer("stop", "length"), CachePolicy())
    assert storable_answer(answer("length"), CachePolicy(store_truncated=True))
    assert not storable_answer(answer(), CachePolicy())


def test_only_deterministic_errors_are_stored_and_only_when_asked() -> None:
    on = CachePolicy(store_errors=True)
    assert storable_error(BadRequestError("bad", status_code=400), on)
    assert storable_error(ContextWindowExceededError("long", status_code=400), on)
    assert storable_error(NotFoundError("no model", status_code=404), on)
    assert not storable_error(BadRequestError("bad", status_code=400), CachePolicy())
    for exc in (
        AuthenticationError("key", status_code=401),
        RateLimitError("slow down", status_code=429),
        InternalServerError("boom", status_code=500),
        BadRequestError("retry me", status_code=400, retryable=True),
    ):
        assert not storable_error(exc, on)


def test_stored_entries_round_trip_and_garbage_is_a_miss() -> None:
    from decimal import Decimal

    from chatgate.cache.entry import decode, encode_error, encode_response

    response = answer("stop", "length")
    response.meta.provider, response.meta.cost = "openai", Decimal("0.5")
    entry = decode(encode_response(response, now=10.0))
    assert entry is not None
    assert entry.response.model_dump() == response.model_dump()
    assert (entry.cost, entry.created, entry.response.meta.provider) == (
        Decimal("0.5"),
        10.0,
        "openai",
    )
    error = decode(encode_error(NotFoundError("no such model", status_code=404, body={"e": 1})))
    assert error is not None
    assert isinstance(error.error, NotFoundError)
    assert (error.error.status_code, error.error.body) == (404, {"e": 1})
    for junk in (
        b"",
        b"not json\n{}",
        b'{"v": 99, "at": 1}\n{}',
        b'{"v": 1, "at": 1}\n{"choices": 5}',
    ):
        assert decode(junk) is None


def test_replay_chunks_fold_back_into_the_answer() -> None:
    from chatgate.cache.replay import response_chunks
    from chatgate.stream import StreamAccumulator
    from chatgate.types import Usage

    response = answer("stop", "length")
    response.choices[1].message.reasoning_content = "thought"
    response.usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    acc = StreamAccumulator()
    for chunk in response_chunks(response):
        acc.add(chunk)
    assert acc.response().choices == response.choices
    assert acc.response().usage == response.usage
