"""Prompts and answers as span attributes, only when opted in: ``gen_ai.input.messages`` and
``gen_ai.output.messages`` in the JSON shapes the GenAI conventions define (a message is a
role and a list of typed parts), with the deployment's credentials and every key-shaped string
scrubbed (chatgate.redact) — a prompt that quotes a key must not put it into a trace backend.

Images, audio and files are recorded by kind only (``{"type": "image"}``): their bytes do not
belong in a span.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from chatgate.redact import Redactor, credentials
from chatgate.types import AssistantMessage, ToolMessage

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment
    from chatgate.types import ChatResponse, Message, ToolCall

__all__ = ["input_messages", "output_messages"]

Part = dict[str, Any]

_MEDIA = {"image_url": "image", "input_audio": "audio", "file": "file"}


def _text_parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[Part] = []
    for part in content:
        kind = getattr(part, "type", "")
        if kind == "text":
            parts.append({"type": "text", "content": part.text})
        elif kind == "refusal":
            parts.append({"type": "text", "content": part.refusal})
        else:
            parts.append({"type": _MEDIA.get(kind, kind)})
    return parts


def _arguments(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # a model's broken JSON is still worth seeing as it came


def _tool_calls(calls: Sequence[ToolCall] | None) -> list[Part]:
    return [
        {
            "type": "tool_call",
            "id": call.id,
            "name": call.function.name,
            "arguments": _arguments(call.function.arguments),
        }
        for call in calls or ()
    ]


def _message(message: Message) -> dict[str, Any]:
    role = message.role
    if isinstance(message, ToolMessage):
        text = "".join(p["content"] for p in _text_parts(message.content) if "content" in p)
        response = {"type": "tool_call_response", "id": message.tool_call_id, "response": text}
        return {"role": "tool", "parts": [response]}
    parts = _text_parts(message.content)
    if isinstance(message, AssistantMessage):
        parts += _tool_calls(message.tool_calls)
    return {"role": "system" if role == "developer" else role, "parts": parts}


def _scrubbed(value: Any, deployment: Deployment) -> str:
    redactor = Redactor(credentials(deployment), cut_tails=False)
    return orjson.dumps(redactor.value(value)).decode()


def input_messages(messages: Sequence[Message], deployment: Deployment) -> str:
    return _scrubbed([_message(m) for m in messages], deployment)


def output_messages(response: ChatResponse, deployment: Deployment) -> str:
    out = []
    for choice in response.choices:
        message = choice.message
        parts = _text_parts(message.content) + _tool_calls(message.tool_calls)
        out.append(
            {"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason or ""}
        )
    return _scrubbed(out, deployment)
