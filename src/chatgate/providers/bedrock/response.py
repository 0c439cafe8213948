"""A Converse response -> ChatResponse, and the pieces the stream translator shares with it:
stop reasons, usage, response ids."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from chatgate.errors import APIConnectionError
from chatgate.providers.base import Deployment
from chatgate.types import (
    ChatResponse,
    Choice,
    FunctionCall,
    PromptTokensDetails,
    ResponseMessage,
    ToolCall,
    Usage,
)

__all__ = ["finish_reason", "new_id", "parse_response", "usage_from"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Converse fields with no OpenAI counterpart, kept on the response under their own names.
_KEPT = ("metrics", "additionalModelResponseFields", "trace", "performanceConfig", "serviceTier")


def new_id() -> str:
    """Converse answers carry no id of their own."""
    return f"chatcmpl-bedrock-{uuid.uuid4().hex}"


def finish_reason(stop_reason: str | None, json_mode: bool) -> str | None:
    """Bedrock's stopReason -> OpenAI's finish_reason; unknown reasons pass through."""
    if stop_reason is None:
        return None
    if json_mode and stop_reason == "tool_use":
        return "stop"  # the forced JSON tool was the answer itself
    return _FINISH.get(stop_reason, stop_reason)


def usage_from(usage: Any) -> Usage | None:
    """prompt_tokens counts every input token, cached ones included, as OpenAI does;
    Bedrock's inputTokens leaves out cache reads and writes. ``cacheDetails`` splits the
    writes by TTL; its 1h part goes to ``cache_creation_1h_tokens`` (billed higher)."""
    if not isinstance(usage, dict):
        return None
    read = int(usage.get("cacheReadInputTokens") or 0)
    write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + read + write
    completion = int(usage.get("outputTokens") or 0)
    details = None
    if "cacheReadInputTokens" in usage or "cacheWriteInputTokens" in usage:
        details = PromptTokensDetails(cached_tokens=read, cache_creation_tokens=write)
        split = usage.get("cacheDetails")
        if isinstance(split, list):
            details.cache_creation_1h_tokens = sum(
                int(d.get("inputTokens") or 0) for d in split if d.get("ttl") == "1h"
            )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=details,
    )


def _malformed(deployment: Deployment, why: str, body: bytes) -> APIConnectionError:
    return APIConnectionError(
        f"the provider's answer is not a Converse response: {why}",
        provider=deployment.provider,
        model=deployment.model,
        body=body[:2000].decode("utf-8", "replace"),
    )


def parse_response(
    body: bytes, deployment: Deployment, *, json_tool: str | None, created: int
) -> ChatResponse:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _malformed(deployment, "invalid JSON", body) from exc
    message = (parsed.get("output") or {}).get("message") if isinstance(parsed, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise _malformed(deployment, "no output.message.content", body)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for block in message["content"]:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input", {})).decode()
            if json_tool is not None and use.get("name") == json_tool:
                texts.append(arguments)
                continue
            calls.append(
                ToolCall(
                    id=use["toolUseId"],
                    function=FunctionCall(name=use["name"], arguments=arguments),
                )
            )
        elif "reasoningContent" in block:
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if text:
                reasoning.append(text)
    choice = Choice(
        message=ResponseMessage(
            content="".join(texts) if texts else None,
            tool_calls=calls or None,
            reasoning_content="".join(reasoning) if reasoning else None,
        ),
        finish_reason=finish_reason(parsed.get("stopReason"), json_tool is not None),
    )
    kept = {name: parsed[name] for name in _KEPT if name in parsed}
    return ChatResponse(
        id=new_id(),
        created=created,
        model=deployment.model,
        choices=[choice],
        usage=usage_from(parsed.get("usage")),
        **kept,
    )
