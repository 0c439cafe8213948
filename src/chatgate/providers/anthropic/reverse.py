"""The reverse direction, for the gateway's /v1/messages: an Anthropic Messages request ->
ChatRequest, and a ChatResponse -> an Anthropic message. Pure functions; the streaming half is
``reverse_stream.ChunksToAnthropicEvents``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pydantic

from chatgate.errors import APIError, InvalidRequestError
from chatgate.providers.anthropic.messages import THINKING_BLOCKS
from chatgate.providers.anthropic.reverse_params import ANTHROPIC_BETA, Backend, foreign_params
from chatgate.types import ChatRequest, ChatResponse, Usage

__all__ = [
    "STOP_REASONS",
    "anthropic_id",
    "anthropic_message",
    "anthropic_usage",
    "chat_request_from_anthropic",
    "translate_request",
]

STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_FIELDS = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_tokens"}
_HANDLED = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "stop_sequences", "metadata", "stream"}
)
NATIVE = Backend(native=True)


def anthropic_id(value: str | None, prefix: str) -> str:
    """An id in Anthropic's form (``msg_...``, ``toolu_...``): clients and their stores match
    on the prefix. Ids from another format keep their text after the prefix, so a tool call's
    id maps the same way in every turn."""
    if not value:
        return prefix + "chatgate"
    return value if value.startswith(prefix) else prefix + value


def _bad(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", param=where)


def _text_part(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "citations"}


def _image_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise _bad(where, "an image source must be of type 'base64' or 'url'")
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _document_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") != "base64":
        raise _bad(where, "only base64 documents can be translated")
    data = f"data:{source.get('media_type')};base64,{source.get('data')}"
    return {"type": "file", "file": {"file_data": data}}


def _part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A text, image or document block as a content part; any other kind is a 400."""
    kind = block.get("type")
    if kind == "text":
        return _text_part(block)
    if kind == "image":
        return _image_part(block, where)
    if kind == "document":
        return _document_part(block, where)
    raise _bad(where, f"content block type {kind!r} cannot be translated")


def _tool_result(
    block: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool message, and the images and documents of the result: a tool message holds text
    only in the OpenAI format, so they travel in the user message that follows (after a line
    naming the call), which is where Claude Code's Read tool puts an image it read."""
    call_id = block.get("tool_use_id")
    content = block.get("content", "")
    media: list[dict[str, Any]] = []
    if isinstance(content, list):
        parts = [_part(p, f"{where}.content[{k}]") for k, p in enumerate(content)]
        media = [p for p in parts if p["type"] != "text"]
        texts = [p for p in parts if p["type"] == "text"]
        content = texts or ("(the result is attached below)" if media else "")
    if media:
        media.insert(
            0, {"type": "text", "text": f"(attached by the result of tool call {call_id})"}
        )
    return {"role": "tool", "tool_call_id": call_id, "content": content}, media


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """One Anthropic user turn -> tool messages (in order) then one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        if block.get("type") == "tool_result":
            message, media = _tool_result(block, here)
            out.append(message)
            parts += media
        else:
            parts.append(_part(block, here))
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any, where: str, native: bool) -> dict[str, Any]:
    """An assistant turn. Earlier thinking goes only to Anthropic, which checks its signatures
    and uses it; other formats have no field for it (OpenAI's refuses unknown message keys)."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(dict(block))
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        else:
            raise _bad(f"{where}.content[{j}]", f"content block type {kind!r} cannot be translated")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        message["tool_calls"] = calls
    if thinking and native:
        message["reasoning_content"] = "".join(reasoning)
        message[THINKING_BLOCKS] = thinking
    return message


def _system_parts(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    return [_text_part(b) for b in system]


def _system(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The system prompt, with every ``role: system`` turn of ``messages`` folded in, in order
    (the Messages API has one system prompt; current Claude Code also sends such turns)."""
    system = body.get("system")
    folded = [t for t in body.get("messages") or () if t.get("role") == "system"]
    if not folded:
        if not system:
            return None
        return {
            "role": "system",
            "content": system if isinstance(system, str) else _system_parts(system),
        }
    parts = _system_parts(system or "")
    for turn in folded:
        parts += _system_parts(turn.get("content") or "")
    return {"role": "system", "content": parts}


def _server_tool(tool: Mapping[str, Any]) -> bool:
    """A tool Anthropic runs itself (web search, code execution, ...): only it can."""
    return tool.get("type") not in (None, "custom") and tool.get("input_schema") is None


def _tools(body: Mapping[str, Any], wire: dict[str, Any], native: bool) -> list[str]:
    """Tools and tool_choice into ``wire``; the server tools dropped for another backend."""
    tools = body.get("tools")
    dropped = []
    if tools and not native:
        dropped = [f"tools[{i}] ({t.get('type')})" for i, t in enumerate(tools) if _server_tool(t)]
        tools = [t for t in tools if not _server_tool(t)]
    if tools:
        wire["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    **({"description": t["description"]} if "description" in t else {}),
                    "parameters": t.get("input_schema"),
                },
                **({"cache_control": t["cache_control"]} if "cache_control" in t else {}),
            }
            for t in tools
        ]
    choice = body.get("tool_choice")
    if not isinstance(choice, Mapping):
        return dropped
    kind = choice.get("type")
    if kind == "tool":
        wire["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in _TOOL_CHOICE:
        wire["tool_choice"] = _TOOL_CHOICE[kind]
    else:
        raise _bad("tool_choice", f"unknown tool_choice type {kind!r}")
    if choice.get("disable_parallel_tool_use"):
        wire["parallel_tool_calls"] = False
    return dropped


def chat_request_from_anthropic(
    body: Mapping[str, Any], backend: Backend = NATIVE, beta: str | None = None
) -> ChatRequest:
    """An Anthropic Messages request body (already validated by ``inbound``) -> ChatRequest."""
    return translate_request(body, backend, beta)[0]


def translate_request(
    body: Mapping[str, Any], backend: Backend = NATIVE, beta: str | None = None
) -> tuple[ChatRequest, list[str]]:
    """The ChatRequest for ``backend``, and the body's fields it dropped. For a ``native``
    (Anthropic) backend, fields with no OpenAI name (thinking, output_config, top_k, ...) and
    the client's ``anthropic-beta`` header are kept as extras and reach Anthropic intact;
    for any other, ``reverse_params`` decides."""
    messages: list[dict[str, Any]] = []
    if (system := _system(body)) is not None:
        messages.append(system)
    for i, turn in enumerate(body.get("messages") or ()):
        where = f"messages[{i}]"
        role, content = turn.get("role"), turn.get("content")
        if role == "user":
            messages += _user_messages(content, where)
        elif role == "assistant":
            messages.append(_assistant_message(content, where, backend.native))
        elif role != "system":
            raise _bad(f"{where}.role", "role must be 'user', 'assistant' or 'system'")
    if all(turn.get("role") == "system" for turn in body.get("messages") or ()):
        raise _bad("messages", "at least one user or assistant turn is needed")
    wire: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for theirs, ours in _FIELDS.items():
        if theirs in body:
            wire[ours] = body[theirs]
    if body.get("stop_sequences"):
        wire["stop"] = body["stop_sequences"]
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id is not None and (backend.native or backend.user):
        wire["user"] = user_id
    if body.get("stream"):
        wire["stream"] = True
        wire["stream_options"] = {"include_usage": True}
    dropped = _tools(body, wire, backend.native)
    leftovers = [k for k in body if k not in _HANDLED and k not in _FIELDS]
    if backend.native:
        wire.update({k: body[k] for k in leftovers})
        if beta:
            wire[ANTHROPIC_BETA] = beta
    else:
        translated, unused = foreign_params(body, leftovers, backend)
        wire.update(translated)
        dropped += unused
    try:
        return ChatRequest.model_validate(wire), dropped
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise InvalidRequestError(f"invalid {where}: {first['msg']}", param=where) from None


def anthropic_usage(usage: Usage | None) -> dict[str, Any]:
    """OpenAI usage -> Anthropic's, where input_tokens excludes cache reads and writes; the
    writes' split by TTL (``cache_creation``) when the upstream reported it."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.prompt_tokens_details
    read = (details.cached_tokens if details else None) or 0
    write = (details.cache_creation_tokens if details else None) or 0
    out: dict[str, Any] = {
        "input_tokens": max(usage.prompt_tokens - read - write, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }
    hour = details.cache_creation_1h_tokens if details else None
    if hour is not None:
        hour = min(hour, write)
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": write - hour,
            "ephemeral_1h_input_tokens": hour,
        }
    return out


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as Anthropic's ``input`` object."""
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise APIError(f"the model produced tool arguments that are not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise APIError("the model produced tool arguments that are not a JSON object")
    return value


def anthropic_message(response: ChatResponse) -> dict[str, Any]:
    """A ChatResponse (first choice) -> an Anthropic Message object."""
    content: list[dict[str, Any]] = []
    stop_reason: str | None = "end_turn"
    stop_sequence = None
    if response.choices:
        choice = response.choices[0]
        message = choice.message
        extra = message.model_extra or {}
        if extra.get(THINKING_BLOCKS):
            content += [dict(b) for b in extra[THINKING_BLOCKS]]
        elif message.reasoning_content:
            content.append(
                {"type": "thinking", "thinking": message.reasoning_content, "signature": ""}
            )
        if message.content:
            content.append({"type": "text", "text": message.content})
        for call in message.tool_calls or ():
            content.append(
                {
                    "type": "tool_use",
                    "id": anthropic_id(call.id, "toolu_"),
                    "name": call.function.name,
                    "input": tool_input(call.function.arguments),
                }
            )
        reason = choice.finish_reason
        stop_reason = STOP_REASONS.get(reason, "end_turn") if reason else "end_turn"
        stop_sequence = (choice.model_extra or {}).get("stop_sequence")
        if stop_sequence is not None:
            stop_reason = "stop_sequence"
    return {
        "id": anthropic_id(response.id, "msg_"),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(response.usage),
    }
