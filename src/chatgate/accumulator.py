"""StreamAccumulator: folds stream chunks into the final ChatResponse (content, reasoning,
refusal, tool calls reassembled from fragments by index, finish_reason, usage, and whatever
provider extras the chunks carried). Pure and I/O-free; ChatStream feeds it."""

from __future__ import annotations

from typing import Any

import pydantic

from chatgate.types import (
    ChatChunk,
    ChatResponse,
    Choice,
    FunctionCall,
    ResponseMessage,
    ToolCall,
    Usage,
)

__all__ = ["StreamAccumulator"]

_DELTA_TEXT = frozenset({"content", "reasoning_content", "refusal"})
_CHOICE_FIELDS = frozenset({"index", "delta", "finish_reason", "logprobs"})
_TEXT = (str, type(None))
_EMPTY: dict[str, Any] = {}
_NO_CHOICES: list[Any] = []
_USAGE = Usage.__pydantic_validator__.validate_python


class _ChoiceState:
    __slots__ = (
        "choice_extras",
        "content",
        "extras",
        "finish_reason",
        "logprobs",
        "reasoning",
        "refusal",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, list[Any]] = {}  # index -> [id, name, [arg parts], extras]
        self.finish_reason: str | None = None
        self.extras: dict[str, Any] = {}  # provider delta fields, e.g. Anthropic thinking_blocks
        self.choice_extras: dict[str, Any] = {}  # provider choice fields (native_finish_reason)
        self.logprobs: dict[str, Any] | None = None  # {"content": [...], "refusal": [...]}

    def add_extras(self, extra: dict[str, Any]) -> None:
        _merge(self.extras, extra)

    def add_logprobs(self, logprobs: dict[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        _merge(self.logprobs, logprobs)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Lists are extended and strings concatenated across chunks; anything else replaced."""
    for key, value in extra.items():
        before = into.get(key)
        if isinstance(value, list) and isinstance(before, list):
            before.extend(value)
        elif isinstance(value, str) and isinstance(before, str):
            into[key] = before + value
        elif value is not None or key not in into:
            into[key] = list(value) if isinstance(value, list) else value


class StreamAccumulator:
    """Folds chunks into one ChatResponse; no I/O."""

    __slots__ = ("_choices", "created", "id", "model", "system_fingerprint", "usage")

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceState] = {}
        self.id = ""
        self.model = ""
        self.created = 0
        self.system_fingerprint: str | None = None
        self.usage: Usage | None = None

    def add(self, chunk: ChatChunk) -> None:
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        self.system_fingerprint = self.system_fingerprint or chunk.system_fingerprint
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            state = self._choices.get(choice.index)
            if state is None:
                state = self._choices[choice.index] = _ChoiceState()
            delta = choice.delta
            if delta.content:
                state.content.append(delta.content)
            if delta.reasoning_content:
                state.reasoning.append(delta.reasoning_content)
            if delta.refusal:
                state.refusal.append(delta.refusal)
            if delta.__pydantic_extra__:  # model_extra, without the property's call
                state.add_extras(delta.__pydantic_extra__)
            for call in delta.tool_calls or ():
                slot = state.tool_calls.setdefault(call.index, [None, None, [], {}])
                slot[0] = slot[0] or call.id
                if call.__pydantic_extra__:  # provider fields, e.g. Gemini's thought signature
                    slot[3].update(call.__pydantic_extra__)
                if call.function is not None:
                    slot[1] = slot[1] or call.function.name
                    if call.function.arguments:
                        slot[2].append(call.function.arguments)
            if choice.finish_reason is not None:
                state.finish_reason = choice.finish_reason
            if choice.logprobs is not None:
                state.add_logprobs(choice.logprobs)
            if choice.__pydantic_extra__:
                state.choice_extras.update(choice.__pydantic_extra__)

    def add_wire(self, data: dict[str, Any]) -> bool:
        """``add`` for a chunk's parsed JSON, without building a ChatChunk (see WireChunk).

        Only the common shape is folded here: every field the fold reads has the type
        validation would give it, and no choice carries logprobs, tool calls or provider
        extras. For anything else this returns False having changed nothing, and the caller
        folds the validated chunk with ``add`` (which also raises the right error for a
        broken one)."""
        header = data.get("id", ""), data.get("model", ""), data.get("created", 0)
        fingerprint = data.get("system_fingerprint")
        choices = data.get("choices", _NO_CHOICES)
        if (
            type(header[0]) is not str
            or type(header[1]) is not str
            or type(header[2]) is not int
            or type(fingerprint) not in _TEXT
            or type(data.get("object", "")) is not str
            or type(choices) is not list
        ):
            return False
        for choice in choices:
            if type(choice) is not dict or not _CHOICE_FIELDS.issuperset(choice):
                return False
            delta = choice.get("delta", _EMPTY)
            if (
                type(delta) is not dict
                or type(choice.get("index", 0)) is not int
                or type(choice.get("finish_reason")) not in _TEXT
                or choice.get("logprobs") is not None
            ):
                return False
            for key, value in delta.items():
                if key == "role":
                    if value is not None and value != "assistant":
                        return False
                elif key not in _DELTA_TEXT or type(value) not in _TEXT:
                    return False
        usage = data.get("usage")
        if usage is not None:
            try:
                usage = _USAGE(usage)
            except pydantic.ValidationError:
                return False
        # checked: now fold, exactly as add() does
        self.id = self.id or header[0]
        self.model = self.model or header[1]
        self.created = self.created or header[2]
        self.system_fingerprint = self.system_fingerprint or fingerprint
        if usage is not None:
            self.usage = usage
        for choice in choices:
            index = choice.get("index", 0)
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _ChoiceState()
            delta = choice.get("delta", _EMPTY)
            if content := delta.get("content"):
                state.content.append(content)
            if reasoning := delta.get("reasoning_content"):
                state.reasoning.append(reasoning)
            if refusal := delta.get("refusal"):
                state.refusal.append(refusal)
            if (finish := choice.get("finish_reason")) is not None:
                state.finish_reason = finish
        return True

    @property
    def finish_reason(self) -> str | None:
        first = self._choices.get(0)
        return first.finish_reason if first else None

    def response(self) -> ChatResponse:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            calls = [
                ToolCall(
                    id=cid or f"call_{index}_{i}",
                    function=FunctionCall(name=name or "", arguments="".join(args)),
                    **extra,
                )
                for i, (cid, name, args, extra) in sorted(state.tool_calls.items())
            ]
            message = ResponseMessage(
                content="".join(state.content) if state.content else None,
                reasoning_content="".join(state.reasoning) if state.reasoning else None,
                refusal="".join(state.refusal) if state.refusal else None,
                tool_calls=calls or None,
                **state.extras,
            )
            if state.logprobs is not None:
                state.choice_extras["logprobs"] = state.logprobs
            choices.append(
                Choice(
                    index=index,
                    message=message,
                    finish_reason=state.finish_reason,
                    **state.choice_extras,
                )
            )
        return ChatResponse(
            id=self.id,
            created=self.created,
            model=self.model,
            system_fingerprint=self.system_fingerprint,
            choices=choices,
            usage=self.usage,
        )
