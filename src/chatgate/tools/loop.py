"""``run_tools``: call the model, run the tools it asks for, send the results back, until it
answers without a tool call or ``max_rounds`` model calls have been made.

A round is one model call plus the tool calls it asked for, run concurrently. Calls asked
for in the last allowed round are not run: they are returned as ``pending_calls`` with
``stop_reason="max_rounds"``, and ``messages`` ends before them, so it can be continued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from chatgate.accounting import Spend
from chatgate.chat_request import MessageLike
from chatgate.errors import InvalidRequestError
from chatgate.routed import RouterLike, caller
from chatgate.store.defaults import idempotency_store
from chatgate.store.records import IdempotencyStore
from chatgate.tools.definition import Tool, make_tool
from chatgate.tools.execute import Authorize, CallSettings, ToolDecision, execute_call
from chatgate.transport.loop_thread import run_sync
from chatgate.types import (
    AssistantMessage,
    ChatResponse,
    ResponseMessage,
    ToolCall,
    ToolMessage,
    Usage,
)

__all__ = ["Round", "ToolRun", "arun_tools", "run_tools"]

StopReason = Literal["answered", "max_rounds"]


@dataclass(frozen=True)
class Round:
    index: int
    response: ChatResponse
    decisions: list[ToolDecision]

    @property
    def usage(self) -> Usage | None:
        return self.response.usage

    @property
    def cost(self) -> Decimal | None:
        return self.response.meta.cost


@dataclass(frozen=True)
class ToolRun:
    """How a tool loop ended: ``stop_reason``, the last assistant message, the transcript
    (input messages, tool turns, final answer), every round's decisions, and totals."""

    stop_reason: StopReason
    final_message: ResponseMessage | None
    messages: list[MessageLike]
    rounds: list[Round]
    pending_calls: list[ToolCall]
    usage: Usage
    cost: Decimal | None  # None when any call's price is unknown

    @property
    def content(self) -> str | None:
        return self.final_message.content if self.final_message else None

    @property
    def decisions(self) -> list[ToolDecision]:
        return [d for r in self.rounds for d in r.decisions]


def _registry(tools: Sequence[Tool | Callable[..., Any]]) -> dict[str, Tool]:
    if not tools:
        raise InvalidRequestError("tools must name at least one tool", param="tools")
    registry: dict[str, Tool] = {}
    for item in tools:
        t = item if isinstance(item, Tool) else make_tool(item)
        if t.name in registry:
            raise InvalidRequestError(f"two tools are named {t.name!r}", param="tools")
        registry[t.name] = t
    return registry


def _check(registry: Mapping[str, Tool], params: Mapping[str, Any], max_rounds: int,
           conversation_id: str | None) -> None:  # fmt: skip
    for name in ("tools", "stream", "response_model"):
        if params.get(name):
            raise InvalidRequestError(
                f"{name} cannot be passed to run_tools: tools are its own argument and the "
                "loop reads whole answers",
                param=name,
            )
    if max_rounds < 1:
        raise InvalidRequestError("max_rounds must be at least 1", param="max_rounds")
    writes = [t.name for t in registry.values() if t.side_effect]
    if writes and not conversation_id:
        raise InvalidRequestError(
            f"side-effect tools ({', '.join(writes)}) need conversation_id=... so each call "
            "runs at most once even across retries and restarts",
            param="conversation_id",
        )


async def arun_tools(
    model: str,
    messages: Sequence[MessageLike],
    tools: Sequence[Tool | Callable[..., Any]],
    *,
    max_rounds: int = 8,
    authorize: Authorize | None = None,
    tool_timeout: float = 30.0,
    max_result_chars: int = 20_000,
    conversation_id: str | None = None,
    store: IdempotencyStore | str | None = None,
    context: Mapping[str, Any] | None = None,
    router: RouterLike | None = None,
    **params: Any,
) -> ToolRun:
    """Run the model with ``tools`` until it answers; see docs/tools.md.

    ``authorize(context, tool, args)`` (sync or async) runs before every call: return False
    or raise ToolDenied("why") to refuse it. ``params`` go to every model call."""
    registry = _registry(tools)
    _check(registry, params, max_rounds, conversation_id)
    call = caller(router, params)  # with router=, model is one of its model names
    writes = any(t.side_effect for t in registry.values())
    settings = CallSettings(
        model=model,
        tools=registry,
        timeout=tool_timeout,
        max_result_chars=max_result_chars,
        authorize=authorize,
        store=idempotency_store(store) if writes else None,
        conversation_id=conversation_id,
        data=context or {},
    )
    definitions = [t.definition() for t in registry.values()]
    transcript: list[MessageLike] = list(messages)
    rounds: list[Round] = []
    spend = Spend()
    for index in range(1, max_rounds + 1):
        response = await call(model, transcript, tools=definitions, **params)
        spend.add(response)
        message = response.choices[0].message if response.choices else None
        calls = (message.tool_calls or []) if message else []
        reply = (
            AssistantMessage.model_validate(message.model_dump(exclude_none=True))
            if message
            else None
        )
        if not calls or index == max_rounds:
            rounds.append(Round(index, response, []))
            if not calls and reply is not None:
                transcript.append(reply)
            reason: StopReason = "max_rounds" if calls else "answered"
            return ToolRun(reason, message, transcript, rounds, calls, spend.usage,
                           spend.total_cost)  # fmt: skip
        assert reply is not None
        transcript.append(reply)
        decisions = await asyncio.gather(*(execute_call(c, index, settings) for c in calls))
        transcript += [ToolMessage(tool_call_id=d.call_id, content=d.content) for d in decisions]
        rounds.append(Round(index, response, list(decisions)))
    raise AssertionError("unreachable: the last round returns")


def run_tools(
    model: str,
    messages: Sequence[MessageLike],
    tools: Sequence[Tool | Callable[..., Any]],
    **kw: Any,
) -> ToolRun:
    """The blocking form of ``arun_tools`` (sync tools run in worker threads)."""
    result: ToolRun = run_sync(arun_tools(model, messages, tools, **kw))
    return result
