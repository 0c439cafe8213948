"""Gemini embeddings: OpenAI's /embeddings request and answer <-> ``batchEmbedContents``.

One ``batchEmbedContents`` call embeds every input (``{"requests": [{model, content,
outputDimensionality?, taskType?}]}`` -> ``{"embeddings": [{"values": [...]}]}``). Gemini
takes text only and reports no token counts, so ``usage`` is None. For
``encoding_format: "base64"`` the floats are packed as OpenAI does: little-endian float32.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from chatgate.embedding_types import Embedding, EmbeddingRequest, EmbeddingResponse
from chatgate.errors import APIConnectionError, InvalidRequestError
from chatgate.providers.base import Deployment, HttpRequest

__all__ = ["build_gemini_embedding_request", "parse_gemini_embedding_response"]


def build_gemini_embedding_request(
    request: EmbeddingRequest, deployment: Deployment
) -> HttpRequest:
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not all(isinstance(text, str) for text in texts):
        raise InvalidRequestError(
            "Gemini embeds text only: pass 'input' as a string or a list of strings, not token ids",
            param="input",
            provider=deployment.provider,
            model=deployment.model,
        )
    model = "models/" + deployment.model.removeprefix("models/")
    task_type = (request.model_extra or {}).get("task_type")
    items: list[dict[str, Any]] = []
    for text in texts:
        item: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        if task_type is not None:
            item["taskType"] = task_type
        items.append(item)
    headers = {"Content-Type": "application/json", **deployment.headers}
    if deployment.api_key:
        headers["x-goog-api-key"] = deployment.api_key
    url = f"{deployment.api_base}/{model}:batchEmbedContents"
    return HttpRequest("POST", url, headers, orjson.dumps({"requests": items}))


def _vector(values: list[float], encoding_format: str | None) -> list[float] | str:
    if encoding_format != "base64":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def parse_gemini_embedding_response(
    body: bytes, request: EmbeddingRequest, deployment: Deployment
) -> EmbeddingResponse:
    try:
        data = orjson.loads(body)
        vectors = [item["values"] for item in data["embeddings"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise APIConnectionError(
            "the provider's answer is not a batchEmbedContents answer",
            provider=deployment.provider,
            model=deployment.model,
            body=body[:2000].decode("utf-8", "replace"),
        ) from exc
    return EmbeddingResponse(
        object="list",
        data=[
            Embedding(object="embedding", index=i, embedding=_vector(v, request.encoding_format))
            for i, v in enumerate(vectors)
        ],
        model=deployment.model,
        usage=None,
    )
