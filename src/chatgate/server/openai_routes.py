"""POST /v1/chat/completions in OpenAI's exact wire format, streamed or not (GET /v1/models:
``models_route``)."""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.chat_request import chat_request
from chatgate.server.asgi import parsed_body
from chatgate.server.body_tags import take_metadata_tags
from chatgate.server.errors import GatewayError, openai_error
from chatgate.server.request import GatewayRequest
from chatgate.server.serving import respond
from chatgate.types import ChatResponse
from chatgate.wire_chunk import StreamItem, WireChunk

__all__ = ["OpenAIFrames", "chat_completions", "model_name", "parse_json_body"]

_DONE = b"data: [DONE]\n\n"


# A JSON schema rarely nests past 20 levels; the serializers between here and the upstream
# give up near 255 (orjson, pydantic-core), which was a 500 after the request was accepted.
MAX_DEPTH = 64


def parse_json_body(body: bytes) -> dict[str, Any]:
    known = parsed_body(body)  # a big body, parsed off the event loop (app.py)
    if known is not None:
        return known  # type: ignore[no-any-return]  # checked when parsed
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the body must be a JSON object")
    # fewer brackets than the limit cannot nest past it: most bodies skip the walk
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH and (path := _too_deep(data, 1)):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:]
        raise GatewayError(
            400,
            f"{where[:120]}: nested deeper than {MAX_DEPTH} levels; flatten it",
            param=str(path[0]),
        )
    return data


def _too_deep(value: dict[str, Any] | list[Any], depth: int) -> list[str | int] | None:
    """The path to the first container nested deeper than MAX_DEPTH, or None."""
    if depth > MAX_DEPTH:
        return []
    if isinstance(value, list):
        kinds = set(map(type, value))  # at C speed: a long list of numbers is not walked
        if dict not in kinds and list not in kinds:
            return None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, dict | list) and (found := _too_deep(item, depth + 1)) is not None:
            return [key, *found]
    return None


def model_name(data: dict[str, Any]) -> str:
    """Take 'model' out of the body: the name of a model this gateway serves."""
    name = data.pop("model", None)
    if not isinstance(name, str) or not name:
        raise GatewayError(
            400, "'model' is required: the name of a model this gateway serves", param="model"
        )
    return name


async def chat_completions(request: GatewayRequest) -> None:
    data = parse_json_body(request.body)
    name = request.state.models.resolve(model_name(data))  # unknown: a 404 before all else
    tags = take_metadata_tags(data) if "metadata" in data else ()
    messages = data.pop("messages", None)
    request.keep_content(messages)
    chat = chat_request(name, messages, data, strict=False)
    await respond(request, chat, whole=_json, frames=OpenAIFrames(), tags=tags)


def _json(response: ChatResponse) -> bytes:
    return response.__pydantic_serializer__.to_json(response, exclude_unset=True)


class OpenAIFrames:
    def chunk(self, item: StreamItem) -> bytes:
        wire = item.wire_json  # as an OpenAI-format upstream sent it: already our format
        if wire is None:
            assert not isinstance(item, WireChunk)
            wire = item.__pydantic_serializer__.to_json(item, exclude_unset=True)
        return b"data: " + wire + b"\n\n"

    def end(self) -> bytes:
        return _DONE

    def error(self, exc: BaseException) -> bytes:
        _, body, _ = openai_error(exc)
        return b"data: " + orjson.dumps(body) + b"\n\n"
