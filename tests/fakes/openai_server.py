"""A fake OpenAI upstream: a real HTTP server on 127.0.0.1 speaking the Chat Completions wire
format exactly, scriptable per test and recording what it received.

The server, scripting and stream writing are ``tests.fakes.base``'s; this module holds the
OpenAI wire format alone. With nothing scripted it answers by echoing the
last user message, so every answer depends on the request that produced it.
"""

from __future__ import annotations

import base64
import contextlib
import struct
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from tests.fakes.base import LoopbackServer, Received, Reply, read_body


def completion_json(
    content: str | None = "Hello!",
    *,
    model: str = "gpt-4o-mini",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 9,
    completion_tokens: int = 3,
    cached_tokens: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1732000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": usage_json(prompt_tokens, completion_tokens, cached_tokens),
        **extra,
    }


def usage_json(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def chunk_json(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    model: str = "gpt-4o-mini",
    usage: dict[str, Any] | None = None,
    no_choices: bool = False,
) -> dict[str, Any]:
    choices = (
        []
        if no_choices
        else [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    )
    chunk: dict[str, Any] = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }
    if usage is not None or no_choices:
        chunk["usage"] = usage
    return chunk


def text_stream(
    words: list[str], *, model: str = "gpt-4o-mini", usage: tuple[int, int] | None = (9, 3)
) -> list[Any]:
    """The chunks OpenAI sends for a plain answer: role, one chunk per piece, finish, usage."""
    chunks: list[Any] = [chunk_json({"role": "assistant", "content": ""}, model=model)]
    chunks += [chunk_json({"content": w}, model=model) for w in words]
    chunks.append(chunk_json({}, finish_reason="stop", model=model))
    if usage is not None:
        chunks.append(chunk_json(model=model, usage=usage_json(*usage), no_choices=True))
    return chunks


def error_json(message: str, type_: str, code: str | None = None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _last_user_text(body: Any) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


def echo_reply(body: Any) -> Reply:
    """The default answer: 'echo: <last user text>', streamed word by word when asked."""
    model = body.get("model", "gpt-4o-mini")
    text = f"echo: {_last_user_text(body)}"
    prompt = sum(len(str(m.get("content", "")).split()) + 4 for m in body.get("messages") or [])
    completion = len(text.split())
    if not body.get("stream"):
        return Reply(
            json=completion_json(
                text, model=model, prompt_tokens=prompt, completion_tokens=completion
            )
        )
    pieces = [w + " " for w in text.split()[:-1]] + text.split()[-1:]
    include = (body.get("stream_options") or {}).get("include_usage")
    return Reply(
        chunks=text_stream(pieces, model=model, usage=(prompt, completion) if include else None)
    )


def embedding_vector(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic vector for a text: the same text always embeds the same way."""
    seed = sum(text.encode()) or 1
    return [round(((seed * (i + 7)) % 97) / 97 - 0.5, 6) for i in range(dimensions)]


def embeddings_reply(body: Any) -> Reply:
    """OpenAI's /embeddings answer for the request's input, floats or base64 float32."""
    raw = body.get("input", "")
    texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
    dimensions = int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(t.split()) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    model = body.get("model", "text-embedding-3-small")
    return Reply(json={"object": "list", "data": data, "model": model, "usage": usage})


def metadata_refusal(body: Any) -> Reply | None:
    """OpenAI's 400 for a ``metadata`` that is not a map of at most 16 strings (keys of at
    most 64 characters, values of at most 512), as its API answers it."""
    if not isinstance(body, dict) or body.get("metadata") is None:
        return None
    metadata = body["metadata"]

    def refuse(message: str, param: str, code: str) -> Reply:
        return Reply(status=400, json=error_json(message, "invalid_request_error", code, param))

    if not isinstance(metadata, dict):
        return refuse(
            "Invalid type for 'metadata': expected an object.", "metadata", "invalid_type"
        )
    if len(metadata) > 16:
        return refuse(
            "Invalid 'metadata': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(metadata)} properties instead.",
            "metadata",
            "object_above_max_properties",
        )
    for key, value in metadata.items():
        if not isinstance(value, str):
            kind = {list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
            return refuse(
                f"Invalid type for 'metadata.{key}': expected a string, but got {kind} instead.",
                f"metadata.{key}",
                "invalid_type",
            )
        if len(key) > 64 or len(value) > 512:
            return refuse(
                f"Invalid 'metadata.{key}': string too long.", f"metadata.{key}", "string_too_long"
            )
    return None


class FakeOpenAI(LoopbackServer[Reply, Received]):
    """Start with ``with FakeOpenAI() as fake:``; point clients at ``fake.base_url``."""

    done_marker = b"data: [DONE]\n\n"
    request_id_header = "x-request-id"

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[bytes, str]] = {}  # GET path -> (body, content type)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _, body = await read_body(request)
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        if request.method == "GET" and request.path in self.files:
            data, content_type = self.files[request.path]
            return web.Response(body=data, content_type=content_type)
        if request.method == "GET" and not request.path.endswith("/models"):
            return web.json_response(error_json("no such file", "not_found"), status=404)
        if request.path.endswith("/models"):
            return web.json_response(
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}
                    ],
                }
            )
        refused = metadata_refusal(body)
        if refused is not None:  # OpenAI checks the body before anything is scripted
            return await self._respond(request, refused, {})
        default = embeddings_reply if request.path.endswith("/embeddings") else echo_reply
        reply = self.replies.popleft() if self.replies else default(body or {})
        return await self._respond(request, reply, self.request_headers(reply))


@contextlib.contextmanager
def fake_openai(*replies: Reply) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.script(*replies)
        yield fake
