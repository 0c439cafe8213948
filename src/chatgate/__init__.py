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
    InternalServerError,
    InvalidRequestError,
    MissingAPIKeyError,
    NoDeploymentAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TruncatedResponseError,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

if TYPE_CHECKING:
    from chatgate.client import acompletion, completion
    from chatgate.cost.budgets import Budget, Budgets
    from chatgate.cost.calc import completion_cost, estimate_cost
    from chatgate.cost.prices import ModelPrice, register_price
    from chatgate.cost.report import aspend_report, spend_report
    from chatgate.cost.tokens import TokenCount, acount_tokens, count_tokens
    from chatgate.cost.usage import UsageRecord
    from chatgate.router import Router
    from chatgate.stream import ChatStream
    from chatgate.transport.http import Timeouts, aclose
    from chatgate.types import ChatChunk, ChatRequest, ChatResponse, Usage

__version__ = "0.1.0"

_LAZY = {
    "completion": "chatgate.client",
    "acompletion": "chatgate.client",
    "ChatStream": "chatgate.stream",
    "Router": "chatgate.router",
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
    "Budget",
    "BudgetExceededError",
    "Budgets",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChatgateError",
    "ConflictError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "InvalidRequestError",
    "MissingAPIKeyError",
    "ModelPrice",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Router",
    "Timeouts",
    "TokenCount",
    "TruncatedResponseError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "UsageRecord",
    "aclose",
    "acompletion",
    "acount_tokens",
    "aspend_report",
    "completion",
    "completion_cost",
    "count_tokens",
    "estimate_cost",
    "register_price",
    "spend_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
