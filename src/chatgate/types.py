"""The canonical request, response and chunk models: OpenAI's Chat Completions shape.

Every provider adapter translates to and from these. Models accept and keep fields they do not
name (``extra="allow"``), so a provider-specific field survives the trip through chatgate.
Which fields the caller actually set is known from ``model_fields_set``: a field left out is
"not given" and is never sent, while an explicit ``None`` is sent as ``null``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from chatgate.meta import Attempt, ResponseMeta  # re-exported: they were defined here

__all__ = [
    "AssistantMessage",
    "Attempt",
    "AudioPart",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "Delta",
    "DeveloperMessage",
    "FilePart",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "Message",
    "PromptTokensDetails",
    "RefusalPart",
    "ResponseFormat",
    "ResponseMessage",
    "ResponseMeta",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolMessage",
    "Usage",
    "UserMessage",
]


class _Open(BaseModel):
    """Base for wire models: unknown fields are kept and passed through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Tagged(_Open):
    """A model some of whose fields must always be on the wire, even when filled in by default:
    the ``role`` / ``type`` discriminators, and the keys OpenAI always sends (``_always``).
    ``exclude_unset`` serialization would otherwise drop them."""

    _always: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        tags = tuple(t for t in ("role", "type") if t in cls.model_fields)
        cls._always = tuple(dict.fromkeys(tags + cls._always))

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.update(self._always)


# --- content parts -----------------------------------------------------------------------------


class TextPart(_Tagged):
    type: Literal["text"] = "text"
    text: str


class ImageURL(_Open):
    url: str  # https URL or a base64 data URL (data:image/png;base64,...)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Tagged):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class InputAudio(_Open):
    data: str  # base64
    format: str  # "wav" | "mp3" | ...


class AudioPart(_Tagged):
    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


class FilePart(_Tagged):
    type: Literal["file"] = "file"
    file: dict[str, Any]


class RefusalPart(_Tagged):
    type: Literal["refusal"] = "refusal"
    refusal: str


ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")
]


# --- tools -------------------------------------------------------------------------------------


class FunctionDefinition(_Open):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Tagged):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionCall(_Open):
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class ToolCall(_Tagged):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


# --- messages ----------------------------------------------------------------------------------


class SystemMessage(_Tagged):
    role: Literal["system"] = "system"
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Tagged):
    role: Literal["developer"] = "developer"
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Tagged):
    role: Literal["user"] = "user"
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(_Tagged):
    role: Literal["assistant"] = "assistant"
    content: str | list[TextPart | RefusalPart] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    name: str | None = None


class ToolMessage(_Tagged):
    role: Literal["tool"] = "tool"
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# --- request -----------------------------------------------------------------------------------


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None  # {"name", "schema", "strict", "description"}


class StreamOptions(_Open):
    include_usage: bool | None = None


class ChatRequest(_Open):
    """One Chat Completions request. ``model`` is the upstream model name (no provider prefix)."""

    model: str
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None

    # JSON true is not 1 and "yes" is not true: what pydantic's lax mode would let through,
    # OpenAI refuses, so the gateway says so too instead of sending a different request.
    @field_validator(
        "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed",
        "presence_penalty", "frequency_penalty", "top_logprobs", mode="before",
    )  # fmt: skip
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a number is needed, not a boolean")
        return value

    @field_validator("stream", "logprobs", "parallel_tool_calls", mode="before")
    @classmethod
    def _a_bool(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool):
            raise ValueError("true or false is needed")
        return value

    def wire(self) -> dict[str, Any]:
        """The fields the caller set (and extras), as plain JSON-ready data."""
        return self.model_dump(mode="json", exclude_unset=True)

    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


# --- response ----------------------------------------------------------------------------------


class PromptTokensDetails(_Open):
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None  # Anthropic cache writes; not an OpenAI field
    cache_creation_1h_tokens: int | None = None  # the 1-hour-TTL part of those; not OpenAI's
    audio_tokens: int | None = None


class CompletionTokensDetails(_Open):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(_Open):
    """Token counts as the provider reported them, in OpenAI's shape: cached and cache-write
    input tokens in ``prompt_tokens_details``, reasoning tokens in ``completion_tokens_details``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ResponseMessage(_Tagged):
    _always = ("content",)

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None


FinishReason = str  # stop | length | tool_calls | content_filter | function_call (+ passthrough)


class Choice(_Tagged):
    _always = ("index", "finish_reason")

    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatResponse(_Tagged):
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


class FunctionCallDelta(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Open):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None


class ChunkChoice(_Tagged):
    _always = ("index", "delta", "finish_reason")

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatChunk(_Tagged):
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
