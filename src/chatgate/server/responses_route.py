"""POST /v1/responses: the OpenAI Responses API in and out (stateless), served from any backend
through the canonical Chat Completions types (chatgate.responses_api).

What was accepted but not honoured is named in response headers, so a client that sends more
than a stateless gateway can do (Codex) is served instead of refused:
``x-chatgate-dropped-tools`` (hosted tools no backend here can run; a 400 instead with
``strict_tools``) and ``x-chatgate-ignored-params``."""

from __future__ import annotations

import re
import time
from typing import Any

from chatgate.providers.registry import PROVIDERS
from chatgate.responses_api import ChunksToResponseEvents, encode
from chatgate.responses_api.reasoning import Carry, sealer_for
from chatgate.responses_api.request import Translated, translate
from chatgate.responses_api.response import Seal, new_id, response_object
from chatgate.server.asgi import Message, Send
from chatgate.server.body_tags import take_metadata_tags
from chatgate.server.context import RequestContext
from chatgate.server.errors import openai_error
from chatgate.server.openai_routes import model_name, parse_json_body
from chatgate.server.request import GatewayRequest
from chatgate.server.serving import respond
from chatgate.server.state import GatewayState
from chatgate.types import ChatResponse
from chatgate.wire_chunk import StreamItem, typed_chunk

__all__ = ["ResponsesFrames", "responses"]

# Backends that take OpenAI's own request metadata (prompt_cache_key, service_tier, ...).
_OPENAI_ITSELF = frozenset({"openai", "azure"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


class ResponsesFrames:
    def __init__(self, events: ChunksToResponseEvents) -> None:
        self._events = events

    def chunk(self, item: StreamItem) -> bytes:
        return encode(self._events.feed(typed_chunk(item)))

    def end(self) -> bytes:
        return encode(self._events.finish())

    def error(self, exc: BaseException) -> bytes:
        status, body, _ = openai_error(exc)
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        return encode(self._events.fail(body["error"]["message"], code))


def family_of(deployment: str | None) -> str:
    """The wire format of a ``provider/model`` deployment (its adapter's name)."""
    provider = (deployment or "").partition("/")[0]
    spec = PROVIDERS.get(provider)
    return spec.adapter if spec is not None else provider


def _strict_tools(state: GatewayState, ctx: RequestContext, name: str) -> bool:
    """strict_tools set on the virtual key (its metadata) or on a deployment of the model."""
    if ctx.key is not None and ctx.key.metadata.get("strict_tools") is True:
        return True
    entries = state.config.model_list
    return any(e.params.strict_tools for e in entries if e.model_name == name)


def _backends(state: GatewayState, name: str) -> tuple[bool, str]:
    """(every deployment of the model is OpenAI itself, the one wire format they all share or
    "mixed"): what may be passed on, and which sealed reasoning may be restored."""
    group = state.models.router.groups.get(name) or ()
    providers = {r.deployment.provider for r in group}
    families = {family_of(f"{p}/") for p in providers}
    family = families.pop() if len(families) == 1 else "mixed"
    return bool(providers) and providers <= _OPENAI_ITSELF, family


def _header_value(names: list[str]) -> bytes:
    """Client-given names (tool types, include values) as one header value: only the
    characters such names have, so a request cannot write headers of its own."""
    safe = dict.fromkeys(_UNSAFE.sub("", name)[:64] for name in names)  # once each, in order
    return ",".join(safe).encode()


def _with_headers(send: Send, served: Translated) -> Send:
    extra: list[tuple[bytes, bytes]] = []
    if served.tools.dropped:
        extra.append((b"x-chatgate-dropped-tools", _header_value(served.tools.dropped)))
    if served.ignored:
        extra.append((b"x-chatgate-ignored-params", _header_value(served.ignored)))
    if not extra:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return wrapped


async def responses(request: GatewayRequest) -> None:
    data = parse_json_body(request.body)
    state, ctx = request.state, request.ctx
    name = model_name(data)
    resolved = state.models.resolve(name)  # an unknown model is a 404 before all else
    tags = take_metadata_tags(data) if "metadata" in data else ()
    sealer = sealer_for(state.master_key)
    openai_upstream, family = _backends(state, resolved)
    served = translate(
        data,
        name,
        strict_tools=_strict_tools(state, ctx, resolved),
        openai_upstream=openai_upstream,
        sealer=sealer,
        family=family,
    )
    request.keep_content(data.get("input"))
    seal: Seal | None = None
    if served.seal_reasoning:

        def seal(carry: Carry) -> str:
            carry.family = family_of(ctx.deployment)
            return sealer.seal(carry)

    def whole(response: ChatResponse) -> dict[str, Any]:
        created = int(time.time())
        return response_object(
            response,
            served.echo,
            response_id=new_id("resp"),
            created_at=created,
            tools=served.tools,
            seal=seal,
        )

    events = ChunksToResponseEvents(served.echo, model=name, tools=served.tools, seal=seal)
    frames = ResponsesFrames(events)
    request.send = _with_headers(request.send, served)
    await respond(request, served.request, whole=whole, frames=frames, tags=tags)
