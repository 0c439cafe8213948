"""Memory policies: what of a long conversation is sent with each new message.

Policies are plain data (pydantic models), so a conversation stores its policy and resumes
with it. Every policy always sends the system prompt and the new message, and never splits
an assistant's tool calls from their results (history is cut only between turns).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["KeepAll", "LastTurns", "Policy", "Summarize", "TokenBudget"]


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeepAll(_Policy):
    """Send the whole history (the default)."""

    kind: Literal["keep_all"] = "keep_all"


class LastTurns(_Policy):
    """Send the last ``turns`` exchanges (a turn: a user message and everything answering
    it) before the new message."""

    kind: Literal["last_turns"] = "last_turns"
    turns: int = Field(ge=1)


class TokenBudget(_Policy):
    """Send as many recent turns as fit in ``max_tokens`` prompt tokens, counted with
    ``count_message_tokens``; always the system prompt, the new message and the last
    assistant reply. A message that cannot fit even so is refused (MessageTooLargeError),
    or cut in the middle with a notice when ``on_oversize="truncate"``."""

    kind: Literal["token_budget"] = "token_budget"
    max_tokens: int = Field(ge=32)
    on_oversize: Literal["error", "truncate"] = "error"


class Summarize(_Policy):
    """A token budget whose older turns are not dropped but folded into one summary block,
    written by ``model`` (a cheaper one) in at most ``summary_max_tokens``; with a Conversation
    on a Router, ``model`` may be one of the Router's names: summaries are then routed too
    (fallbacks, cache, budgets charged to the conversation's ``user``). When the budget
    overflows, turns are folded until the unsummarized history takes at most ``fold_to`` of
    the budget, so the summary is rewritten every few turns rather than every turn."""

    kind: Literal["summarize"] = "summarize"
    max_tokens: int = Field(ge=64)
    model: str
    summary_max_tokens: int = Field(default=400, ge=16)
    fold_to: float = Field(default=0.5, gt=0, lt=1)
    on_oversize: Literal["error", "truncate"] = "error"


Policy = Annotated[KeepAll | LastTurns | TokenBudget | Summarize, Field(discriminator="kind")]
