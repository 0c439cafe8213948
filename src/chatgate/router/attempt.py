"""One model group's share of a routed call: pick a deployment, try it, and on failure decide
between another deployment, a backoff, a wait for a cooldown, or giving up."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from chatgate.client import inline_images_for, open_stream, send
from chatgate.cost.tokens import count_tokens
from chatgate.errors import (
    APITimeoutError,
    ChatgateError,
    ContextWindowExceededError,
    NoDeploymentAvailableError,
    RateLimitError,
)
from chatgate.router.call import CallContext, bounded, describe, estimate_tokens
from chatgate.router.deployments import RoutedDeployment
from chatgate.router.policy import Fault, backoff, classify, cooldown_for
from chatgate.router.state import MemoryState, Stats
from chatgate.router.strategies import Pick
from chatgate.stream import ChatStream
from chatgate.transport.http import Timeouts
from chatgate.types import Attempt, ChatRequest, ChatResponse, ResponseMeta

if TYPE_CHECKING:
    from chatgate.router.router import Router

__all__ = ["GroupRunner"]

_SHARED_POLL_S = 0.05  # shared state: how often a waiting call looks for a slot freed elsewhere


class GroupRunner:
    def __init__(
        self, name: str, deployments: list[RoutedDeployment], pick: Pick, router: Router
    ) -> None:
        self.name = name
        self.deployments = deployments
        self.ids = [d.id for d in deployments]
        self._pick = pick
        self._router = router
        self._needs_tokens = any(d.limits.tpm or d.context_window for d in deployments)
        self._tagged = any(d.tags for d in deployments)
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self, request: ChatRequest, call: CallContext, *, can_fall_back: bool
    ) -> ChatResponse | ChatStream:
        router = self._router
        tokens = estimate_tokens(request) if self._needs_tokens else 0
        retries = 0
        tried: set[str] = set()
        waiting_since: float | None = None  # for room under the limits; limit_wait in total
        while True:
            now = router.now()
            left = call.deadline - now
            if left <= 0:
                raise APITimeoutError(
                    f"the call's deadline ({call.timeout:g}s) passed after "
                    f"{len(call.log)} attempt(s)",
                    model=self.name,
                )
            stats = await router.state.view(self.ids, now)
            usable = self._usable(stats, call, tokens, request)
            ready = [(d, s) for d, s in usable if self._has_room(d, s, tokens, now)]
            if not ready:
                waiting_since = now if waiting_since is None else waiting_since
                await self._wait_for_room(usable, now, left, can_fall_back, now - waiting_since)
                continue
            waiting_since = None
            fresh = [c for c in ready if c[0].id not in tried] or ready
            chosen = self._pick(fresh, router.rng)[0]
            if await router.state.reserve(chosen.id, chosen.limits, tokens, now) > 0:
                continue  # another caller took the last slot meanwhile: look again
            try:
                return await self._attempt(chosen, request, call, tokens, left)
            except ChatgateError as exc:
                wait = await self._after_failure(chosen, exc, call, retries, tried, usable)
                retries += 1
                if wait > 0:
                    await router.sleep(wait)

    # -- choosing --------------------------------------------------------------------------

    def _usable(
        self, stats: list[Stats], call: CallContext, tokens: int, request: ChatRequest
    ) -> list[tuple[RoutedDeployment, Stats]]:
        wanted = call.tags if self._tagged else frozenset()  # tags route only where set
        usable = [(d, s) for d, s in zip(self.deployments, stats, strict=True) if wanted <= d.tags]
        if not usable:
            tags = ", ".join(sorted(wanted))
            raise NoDeploymentAvailableError(
                f"no deployment of {self.name!r} carries every requested tag ({tags})",
                model=self.name,
                retryable=False,
            )
        windows = [d.context_window for d, _ in usable if d.context_window]
        if self._router.settings.enable_pre_call_checks and windows and tokens > min(windows) // 2:
            tokens = self._counted(request)  # near a limit: count exactly, not by bytes
            fits = [(d, s) for d, s in usable if not d.context_window or tokens <= d.context_window]
            if not fits:
                sizes = ", ".join(f"{d.id}: {d.context_window}" for d, _ in usable)
                raise ContextWindowExceededError(
                    f"the request needs {tokens} tokens (counted prompt + max_tokens), "
                    f"more than any context window of {self.name!r} ({sizes})",
                    model=self.name,
                    status_code=400,
                )
            usable = fits
        return usable

    def _counted(self, request: ChatRequest) -> int:
        """Prompt tokens as the first deployment's tokenizer counts them, plus max output."""
        prompt = count_tokens(self.deployments[0].model, request.messages, request.tools).tokens
        return prompt + (request.output_limit() or 0)

    @staticmethod
    def _has_room(d: RoutedDeployment, s: Stats, tokens: int, now: float) -> bool:
        if s.cooldown_until > now or s.probing:
            return False
        limits = d.limits
        if limits.max_parallel is not None and s.in_flight >= limits.max_parallel:
            return False
        if s.rpm_left is not None and s.rpm_left < 1:
            return False
        return not (limits.tpm and s.tpm_left is not None and s.tpm_left < min(tokens, limits.tpm))

    async def _wait_for_room(
        self,
        usable: Sequence[tuple[RoutedDeployment, Stats]],
        now: float,
        left: float,
        can_fall_back: bool,
        waited: float,
    ) -> None:
        """Wait for the first deployment to come back, or raise if it will not be soon
        enough (or a fallback group can serve instead of a cooling one). ``waited``: how long
        this call has waited for room already."""
        settings = self._router.settings
        all_cooling = all(s.cooldown_until > now for _, s in usable)
        earliest = math.inf
        for d, s in usable:
            if s.cooldown_until > now:
                earliest = min(earliest, s.cooldown_until - now)
            elif s.rpm_left is not None and d.limits.rpm and s.rpm_left < 1:
                earliest = min(earliest, (1 - s.rpm_left) * 60.0 / d.limits.rpm)
            elif s.tpm_left is not None and d.limits.tpm and not s.probing:
                earliest = min(earliest, 1.0)  # TPM refills continuously; look again soon
        limit = left if all_cooling else min(left, settings.limit_wait - waited)
        if (all_cooling and can_fall_back) or (earliest > limit and not math.isinf(earliest)):
            raise self._unavailable(usable, now, all_cooling, earliest)
        if not math.isinf(earliest):
            await self._router.sleep(earliest)
        elif not await self._capacity_freed(limit):  # a slot frees when a request ends
            raise self._unavailable(usable, now, all_cooling, earliest)

    def _unavailable(
        self,
        usable: Sequence[tuple[RoutedDeployment, Stats]],
        now: float,
        all_cooling: bool,
        earliest: float,
    ) -> ChatgateError:
        states = "; ".join(describe(d, s, now) for d, s in usable)
        cls = NoDeploymentAvailableError if all_cooling else RateLimitError
        return cls(
            f"no deployment of {self.name!r} can take the request now: {states}",
            model=self.name,
            status_code=cls.status_code,
            retry_after=None if math.isinf(earliest) else round(earliest, 3),
        )

    async def _capacity_freed(self, timeout: float) -> bool:
        """Wait until a request of this group ends; False if none did within ``timeout``.
        With shared state a slot may free in another process, which wakes nobody here: then
        True after each short poll too, so the caller looks again."""
        shared = not isinstance(self._router.state, MemoryState)
        wait = min(timeout, _SHARED_POLL_S) if shared else timeout
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(max(0.0, wait)):
                await future
        except TimeoutError:
            return wait < timeout
        finally:
            self._waiters.remove(future)
        return True

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.get_loop().call_soon_threadsafe(_resolve, future)

    # -- trying ----------------------------------------------------------------------------

    async def _attempt(
        self,
        d: RoutedDeployment,
        request: ChatRequest,
        call: CallContext,
        tokens: int,
        left: float,
    ) -> ChatResponse | ChatStream:
        router = self._router
        upstream = request.model_copy(update={"model": d.deployment.model})
        if call.download_images:
            upstream = await inline_images_for(upstream, d.deployment)
        timeouts = bounded(d.timeouts, left)
        started = time.perf_counter()
        if not request.stream:
            try:
                response = await send(
                    upstream,
                    d.deployment,
                    timeouts=timeouts,
                    raise_on_truncation=call.raise_on_truncation,
                )
            except BaseException:
                await self._release(d, 0)
                raise
            await router.state.record_success(d.id, time.perf_counter() - started, router.now())
            await self._release(d, _correction(response, tokens))
            call.log.append(Attempt(deployment=d.id, model=d.model))
            self._stamp(response.meta, d, call)
            return response
        ticket = _StreamTicket(self, d, call, tokens)
        stream = await self._open(upstream, d, call, timeouts, ticket)
        try:
            async with asyncio.timeout(left):
                await stream.prefetch()
        except TimeoutError:
            stream.close()
            await self._release(d, 0)
            raise APITimeoutError(
                "no first chunk before the call's deadline", model=d.model
            ) from None
        except BaseException:
            stream.close()
            await self._release(d, 0)
            raise
        ttft = (
            stream.ttft_ms / 1000.0 if stream.ttft_ms is not None else time.perf_counter() - started
        )
        await router.state.record_success(d.id, ttft, router.now())
        call.log.append(Attempt(deployment=d.id, model=d.model))
        stream.attempts = len(call.log)
        ticket.hand_over()
        return stream

    async def _open(
        self,
        upstream: ChatRequest,
        d: RoutedDeployment,
        call: CallContext,
        timeouts: Timeouts,
        ticket: _StreamTicket,
    ) -> ChatStream:
        try:
            return await open_stream(
                upstream,
                d.deployment,
                timeouts=timeouts,
                sync=call.sync,
                raise_on_truncation=call.raise_on_truncation,
                on_finish=ticket.finished,
            )
        except BaseException:
            await self._release(d, 0)
            raise

    async def _release(self, d: RoutedDeployment, correction: int) -> None:
        await self._router.state.release(d.id, d.limits, correction, self._router.now())
        self._wake()

    async def _after_failure(
        self,
        d: RoutedDeployment,
        exc: ChatgateError,
        call: CallContext,
        retries: int,
        tried: set[str],
        usable: Sequence[tuple[RoutedDeployment, Stats]],
    ) -> float:
        """Record the failure; return how long to wait before the next try, or raise."""
        router = self._router
        now = router.now()
        fault = classify(exc)
        attempt = Attempt(
            deployment=d.id, model=d.model, error=type(exc).__name__, status_code=exc.status_code
        )
        call.log.append(attempt)
        if fault in (Fault.RETRYABLE, Fault.DEPLOYMENT):
            health = router.health
            cool = cooldown_for(exc, health.cooldown)
            await router.state.record_failure(d.id, type(exc).__name__, health, now, cool_for=cool)
        if fault is not Fault.RETRYABLE or retries >= call.num_retries:
            raise exc
        tried.add(d.id)
        others = any(
            x.id not in tried and s.cooldown_until <= now and not s.probing for x, s in usable
        )
        settings = router.settings
        wait = (
            0.0
            if others
            else backoff(
                retries,
                exc.retry_after,
                settings.retry_base_delay,
                settings.retry_max_delay,
                router.rng,
            )
        )
        if now + wait >= call.deadline:
            raise exc  # waiting would pass the deadline: fail now, with the real reason
        attempt.wait_s = wait
        return wait

    def _stamp(self, meta: ResponseMeta, d: RoutedDeployment, call: CallContext) -> None:
        meta.attempts = len(call.log)
        meta.attempt_log = list(call.log)
        meta.deployment = d.id
        meta.model_name = self.name

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)


class _StreamTicket:
    """Bookkeeping for a stream that ends long after the routing call returned: release its
    slot, correct the TPM estimate, record a mid-stream failure, stamp the final meta."""

    def __init__(self, runner: GroupRunner, d: RoutedDeployment, call: CallContext, tokens: int):
        self._runner = runner
        self._d = d
        self._call = call
        self._tokens = tokens
        self._handed_over = False
        self._pending: tuple[ChatResponse | None, BaseException | None] | None = None

    def hand_over(self) -> None:
        """The stream now belongs to the caller; settle an end that came during prefetch."""
        self._handed_over = True
        if self._pending is not None:
            self.finished(*self._pending)

    def finished(self, response: ChatResponse | None, error: BaseException | None) -> None:
        if not self._handed_over:  # a failure in prefetch is the router's to handle
            self._pending = (response, error)
            return
        runner, d, call = self._runner, self._d, self._call
        if response is not None:
            runner._stamp(response.meta, d, call)
        runner.spawn(self._settle(response, error))
        call.end_stream()

    async def _settle(self, response: ChatResponse | None, error: BaseException | None) -> None:
        router = self._runner._router
        if isinstance(error, ChatgateError) and error.retryable:
            await router.state.record_failure(
                self._d.id, type(error).__name__, router.health, router.now()
            )
        correction = _correction(response, self._tokens) if response is not None else 0
        await self._runner._release(self._d, correction)


def _correction(response: ChatResponse, estimated: int) -> int:
    if not estimated or response.usage is None:
        return 0
    return (response.usage.total_tokens or 0) - estimated


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
