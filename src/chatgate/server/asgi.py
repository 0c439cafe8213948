"""Small pure-ASGI helpers: read a bounded body, send JSON, send an SSE stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

import orjson

__all__ = [
    "DISCONNECT_HOOK",
    "READ_TIMEOUT",
    "ASGIApp",
    "BodyTooLarge",
    "ClientDisconnected",
    "DisconnectHook",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StatusWatch",
    "big_body",
    "parsed_body",
    "read_body",
    "remember_parsed",
    "send_json",
    "start_stream",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class StatusWatch:
    """A ``send`` that notes the response's status on its way (the server span's, tracing.py).
    Once the head has gone, ``plain(send)`` is the server's own ``send``: a stream's many body
    messages need not pass through a call more each."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 0

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        return self.send(message)

    @staticmethod
    def plain(send: Send) -> Send:
        """``send`` without the watch, once the status has been seen."""
        if type(send) is StatusWatch and send.status:
            return send.send
        return send


# Set in the scope by the server (server/connections.py) when it gave up waiting for the
# request's headers or body: the app then sees the client gone and records a 408.
READ_TIMEOUT = "chatgate.read_timeout"

# Set in the scope by the server (server/connections.py): told when the connection is lost, so
# watching for a client that leaves costs no task per request (server/relay.py ClientWatch).
DISCONNECT_HOOK = "chatgate.disconnect_hook"


def _nothing() -> None:
    return None


class DisconnectHook:
    """``gone`` once the client's connection is lost; ``callback`` runs then (once)."""

    __slots__ = ("callback", "gone")

    def __init__(self) -> None:
        self.gone = False
        self.callback: Callable[[], object] = _nothing

    def fire(self) -> None:
        if not self.gone:
            self.gone = True
            self.callback()


# A big body parsed off the event loop before its handler runs (app.py), with the body it came
# from: the handler's parse finds it instead of parsing again on the loop.
_PARSED: ContextVar[tuple[bytes, Any] | None] = ContextVar("chatgate_parsed_body", default=None)


def remember_parsed(body: bytes, data: Any) -> None:
    _PARSED.set((body, data))


def parsed_body(body: bytes) -> Any | None:
    """What ``body`` was parsed into off the loop, if it was."""
    known = _PARSED.get()
    return known[1] if known is not None and known[0] is body else None


def big_body() -> bool:
    """Whether this request's body was big enough to be parsed off the loop."""
    return _PARSED.get() is not None


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    """The client went away before the end of the answer: while its body was read, or while
    the answer was awaited or streamed (recorded as status 499, or 408 when the server gave up
    waiting for the body: ``READ_TIMEOUT``)."""


async def read_body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


def _headers(extra: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra]


async def send_json(
    send: Send, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()
) -> None:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *_headers(headers),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def start_stream(send: Send, headers: Iterable[tuple[str, str]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                *_headers(headers),
            ],
        }
    )


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
