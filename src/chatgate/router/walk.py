"""A job's walk down its model group and the fallbacks: the group first, then each group the
tables add on a fault that moves on (or on a context-window / content-policy fault, that
group's own), skipping the groups the caller may not use, within the call's deadline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from chatgate.errors import ChatgateError
from chatgate.router.attempt import GroupRunner, Job
from chatgate.router.call import CallContext
from chatgate.router.fallbacks import Allowed, FallbackTables, next_allowed
from chatgate.router.policy import Fault, classify
from chatgate.router.runtime import Runtime
from chatgate.telemetry import spans

__all__ = ["through_fallbacks"]

R = TypeVar("R")


async def through_fallbacks(
    job: Job[R],
    call: CallContext,
    disable: bool,
    allow: Allowed,
    runners: Mapping[str, GroupRunner],
    tables: FallbackTables,
    runtime: Runtime,
) -> R:
    """The job's result from the first group that serves it; the last failure otherwise,
    carrying the attempt log of the whole walk."""
    chain = [job.model]
    if not disable:
        chain += tables.general.get(job.model, [])
    visited: set[str] = set()
    index = 0
    while True:
        name = chain[index]
        visited.add(name)
        more = index + 1 < len(chain) and any(allow(n) for n in chain[index + 1 :])
        try:
            result = await runners[name].run(job, call, can_fall_back=more)
            spans.served_by(name, job.model)
            return result
        except ChatgateError as exc:
            exc.attempt_log = list(call.log)
            fault = classify(exc)
            moves_on = fault in (Fault.RETRYABLE, Fault.DEPLOYMENT)
            extra = None if disable and not moves_on else tables.on_fault(name, fault)
            if extra is None or (moves_on and call.time_left(runtime) <= 0):
                raise
            chain[index + 1 : index + 1] = [n for n in extra if n not in visited]
            index = next_allowed(chain, index, allow, visited, call)
            exc.attempt_log = list(call.log)
            if index >= len(chain):
                raise
