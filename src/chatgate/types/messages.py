"""What a caller sends: content parts, tools, the five message roles and the request itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from chatgate.types.wire import OpenModel, TaggedModel

__all__ = [
    "AssistantMessage",
    "AudioPart",
    "ChatRequest",
    "ContentPart",
    "DeveloperMessage",
    "FilePart",
    "FunctionCall",
    "FunctionDefinition",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "Message",
    "RefusalPart",
    "ResponseFormat",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
]


class TextPart(TaggedModel):
    type: Literal["text"] = "text"
    text: str


class ImageURL(OpenModel):
    url: str  # https URL or a base64 data URL (data:image/png;base64,...)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(TaggedModel):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class InputAudio(OpenModel):
    data: str  # base64
    format: str  # "wav" | "mp3" | ...


class AudioPart(TaggedModel):
    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


class FilePart(TaggedModel):
    type: Literal["file"] = "file"
    file: dict[str, Any]


class RefusalPart(TaggedModel):
    type: Literal["refusal"] = "refusal"
    refusal: str


ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")
]


# --- tools -------------------------------------------------------------------------------------


class FunctionDefinition(OpenModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(TaggedModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionCall(OpenModel):
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class ToolCall(TaggedModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


# --- messages ----------------------------------------------------------------------------------


class SystemMessage(TaggedModel):
    role: Literal["system"] = "system"
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(TaggedModel):
    role: Literal["developer"] = "developer"
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(TaggedModel):
    role: Literal["user"] = "user"
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(TaggedModel):
    role: Literal["assistant"] = "assistant"
    content: str | list[TextPart | RefusalPart] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    name: str | None = None


class ToolMessage(TaggedModel):
    role: Literal["tool"] = "tool"
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# --- request -----------------------------------------------------------------------------------


class ResponseFormat(OpenModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None  # {"name", "schema", "strict", "description"}


class StreamOptions(OpenModel):
    include_usage: bool | None = None


class ChatRequest(OpenModel):
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
