"""Responses ``instructions`` + ``input`` (a string or a list of items) -> Chat Completions
messages. A ``function_call`` item joins the assistant message before it (one message may carry
several calls); its ``function_call_output`` becomes a tool message; a ``reasoning`` item
(handed back from an earlier response) becomes the next assistant message's reasoning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatgate.errors import InvalidRequestError

__all__ = ["messages_from_input"]

Wire = dict[str, Any]

_STATEFUL = (
    "item references need items stored by the server, and this gateway stores none: "
    "send the item itself"
)


def _bad(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", param=where)


def _text_of(part: Mapping[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _bad(f"{where}.text", "must be a string")
    return text


def _image(part: Mapping[str, Any], where: str) -> Wire:
    url = part.get("image_url")
    if not isinstance(url, str):
        raise _bad(
            where, "an input_image needs 'image_url' (an https or data: URL); file_id is not served"
        )
    image: Wire = {"url": url}
    if part.get("detail") is not None:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file(part: Mapping[str, Any], where: str) -> Wire:
    if part.get("file_url") is not None:
        raise _bad(where, "file_url is not served: send the file inline as 'file_data'")
    keys = ("file_data", "file_id", "filename")
    return {"type": "file", "file": {k: part[k] for k in keys if part.get(k) is not None}}


def _user_part(part: Any, where: str) -> Wire:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "input_text":
        return {"type": "text", "text": _text_of(part, where)}
    if kind == "input_image":
        return _image(part, where)
    if kind == "input_file":
        return _file(part, where)
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    raise _bad(f"{where}.type", f"content part type {kind!r} cannot be sent in this message")


def _text_parts(content: Any, where: str, kinds: tuple[str, ...]) -> list[Wire]:
    parts = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in kinds:
            raise _bad(f"{here}.type", f"must be one of {', '.join(kinds)}")
        parts.append({"type": "text", "text": _text_of(part, here)})
    return parts


class _Messages:
    """Builds the message list, merging function calls into the assistant turn before them."""

    def __init__(self) -> None:
        self.out: list[Wire] = []
        self._reasoning: list[str] = []

    def _assistant(self, *, joinable: bool) -> Wire:
        last = self.out[-1] if self.out else None
        if joinable and last is not None and last["role"] == "assistant":
            message = last
        else:
            message = {"role": "assistant", "content": None}
            self.out.append(message)
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
            self._reasoning = []
        return message

    def message(self, item: Mapping[str, Any], where: str) -> None:
        role, content = item.get("role"), item.get("content")
        if not isinstance(content, str | list):
            raise _bad(f"{where}.content", "must be a string or a list of content parts")
        if role == "user":
            if isinstance(content, list):
                content = [_user_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
            self.out.append({"role": "user", "content": content})
        elif role in ("system", "developer"):
            if isinstance(content, list):
                content = _text_parts(content, f"{where}.content", ("input_text",))
            self.out.append({"role": role, "content": content})
        elif role == "assistant":
            self._assistant_content(content, where)
        else:
            raise _bad(f"{where}.role", "must be 'user', 'system', 'developer' or 'assistant'")

    def _assistant_content(self, content: str | list[Any], where: str) -> None:
        message = self._assistant(joinable=False)
        if isinstance(content, str):
            message["content"] = content
            return
        text, refusal = [], []
        for j, part in enumerate(content):
            here = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("output_text", "input_text"):
                text.append(_text_of(part, here))
            elif kind == "refusal":
                refusal.append(str(part.get("refusal", "")))
            else:
                raise _bad(f"{here}.type", "an assistant message holds output_text or refusal")
        message["content"] = "".join(text) if text else None
        if refusal:
            message["refusal"] = "".join(refusal)

    def function_call(self, item: Mapping[str, Any], where: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise _bad(where, "a function_call item needs 'call_id' and 'name'")
        message = self._assistant(joinable=True)
        function = {"name": name, "arguments": item.get("arguments") or ""}
        call = {"id": call_id, "type": "function", "function": function}
        message.setdefault("tool_calls", []).append(call)

    def function_call_output(self, item: Mapping[str, Any], where: str) -> None:
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str):
            raise _bad(f"{where}.call_id", "must be the call_id of the function_call answered")
        if isinstance(output, list):
            output = _text_parts(output, f"{where}.output", ("input_text", "output_text"))
        elif not isinstance(output, str):
            raise _bad(f"{where}.output", "must be a string or a list of input_text parts")
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def reasoning(self, item: Mapping[str, Any]) -> None:
        parts = item.get("content") or item.get("summary") or ()
        self._reasoning += [str(p.get("text", "")) for p in parts if isinstance(p, Mapping)]

    def item(self, item: Any, where: str) -> None:
        if not isinstance(item, Mapping):
            raise _bad(where, "an input item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            self.message(item, where)
        elif kind == "function_call":
            self.function_call(item, where)
        elif kind == "function_call_output":
            self.function_call_output(item, where)
        elif kind == "reasoning":
            self.reasoning(item)
        elif kind == "item_reference":
            raise _bad(f"{where}.type", _STATEFUL)
        else:
            raise _bad(
                f"{where}.type",
                f"input item type {kind!r} is not served here (only messages, function_call, "
                "function_call_output and reasoning items are)",
            )


def messages_from_input(raw: Any, instructions: Any) -> list[Wire]:
    """The chat messages for ``instructions`` (a system message first) and ``input``."""
    builder = _Messages()
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("instructions", "must be a string")
        builder.out.append({"role": "system", "content": instructions})
    if isinstance(raw, str):
        builder.out.append({"role": "user", "content": raw})
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            builder.item(item, f"input[{i}]")
    else:
        raise _bad("input", "is required: a string or a non-empty list of input items")
    return builder.out
