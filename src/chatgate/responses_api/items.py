"""Responses ``instructions`` + ``input`` (a string or a list of items) -> Chat Completions
messages. A call item (``function_call``, ``custom_tool_call``, ``local_shell_call``) joins the
assistant message before it (one message may carry several calls); its output item becomes a
tool message (images in it follow as a user message: tool messages hold text only); a
``reasoning`` item (handed back from an earlier response) becomes the next assistant message's
reasoning, and its ``encrypted_content``, when this gateway sealed it, restores the backend's
own reasoning (chatgate.responses_api.reasoning). Results of OpenAI-hosted tools
(``web_search_call``, ...) are dropped: no backend here can take them back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatgate.errors import InvalidRequestError
from chatgate.responses_api.reasoning import Carry, Sealer, restore
from chatgate.responses_api.tools import CallTarget, ToolMap, custom_arguments, shell_arguments

__all__ = ["messages_from_input"]

Wire = dict[str, Any]

# Output items of tools that ran on OpenAI's servers: nothing here can replay them.
_HOSTED_RESULTS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "computer_call",
        "computer_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "tool_search_call",
        "tool_search_output",
    }
)
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

    def __init__(self, tools: ToolMap, sealer: Sealer | None) -> None:
        self.out: list[Wire] = []
        self._reasoning: list[str] = []
        self._tools = tools
        self._sealer = sealer
        self.carries: list[tuple[int, Carry]] = []  # (position in out, what it restores)
        self._images: list[Wire] = []  # image parts of tool outputs, for a user message after

    def flush_images(self) -> None:
        if self._images:
            self.out.append({"role": "user", "content": self._images})
            self._images = []

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

    def _call(self, call_id: Any, target: CallTarget, arguments: str, where: str) -> None:
        if not isinstance(call_id, str):
            raise _bad(f"{where}.call_id", "a call item needs its 'call_id'")
        message = self._assistant(joinable=True)
        function = {"name": self._tools.wire_name(target), "arguments": arguments}
        call = {"id": call_id, "type": "function", "function": function}
        message.setdefault("tool_calls", []).append(call)

    def function_call(self, item: Mapping[str, Any], where: str) -> None:
        name, namespace = item.get("name"), item.get("namespace")
        if not isinstance(name, str):
            raise _bad(where, "a function_call item needs 'call_id' and 'name'")
        target = CallTarget("function", name, namespace if isinstance(namespace, str) else None)
        self._call(item.get("call_id"), target, item.get("arguments") or "", where)

    def custom_tool_call(self, item: Mapping[str, Any], where: str) -> None:
        name, text = item.get("name"), item.get("input")
        if not isinstance(name, str) or not isinstance(text, str):
            raise _bad(where, "a custom_tool_call item needs 'call_id', 'name' and 'input'")
        self._call(item.get("call_id"), CallTarget("custom", name), custom_arguments(text), where)

    def local_shell_call(self, item: Mapping[str, Any], where: str) -> None:
        action = item.get("action")
        if not isinstance(action, Mapping):
            raise _bad(f"{where}.action", "a local_shell_call item needs its 'action'")
        target = CallTarget("local_shell", "local_shell")
        self._call(item.get("call_id") or item.get("id"), target, shell_arguments(action), where)

    def call_output(self, item: Mapping[str, Any], where: str) -> None:
        call_id, output = item.get("call_id"), item.get("output")
        if item.get("type") == "local_shell_call_output" and call_id is None:
            call_id = item.get("id")  # the API names the call by 'id' here
        if not isinstance(call_id, str):
            raise _bad(f"{where}.call_id", "must be the call_id of the call answered")
        if isinstance(output, list):
            output = self._output_parts(output, f"{where}.output")
        elif not isinstance(output, str):
            raise _bad(f"{where}.output", "must be a string or a list of content parts")
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def _output_parts(self, parts: list[Any], where: str) -> list[Wire]:
        text: list[Wire] = []
        for j, part in enumerate(parts):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "input_image":
                self._images.append(_image(part, f"{where}[{j}]"))
            else:
                text += _text_parts([part], where, ("input_text", "output_text"))
        return text or [{"type": "text", "text": "(image attached below)"}]

    def reasoning(self, item: Mapping[str, Any]) -> None:
        carry = self._sealer.open(item.get("encrypted_content")) if self._sealer else None
        if carry is not None:
            self.carries.append((len(self.out), carry))
        parts = item.get("content") or item.get("summary") or ()
        self._reasoning += [str(p.get("text", "")) for p in parts if isinstance(p, Mapping)]

    def item(self, item: Any, where: str) -> None:
        if not isinstance(item, Mapping):
            raise _bad(where, "an input item must be an object")
        kind = item.get("type", "message")
        if kind not in _OUTPUTS:
            self.flush_images()
        if kind == "message":
            self.message(item, where)
        elif kind in _CALLS:
            getattr(self, kind)(item, where)
        elif kind in _OUTPUTS:
            self.call_output(item, where)
        elif kind == "reasoning":
            self.reasoning(item)
        elif kind == "item_reference":
            raise _bad(f"{where}.type", _STATEFUL)
        elif kind not in _HOSTED_RESULTS:
            raise _bad(
                f"{where}.type",
                f"input item type {kind!r} is not served here (only messages, reasoning, "
                "function, custom and local_shell calls and their outputs are)",
            )


_CALLS = frozenset({"function_call", "custom_tool_call", "local_shell_call"})
_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output", "local_shell_call_output"})


def messages_from_input(
    raw: Any,
    instructions: Any,
    tools: ToolMap | None = None,
    sealer: Sealer | None = None,
    family: str = "",
) -> list[Wire]:
    """The chat messages for ``instructions`` (a system message first) and ``input``; the
    reasoning ``sealer`` sealed is restored when ``family`` (the backend's kind) made it."""
    builder = _Messages(tools or ToolMap(), sealer)
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("instructions", "must be a string")
        builder.out.append({"role": "system", "content": instructions})
    if isinstance(raw, str):
        builder.out.append({"role": "user", "content": raw})
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            builder.item(item, f"input[{i}]")
        builder.flush_images()
    else:
        raise _bad("input", "is required: a string or a non-empty list of input items")
    restore(builder.out, builder.carries, family)
    return builder.out
