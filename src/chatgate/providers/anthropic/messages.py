"""Canonical messages -> Anthropic's ``system`` and alternating ``messages`` turns.

System and developer messages become the top-level ``system``; tool results become
``tool_result`` blocks in a user turn; consecutive turns of the same role are merged, because
Anthropic requires user and assistant turns to alternate.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.base import Deployment
from chatgate.types import (
    AssistantMessage,
    AudioPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

__all__ = ["THINKING_BLOCKS", "convert_messages"]

Block = dict[str, Any]

# The message field that carries Anthropic thinking blocks (with their signatures) so an
# assistant turn can be sent back verbatim; reasoning_content alone cannot be (no signature).
THINKING_BLOCKS = "thinking_blocks"

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_PASSTHROUGH = ("cache_control", "citations")  # block-level extras Anthropic understands


def _extras(part: Any) -> dict[str, Any]:
    extra = part.model_extra or {}
    return {k: extra[k] for k in _PASSTHROUGH if k in extra}


def _text_block(part: TextPart) -> Block:
    return {"type": "text", "text": part.text, **_extras(part)}


def _data_url(url: str, where: str) -> tuple[str, str]:
    """'data:image/png;base64,AAAA' -> ('image/png', 'AAAA'), checked."""
    head, comma, data = url.partition(",")
    media, _, encoding = head[len("data:") :].partition(";")
    if not comma or encoding != "base64":
        raise InvalidRequestError(
            f"{where}: a data URL must look like 'data:<media type>;base64,<data>'", param=where
        )
    return media, data


def _image_block(part: ImagePart, where: str, deployment: Deployment) -> Block:
    url = part.image_url.url
    if part.image_url.detail not in (None, "auto") and not deployment.drop_params:
        raise UnsupportedParamsError(
            f"{where}.image_url.detail: anthropic has no image detail setting; remove it or "
            "pass drop_params=True",
            param=f"{where}.image_url.detail",
        )
    if url.startswith("data:"):
        media, data = _data_url(url, f"{where}.image_url.url")
        if media not in _IMAGE_TYPES:
            raise InvalidRequestError(
                f"{where}: anthropic accepts images of type {', '.join(sorted(_IMAGE_TYPES))}, "
                f"not {media!r}",
                param=f"{where}.image_url.url",
            )
        source: Block = {"type": "base64", "media_type": media, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}  # Anthropic fetches the image itself
    else:
        raise InvalidRequestError(
            f"{where}: an image URL must be https://... or a base64 data URL",
            param=f"{where}.image_url.url",
        )
    return {"type": "image", "source": source, **_extras(part)}


def _file_block(part: FilePart, where: str) -> Block:
    data = part.file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise UnsupportedParamsError(
            f"{where}: anthropic takes files only inline as file_data "
            "'data:application/pdf;base64,...' (file_id is OpenAI's file store)",
            param=where,
        )
    media, payload = _data_url(data, f"{where}.file.file_data")
    if media != "application/pdf":
        raise UnsupportedParamsError(
            f"{where}: anthropic accepts PDF documents, not {media!r}", param=where
        )
    source = {"type": "base64", "media_type": media, "data": payload}
    return {"type": "document", "source": source, **_extras(part)}


def _user_blocks(message: UserMessage, where: str, deployment: Deployment) -> list[Block]:
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}]
    blocks: list[Block] = []
    for j, part in enumerate(message.content):
        here = f"{where}.content[{j}]"
        if isinstance(part, TextPart):
            blocks.append(_text_block(part))
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, here, deployment))
        elif isinstance(part, FilePart):
            blocks.append(_file_block(part, here))
        elif isinstance(part, AudioPart):
            raise UnsupportedParamsError(
                f"{here}: anthropic does not accept audio input", param=here
            )
        else:
            blocks.append({"type": "text", "text": part.refusal})
    return blocks


def _tool_input(arguments: str, where: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"{where}: tool call arguments are not valid JSON ({exc}); anthropic needs a JSON "
            "object here",
            param=where,
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{where}: tool call arguments must be a JSON object", param=where
        )
    return value


def _assistant_blocks(message: AssistantMessage, where: str) -> list[Block]:
    extra = message.model_extra or {}
    blocks: list[Block] = [dict(b) for b in extra.get(THINKING_BLOCKS) or ()]
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    elif message.content:
        for part in message.content:
            if isinstance(part, RefusalPart):
                blocks.append({"type": "text", "text": part.refusal})
            elif part.text:
                blocks.append(_text_block(part))
    for j, call in enumerate(message.tool_calls or ()):
        arguments = _tool_input(
            call.function.arguments, f"{where}.tool_calls[{j}].function.arguments"
        )
        block = {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}
        blocks.append({**block, **_extras(call)})
    if not blocks:
        raise InvalidRequestError(
            f"{where}: an assistant message needs content or tool_calls for anthropic",
            param=where,
        )
    return blocks


def _tool_block(message: ToolMessage) -> Block:
    if isinstance(message.content, str):
        content: str | list[Block] = message.content
    else:
        content = [_text_block(p) for p in message.content]
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}


def _system(parts: list[TextPart]) -> str | list[Block] | None:
    if not parts:
        return None
    if any(_extras(p) for p in parts):
        return [_text_block(p) for p in parts]
    return "\n\n".join(p.text for p in parts)


def _collapse(turn: Block) -> Block:
    """A turn that is one plain text block is sent as a string, as people write it."""
    blocks = turn["content"]
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def _reject_name(message: Message, where: str, deployment: Deployment) -> None:
    if getattr(message, "name", None) is not None and not deployment.drop_params:
        raise UnsupportedParamsError(
            f"{where}.name: anthropic has no participant names; remove it or pass drop_params=True",
            param=f"{where}.name",
        )


def convert_messages(
    messages: list[Message], deployment: Deployment
) -> tuple[str | list[Block] | None, list[Block]]:
    """(system, turns) for the Messages API."""
    system: list[TextPart] = []
    turns: list[Block] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        _reject_name(message, where, deployment)
        if isinstance(message, SystemMessage | DeveloperMessage):
            content = message.content
            system += [TextPart(text=content)] if isinstance(content, str) else content
            continue
        if isinstance(message, UserMessage):
            role, blocks = "user", _user_blocks(message, where, deployment)
        elif isinstance(message, ToolMessage):
            role, blocks = "user", [_tool_block(message)]
        else:
            role, blocks = "assistant", _assistant_blocks(message, where)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return _system(system), [_collapse(t) for t in turns]
