"""Replay a stored answer as a stream, in the chunk schema a live one uses.

Per choice: a role chunk (``{"role": "assistant", "content": ""}``), one chunk with the whole
content (and reasoning, refusal, tool calls and provider extras), a finish chunk; then one
usage chunk with no choices. Folding these chunks gives back the stored answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from chatgate.providers.base import Deployment
from chatgate.types import (
    ChatChunk,
    ChatResponse,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ResponseMessage,
    ToolCallDelta,
)

__all__ = ["ReplaySource", "response_chunks"]

_MESSAGE_FIELDS = frozenset(ResponseMessage.model_fields)


def _body_delta(message: ResponseMessage) -> Delta | None:
    calls = [
        ToolCallDelta(
            index=i,
            id=call.id,
            type="function",
            function=FunctionCallDelta(name=call.function.name, arguments=call.function.arguments),
            **(call.model_extra or {}),
        )
        for i, call in enumerate(message.tool_calls or ())
    ]
    fields: dict[str, Any] = {
        "content": message.content,
        "reasoning_content": message.reasoning_content,
        "refusal": message.refusal,
        "tool_calls": calls or None,
    }
    extras = {k: v for k, v in (message.model_extra or {}).items() if k not in _MESSAGE_FIELDS}
    given = {k: v for k, v in {**fields, **extras}.items() if v not in (None, "")}
    return Delta(**given) if given else None


def response_chunks(response: ChatResponse) -> list[ChatChunk]:
    head: dict[str, Any] = {
        "id": response.id,
        "created": response.created,
        "model": response.model,
    }
    if response.system_fingerprint is not None:
        head["system_fingerprint"] = response.system_fingerprint
    chunks: list[ChatChunk] = []
    for choice in response.choices:

        def one(delta: Delta, finish: str | None = None, index: int = choice.index) -> ChatChunk:
            return ChatChunk(
                **head, choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish)]
            )

        chunks.append(one(Delta(role="assistant", content="")))
        body = _body_delta(choice.message)
        if body is not None:
            chunks.append(one(body))
        chunks.append(one(Delta(), choice.finish_reason or "stop"))
    if response.usage is not None:
        chunks.append(ChatChunk(**head, choices=[], usage=response.usage))
    return chunks


class ReplaySource:
    """A ChunkSource over a stored answer."""

    def __init__(self, response: ChatResponse) -> None:
        self._response = response
        self.provider = response.meta.provider
        self.model = response.meta.model or response.model
        self.request_id: str | None = None
        self.deployment: Deployment | None = None  # a replay costs nothing: no price applies

    drained = True  # the whole answer is in hand

    async def batches(self) -> AsyncGenerator[list[ChatChunk], None]:
        yield list(response_chunks(self._response))  # all there already: one write for a relay

    def end(self, complete: bool) -> None:
        pass

    def abort(self) -> None:
        pass
