"""How long to wait for the database before calling it unavailable: until it has finished
nothing for this process in ``silence_s``, not merely until ``silence_s`` have passed.

A burst of requests can hold every pooled connection: a lookup then spends its first seconds
in this process's own queue for one, while the database answers every query it is sent. Taken
as an outage, that turns a busy minute into 503s (``key_store_unavailable``) for requests
that would have been served. Each connection returned to the pool is the database having
answered; a hung database (it accepts connections and answers nothing) returns none, so it is
still found out after ``silence_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["StoreSilence"]

T = TypeVar("T")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # given up on: what it raised later is not an unretrieved error


class StoreSilence:
    def __init__(self, engine: AsyncEngine, silence_s: float) -> None:
        self.silence_s = silence_s
        self.answered = 0  # connections returned to the pool: the database finished something
        event.listen(engine.sync_engine, "checkin", self._checkin)

    def _checkin(self, dbapi_connection: object, record: object) -> None:
        self.answered += 1

    async def wait(self, call: Coroutine[Any, Any, T]) -> T:
        """``call``'s result; TimeoutError once ``silence_s`` pass with nothing answered."""
        task = asyncio.ensure_future(call)
        try:
            while True:
                seen = self.answered
                done, _ = await asyncio.wait((task,), timeout=self.silence_s)
                if done:
                    return task.result()
                if self.answered == seen:
                    raise TimeoutError(f"the database answered nothing in {self.silence_s:g}s")
        finally:
            if not task.done():
                task.add_done_callback(_retrieve)
                task.cancel()
