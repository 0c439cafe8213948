"""Budgets that cannot be overspent: reserve the worst case before a call, settle after.

A ``Budget`` caps spend for one scope (a key, user, team, model, tag, or everything) over a
window (daily / monthly, in UTC, or lifetime). ``subject="*"`` gives every key (user, team,
model) its own budget of that size; a tag budget names its tag (``budget_tags``). Before a
call, ``Budgets.reserve`` computes the most it can cost (prompt tokens counted x input price +
n x max_tokens, or the model's max output, x output price: ``n`` choices each up to the cap,
the prompt billed once; a prompt count that is only an estimate is raised by
``estimate_margin``) and reserves it atomically against every budget that applies: all of them
or none. A budget that cannot cover it refuses with ``BudgetExceededError`` (HTTP 402, what is
left, when it resets). After the call, ``settle`` replaces the reservation by the actual cost;
``release`` drops it when nothing was spent. Soft alerts fire once per threshold crossing (log
line ``chatgate.budget`` + ``on_alert`` callback).

Backends (``budget_backends``): in memory for one process, or SQL (``budgets_sql``;
SQLite/PostgreSQL, atomic across processes), behind the async ``BudgetBackend`` protocol.
``budgets.sync`` is the blocking face (``budgets_sync``); ``Router(budgets=...)`` holds and
settles for every call of a Router, blocking ones included.
A hold expires ``reservation_ttl_s`` after it was taken or last renewed: ``maintain``, run
periodically in every process, renews the process's holds still in use and releases the
expired ones, so the holds of a process that died come back within the TTL plus a period.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from chatgate.cost.budget_backends import BudgetBackend, MemoryBudgetBackend
from chatgate.cost.budget_periods import BudgetAlert, BudgetState, Window, period_of
from chatgate.cost.budget_tags import check_tag_subject
from chatgate.cost.budgets_sync import SyncBudgets
from chatgate.cost.calc import upper_bound
from chatgate.cost.prices import ModelPrice, lookup_price
from chatgate.errors import BudgetExceededError, InvalidRequestError
from chatgate.telemetry.metrics import record_budget

__all__ = [
    "HOLD_TTL_MARGIN_S",
    "Budget",
    "BudgetAlert",
    "BudgetState",
    "Budgets",
    "Line",
    "Reservation",
    "Window",
    "from_pico",
    "hold_ttl_for",
    "period_of",
    "to_pico",
]

log = logging.getLogger("chatgate.budget")

Scope = Literal["key", "user", "team", "model", "tag", "global"]
PICO = Decimal(10**12)
_MAX_PICO = 2**63 - 1
_MAX_MAINTAIN_EVERY_S = 30.0
_MIN_MAINTAIN_EVERY_S = 0.25
# Added to the longest call: time to settle, and clock skew between the hosts that take and
# sweep holds (expiries are wall-clock times).
HOLD_TTL_MARGIN_S = 60.0


def hold_ttl_for(longest_call_s: float) -> float:
    """The default hold TTL for calls that take at most ``longest_call_s``."""
    return longest_call_s + HOLD_TTL_MARGIN_S


def to_pico(amount: Decimal) -> int:
    """USD -> integer picodollars, rounded up (spend is never undercounted)."""
    return int((amount * PICO).to_integral_value(rounding=ROUND_CEILING))


def from_pico(value: int) -> Decimal:
    return Decimal(value) / PICO


@dataclass(frozen=True, slots=True)
class Budget:
    scope: Scope
    limit: Decimal  # USD
    window: Window = "monthly"
    subject: str = "*"  # the key/user/team/model it caps; "*": each one its own budget
    alerts: tuple[Decimal, ...] = (Decimal("0.8"),)

    def __post_init__(self) -> None:
        limit = Decimal(str(self.limit))
        if not 0 <= limit * PICO <= _MAX_PICO:
            raise InvalidRequestError(
                f"budget limit must be between $0 and $9,000,000, got {self.limit}",
                param="limit",
            )
        alerts = tuple(Decimal(str(a)) for a in self.alerts)
        if any(not 0 < a <= 1 for a in alerts):
            raise InvalidRequestError("budget alerts are fractions in (0, 1]", param="alerts")
        if self.scope == "tag":
            check_tag_subject(self.subject)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "alerts", alerts)

    def subject_for(self, who: dict[str, str | None]) -> str | None:
        """The concrete subject this budget caps for a caller, or None if it does not apply
        (a tag budget: see ``Budgets.lines_for``)."""
        if self.scope == "global":
            return "*"
        value = who.get(self.scope)
        if value is None or (self.subject != "*" and self.subject != value):
            return None
        return value


@dataclass(frozen=True, slots=True)
class Line:
    """One budget's counter for one period, as a reservation touches it."""

    budget: Budget
    budget_id: str  # scope:subject:window
    period: str
    limit: int  # picodollars
    resets_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    lines: tuple[Line, ...]
    amount: int  # picodollars held
    model: str

    @property
    def amount_usd(self) -> Decimal:
        return from_pico(self.amount)


@dataclass
class Budgets:
    """The budgets in force and where their counters live. See the module docstring."""

    budgets: Sequence[Budget]
    backend: BudgetBackend = field(default_factory=MemoryBudgetBackend)
    on_alert: Callable[[BudgetAlert], Any] | None = None
    clock: Callable[[], float] = time.time
    # A hold not renewed for this long is released by sweep_expired(): its process died.
    reservation_ttl_s: float = 900.0
    estimate_margin: Decimal = Decimal("1.2")  # for prompt counts that are estimates
    unpriced: Literal["deny", "allow"] = "deny"  # a model with no price, under a budget

    def lines_for(
        self,
        *,
        model: str | None = None,
        key: str | None = None,
        user: str | None = None,
        team: str | None = None,
        tags: Sequence[str] = (),
        extra: Sequence[Budget] = (),
    ) -> tuple[Line, ...]:
        """The budgets that apply to a call; ``extra`` adds the caller's own (e.g. the budget
        stored on a virtual key). A tag budget applies when its tag is among ``tags``."""
        who = {"key": key, "user": user, "team": team, "model": model}
        now = self.clock()
        lines = []
        for budget in (*self.budgets, *extra):
            if budget.scope == "tag":
                subject = budget.subject if budget.subject in tags else None
            else:
                subject = budget.subject_for(who)
            if subject is None:
                continue
            period, resets = period_of(budget.window, now)
            budget_id = f"{budget.scope}:{subject}:{budget.window}"
            lines.append(Line(budget, budget_id, period, to_pico(budget.limit), resets))
        return tuple(lines)

    def worst_case(
        self,
        model: str,
        messages: Sequence[Any],
        *,
        tools: Sequence[Any] | None = None,
        max_tokens: int | None = None,
        price: ModelPrice | None = None,
        n: int = 1,
    ) -> Decimal:
        """The most the call can cost (the amount ``reserve`` holds). ``n`` choices may each
        use the whole output cap; the prompt is billed once (OpenAI and Gemini count it once
        in the usage of an answer with several choices)."""
        from chatgate.cost.tokens import count_tokens

        price = price or lookup_price(model)
        if price is None:
            if self.unpriced == "allow":
                return Decimal(0)
            raise InvalidRequestError(
                f"{model} has no price, so a budget cannot be enforced for it: give it a price "
                "(input_cost_per_token/output_cost_per_token, or free: true) or set "
                "Budgets(unpriced='allow')",
                param="model",
            )
        if price.free:  # self-hosted or free: nothing to hold, whatever the output length
            return Decimal(0)
        limit = max_tokens or price.max_output
        if limit is None:
            raise InvalidRequestError(
                f"{model} has no known output limit: pass max_tokens so the call can be budgeted",
                param="max_tokens",
            )
        counted = count_tokens(model, messages, tools)
        prompt = (
            counted.tokens if counted.exact else math.ceil(counted.tokens * self.estimate_margin)
        )
        return upper_bound(price, prompt, limit * max(n, 1))

    async def reserve(
        self,
        model: str,
        messages: Sequence[Any],
        *,
        tools: Sequence[Any] | None = None,
        max_tokens: int | None = None,
        price: ModelPrice | None = None,
        n: int = 1,
        key: str | None = None,
        user: str | None = None,
        team: str | None = None,
        tags: Sequence[str] = (),
        extra: Sequence[Budget] = (),
    ) -> Reservation:
        """Hold the call's worst case (``n`` choices) on every budget that applies, or raise
        BudgetExceededError. Always settle() or release() the result."""
        lines = self.lines_for(model=model, key=key, user=user, team=team, tags=tags, extra=extra)
        if not lines:
            return Reservation(uuid.uuid4().hex, (), 0, model)
        amount = self.worst_case(
            model, messages, tools=tools, max_tokens=max_tokens, price=price, n=n
        )
        return await self._hold(model, lines, amount)

    async def reserve_amount(
        self,
        amount: Decimal,
        *,
        model: str,
        key: str | None = None,
        user: str | None = None,
        team: str | None = None,
        tags: Sequence[str] = (),
        extra: Sequence[Budget] = (),
    ) -> Reservation:
        """Hold a given amount (embeddings, batch jobs: anything priced by the caller)."""
        lines = self.lines_for(model=model, key=key, user=user, team=team, tags=tags, extra=extra)
        return await self._hold(model, lines, amount)

    async def _hold(self, model: str, lines: tuple[Line, ...], amount: Decimal) -> Reservation:
        reservation = Reservation(uuid.uuid4().hex, lines, to_pico(amount), model)
        if not lines:
            return reservation
        expires = self.clock() + self.reservation_ttl_s
        refused = await self.backend.reserve(reservation.id, lines, reservation.amount, expires)
        if refused is not None:
            line, spent, reserved = refused
            left = from_pico(max(line.limit - spent - reserved, 0))
            when = line.resets_at.isoformat() if line.resets_at else "never (lifetime budget)"
            raise BudgetExceededError(
                f"budget {line.budget_id} (${line.budget.limit}) has ${left:f} left and this "
                f"call may cost up to ${from_pico(reservation.amount):f}; it resets {when}",
                budget=line.budget_id,
                limit=line.budget.limit,
                remaining=left,
                resets_at=line.resets_at,
                model=model,
            )
        return reservation

    async def settle(self, reservation: Reservation, actual: Decimal | None) -> None:
        """Replace the hold by the actual cost. ``None`` (cost unknown) charges the hold."""
        if not reservation.lines:
            return
        spent = reservation.amount if actual is None else to_pico(actual)
        after = await self.backend.settle(
            reservation.id, reservation.lines, reservation.amount, spent
        )
        for line, now_spent in zip(reservation.lines, after, strict=True):
            self._alert(line, now_spent - spent, now_spent)
            record_budget(line.budget_id, line.period, from_pico(now_spent), line.budget.limit)

    async def release(self, reservation: Reservation) -> None:
        """The call spent nothing (failed before the provider billed): drop the hold."""
        await self.settle(reservation, Decimal(0))

    @property
    def sync(self) -> SyncBudgets:
        """The blocking face: ``budgets.sync.reserve(...)``, ``budgets.sync.status()``..."""
        return SyncBudgets(self)

    async def sweep_expired(self) -> int:
        """Release the holds whose expiry has passed; returns how many."""
        return await self.backend.sweep(self.clock())

    @property
    def maintain_every_s(self) -> float:
        """How often ``maintain`` should run: a quarter of the TTL (so a hold in use is seen
        at least twice before it would expire), at most every 30 s."""
        return max(min(self.reservation_ttl_s / 4, _MAX_MAINTAIN_EVERY_S), _MIN_MAINTAIN_EVERY_S)

    async def maintain(self) -> tuple[int, int]:
        """Renew the holds this process still uses that are past half their TTL, then release
        every expired hold (of processes that died mid-call). Run it every
        ``maintain_every_s`` in each process that takes holds; returns (renewed, released)."""
        now = self.clock()
        ttl = self.reservation_ttl_s
        renewed = await self.backend.renew(now + ttl / 2, now + ttl)
        return renewed, await self.backend.sweep(now)

    async def status(
        self,
        *,
        model: str | None = None,
        key: str | None = None,
        user: str | None = None,
        team: str | None = None,
        tags: Sequence[str] = (),
        extra: Sequence[Budget] = (),
    ) -> list[BudgetState]:
        lines = self.lines_for(model=model, key=key, user=user, team=team, tags=tags, extra=extra)
        values = await self.backend.read(lines)
        return [
            BudgetState(
                x.budget_id,
                x.period,
                x.budget.limit,
                from_pico(spent),
                from_pico(held),
                x.resets_at,
            )
            for x, (spent, held) in zip(lines, values, strict=True)
        ]

    def _alert(self, line: Line, before: int, after: int) -> None:
        if line.limit <= 0:
            return
        for threshold in line.budget.alerts:
            mark = threshold * line.limit
            if before < mark <= after:
                alert = BudgetAlert(
                    line.budget_id,
                    line.period,
                    threshold,
                    from_pico(after),
                    line.budget.limit,
                    line.resets_at,
                )
                log.warning(
                    "budget %s: %s%% of $%s used in period %s ($%s spent)",
                    line.budget_id,
                    f"{(threshold * 100).normalize():f}",
                    line.budget.limit,
                    line.period,
                    f"{alert.spent:f}",
                )
                if self.on_alert is not None:
                    self.on_alert(alert)
