"""A call's attempts as the spend log keeps them: compact JSON, only when there is a story to
tell (more than one attempt, or an error), so the common row stays small.

Each entry: ``d`` deployment id, ``m`` provider/model, and where known ``e`` error class,
``s`` status, ``msg`` the error's message, ``w`` seconds waited after it, ``ms`` its latency,
``skip`` why a fallback group was not tried. Messages are cut to ``MAX_MESSAGE`` characters
and scrubbed once more by key shape (the provider layer already removed the deployment's own
credentials, ``chatgate.redact``): a stored row outlives the process that knew them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from chatgate.meta import Attempt
from chatgate.redact import Redactor

__all__ = ["MAX_ATTEMPTS", "MAX_MESSAGE", "attempts_json", "read_attempts"]

MAX_ATTEMPTS = 20  # the first 19 and the last: how it began and how it ended
MAX_MESSAGE = 240
_SHAPES = Redactor()


def _entry(a: Attempt) -> dict[str, Any]:
    out: dict[str, Any] = {"d": a.deployment[:128], "m": a.model[:128]}
    if a.error is not None:
        out["e"] = a.error[:64]
    if a.status_code is not None:
        out["s"] = a.status_code
    if a.message:
        out["msg"] = _SHAPES.text(a.message[:MAX_MESSAGE])
    if a.wait_s:
        out["w"] = round(a.wait_s, 3)
    if a.latency_ms is not None:
        out["ms"] = round(a.latency_ms, 1)
    if a.skipped is not None:
        out["skip"] = a.skipped[:64]
    return out


def attempts_json(log: Sequence[Attempt] | None) -> str | None:
    """The column's value; None for a call answered at its first attempt."""
    if not log or (len(log) == 1 and log[0].error is None):
        return None
    kept = list(log) if len(log) <= MAX_ATTEMPTS else [*log[: MAX_ATTEMPTS - 1], log[-1]]
    return orjson.dumps([_entry(a) for a in kept]).decode()


def read_attempts(stored: str | None) -> list[dict[str, Any]]:
    """The admin API's view of a stored value, in plain names ([] for none or a bad value)."""
    if not stored:
        return []
    try:
        entries = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(entries, list):
        return []
    return [
        {
            "deployment": e.get("d"),
            "model": e.get("m"),
            "error": e.get("e"),
            "status_code": e.get("s"),
            "message": e.get("msg"),
            "wait_s": e.get("w", 0.0),
            "latency_ms": e.get("ms"),
            "skipped": e.get("skip"),
        }
        for e in entries
        if isinstance(e, dict)
    ]
