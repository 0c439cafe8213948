"""ChatRequest -> an Anthropic Messages API request (POST {api_base}/v1/messages)."""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.anthropic.cache_points import OPTION, anthropic_breakpoints
from chatgate.providers.anthropic.messages import convert_messages
from chatgate.providers.anthropic.reverse_params import ANTHROPIC_BETA
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.params import drop_or_reject
from chatgate.types import ChatRequest, Tool

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "JSON_TOOL_DESCRIPTION",
    "PATH",
    "build_body",
    "build_request",
    "default_max_tokens",
    "json_schema_tool_name",
]

ANTHROPIC_VERSION = "2023-06-01"
PATH = "/v1/messages"
DEFAULT_MAX_TOKENS = 4096  # for a model not in the table below
JSON_TOOL_DESCRIPTION = "Respond with a JSON object that matches this schema."

# Anthropic requires max_tokens. When the caller gives none we send the model family's maximum
# output (prefix match, first hit wins, so longer prefixes come first).
_MAX_OUTPUT: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-5", 64000),
    ("claude-opus-4-1", 32000),
    ("claude-opus-4", 32000),
    ("claude-sonnet-4", 64000),  # also claude-sonnet-4-5
    ("claude-haiku-4", 64000),
    ("claude-3-7-sonnet", 64000),
    ("claude-3-5-sonnet", 8192),
    ("claude-3-5-haiku", 8192),
    ("claude-3-opus", 4096),
    ("claude-3-sonnet", 4096),
    ("claude-3-haiku", 4096),
)

# OpenAI parameters the Messages API has no counterpart for.
_UNSUPPORTED = (
    "seed",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "metadata",
    "reasoning_effort",
)
# Fields consumed here (or meaningful only to chatgate); everything else the caller set that is
# not an OpenAI field (top_k, thinking, service_tier, ...) is sent to Anthropic as given.
_CONSUMED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "user",
        "stream",
        "stream_options",
        "prompt_cache_key",  # OpenAI's cache routing hint: Anthropic has none (and refuses it)
    }
)


def default_max_tokens(model: str) -> int:
    for prefix, limit in _MAX_OUTPUT:
        if model.startswith(prefix):
            return limit
    return DEFAULT_MAX_TOKENS


def json_schema_tool_name(request: ChatRequest) -> str | None:
    """The forced tool that carries a json_schema answer, or None when not in that mode."""
    fmt = request.response_format
    if fmt is None or fmt.type != "json_schema":
        return None
    name = (fmt.json_schema or {}).get("name")
    return name if isinstance(name, str) and name else "json_response"


def _tool(tool: Tool, where: str, deployment: Deployment) -> dict[str, Any]:
    fn = tool.function
    if fn.strict and not deployment.drop_params:
        raise UnsupportedParamsError(
            f"{where}.function.strict: anthropic does not enforce tool schemas strictly; "
            "remove strict or pass drop_params=True",
            param=f"{where}.function.strict",
        )
    out: dict[str, Any] = {"name": fn.name}
    if fn.description is not None:
        out["description"] = fn.description
    out["input_schema"] = fn.parameters or {"type": "object", "properties": {}}
    cache_control = (tool.model_extra or {}).get("cache_control")
    if cache_control is not None:
        out["cache_control"] = cache_control
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise InvalidRequestError(
            "tool_choice must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    return {"type": "tool", "name": name}


def _apply_tools(body: dict[str, Any], request: ChatRequest, deployment: Deployment) -> None:
    tools = [_tool(t, f"tools[{i}]", deployment) for i, t in enumerate(request.tools or ())]
    choice = _tool_choice(request.tool_choice) if request.tool_choice is not None else None
    json_tool = json_schema_tool_name(request)
    if json_tool is not None:
        if choice is not None or any(t["name"] == json_tool for t in tools):
            raise InvalidRequestError(
                "response_format json_schema is sent to anthropic as a forced tool, so it "
                "cannot be combined with tool_choice or a tool of the same name",
                param="response_format",
            )
        spec = (request.response_format and request.response_format.json_schema) or {}
        tools.append(
            {
                "name": json_tool,
                "description": spec.get("description") or JSON_TOOL_DESCRIPTION,
                "input_schema": spec.get("schema") or {"type": "object"},
            }
        )
        choice = {"type": "tool", "name": json_tool}
    if request.parallel_tool_calls is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice


def _check_response_format(wire: dict[str, Any], deployment: Deployment) -> None:
    fmt = wire.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        drop_or_reject(wire, ["response_format"], deployment)


def build_body(request: ChatRequest, deployment: Deployment) -> dict[str, Any]:
    """The JSON body of a Messages API call."""
    wire = request.wire()
    if wire.get("n") == 1:
        del wire["n"]
    drop_or_reject(wire, [*_UNSUPPORTED, "n", *deployment.unsupported_params], deployment)
    _check_response_format(wire, deployment)
    if request.temperature is not None and request.temperature > 1:
        raise InvalidRequestError(
            f"temperature must be between 0 and 1 for anthropic, got {request.temperature}",
            param="temperature",
        )
    system, turns = convert_messages(request.messages, deployment)
    body: dict[str, Any] = {
        "model": deployment.model,
        "max_tokens": request.output_limit() or default_max_tokens(deployment.model),
    }
    if system is not None:
        body["system"] = system
    body["messages"] = turns
    if "response_format" not in wire:
        request = request.model_copy(update={"response_format": None})
    _apply_tools(body, request, deployment)
    for name in ("temperature", "top_p"):
        if name in wire:
            body[name] = wire[name]
    stop = wire.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    for name, value in wire.items():
        if name not in _CONSUMED and name not in _UNSUPPORTED and name != ANTHROPIC_BETA:
            body[name] = value  # vendor fields: thinking, top_k, service_tier, ...
    if deployment.options.get(OPTION):
        anthropic_breakpoints(body, deployment.model)
    return body


def build_request(request: ChatRequest, deployment: Deployment) -> HttpRequest:
    headers = {
        "Content-Type": "application/json",
        "anthropic-version": deployment.api_version or ANTHROPIC_VERSION,
        **deployment.headers,
    }
    if deployment.api_key:
        headers["x-api-key"] = deployment.api_key
    beta = (request.model_extra or {}).get(ANTHROPIC_BETA)  # the gateway client's betas
    if isinstance(beta, str) and beta:
        configured = headers.get("anthropic-beta")
        headers["anthropic-beta"] = f"{configured},{beta}" if configured else beta
    url = deployment.api_base + PATH
    return HttpRequest("POST", url, headers, orjson.dumps(build_body(request, deployment)))
