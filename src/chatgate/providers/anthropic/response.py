"""An Anthropic Message -> ChatResponse: content blocks, stop reason and usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.errors import APIConnectionError
from chatgate.providers.anthropic.errors import error_from_payload
from chatgate.providers.anthropic.messages import THINKING_BLOCKS
from chatgate.providers.anthropic.request import json_schema_tool_name
from chatgate.providers.base import Deployment
from chatgate.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    FunctionCall,
    PromptTokensDetails,
    ResponseMessage,
    ToolCall,
    Usage,
)

__all__ = ["FINISH_REASONS", "finish_reason", "parse_message", "usage_from"]

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server tool paused the turn; send the answer back to continue
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None, json_mode: bool = False) -> str | None:
    if stop_reason is None:
        return None
    if json_mode and stop_reason == "tool_use":
        return "stop"  # the forced json_schema tool is the answer, not a call to make
    return FINISH_REASONS.get(stop_reason, stop_reason)


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """Anthropic counts cache reads and writes apart from input_tokens; OpenAI's prompt_tokens
    includes cached tokens, so prompt_tokens = input + cache read + cache write. The writes'
    split by TTL (``cache_creation``: 5-minute and 1-hour writes, billed differently) keeps
    its 1-hour part in ``cache_creation_1h_tokens``, set only when Anthropic sent the split."""
    fresh = int(usage.get("input_tokens") or 0)
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = usage.get("cache_creation_input_tokens")
    split = usage.get("cache_creation")
    by_ttl: dict[str, int] = {}
    if isinstance(split, Mapping):
        by_ttl["cache_creation_1h_tokens"] = hour = int(split.get("ephemeral_1h_input_tokens") or 0)
        if written is None:  # the total is the sum of the two TTLs
            written = hour + int(split.get("ephemeral_5m_input_tokens") or 0)
    write = int(written or 0)
    output = int(usage.get("output_tokens") or 0)
    prompt = fresh + read + write
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=read, cache_creation_tokens=write, **by_ttl
        ),
    )


def _fail(message: str, body: bytes, deployment: Deployment) -> APIConnectionError:
    return APIConnectionError(
        f"the provider's answer is not an anthropic message: {message}",
        provider=deployment.provider,
        model=deployment.model,
        body=body[:2000].decode("utf-8", "replace"),
    )


def parse_message(body: bytes, request: ChatRequest, deployment: Deployment) -> ChatResponse:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _fail(str(exc), body, deployment) from exc
    if not isinstance(data, dict):
        raise _fail("not a JSON object", body, deployment)
    if data.get("type") == "error":
        raise error_from_payload(data, deployment)
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise _fail("no content list", body, deployment)
    json_tool = json_schema_tool_name(request)
    text: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking.append(block)
        elif kind == "redacted_thinking":
            thinking.append(block)
        elif kind == "tool_use" and json_tool is not None and block.get("name") == json_tool:
            text.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                ToolCall(
                    id=block["id"], function=FunctionCall(name=block["name"], arguments=arguments)
                )
            )
    message = ResponseMessage(
        content="".join(text) if text else None,
        tool_calls=calls or None,
        reasoning_content="".join(reasoning) if reasoning else None,
        **({THINKING_BLOCKS: thinking} if thinking else {}),
    )
    stop_sequence = data.get("stop_sequence")
    choice = Choice(
        message=message,
        finish_reason=finish_reason(data.get("stop_reason"), json_tool is not None),
        **({"stop_sequence": stop_sequence} if stop_sequence is not None else {}),
    )
    return ChatResponse(
        id=data.get("id", ""),
        model=data.get("model", ""),
        choices=[choice],
        usage=usage_from(data.get("usage") or {}),
    )
