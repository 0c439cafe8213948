"""A routed call: admitted, traced as a route span, then the job's walk down its model group
and the fallbacks: the group first, then each group the tables add on a fault that moves on
(or on a context-window / content-policy fault, that group's own), skipping the groups the
caller may not use, within the call's deadline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from chatgate.errors import ChatgateError
from chatgate.router.admission import Admission
from chatgate.router.attempt import GroupRunner, Job
from chatgate.router.call import CallContext
from chatgate.router.fallbacks import Allowed, FallbackTables, next_allowed
from chatgate.router.policy import Fault, classify
from chatgate.router.runtime import Runtime
from chatgate.stream import ChatStream
from chatgate.telemetry import spans

__all__ = ["routed", "through_fallbacks"]

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


async def routed(
    job: Job[R],
    call: CallContext,
    priority: int,
    no_fallbacks: bool,
    allow: Allowed,
    admission: Admission,
    runners: Mapping[str, GroupRunner],
    tables: FallbackTables,
    runtime: Runtime,
) -> R:
    """Admission, then the job through its group and fallbacks. A stream keeps its
    admission slot (and its route span) until it ends."""
    route = spans.start_route(job.model)
    traced = route is not spans.NO_SPAN  # else no span call at all below
    token = spans.enter(route) if traced else None
    admitted: float | None = None
    try:
        admitted = await admission.enter(priority, max(0.0, call.time_left(runtime)))
        result = await through_fallbacks(job, call, no_fallbacks, allow, runners, tables, runtime)
    except BaseException as exc:
        if admitted is not None:
            admission.leave(admitted)
        if traced:
            spans.end(route, exc)
        raise
    finally:
        if token is not None:  # after the span's end on a failure: the context only
            spans.leave(token)
    if isinstance(result, ChatStream):
        call.on_stream_end(lambda: admission.leave(admitted))
        if traced:
            call.on_stream_end(route.end)
    else:
        admission.leave(admitted)
        if traced:
            route.end()
    return result
