"""Running a batch: bounded concurrency through a Router, answers appended as they finish,
an optional cost cap that is never exceeded, and a clean stop (``interrupt``) that cancels
the requests in flight and leaves a valid output file to resume from."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanContext

from chatgate.batching.input import BatchInputError, BatchItem, Source, collect_items, where_of
from chatgate.batching.output import (
    LineHook,
    OutputFile,
    failure_line,
    load_existing,
    success_line,
)
from chatgate.batching.plan import CostCap, check_items, router_for
from chatgate.batching.provider.poll import PollPolicy
from chatgate.batching.provider.run import ProviderBatchRun
from chatgate.batching.route_tags import route_tags
from chatgate.batching.summary import BatchSummary
from chatgate.cost.budgets import Reservation
from chatgate.errors import ChatgateError, InvalidRequestError
from chatgate.router import Router
from chatgate.router.fallbacks import Allowed
from chatgate.telemetry import steps
from chatgate.transport.loop_thread import run_sync
from chatgate.types import ChatResponse

__all__ = ["BatchRun", "abatch", "batch"]

Progress = Callable[[BatchSummary], None]


class BatchRun:
    """One run. ``prepare()`` checks everything (raises BatchInputError, nothing sent), then
    ``await run()``; ``interrupt()`` (e.g. on SIGINT) stops it early."""

    def __init__(
        self,
        source: Source,
        output_path: str | Path,
        *,
        router: Router | None = None,
        concurrency: int = 8,
        max_cost: Decimal | None = None,
        retry_failed: bool = False,
        on_progress: Progress | None = None,
        on_line: LineHook | None = None,
        allowed: Allowed | None = None,
        tags: Collection[str] | None = None,
        batch_id: str | None = None,
        linked_to: SpanContext | None = None,
    ) -> None:
        """``allowed``: the model groups a caller may be served by, fallbacks included (the
        gateway's key allowlist); None: any. ``tags``: every line is routed only to
        deployments carrying all of them (a routed call's ``tags=``). Traced, each line is a
        trace of its own (``steps.batch_line``: ``batch_id`` on it), linked to ``linked_to``,
        by default the span current when the run starts."""
        self.tags = route_tags(tags)
        self._route_tags = tuple(sorted(self.tags))
        if concurrency < 1:
            raise InvalidRequestError("concurrency must be at least 1", param="concurrency")
        if max_cost is not None and max_cost < 0:
            raise InvalidRequestError("max_cost must be 0 or more (USD)", param="max_cost")
        self.batch_id = batch_id
        self._link = linked_to
        self.source = source
        self.output = Path(output_path)
        self.router = router
        self._own_router = router is None
        self.concurrency = concurrency
        self.cap = CostCap(Decimal(str(max_cost))) if max_cost is not None else None
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.on_line = on_line
        self.allowed = allowed
        self.summary = BatchSummary()
        self._pending: deque[BatchItem] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._interrupted = False
        self._error: BaseException | None = None

    def prepare(self) -> None:
        items, problems = collect_items(self.source)
        if self.router is None:
            self.router = router_for(items, problems)
        if self.router is not None:
            problems += check_items(self.router, items, self.cap, self.tags)
        if problems:
            raise BatchInputError(problems, where_of(self.source))
        existing = load_existing(self.output, retry_failed=self.retry_failed)
        kept = existing.succeeded | existing.failed
        self._pending = deque(i for i in items if i.custom_id not in kept)
        self.summary.total = len(items)
        self.summary.skipped = len(items) - len(self._pending)
        self.summary.repaired = existing.repaired

    def interrupt(self) -> None:
        """Start no more requests and cancel those in flight (their lines are not written;
        they run again on resume)."""
        self._interrupted = True
        self.summary.stopped = "interrupted"
        for task in self._tasks:
            task.cancel()

    async def run(self) -> BatchSummary:
        started = time.perf_counter()
        if self._link is None:
            self._link = steps.current_link()
        try:
            with OutputFile(self.output) as out:
                await self._start_all(out)
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            self.summary.unsent += len(self._pending)
            self.summary.wall_s = time.perf_counter() - started
            if self._own_router and self.router is not None:
                await self.router.aclose()
        if self._error is not None:
            raise self._error
        return self.summary

    async def _start_all(self, out: OutputFile) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        while self._pending and not self._interrupted:
            await slots.acquire()
            hold = await self._hold(self._pending[0])
            if hold is False or self._interrupted:
                slots.release()
                break
            item = self._pending.popleft()
            reservation = hold if isinstance(hold, Reservation) else None
            task = asyncio.create_task(self._one(item, reservation, out))
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._ended(t, slots))

    def _ended(self, task: asyncio.Task[None], slots: asyncio.Semaphore) -> None:
        self._tasks.discard(task)
        slots.release()
        if task.cancelled():  # cancelled before it began: nothing was sent
            self.summary.unsent += 1
        elif (exc := task.exception()) is not None and self._error is None:
            self._error = exc  # e.g. the output file cannot be written: stop, then raise it
            self.interrupt()

    async def _hold(self, item: BatchItem) -> Reservation | bool:
        """The cap's hold for ``item`` (True without a cap); False when the cap cannot cover
        it even after every request in flight has settled."""
        if self.cap is None:
            return True
        while not self._interrupted:
            hold = await self.cap.hold(item)
            if hold is not None:
                return hold
            if not self._tasks:
                self.summary.stopped = "max_cost"
                return False
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        return False

    async def _one(self, item: BatchItem, hold: Reservation | None, out: OutputFile) -> None:
        assert self.router is not None
        cost: Decimal | None = Decimal(0)
        outcome: ChatResponse | ChatgateError
        try:
            try:
                with steps.batch_line(item.custom_id, self.batch_id, self._link):
                    result = await self.router.aroute(
                        item.request, allowed=self.allowed, tags=self._route_tags
                    )
            except asyncio.CancelledError:
                self.summary.unsent += 1  # cancelled in flight: no line, it runs again on resume
                return
            except ChatgateError as exc:
                line = failure_line(item.custom_id, exc)
                self.summary.failed += 1
                outcome = exc
            else:
                assert isinstance(result, ChatResponse)  # stream is refused by read_items
                cost = result.meta.cost
                line = success_line(item.custom_id, result)
                self.summary.count(result)
                outcome = result
            # The hook first: what was spent is on record (the gateway's spend log and budget
            # ledger) before the output line marks it done; a kill between the two runs the
            # line again on resume, billed twice rather than not at all.
            if self.on_line is not None:
                self.on_line(item.custom_id, outcome)
            out.write(line)
        finally:
            if hold is not None and self.cap is not None:
                await self.cap.settle(hold, cost)
        if self.on_progress is not None:
            self.on_progress(self.summary)


async def abatch(
    requests_or_path: Source,
    output_path: str | Path,
    *,
    router: Router | None = None,
    concurrency: int = 8,
    max_cost: Decimal | None = None,
    retry_failed: bool = False,
    provider_batch: bool = False,
    poll: PollPolicy | None = None,
    tags: Collection[str] | None = None,
) -> BatchSummary:
    """Run every request of ``requests_or_path`` (a JSONL file in OpenAI's Batch input format,
    or the same objects in an iterable) and append the answers to ``output_path`` in OpenAI's
    Batch output format. Requests already answered there are skipped (resume); failed ones
    too unless ``retry_failed``. ``router``: model names are its model_list names; without it
    they are provider/model strings. ``max_cost`` (USD) is never exceeded.

    ``provider_batch``: submit to the providers' batch APIs (OpenAI, Anthropic, Gemini) at the
    batch
    price instead, answers within 24 h; ``poll`` sets how often to ask (and for how long at
    most, ``max_wait_s``).

    ``tags``: every line is answered only by deployments carrying all of them (as a routed
    call's ``tags=``; only in groups where some deployment has tags); a line no deployment
    can then serve is refused before anything is sent. See docs/batch.md."""
    common: dict[str, Any] = {
        "router": router, "max_cost": max_cost, "retry_failed": retry_failed, "tags": tags,
    }  # fmt: skip
    run: BatchRun | ProviderBatchRun = (
        ProviderBatchRun(requests_or_path, output_path, poll=poll, **common)
        if provider_batch
        else BatchRun(requests_or_path, output_path, concurrency=concurrency, **common)
    )
    run.prepare()
    return await run.run()


def batch(requests_or_path: Source, output_path: str | Path, **options: Any) -> BatchSummary:
    """The blocking form of ``abatch`` (same options); runs on chatgate's private loop thread."""
    return run_sync(abatch(requests_or_path, output_path, **options))
