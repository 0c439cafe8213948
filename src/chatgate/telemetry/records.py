"""The facts the gateway's own spans record on the request path, and their OTLP encoding.

A span made by the lean recorder (telemetry/recorder.py) for the gateway's request, its routed
call or an attempt holds a ``Facts`` object: references to what already exists and no longer
changes (the Deployment, the attempt's ChatRequest, the ChatResponse, the request context's
final values). No attribute dict is built and no semantic convention is applied on the
request path; the export thread writes the attributes straight to protobuf. What a route or
a deployment always contributes (the server span's method, path and route; an attempt's
operation, provider, server address and port, model, deployment and group) is encoded once
and reused; per span only what changes is encoded: token counts, the answer's id and model,
finish reasons, cost, status.

Each record writes exactly the attributes that ``semconv``'s builders (the SDK path's, and
the library's) would set on the same span: the two are tested against each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chatgate.telemetry import semconv
from chatgate.telemetry.otlp import attribute, attribute_once, encode_attributes

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment
    from chatgate.types import ChatRequest, ChatResponse

__all__ = ["AttemptFacts", "RouteFacts", "ServerFacts", "Static", "context_attributes"]

_SPAN_ATTRIBUTE = 0x4A  # Span.attributes
_MAX_STATIC = 1024  # the attempt encodings kept (a deployment, group and model each)


class Static:
    """Attributes shared by every span of a kind (a route's request attributes): encoded by
    the export thread the first time a span needs them, then reused."""

    __slots__ = ("_encoded", "attributes")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self.attributes = attributes
        self._encoded: bytes | None = None

    def encoded(self) -> bytes:
        encoded = self._encoded
        if encoded is None:
            encoded = self._encoded = encode_attributes(self.attributes, _SPAN_ATTRIBUTE)
        return encoded


# (provider, api_base, model, deployment id, group) -> the attempt's unchanging attributes
_attempt_static: dict[tuple[str, str, str, str | None, str | None], bytes] = {}


class AttemptFacts:
    """A chat attempt (``chat {model}``): ``routed`` is the router's (deployment id, group,
    attempt number), None for a direct call. ``cost`` and ``ttft_ms`` are read off the
    answer's meta when the attempt ends (the rest of the answer is read when exported)."""

    __slots__ = ("cost", "deployment", "request", "response", "routed", "ttft_ms")

    def __init__(
        self,
        request: ChatRequest,
        deployment: Deployment,
        routed: tuple[str, str, int] | None,
    ) -> None:
        self.request = request
        self.deployment = deployment
        self.routed = routed
        self.response: ChatResponse | None = None
        self.cost: Decimal | None = None
        self.ttft_ms: float | None = None

    def answered(self, response: ChatResponse) -> None:
        self.response = response
        meta = response.meta
        self.cost, self.ttft_ms = meta.cost, meta.ttft_ms

    def encode(self) -> bytes:
        parts = [self._static()]
        if self.routed is not None:
            parts.append(attribute(semconv.ATTEMPT, self.routed[2]))
        given = semconv.request_parameters(self.request)
        if given:
            parts.append(encode_attributes(given, _SPAN_ATTRIBUTE))
        response = self.response
        if response is not None:
            parts += _answer(response)
        if self.cost is not None:
            parts.append(attribute(semconv.COST_USD, float(self.cost)))
        if self.ttft_ms is not None:
            parts.append(attribute(semconv.TIME_TO_FIRST_CHUNK, self.ttft_ms / 1000.0))
        return b"".join(parts)

    def _static(self) -> bytes:
        deployment, routed = self.deployment, self.routed
        model = self.request.model
        key = (
            deployment.provider,
            deployment.api_base,
            model,
            routed[0] if routed else None,
            routed[1] if routed else None,
        )
        found = _attempt_static.get(key)
        if found is None:
            attrs = dict(semconv.deployment_attributes("chat", key[0], key[1]))
            attrs[semconv.REQUEST_MODEL] = model
            if routed is not None:
                attrs[semconv.DEPLOYMENT_ID] = routed[0]
                attrs[semconv.MODEL_GROUP] = routed[1]
            if len(_attempt_static) >= _MAX_STATIC:
                _attempt_static.clear()
            found = _attempt_static[key] = encode_attributes(attrs, _SPAN_ATTRIBUTE)
        return found


def _answer(response: ChatResponse) -> list[bytes]:
    """``semconv.chat_response_attributes`` but cost and time to first chunk, encoded."""
    parts = []
    usage = response.usage
    if usage is not None:
        parts.append(attribute(semconv.INPUT_TOKENS, usage.prompt_tokens))
        parts.append(attribute(semconv.OUTPUT_TOKENS, usage.completion_tokens))
        prompt, completion = usage.prompt_tokens_details, usage.completion_tokens_details
        if prompt is not None:
            if prompt.cached_tokens is not None:
                parts.append(attribute(semconv.CACHE_READ_TOKENS, prompt.cached_tokens))
            if prompt.cache_creation_tokens is not None:
                parts.append(attribute(semconv.CACHE_CREATION_TOKENS, prompt.cache_creation_tokens))
        if completion is not None and completion.reasoning_tokens is not None:
            parts.append(attribute(semconv.REASONING_TOKENS, completion.reasoning_tokens))
    if response.model:
        parts.append(attribute(semconv.RESPONSE_MODEL, response.model))
    if response.id:
        parts.append(attribute_once(semconv.RESPONSE_ID, response.id))
    reasons = [c.finish_reason for c in response.choices if c.finish_reason]
    if reasons:
        parts.append(attribute_once(semconv.FINISH_REASONS, reasons))
    return parts


class RouteFacts:
    """A routed call (``chatgate.route {group}``); ``served``: the group that answered."""

    __slots__ = ("group", "served")

    def __init__(self, group: str) -> None:
        self.group = group
        self.served: str | None = None

    def encode(self) -> bytes:
        group, served = self.group, self.served
        head = attribute(semconv.MODEL_GROUP, group)
        if served is None:
            return head
        return (
            head
            + attribute(semconv.FALLBACK_TAKEN, served != group)
            + attribute(semconv.SERVED_GROUP, served)
        )


# The request context's values a server span reports, in order (annotate in
# server/tracing.py makes the tuple): the request id, then these, then tags, cost, attempts
# and whether a fallback answered.
_CONTEXT_KEYS = (
    "chatgate.key.id",  # the id, never the secret
    "chatgate.user.id",
    "chatgate.team.id",
    "chatgate.model",
    "chatgate.deployment",
    semconv.CACHE_STATUS,
    "chatgate.error",
)
_UNIQUE = frozenset({"chatgate.request_id", "chatgate.tags"})  # not worth caching
RequestContextValues = tuple[Any, ...]


def context_attributes(values: RequestContextValues) -> dict[str, Any]:
    """A server span's attributes from the request context's values."""
    attrs: dict[str, Any] = {"chatgate.request_id": values[0]}
    for key, value in zip(_CONTEXT_KEYS, values[1:8], strict=True):
        if value is not None:
            attrs[key] = value
    tags, cost, attempts, fallback = values[8:]
    if tags:
        attrs["chatgate.tags"] = list(tags)
    if cost is not None:
        attrs[semconv.COST_USD] = float(cost)
    if attempts:
        attrs["chatgate.attempts"] = attempts
    if fallback is not None:
        attrs[semconv.FALLBACK_TAKEN] = fallback
    return attrs


class ServerFacts:
    """The gateway's SERVER span: its route's request attributes, the response status, the
    request context's values once the request is over, and the steps done under it that hold
    no span of their own (``spans.step``: name, start, end, error type; each exported as a
    child span, telemetry/otlp.py)."""

    __slots__ = ("request", "static", "status", "steps")

    def __init__(self, static: Static) -> None:
        self.static = static
        self.status = 0
        self.request: RequestContextValues | None = None
        self.steps: list[tuple[str, int, int, str | None]] | None = None

    def encode(self) -> bytes:
        parts = [self.static.encoded()]
        if self.status:
            parts.append(attribute("http.response.status_code", self.status))
        if self.request is not None:
            for key, value in context_attributes(self.request).items():
                encode = attribute_once if key in _UNIQUE else attribute
                parts.append(encode(key, value))
        return b"".join(parts)
