"""One model group's share of a routed call: pick a deployment, try it, and on failure decide
between another deployment, a backoff, a wait for a cooldown, or giving up.

What one attempt sends is the call's ``Job`` (a chat request, an embedding request): the
runner knows deployments, limits, cooldowns and retries, the job knows its payload."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from chatgate.errors import (
    APITimeoutError,
    ChatgateError,
    ContextWindowExceededError,
    DeploymentDisabledError,
    NoDeploymentAvailableError,
    RateLimitError,
)
from chatgate.meta import tries
from chatgate.router.affinity import affinity_for
from chatgate.router.call import CallContext, describe
from chatgate.router.deployments import RoutedDeployment
from chatgate.router.policy import (
    Fault,
    backoff,
    classify,
    cooldown_for,
    disabled_by,
    disabled_state,
    failure_reason,
)
from chatgate.router.runtime import Runtime
from chatgate.router.state import MemoryState, Stats
from chatgate.router.strategies import Pick, warm_first
from chatgate.telemetry import spans
from chatgate.types import Attempt, ResponseMeta

__all__ = ["Answer", "GroupRunner", "Job", "correction"]

_SHARED_POLL_S = 0.05  # shared state: how often a waiting call looks for a slot freed elsewhere

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
A = TypeVar("A", bound="Answer")


class _Counted(Protocol):
    @property
    def total_tokens(self) -> int: ...


class Answer(Protocol):
    """A whole answer: its meta is stamped, its usage corrects the TPM estimate."""

    @property
    def meta(self) -> ResponseMeta: ...

    @property
    def usage(self) -> _Counted | None: ...


class Job(Protocol[R_co]):
    """What a routed call sends. ``attempt`` runs with a slot reserved on ``d`` and must
    release it (``runner.release``) once, however it ends; ``runner.whole`` does all that
    for an answer that arrives whole."""

    @property
    def model(self) -> str:
        """The model_list name asked for."""
        ...

    def estimate(self) -> int:
        """Tokens to reserve from TPM buckets (and to compare with context windows)."""
        ...

    def counted(self, model: str) -> int | None:
        """The exact count with ``model``'s tokenizer when near a context window; None when
        context windows do not apply (no pre-call check)."""
        ...

    def attempt(
        self, runner: GroupRunner, d: RoutedDeployment, call: CallContext, tokens: int, left: float
    ) -> Awaitable[R_co]: ...


class GroupRunner:
    def __init__(
        self, name: str, deployments: list[RoutedDeployment], pick: Pick, runtime: Runtime
    ) -> None:
        self.name = name
        self.deployments = deployments
        self.ids = [d.id for d in deployments]
        self._pick = pick
        self.runtime = runtime
        self._needs_tokens = any(d.limits.tpm or d.context_window for d in deployments)
        self._tagged = any(d.tags for d in deployments)
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.affinity = affinity_for(runtime.settings, runtime.state)

    async def run(self, job: Job[R], call: CallContext, *, can_fall_back: bool) -> R:
        router = self.runtime
        tokens = job.estimate() if self._needs_tokens else 0
        retries = 0
        tried: set[str] = set()
        waiting_since: float | None = None  # for room under the limits; limit_wait in total
        prefixes = self.affinity.hashes(job)
        warm = await self.affinity.warm(self.name, prefixes, router.now()) if prefixes else []
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
            usable = self._usable(stats, call, tokens, job)
            ready = [(d, s) for d, s in usable if self._has_room(d, s, tokens, now)]
            if not ready:
                waiting_since = now if waiting_since is None else waiting_since
                await self._wait_for_room(usable, now, left, can_fall_back, now - waiting_since)
                continue
            waiting_since = None
            fresh = [c for c in ready if c[0].id not in tried] or ready
            chosen = self._pick(warm_first(fresh, warm) if warm else fresh, router.rng)[0]
            if await router.state.reserve(chosen.id, chosen.limits, tokens, now) > 0:
                continue  # another caller took the last slot meanwhile: look again
            sent = time.perf_counter()
            marked = spans.attempt(chosen.id, self.name, len(call.log) + 1)
            try:
                if marked is None:  # nobody collects spans
                    result = await job.attempt(self, chosen, call, tokens, left)
                else:
                    with marked:
                        result = await job.attempt(self, chosen, call, tokens, left)
            except ChatgateError as exc:
                took = (time.perf_counter() - sent) * 1000.0
                wait = await self._after_failure(chosen, exc, call, retries, tried, usable, took)
                retries += 1
                if wait > 0:
                    await router.sleep(wait)
                continue
            self.affinity.remember(self.name, prefixes, chosen.id, router.now(), self.spawn)
            return result

    # -- choosing --------------------------------------------------------------------------

    def _usable(
        self, stats: list[Stats], call: CallContext, tokens: int, job: Job[Any]
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
        checks = self.runtime.settings.enable_pre_call_checks
        if not (checks and windows) or tokens <= min(windows) // 2:
            return usable
        counted = job.counted(self.deployments[0].model)  # near a limit: exactly, not by bytes
        if counted is None:
            return usable
        fits = [(d, s) for d, s in usable if not d.context_window or counted <= d.context_window]
        if not fits:
            sizes = ", ".join(f"{d.id}: {d.context_window}" for d, _ in usable)
            raise ContextWindowExceededError(
                f"the request needs {counted} tokens (counted prompt + max_tokens), "
                f"more than any context window of {self.name!r} ({sizes})",
                model=self.name,
                status_code=400,
            )
        return fits

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
        settings = self.runtime.settings
        waiting = [(d, s) for d, s in usable if disabled_by(s, now) is None]
        if not waiting:  # their cooldowns would end in the same refusal: fail now
            raise self._disabled(usable, now)
        all_cooling = all(s.cooldown_until > now for _, s in usable)
        earliest = math.inf
        for d, s in waiting:
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
            await self.runtime.sleep(earliest)
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

    def _disabled(
        self, usable: Sequence[tuple[RoutedDeployment, Stats]], now: float
    ) -> DeploymentDisabledError:
        if len(usable) == 1:
            [(d, s)] = usable
            what = f"deployment {d.id} ({d.model}) of {self.name!r} is {disabled_state(s, now)}"
        else:
            states = "; ".join(describe(d, s, now) for d, s in usable)
            what = f"every deployment of {self.name!r} is disabled: {states}"
        return DeploymentDisabledError(
            what, model=self.name, status_code=DeploymentDisabledError.status_code
        )

    async def _capacity_freed(self, timeout: float) -> bool:
        """Wait until a request of this group ends; False if none did within ``timeout``.
        With shared state a slot may free in another process, which wakes nobody here: then
        True after each short poll too, so the caller looks again."""
        shared = not isinstance(self.runtime.state, MemoryState)
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

    async def whole(
        self, d: RoutedDeployment, call: CallContext, tokens: int, answer: Awaitable[A]
    ) -> A:
        """One attempt whose answer arrives whole: wait for it, then free the slot, correct
        the TPM estimate by its usage, record its latency, log and stamp it."""
        started = time.perf_counter()
        try:
            result = await answer
        except BaseException:
            await self.release(d, 0)
            raise
        router = self.runtime
        took = time.perf_counter() - started
        await router.state.record_success(d.id, took, router.now())
        await self.release(d, correction(result, tokens))
        call.log.append(Attempt(deployment=d.id, model=d.model, latency_ms=took * 1000.0))
        self.stamp(result.meta, d, call)
        return result

    async def release(self, d: RoutedDeployment, correction: int) -> None:
        await self.runtime.state.release(d.id, d.limits, correction, self.runtime.now())
        self._wake()

    async def _after_failure(
        self,
        d: RoutedDeployment,
        exc: ChatgateError,
        call: CallContext,
        retries: int,
        tried: set[str],
        usable: Sequence[tuple[RoutedDeployment, Stats]],
        took_ms: float,
    ) -> float:
        """Record the failure; return how long to wait before the next try, or raise."""
        router = self.runtime
        now = router.now()
        fault = classify(exc)
        attempt = Attempt(
            deployment=d.id,
            model=d.model,
            error=type(exc).__name__,
            status_code=exc.status_code,
            message=exc.message,
            latency_ms=took_ms,
        )
        call.log.append(attempt)
        if fault in (Fault.RETRYABLE, Fault.DEPLOYMENT):
            health = router.health
            cool = cooldown_for(exc, health.cooldown)
            reason = failure_reason(exc)
            await router.state.record_failure(d.id, reason, health, now, cool_for=cool)
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

    def stamp(self, meta: ResponseMeta, d: RoutedDeployment, call: CallContext) -> None:
        meta.attempts = tries(call.log)
        meta.attempt_log = list(call.log)
        meta.deployment = d.id
        meta.model_name = self.name

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)


def correction(answer: Answer, estimated: int) -> int:
    """Actual minus estimated tokens, for the TPM bucket (0 when either is unknown)."""
    if not estimated or answer.usage is None:
        return 0
    return (answer.usage.total_tokens or 0) - estimated


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
