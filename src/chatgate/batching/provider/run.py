"""A provider batch run: lines not yet answered are submitted as provider batch jobs (the
batch ids saved beside the output first thing), polled with a growing wait, and their results
written in the same output format as a live run, priced at the batch rate.

A rerun with the same output resumes: the jobs in the state file are polled again (never
submitted twice) and lines already in the output are neither resubmitted nor written twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from decimal import Decimal
from pathlib import Path

from chatgate.batching.input import BatchInputError, Source, collect_items, where_of
from chatgate.batching.output import (
    LineHook,
    OutputFile,
    failure_line,
    load_existing,
    success_line,
)
from chatgate.batching.provider.api import BatchLineError, Outcome
from chatgate.batching.provider.plan import Planned, plan_items
from chatgate.batching.provider.poll import PollPolicy
from chatgate.batching.provider.state import Job, StateFile
from chatgate.batching.route_tags import route_tags
from chatgate.batching.summary import BatchSummary
from chatgate.client import attributed
from chatgate.cost.calc import cost_of, price_of
from chatgate.errors import APIError, InvalidRequestError
from chatgate.router import Router
from chatgate.types import ChatResponse

__all__ = ["ProviderBatchRun"]

log = logging.getLogger("chatgate.batch")
Progress = Callable[[BatchSummary], None]


class ProviderBatchRun:
    """``prepare()`` checks everything (BatchInputError: nothing sent), ``await run()``
    submits, polls and writes; ``interrupt()`` stops polling (the batches keep running and a
    rerun collects them)."""

    def __init__(
        self,
        source: Source,
        output_path: str | Path,
        *,
        router: Router | None = None,
        max_cost: Decimal | None = None,
        retry_failed: bool = False,
        on_progress: Progress | None = None,
        poll: PollPolicy | None = None,
        on_line: LineHook | None = None,
        tags: Collection[str] | None = None,
    ) -> None:
        """``tags``: each line goes to a batch-capable deployment carrying all of them, as a
        routed call's ``tags=`` picks (only in groups where some deployment has tags)."""
        self.tags = route_tags(tags)
        if max_cost is not None and max_cost < 0:
            raise InvalidRequestError("max_cost must be 0 or more (USD)", param="max_cost")
        self.source = source
        self.output = Path(output_path)
        self.router = router
        self.max_cost = Decimal(str(max_cost)) if max_cost is not None else None
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.poll = poll or PollPolicy()
        self.on_line = on_line
        self.summary = BatchSummary()
        self.state = StateFile(self.output)
        self._by_id: dict[str, Planned] = {}
        self._to_submit: list[Planned] = []
        self._written: set[str] = set()
        self._task: asyncio.Task[object] | None = None
        self._interrupted = False
        self._polling = False

    def prepare(self) -> None:
        items, problems = collect_items(self.source)
        planned, more = plan_items(items, self.router, self.max_cost is not None, self.tags)
        problems += more
        self._by_id = {p.item.custom_id: p for p in planned}
        self.state = StateFile.load(self.output)
        for job in self.state.jobs:
            lost = [c for c in job.ids.values() if c not in self._by_id]
            if lost and not problems:
                problems.append(
                    f"{self.state.path}: batch {job.batch_id} holds custom_id {lost[0]!r}, "
                    "which this input does not have: pass the input it was submitted from"
                )
            elif frozenset(job.tags) != self.tags and not problems:
                problems.append(  # other tags could pick a deployment that never saw it
                    f"{self.state.path}: batch {job.batch_id} was submitted with routing tags "
                    f"({', '.join(job.tags) or 'none'}): rerun with the same tags "
                    f"(given: {', '.join(sorted(self.tags)) or 'none'})"
                )
        if problems:
            raise BatchInputError(problems, where_of(self.source))
        existing = load_existing(self.output, retry_failed=self.retry_failed)
        self._written = existing.succeeded | existing.failed
        done_or_submitted = self._written | self.state.custom_ids()
        self._to_submit = [p for p in planned if p.item.custom_id not in done_or_submitted]
        self.summary.total = len(items)
        self.summary.skipped = sum(1 for p in planned if p.item.custom_id in self._written)
        self.summary.repaired = existing.repaired
        self._apply_cap()

    def _apply_cap(self) -> None:
        """Keep the lines whose worst case (at the batch rate) fits the cap, in input order."""
        if self.max_cost is None:
            return
        spent, kept = Decimal(0), []
        for planned in self._to_submit:
            if spent + planned.worst > self.max_cost:
                break
            spent += planned.worst
            kept.append(planned)
        if len(kept) < len(self._to_submit):
            self.summary.unsent = len(self._to_submit) - len(kept)
            self.summary.stopped = "max_cost"
        self._to_submit = kept

    def interrupt(self) -> None:
        """Stop submitting and polling; the submitted batches stay in the state file. A
        submission under way is let finish (cut short, a batch could be created and not
        recorded, then paid twice), so only the wait for results is cancelled."""
        self._interrupted = True
        if self._task is not None and self._polling:
            self._task.cancel()

    async def run(self) -> BatchSummary:
        started = time.perf_counter()
        self._task = asyncio.current_task()
        try:
            with OutputFile(self.output) as out:
                await self._submit_all()
                await self._collect_all(out)
        except asyncio.CancelledError:
            if not self._interrupted or self._task is None:
                raise
            self._task.uncancel()  # the cancellation was ours: the caller's task goes on
            self.summary.stopped = "interrupted"
        finally:
            self._task = None
            self._polling = False
            self.summary.waiting = sum(
                len(set(j.ids.values()) - self._written) for j in self.state.jobs
            )
            self.summary.wall_s = time.perf_counter() - started
        return self.summary

    # -- submitting ----------------------------------------------------------------------------

    def _jobs(self) -> list[list[Planned]]:
        """The lines to submit, grouped by provider account (and model where required) and cut
        at the provider's line and size limits; input order kept."""
        groups: dict[tuple[str | None, ...], list[list[Planned]]] = {}
        sizes: dict[tuple[str | None, ...], int] = {}
        for planned in self._to_submit:
            key = planned.api.job_key(planned.deployment)
            chunks = groups.setdefault(key, [[]])
            size = len(planned.line) + 1
            last = chunks[-1]
            if last and (
                len(last) >= planned.api.max_lines or sizes[key] + size > planned.api.max_bytes
            ):
                chunks.append(last := [])
                sizes[key] = 0
            last.append(planned)
            sizes[key] = sizes.get(key, 0) + size
        return [chunk for chunks in groups.values() for chunk in chunks]

    async def _submit_all(self) -> None:
        for done, chunk in enumerate(self._jobs()):
            if self._interrupted:
                self.summary.unsent += sum(len(c) for c in self._jobs()[done:])
                self.summary.stopped = "interrupted"
                return
            first = chunk[0]
            batch_id = await first.api.submit(first.deployment, [p.line for p in chunk])
            # Saved before anything else can fail: a rerun polls this batch, never pays again.
            self.state.add(
                Job(
                    provider=first.api.provider,
                    batch_id=batch_id,
                    ids={p.wire_id: p.item.custom_id for p in chunk},
                    worst_case=str(sum((p.worst for p in chunk), Decimal(0))),
                    tags=sorted(self.tags),
                )
            )
            self.summary.batches.append(batch_id)
            log.info("submitted %s batch %s (%d lines)", first.api.provider, batch_id, len(chunk))

    # -- polling and collecting ----------------------------------------------------------------

    async def _collect_all(self, out: OutputFile) -> None:
        self.poll.start()
        self._polling = True
        while self.state.jobs and not self._interrupted:
            for job in list(self.state.jobs):
                await self._check(job, out)
            if not self.state.jobs:
                break
            if self.poll.out_of_time():
                self.summary.stopped = "waiting"
                break
            await self.poll.wait()

    async def _check(self, job: Job, out: OutputFile) -> None:
        first = self._by_id[next(iter(job.ids.values()))]
        targets = {
            wire_id: (self._by_id[c].item.request, self._by_id[c].deployment)
            for wire_id, c in job.ids.items()
        }
        try:
            status = await first.api.status(first.deployment, job.batch_id)
            if not status.ended:
                return
            outcomes = await first.api.results(first.deployment, job.batch_id, targets)
        except APIError as exc:
            if not exc.retryable:
                raise
            log.warning("reading batch %s failed (%s); trying again later", job.batch_id, exc)
            return
        seen = set()
        for wire_id, outcome in outcomes:
            seen.add(wire_id)
            self._write(out, job.ids[wire_id], outcome)
        code, message = status.missing
        for wire_id, custom_id in job.ids.items():
            if wire_id not in seen:
                p = self._by_id[custom_id]
                error = BatchLineError(
                    code, message, provider=p.deployment.provider, model=p.deployment.model
                )
                self._write(out, custom_id, error)
        self.state.remove(job)  # after every line is in the output: a crash before rereads it
        log.info("batch %s %s: results written", job.batch_id, status.state)

    def _write(self, out: OutputFile, custom_id: str, outcome: Outcome) -> None:
        if custom_id in self._written:
            return  # written before a crash, or answered by an earlier run
        self._written.add(custom_id)
        deployment = self._by_id[custom_id].deployment
        if isinstance(outcome, ChatResponse):
            self._price(outcome, custom_id)
            line = success_line(custom_id, outcome)
            self.summary.count(outcome)
        else:
            if isinstance(outcome, APIError):
                outcome = attributed(outcome, deployment, outcome.request_id)
            line = failure_line(custom_id, outcome)
            self.summary.failed += 1
        if self.on_line is not None:  # first: on record before the line counts as written
            self.on_line(custom_id, outcome)
        out.write(line)
        if self.on_progress is not None:
            self.on_progress(self.summary)

    def _price(self, response: ChatResponse, custom_id: str) -> None:
        deployment = self._by_id[custom_id].deployment
        meta = response.meta
        meta.provider = deployment.provider
        meta.model = response.model or deployment.model
        price = price_of(deployment, response.model)
        usage = response.usage
        meta.cost = None if price is None or usage is None else cost_of(usage, price, batch=True)
