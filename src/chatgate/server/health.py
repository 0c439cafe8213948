"""GET /health/liveness and /health/readiness, with pluggable readiness checks.

A check is a named ``async () -> None`` that raises when the dependency it watches is not
usable (the database and Redis add theirs when they land). Readiness runs every check at once,
each under a timeout, and answers 503 naming the failures, so a load balancer stops sending
traffic; during a graceful shutdown the built-in ``accepting`` check fails for the same reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["CHECK_TIMEOUT_S", "ReadinessCheck", "run_checks"]

ReadinessCheck = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_S = 2.0


async def _one(check: ReadinessCheck, timeout_s: float) -> str | None:
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except Exception as exc:  # any failure of a check means "not ready"; its text says why
        return f"{type(exc).__name__}: {exc}"
    return None


async def run_checks(
    checks: Mapping[str, ReadinessCheck], timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[bool, dict[str, Any]]:
    names = list(checks)
    results = await asyncio.gather(*(_one(checks[n], timeout_s) for n in names))
    report: dict[str, Any] = {}
    for name, error in zip(names, results, strict=True):
        report[name] = {"ok": True} if error is None else {"ok": False, "error": error}
    return all(error is None for error in results), report
