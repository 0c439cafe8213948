"""The facts the gateway's own spans record on the request path, and their OTLP encoding.

A span made by the lean recorder (telemetry/recorder.py) for the gateway's request, its routed
call or an attempt holds a ``Facts`` object: references to what no longer changes (the
Deployment, the request context's final values) and, for an attempt, the request's parameters
and the answer's numbers, read when it ends (the request and the answer themselves are not
kept). No semantic convention is applied on the request path; the export thread writes the
attributes straight to protobuf. What a route or a deployment always contributes (the server
span's method, path and route; an attempt's operation, provider, server address and port,
model, deployment and group) is encoded once and reused; per span only what changes is
encoded: token counts, the answer's id and model, finish reasons, cost, status.

Each record writes exactly the attributes that ``semconv``'s builders (the SDK path's, and
the library's) would set on the same span: the two are tested against each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chatgate.telemetry import metrics, semconv
from chatgate.telemetry.otlp import (
    attribute,
    attribute_once,
    double_attribute,
    encode_attributes,
    string_attribute,
)

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment
    from chatgate.telemetry.metrics import Instruments
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
    attempt number), None for a direct call. The request is kept while the attempt runs;
    when it ends (``ended``) its parameters and the answer's numbers are read off, and
    neither object is kept: a queued span must not keep a request's objects alive (that made
    every request slower, docs/observability.md "What held objects cost"). With the lean
    meters, the attempt's metrics are made from these facts by the export thread
    (``measure``), not on the request path."""

    __slots__ = (
        "answer",
        "cost",
        "deployment",
        "error",
        "meter",
        "model",
        "params",
        "request",
        "routed",
        "seconds",
        "ttft_ms",
    )

    def __init__(
        self,
        request: ChatRequest,
        deployment: Deployment,
        routed: tuple[str, str, int] | None,
    ) -> None:
        self.request: ChatRequest | None = request
        self.model = request.model
        self.deployment = deployment
        self.routed = routed
        self.params: tuple[Any, ...] | None = None  # semconv.read_parameters'
        self.answer: _Answer | None = None
        self.cost: Decimal | None = None
        self.ttft_ms: float | None = None
        self.error: str | None = None  # the class of what failed the attempt
        self.meter: Instruments | None = None  # set when the metrics wait for ``measure``
        self.seconds = 0.0

    def measure(self) -> None:
        """Make the attempt's metrics (once): ``gen_ai.client.operation.duration``, the
        token usage and the cost, as ``metrics.record_attempt`` would have."""
        meter = self.meter
        if meter is None:
            return
        self.meter = None
        answer = self.answer
        if answer is None:
            metrics.measure_attempt(meter, self.deployment, self.seconds, self.error, None)
            return
        metrics.measure_attempt(
            meter,
            self.deployment,
            self.seconds,
            self.error,
            answer[5] if self.error is None else None,
            answer[0],
            answer[1],
            self.cost,
        )

    def ended(self, response: ChatResponse | None) -> None:
        """The attempt is over: keep what its span reports, let go of the request."""
        request = self.request
        if request is not None:
            self.params = semconv.read_parameters(request)
            self.request = None
        if response is not None:
            self.answer = _read_answer(response)
            meta = response.meta
            self.cost, self.ttft_ms = meta.cost, meta.ttft_ms

    def encode(self) -> bytes:
        parts = [self._static()]
        if self.routed is not None:
            parts.append(attribute(semconv.ATTEMPT, self.routed[2]))
        if self.request is not None:  # ended without ``ended`` (not by spans.end_attempt)
            self.ended(None)
        params = self.params
        if params is not None and params != _NO_PARAMETERS:
            parts.append(_parameters(params))
        if self.answer is not None:
            _answer(self.answer, parts)
        if self.cost is not None:
            parts.append(double_attribute(semconv.COST_USD, float(self.cost)))
        if self.ttft_ms is not None:
            parts.append(double_attribute(semconv.TIME_TO_FIRST_CHUNK, self.ttft_ms / 1000.0))
        return b"".join(parts)

    def _static(self) -> bytes:
        deployment, routed = self.deployment, self.routed
        model = self.model
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


# A request's parameter values (semconv.read_parameters) and their types -> their attributes,
# encoded: most requests give the same few (often none). The types keep 1 apart from 1.0.
_parameter_fields: dict[tuple[tuple[Any, ...], tuple[type, ...]], bytes] = {}
_NO_PARAMETERS = (None,) * len(semconv.PARAMETER_NAMES)  # a request that gives none


def _parameters(values: tuple[Any, ...]) -> bytes:
    key = (values, tuple(map(type, values)))
    try:
        field = _parameter_fields.get(key)
    except TypeError:  # a list of stop sequences: not a key
        return encode_attributes(semconv.parameter_attributes(values), _SPAN_ATTRIBUTE)
    if field is None:
        if len(_parameter_fields) >= _MAX_STATIC:
            _parameter_fields.clear()
        attrs = semconv.parameter_attributes(values)
        field = _parameter_fields[key] = encode_attributes(attrs, _SPAN_ATTRIBUTE)
    return field


# An answer's numbers for its span: input, output, cache read, cache creation and reasoning
# tokens (None: not reported), the answering model, the answer's id, its finish reasons.
_Answer = tuple[
    int | None, int | None, int | None, int | None, int | None, str, str, tuple[str, ...]
]


def _read_answer(response: ChatResponse) -> _Answer:
    usage = response.usage
    prompt = completion = cached = created = reasoning = None
    if usage is not None:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        details = usage.prompt_tokens_details
        if details is not None:
            cached, created = details.cached_tokens, details.cache_creation_tokens
        if usage.completion_tokens_details is not None:
            reasoning = usage.completion_tokens_details.reasoning_tokens
    reasons = tuple([c.finish_reason for c in response.choices if c.finish_reason])
    return (prompt, completion, cached, created, reasoning, response.model, response.id, reasons)


_reason_fields: dict[tuple[str, ...], bytes] = {}  # finish reasons repeat: ("stop",)


def _answer(answer: _Answer, parts: list[bytes]) -> None:
    """``semconv.chat_response_attributes`` but cost and time to first chunk, encoded."""
    prompt, completion, cached, created, reasoning, model, answer_id, reasons = answer
    if prompt is not None:
        parts.append(attribute(semconv.INPUT_TOKENS, prompt))
        parts.append(attribute(semconv.OUTPUT_TOKENS, completion))
    if cached is not None:
        parts.append(attribute(semconv.CACHE_READ_TOKENS, cached))
    if created is not None:
        parts.append(attribute(semconv.CACHE_CREATION_TOKENS, created))
    if reasoning is not None:
        parts.append(attribute(semconv.REASONING_TOKENS, reasoning))
    if model:
        parts.append(attribute(semconv.RESPONSE_MODEL, model))
    if answer_id:
        parts.append(string_attribute(semconv.RESPONSE_ID, answer_id))
    if reasons:
        field = _reason_fields.get(reasons)
        if field is None:
            if len(_reason_fields) >= _MAX_STATIC:
                _reason_fields.clear()
            field = _reason_fields[reasons] = attribute_once(semconv.FINISH_REASONS, list(reasons))
        parts.append(field)


class RouteFacts:
    """A routed call (``chatgate.route {group}``); ``served``: the group that answered."""

    __slots__ = ("group", "served")

    def __init__(self, group: str) -> None:
        self.group = group
        self.served: str | None = None

    def measure(self) -> None:
        """No metrics of its own."""

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
    semconv.SERVED_GROUP,
    semconv.CACHE_STATUS,
    "chatgate.error",
)
RequestContextValues = tuple[Any, ...]


def context_attributes(values: RequestContextValues) -> dict[str, Any]:
    """A server span's attributes from the request context's values."""
    attrs: dict[str, Any] = {"chatgate.request_id": values[0]}
    for key, value in zip(_CONTEXT_KEYS, values[1:9], strict=True):
        if value is not None:
            attrs[key] = value
    tags, cost, attempts, fallback = values[9:]
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

    def measure(self) -> None:
        """No metrics of its own."""

    def encode(self) -> bytes:
        """``context_attributes``' pairs, written directly; the values that repeat from
        request to request (the status, key, user, team, model, deployment, served group,
        cache status, error, attempts, fallback) as one cached piece."""
        parts = [self.static.encoded()]
        values = self.request
        if values is None:
            if self.status:
                parts.append(attribute("http.response.status_code", self.status))
            return b"".join(parts)
        parts.append(attribute_once("chatgate.request_id", values[0]))
        repeated = (self.status, *values[1:9], values[11], values[12])
        try:
            field = _repeated_fields.get(repeated)
        except TypeError:  # a value that cannot be a key (not ours: still written, uncached)
            field = _repeated(repeated, keep=False)
        if field is None:
            field = _repeated(repeated)
        parts.append(field)
        tags, cost = values[9], values[10]
        if tags:
            parts.append(attribute_once("chatgate.tags", list(tags)))
        if cost is not None:
            parts.append(double_attribute(semconv.COST_USD, float(cost)))
        return b"".join(parts)


# A server span's repeated values (ServerFacts.encode) -> their encoded attributes.
_repeated_fields: dict[tuple[Any, ...], bytes] = {}


def _repeated(values: tuple[Any, ...], *, keep: bool = True) -> bytes:
    status, attempts, fallback = values[0], values[9], values[10]
    parts = [attribute("http.response.status_code", status)] if status else []
    for key, value in zip(_CONTEXT_KEYS, values[1:9], strict=True):
        if value is not None:
            parts.append(attribute(key, value))
    if attempts:
        parts.append(attribute("chatgate.attempts", attempts))
    if fallback is not None:
        parts.append(attribute(semconv.FALLBACK_TAKEN, fallback))
    field = b"".join(parts)
    if keep:
        if len(_repeated_fields) >= _MAX_STATIC:
            _repeated_fields.clear()
        _repeated_fields[values] = field
    return field
