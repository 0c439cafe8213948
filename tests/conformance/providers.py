"""Each provider's fake, described once for the conformance suite: how to start it and call it,
and the provider's own wire form of the answers every scenario scripts (a text answer, a
stream, tool calls, a JSON answer, an error, an error event mid-stream).

A scenario speaks only of the canonical result (what chatgate returns or raises); what differs
between providers lives here, beside the fakes' reply builders it uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pytest

import chatgate
from tests.fakes import openai_server as oai
from tests.fakes.base import LoopbackServer, Reply

__all__ = ["ERRORS", "IMAGE", "RETRY_AFTER", "Azure", "Call", "ErrorCase", "Fake", "Provider"]

Fake = LoopbackServer[Any, Any]
Call = tuple[str, str, dict[str, Any]]  # (id, name, arguments)


@dataclass(frozen=True)
class ErrorCase:
    """One kind of upstream failure and what every provider's answer to it must become."""

    kind: str
    cls: type[chatgate.APIStatusError]
    retryable: bool


ERRORS = [
    ErrorCase("bad_request", chatgate.BadRequestError, False),
    ErrorCase("authentication", chatgate.AuthenticationError, False),
    ErrorCase("permission", chatgate.PermissionDeniedError, False),
    ErrorCase("not_found", chatgate.NotFoundError, False),
    ErrorCase("rate_limit", chatgate.RateLimitError, True),
    ErrorCase("server_error", chatgate.InternalServerError, True),
    ErrorCase("unavailable", chatgate.InternalServerError, True),
]
RETRY_AFTER = {"retry-after": "3"}
IMAGE = "data:image/png;base64,iVBORw0KGgo="


class Provider:
    """The OpenAI wire format; the other providers override what differs."""

    name = "openai"
    model = "openai/gpt-4o-mini"
    served = "gpt-4o-mini"
    fake_class: type[Fake] = oai.FakeOpenAI
    price = (Decimal("0.15"), Decimal("0.60"))  # USD per million tokens in, out (list price)
    request_id: str | None = "req_fake_1"
    stream_error_request_id: str | None = "req_fake_1"  # on an error event mid-stream
    image_wire: Any = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    statuses = {
        "bad_request": 400,
        "authentication": 401,
        "permission": 403,
        "not_found": 404,
        "rate_limit": 429,
        "server_error": 500,
        "unavailable": 503,
    }
    mid_stream_error_cls: type[chatgate.APIStatusError] = chatgate.InternalServerError

    def __repr__(self) -> str:
        return self.name

    @contextlib.contextmanager
    def start(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
        with self.fake_class() as fake:
            yield fake

    def call_args(self, fake: Fake) -> dict[str, Any]:
        return {"model": self.model, "api_key": "sk-conformance", "api_base": fake.base_url}

    # -- answers in the provider's wire form ----------------------------------------------------

    def text(self, text: str, prompt: int, completion: int) -> Reply:
        body = oai.completion_json(
            text, model=self.served, prompt_tokens=prompt, completion_tokens=completion
        )
        return Reply(json=body)

    def stream(self, pieces: list[str], prompt: int, completion: int) -> Reply:
        return Reply(chunks=oai.text_stream(pieces, model=self.served, usage=(prompt, completion)))

    def stream_without_end(self, pieces: list[str]) -> Reply:
        """A stream closed cleanly but before the provider's end of answer."""
        return Reply(chunks=oai.text_stream(pieces, usage=None)[:-1], done=False)

    def tool_calls(self, calls: list[Call], *, stream: bool) -> Reply:
        if not stream:
            whole = [
                _openai_call(id_, name, orjson.dumps(args).decode()) for id_, name, args in calls
            ]
            body = oai.completion_json(None, finish_reason="tool_calls", tool_calls=whole)
            return Reply(json=body)
        chunks = [oai.chunk_json({"role": "assistant", "content": None})]
        for index, (id_, name, args) in enumerate(calls):
            text = orjson.dumps(args).decode()
            opened = {"index": index, **_openai_call(id_, name, "")}
            chunks.append(oai.chunk_json({"tool_calls": [opened]}))
            for half in (text[: len(text) // 2], text[len(text) // 2 :]):
                fragment = {"index": index, "function": {"arguments": half}}
                chunks.append(oai.chunk_json({"tool_calls": [fragment]}))
        chunks.append(oai.chunk_json({}, finish_reason="tool_calls"))
        return Reply(chunks=chunks)

    def structured(self, value: dict[str, Any], name: str, *, stream: bool) -> Reply:
        text = orjson.dumps(value).decode()
        if stream:
            return self.stream([text[:5], text[5:]], 9, 3)
        return self.text(text, 9, 3)

    def error(self, kind: str, message: str) -> Reply:
        body = oai.error_json(message, "some_error", code="x")
        return Reply(status=self.statuses[kind], json=body, headers=RETRY_AFTER)

    def retry_after(self, kind: str) -> float | None:
        """The retry hint every error reply carries (a Retry-After header of 3 s)."""
        return 3.0

    def mid_stream_error(self, message: str) -> Reply:
        chunks = [*oai.text_stream(["a", "b"])[:3], oai.error_json(message, "server_error")]
        return Reply(chunks=chunks, done=False)

    # -- what the provider was sent -------------------------------------------------------------

    def json_request(self, fmt: dict[str, Any]) -> Any:
        """How ``response_format`` (a json_schema) is asked for on the wire."""
        return fmt

    def sent_json_request(self, body: Any) -> Any:
        return body["response_format"]

    def sent_parts(self, body: Any) -> list[Any]:
        """The parts of the first user message, as sent on the wire."""
        return list(body["messages"][0]["content"])

    def tool_result_as_sent(self, call_id: str, name: str, result: str) -> tuple[str, str]:
        """How a tool result is named in the request: by its call's id."""
        return (call_id, result)

    def sent_tool_results(self, body: Any) -> list[tuple[str, str]]:
        """(call id, result text) of each tool result in the request."""
        return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]


def _openai_call(id_: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


class Azure(Provider):
    """Azure OpenAI: OpenAI's bodies under a deployment path, answers naming the served model
    (priced by it), errors in Azure's own body (a string code, no type)."""

    name = "azure"
    model = "azure/gpt4o-prod"

    def error(self, kind: str, message: str) -> Reply:
        status = self.statuses[kind]
        body = {"error": {"code": str(status), "message": message}}
        return Reply(status=status, json=body, headers=RETRY_AFTER)

    def call_args(self, fake: Fake) -> dict[str, Any]:
        return {"model": self.model, "api_key": "az-conformance", "api_base": fake.root_url}
