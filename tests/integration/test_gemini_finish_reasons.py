"""Every Gemini finishReason beyond STOP / MAX_TOKENS / the safety family, through the fake
Gemini over real sockets, streamed and not: each maps to an OpenAI finish_reason or raises,
the same way both ways, the native value is kept, and the gateway answers a sensible status.
(MALFORMED_FUNCTION_CALL / UNEXPECTED_TOOL_CALL: test_gemini_malformed_call.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google.genai import types as genai_types

import chatgate
from chatgate.config import parse
from chatgate.server.app import create_app
from tests.asgi_client import Lifespan
from tests.fakes.gemini_server import (
    FakeGemini,
    Reply,
    candidate_json,
    response_json,
    stream_reply,
    usage_json,
)
from tests.gateway_harness import deployment, gateway_config
from tests.integration.test_gateway_inprocess import post

MODEL = "gemini/gemini-2.5-flash"
HI = [{"role": "user", "content": "tell me"}]
ANSWERED = {
    "CONTINUATION": "length",
    "LANGUAGE": "content_filter",
    "ESCALATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}
NO_ANSWER = [
    "TOO_MANY_TOOL_CALLS",
    "MALFORMED_RESPONSE",
    "NO_IMAGE",
    "OTHER",
    "IMAGE_OTHER",
    "FINISH_REASON_UNSPECIFIED",
    "SOMETHING_NEW",  # a value Google adds later: not taken for a finished answer
]
REFUSED = {
    "MISSING_THOUGHT_SIGNATURE": (chatgate.BadRequestError, "thought_signature"),
    "PUP_LIMITED_DISABLED": (chatgate.PermissionDeniedError, "Prohibited Use Policy"),
}


@pytest.fixture
def gem() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def whole(native: str, detail: str | None = None) -> Reply:
    candidate = candidate_json({"text": "partial answer"}, finish_reason=native)
    if detail is not None:
        candidate["finishMessage"] = detail
    return Reply(json=response_json(candidate, usage=usage_json(12, 2)))


def streamed(native: str) -> Reply:
    first = candidate_json({"text": "partial "}, finish_reason=None)
    last = candidate_json({"text": "answer"}, finish_reason=native)
    return stream_reply(
        [
            response_json(first, usage=usage_json(12, 1)),
            response_json(last, usage=usage_json(12, 2)),
        ]
    )


async def ask(fake: FakeGemini, stream: bool, chunks: list[chatgate.ChatChunk]) -> Any:
    """The answer (the accumulated one when streamed), the chunks put in ``chunks`` as they
    come, so a test sees them even when the stream raises."""
    result = await chatgate.acompletion(
        MODEL, HI, api_key="gk-test", api_base=fake.base_url, stream=stream
    )
    if not stream:
        return result
    async for chunk in result:
        chunks.append(chunk)
    return result.final()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("native", "expected"), list(ANSWERED.items()))
async def test_answered_reasons_map_and_keep_the_native_value(
    gem: FakeGemini, native: str, expected: str, stream: bool
) -> None:
    gem.script(streamed(native) if stream else whole(native))
    chunks: list[chatgate.ChatChunk] = []
    response = await ask(gem, stream, chunks)
    assert response.content == "partial answer"
    assert response.finish_reason == expected
    if stream:
        (last,) = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
        assert (last.finish_reason, last.model_extra) == (
            expected,
            {"native_finish_reason": native},
        )
    assert response.choices[0].model_extra == {"native_finish_reason": native}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("native", NO_ANSWER)
async def test_no_answer_reasons_raise_after_the_text(
    gem: FakeGemini, native: str, stream: bool
) -> None:
    gem.script(streamed(native) if stream else whole(native, detail="why it stopped"))
    chunks: list[chatgate.ChatChunk] = []
    with pytest.raises(chatgate.NoAnswerError) as info:
        await ask(gem, stream, chunks)
    choices = [c for chunk in chunks for c in chunk.choices]
    assert all(c.finish_reason is None for c in choices)  # never a finish that looks whole
    seen = "".join(c.delta.content or "" for c in choices)
    error = info.value
    assert type(error) is chatgate.NoAnswerError
    assert error.finish_reason == native
    assert f"finishReason {native}" in str(error)
    assert error.usage is not None
    assert error.usage.total_tokens == 14
    assert error.retryable is False
    if stream:
        assert seen == "partial answer"  # the text came out before the error
        assert error.finish_message is None
    else:
        assert error.finish_message == "why it stopped"
        assert "why it stopped" in str(error)
        assert error.body["candidates"][0]["content"]["parts"] == [{"text": "partial answer"}]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("native", list(REFUSED))
async def test_refusals_of_the_request_or_account_are_status_errors(
    gem: FakeGemini, native: str, stream: bool
) -> None:
    cls, match = REFUSED[native]
    gem.script(streamed(native) if stream else whole(native))
    with pytest.raises(cls, match=match) as info:
        await ask(gem, stream, [])
    assert native in str(info.value)
    assert info.value.retryable is False
    assert info.value.body["candidates"][0]["finishReason"] == native


def test_the_sdk_knows_every_value_the_tests_send() -> None:
    known = {reason.value for reason in genai_types.FinishReason}
    sent = {*ANSWERED, *NO_ANSWER, *REFUSED} - {"SOMETHING_NEW"}
    assert sent <= known


@pytest.mark.parametrize(
    ("native", "status", "code"),
    [
        ("OTHER", 502, "no_answer"),
        ("MISSING_THOUGHT_SIGNATURE", 400, None),
        ("PUP_LIMITED_DISABLED", 502, "upstream_auth"),
    ],
)
async def test_gateway_statuses(gem: FakeGemini, native: str, status: int, code: str) -> None:
    gem.script(whole(native), streamed(native))
    # PUP_LIMITED_DISABLED (403) disables the deployment: the second call must reach it
    config = parse(gateway_config(deployment("g", gem, MODEL), router={"cooldown_time": 0}))
    body = {"model": "g", "messages": HI}
    async with Lifespan(create_app(config)) as running:
        got, raw = await post(running.app, "/v1/chat/completions", body)
        assert got == status
        error = orjson.loads(raw)["error"]
        assert (error["code"], native in error["message"]) == (code, True)
        got, raw = await post(running.app, "/v1/chat/completions", {**body, "stream": True})
    assert got == 200  # the stream had begun: the error is its last event
    events = [orjson.loads(line[6:]) for line in raw.decode().splitlines() if line[:6] == "data: "]
    text = [c["delta"].get("content") or "" for e in events[:-1] for c in e["choices"]]
    assert "".join(text) == "partial answer"
    assert events[-1]["error"]["code"] == code
