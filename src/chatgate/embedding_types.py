"""The embeddings request and response, in OpenAI's /v1/embeddings shape.

``embedding`` is a list of floats, or a base64 string (little-endian float32) when the caller
asked for ``encoding_format: "base64"``; either is passed through exactly as the upstream sent
it. Unknown fields are kept, as in chatgate.types.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from chatgate.types import ResponseMeta

__all__ = ["Embedding", "EmbeddingRequest", "EmbeddingResponse", "EmbeddingUsage"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(_Open):
    """``model`` is the upstream model name (no provider prefix)."""

    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_unset=True)


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int = 0
    embedding: list[float] | str


class EmbeddingUsage(_Open):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(_Open):
    """Embeddings in OpenAI's shape (``data[i].embedding``), with ``usage``, ``cost`` and
    ``meta`` as on a chat answer."""

    object: Literal["list"] = "list"
    data: list[Embedding] = Field(default_factory=list)
    model: str = ""
    usage: EmbeddingUsage | None = None

    _meta: ResponseMeta = PrivateAttr(default_factory=ResponseMeta)

    @property
    def meta(self) -> ResponseMeta:
        return self._meta

    @property
    def vectors(self) -> list[list[float] | str]:
        """The embeddings in input order."""
        return [item.embedding for item in sorted(self.data, key=lambda e: e.index)]
