"""Anthropic's ``POST /v1/messages/count_tokens``: the request the real call would send,
narrowed to the fields the count endpoint takes, so the count matches what will be billed."""

from __future__ import annotations

import orjson

from chatgate.providers.anthropic.request import build_request
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.types import ChatRequest

__all__ = ["count_request", "parse_count"]

# The fields count_tokens takes; anything else (max_tokens, stream, ...) is refused.
_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")


def count_request(request: ChatRequest, deployment: Deployment) -> HttpRequest:
    built = build_request(request, deployment)
    body = orjson.loads(built.body)
    narrowed = {k: body[k] for k in _FIELDS if k in body}
    return HttpRequest("POST", built.url + "/count_tokens", built.headers, orjson.dumps(narrowed))


def parse_count(body: bytes) -> int:
    return int(orjson.loads(body).get("input_tokens", 0))
