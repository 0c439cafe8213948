"""Running a gateway batch job in the background, with chatgate's batch runs: lines whose
model has a deployment with a provider batch API go to that API at the batch price
(chatgate.batching.provider), the others are run by the gateway itself through its router at
the normal price (chatgate.batching.run). Every result line writes a spend-log row for the
batch's key; the budget holds taken at creation are settled with what the lines cost.

One worker runs a batch at a time: it holds an exclusive lock (``flock``) on the batch's
folder while it runs, so a batch found unfinished (after a restart) is picked up again by
whichever worker reads it first, and never run twice at once. Provider batches already
submitted are polled, not submitted again (their ids are in the state file beside the
output), and lines already answered are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.context import Context

from chatgate.batching.input import BatchInputError, read_items
from chatgate.batching.provider.plan import batch_deployment
from chatgate.batching.provider.run import ProviderBatchRun
from chatgate.batching.run import BatchRun
from chatgate.cost.budgets import Budget, Reservation, Window
from chatgate.errors import ChatgateError
from chatgate.server.batch_store import KEY_FIELD, OWNER_FIELD, TRACE_FIELD, BatchStore
from chatgate.server.context import RequestContext, usage_record
from chatgate.server.request import failed
from chatgate.server.request_tags import merge_tags
from chatgate.server.serving import served_by_failure, take_response
from chatgate.server.state import GatewayState
from chatgate.telemetry.current import attach
from chatgate.telemetry.propagation import span_context_of
from chatgate.types import ChatResponse

__all__ = ["ROUTE_TAGS", "batchable", "start_batch"]

ROUTE_TAGS = "route_tags"  # in the record's KEY_FIELD: the tags its lines are routed by

log = logging.getLogger("chatgate.server")

# Handlers get the state, not the Gateway, so the running jobs are kept here: a set of tasks
# (a task not referenced anywhere may be garbage-collected mid-run).
_RUNNING: dict[str, asyncio.Task[None]] = {}


def batchable(state: GatewayState, model: str, tags: frozenset[str] = frozenset()) -> bool:
    """Whether a model_list name has a deployment with a provider batch API that carries the
    batch's routing ``tags`` (batching/route_tags.py); a model without one runs live, where
    the router routes by the tags."""
    group = state.models.router.groups.get(model) or []
    return batch_deployment(group, tags) is not None


def _route_tags(record: dict[str, Any]) -> frozenset[str]:
    """The routing tags the batch was submitted with (``x-chatgate-tags``, not its key's,
    which only count); a batch stored before they were kept has none and runs as it did."""
    return frozenset((record.get(KEY_FIELD) or {}).get(ROUTE_TAGS) or ())


def start_batch(
    state: GatewayState,
    store: BatchStore,
    batch_id: str,
    holds: dict[str, Reservation] | None = None,
) -> None:
    """Run (or resume) the batch in the background, unless this process already runs it."""
    if batch_id in _RUNNING:
        return
    task = asyncio.get_running_loop().create_task(_run(state, store, batch_id, holds or {}))
    _RUNNING[batch_id] = task
    task.add_done_callback(lambda _: _RUNNING.pop(batch_id, None))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[bool]:
    fd = os.open(folder / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False  # another worker runs it
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _split(folder: Path, state: GatewayState, tags: frozenset[str]) -> tuple[Path, Path]:
    """The input cut in two: lines for provider batch APIs, lines the gateway runs."""
    provider, live = folder / "provider.jsonl", folder / "live.jsonl"
    if not provider.exists():
        to_provider: list[bytes] = []
        to_live: list[bytes] = []
        for raw in (folder / "input.jsonl").read_bytes().splitlines():
            if raw.strip():
                model = orjson.loads(raw)["body"]["model"]
                (to_provider if batchable(state, model, tags) else to_live).append(raw + b"\n")
        live.write_bytes(b"".join(to_live))
        provider.write_bytes(b"".join(to_provider))  # written last: the split is complete
    return provider, live


class _Spend:
    """A spend-log row per result line, and the cost per model for the budget holds.

    Each billed line's cost is also appended to the batch's ledger (``charges.jsonl``) until
    the run's costs are charged: a process killed mid-run charges nothing, so the one that
    resumes the batch charges what the ledger holds with its own lines (a kill between the
    charge and the ledger's removal charges those lines twice: never too little)."""

    def __init__(self, state: GatewayState, record: dict[str, Any], models: dict[str, str]):
        self.state = state
        self.record = record
        self.models = models  # custom_id -> model_list name
        self.cost: dict[str, Decimal | None] = {}
        self.ledger: Path | None = None

    def resume(self, ledger: Path) -> None:
        """Start from what an earlier run of the batch left uncharged in ``ledger``."""
        self.ledger = ledger
        with contextlib.suppress(FileNotFoundError):
            for line in ledger.read_bytes().splitlines():
                with contextlib.suppress(ValueError, TypeError):  # a line cut by the kill
                    model, cost = orjson.loads(line)
                    self._add(str(model), None if cost is None else Decimal(cost))

    def _add(self, model: str, cost: Decimal | None) -> None:
        known = self.cost.get(model, Decimal(0))
        self.cost[model] = None if known is None or cost is None else known + cost

    def __call__(self, custom_id: str, outcome: ChatResponse | ChatgateError) -> None:
        model = self.models[custom_id]
        owner = self.record.get(KEY_FIELD) or {}
        ctx = RequestContext(
            route="/v1/batches",
            key_id=owner.get("key_id"),
            user_id=owner.get("user_id"),
            team_id=owner.get("team_id"),
            requested_model=model,
            tags=merge_tags(_submitted_tags(owner), ("batch", self.record["id"])),
            status=200,
        )
        if isinstance(outcome, ChatResponse):
            take_response(ctx, outcome)
        else:
            failed(ctx, outcome, outcome.status_code or 502)
            served_by_failure(ctx, outcome)
        if isinstance(outcome, ChatResponse):  # a failed line is not billed
            self._add(model, ctx.cost)
            if self.ledger is not None:
                cost = None if ctx.cost is None else str(ctx.cost)
                with self.ledger.open("ab") as out:  # a line at a time: a kill loses none
                    out.write(orjson.dumps([model, cost]) + b"\n")
        spend = self.state.services.spend
        if spend is not None:
            spend.emit(usage_record(ctx))


def _submitted_tags(owner: dict[str, Any]) -> tuple[str, ...]:
    """The tags the batch was held on when it was submitted (its key's first): its lines are
    charged and logged under them. A batch stored before they were kept has none."""
    return tuple(owner.get("tags") or ())


async def _run(
    state: GatewayState, store: BatchStore, batch_id: str, holds: dict[str, Reservation]
) -> None:
    # Not in the trace of the request that started it (this task's copy of its context):
    # each line a trace of its own, its routed call's span the root.
    attach(Context())
    folder = store.batch_folder(batch_id)
    spend = _Spend(state, {}, {})
    try:
        with _locked(folder) as mine:
            if not mine:
                return  # another worker runs it (without these holds: they are freed below)
            record = spend.record = store.batch(batch_id, None)
            if record["status"] not in ("validating", "in_progress", "finalizing"):
                return
            spend.resume(folder / "charges.jsonl")
            try:
                await _execute(state, store, folder, record, spend)
            except (ChatgateError, OSError) as exc:
                log.warning("batch %s failed: %s", batch_id, exc)
                record["status"], record["failed_at"] = "failed", int(time.time())
                error = {"code": "batch_failed", "message": _failure(exc), "param": None}
                record["errors"] = {"object": "list", "data": [{**error, "line": None}]}
                store.save_batch(record)
    finally:  # every hold is settled, whatever happened: the renewal loop never keeps one
        await _charge(state, spend, holds)
        if spend.ledger is not None:  # charged: not to be charged again by a resume
            spend.ledger.unlink(missing_ok=True)


async def _charge(state: GatewayState, spend: _Spend, holds: dict[str, Reservation]) -> None:
    """What the lines of this run cost, charged to the budgets: through the holds taken at
    creation, or, for a batch resumed without them, straight to the budgets' counters. What
    was spent at the provider is never refused, even past a limit lowered meanwhile."""
    budgets = state.services.budgets
    owner = spend.record.get(KEY_FIELD) or {}
    who = {"key": owner.get("key_id"), "user": owner.get("user_id"), "team": owner.get("team_id")}
    limit = owner.get("budget")
    period: Window = owner.get("budget_period") or "monthly"  # written from the key's Window
    key_id = who["key"]
    extra = (Budget("key", Decimal(limit), period, subject=key_id),) if limit and key_id else ()
    for model in {*holds, *spend.cost}:
        cost = spend.cost.get(model, Decimal(0))
        hold = holds.get(model)
        try:
            if hold is None:
                if not cost:
                    continue
                lines = budgets.lines_for(
                    model=model, tags=_submitted_tags(owner), extra=extra, **who
                )
                hold = Reservation(uuid.uuid4().hex, lines, 0, model)  # nothing held: charged
            await budgets.settle(hold, cost)
        except ChatgateError as exc:
            log.warning("batch cost of %s not charged to its budgets: %s", model, exc)


def _failure(exc: ChatgateError | OSError) -> str:
    if isinstance(exc, BatchInputError):
        return "; ".join(exc.problems[:10])  # its message names files on this server
    if isinstance(exc, ChatgateError):
        return exc.message
    return f"the gateway could not read or write the batch's files ({type(exc).__name__})"


async def _execute(
    state: GatewayState,
    store: BatchStore,
    folder: Path,
    record: dict[str, Any],
    spend: _Spend,
) -> None:
    router = state.models.router
    record["status"] = "in_progress"
    record["in_progress_at"] = record.get("in_progress_at") or int(time.time())
    store.save_batch(record)
    tags = _route_tags(record)
    provider, live = _split(folder, state, tags)
    out = folder / "output.jsonl"
    for source in (live, provider):
        if source.stat().st_size:
            spend.models.update({i.custom_id: i.request.model for i in read_items(source)})
    if live.stat().st_size:
        models = set((record.get(KEY_FIELD) or {}).get("models") or ())
        allowed = models.__contains__ if models else None  # the key's allowlist, fallbacks too
        run = BatchRun(
            live, out, router=router, concurrency=8, on_line=spend, allowed=allowed, tags=tags,
            batch_id=record["id"], linked_to=span_context_of(record.get(TRACE_FIELD)),
        )  # fmt: skip
        run.prepare()
        await run.run()
    if provider.stat().st_size:
        batch_run = ProviderBatchRun(provider, out, router=router, on_line=spend, tags=tags)
        batch_run.prepare()
        await batch_run.run()
    _finish(store, record, out)


def _finish(store: BatchStore, record: dict[str, Any], out: Path) -> None:
    """OpenAI's shape: answers in the output file, failed lines in the error file."""
    answers: list[bytes] = []
    errors: list[bytes] = []
    for raw in out.read_bytes().splitlines() if out.exists() else ():
        line = orjson.loads(raw)
        (answers if line.get("error") is None else errors).append(raw + b"\n")
    owner = record[OWNER_FIELD]
    for key, lines, name in (
        ("output_file_id", answers, "output"),
        ("error_file_id", errors, "errors"),
    ):
        if lines:
            data = b"".join(lines)
            made = store.add_file(owner, f"{record['id']}_{name}.jsonl", "batch_output", data)
            record[key] = made["id"]
    record["request_counts"] = {
        "total": len(answers) + len(errors),
        "completed": len(answers),
        "failed": len(errors),
    }
    record["status"], record["completed_at"] = "completed", int(time.time())
    store.save_batch(record)
