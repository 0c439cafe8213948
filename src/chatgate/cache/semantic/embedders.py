"""Where embeddings come from: the bundled local model, or an OpenAI-compatible endpoint.

Both return float32 rows of unit length, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import orjson

from chatgate.errors import APIError, error_for_status
from chatgate.providers.base import HttpRequest
from chatgate.transport import http
from chatgate.transport.http import Timeouts

if TYPE_CHECKING:
    from chatgate.cache.semantic.minilm import Array, MiniLM

__all__ = ["Embedder", "EndpointEmbedder", "LocalEmbedder"]


class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> Array: ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU in numpy (see minilm.py), loaded on first use and run on
    a worker thread so the event loop is never blocked by the few milliseconds it takes."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        self._model_dir = model_dir
        self._model: MiniLM | None = None
        self._lock = threading.Lock()

    def model(self) -> MiniLM:
        with self._lock:
            if self._model is None:
                from chatgate.cache.semantic.minilm import MiniLM

                self._model = MiniLM(self._model_dir)
            return self._model

    def embed_now(self, texts: list[str]) -> Array:
        from chatgate.cache.semantic.minilm import single_blas_thread

        model = self.model()
        with single_blas_thread():
            return model.encode(texts)

    async def embed(self, texts: list[str]) -> Array:
        return await asyncio.to_thread(self.embed_now, texts)


def _unit_rows(rows: list[list[float]]) -> Array:
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    out: Array = (matrix / norms).astype(np.float32)
    return out


class EndpointEmbedder:
    """``POST {api_base}/embeddings`` on any OpenAI-compatible server. The key comes from
    ``api_key`` or the ``api_key_env`` variable, and is never logged or put in errors."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_base: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 10.0,
        dimensions: int | None = None,
    ) -> None:
        self.model = model
        self.api_base = api_base.rstrip("/")
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._timeouts = Timeouts.of(timeout)
        self._dimensions = dimensions

    def _headers(self) -> dict[str, str]:
        key = self._api_key or (self._api_key_env and os.environ.get(self._api_key_env))
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def embed(self, texts: list[str]) -> Array:
        body: dict[str, object] = {"model": self.model, "input": texts}
        if self._dimensions is not None:
            body["dimensions"] = self._dimensions
        request = HttpRequest(
            "POST", f"{self.api_base}/embeddings", self._headers(), orjson.dumps(body)
        )
        resp = await http.send(request, self._timeouts)
        if resp.status >= 400:
            raise error_for_status(
                resp.status, f"embeddings endpoint answered {resp.status}", resp.headers
            )
        try:
            data = sorted(orjson.loads(resp.body)["data"], key=lambda d: d["index"])
            rows = [d["embedding"] for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise APIError(f"embeddings endpoint sent an unexpected body: {exc}") from None
        if len(rows) != len(texts):
            raise APIError(f"embeddings endpoint sent {len(rows)} vectors for {len(texts)} texts")
        return _unit_rows(rows)
