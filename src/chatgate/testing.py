"""Unit-test code that calls chatgate without sockets: a transport that answers with a function.

    from chatgate.testing import MockResponse, mock_transport

    def upstream(request):  # a RecordedRequest: method, url, headers, body, .json()
        return MockResponse.json({"id": "c1", "object": "chat.completion", "model": "gpt-4o",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": "hi"}}]})

    with mock_transport(upstream) as transport:
        answer = chatgate.completion(model="openai/gpt-4o", messages=[...], api_key="test")
    assert answer.content == "hi"
    assert transport.requests[0].json()["model"] == "gpt-4o"

The handler sees the exact request the provider would get (its URL, headers and JSON body, as
the adapter built it) and returns the provider's answer: ``MockResponse.json`` for a whole one,
``MockResponse.sse`` for a stream, ``MockResponse(status, body=...)`` for anything else; an
async handler works too, and an exception it raises (e.g. ``chatgate.APIConnectionError``)
is what the call sees. Everything in the program goes through it while the block runs: the
blocking API, streams, the Router, the gateway running in the same process.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.transport.base import Timeouts
from chatgate.transport.http import use_transport
from chatgate.transport.request import HttpRequest

__all__ = ["MockResponse", "MockTransport", "RecordedRequest", "mock_transport"]


@dataclass(frozen=True)
class RecordedRequest:
    """What the handler was given, kept for assertions."""

    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)  # they carry the API key
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class MockResponse:
    """An upstream answer: ``status``, ``headers``, and the body as one ``body`` or as the
    ``chunks`` a stream delivers one read at a time."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    _read: bool = field(default=False, repr=False)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> MockResponse:
        return cls(
            status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(data)
        )

    @classmethod
    def sse(
        cls,
        events: Iterable[Mapping[str, Any] | str],
        *,
        done: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> MockResponse:
        """A server-sent event stream, one read per event: a mapping is a ``data:`` line of
        JSON, a string is sent as written (e.g. ``"event: message_stop\\ndata: {}\\n\\n"`` for
        Anthropic's named events); ``done`` ends it with OpenAI's ``data: [DONE]``."""
        chunks = [
            ev.encode() if isinstance(ev, str) else b"data: " + orjson.dumps(ev) + b"\n\n"
            for ev in events
        ]
        if done:
            chunks.append(b"data: [DONE]\n\n")
        return cls(200, {"content-type": "text/event-stream", **(headers or {})}, chunks=chunks)

    # -- the TransportResponse protocol --------------------------------------------------------

    @property
    def at_eof(self) -> bool:
        return self._read

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks if self.chunks is not None else [self.body]:
            yield chunk
        self._read = True

    async def read(self) -> bytes:
        self._read = True
        return b"".join(self.chunks) if self.chunks is not None else self.body

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


Handler = Callable[[RecordedRequest], MockResponse | Awaitable[MockResponse]]


class MockTransport:
    """A transport whose upstream is ``handler``; ``requests`` holds every request sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []

    async def handle(self, request: HttpRequest, timeouts: Timeouts) -> MockResponse:
        recorded = RecordedRequest(request.method, request.url, dict(request.headers), request.body)
        self.requests.append(recorded)
        answer = self.handler(recorded)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, MockResponse):
            raise TypeError(
                f"the mock handler returned {type(answer).__name__}, not a MockResponse"
            )
        return answer

    async def aclose(self) -> None:
        pass


@contextlib.contextmanager
def mock_transport(handler: Handler) -> Iterator[MockTransport]:
    """Answer every request chatgate sends with ``handler`` inside the block."""
    transport = MockTransport(handler)
    with use_transport(transport):
        yield transport
