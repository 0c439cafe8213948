"""Anthropic-only request fields on /v1/messages, for the backend that will serve them.

An Anthropic backend gets them as they came (``thinking``, ``output_config``,
``context_management``, the client's ``anthropic-beta`` header, ...). Any other backend gets
the equivalent where it has one and nothing otherwise, whatever ``drop_params`` says, because a
client of the Messages API cannot know which backend serves it:

- ``output_config.format`` / ``output_format`` (a JSON schema) -> ``response_format``
  ``json_schema``, which the Gemini and Bedrock adapters turn into their own schema modes;
- ``output_config.effort``, else ``thinking.budget_tokens`` -> ``reasoning_effort``, only for
  a model that takes it (see ``takes_reasoning_effort``): sent to any other model it is a 400;
- ``metadata.user_id`` -> ``user``, except for Gemini and Bedrock, which have no such field;
- ``top_k`` is kept (Gemini, Bedrock and most OpenAI-compatible servers take it);
- everything else not in the Messages API's portable core is dropped and named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANTHROPIC_BETA",
    "Backend",
    "foreign_params",
    "takes_reasoning_effort",
]

ANTHROPIC_BETA = "anthropic_beta"  # the extra that carries the client's anthropic-beta header

# Families that accept reasoning_effort, by provider family and model-name prefix. A model not
# listed gets no reasoning_effort: better an answer without extended thinking than a 400.
_REASONING: dict[str, tuple[str, ...]] = {
    "openai": ("o1", "o3", "o4", "gpt-5"),
    "azure": ("o1", "o3", "o4", "gpt-5"),
    "gemini": ("gemini-2.5", "gemini-3"),
    "vertex_ai": ("gemini-2.5", "gemini-3"),
}
_NOT_REASONING = ("-chat",)  # gpt-5-chat-latest and the like take no reasoning_effort
# Formats with no end-user id field: metadata.user_id is dropped for them.
_NO_USER = frozenset({"gemini", "vertex_ai", "bedrock"})
_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high", "xhigh": "high"}
_BUDGET_STEPS = ((4096, "low"), (16384, "medium"))
_KEPT = frozenset({"top_k"})
_SCHEMA_NAME = "output"


@dataclass(frozen=True, slots=True)
class Backend:
    """What serves a /v1/messages call: ``native`` when every deployment it may reach speaks
    the Messages API (Anthropic), ``reasoning`` when every one takes ``reasoning_effort``,
    ``user`` when every one takes OpenAI's ``user`` (for ``metadata.user_id``)."""

    native: bool
    reasoning: bool = False
    user: bool = True

    @classmethod
    def of(cls, deployments: Iterable[tuple[str, str]]) -> Backend:
        """From the (provider, model) pairs the call may reach."""
        pairs = list(deployments)
        native = bool(pairs) and all(provider == "anthropic" for provider, _ in pairs)
        reasoning = bool(pairs) and all(takes_reasoning_effort(p, m) for p, m in pairs)
        user = not any(provider in _NO_USER for provider, _ in pairs)
        return cls(native=native, reasoning=reasoning, user=user)


def takes_reasoning_effort(provider: str, model: str) -> bool:
    prefixes = _REASONING.get(provider, ())
    name = model.rsplit("/", 1)[-1]
    return name.startswith(prefixes) and not any(mark in name for mark in _NOT_REASONING)


def _effort(body: Mapping[str, Any]) -> tuple[str | None, str]:
    """The reasoning effort asked for, and the field it came from."""
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None:
        return _EFFORT.get(effort), "output_config"
    thinking = body.get("thinking") or {}
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or not isinstance(budget, int):
        return None, "thinking"
    return next((level for limit, level in _BUDGET_STEPS if budget < limit), "high"), "thinking"


def foreign_params(
    body: Mapping[str, Any], leftovers: Iterable[str], backend: Backend
) -> tuple[dict[str, Any], list[str]]:
    """The canonical fields for ``leftovers`` (the body's fields the core translation did not
    read) on a non-Anthropic ``backend``, and the names of those that had no effect."""
    wire: dict[str, Any] = {}
    used = set(_KEPT)
    fmt = (body.get("output_config") or {}).get("format")
    if fmt:
        used.add("output_config")
    elif fmt := body.get("output_format"):
        used.add("output_format")
    if fmt:
        schema = {"name": _SCHEMA_NAME, "schema": fmt["schema"]}
        wire["response_format"] = {"type": "json_schema", "json_schema": schema}
    effort, source = _effort(body)
    if effort is not None and backend.reasoning:
        wire["reasoning_effort"] = effort
        used.add(source)
    for name in _KEPT & set(leftovers):
        wire[name] = body[name]
    return wire, [name for name in leftovers if name not in used]
