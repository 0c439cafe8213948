"""Choosing what of the history fits: pure functions over messages and token counts.

History is cut only at turn boundaries (a turn starts at a user message), so an assistant's
tool calls always travel with their results. Counts are ``count_message_tokens``' and
additive: a request costs its framing plus each message's own count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatgate.errors import MessageTooLargeError
from chatgate.memory.tokens import count_message_tokens
from chatgate.types import AssistantMessage, Message

__all__ = ["compress", "fit_budget", "last_turns", "message_tokens", "turn_starts"]

_NOTICE = "\n[... {n} characters removed to fit the token budget ...]\n"


def message_tokens(model: str, message: Message) -> int:
    """What one message adds to a request."""
    return count_message_tokens(model, [message]) - count_message_tokens(model, [])


def turn_starts(history: Sequence[Message]) -> list[int]:
    """Where each turn begins: 0, then every user message."""
    return [0, *(i for i, m in enumerate(history) if i and m.role == "user")]


def last_turns(history: Sequence[Message], turns: int) -> list[Message]:
    starts = turn_starts(history)
    return list(history[starts[-turns] if len(starts) >= turns else 0 :])


def compress(model: str, message: Message, max_tokens: int, what: str) -> Message:
    """The message with the middle of its text cut out so it takes at most ``max_tokens``."""
    text = message.content
    if not isinstance(text, str) or max_tokens <= 0:
        raise MessageTooLargeError(
            f"{what} does not fit the token budget and cannot be compressed (its content "
            "is not plain text, or the budget has no room for it at all)",
            param="policy.max_tokens",
        )
    keep = len(text)
    while keep > 0:
        keep = int(keep * 0.9)
        cut = text[: keep // 2] + _NOTICE.format(n=len(text) - keep) + text[len(text) - keep // 2 :]
        candidate = message.model_copy(update={"content": cut})
        if message_tokens(model, candidate) <= max_tokens:
            return candidate
    raise MessageTooLargeError(f"{what} cannot be compressed to fit", param="policy.max_tokens")


def _oversize(what: str, tokens: int, room: int, budget: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"{what} takes {tokens} tokens but only {max(room, 0)} of the {budget}-token budget "
        "are left for it after the system prompt: shorten it, raise the budget, or use "
        "on_oversize='truncate'",
        param="policy.max_tokens",
    )


def fit_budget(
    model: str,
    head: Sequence[Message],
    history: Sequence[Message],
    new: Message,
    max_tokens: int,
    truncate: bool = False,
    cost: Callable[[Message], int] | None = None,
) -> list[Message]:
    """``head`` (system prompt, summary) + the most recent whole turns that fit + ``new``.

    When not even the last turn fits, its final assistant reply is kept alone. ``cost``
    may give cached per-message counts (it must equal ``message_tokens``)."""
    size = cost or (lambda m: message_tokens(model, m))
    framing = count_message_tokens(model, head)
    new_cost = message_tokens(model, new)
    if framing + new_cost > max_tokens:
        if not truncate:
            raise _oversize("the new message", new_cost, max_tokens - framing, max_tokens)
        new = compress(model, new, max_tokens - framing, "the new message")
        new_cost = message_tokens(model, new)
    base = framing + new_cost
    # Walk back from the newest turn, counting only what is kept (plus one turn): the cost
    # of a send does not grow with the length of the thread.
    best: int | None = None
    used = base
    for i in range(len(history) - 1, -1, -1):
        used += size(history[i])
        if used > max_tokens:
            break
        if i == 0 or history[i].role == "user":  # a turn starts here: all of it fits
            best = i
    if best is not None:
        return [*head, *history[best:], new]
    reply = next(
        (m for m in reversed(history) if isinstance(m, AssistantMessage) and not m.tool_calls),
        None,
    )
    if reply is None:
        return [*head, new]
    reply_cost = size(reply)
    if base + reply_cost > max_tokens:
        if not truncate:
            raise _oversize("the last assistant reply", reply_cost, max_tokens - base, max_tokens)
        return [*head, compress(model, reply, max_tokens - base, "the last assistant reply"), new]
    return [*head, reply, new]
