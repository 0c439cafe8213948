"""chatgate: one typed Chat Completions call for every LLM provider.

    import chatgate
    response = chatgate.completion(model="openai/gpt-4o-mini",
                                   messages=[{"role": "user", "content": "Hi"}])

Names are imported on first use (PEP 562), so ``import chatgate`` stays cheap for CLIs and
for programs that only need the error classes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chatgate.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChatgateError,
    ConflictError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    InvalidRequestError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TruncatedResponseError,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

if TYPE_CHECKING:
    from chatgate.client import acompletion, completion
    from chatgate.embedding_types import EmbeddingResponse
    from chatgate.embeddings import aembedding, embedding
    from chatgate.stream import ChatStream
    from chatgate.transport.http import Timeouts, aclose
    from chatgate.types import ChatChunk, ChatRequest, ChatResponse, Usage

__version__ = "0.1.0"

_LAZY = {
    "completion": "chatgate.client",
    "acompletion": "chatgate.client",
    "ChatStream": "chatgate.stream",
    "embedding": "chatgate.embeddings",
    "aembedding": "chatgate.embeddings",
    "EmbeddingResponse": "chatgate.embedding_types",
    "Timeouts": "chatgate.transport.http",
    "aclose": "chatgate.transport.http",
    "ChatChunk": "chatgate.types",
    "ChatRequest": "chatgate.types",
    "ChatResponse": "chatgate.types",
    "Usage": "chatgate.types",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChatgateError",
    "ConflictError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "EmbeddingResponse",
    "InternalServerError",
    "InvalidRequestError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Timeouts",
    "TruncatedResponseError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "aclose",
    "acompletion",
    "aembedding",
    "completion",
    "embedding",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
