"""A ChatResponse -> a Responses API ``Response`` object, and the pieces the stream shares:
output items, usage, and the status a finish reason means."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from chatgate.responses_api.reasoning import Carry
from chatgate.responses_api.request import Echo
from chatgate.responses_api.tools import ToolMap
from chatgate.types import ChatResponse, ResponseMessage, Usage

__all__ = [
    "Seal",
    "envelope_item",
    "function_call_item",
    "message_item",
    "new_id",
    "reasoning_item",
    "response_object",
    "response_usage",
    "status_of",
]

Item = dict[str, Any]
Seal = Callable[[Carry], str]  # a turn's reasoning -> encrypted_content

# finish_reason -> incomplete_details.reason; any other finish is "completed"
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """("completed", None) or ("incomplete", {"reason": ...}) for a finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_usage(usage: Usage | None) -> dict[str, Any] | None:
    """Chat usage -> Responses usage (input_tokens counts cache reads and writes, as
    prompt_tokens does)."""
    if usage is None:
        return None
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": (prompt.cached_tokens if prompt else None) or 0,
            "cache_write_tokens": (prompt.cache_creation_tokens if prompt else None) or 0,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": (completion.reasoning_tokens if completion else None) or 0
        },
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def text_part(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> Item:
    return {"type": "refusal", "refusal": refusal}


def message_item(item_id: str, parts: list[Item], status: str) -> Item:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def reasoning_item(item_id: str, text: str, status: str) -> Item:
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> Item:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def envelope_item(carry: Carry, seal: Seal | None) -> Item | None:
    """The reasoning item that carries the turn's reasoning back (last in the output, so a
    client replays it after the calls it belongs to); None when there is nothing to carry."""
    if seal is None or carry.empty():
        return None
    item = reasoning_item(new_id("rs"), "", "completed")
    item["encrypted_content"] = seal(carry)
    return item


def _output(
    message: ResponseMessage, item_status: str, tools: ToolMap, seal: Seal | None
) -> list[Item]:
    output: list[Item] = []
    if message.reasoning_content:
        output.append(reasoning_item(new_id("rs"), message.reasoning_content, "completed"))
    parts = [text_part(message.content)] if message.content else []
    if message.refusal:
        parts.append(refusal_part(message.refusal))
    if parts:
        output.append(message_item(new_id("msg"), parts, item_status))
    for call in message.tool_calls or ():
        function = call.function
        output.append(
            tools.item(new_id("fc"), call.id, function.name, function.arguments, "completed")
        )
    carry = Carry("")
    carry.take_message(message)
    envelope = envelope_item(carry, seal)
    if envelope is not None:
        output.append(envelope)
    return output


def base_object(
    response_id: str, created_at: int, model: str, echo: Echo, status: str
) -> dict[str, Any]:
    """A Response with no output yet: what the stream's first events carry."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "usage": None,
        **echo,
    }


def response_object(
    response: ChatResponse,
    echo: Echo,
    *,
    response_id: str,
    created_at: int,
    tools: ToolMap | None = None,
    seal: Seal | None = None,
) -> dict[str, Any]:
    """The whole Response for a finished (non-streamed) answer's first choice; ``seal`` given,
    the backend's reasoning rides along in an encrypted reasoning item."""
    status, incomplete = status_of(response.finish_reason)
    out = base_object(response_id, created_at, response.model, echo, status)
    out["incomplete_details"] = incomplete
    if response.choices:
        out["output"] = _output(response.choices[0].message, status, tools or ToolMap(), seal)
    out["usage"] = response_usage(response.usage)
    return out
