"""The canonical request, response and chunk models: OpenAI's Chat Completions shape.

Every provider adapter translates to and from these. Models accept and keep fields they do not
name (``extra="allow"``), so a provider-specific field survives the trip through chatgate.
Which fields the caller actually set is known from ``model_fields_set``: a field left out is
"not given" and is never sent, while an explicit ``None`` is sent as ``null``.

The models live by concern: ``types.messages`` (what a caller sends), ``types.responses`` (what
comes back) on the bases in ``types.wire``; every name is importable from here.
"""

from __future__ import annotations

from chatgate.meta import Attempt, ResponseMeta  # re-exported: they were defined here
from chatgate.types.messages import (
    AssistantMessage,
    AudioPart,
    ChatRequest,
    ContentPart,
    DeveloperMessage,
    FilePart,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    InputAudio,
    Message,
    RefusalPart,
    ResponseFormat,
    StreamOptions,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from chatgate.types.responses import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    Delta,
    FunctionCallDelta,
    PromptTokensDetails,
    ResponseMessage,
    ToolCallDelta,
    Usage,
)
from chatgate.types.responses import (
    FinishReason as FinishReason,  # not in __all__ before the split either
)

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
