"""Conversation memory: a thread that trims itself per policy and persists (docs/memory.md)."""

from __future__ import annotations

from chatgate.memory.conversation import Conversation
from chatgate.memory.policy import KeepAll, LastTurns, Policy, Summarize, TokenBudget
from chatgate.memory.stream import ConversationStream
from chatgate.memory.tokens import count_message_tokens, count_text_tokens

__all__ = [
    "Conversation",
    "ConversationStream",
    "KeepAll",
    "LastTurns",
    "Policy",
    "Summarize",
    "TokenBudget",
    "count_message_tokens",
    "count_text_tokens",
]
