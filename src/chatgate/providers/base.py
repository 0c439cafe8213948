"""What a provider adapter is: pure functions between canonical types and one wire format.

An adapter never does I/O, holds no HTTP client, logger or global state. ``client.py`` sends the
``HttpRequest`` it builds and feeds the bytes that come back into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.errors import APIError
from chatgate.transport.request import HttpRequest
from chatgate.types import ChatRequest, ChatResponse
from chatgate.wire_chunk import StreamItem

__all__ = [
    "Adapter",
    "Deployment",
    "EventFramer",
    "HttpRequest",
    "StreamTranslator",
]


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where and as what one request goes: a provider, its upstream model name and credentials."""

    provider: str  # registry name: "openai", "groq", "anthropic", ...
    model: str  # the upstream model name, without the provider prefix
    api_base: str  # what the provider's official SDK calls base_url
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    api_version: str | None = None
    drop_params: bool = False
    unsupported_params: frozenset[str] = frozenset()
    string_content: frozenset[str] = frozenset()  # roles whose text parts go as a string
    stream_usage: bool = True  # the upstream accepts stream_options.include_usage
    options: Mapping[str, Any] = field(default_factory=dict)  # provider-specific settings
    # A configured chatgate.cost.prices.ModelPrice (typed loosely: providers sit below cost);
    # None: the price table's row for provider/model applies.
    price: Any = None


class EventFramer(Protocol):
    """Cuts a response byte stream into events (SSE, or AWS's binary event stream)."""

    def feed(self, chunk: bytes) -> list[Any]: ...

    def flush(self) -> list[Any]: ...


class StreamTranslator(Protocol):
    """Turns one provider's stream events into canonical chunks; pure and I/O-free."""

    def feed(self, event: Any) -> Sequence[StreamItem]: ...

    def finish(self) -> Sequence[StreamItem]:
        """Called at end of stream: final chunks, or raise if the stream ended incomplete."""
        ...


class Adapter(Protocol):
    name: str
    request_id_headers: tuple[str, ...]

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest: ...

    def parse_response(
        self, body: bytes, request: ChatRequest, deployment: Deployment
    ) -> ChatResponse: ...

    def new_stream(
        self, request: ChatRequest, deployment: Deployment
    ) -> tuple[EventFramer, StreamTranslator]: ...

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError: ...
