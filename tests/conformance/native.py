"""The providers with a wire format of their own (Anthropic Messages, Gemini, Bedrock Converse),
described for the conformance suite in the terms ``providers.Provider`` defines."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

import chatgate
from tests.conformance.providers import IMAGE, RETRY_AFTER, Call, Fake, Provider
from tests.fakes import anthropic_server as anth
from tests.fakes import bedrock_server as bed
from tests.fakes import gemini_server as gem
from tests.fakes.base import Reply

__all__ = ["Anthropic", "Bedrock", "Gemini"]

_DATA = IMAGE.partition(",")[2]
# The conformance schema ({"name": string}, required) as Gemini's OpenAPI subset spells it.
_gemini_schema = {
    "type": "OBJECT",
    "properties": {"name": {"type": "STRING"}},
    "required": ["name"],
}


class Anthropic(Provider):
    name = "anthropic"
    model = "anthropic/claude-sonnet-4-20250514"
    served = "claude-sonnet-4-20250514"
    price = (Decimal("3"), Decimal("15"))
    image_wire = [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _DATA}},
    ]
    fake_class = anth.FakeAnthropic
    statuses = {**Provider.statuses, "unavailable": 529}
    stream_error_request_id = "req_x"  # the error event's own request_id
    _types = {
        "bad_request": "invalid_request_error",
        "authentication": "authentication_error",
        "permission": "permission_error",
        "not_found": "not_found_error",
        "rate_limit": "rate_limit_error",
        "server_error": "api_error",
        "unavailable": "overloaded_error",
    }

    def _message(self, content: Any, prompt: int = 9, completion: int = 3, **kw: Any) -> Any:
        usage = anth.usage_json(prompt, completion)
        return anth.message_json(content, model=self.served, usage=usage, **kw)

    def text(self, text: str, prompt: int, completion: int) -> Reply:
        return Reply(json=self._message(text, prompt, completion))

    def stream(self, pieces: list[str], prompt: int, completion: int) -> Reply:
        message = self._message("".join(pieces), prompt, completion)
        return Reply(chunks=anth.events_for(message, pieces=len(pieces)))

    def stream_without_end(self, pieces: list[str]) -> Reply:
        return Reply(chunks=self.stream(pieces, 9, 3).chunks[:-1])  # type: ignore[index]

    def tool_calls(self, calls: list[Call], *, stream: bool) -> Reply:
        blocks = [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
        message = self._message(blocks, stop_reason="tool_use")
        return Reply(chunks=anth.events_for(message)) if stream else Reply(json=message)

    def structured(self, value: dict[str, Any], name: str, *, stream: bool) -> Reply:
        return self.tool_calls([("toolu_json", name, value)], stream=stream)  # the forced tool

    def json_request(self, fmt: dict[str, Any]) -> Any:
        return {"type": "tool", "name": fmt["json_schema"]["name"]}  # a forced tool

    def sent_json_request(self, body: Any) -> Any:
        return body["tool_choice"]

    def error(self, kind: str, message: str) -> Reply:
        # the body's request_id is the header's, as Anthropic sends them
        body = {**anth.error_body(self._types[kind], message), "request_id": "req_fake_1"}
        return Reply(status=self.statuses[kind], json=body, headers=RETRY_AFTER)

    def mid_stream_error(self, message: str) -> Reply:
        events: list[Any] = anth.events_for(self._message("a b c d"))[:4]
        return Reply(chunks=[*events, anth.error_body("overloaded_error", message)])

    def sent_tool_results(self, body: Any) -> list[tuple[str, str]]:
        return [
            (block["tool_use_id"], block["content"])
            for message in body["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block["type"] == "tool_result"
        ]


class Gemini(Provider):
    name = "gemini"
    model = "gemini/gemini-2.5-flash"
    served = gem.MODEL_VERSION
    price = (Decimal("0.30"), Decimal("2.50"))
    fake_class = gem.FakeGemini
    request_id = None  # Gemini sends no request-id header
    stream_error_request_id = None
    image_wire = [
        {"text": "what is this"},
        {"inlineData": {"mimeType": "image/png", "data": _DATA}},
    ]
    _status_names = {
        "bad_request": "INVALID_ARGUMENT",
        "authentication": "UNAUTHENTICATED",
        "permission": "PERMISSION_DENIED",
        "not_found": "NOT_FOUND",
        "rate_limit": "RESOURCE_EXHAUSTED",
        "server_error": "INTERNAL",
        "unavailable": "UNAVAILABLE",
    }

    def text(self, text: str, prompt: int, completion: int) -> Reply:
        usage = gem.usage_json(prompt, completion)
        return Reply(json=gem.response_json(gem.candidate_json({"text": text}), usage=usage))

    def _events(self, pieces: list[str], finish: str | None, usage: Any) -> list[Any]:
        events = [
            gem.response_json(gem.candidate_json({"text": piece}, finish_reason=None))
            for piece in pieces
        ]
        if finish is not None:
            events[-1]["candidates"][0]["finishReason"] = finish
            events[-1]["usageMetadata"] = usage
        return events

    def stream(self, pieces: list[str], prompt: int, completion: int) -> Reply:
        return gem.stream_reply(self._events(pieces, "STOP", gem.usage_json(prompt, completion)))

    def stream_without_end(self, pieces: list[str]) -> Reply:
        return gem.stream_reply(self._events(pieces, None, None))

    def tool_calls(self, calls: list[Call], *, stream: bool) -> Reply:
        parts = [{"functionCall": {"name": n, "args": a, "id": i}} for i, n, a in calls]
        body = gem.response_json(gem.candidate_json(*parts), usage=gem.usage_json())
        return gem.stream_reply([body]) if stream else Reply(json=body)

    def json_request(self, fmt: dict[str, Any]) -> Any:
        return {"responseMimeType": "application/json", "responseSchema": _gemini_schema}

    def sent_json_request(self, body: Any) -> Any:
        return body["generationConfig"]

    def error(self, kind: str, message: str) -> Reply:
        status = self.statuses[kind]
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}
        details = [retry] if kind == "rate_limit" else None  # Gemini's retry hint
        body = gem.error_json(status, self._status_names[kind], message, details)
        return Reply(status=status, json=body)

    def retry_after(self, kind: str) -> float | None:
        return 3.0 if kind == "rate_limit" else None

    def mid_stream_error(self, message: str) -> Reply:
        failure = {"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}}
        return gem.stream_reply([*self._events(["a", "b"], None, None), failure])

    def sent_parts(self, body: Any) -> list[Any]:
        return list(body["contents"][0]["parts"])

    def tool_result_as_sent(self, call_id: str, name: str, result: str) -> tuple[str, str]:
        return (name, result)  # Gemini pairs a result with its call by the function's name

    def sent_tool_results(self, body: Any) -> list[tuple[str, str]]:
        return [
            (part["functionResponse"]["name"], part["functionResponse"]["response"]["result"])
            for content in body["contents"]
            for part in content["parts"]
            if "functionResponse" in part
        ]


class Bedrock(Provider):
    name = "bedrock"
    model = "bedrock/anthropic.claude-sonnet-4-20250514-v1:0"
    served = "anthropic.claude-sonnet-4-20250514-v1:0"
    price = (Decimal("3"), Decimal("15"))
    fake_class = bed.FakeBedrock
    request_id = "req-bedrock-1"
    stream_error_request_id = "req-bedrock-1"
    image_wire = [
        {"text": "what is this"},
        {"image": {"format": "png", "source": {"bytes": _DATA}}},
    ]
    statuses = {**Provider.statuses, "authentication": 403}
    mid_stream_error_cls = chatgate.RateLimitError
    _types = {
        "bad_request": "ValidationException",
        "authentication": "UnrecognizedClientException",
        "permission": "AccessDeniedException",
        "not_found": "ResourceNotFoundException",
        "rate_limit": "ThrottlingException",
        "server_error": "InternalServerException",
        "unavailable": "ServiceUnavailableException",
    }

    @contextlib.contextmanager
    def start(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
        with super().start(monkeypatch) as fake:
            for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
            monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", bed.ACCESS_KEY)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bed.SECRET_KEY)
            monkeypatch.setenv("AWS_REGION", "eu-west-3")
            monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.base_url)
            yield fake

    def call_args(self, fake: Fake) -> dict[str, Any]:
        return {"model": self.model}  # SigV4 credentials and the endpoint from the environment

    def text(self, text: str, prompt: int, completion: int) -> Reply:
        return bed.Reply(json=bed.converse_json(text, usage=bed.usage_json(prompt, completion)))

    def stream(self, pieces: list[str], prompt: int, completion: int) -> Reply:
        events = bed.text_events(pieces, usage=bed.usage_json(prompt, completion))
        return bed.Reply(events=events, split=5)  # frames cut across writes

    def stream_without_end(self, pieces: list[str]) -> Reply:
        return bed.Reply(events=bed.text_events(pieces)[:-2])  # no messageStop, no metadata

    def tool_calls(self, calls: list[Call], *, stream: bool) -> Reply:
        if not stream:
            uses = [{"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in calls]
            return bed.Reply(json=bed.converse_json(uses, stop_reason="tool_use"))
        events = [bed.event("messageStart", {"role": "assistant"})]
        for block, (id_, name, args) in enumerate(calls):
            text = orjson.dumps(args).decode()
            events += bed.tool_events(block, id_, name, [text[:4], text[4:]])
        events.append(bed.event("messageStop", {"stopReason": "tool_use"}))
        events.append(bed.event("metadata", {"usage": bed.usage_json()}))
        return bed.Reply(events=events, split=3)

    def structured(self, value: dict[str, Any], name: str, *, stream: bool) -> Reply:
        return self.tool_calls([("tu_json", name, value)], stream=stream)  # the forced tool

    def json_request(self, fmt: dict[str, Any]) -> Any:
        name, schema = fmt["json_schema"]["name"], fmt["json_schema"]["schema"]
        return {
            "tools": [{"toolSpec": {"name": name, "inputSchema": {"json": schema}}}],
            "toolChoice": {"tool": {"name": name}},
        }

    def sent_json_request(self, body: Any) -> Any:
        return body["toolConfig"]

    def error(self, kind: str, message: str) -> Reply:
        return bed.error_reply(self.statuses[kind], self._types[kind], message, **RETRY_AFTER)

    def mid_stream_error(self, message: str) -> Reply:
        events = [*bed.text_events(["a", "b"])[:2], bed.exception("throttlingException", message)]
        return bed.Reply(events=events)

    def sent_tool_results(self, body: Any) -> list[tuple[str, str]]:
        return [
            (block["toolResult"]["toolUseId"], block["toolResult"]["content"][0]["text"])
            for message in body["messages"]
            for block in message["content"]
            if "toolResult" in block
        ]
