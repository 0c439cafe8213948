"""What one routed call carries across its model groups, and the small helpers its attempts
share: the token estimate for buckets, per-attempt timeouts within the deadline, and how a
deployment's state reads in an error message."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from chatgate.router.deployments import RoutedDeployment
from chatgate.router.policy import disabled_state
from chatgate.router.state import Stats
from chatgate.transport.http import DEFAULT_TIMEOUTS, Timeouts
from chatgate.types import Attempt, ChatRequest

if TYPE_CHECKING:
    from chatgate.router.runtime import Runtime

__all__ = ["CallContext", "bounded", "describe", "estimate_tokens", "prompt_bytes"]

_PER_MESSAGE_BYTES = 16  # role, separators: what the JSON of a message adds to its text
_IMAGE_BYTES = 1024  # ~255 tokens: OpenAI's low-detail price plus tiles, roughly


@dataclass(slots=True)
class CallContext:
    """The deadline and the attempt log of one routed call, across its groups."""

    deadline: float
    timeout: float
    num_retries: int
    tags: frozenset[str]
    sync: bool = False
    raise_on_truncation: bool = False
    download_images: bool = False
    auto_prompt_cache: bool = False  # the caller's key opted in (providers/anthropic/cache_points)
    log: list[Attempt] = field(default_factory=list)
    stream_ended: bool = False
    _on_stream_end: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def begin(
        cls,
        runtime: Runtime,
        timeout: float | None,
        num_retries: int | None,
        tags: Sequence[str] | None,
        *,
        sync: bool = False,
        raise_on_truncation: bool = False,
        download_images: bool = False,
    ) -> CallContext:
        """A call starting now, with the router's settings where the caller gave none."""
        settings = runtime.settings
        timeout = timeout or settings.timeout
        return cls(
            deadline=runtime.now() + timeout,
            timeout=timeout,
            num_retries=settings.num_retries if num_retries is None else num_retries,
            tags=frozenset(tags or ()),
            sync=sync,
            raise_on_truncation=raise_on_truncation,
            download_images=download_images,
        )

    def time_left(self, runtime: Runtime) -> float:
        return self.deadline - runtime.now()

    def on_stream_end(self, callback: Callable[[], None]) -> None:
        if self.stream_ended:
            callback()
        else:
            self._on_stream_end.append(callback)

    def end_stream(self) -> None:
        self.stream_ended = True
        for callback in self._on_stream_end:
            callback()


def estimate_tokens(request: ChatRequest) -> int:
    """A quick estimate for TPM buckets and the context pre-check: 4 bytes of text per token
    for the prompt, plus the output limit; corrected by the actual usage afterwards (and the
    context check counts exactly when it gets close)."""
    return prompt_bytes(request) // 4 + (request.output_limit() or 0)


def prompt_bytes(request: ChatRequest) -> int:
    """About how much text the prompt is. It walks the messages' text instead of serializing
    them: this runs on every routed call."""
    size = 0
    for message in request.messages:
        size += _PER_MESSAGE_BYTES
        content = getattr(message, "content", None)
        if isinstance(content, str):
            size += len(content)
        elif content:
            for part in content:
                text = getattr(part, "text", None)
                size += len(text) if isinstance(text, str) else _IMAGE_BYTES
        # not getattr: a message type without the field (most) makes pydantic raise, ~2 us
        for call in message.__dict__.get("tool_calls") or ():
            size += len(call.function.name) + len(call.function.arguments)
    if request.tools:
        size += len(orjson.dumps([t.model_dump(exclude_none=True) for t in request.tools]))
    return size


def bounded(timeouts: Timeouts | None, left: float) -> Timeouts:
    """A deployment's timeouts, cut to what is left of the call's deadline."""
    base = timeouts or DEFAULT_TIMEOUTS
    # Not dataclasses.replace: it runs on every attempt and costs ~10x the constructor.
    return Timeouts(connect=min(base.connect, left), read=base.read, total=min(base.total, left))


def describe(d: RoutedDeployment, s: Stats, now: float) -> str:
    if (disabled := disabled_state(s, now)) is not None:
        state = disabled
    elif s.cooldown_until > now:
        why = f" after {s.last_error}" if s.last_error else ""
        state = f"cooling down {s.cooldown_until - now:.1f}s more{why}"
    elif s.probing:
        state = "its recovery probe is in flight"
    elif d.limits.max_parallel is not None and s.in_flight >= d.limits.max_parallel:
        state = f"{s.in_flight}/{d.limits.max_parallel} requests in flight (max_parallel_requests)"
    elif s.rpm_left is not None and s.rpm_left < 1:
        state = f"RPM limit {d.limits.rpm} reached"
    elif s.tpm_left is not None:
        state = f"TPM limit {d.limits.tpm} reached ({s.tpm_left:.0f} left)"
    else:
        state = "available"
    return f"{d.id} ({d.model}): {state}"
