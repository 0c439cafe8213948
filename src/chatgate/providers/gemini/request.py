"""ChatRequest -> a Gemini ``generateContent`` / ``streamGenerateContent`` HTTP request."""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.errors import InvalidRequestError
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.gemini.messages import to_contents
from chatgate.providers.gemini.schema import SchemaConverter
from chatgate.providers.params import drop_or_reject
from chatgate.types import ChatRequest

__all__ = ["build_request", "url_for"]

# Request fields read by this module (or by the client, like stream_options).
_HANDLED = frozenset(
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
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "stream",
        "stream_options",
    }
)
# Gemini-only extras a caller may pass, and where they go.
_EXTRAS = {"top_k": "topK", "safety_settings": "safetySettings", "cached_content": "cachedContent"}
# OpenAI's reasoning_effort as a thinking budget in tokens (Google's own compatibility table).
_THINKING_BUDGET = {"none": 0, "low": 1024, "medium": 8192, "high": 24576}
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


VERTEX = "vertex_ai"


def url_for(deployment: Deployment, stream: bool) -> str:
    model = deployment.model.removeprefix("models/")
    # Vertex AI puts Google's models under publishers/google in the project's location
    models = "publishers/google/models" if deployment.provider == VERTEX else "models"
    if stream:
        return f"{deployment.api_base}/{models}/{model}:streamGenerateContent?alt=sse"
    return f"{deployment.api_base}/{models}/{model}:generateContent"


def auth_headers(deployment: Deployment) -> dict[str, str]:
    """AI Studio takes an API key; Vertex AI an OAuth access token (found by its prepare)."""
    if not deployment.api_key:
        return {}
    if deployment.provider == VERTEX:
        return {"Authorization": f"Bearer {deployment.api_key}"}
    return {"x-goog-api-key": deployment.api_key}


def _unsupported(request: ChatRequest, deployment: Deployment) -> None:
    """Raise (or, with drop_params, ignore) every field Gemini cannot honour."""
    wire = request.wire()
    unsupported = {name for name in wire if name not in _HANDLED and name not in _EXTRAS}
    unsupported |= {"logit_bias", "user", "metadata"} | set(deployment.unsupported_params)
    if request.parallel_tool_calls is False:
        unsupported.add("parallel_tool_calls")
    drop_or_reject(wire, sorted(unsupported), deployment)


def _generation_config(request: ChatRequest, converter: SchemaConverter) -> dict[str, Any]:
    config: dict[str, Any] = {}
    simple = (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("logprobs", "responseLogprobs"),
        ("top_logprobs", "logprobs"),
    )
    for ours, theirs in simple:
        if (value := getattr(request, ours)) is not None:
            config[theirs] = value
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequestError("top_logprobs needs logprobs=True", param="top_logprobs")
    if (limit := request.output_limit()) is not None:
        config["maxOutputTokens"] = limit
    if request.stop is not None:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if (extra := request.model_extra or {}).get("top_k") is not None:
        config["topK"] = extra["top_k"]
    if request.reasoning_effort is not None:
        budget = _THINKING_BUDGET.get(request.reasoning_effort)
        if budget is None:
            raise InvalidRequestError(
                f"reasoning_effort {request.reasoning_effort!r} is not one of "
                f"{', '.join(_THINKING_BUDGET)} for Gemini",
                param="reasoning_effort",
            )
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema":
            schema = (fmt.json_schema or {}).get("schema")
            if not isinstance(schema, dict):
                raise InvalidRequestError(
                    "response_format.json_schema.schema must be a JSON Schema object",
                    param="response_format.json_schema.schema",
                )
            where = "response_format.json_schema.schema"
            config["responseSchema"] = converter.convert(schema, where)
    return config


def _tools(request: ChatRequest, converter: SchemaConverter) -> list[dict[str, Any]]:
    declarations = []
    for i, tool in enumerate(request.tools or ()):
        fn = tool.function
        declaration: dict[str, Any] = {"name": fn.name}
        if fn.description is not None:
            declaration["description"] = fn.description
        if fn.parameters is not None:
            params = converter.convert(fn.parameters, f"tools[{i}].function.parameters")
            if params.get("type") != "OBJECT" or params.get("properties"):
                declaration["parameters"] = params  # Gemini rejects an empty OBJECT
        if fn.strict:
            converter.dropped.setdefault(f"tools[{i}].function", []).append("strict")
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"functionCallingConfig": {"mode": _MODES[choice]}}
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise InvalidRequestError(
            "tool_choice must be 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def build_request(request: ChatRequest, deployment: Deployment) -> HttpRequest:
    _unsupported(request, deployment)
    system, contents = to_contents(request.messages)
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message besides system messages",
            param="messages",
        )
    converter = SchemaConverter()
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if tools := _tools(request, converter):
        body["tools"] = tools
    if (tool_config := _tool_config(request)) is not None:
        body["toolConfig"] = tool_config
    extra = request.model_extra or {}
    for ours in ("safety_settings", "cached_content"):
        if extra.get(ours) is not None:
            body[_EXTRAS[ours]] = extra[ours]
    if config := _generation_config(request, converter):
        body["generationConfig"] = config
    converter.warn(deployment.provider)
    headers = {"Content-Type": "application/json", **deployment.headers, **auth_headers(deployment)}
    return HttpRequest(
        "POST", url_for(deployment, bool(request.stream)), headers, orjson.dumps(body)
    )
