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
    ConversationNotFoundError,
    InternalServerError,
    InvalidRequestError,
    MessageTooLargeError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StructuredOutputError,
    TruncatedResponseError,
    UnprocessableEntityError,
    UnsupportedParamsError,
)

if TYPE_CHECKING:
    from chatgate.client import acompletion, completion
    from chatgate.memory import Conversation, LastTurns, Summarize, TokenBudget
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
    "completion": "chatgate.client",
    "acompletion": "chatgate.client",
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
    "Conversation",
    "ConversationNotFoundError",
    "InternalServerError",
    "InvalidRequestError",
    "LastTurns",
    "MessageTooLargeError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Structured",
    "StructuredOutputError",
    "Summarize",
    "Timeouts",
    "TokenBudget",
    "ToolContext",
    "ToolResult",
    "ToolRun",
    "TruncatedResponseError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "Usage",
    "aclose",
    "acompletion",
    "acompletion_structured",
    "arun_tools",
    "astream_structured",
    "completion",
    "completion_structured",
    "run_tools",
    "stream_structured",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
