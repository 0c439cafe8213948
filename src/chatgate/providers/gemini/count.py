"""Gemini's ``models/{model}:countTokens``: the generateContent request the real call would
send, wrapped as the count endpoint wants it, so the count matches what will be billed."""

from __future__ import annotations

import orjson

from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.gemini.request import build_request
from chatgate.types import ChatRequest

__all__ = ["count_request", "parse_count"]


def count_request(request: ChatRequest, deployment: Deployment) -> HttpRequest:
    built = build_request(request, deployment)
    body = orjson.loads(built.body)
    body.pop("generationConfig", None)
    url = built.url.replace(":generateContent", ":countTokens")
    model = deployment.model.removeprefix("models/")
    wrapped = {"generateContentRequest": {"model": f"models/{model}", **body}}
    return HttpRequest("POST", url, built.headers, orjson.dumps(wrapped))


def parse_count(body: bytes) -> int:
    return int(orjson.loads(body).get("totalTokens", 0))
