"""Seconds to wait before a retry, from what an upstream said: ``retry-after-ms``,
``Retry-After`` (seconds or an HTTP date) or, on a 429, OpenAI's ``x-ratelimit-reset-*``."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

__all__ = ["MAX_RETRY_AFTER_S", "parse_retry_after"]

# Longest wait we will take from a provider's header; beyond it the number is not trusted.
MAX_RETRY_AFTER_S = 300.0


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(value: str) -> float | None:
    """OpenAI's x-ratelimit-reset-* format: '1s', '6m0s', '20ms', '1h2m3.5s'."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def parse_retry_after(
    headers: Mapping[str, str], status: int = 429, now: float | None = None
) -> float | None:
    """Seconds to wait, from retry-after-ms, Retry-After (seconds or HTTP date) or, on a 429,
    OpenAI's x-ratelimit-reset-* headers. None when absent, unparseable or absurd."""
    seconds: float | None = None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000.0
        except ValueError:
            seconds = None
    if seconds is None and (ra := headers.get("retry-after")) is not None:
        try:
            seconds = float(ra)
        except ValueError:
            parsed = email.utils.parsedate_tz(ra)
            if parsed is not None:
                current = time.time() if now is None else now
                seconds = float(email.utils.mktime_tz(parsed)) - current
    if seconds is None and status == 429:
        resets = [
            d
            for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
            if (v := headers.get(name)) is not None and (d := _parse_duration(v)) is not None
        ]
        seconds = max(resets) if resets else None
    if seconds is None or seconds > MAX_RETRY_AFTER_S:
        return None
    return max(seconds, 0.0)
