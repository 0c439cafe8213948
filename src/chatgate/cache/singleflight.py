"""Single-flight: identical requests that arrive while one is being answered share its call.

A ``Flight`` runs the upstream call in its own task, detached from whichever caller started
it, and every caller — the first one included — is a *user* of the flight:

- a caller that goes away (cancelled, stream closed) only gives up its own place; the call
  goes on while anyone still waits, and is cancelled (closing the upstream connection) when
  the last user leaves. A leader's disconnect never fails the requests that joined it.
- an upstream error reaches every user, as it would have reached each of them alone. They do
  not retry on their own: N retries of a failing call is the stampede single-flight exists to
  prevent, and retries belong inside the call (a Router's call retries and falls back before
  the flight ends). Errors are not stored (unless a policy asks), so the next request after
  the flight calls again.
- a streamed answer is fanned out as it arrives: the flight reads the upstream stream to its
  end at the upstream's pace and every user reads the chunks from the flight's buffer at its
  own, so each one sees its first token as soon as the upstream sends it.

Flights are per event loop (the sync API has its own loop): asyncio objects cannot be shared
across loops.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable
from decimal import Decimal

from chatgate.cache.replay import response_chunks
from chatgate.providers.base import Deployment
from chatgate.types import ChatChunk, ChatResponse

__all__ = ["Flight", "FlightSource", "SingleFlight"]


class Flight:
    """One call shared by several callers. ``chunks`` fills while a streamed answer arrives;
    ``response`` is the whole answer once done; ``error`` what the call raised instead."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.chunks: list[ChatChunk] = []
        self.response: ChatResponse | None = None
        self.error: BaseException | None = None
        self.opened = False  # upstream accepted (a stream), or the flight is done
        self.done = False
        self.upstream = False  # the answer came from an upstream call (not a stored entry)
        self.request_id: str | None = None  # the upstream's, for a streamed answer
        self.cost: Decimal | None = None  # what the answer cost when it was made
        self.users = 0
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._leave: Callable[[Flight], None] | None = None

    # --- the call's side -----------------------------------------------------------------

    def notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def open(self) -> None:
        self.opened = True
        self.notify()

    def add(self, chunk: ChatChunk) -> None:
        self.chunks.append(chunk)
        self.notify()

    # --- the users' side -----------------------------------------------------------------

    async def wait_until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._wake.wait()

    def has_more(self, seen: int) -> bool:
        return self.done or len(self.chunks) > seen

    async def result(self) -> ChatResponse:
        """Wait for the whole answer (or raise the call's error)."""
        await self.wait_until(lambda: self.done)
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response

    def leave(self) -> None:
        if self._leave is not None:
            self._leave(self)


class FlightSource:
    """A ChunkSource for one user of a flight: the buffered live chunks as they arrive, or a
    replay of the answer when the flight did not stream. Usage-only chunks from upstream are
    held back and one usage chunk is sent at the end, so every user sees usage exactly once
    whatever the caller who started the flight asked for."""

    def __init__(self, flight: Flight, provider: str, model: str) -> None:
        self._flight = flight
        self.provider = provider
        self.model = model
        self.request_id: str | None = None
        self.deployment: Deployment | None = None  # a shared answer is priced by its maker
        self._left = False

    drained = False  # the flight's maker is still reading: chunks come as it gets them

    async def batches(self) -> AsyncGenerator[list[ChatChunk], None]:
        flight = self._flight
        sent = 0
        while True:
            await flight.wait_until(functools.partial(flight.has_more, sent))
            batch = [
                chunk if chunk.usage is None else chunk.model_copy(update={"usage": None})
                for chunk in flight.chunks[sent:]
                if chunk.choices
            ]
            sent = len(flight.chunks)
            if batch:
                yield batch  # more may arrive (and the flight end) while the caller has it
            if flight.done and sent == len(flight.chunks):
                break
        response = await flight.result()
        if sent == 0:  # not streamed: a stored entry, or a non-streamed call joined
            yield list(response_chunks(response))
        elif response.usage is not None and flight.chunks:
            yield [flight.chunks[-1].model_copy(update={"choices": [], "usage": response.usage})]

    def end(self, complete: bool) -> None:
        self.abort()

    def abort(self) -> None:
        if not self._left:
            self._left = True
            self._flight.leave()


class SingleFlight:
    """The flights in progress on one event loop, by key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    def join(self, key: str, work: Callable[[Flight], Awaitable[None]]) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether this call started it. ``work`` runs only for a
        new flight; it fills the flight (``open``/``add``/``response``) and may raise. The
        caller must ``leave()`` the flight when it no longer needs it."""
        flight = self._flights.get(key)
        started = flight is None
        if flight is None:
            flight = self._flights[key] = Flight(key)
            flight._leave = self._left
            flight.task = asyncio.ensure_future(self._run(flight, work))
        flight.users += 1
        return flight, started

    async def _run(self, flight: Flight, work: Callable[[Flight], Awaitable[None]]) -> None:
        try:
            await work(flight)
        except asyncio.CancelledError:
            flight.error = asyncio.CancelledError()
            raise
        except Exception as exc:  # not swallowed: handed to every user, who raises it
            flight.error = exc
        finally:
            flight.done = flight.opened = True
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
            flight.notify()

    def _left(self, flight: Flight) -> None:
        flight.users -= 1
        if flight.users <= 0 and not flight.done:
            # Nobody waits any more: stop the call (closing its upstream connection) and let
            # the next identical request start afresh rather than join a dying flight.
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
            if flight.task is not None:
                flight.task.cancel()
