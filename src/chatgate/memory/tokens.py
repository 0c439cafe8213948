"""Token counting for conversation budgets and tool results: ``chatgate.count_tokens``
(exact with tiktoken for OpenAI models, a marked estimate for others; see docs/cost.md),
behind the two entry points memory and tools call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from chatgate.cost.tokens import count_tokens

__all__ = ["count_message_tokens", "count_text_tokens"]


def count_text_tokens(model: str, text: str) -> int:
    return count_tokens(model, text=text).tokens


def count_message_tokens(model: str, messages: Sequence[BaseModel | Mapping[str, Any]]) -> int:
    """The prompt tokens these messages take for ``model``, reply priming included (so no
    messages still count the priming: counts add up message by message, as trimming needs)."""
    if not messages:
        return count_tokens(model, messages=[{"role": "user", "content": ""}]).tokens - _EMPTY
    return count_tokens(model, messages=list(messages)).tokens


_EMPTY = 4  # what one user message with empty content adds on top of the reply priming
