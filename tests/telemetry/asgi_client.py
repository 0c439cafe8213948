"""Drive the gateway app in this process, as an ASGI server would: the lifespan (the in-process
gateway tests' driver), and requests with any headers (a caller's ``traceparent``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from chatgate.server.app import ASGIApp
from tests.integration.test_gateway_inprocess import Lifespan

__all__ = ["Lifespan", "call"]


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
