"""OpenAI Chat Completions, and every server that speaks it (Groq, vLLM, Ollama, ...).

The canonical format *is* this wire format, so translation is mostly pass-through: the work
here is headers, stream usage, unsupported parameters and reading errors exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pydantic

from chatgate.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    error_for_status,
)
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.content import join_text_parts
from chatgate.providers.params import drop_or_reject
from chatgate.transport.sse import SSEDecoder, SSEEvent
from chatgate.types import ChatRequest, ChatResponse
from chatgate.wire_chunk import WireChunk

__all__ = ["ADAPTER", "OpenAIAdapter", "OpenAIStreamTranslator", "error_from_body"]

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})
_MAX_MESSAGE_CHARS = 2000


def error_from_body(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    deployment: Deployment,
    request_id: str | None = None,
) -> APIStatusError:
    """Map an OpenAI-shaped error body ({"error": {message, type, param, code}}) to our tree.

    Compatible servers vary: ``error`` may be a string, or the body ``{"detail": ...}``
    (FastAPI) or plain text; each is read, never guessed from the message wording."""
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code: str | None = None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or "")
        code = error.get("code") if isinstance(error.get("code"), str) else None
        code = code or (error.get("type") if isinstance(error.get("type"), str) else None)
    elif isinstance(error, str):
        message = error
    elif isinstance(parsed, dict) and "detail" in parsed:
        message = str(parsed["detail"])
    else:
        message = body.decode("utf-8", "replace")
    message = message[:_MAX_MESSAGE_CHARS] or f"HTTP {status} with no error message"
    cls: type[APIStatusError] | None = None
    if code in _CONTEXT_CODES:
        cls = ContextWindowExceededError
    elif code in _POLICY_CODES:
        cls = ContentPolicyViolationError
    return error_for_status(
        status,
        message,
        headers,
        cls=cls,
        provider=deployment.provider,
        model=deployment.model,
        request_id=request_id,
        body=parsed if parsed is not None else body.decode("utf-8", "replace"),
    )


class OpenAIStreamTranslator:
    """SSE events of an OpenAI-format stream -> wire chunks (typed only if a caller asks: see
    WireChunk). Complete only at ``[DONE]`` (or when every choice has finished and the server
    then closed the stream cleanly)."""

    __slots__ = ("_deployment", "_done", "_finished")

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._done = False
        self._finished = False

    def feed(self, event: SSEEvent) -> list[WireChunk]:
        text = event.data
        if text == "[DONE]":
            self._done = True
            return []
        if self._done or not text:
            return []
        wire = text.encode()
        try:
            data = orjson.loads(wire)
        except orjson.JSONDecodeError as exc:
            raise self._malformed(f"not JSON ({exc.msg})") from None
        if type(data) is not dict:
            raise self._malformed("not a JSON object")
        if "error" in data:
            raise error_from_body(500, {}, wire, self._deployment)
        if not self._finished:
            choices = data.get("choices")
            if type(choices) is list:
                for choice in choices:
                    if type(choice) is dict and choice.get("finish_reason") is not None:
                        self._finished = True
        return [WireChunk(wire, data)]

    def finish(self) -> list[WireChunk]:
        if not (self._done or self._finished):
            raise APIConnectionError(
                "the stream ended before the answer was complete (no finish_reason, no [DONE])",
                provider=self._deployment.provider,
                model=self._deployment.model,
            )
        return []

    def _malformed(self, why: str) -> APIConnectionError:
        return APIConnectionError(
            f"malformed stream chunk: {why}",
            provider=self._deployment.provider,
            model=self._deployment.model,
        )


class OpenAIAdapter:
    name = "openai"
    request_id_headers: tuple[str, ...] = ("x-request-id",)
    path = "/chat/completions"

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        wire = request.wire()
        wire["model"] = deployment.model
        drop_or_reject(wire, deployment.unsupported_params, deployment)
        if deployment.string_content:
            join_text_parts(wire["messages"], deployment.string_content)
        if wire.get("stream") and deployment.stream_usage:
            options = wire.get("stream_options") or {}
            wire["stream_options"] = {**options, "include_usage": True}
        headers = {"Content-Type": "application/json", **deployment.headers}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        url = deployment.api_base + self.path
        return HttpRequest("POST", url, headers, orjson.dumps(wire))

    def parse_response(
        self, body: bytes, request: ChatRequest, deployment: Deployment
    ) -> ChatResponse:
        try:
            response = ChatResponse.model_validate_json(body)
        except pydantic.ValidationError as exc:
            raise APIConnectionError(
                f"the provider's answer is not a chat completion: {exc.errors()[0]['msg']}",
                provider=deployment.provider,
                model=deployment.model,
                body=body[:_MAX_MESSAGE_CHARS].decode("utf-8", "replace"),
            ) from exc
        extra = response.model_extra
        if extra and "error" in extra and not response.choices:
            raise error_from_body(500, {}, body, deployment)
        return response

    def new_stream(
        self, request: ChatRequest, deployment: Deployment
    ) -> tuple[SSEDecoder, OpenAIStreamTranslator]:
        return SSEDecoder(), OpenAIStreamTranslator(deployment)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError:
        return error_from_body(status, headers, body, deployment)


ADAPTER = OpenAIAdapter()
