"""Budget counters in SQL (SQLite or PostgreSQL), atomic across processes.

A reservation is one transaction: for each budget line, in a fixed order (so two
transactions never wait on each other's rows in opposite orders), make sure the counter row
exists, then

    UPDATE budget_counters SET reserved_pico = reserved_pico + :amount
     WHERE budget_id = :id AND period = :period
       AND spent_pico + reserved_pico + :amount <= :limit

If any line updates no row, the transaction rolls back and the call is refused. PostgreSQL
row locks (and SQLite's single writer, taken at BEGIN IMMEDIATE) make the check and the
increment one step, whatever the number of processes. Holds are recorded in
``budget_reservations`` with an expiry, so a process that dies mid-call does not leave money
held forever: ``sweep`` releases them, and ``settle`` knows whether its hold was swept. A
live process pushes back the expiry of its own holds still in use (``renew``), so a call
that outlasts the expiry (a long stream) keeps its hold.

Several processes may sweep at once: a reservation row is deleted by one transaction only
(PostgreSQL's row locks; SQLite's single writer), and only the one that deleted it releases
its amount; counters are updated in a fixed order, as in ``reserve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatgate.cost.budgets import Line
from chatgate.store.engine import create_engine
from chatgate.store.migrations import migrate
from chatgate.store.schema.budgets import BUDGET_COUNTERS, BUDGET_RESERVATIONS

__all__ = ["SqlBudgetBackend"]

_RENEW_BATCH = 500  # ids per UPDATE: far under SQLite's and asyncpg's bound-parameter limits

C = BUDGET_COUNTERS.c
R = BUDGET_RESERVATIONS.c


class _Refused(Exception):
    def __init__(self, line: Line, spent: int, reserved: int) -> None:
        super().__init__(line.budget_id)
        self.found = (line, spent, reserved)


def _ordered(lines: Sequence[Line]) -> list[Line]:
    return sorted(lines, key=lambda x: (x.budget_id, x.period))


def _where(line: Line) -> Any:
    return and_(C.budget_id == line.budget_id, C.period == line.period)


class SqlBudgetBackend:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert = dialect.insert
        self._open: dict[str, float] = {}  # holds taken here, not yet settled -> expiry

    @classmethod
    async def open(cls, url: str) -> SqlBudgetBackend:
        """Connect to ``url`` and bring its schema up to date."""
        engine = create_engine(url)
        await migrate(engine)
        return cls(engine)

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def _ensure(self, conn: AsyncConnection, line: Line) -> None:
        row = {"budget_id": line.budget_id, "period": line.period}
        await conn.execute(self._insert(BUDGET_COUNTERS).values(**row).on_conflict_do_nothing())

    async def reserve(
        self, reservation_id: str, lines: Sequence[Line], amount: int, expires_at: float
    ) -> tuple[Line, int, int] | None:
        try:
            async with self.engine.begin() as conn:
                for line in _ordered(lines):
                    await self._ensure(conn, line)
                    held = await conn.execute(
                        update(BUDGET_COUNTERS)
                        .where(_where(line), C.spent_pico + C.reserved_pico + amount <= line.limit)
                        .values(reserved_pico=C.reserved_pico + amount)
                    )
                    if held.rowcount != 1:
                        now = await conn.execute(
                            select(C.spent_pico, C.reserved_pico).where(_where(line))
                        )
                        spent, reserved = now.one()
                        raise _Refused(line, int(spent), int(reserved))  # rolls back
                await conn.execute(
                    BUDGET_RESERVATIONS.insert(),
                    [
                        {
                            "reservation_id": reservation_id,
                            "budget_id": line.budget_id,
                            "period": line.period,
                            "amount_pico": amount,
                            "expires_at": expires_at,
                        }
                        for line in lines
                    ],
                )
        except _Refused as refused:
            return refused.found
        self._open[reservation_id] = expires_at
        return None

    async def settle(
        self, reservation_id: str, lines: Sequence[Line], reserved: int, actual: int
    ) -> list[int]:
        after: dict[tuple[str, str], int] = {}
        self._open.pop(reservation_id, None)
        async with self.engine.begin() as conn:
            dropped = await conn.execute(
                delete(BUDGET_RESERVATIONS).where(R.reservation_id == reservation_id)
            )
            held = reserved if dropped.rowcount else 0  # 0: swept already, nothing held
            for line in _ordered(lines):
                await self._ensure(conn, line)
                result = await conn.execute(
                    update(BUDGET_COUNTERS)
                    .where(_where(line))
                    .values(
                        spent_pico=C.spent_pico + actual,
                        reserved_pico=C.reserved_pico - held,
                    )
                    .returning(C.spent_pico)
                )
                after[(line.budget_id, line.period)] = int(result.scalar_one())
        return [after[(line.budget_id, line.period)] for line in lines]

    async def read(self, lines: Sequence[Line]) -> list[tuple[int, int]]:
        if not lines:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(C.budget_id, C.period, C.spent_pico, C.reserved_pico).where(
                    C.budget_id.in_({line.budget_id for line in lines})
                )
            )
            found = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}
        return [found.get((line.budget_id, line.period), (0, 0)) for line in lines]

    async def renew(self, before: float, expires_at: float) -> int:
        due = sorted(rid for rid, until in self._open.items() if until < before)
        if not due:
            return 0
        async with self.engine.begin() as conn:
            for start in range(0, len(due), _RENEW_BATCH):
                await conn.execute(
                    update(BUDGET_RESERVATIONS)
                    .where(R.reservation_id.in_(due[start : start + _RENEW_BATCH]))
                    .values(expires_at=expires_at)
                )
        for rid in due:
            if rid in self._open:  # not settled meanwhile
                self._open[rid] = expires_at
        return len(due)

    async def sweep(self, now: float) -> int:
        async with self.engine.begin() as conn:
            expired = (
                await conn.execute(
                    delete(BUDGET_RESERVATIONS)
                    .where(R.expires_at < now)
                    .returning(R.reservation_id, R.budget_id, R.period, R.amount_pico)
                )
            ).all()
            for _, budget_id, period, amount in sorted(expired, key=lambda r: (r[1], r[2])):
                await conn.execute(
                    update(BUDGET_COUNTERS)
                    .where(C.budget_id == budget_id, C.period == period)
                    .values(reserved_pico=C.reserved_pico - amount)
                )
        return len({row[0] for row in expired})
