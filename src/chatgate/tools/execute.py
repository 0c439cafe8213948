"""One tool call, from the model's request to the result it reads, never raising: an unknown
tool, bad arguments, a refusal, a failure or a timeout each become a result with a status.

The result the model sees is a JSON object: ``{"status": "ok", "result": ...}``;
``partial`` adds a ``note`` (e.g. the truncation notice), and ``error`` / ``denied`` /
``timeout`` carry an ``error`` text instead of a result.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson
import pydantic

from chatgate.memory.tokens import count_text_tokens
from chatgate.store.records import IdempotencyStore
from chatgate.tools.definition import Tool, ToolContext, ToolDenied, ToolResult
from chatgate.types import ToolCall

__all__ = ["CallSettings", "Status", "ToolDecision", "execute_call", "idempotency_key"]

Status = Literal["ok", "empty", "partial", "denied", "error", "timeout"]
_STATUSES: frozenset[str] = frozenset(get_args(Status))
Authorize = Callable[[ToolContext, Tool, dict[str, Any]], bool | Awaitable[bool | None] | None]


@dataclass(frozen=True)
class ToolDecision:
    """What happened to one call the model asked for."""

    call_id: str
    tool: str
    arguments: str  # as the model wrote them
    args: dict[str, Any] | None  # validated, None when they were not valid
    status: Status
    duration_ms: float
    content: str  # the result message the model reads
    result_tokens: int
    error: str | None = None
    idempotency_key: str | None = None
    replayed: bool = False  # a side effect already done: its recorded result was reused


@dataclass(frozen=True)
class CallSettings:
    model: str
    tools: Mapping[str, Tool]
    timeout: float
    max_result_chars: int
    authorize: Authorize | None
    store: IdempotencyStore | None
    conversation_id: str | None
    data: Mapping[str, Any]


def idempotency_key(conversation_id: str, tool: str, canonical_args: str) -> str:
    raw = orjson.dumps([conversation_id, tool, canonical_args])
    return hashlib.sha256(raw).hexdigest()


def _json(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _envelope(status: Status, **fields: Any) -> str:
    return orjson.dumps({"status": status, **fields}, default=_json).decode()


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict | tuple) and not value)


def render(value: Any, max_chars: int) -> tuple[Status, str]:
    """A tool's return value as the model's result text, capped at ``max_chars``."""
    status: Status | None = None
    note = None
    if isinstance(value, ToolResult):
        status, note, value = value.status, value.note, value.content
    if status == "error":
        return "error", _envelope("error", error=str(value))
    if _is_empty(value):
        extra = {"note": note} if note else {}
        return "empty", _envelope(status or "empty", result=value, **extra)
    text = value if isinstance(value, str) else orjson.dumps(value, default=_json).decode()
    if len(text) > max_chars:
        notice = f"truncated: showing the first {max_chars} of {len(text)} characters"
        note = f"{note}; {notice}" if note else notice
        return "partial", _envelope("partial", result=text[:max_chars], note=note)
    status = status or "ok"
    extra = {"note": note} if note else {}
    return status, _envelope(status, result=value, **extra)


async def _authorize(settings: CallSettings, ctx: ToolContext, t: Tool, args: Any) -> str | None:
    """None when allowed, else the reason for the refusal."""
    if settings.authorize is None:
        return None
    try:
        verdict = settings.authorize(ctx, t, args)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except ToolDenied as exc:
        return str(exc) or "not authorized"
    return "not authorized" if verdict is False else None


async def _invoke(t: Tool, kwargs: dict[str, Any], timeout: float) -> Any:
    if t.is_async:
        return await asyncio.wait_for(t.fn(**kwargs), timeout)
    # A sync tool runs in a thread; on timeout the thread cannot be stopped, only abandoned.
    return await asyncio.wait_for(asyncio.to_thread(t.fn, **kwargs), timeout)


async def _run(
    t: Tool, kwargs: dict[str, Any], settings: CallSettings
) -> tuple[Status, str, str | None]:
    """(status, result text, error text or None)."""
    timeout = t.timeout if t.timeout is not None else settings.timeout
    try:
        value = await _invoke(t, kwargs, timeout)
    except TimeoutError:
        error = f"{t.name} timed out after {timeout:g}s"
        return "timeout", _envelope("timeout", error=error), error
    except Exception as exc:  # a tool's failure is a result the model reads, not a crash
        error = f"{t.name} failed: {type(exc).__name__}: {exc}"
        return "error", _envelope("error", error=error), error
    status, content = render(value, settings.max_result_chars)
    return status, content, None


def _validation_text(exc: pydantic.ValidationError) -> str:
    problems = [
        f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    ]
    return "invalid arguments: " + "; ".join(problems)


async def execute_call(call: ToolCall, round_no: int, settings: CallSettings) -> ToolDecision:
    started = time.perf_counter()
    name, raw = call.function.name, call.function.arguments

    def decide(status: Status, content: str, **kw: Any) -> ToolDecision:
        return ToolDecision(
            call_id=call.id,
            tool=name,
            arguments=raw,
            status=status,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            content=content,
            result_tokens=count_text_tokens(settings.model, content),
            **{"args": None, **kw},
        )

    t = settings.tools.get(name)
    if t is None:
        allowed = ", ".join(sorted(settings.tools)) or "none"
        error = f"{name!r} is not an available tool (available: {allowed})"
        return decide("denied", _envelope("denied", error=error), error=error)
    try:
        parsed = t.args_model.model_validate_json(raw or "{}")
    except pydantic.ValidationError as exc:
        error = _validation_text(exc)
        return decide("error", _envelope("error", error=error), error=error)
    args = parsed.model_dump(mode="json")
    key = canonical = None
    if t.side_effect and settings.conversation_id is not None:
        canonical = orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()
        key = idempotency_key(settings.conversation_id, name, canonical)
    ctx = ToolContext(settings.conversation_id, round_no, call.id, key, settings.data)
    if (reason := await _authorize(settings, ctx, t, args)) is not None:
        return decide("denied", _envelope("denied", error=reason), args=args, error=reason)
    kwargs = {field: getattr(parsed, field) for field in type(parsed).model_fields}
    if t.context_param is not None:
        kwargs[t.context_param] = ctx
    if key is None or settings.store is None:
        status, content, failure = await _run(t, kwargs, settings)
        return decide(status, content, args=args, error=failure)
    assert canonical is not None
    return await _once(t, kwargs, settings, key, canonical, decide)


async def _once(
    t: Tool,
    kwargs: dict[str, Any],
    settings: CallSettings,
    key: str,
    canonical: str,
    decide: Callable[..., ToolDecision],
) -> ToolDecision:
    """A side-effect call: run only if no earlier run claimed its key; else replay."""
    assert settings.store is not None
    assert settings.conversation_id is not None
    args = orjson.loads(canonical)
    earlier = await settings.store.claim(
        key, conversation_id=settings.conversation_id, tool=t.name, arguments=canonical
    )
    if earlier is None:
        status, content, error = await _run(t, kwargs, settings)
        await settings.store.finish(key, status=status, content=content)
        return decide(status, content, args=args, error=error, idempotency_key=key)
    if earlier.state == "done" and earlier.status in _STATUSES and earlier.content is not None:
        return decide(earlier.status, earlier.content, args=args, idempotency_key=key,
                      replayed=True)  # fmt: skip
    error = (
        f"{t.name} with these arguments was started before and its outcome is unknown; "
        "it is not repeated, to avoid doing it twice"
    )
    return decide("error", _envelope("error", error=error), args=args, error=error,
                  idempotency_key=key)  # fmt: skip
