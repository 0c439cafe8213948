"""A Responses API request body -> ChatRequest, and the request fields a Response echoes.

Every field is translated, passed on under its Chat Completions name, accepted and named in
``Translated.ignored`` (what a stateless gateway cannot honour but need not fail on: the route
lists them in ``x-chatgate-ignored-params``), or refused with a 400 naming it: nothing that
needs a stored response, conversation or prompt is accepted. Tools: chatgate.responses_api.tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatgate.chat_request import chat_request
from chatgate.errors import InvalidRequestError
from chatgate.responses_api.items import messages_from_input
from chatgate.responses_api.reasoning import Sealer
from chatgate.responses_api.tools import ToolMap, tools_to_chat
from chatgate.types import ChatRequest

__all__ = ["Echo", "Translated", "chat_request_from_responses", "echo_fields", "translate"]

Echo = dict[str, Any]  # the request fields a Response object repeats back

ENCRYPTED_REASONING = "reasoning.encrypted_content"
_STATELESS = "this gateway is stateless and stores no responses"
_REFUSED: dict[str, str] = {
    "previous_response_id": f"{_STATELESS}: send the whole conversation in 'input', the "
    "earlier response's output items included",
    "conversation": f"{_STATELESS} or conversations: send the whole conversation in 'input'",
    "prompt": "stored prompt templates are not available here: send the prompt's text in "
    "'instructions' and 'input'",
    "top_logprobs": "log probabilities are not returned by /v1/responses on this gateway: use "
    "/v1/chat/completions with 'logprobs'",
    "context_management": "server-side context compaction is not available: leave it out",
}
# Passed on to every backend under the same name.
_SAME = ("temperature", "top_p", "user", "parallel_tool_calls")
# OpenAI's request metadata: passed on to OpenAI itself, accepted and not sent elsewhere (the
# answer is the same; other backends reject the fields).
_OPENAI_ONLY = ("metadata", "service_tier", "prompt_cache_key", "safety_identifier")
# Accepted, never sent upstream: they change nothing a backend here does.
_NOT_SENT = ("client_metadata", "max_tool_calls", "prompt_cache_retention")
_ACCEPTED = frozenset(
    {
        *_SAME,
        *_OPENAI_ONLY,
        *_NOT_SENT,
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "stream",
        "stream_options",
        "store",
        "include",
        "truncation",
        "background",
    }
)


def _bad(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", param=where)


@dataclass(slots=True)
class Translated:
    """A Responses request as served here: the ChatRequest, how calls map back to items,
    what the Response echoes, and what was accepted but not honoured."""

    request: ChatRequest
    tools: ToolMap
    echo: Echo
    seal_reasoning: bool = False  # include asked for reasoning.encrypted_content
    ignored: list[str] = field(default_factory=list)


def _check_supported(body: Mapping[str, Any], ignored: list[str]) -> bool:
    """400 for what cannot be served; the names of what is accepted but not honoured go in
    ``ignored``. True when encrypted reasoning is asked for."""
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise _bad(name, f"not supported: {why}")
    if body.get("background"):
        raise _bad("background", f"not supported: {_STATELESS}; send the request without it")
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        raise _bad("include", "must be a list of strings")
    ignored += [f"include={value}" for value in include if value != ENCRYPTED_REASONING]
    if body.get("truncation") not in (None, "disabled", "auto"):
        raise _bad("truncation", "must be 'auto' or 'disabled'")
    if body.get("truncation") == "auto":
        ignored.append("truncation")  # nothing is cut here: an input too long is the backend's 400
    unknown = sorted(set(body) - _ACCEPTED)
    if unknown:
        raise _bad(unknown[0], "unknown parameter for /v1/responses")
    ignored += [name for name in _NOT_SENT if body.get(name) is not None]
    return ENCRYPTED_REASONING in include


def _text(body: Mapping[str, Any], wire: dict[str, Any], openai: bool, ignored: list[str]) -> None:
    text = body.get("text")
    if not isinstance(text, Mapping):
        return
    if text.get("verbosity") is not None:
        if openai:
            wire["verbosity"] = text["verbosity"]
        else:
            ignored.append("text.verbosity")
    fmt = text.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "json_object":
        wire["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        keys = ("name", "schema", "strict", "description")
        schema = {k: fmt[k] for k in keys if fmt.get(k) is not None}
        wire["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind != "text":
        raise _bad("text.format.type", "must be 'text', 'json_object' or 'json_schema'")


# reasoning.effort -> a thinking budget in tokens, for the backends that take budgets.
_BUDGET = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32000}
_ANTHROPIC_MIN_BUDGET = 1024
_GEMINI_EFFORT = {"minimal": "low", "xhigh": "high"}  # the efforts Gemini's table lacks


def _effort(effort: Any, family: str, wire: dict[str, Any], ignored: list[str]) -> None:
    """reasoning.effort in the form the backend kind takes (Codex always sends one)."""
    if family in ("openai", "azure", ""):
        wire["reasoning_effort"] = effort
    elif family == "gemini":
        wire["reasoning_effort"] = _GEMINI_EFFORT.get(effort, effort)
    elif family == "anthropic":
        budget = _BUDGET.get(effort, 0)
        limit = wire.get("max_completion_tokens")
        if isinstance(limit, int):
            budget = min(budget, limit - 1)  # Anthropic: the budget must stay under max_tokens
        if budget >= _ANTHROPIC_MIN_BUDGET:
            wire["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:
        ignored.append("reasoning.effort")


def translate(
    body: Mapping[str, Any],
    model: str,
    *,
    strict_tools: bool = False,
    openai_upstream: bool = True,
    sealer: Sealer | None = None,
    family: str = "",
) -> Translated:
    """A Responses request body -> what serves it for ``model``; a 400 (InvalidRequestError)
    naming the parameter for anything that cannot be served. ``openai_upstream``: OpenAI's own
    metadata fields are passed on; ``sealer`` / ``family``: reasoning envelopes are opened and
    restored for that kind of backend."""
    ignored: list[str] = []
    seal = _check_supported(body, ignored)
    wire: dict[str, Any] = {}
    tools = tools_to_chat(body, wire, strict=strict_tools)
    instructions = body.get("instructions")
    messages = messages_from_input(body.get("input"), instructions, tools, sealer, family)
    for name in _SAME:
        if body.get(name) is not None:
            wire[name] = body[name]
    for name in _OPENAI_ONLY:
        if body.get(name) is not None:
            if openai_upstream:
                wire[name] = body[name]
            else:
                ignored.append(name)
    if body.get("max_output_tokens") is not None:
        wire["max_completion_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        _effort(reasoning["effort"], family, wire, ignored)
    if body.get("stream"):
        wire["stream"] = True
        wire["stream_options"] = {"include_usage": True}
    _text(body, wire, openai_upstream, ignored)
    request = chat_request(model, messages, wire, strict=False)
    return Translated(request, tools, echo_fields(body), seal, ignored)


def chat_request_from_responses(body: Mapping[str, Any], model: str) -> ChatRequest:
    """A Responses request body -> ChatRequest for ``model`` (OpenAI-format backend)."""
    return translate(body, model).request


def echo_fields(body: Mapping[str, Any]) -> Echo:
    """What a Response repeats of its request, with the API's defaults for what was left out."""
    tools = []
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("type") == "function":
            keys = ("name", "description", "parameters", "strict")
            tools.append({"type": "function", **{k: tool.get(k) for k in keys}})
        else:
            tools.append(tool)  # as given: namespace, custom, local_shell, hosted
    reasoning = body.get("reasoning")
    return {
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "text": body.get("text") or {"format": {"type": "text"}},
        "reasoning": reasoning if isinstance(reasoning, Mapping) else None,
        "user": body.get("user"),
        "service_tier": body.get("service_tier"),
        "store": False,  # nothing is kept: a stored response could not be fetched back
        "truncation": "disabled",
        "previous_response_id": None,
        "background": False,
    }
