"""A batch of usage records as the spend log's SQL parameters: each record's ``spend_log``
values (one tuple, in the compiled INSERT's column order) and the batch's ``spend_daily`` sums.

One pass per record: its day (cached per UTC day) and its picodollar amounts are computed
once and shared by its row and the sums. On SQLite two kinds of value cost the
driver far more than the rest, because ``sqlite3`` binds only exact ints, floats and strs
without adapting them: a ``date`` goes through ``sqlite3``'s Python adapter, and every
``None`` through a failed adapter lookup (two attribute lookups, one of them raising and
clearing an ``AttributeError`` in C: 0.9 µs a value, 13 of them in a usual row). So for
SQLite a day is written as the text that adapter would make, and a row's NULLs are written
as ``NULL`` literals in its statement: rows are grouped by which columns are NULL, one
statement each (compiled once per pattern).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import compress
from typing import Any

from chatgate.cost.budgets import to_pico
from chatgate.cost.usage import UsageRecord
from chatgate.store.schema.spend import LEVERS, SPEND_LOG

__all__ = ["ADDED", "COLUMNS", "Processor", "SpendRows", "utc_day"]

# what an upsert adds to spend_daily's row
ADDED = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost_pico",
    "unpriced",
    "saved_pico",
    *(f"{lever}_saved_pico" for lever in LEVERS),
)
# spend_log's columns: SpendRows.build writes each row's values in this order (a row read
# back equal to its record, tests/store/test_spend_rows.py, holds the two together)
COLUMNS = tuple(SPEND_LOG.c.keys())
_MAX_STATEMENTS = 256  # NULL patterns kept; a usual gateway has a handful
_NONES = (None,) * len(COLUMNS)

Processor = Callable[[Any], Any]

_EPOCH = dt.date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=64)
def _day_of(days_since_epoch: int) -> dt.date:
    return dt.date.fromordinal(_EPOCH + days_since_epoch)


def utc_day(ts: float) -> dt.date:
    """The UTC date of unix time ``ts`` (what ``UsageRecord.day`` gives), from a cache."""
    return _day_of(int(ts // 86400))


def _pico(amount: Decimal | None) -> int | None:
    return None if amount is None else to_pico(amount)


class SpendRows:
    """``names``: the spend_log INSERT's columns in order (``COLUMNS``, else ValueError);
    ``processors``: each column's bind processor (or None); ``daily``: the same for the
    spend_daily upsert; ``sqlite``: days as text, NULLs as literals (see the module's doc)."""

    def __init__(
        self,
        names: Sequence[str],
        processors: Sequence[Processor | None] = (),
        *,
        daily: tuple[Sequence[str], Sequence[Processor | None]] = ((), ()),
        sqlite: bool = False,
    ) -> None:
        if tuple(names) != COLUMNS:
            raise ValueError(f"spend_log's columns are not the ones known here: {names}")
        self._sqlite = sqlite
        # SQLite: REAL columns take ints as they are, a bool is bound as an int (an exact
        # int, not adapted); elsewhere every column's processor runs
        self._flag: Callable[[bool], Any] = int if sqlite else bool
        self._convert = [] if sqlite else [(i, f) for i, f in enumerate(processors) if f]
        self._daily_names = tuple(daily[0])
        self._daily_day = self._daily_names.index("day") if self._daily_names else 0
        self._daily_convert = [(i, f) for i, f in enumerate(daily[1]) if f is not None]
        self._statements: dict[tuple[bool, ...], tuple[str, tuple[bool, ...]]] = {}

    def build(
        self, records: Sequence[UsageRecord]
    ) -> tuple[set[dt.date], list[tuple[Any, ...]], list[dict[str, Any]]]:
        """The batch's days, its spend_log rows (driver values) and its spend_daily sums."""
        days: set[dt.date] = set()
        rows = []
        sums: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(ADDED, 0))
        flag, convert, sqlite = self._flag, self._convert, self._sqlite
        for r in records:
            day = utc_day(r.ts)
            days.add(day)
            cost, saved = _pico(r.cost), _pico(r.saved)
            cache, prompt, batch = _pico(r.cache_saved), _pico(r.prompt_saved), _pico(r.batch_saved)
            values: Any = (
                day.isoformat() if sqlite else day,  # the text sqlite3's date adapter writes
                r.ts,
                r.request_id,
                r.key_id,
                r.user_id,
                r.team_id,
                ",".join(r.tags) or None,
                r.model,
                r.deployment,
                r.provider,
                r.served_model,
                flag(r.stream),
                r.prompt_tokens,
                r.completion_tokens,
                r.cached_tokens,
                r.cache_write_tokens,
                r.cache_write_1h_tokens,
                r.reasoning_tokens,
                cost,
                r.latency_ms,
                r.ttft_ms,
                r.finish_reason,
                r.attempts,
                flag(r.cache_hit),
                r.error,
                r.record_id,
                r.tier,
                r.tier_score,
                saved,
                None if r.fallback is None else flag(r.fallback),
                cache,
                prompt,
                batch,
                r.attempt_log,
            )
            if convert:
                values = list(values)
                for i, f in convert:
                    values[i] = f(values[i])
                values = tuple(values)
            rows.append(values)
            acc = sums[(day, r.key_id or "", r.team_id or "", r.user_id or "", r.model)]
            acc["requests"] += 1
            acc["errors"] += r.error is not None
            acc["prompt_tokens"] += r.prompt_tokens
            acc["completion_tokens"] += r.completion_tokens
            acc["cached_tokens"] += r.cached_tokens
            acc["cache_write_tokens"] += r.cache_write_tokens
            acc["cache_write_1h_tokens"] += r.cache_write_1h_tokens
            if cost is None:
                acc["unpriced"] += r.error is None
            else:
                acc["cost_pico"] += cost
            if saved is not None:
                acc["saved_pico"] += saved
            if cache is not None:
                acc["cache_saved_pico"] += cache
            if prompt is not None:
                acc["prompt_saved_pico"] += prompt
            if batch is not None:
                acc["batch_saved_pico"] += batch
        daily = [
            {"day": k[0], "key_id": k[1], "team_id": k[2], "user_id": k[3], "model": k[4], **v}
            for k, v in sums.items()
        ]
        return days, rows, daily

    def daily_rows(self, daily: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """``build``'s sums as the upsert's driver values."""
        rows = []
        for sums in daily:
            values = [sums[n] for n in self._daily_names]
            if self._sqlite:
                values[self._daily_day] = values[self._daily_day].isoformat()
            for i, convert in self._daily_convert:
                values[i] = convert(values[i])
            rows.append(tuple(values))
        return rows

    def statements(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> list[tuple[str, list[Any]]]:
        """``sql`` (the INSERT with one ``?`` per column) and the rows to execute it with, as
        one statement per NULL pattern with those columns' values left out (SQLite)."""
        if not self._sqlite:
            return [(sql, list(rows))]
        groups: dict[tuple[bool, ...], tuple[str, tuple[bool, ...], list[Any]]] = {}
        for row in rows:
            nulls = tuple(map(operator.is_, row, _NONES))
            group = groups.get(nulls)
            if group is None:
                statement, keep = self._statement(sql, nulls)
                group = groups[nulls] = (statement, keep, [])
            group[2].append(tuple(compress(row, group[1])))
        return [(statement, values) for statement, _, values in groups.values()]

    def _statement(self, sql: str, nulls: tuple[bool, ...]) -> tuple[str, tuple[bool, ...]]:
        found = self._statements.get(nulls)
        if found is None:
            head, sep, _ = sql.rpartition(" VALUES (")
            values = ", ".join("NULL" if null else "?" for null in nulls)
            keep = tuple(not null for null in nulls)
            if len(self._statements) >= _MAX_STATEMENTS:
                self._statements.clear()
            found = self._statements[nulls] = (f"{head}{sep}{values})", keep)
        return found
