"""What comes back: a whole answer with its usage, and the chunks of a stream."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from chatgate.meta import ResponseMeta
from chatgate.types.messages import ToolCall
from chatgate.types.wire import OpenModel, TaggedModel

__all__ = [
    "ChatChunk",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Delta",
    "FinishReason",
    "FunctionCallDelta",
    "PromptTokensDetails",
    "ResponseMessage",
    "ToolCallDelta",
    "Usage",
]


class PromptTokensDetails(OpenModel):
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None  # Anthropic cache writes; not an OpenAI field
    cache_creation_1h_tokens: int | None = None  # the 1-hour-TTL part of those; not OpenAI's
    audio_tokens: int | None = None


class CompletionTokensDetails(OpenModel):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(OpenModel):
    """Token counts as the provider reported them, in OpenAI's shape: cached and cache-write
    input tokens in ``prompt_tokens_details``, reasoning tokens in ``completion_tokens_details``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ResponseMessage(TaggedModel):
    _always = ("content",)

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None


FinishReason = str  # stop | length | tool_calls | content_filter | function_call (+ passthrough)


class Choice(TaggedModel):
    _always = ("index", "finish_reason")

    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatResponse(TaggedModel):
    """A whole answer in OpenAI's Chat Completions shape, whichever provider served it.

    ``content``, ``finish_reason`` and ``truncated`` read the first choice; ``cost`` is the exact
    USD price from the bundled table (None when the model has no price); ``meta`` holds what
    chatgate measured: latency, the deployment that answered, every routed attempt, cache status.
    Unknown provider fields are kept and sent back as they came.
    """

    _always = ("id", "object", "created", "model", "choices")

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None

    _meta: ResponseMeta = PrivateAttr(default_factory=ResponseMeta)

    @property
    def meta(self) -> ResponseMeta:
        # the private attribute read without BaseModel.__getattr__: 0.03 µs instead of 1.5,
        # and a call reads it a dozen times
        meta: ResponseMeta = self.__pydantic_private__["_meta"]  # type: ignore[index]
        return meta

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def truncated(self) -> bool:
        """True when the first choice stopped because it hit the output token limit."""
        return self.finish_reason == "length"

    @property
    def content(self) -> str | None:
        """The first choice's text, the common case in one attribute."""
        return self.choices[0].message.content if self.choices else None

    @property
    def cost(self) -> Decimal | None:
        """What this answer cost in USD (exact), or None when the price is unknown."""
        return self.meta.cost


# --- stream chunks -----------------------------------------------------------------------------


class FunctionCallDelta(OpenModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(OpenModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(OpenModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None


class ChunkChoice(TaggedModel):
    _always = ("index", "delta", "finish_reason")

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatChunk(TaggedModel):
    """One chunk of a stream. A chunk read from an OpenAI-format upstream keeps the exact JSON
    it came as (``wire_json``), so a gateway can forward it without serializing it again; a
    copy, or assigning to the chunk's fields, drops it. (Changing a nested part in place would
    not: chatgate never does.)"""

    __slots__ = ("_wire",)  # not a field: equality, copies and dumps ignore it
    _always = ("id", "object", "created", "model", "choices")

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None

    def keep_wire_json(self, data: bytes) -> None:
        object.__setattr__(self, "_wire", data)

    @property
    def wire_json(self) -> bytes | None:
        return getattr(self, "_wire", None)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, "_wire", None)
        super().__setattr__(name, value)
