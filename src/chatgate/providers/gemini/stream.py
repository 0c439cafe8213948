"""Gemini's ``streamGenerateContent?alt=sse`` -> canonical chunks.

Each SSE event is ``data: {GenerateContentResponse}`` holding the next parts of each candidate;
there is no ``[DONE]``: the answer is complete once every candidate seen has a finishReason
(the server then closes the connection). ``usageMetadata`` is cumulative; the last one becomes
the final usage chunk. A stream that ends before that raises APIConnectionError. A candidate
that ends without a usable answer (``finish.py``: MalformedToolCallError, NoAnswerError, ...)
raises once the chunks of the event that said so are out, exactly as the whole answer would
(its partial text reaches the caller first); finishing chunks carry ``native_finish_reason``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from chatgate.errors import APIConnectionError, ChatgateError
from chatgate.providers.base import Deployment
from chatgate.providers.gemini.finish import finish_error, finish_reason
from chatgate.providers.gemini.response import load_event, logprobs, tool_call, usage
from chatgate.transport.sse import SSEEvent
from chatgate.types import ChatChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta

__all__ = ["GeminiStreamTranslator"]


class GeminiStreamTranslator:
    __slots__ = (
        "_calls",
        "_created",
        "_deployment",
        "_failure",
        "_finished",
        "_id",
        "_model",
        "_usage",
    )

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._calls: dict[int, int] = {}  # candidate index -> function calls so far
        self._finished: dict[int, bool] = {}  # candidate index -> finishReason seen
        self._usage: Mapping[str, Any] | None = None
        self._failure: ChatgateError | None = None  # raised once its event's chunks are out

    def _chunk(self, index: int, delta: Delta, **fields: Any) -> ChatChunk:
        return ChatChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=[ChunkChoice(index=index, delta=delta, **fields)],
        )

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if self._failure is not None:
            raise self._failure
        if not event.data:
            return []
        parsed = load_event(event.data, self._deployment)
        self._id = self._id or parsed.get("responseId") or ""
        self._model = self._model or parsed.get("modelVersion") or self._deployment.model
        if isinstance(parsed.get("usageMetadata"), Mapping):
            self._usage = parsed["usageMetadata"]
        out: list[ChatChunk] = []
        for i, candidate in enumerate(parsed.get("candidates") or ()):
            spent = usage(self._usage) if self._usage is not None else None
            failure = finish_error(candidate, spent, parsed, self._deployment)
            self._failure = self._failure or failure
            out += self._candidate(candidate, candidate.get("index", i), failure is None)
        return out

    def _candidate(
        self, candidate: Mapping[str, Any], index: int, answered: bool
    ) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        if index not in self._finished:
            self._finished[index] = False
            self._calls[index] = 0
            out.append(self._chunk(index, Delta(role="assistant")))
        lp = logprobs(candidate)
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                out += self._tool_call(part, index)
            elif isinstance(part.get("text"), str) and part["text"]:
                key = "reasoning_content" if part.get("thought") else "content"
                out.append(self._chunk(index, Delta(**{key: part["text"]}), logprobs=lp))
                lp = None
        native = candidate.get("finishReason")
        if native:
            self._finished[index] = True
        if native and answered:
            reason = finish_reason(native, self._calls[index] > 0)
            out.append(
                self._chunk(
                    index, Delta(), finish_reason=reason, logprobs=lp, native_finish_reason=native
                )
            )
        return out

    def _tool_call(self, part: Mapping[str, Any], index: int) -> list[ChatChunk]:
        """Gemini sends each call whole; it goes out as OpenAI does: id, type and name with
        empty arguments first, then the arguments."""
        n = self._calls[index]
        self._calls[index] = n + 1
        call = tool_call(part, self._id, n)
        first = ToolCallDelta(
            index=n,
            id=call.id,
            type="function",
            function=FunctionCallDelta(name=call.function.name, arguments=""),
            **(call.model_extra or {}),
        )
        rest = ToolCallDelta(index=n, function=FunctionCallDelta(arguments=call.function.arguments))
        return [
            self._chunk(index, Delta(tool_calls=[first])),
            self._chunk(index, Delta(tool_calls=[rest])),
        ]

    def finish(self) -> list[ChatChunk]:
        if self._failure is not None:
            raise self._failure
        if not self._finished or not all(self._finished.values()):
            raise APIConnectionError(
                "the stream ended before the answer was complete (no finishReason)",
                provider=self._deployment.provider,
                model=self._deployment.model,
            )
        if self._usage is None:
            return []
        return [
            ChatChunk(
                id=self._id,
                created=self._created,
                model=self._model,
                choices=[],
                usage=usage(self._usage),
            )
        ]
