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
    BudgetExceededError,
    ChatgateError,
    ConflictError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    ConversationNotFoundError,
    DeploymentDisabledError,
    InternalServerError,
    InvalidRequestError,
    MalformedToolCallError,
    MessageTooLargeError,
    MissingAPIKeyError,
    NoAnswerError,
    NoDeploymentAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SharedStateUnavailableError,
    StructuredOutputError,
    TruncatedResponseError,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

if TYPE_CHECKING:
    from chatgate.api import acompletion, completion
    from chatgate.batching import BatchSummary, abatch, batch
    from chatgate.cache import (
        Cache,
        CacheControl,
        CachePolicy,
        MemoryBackend,
        RedisBackend,
        SQLiteBackend,
        configure_cache,
    )
    from chatgate.cost.budgets import Budget, Budgets
    from chatgate.cost.calc import completion_cost, estimate_cost, price_of, upper_bound
    from chatgate.cost.prices import ModelPrice, lookup_price, register_price
    from chatgate.cost.report import aspend_report, spend_report
    from chatgate.cost.tokens import TokenCount, acount_tokens, count_tokens
    from chatgate.cost.usage import UsageRecord
    from chatgate.embedding_types import EmbeddingResponse
    from chatgate.embeddings import aembedding, embedding
    from chatgate.memory import Conversation, LastTurns, Summarize, TokenBudget
    from chatgate.router import Router
    from chatgate.stream import ChatStream
    from chatgate.structured import (
        Structured,
        acompletion_structured,
        astream_structured,
        completion_structured,
        stream_structured,
    )
    from chatgate.tools import ToolContext, ToolResult, ToolRun, arun_tools, run_tools, tool
    from chatgate.transport.http import Timeouts, aclose
    from chatgate.types import ChatChunk, ChatRequest, ChatResponse, Usage

__version__ = "0.1.0"

_LAZY = {
    "BatchSummary": "chatgate.batching",
    "abatch": "chatgate.batching",
    "batch": "chatgate.batching",
    "Cache": "chatgate.cache",
    "CacheControl": "chatgate.cache",
    "CachePolicy": "chatgate.cache",
    "MemoryBackend": "chatgate.cache",
    "RedisBackend": "chatgate.cache",
    "SQLiteBackend": "chatgate.cache",
    "configure_cache": "chatgate.cache",
    "completion": "chatgate.api",
    "acompletion": "chatgate.api",
    "Structured": "chatgate.structured",
    "acompletion_structured": "chatgate.structured",
    "completion_structured": "chatgate.structured",
    "astream_structured": "chatgate.structured",
    "stream_structured": "chatgate.structured",
    "tool": "chatgate.tools",
    "run_tools": "chatgate.tools",
    "arun_tools": "chatgate.tools",
    "ToolContext": "chatgate.tools",
    "ToolResult": "chatgate.tools",
    "ToolRun": "chatgate.tools",
    "Conversation": "chatgate.memory",
    "LastTurns": "chatgate.memory",
    "TokenBudget": "chatgate.memory",
    "Summarize": "chatgate.memory",
    "ChatStream": "chatgate.stream",
    "Router": "chatgate.router",
    "embedding": "chatgate.embeddings",
    "aembedding": "chatgate.embeddings",
    "EmbeddingResponse": "chatgate.embedding_types",
    "Timeouts": "chatgate.transport.http",
    "aclose": "chatgate.transport.http",
    "ChatChunk": "chatgate.types",
    "ChatRequest": "chatgate.types",
    "ChatResponse": "chatgate.types",
    "Usage": "chatgate.types",
    "TokenCount": "chatgate.cost.tokens",
    "acount_tokens": "chatgate.cost.tokens",
    "count_tokens": "chatgate.cost.tokens",
    "completion_cost": "chatgate.cost.calc",
    "estimate_cost": "chatgate.cost.calc",
    "price_of": "chatgate.cost.calc",
    "upper_bound": "chatgate.cost.calc",
    "lookup_price": "chatgate.cost.prices",
    "register_price": "chatgate.cost.prices",
    "ModelPrice": "chatgate.cost.prices",
    "Budget": "chatgate.cost.budgets",
    "Budgets": "chatgate.cost.budgets",
    "UsageRecord": "chatgate.cost.usage",
    "spend_report": "chatgate.cost.report",
    "aspend_report": "chatgate.cost.report",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchSummary",
    "Budget",
    "BudgetExceededError",
    "Budgets",
    "Cache",
    "CacheControl",
    "CachePolicy",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChatgateError",
    "ConflictError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "Conversation",
    "ConversationNotFoundError",
    "DeploymentDisabledError",
    "EmbeddingResponse",
    "InternalServerError",
    "InvalidRequestError",
    "LastTurns",
    "MalformedToolCallError",
    "MemoryBackend",
    "MessageTooLargeError",
    "MissingAPIKeyError",
    "ModelPrice",
    "NoAnswerError",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedisBackend",
    "Router",
    "SQLiteBackend",
    "SharedStateUnavailableError",
    "Structured",
    "StructuredOutputError",
    "Summarize",
    "Timeouts",
    "TokenBudget",
    "TokenCount",
    "ToolContext",
    "ToolResult",
    "ToolRun",
    "TruncatedResponseError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "UsageRecord",
    "abatch",
    "aclose",
    "acompletion",
    "acompletion_structured",
    "acount_tokens",
    "aembedding",
    "arun_tools",
    "aspend_report",
    "astream_structured",
    "batch",
    "completion",
    "completion_cost",
    "completion_structured",
    "configure_cache",
    "count_tokens",
    "embedding",
    "estimate_cost",
    "lookup_price",
    "price_of",
    "register_price",
    "run_tools",
    "spend_report",
    "stream_structured",
    "tool",
    "upper_bound",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
