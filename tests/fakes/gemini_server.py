"""A fake Gemini upstream: a real HTTP server on 127.0.0.1 speaking the Gemini API wire format
(``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``),
scriptable per test and recording what it received.

The server, scripting and SSE writing are ``tests.fakes.base``'s; only routing and the bodies
differ. Streams carry no ``[DONE]``: the connection simply closes after the last event. With
nothing scripted it answers "echo: <last user text>", streamed word by word when asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import LoopbackServer, Received, Reply, read_body
from tests.fakes.openai_server import embedding_vector

__all__ = [
    "FakeGemini",
    "Reply",
    "candidate_json",
    "error_json",
    "fake_gemini",
    "response_json",
    "stream_reply",
    "usage_json",
]

MODEL_VERSION = "gemini-2.5-flash"


def usage_json(prompt: int = 9, candidates: int = 3, **extra: int) -> dict[str, Any]:
    total = prompt + candidates + extra.get("thoughtsTokenCount", 0)
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        **extra,
    }


def candidate_json(
    *parts: dict[str, Any], finish_reason: str | None = "STOP", index: int = 0
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": index}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    return candidate


def response_json(
    *candidates: dict[str, Any],
    usage: dict[str, Any] | None = None,
    response_id: str = "resp-fake-1",
    **extra: Any,
) -> dict[str, Any]:
    """One GenerateContentResponse (a whole answer, or one stream event)."""
    body: dict[str, Any] = {"candidates": list(candidates)}
    if usage is not None:
        body["usageMetadata"] = usage
    body["modelVersion"] = MODEL_VERSION
    body["responseId"] = response_id
    body.update(extra)
    return body


def stream_reply(events: list[Any], **kw: Any) -> Reply:
    """A stream: each dict sent as ``data: {json}``; no [DONE] terminator."""
    return Reply(chunks=events, done=False, **kw)


def error_json(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _last_user_text(body: Any) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return " ".join(texts)
    return ""


def echo_reply(body: Any, stream: bool) -> Reply:
    text = f"echo: {_last_user_text(body)}"
    prompt = sum(len(str(c.get("parts", "")).split()) for c in body.get("contents") or [])
    words = text.split()
    if not stream:
        return Reply(
            json=response_json(candidate_json({"text": text}), usage=usage_json(prompt, len(words)))
        )
    pieces = [w + " " for w in words[:-1]] + words[-1:]
    events = [
        response_json(
            candidate_json({"text": piece}, finish_reason=None), usage=usage_json(prompt, n + 1)
        )
        for n, piece in enumerate(pieces)
    ]
    events[-1]["candidates"][0]["finishReason"] = "STOP"
    return stream_reply(events)


def embed_reply(body: Any) -> Reply:
    """batchEmbedContents: one deterministic vector per request's text."""
    embeddings = []
    for item in body.get("requests") or []:
        text = " ".join(p.get("text", "") for p in item["content"]["parts"])
        values = embedding_vector(text, int(item.get("outputDimensionality") or 8))
        embeddings.append({"values": values})
    return Reply(json={"embeddings": embeddings})


class FakeGemini(LoopbackServer[Reply, Received]):
    """Start with ``with FakeGemini() as fake:``; chatgate takes ``fake.base_url`` as api_base,
    the google-genai SDK takes ``fake.root_url`` (it appends /v1beta itself)."""

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1beta"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _, body = await read_body(request)
        self.requests.append(Received(request.method, request.path_qs, dict(request.headers), body))
        _, _, action = request.path.rpartition(":")
        if request.method == "POST" and action == "countTokens":
            return web.json_response({"totalTokens": len(orjson.dumps(body)) // 4})
        actions = ("generateContent", "streamGenerateContent", "batchEmbedContents")
        if request.method != "POST" or action not in actions:
            return web.json_response(
                error_json(404, "NOT_FOUND", f"no route {request.path}"), status=404
            )
        stream = action == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            return web.json_response(
                error_json(400, "INVALID_ARGUMENT", "this fake streams only with ?alt=sse"),
                status=400,
            )
        vertex = "/publishers/google/models/" in request.path  # Vertex AI: OAuth bearer token
        authorized = (
            request.headers.get("Authorization", "").startswith("Bearer ")
            if vertex
            else bool(request.headers.get("x-goog-api-key"))
        )
        if not authorized:
            return web.json_response(
                error_json(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"),
                status=403,
            )
        if self.replies:
            reply = self.replies.popleft()
        elif action == "batchEmbedContents":
            reply = embed_reply(body or {})
        else:
            reply = echo_reply(body or {}, stream)
        return await self._respond(request, reply, dict(reply.headers))


@contextlib.contextmanager
def fake_gemini(*replies: Reply) -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        fake.script(*replies)
        yield fake
