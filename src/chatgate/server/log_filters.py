"""The spend-log filters of ``GET /admin/logs`` and ``GET /admin/overview``, checked before
any query: a bad value is a 400 naming the parameter and the form it takes."""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson

from chatgate.cost.budgets import to_pico
from chatgate.errors import InvalidRequestError
from chatgate.server.key_fields import parse_duration

__all__ = ["LogFilters", "Window", "decode_cursor", "encode_cursor", "log_filters", "window"]

_TEXT = ("key", "team", "user", "model", "error", "request_id")
_FLAGS = ("fallback", "retried")  # true | false: answered by a fallback group; tried again
_PARAMS = frozenset({*_TEXT, *_FLAGS, "since", "until", "status", "min_cost", "limit", "cursor"})
MAX_LIMIT = 500
_AGO = re.compile(r"^\d+(\.\d+)?[smhdwy]$")


@dataclass(frozen=True, slots=True)
class Window:
    since: float
    until: float

    @property
    def days(self) -> tuple[dt.date, dt.date]:
        return _day(self.since), _day(self.until)


@dataclass(frozen=True, slots=True)
class LogFilters:
    window: Window
    text: Mapping[str, str]  # key, team, user, model, error, request_id: exact matches
    status: str | None  # ok | error
    flags: Mapping[str, bool]  # fallback, retried
    min_cost_pico: int | None
    limit: int
    cursor: tuple[float, str] | None


def _day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def _bad(param: str, text: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {text}", param=param)


def _instant(param: str, value: str, now: float) -> float:
    """An ISO 8601 time, unix seconds, or a duration ago ('24h', '7d')."""
    text = value.strip()
    try:
        if _AGO.match(text):
            return now - parse_duration(text)
        if text.replace(".", "", 1).isdigit():
            return float(text)
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    except (ValueError, InvalidRequestError):
        raise _bad(
            param, f"{value[:40]!r} is not a time; use ISO 8601, unix seconds or 24h / 7d ago"
        ) from None


def window(query: Mapping[str, str], now: float | None = None, default: str = "7d") -> Window:
    now = time.time() if now is None else now
    since = _instant("since", query.get("since", default), now)
    until = _instant("until", query["until"], now) if "until" in query else now + 1
    if since >= until:
        raise _bad("since", "must be before until")
    return Window(since, until)


def encode_cursor(ts: float, record_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, record_id])).decode()


def decode_cursor(text: str) -> tuple[float, str]:
    try:
        ts, record_id = orjson.loads(base64.urlsafe_b64decode(text.encode()))
        if not isinstance(record_id, str) or "\x00" in record_id or not math.isfinite(ts):
            raise ValueError("not a cursor")
        return float(ts), record_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise _bad("cursor", "not a cursor this API gave (pass next_cursor as it is)") from None


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad("limit", f"a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _min_cost(text: str) -> int:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0 or amount > 10**6:
        raise _bad("min_cost", "an amount in USD, e.g. 0.01")
    return to_pico(amount)


def log_filters(query: Mapping[str, str], now: float | None = None) -> LogFilters:
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise _bad(unknown[0], f"unknown filter; filters: {', '.join(sorted(_PARAMS))}")
    for name in _TEXT:
        if name in query and not 0 < len(query[name]) <= 256:
            raise _bad(name, "from 1 to 256 characters")
        if "\x00" in query.get(name, ""):  # no value stored has one (PostgreSQL refuses it)
            raise _bad(name, "a NUL character (%00) matches nothing stored")
    status = query.get("status")
    if status not in (None, "ok", "error"):
        raise _bad("status", "ok or error")
    flags = {}
    for name in _FLAGS:
        if name in query:
            if query[name] not in ("true", "false"):
                raise _bad(name, "true or false")
            flags[name] = query[name] == "true"
    return LogFilters(
        window=window(query, now),
        text={name: query[name] for name in _TEXT if name in query},
        status=status,
        flags=flags,
        min_cost_pico=_min_cost(query["min_cost"]) if "min_cost" in query else None,
        limit=_limit(query.get("limit", "50")),
        cursor=decode_cursor(query["cursor"]) if "cursor" in query else None,
    )
