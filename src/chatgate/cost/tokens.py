"""count_tokens: how many prompt tokens a request is, before it is sent.

OpenAI models are counted with tiktoken and the encoding that model uses, plus OpenAI's
per-message framing (3 tokens a message, 1 for a name, 3 to prime the reply) and images by
the tile/patch formulas; the result is ``exact`` when every part of the prompt is covered by
those rules. Tool schemas are rendered the way OpenAI shows them to the model (a TypeScript
namespace) and counted; that is close but not guaranteed, so a count with tools is marked
inexact. Other providers' tokenizers are not public: their counts are estimates made with
o200k_base (``exact=False``, ``method="estimate"``), or, when asked, the provider's own count
endpoint (``acount_tokens(..., use_api=True)``: Anthropic count_tokens, Gemini countTokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from chatgate.cost.encodings import encoding_for_model, get_encoding
from chatgate.cost.images import image_tokens
from chatgate.cost.provider_count import count_via_api
from chatgate.providers.registry import split_model
from chatgate.transport.offload import off_loop

if TYPE_CHECKING:
    import tiktoken

__all__ = ["TokenCount", "acount_tokens", "count_tokens", "precount", "render_tools"]

_OPENAI_FAMILY = frozenset({"openai", "azure"})
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
_TOOLS_OVERHEAD = 9
_TOOLS_WITH_SYSTEM = -4


@dataclass(frozen=True, slots=True)
class TokenCount:
    """``tokens``: the count; ``exact``: True when it is what the provider will bill;
    ``method``: how it was made (``tiktoken:<encoding>``, ``estimate:<encoding>``,
    ``anthropic_api``, ``gemini_api``)."""

    tokens: int
    exact: bool
    method: str

    def __int__(self) -> int:
        return self.tokens


def _plain(items: Sequence[Any] | None) -> list[dict[str, Any]]:
    out = []
    for item in items or ():
        if isinstance(item, BaseModel):
            out.append(item.model_dump(mode="json", exclude_none=True))
        elif isinstance(item, Mapping):
            out.append(dict(item))
        else:
            raise TypeError(f"expected a message/tool dict or model, got {type(item).__name__}")
    return out


# Texts at least this long are counted without a list of their tokens and, within a request
# that called ``precount``, remembered: (encoding, id(text)) -> (text, count). The text is kept
# with its count so its id cannot be reused while the entry lives (as long as the request).
_LONG_TEXT = 4096
_COUNTED: ContextVar[dict[tuple[str, int], tuple[str, int]] | None] = ContextVar(
    "chatgate_counted", default=None
)


def _count_long(encoding: tiktoken.Encoding, value: str) -> int:
    """A long text's token count. tiktoken's buffer encoder releases the GIL for the whole
    encoding, where ``encode_ordinary`` holds it to build a list of ints (100+ ms for 15 MiB,
    measured: every other thread, the event loop's included, waits). Both treat special-token
    text as ordinary text."""
    to_buffer = getattr(getattr(encoding, "_core_bpe", None), "encode_to_tiktoken_buffer", None)
    if to_buffer is None:  # a tiktoken without it (private API): the plain way
        return len(encoding.encode_ordinary(value))
    return memoryview(to_buffer(value, set())).nbytes // 4  # uint32 tokens


class _Counter:
    """Counts one prompt with one encoding; remembers whether every part was exact."""

    def __init__(self, model: str, encoding: str, exact: bool) -> None:
        self.model = model
        self.encoding = encoding
        self._tiktoken = get_encoding(encoding)
        self.encode = self._tiktoken.encode_ordinary
        self.exact = exact

    def text(self, value: str) -> int:
        if len(value) < _LONG_TEXT:
            return len(self.encode(value))
        counted = _COUNTED.get()
        key = (self.encoding, id(value))
        known = counted.get(key) if counted is not None else None
        if known is not None and known[0] is value:
            return known[1]
        tokens = _count_long(self._tiktoken, value)
        if counted is not None:
            counted[key] = (value, tokens)
        return tokens

    def content(self, content: Any) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.text(content)
        total = 0
        for part in content:
            kind = part.get("type")
            if kind == "text":
                total += self.text(part.get("text", ""))
            elif kind == "refusal":
                total += self.text(part.get("refusal", ""))
            elif kind == "image_url":
                image = part.get("image_url") or {}
                counted = image_tokens(self.model, image.get("url", ""), image.get("detail"))
                self.exact = self.exact and counted.exact
                total += counted.tokens
            else:  # audio and files: billed by rules we cannot see from here
                self.exact = False
                total += self.text(str(part))
        return total

    def message(self, message: Mapping[str, Any]) -> int:
        total = _PER_MESSAGE + self.text(str(message.get("role", "")))
        total += self.content(message.get("content"))
        if message.get("name"):
            total += self.text(message["name"]) + _PER_NAME
        for call in message.get("tool_calls") or ():
            self.exact = False  # the hidden framing of past tool calls is not documented
            function = call.get("function") or {}
            total += self.text(function.get("name", "")) + self.text(function.get("arguments", ""))
        if message.get("tool_call_id"):
            self.exact = False
        return total


def _format_type(schema: Mapping[str, Any], indent: int) -> str:
    kind = schema.get("type")
    enum = schema.get("enum")
    if kind == "string":
        return " | ".join(f'"{v}"' for v in enum) if enum else "string"
    if kind in ("number", "integer"):
        return " | ".join(str(v) for v in enum) if enum else "number"
    if kind in ("boolean", "null"):
        return str(kind)
    if kind == "object":
        return "{\n" + _format_properties(schema, indent + 2) + "\n}"
    if kind == "array":
        items = schema.get("items")
        return f"{_format_type(items, indent)}[]" if isinstance(items, Mapping) else "any[]"
    return "any"


def _format_properties(schema: Mapping[str, Any], indent: int) -> str:
    lines = []
    required = set(schema.get("required") or ())
    for name, prop in (schema.get("properties") or {}).items():
        if prop.get("description") and indent < 2:
            lines.append(f"// {prop['description']}")
        mark = "" if name in required else "?"
        lines.append(f"{name}{mark}: {_format_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def render_tools(tools: Sequence[Mapping[str, Any]]) -> str:
    """Tool schemas as OpenAI renders them into the prompt (a TypeScript namespace)."""
    lines = ["namespace functions {", ""]
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("description"):
            lines.append(f"// {function['description']}")
        parameters = function.get("parameters") or {}
        if parameters.get("properties"):
            lines.append(f"type {function.get('name', '')} = (_: {{")
            lines.append(_format_properties(parameters, 0))
            lines.append("}) => any;")
        else:
            lines.append(f"type {function.get('name', '')} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _count_local(
    model: str,
    messages: Sequence[Any] | None,
    tools: Sequence[Any] | None,
    text: str | None,
) -> TokenCount:
    spec, name = split_model(model)
    encoding, known = encoding_for_model(name)
    exact = spec.name in _OPENAI_FAMILY and known
    counter = _Counter(name, encoding, exact)
    plain_tools = _plain(tools)
    total = counter.text(text) if text else 0
    plain = _plain(messages)
    if plain_tools:
        has_system = False
        for message in plain:
            if message.get("role") in ("system", "developer") and not has_system:
                has_system = True
                content = message.get("content")
                if isinstance(content, str):  # the tool block is joined to the first system
                    message = {**message, "content": content + "\n"}
            total += counter.message(message)
        total += counter.text(render_tools(plain_tools)) + _TOOLS_OVERHEAD
        total += _TOOLS_WITH_SYSTEM if has_system else 0
        counter.exact = False
    else:
        total += sum(counter.message(m) for m in plain)
    if plain:
        total += _REPLY_PRIMING
    prefix = "tiktoken" if exact else "estimate"
    return TokenCount(total, counter.exact, f"{prefix}:{encoding}")


def count_tokens(
    model: str,
    messages: Sequence[Any] | None = None,
    tools: Sequence[Any] | None = None,
    text: str | None = None,
    *,
    use_api: bool = False,
    api_key: str | None = None,
    api_base: str | None = None,
) -> TokenCount:
    """Prompt tokens of ``messages`` (+ ``tools``), or of a bare ``text``, for ``model``
    ("provider/model"). ``use_api=True`` asks Anthropic or Gemini to count (a network call)."""
    if messages is None and text is None:
        raise ValueError("count_tokens needs messages=... or text=...")
    if use_api:
        from chatgate.transport.loop_thread import run_sync

        return run_sync(
            acount_tokens(
                model, messages, tools, text, use_api=True, api_key=api_key, api_base=api_base
            )
        )
    return _count_local(model, messages, tools, text)


async def precount(
    models: Iterable[str], messages: Sequence[Any], tools: Sequence[Any] | None = None
) -> None:
    """Count a big prompt off the event loop, once for each encoding ``models`` use, so that
    every ``count_tokens`` of it later in the same task (a budget hold, the router's context
    check) finds the long texts counted instead of counting them on the loop."""
    if _COUNTED.get() is None:
        _COUNTED.set({})
    by_encoding: dict[str, str] = {}
    for model in models:
        by_encoding.setdefault(encoding_for_model(split_model(model)[1])[0], model)
    for model in by_encoding.values():
        await off_loop(_count_local, model, messages, tools, None)


async def acount_tokens(
    model: str,
    messages: Sequence[Any] | None = None,
    tools: Sequence[Any] | None = None,
    text: str | None = None,
    *,
    use_api: bool = False,
    api_key: str | None = None,
    api_base: str | None = None,
) -> TokenCount:
    """``count_tokens`` for async code; with ``use_api`` it awaits the provider's endpoint."""
    if not use_api:
        return count_tokens(model, messages, tools, text)
    tokens, method = await count_via_api(
        model, messages, tools, text, api_key=api_key, api_base=api_base
    )
    return TokenCount(tokens, True, method)
