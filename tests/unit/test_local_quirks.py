"""The local provider's quirk fixes, as pure functions: no model, no server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from chatgate.errors import (
    BadRequestError,
    InternalServerError,
    InvalidRequestError,
    UnsupportedParamsError,
)
from chatgate.providers.base import Deployment
from chatgate.providers.local import ADAPTER
from chatgate.providers.local.child import AdmissionGate
from chatgate.providers.local.models import resolve_model
from chatgate.providers.registry import resolve_deployment
from chatgate.transport.sse import SSEDecoder
from chatgate.types import ChatRequest
from chatgate.wire_chunk import typed_chunk
from tests.clock import wait_until

DEPLOYMENT = resolve_deployment("local/smollm2-135m")  # as the registry row builds it
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def wire(deployment: Deployment = DEPLOYMENT, **fields: Any) -> dict[str, Any]:
    request = ChatRequest.model_validate({"model": "smollm2-135m", **fields})
    body: dict[str, Any] = orjson.loads(ADAPTER.build_request(request, deployment).body)
    return body


USER = [{"role": "user", "content": "hi"}]


def test_plain_request_passes_through() -> None:
    body = wire(messages=USER, max_tokens=8, temperature=0)
    assert body == {"model": "smollm2-135m", "messages": USER, "max_tokens": 8, "temperature": 0}


def test_assistant_tool_call_turn_gets_empty_content() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    body = wire(messages=messages)
    assert body["messages"][1]["content"] == ""
    assert body["messages"][2]["content"] == ""
    assert body["messages"][1]["tool_calls"] == [call]


def test_tool_choice_defaults_to_auto_only_when_unset() -> None:
    assert wire(messages=USER, tools=TOOLS)["tool_choice"] == "auto"
    assert wire(messages=USER, tools=TOOLS, tool_choice="none")["tool_choice"] == "none"
    assert "tool_choice" not in wire(messages=USER)


def test_json_schema_becomes_schema_constrained_json_object() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = wire(messages=USER, response_format=fmt)
    assert body["response_format"] == {"type": "json_object", "schema": schema}
    assert wire(messages=USER, response_format={"type": "json_object"})["response_format"] == {
        "type": "json_object"
    }


def test_json_schema_without_schema_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="schema"):
        wire(messages=USER, response_format={"type": "json_schema", "json_schema": {"name": "x"}})


def test_developer_message_sent_as_system() -> None:
    body = wire(messages=[{"role": "developer", "content": "be brief"}, *USER])
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("n", [2, 5])
def test_n_above_one_refused_naming_n(n: int) -> None:
    with pytest.raises(UnsupportedParamsError, match="n separate requests") as info:
        wire(messages=USER, n=n)
    assert info.value.param == "n"


def test_n_one_and_logprobs_false_are_harmless_and_not_sent() -> None:
    body = wire(messages=USER, n=1, logprobs=False)
    assert "n" not in body
    assert "logprobs" not in body


def test_logprobs_refused_naming_the_reason() -> None:
    with pytest.raises(UnsupportedParamsError, match="logits_all=False") as info:
        wire(messages=USER, logprobs=True, top_logprobs=2)
    assert info.value.param == "logprobs"


def test_drop_params_drops_n_and_logprobs() -> None:
    dropping = dataclasses.replace(DEPLOYMENT, drop_params=True)
    body = wire(dropping, messages=USER, n=3, logprobs=True)
    assert "n" not in body
    assert "logprobs" not in body


def test_image_parts_refused_naming_the_part() -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
    ]
    with pytest.raises(UnsupportedParamsError, match="text only") as info:
        wire(messages=[{"role": "user", "content": content}])
    assert info.value.param == "messages[0].content[1]"


def test_stream_does_not_ask_for_ignored_include_usage() -> None:
    body = wire(messages=USER, stream=True)
    assert "stream_options" not in body


# --- streams -------------------------------------------------------------------------------------

CHUNK = (
    'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":%s,"finish_reason":%s}]}\n\n'
)
STREAM = (
    CHUNK % ('{"role":"assistant"}', "null")
    + CHUNK % ('{"content":"Hel"}', "null")
    + CHUNK % ('{"content":"lo"}', "null")
    + CHUNK
    % ('{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f"}}]}', "null")
    + CHUNK % ('{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}', "null")
    + CHUNK % ("{}", '"stop"')
)
USAGE = (
    'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    '"usage":{"prompt_tokens":30,"completion_tokens":3,"total_tokens":33}}\n\n'
)


def run_stream(text: str, split: int) -> list[Any]:
    request = ChatRequest.model_validate({"model": "m", "messages": USER, "stream": True})
    framer, translator = ADAPTER.new_stream(request, DEPLOYMENT)
    assert isinstance(framer, SSEDecoder)
    raw = text.encode()
    chunks = []
    for i in range(0, len(raw), split):
        for event in framer.feed(raw[i : i + split]):
            chunks += translator.feed(event)
    for event in framer.flush():
        chunks += translator.feed(event)
    return [typed_chunk(c) for c in [*chunks, *translator.finish()]]


@pytest.mark.parametrize("split", [1, 7, 10_000])
def test_missing_usage_is_synthesized_from_counted_tokens(split: int) -> None:
    chunks = run_stream(STREAM + "data: [DONE]\n\n", split)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (0, 3)
    assert last.id == "c"
    assert sum(1 for c in chunks if c.usage is not None) == 1


def test_usage_sent_by_the_managed_server_is_kept_not_doubled() -> None:
    chunks = run_stream(STREAM + USAGE + "data: [DONE]\n\n", 13)
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1
    assert usages[0].prompt_tokens == 30


def test_truncated_stream_still_raises() -> None:
    from chatgate.errors import APIConnectionError

    with pytest.raises(APIConnectionError, match="ended before"):
        run_stream(CHUNK % ('{"content":"x"}', "null"), 5)


# --- models ------------------------------------------------------------------------------------


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(InvalidRequestError, match="smollm2-135m"):
        resolve_model("gpt-5")


def test_gguf_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"))
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_model(str(model)).alias == "tiny"
    named = resolve_model("mine", {"model_path": str(model), "chat_format": "chatml"})
    assert (named.alias, named.path, named.chat_format) == ("mine", model, "chatml")


# --- admission gate (the child's queue), with a stand-in app ------------------------------------

Message = MutableMapping[str, Any]


class SlowApp:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(
        self, scope: Any, receive: Callable[[], Awaitable[Message]], send: Any
    ) -> None:
        self.calls += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def call(gate: AdmissionGate, path: str = "/v1/chat/completions") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await gate({"type": "http", "path": path}, receive, send)
    return sent


async def test_gate_queues_then_refuses_with_retry_after() -> None:
    app = SlowApp()
    gate = AdmissionGate(app, max_queue=1)
    running = asyncio.create_task(call(gate))
    waiting = asyncio.create_task(call(gate))
    # both tasks run in the same turn of the loop: the first reaches the app, the second queues
    await wait_until(lambda: app.calls == 1, what="the first call running")
    refused = await call(gate)
    assert refused[0]["status"] == 429
    headers = dict(refused[0]["headers"])
    assert int(headers[b"retry-after"]) >= 1
    assert b"queue_full" in refused[1]["body"]
    assert app.calls == 1  # serialized: the second waits, not runs
    app.release.set()
    first, second = await running, await waiting
    for answer in (first, second):
        assert answer[0]["status"] == 200
        assert float(dict(answer[0]["headers"])[b"x-queue-time-ms"]) >= 0
    assert app.calls == 2


async def test_gate_lets_other_routes_through() -> None:
    app = SlowApp()
    app.release.set()
    gate = AdmissionGate(app, max_queue=0)
    assert (await call(gate, "/v1/models"))[0]["headers"] == []


SYSTEM_BLOCKS = [
    {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "Answer in English."},
]


def test_text_part_lists_go_as_strings_but_for_user_messages() -> None:
    """The anthropic SDK's and Claude Code's system blocks: a 500 from the server as a list."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "system", "content": SYSTEM_BLOCKS},
        {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}], "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
    ]
    sent = wire(messages=messages)["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse.\n\nAnswer in English."}
    assert sent[1] == {"role": "system", "content": "Be kind."}
    assert sent[2]["content"] == [{"type": "text", "text": "hi"}]  # the server takes these
    assert sent[3]["content"] == "a"
    assert sent[4]["content"] == "ok"


FIXTURES = Path(__file__).parents[1] / "fixtures" / "local"


@pytest.mark.parametrize(
    ("fixture", "problem"),
    [
        # recorded from llama-cpp-python 0.3.36: both answered 500 internal_server_error
        ("system_parts_500.json", "messages[0].content: Input should be a valid string"),
        ("top_p_500.json", "top_p: Input should be less than or equal to 1"),
    ],
)
def test_the_servers_500_for_an_invalid_request_is_a_400_naming_the_field(
    fixture: str, problem: str
) -> None:
    body = (FIXTURES / fixture).read_bytes()
    error = ADAPTER.map_error(500, {}, body, DEPLOYMENT)
    assert isinstance(error, BadRequestError)
    assert (error.status_code, error.retryable) == (400, False)
    assert error.message == f"the local model server cannot take this request: {problem}"
    assert "File " not in error.message  # the server's traceback stays out


@pytest.mark.parametrize(
    "body",
    [
        b"Internal Server Error",  # what it answers to a body that is not JSON
        orjson.dumps(
            {"error": {"message": "llama_decode returned -3", "type": "internal_server_error"}}
        ),
    ],
)
def test_other_500s_stay_server_errors(body: bytes) -> None:
    error = ADAPTER.map_error(500, {}, body, DEPLOYMENT)
    assert isinstance(error, InternalServerError)
    assert error.retryable


def test_a_validation_error_of_an_unknown_shape_is_still_a_400() -> None:
    message = "1 validation error:\n  something new\n\n  File ..."
    body = orjson.dumps({"error": {"message": message, "type": "internal_server_error"}})
    error = ADAPTER.map_error(500, {}, body, DEPLOYMENT)
    assert isinstance(error, BadRequestError)
    assert error.message.endswith("1 validation error:\n  something new")
