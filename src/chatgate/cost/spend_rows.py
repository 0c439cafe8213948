"""A batch of usage records as the spend log's SQL parameters: each record's ``spend_log``
values (one tuple, in the compiled INSERT's column order) and the batch's ``spend_daily`` sums.

Built once per record with C-level getters: a record's day and its picodollar amounts are
computed once and shared by its row and the sums. On SQLite two kinds of value cost the
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
from itertools import compress
from typing import Any

from chatgate.cost.budgets import to_pico
from chatgate.cost.usage import UsageRecord
from chatgate.store.schema.spend import LEVERS

__all__ = ["ADDED", "Processor", "SpendRows", "utc_day"]

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
# spend_log columns read from a record field of another name (converted after the read)
_SOURCE = {
    "day": "ts",
    "cost_pico": "cost",
    "saved_pico": "saved",
    **{f"{lever}_saved_pico": f"{lever}_saved" for lever in LEVERS},
}
_TOKENS = ADDED[2:7]  # summed as they are
_SAVED = ADDED[9:]  # summed where not NULL
_IS_NULL = functools.partial(operator.is_, None)
_MAX_STATEMENTS = 256  # NULL patterns kept; a usual gateway has a handful

Processor = Callable[[Any], Any]

_EPOCH = dt.date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=64)
def _day_of(days_since_epoch: int) -> dt.date:
    return dt.date.fromordinal(_EPOCH + days_since_epoch)


def utc_day(ts: float) -> dt.date:
    """The UTC date of unix time ``ts`` (what ``UsageRecord.day`` gives), from a cache."""
    return _day_of(int(ts // 86400))


class SpendRows:
    """``names``: the spend_log INSERT's columns in order; ``processors``: each column's
    bind processor (or None); ``daily``: the same for the spend_daily upsert;
    ``sqlite``: days as text, NULLs as literals (see the module's doc)."""

    def __init__(
        self,
        names: Sequence[str],
        processors: Sequence[Processor | None] = (),
        *,
        daily: tuple[Sequence[str], Sequence[Processor | None]] = ((), ()),
        sqlite: bool = False,
    ) -> None:
        self.names = tuple(names)
        sources = [_SOURCE.get(n, n) for n in self.names]
        missing = [s for s in sources if not hasattr(UsageRecord, s)]
        if missing:
            raise ValueError(f"spend_log columns with no UsageRecord field: {missing}")
        self._get = operator.attrgetter(*sources)
        at = {n: i for i, n in enumerate(self.names)}
        self._day = at["day"]
        self._tags = at["tags"]
        self._picos = [i for i, n in enumerate(self.names) if n.endswith("_pico")]
        self._convert = [(i, f) for i, f in enumerate(processors) if f is not None]
        self._daily_names = tuple(daily[0])
        self._daily_day = self._daily_names.index("day") if self._daily_names else 0
        self._daily_convert = [(i, f) for i, f in enumerate(daily[1]) if f is not None]
        self._key = [at[n] for n in ("key_id", "team_id", "user_id", "model")]
        self._error, self._cost = at["error"], at["cost_pico"]
        self._tokens = [(n, at[n]) for n in _TOKENS]
        self._saved = [(n, at[n]) for n in _SAVED]
        self._sqlite = sqlite
        self._statements: dict[tuple[bool, ...], tuple[str, tuple[bool, ...]]] = {}

    def build(
        self, records: Sequence[UsageRecord]
    ) -> tuple[set[dt.date], list[tuple[Any, ...]], list[dict[str, Any]]]:
        """The batch's days, its spend_log rows (driver values) and its spend_daily sums."""
        days: set[dt.date] = set()
        rows = []
        sums: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(ADDED, 0))
        for r in records:
            values = list(self._get(r))
            day = values[self._day] = utc_day(r.ts)
            days.add(day)
            values[self._tags] = ",".join(r.tags) or None
            for i in self._picos:
                if values[i] is not None:
                    values[i] = to_pico(values[i])
            self._add(sums, day, values)
            if self._sqlite:
                values[self._day] = day.isoformat()  # what sqlite3's date adapter writes
            for i, convert in self._convert:
                values[i] = convert(values[i])
            rows.append(tuple(values))
        daily = [
            {"day": k[0], "key_id": k[1], "team_id": k[2], "user_id": k[3], "model": k[4], **v}
            for k, v in sums.items()
        ]
        return days, rows, daily

    def _add(self, sums: dict[tuple[Any, ...], dict[str, int]], day: Any, v: list[Any]) -> None:
        key_id, team_id, user_id, model = (v[i] for i in self._key)
        acc = sums[(day, key_id or "", team_id or "", user_id or "", model)]
        acc["requests"] += 1
        failed = v[self._error] is not None
        acc["errors"] += failed
        for name, i in self._tokens:
            acc[name] += v[i]
        for name, i in self._saved:
            if v[i] is not None:
                acc[name] += v[i]
        if v[self._cost] is None:
            acc["unpriced"] += not failed
        else:
            acc["cost_pico"] += v[self._cost]

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
            nulls = tuple(map(_IS_NULL, row))
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
