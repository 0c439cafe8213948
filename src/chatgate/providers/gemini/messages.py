"""OpenAI messages -> Gemini ``systemInstruction`` and ``contents``.

system / developer text goes to ``systemInstruction`` (joined in order); user -> role "user",
assistant -> role "model"; consecutive turns of one role are merged (Gemini wants them to
alternate). Tool calls become ``functionCall`` parts, tool results ``functionResponse`` parts in
a user turn, their function name recovered from the earlier call with the same id.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from chatgate.errors import InvalidRequestError
from chatgate.types import (
    AssistantMessage,
    AudioPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

__all__ = ["THOUGHT_SIGNATURE_KEY", "to_contents"]

# Where a functionCall's thoughtSignature travels on an OpenAI tool call, the same place
# Google's own OpenAI-compatible endpoint puts it: tool_call.extra_content.google.
THOUGHT_SIGNATURE_KEY = "thought_signature"
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[^,]*?)?;base64,(.*)$", re.DOTALL)
_IMAGE_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg"}


def _text(content: str | list[TextPart]) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content)


def _data_url(url: str, where: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequestError(
            f"{where}: not a base64 data URL (data:<mime>;base64,<data>)", param=where
        )
    try:
        base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        raise InvalidRequestError(
            f"{where}: the data URL is not valid base64", param=where
        ) from None
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}


def _image(part: ImagePart, where: str) -> dict[str, Any]:
    url = part.image_url.url
    if url.startswith("data:"):
        return _data_url(url, where)
    if url.startswith("gs://") or url.startswith("https://generativelanguage.googleapis.com/"):
        data = {"fileUri": url}
        ext = url.rsplit("/", 1)[-1].rpartition(".")[2].lower()
        if ext in _IMAGE_MIME:  # optional for Gemini; sent when the name tells it
            data["mimeType"] = _IMAGE_MIME[ext]
        return {"fileData": data}
    raise InvalidRequestError(
        f"{where}: Gemini cannot fetch images from arbitrary URLs ({url[:80]!r}); pass the "
        "image as a base64 data URL (data:image/png;base64,...) or a gs:// or Files API URI, "
        "or let chatgate download it: download_images=True",
        param=where,
    )


def _user_parts(message: UserMessage, where: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.content):
        at = f"{where}.content[{j}]"
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image(part, at))
        elif isinstance(part, AudioPart):
            fmt = part.input_audio.format
            mime = _AUDIO_MIME.get(fmt, f"audio/{fmt}")
            parts.append({"inlineData": {"mimeType": mime, "data": part.input_audio.data}})
        elif isinstance(part, FilePart) and isinstance(part.file.get("file_data"), str):
            parts.append(_data_url(part.file["file_data"], f"{at}.file.file_data"))
        else:
            raise InvalidRequestError(
                f"{at}: Gemini takes text, image_url, input_audio and file parts with "
                f"file_data as a base64 data URL; got a {part.type!r} part",
                param=at,
            )
    return parts


def _assistant_parts(message: AssistantMessage, where: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.content
    if isinstance(content, str) and content:
        parts.append({"text": content})
    elif isinstance(content, list):
        for piece in content:
            text = piece.text if isinstance(piece, TextPart) else piece.refusal
            parts.append({"text": text})
    elif message.refusal:
        parts.append({"text": message.refusal})
    for j, call in enumerate(message.tool_calls or ()):
        at = f"{where}.tool_calls[{j}].function.arguments"
        try:
            args = orjson.loads(call.function.arguments or "{}")
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequestError(
                f"{at}: Gemini needs the arguments as a JSON object; got "
                f"{call.function.arguments[:80]!r}",
                param=at,
            )
        part: dict[str, Any] = {"functionCall": {"name": call.function.name, "args": args}}
        extra = (call.model_extra or {}).get("extra_content")
        google = extra.get("google") if isinstance(extra, dict) else None
        if isinstance(google, dict) and isinstance(google.get(THOUGHT_SIGNATURE_KEY), str):
            part["thoughtSignature"] = google[THOUGHT_SIGNATURE_KEY]
        parts.append(part)
    return parts


def _tool_part(message: ToolMessage, names: dict[str, str], where: str) -> dict[str, Any]:
    name = names.get(message.tool_call_id)
    if name is None:
        raise InvalidRequestError(
            f"{where}.tool_call_id: {message.tool_call_id!r} matches no tool call of an earlier "
            "assistant message; send the assistant message with its tool_calls first",
            param=f"{where}.tool_call_id",
        )
    text = _text(message.content)
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def to_contents(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """The system instruction text (or None) and the ``contents`` list."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, latest call wins
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(_text(message.content))
            continue
        if isinstance(message, UserMessage):
            role, parts = "user", _user_parts(message, where)
        elif isinstance(message, AssistantMessage):
            role, parts = "model", _assistant_parts(message, where)
            names.update((c.id, c.function.name) for c in message.tool_calls or ())
        else:
            role, parts = "user", [_tool_part(message, names, where)]
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ("\n\n".join(system) if system else None), contents
