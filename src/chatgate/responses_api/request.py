"""A Responses API request body -> ChatRequest, and the request fields a Response echoes.

Every field is either translated, passed on under its Chat Completions name, accepted because
it cannot change the answer (``store``, ``include: []``, ``truncation: "disabled"``), or refused
with a 400 naming it: the gateway keeps no state, so nothing that needs a stored response,
conversation or prompt, and no hosted (built-in) tool, is accepted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatgate.chat_request import chat_request
from chatgate.errors import InvalidRequestError
from chatgate.responses_api.items import messages_from_input
from chatgate.types import ChatRequest

__all__ = ["Echo", "chat_request_from_responses", "echo_fields"]

Echo = dict[str, Any]  # the request fields a Response object repeats back

_STATELESS = "this gateway is stateless and stores no responses"
_REFUSED: dict[str, str] = {
    "previous_response_id": f"{_STATELESS}: send the whole conversation in 'input', the "
    "earlier response's output items included",
    "conversation": f"{_STATELESS} or conversations: send the whole conversation in 'input'",
    "prompt": "stored prompt templates are not available here: send the prompt's text in "
    "'instructions' and 'input'",
    "max_tool_calls": "a limit on built-in tool calls has no meaning here (only function tools "
    "are served): leave it out",
    "top_logprobs": "log probabilities are not returned by /v1/responses on this gateway: use "
    "/v1/chat/completions with 'logprobs'",
    "context_management": "server-side context compaction is not available: leave it out",
}
# Passed on to the canonical request under the same name.
_SAME = ("temperature", "top_p", "user", "metadata", "parallel_tool_calls")
_EXTRAS = ("service_tier", "prompt_cache_key", "safety_identifier")
_ACCEPTED = frozenset(
    {
        *_SAME,
        *_EXTRAS,
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
_TOOL_CHOICES = ("none", "auto", "required")


def _bad(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", param=where)


def _check_supported(body: Mapping[str, Any]) -> None:
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise _bad(name, f"not supported: {why}")
    if body.get("background"):
        raise _bad("background", f"not supported: {_STATELESS}; send the request without it")
    if body.get("include"):
        raise _bad(
            "include",
            f"{body['include']!r} cannot be returned (no encrypted reasoning, hosted-tool "
            "results or log probabilities here): leave it out or send []",
        )
    if body.get("truncation") not in (None, "disabled"):
        raise _bad("truncation", "only 'disabled' is supported: shorten 'input' yourself")
    unknown = sorted(set(body) - _ACCEPTED)
    if unknown:
        raise _bad(unknown[0], "unknown parameter for /v1/responses")


def _tools(body: Mapping[str, Any], wire: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools:
        out = []
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if kind != "function":
                raise _bad(
                    f"tools[{i}].type",
                    f"the built-in tool {kind!r} is not available through this gateway: "
                    "declare a 'function' tool and run it yourself",
                )
            function = {"name": tool.get("name")}
            for key in ("description", "parameters", "strict"):
                if tool.get(key) is not None:
                    function[key] = tool[key]
            out.append({"type": "function", "function": function})
        wire["tools"] = out
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        wire["tool_choice"] = choice
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        wire["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        raise _bad(
            "tool_choice",
            "only 'none', 'auto', 'required' or {'type': 'function', 'name': ...} are supported",
        )


def _text(body: Mapping[str, Any], wire: dict[str, Any]) -> None:
    text = body.get("text")
    if not isinstance(text, Mapping):
        return
    if text.get("verbosity") is not None:
        wire["verbosity"] = text["verbosity"]
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


def chat_request_from_responses(body: Mapping[str, Any], model: str) -> ChatRequest:
    """A Responses request body -> ChatRequest for ``model``; a 400 (InvalidRequestError)
    naming the parameter for anything that cannot be served faithfully."""
    _check_supported(body)
    messages = messages_from_input(body.get("input"), body.get("instructions"))
    wire: dict[str, Any] = {}
    for name in (*_SAME, *_EXTRAS):
        if body.get(name) is not None:
            wire[name] = body[name]
    if body.get("max_output_tokens") is not None:
        wire["max_completion_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        wire["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        wire["stream"] = True
        wire["stream_options"] = {"include_usage": True}
    _tools(body, wire)
    _text(body, wire)
    return chat_request(model, messages, wire, strict=False)


def echo_fields(body: Mapping[str, Any]) -> Echo:
    """What a Response repeats of its request, with the API's defaults for what was left out."""
    tools = []
    for tool in body.get("tools") or ():
        keys = ("name", "description", "parameters", "strict")
        tools.append({"type": "function", **{k: tool.get(k) for k in keys}})
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
