"""Automatic prompt-cache breakpoints for Claude, on the Messages API and on Bedrock Converse.

Anthropic caches a prompt only up to a breakpoint the request marks (``cache_control`` on a
block; Bedrock: a ``cachePoint`` block), at most ``MAX_BREAKPOINTS`` per request, and only a
prefix of at least the model's minimum length (``data/cache_minimums.json``). A deployment or
key with ``auto_prompt_cache`` asks chatgate to mark them when the client marked none:

- after the last tool (tools are the start of every prompt),
- after the system prompt (shared by every conversation of an application),
- after the last earlier turn (the message before the final one: the conversation so far),
- and, in a request that has earlier turns, after the final message too: a conversation or
  an agent loop is likely to send its next turn, which then reads everything up to here
  instead of writing this turn again (10 % cheaper on bench/prompt_cache.py). A first turn's
  final message is not marked: a one-shot request (a RAG question) would pay the write
  premium on content that never comes back.

Each mark is placed only where the prefix it ends holds the model's minimum (estimated at 4
characters of JSON per token), and only when the whole stable prefix (tools, system, earlier
turns) does; four at most, the provider's limit. A request that carries any breakpoint of its
own is left exactly as it came: the client chose what to cache. Pure functions over the wire
body, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import orjson

from chatgate.types import ChatRequest

__all__ = [
    "MAX_BREAKPOINTS",
    "OPTION",
    "anthropic_breakpoints",
    "bedrock_cache_points",
    "caches",
    "client_marked",
    "drop_cache_points",
    "minimum_tokens",
    "request_marked",
]

OPTION = "auto_prompt_cache"  # the Deployment.options flag (config: params.auto_prompt_cache)
MAX_BREAKPOINTS = 4  # per request, Anthropic's and Bedrock's limit, the client's included
_CHARS_PER_TOKEN = 4
_EPHEMERAL = {"type": "ephemeral"}
_NOT_MARKABLE = frozenset({"thinking", "redacted_thinking"})  # Anthropic refuses marks there

Json = dict[str, Any]


@cache
def _table() -> tuple[int, tuple[tuple[str, int], ...]]:
    raw = resources.files("chatgate.providers.anthropic").joinpath("data/cache_minimums.json")
    data = orjson.loads(raw.read_bytes())
    rows = sorted(data["minimums"].items(), key=lambda row: -len(row[0]))
    return int(data["default"]), tuple((prefix, int(n)) for prefix, n in rows)


def minimum_tokens(model: str) -> int:
    """The shortest prefix ``model`` caches (a Messages API name or a Bedrock model id)."""
    default, rows = _table()
    at = model.find("claude-")
    name = model[at:] if at >= 0 else model
    for prefix, tokens in rows:
        if name.startswith(prefix):
            return tokens
    return default


@dataclass(slots=True)
class _Spot:
    end: int  # characters of the prompt up to and including this spot
    mark: Callable[[], None]


def _place(spots: Iterable[_Spot | None], stable: int, model: str, room: int) -> int:
    least = minimum_tokens(model) * _CHARS_PER_TOKEN
    if stable < least:
        return 0
    placed = 0
    for spot in spots:
        if spot is not None and spot.end >= least and placed < room:
            spot.mark()
            placed += 1
    return placed


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(orjson.dumps(value))


# -- the Messages API -------------------------------------------------------------------------


def _has_mark(blocks: Any) -> bool:
    return isinstance(blocks, list) and any(
        isinstance(b, dict) and "cache_control" in b for b in blocks
    )


def client_marked(body: Json) -> bool:
    """Whether a Messages API body carries a breakpoint already (top-level automatic caching
    included)."""
    if "cache_control" in body or _has_mark(body.get("tools")) or _has_mark(body.get("system")):
        return True
    return any(_has_mark(m.get("content")) for m in body.get("messages") or ())


def _mark_last_block(holder: Json, field: str) -> Callable[[], None] | None:
    """Marks the last markable block of ``holder[field]`` (a string becomes one text block)."""
    content = holder.get(field)
    if isinstance(content, str):
        if not content:
            return None

        def mark_text() -> None:
            holder[field] = [{"type": "text", "text": content, "cache_control": _EPHEMERAL}]

        return mark_text
    if not isinstance(content, list):
        return None
    for block in reversed(content):
        if isinstance(block, dict) and block.get("type") not in _NOT_MARKABLE:
            return _marker(block)
    return None


def _marker(block: Json) -> Callable[[], None]:
    return lambda: block.__setitem__("cache_control", dict(_EPHEMERAL))


def _extra_mark(item: Any) -> bool:
    extra = getattr(item, "model_extra", None)
    return isinstance(extra, dict) and "cache_control" in extra


def request_marked(request: ChatRequest) -> bool:
    """Whether the client put ``cache_control`` on a tool or a content part of the request
    (or at its top level) — then no breakpoint is added, whatever the backend."""
    if _extra_mark(request) or any(_extra_mark(t) for t in request.tools or ()):
        return True
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, list) and any(_extra_mark(part) for part in content):
            return True
    return False


def anthropic_breakpoints(body: Json, model: str) -> int:
    """Mark a Messages API body in place (see the module docstring); returns how many marks."""
    if client_marked(body):
        return 0
    tools: list[Json] = body.get("tools") or []
    turns: list[Json] = body.get("messages") or []
    end = _size(tools) if tools else 0
    spots: list[_Spot | None] = []
    if tools:
        spots.append(_Spot(end, _marker(tools[-1])))
    if body.get("system"):
        end += _size(body["system"])
        mark = _mark_last_block(body, "system")
        spots.append(_Spot(end, mark) if mark else None)
    if len(turns) >= 2:
        end += sum(_size(t.get("content")) for t in turns[:-1])
        mark = _mark_last_block(turns[-2], "content")
        spots.append(_Spot(end, mark) if mark else None)
        final = _mark_last_block(turns[-1], "content")
        spots.append(_Spot(end + _size(turns[-1].get("content")), final) if final else None)
    return _place(spots, end, model, MAX_BREAKPOINTS)


# -- Bedrock Converse -------------------------------------------------------------------------

_CACHE_POINT = {"cachePoint": {"type": "default"}}


def _appender(blocks: list[Json]) -> Callable[[], None]:
    return lambda: blocks.append({"cachePoint": {"type": "default"}})


def caches(model: str) -> bool:
    """Whether Bedrock keeps a prompt cache for ``model`` (chatgate sends cache points to
    Claude models only)."""
    return "claude" in model


def drop_cache_points(body: Json) -> None:
    """Remove every ``cachePoint`` block from a Converse body, in place."""
    holders = [body.get("system") or [], (body.get("toolConfig") or {}).get("tools") or []]
    holders += [turn["content"] for turn in body.get("messages") or ()]
    for blocks in holders:
        blocks[:] = [b for b in blocks if "cachePoint" not in b]


def bedrock_cache_points(body: Json, model: str) -> int:
    """Add ``cachePoint`` blocks to a Converse body in place, for a Claude model; a body that
    has one already is left as it is. Returns how many were added."""
    if not caches(model):
        return 0
    tools: list[Json] = (body.get("toolConfig") or {}).get("tools") or []
    system: list[Json] = body.get("system") or []
    turns: list[Json] = body.get("messages") or []
    if any(_CACHE_POINT.keys() & b.keys() for b in (*tools, *system)) or any(
        _CACHE_POINT.keys() & b.keys() for t in turns for b in t.get("content") or ()
    ):
        return 0
    end = _size(tools) if tools else 0
    spots: list[_Spot | None] = []
    if tools:
        spots.append(_Spot(end, _appender(tools)))
    if system:
        end += _size(system)
        spots.append(_Spot(end, _appender(system)))
    if len(turns) >= 2:
        end += sum(_size(t.get("content")) for t in turns[:-1])
        spots.append(_Spot(end, _appender(turns[-2]["content"])))
        final = end + _size(turns[-1].get("content"))
        spots.append(_Spot(final, _appender(turns[-1]["content"])))
    return _place(spots, end, model, MAX_BREAKPOINTS)
