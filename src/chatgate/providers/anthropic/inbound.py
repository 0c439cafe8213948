"""The schema of an inbound Anthropic Messages request (the gateway's /v1/messages and
/v1/messages/count_tokens): every field a client may send, typed strictly, so that a malformed
body is a 400 naming the field instead of a crash further down.

Validation only: the translation reads the plain dict afterwards. Unknown top-level fields and
unknown keys inside blocks are allowed (Anthropic adds fields often; what each backend gets is
decided by ``reverse_params``). Content blocks are checked by their ``type``; a block type this
schema does not know is accepted here and refused, naming it, where it cannot be translated.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from chatgate.errors import InvalidRequestError

__all__ = ["COUNT_FIELDS", "validate_count_body", "validate_messages_body"]

Number = StrictInt | StrictFloat
JsonObject = dict[str, Any]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Open):
    type: Literal["text"]
    text: StrictStr
    cache_control: JsonObject | None = None
    citations: list[JsonObject] | None = None


class _Source(_Open):
    type: Literal["base64", "url", "file", "text", "content"]
    media_type: StrictStr | None = None
    data: StrictStr | None = None
    url: StrictStr | None = None


class ImageBlock(_Open):
    type: Literal["image"]
    source: _Source


class DocumentBlock(_Open):
    type: Literal["document"]
    source: _Source


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: JsonObject


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr | None = None


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]
    data: StrictStr


class OtherBlock(_Open):
    """Server-tool blocks, search results, ...: checked where they are translated."""

    type: StrictStr


_KNOWN = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking"})


def _block_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if isinstance(kind, str) and (kind in _KNOWN or kind == "redacted_thinking"):
        return f"block:{kind}"
    return "block:other"


def _part_kind(value: Any) -> str:
    kind = _block_kind(value)
    return kind if kind in ("block:text", "block:image", "block:document") else "block:other"


_ResultPart = Annotated[
    Annotated[TextBlock, Tag("block:text")]
    | Annotated[ImageBlock, Tag("block:image")]
    | Annotated[DocumentBlock, Tag("block:document")]
    | Annotated[OtherBlock, Tag("block:other")],
    Discriminator(_part_kind),
]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[_ResultPart] | None = None
    is_error: StrictBool | None = None


Block = Annotated[
    Annotated[TextBlock, Tag("block:text")]
    | Annotated[ImageBlock, Tag("block:image")]
    | Annotated[DocumentBlock, Tag("block:document")]
    | Annotated[ToolUseBlock, Tag("block:tool_use")]
    | Annotated[ToolResultBlock, Tag("block:tool_result")]
    | Annotated[ThinkingBlock, Tag("block:thinking")]
    | Annotated[RedactedThinkingBlock, Tag("block:redacted_thinking")]
    | Annotated[OtherBlock, Tag("block:other")],
    Discriminator(_block_kind),
]


class InMessage(_Open):
    # "system" inside messages: current Claude Code sends it for non-Claude model names
    role: Literal["user", "assistant", "system"]
    content: StrictStr | list[Block]


class Metadata(_Open):
    user_id: StrictStr | None = None


class Tool(_Open):
    name: StrictStr = Field(min_length=1)
    type: StrictStr | None = None  # "custom", or a server tool's versioned type
    description: StrictStr | None = None
    input_schema: JsonObject | None = None
    cache_control: JsonObject | None = None


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("a tool_choice of type 'tool' needs the tool's name")
        return self


class Thinking(_Open):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: StrictInt | None = Field(default=None, ge=0)


class OutputFormat(_Open):
    type: Literal["json_schema"]
    schema_: JsonObject = Field(alias="schema")


class OutputConfig(_Open):
    effort: StrictStr | None = None
    format: OutputFormat | None = None


class _Common(_Open):
    model: StrictStr = Field(min_length=1)
    messages: list[InMessage] = Field(min_length=1)
    system: StrictStr | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    output_format: OutputFormat | None = None
    context_management: JsonObject | None = None
    mcp_servers: list[JsonObject] | None = None


class CountBody(_Common):
    pass


# What a count takes; the rest of a Messages body (metadata, sampling, stream) changes nothing
COUNT_FIELDS = frozenset(CountBody.model_fields)


class MessagesBody(_Common):
    max_tokens: StrictInt = Field(ge=1)
    metadata: Metadata | None = None
    stop_sequences: list[StrictStr] | None = None
    temperature: Number | None = Field(default=None, ge=0, le=1)
    top_p: Number | None = Field(default=None, ge=0, le=1)
    top_k: StrictInt | None = Field(default=None, ge=0)
    stream: StrictBool | None = None
    service_tier: StrictStr | None = None


_MESSAGES = pydantic.TypeAdapter(MessagesBody)
_COUNT = pydantic.TypeAdapter(CountBody)
_HIDDEN = ("[", ":")  # union member tags pydantic puts in a location
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list"})
_CLASS_NAME = re.compile(r" or instance of \w+")


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TYPE_TAGS and not any(c in part for c in _HIDDEN):
            out += f".{part}" if out else part
    return out or "body"


def _first_error(exc: pydantic.ValidationError) -> InvalidRequestError:
    """The most specific error (the deepest location), every alternative at that spot named."""
    errors = exc.errors(include_url=False, include_input=False)
    deepest = max(len(e["loc"]) for e in errors)
    where = _where(next(e["loc"] for e in errors if len(e["loc"]) == deepest))
    messages = [_CLASS_NAME.sub("", e["msg"]) for e in errors if _where(e["loc"]) == where]
    if where == "body" and not messages:
        messages = [errors[0]["msg"]]
    text = " or ".join(dict.fromkeys(m[:1].lower() + m[1:] for m in messages))
    return InvalidRequestError(f"{where}: {text}", param=where)


def validate_messages_body(body: Any) -> None:
    """Raise InvalidRequestError naming the first bad field of a /v1/messages body."""
    try:
        _MESSAGES.validate_python(body)
    except pydantic.ValidationError as exc:
        raise _first_error(exc) from None


def validate_count_body(body: Any) -> None:
    """The same for /v1/messages/count_tokens (no max_tokens, no sampling fields)."""
    try:
        _COUNT.validate_python(body)
    except pydantic.ValidationError as exc:
        raise _first_error(exc) from None
