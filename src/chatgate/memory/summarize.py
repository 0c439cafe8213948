"""Folding older turns into one summary block, written by a (cheaper) model.

The block is a system message placed right after the system prompt. It is rewritten from
the previous summary plus the turns being folded, so it never has to reread the thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chatgate.client import acompletion
from chatgate.memory.policy import Summarize
from chatgate.memory.trim import message_tokens, turn_starts
from chatgate.routed import RouterLike
from chatgate.types import ChatResponse, Message, SystemMessage, UserMessage

__all__ = ["SUMMARY_PREFIX", "fold_point", "summarize", "summary_block", "transcript"]

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
_INSTRUCTIONS = (
    "You keep the memory of a conversation. Write one summary that merges the previous "
    "summary with the new turns: keep facts, names, numbers, decisions, tool results that "
    "matter, open questions and the user's preferences; drop pleasantries. Plain text, "
    "third person, under {limit} tokens."
)


def summary_block(text: str) -> SystemMessage:
    return SystemMessage(content=SUMMARY_PREFIX + text)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(getattr(part, "text", "") or "" for part in content)


def transcript(messages: Sequence[Message]) -> str:
    lines = []
    for message in messages:
        text = _text(message.content)
        if message.role == "assistant" and message.tool_calls:
            calls = ", ".join(
                f"{c.function.name}({c.function.arguments})" for c in message.tool_calls
            )
            lines.append(f"assistant called {calls}" + (f" and said: {text}" if text else ""))
        elif message.role == "tool":
            lines.append(f"tool result: {text}")
        else:
            lines.append(f"{message.role}: {text}")
    return "\n".join(lines)


def fold_point(
    model: str,
    head_tokens: int,
    history: Sequence[Message],
    covered: int,
    new: Message,
    policy: Summarize,
    cost: Callable[[Message], int],
) -> int | None:
    """The history index up to which turns should be folded into the summary, or None when
    the unsummarized history still fits. ``head_tokens`` counts the system prompt and the
    framing; room for a full-size summary is reserved."""
    costs = [0] * covered + [cost(m) for m in history[covered:]]
    reserve = policy.summary_max_tokens + message_tokens(model, summary_block(""))
    base = head_tokens + reserve + message_tokens(model, new)
    if base + sum(costs[covered:]) <= policy.max_tokens:
        return None
    starts = [s for s in turn_starts(history) if s > covered]
    if not starts:
        return None
    target = policy.max_tokens * policy.fold_to
    for start in starts:
        if base + sum(costs[start:]) <= target:
            return start
    return starts[-1]  # keep at least the last turn unsummarized


async def summarize(
    policy: Summarize,
    previous: str | None,
    turns: Sequence[Message],
    credentials: Mapping[str, Any],
    router: RouterLike | None = None,
    user: str | None = None,
) -> ChatResponse:
    """The new summary, written by ``policy.model``: through ``router`` when that is one of
    its model names (its fallbacks, cache and budgets apply, charged to ``user``), else
    straight to the provider with ``credentials``."""
    body = (f"Previous summary:\n{previous}\n\n" if previous else "") + (
        "New turns:\n" + transcript(turns)
    )
    messages: list[Message] = [
        SystemMessage(content=_INSTRUCTIONS.format(limit=policy.summary_max_tokens)),
        UserMessage(content=body),
    ]
    if router is not None and policy.model in router.model_names:
        routed: ChatResponse = await router.acompletion(
            policy.model, messages, max_tokens=policy.summary_max_tokens, user=user
        )
        return routed
    response: ChatResponse = await acompletion(
        policy.model, messages, max_tokens=policy.summary_max_tokens, **credentials
    )
    return response
