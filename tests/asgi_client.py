"""Drive the gateway app in this process, as an ASGI server would: the lifespan, and requests
with any headers (a caller's ``traceparent``) and a client that stays connected."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from chatgate.server.app import ASGIApp

__all__ = ["Lifespan", "call"]


class Lifespan:
    """Drive the app's lifespan protocol, as a server would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan"}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        assert (await self.outbox.get())["type"] == "lifespan.startup.complete"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert (await self.outbox.get())["type"] == "lifespan.shutdown.complete"
        await self.task


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request: (status, response headers, body)."""
    sent: list[dict[str, Any]] = []
    data = b"" if body is None else orjson.dumps(body)
    messages = [{"type": "http.request", "body": data, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(b"content-type", b"application/json")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw, "scheme": "http"}
    await app(scope, receive, send)
    start = sent[0]
    got = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], got, b"".join(m.get("body", b"") for m in sent[1:])
