"""The production client: 10 threads on chatgate's blocking API, every call held against a
$100 budget before it is sent, and a throughput report at the end (see README.md).

    OPENAI_API_KEY=sk-... python examples/production_client/main.py --calls 200
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import chatgate
from chatgate.cost.budgets import Reservation

QUESTIONS = (
    "Summarise the return policy in one sentence.",
    "Translate 'thank you for your order' into French.",
    "Give three subject lines for a shipping-delay email.",
    "What is the capital of Australia?",
    "Rewrite 'pls send invoice asap' politely.",
)


@dataclass(frozen=True)
class Settings:
    model: str = "openai/gpt-4o-mini"
    budget_usd: Decimal = Decimal("100")
    threads: int = 10
    calls: int = 200
    max_tokens: int = 256
    api_base: str | None = None  # None: the provider's env var (OPENAI_BASE_URL) or default
    api_key: str | None = None  # None: the provider's env var (OPENAI_API_KEY)


@dataclass(frozen=True)
class Report:
    answered: int
    refused: int  # refused by the budget before anything was sent
    failed: int
    elapsed_s: float
    calls_per_s: float
    p50_ms: float
    p95_ms: float
    total_cost: Decimal  # the answers' costs, summed
    spent: Decimal  # what the budget counted
    budget: Decimal

    def lines(self) -> list[str]:
        return [
            f"calls       {self.answered} answered, {self.refused} refused by the budget, "
            f"{self.failed} failed",
            f"throughput  {self.calls_per_s:.1f} calls/s over {self.elapsed_s:.2f} s",
            f"latency     p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms",
            f"cost        ${self.total_cost:f} (budget: ${self.spent:f} spent of ${self.budget})",
        ]


class BudgetGuard:
    """chatgate.Budgets for worker threads, through its blocking face (``budgets.sync``: the
    calls run on chatgate's own loop thread), where a refusal caused only by other calls'
    holds waits for those calls to end instead of refusing early."""

    def __init__(self, budgets: chatgate.Budgets) -> None:
        self.budgets = budgets.sync
        self._ended = threading.Condition()
        self._in_flight = 0

    def reserve(self, model: str, messages: Sequence[Any], max_tokens: int) -> Reservation:
        """Hold the call's worst case; raise BudgetExceededError when it would cross the
        budget even once every call in flight has ended."""
        need = self.budgets.worst_case(model, messages, max_tokens=max_tokens)
        with self._ended:
            while True:
                try:
                    hold = self.budgets.reserve(model, messages, max_tokens=max_tokens)
                except chatgate.BudgetExceededError:
                    if self._in_flight == 0 or self.left() < need:
                        raise
                    self._ended.wait()  # a hold in flight turns into its (smaller) cost
                    continue
                self._in_flight += 1
                return hold

    def settle(self, hold: Reservation, cost: Decimal | None) -> None:
        """``cost`` None (no price) charges the whole hold; Decimal(0) releases it."""
        self.budgets.settle(hold, cost)
        with self._ended:
            self._in_flight -= 1
            self._ended.notify_all()

    def left(self) -> Decimal:
        """What the tightest budget has left, not counting holds in flight."""
        return min((s.limit - s.spent for s in self.budgets.status()), default=Decimal(0))

    def spent(self) -> Decimal:
        return max((s.spent for s in self.budgets.status()), default=Decimal(0))


@dataclass(frozen=True)
class Outcome:
    status: str  # "answered" | "refused" | "failed"
    latency_s: float = 0.0
    cost: Decimal = Decimal(0)


def call_one(settings: Settings, guard: BudgetGuard, prompt: str) -> Outcome:
    messages = [{"role": "user", "content": prompt}]
    try:
        hold = guard.reserve(settings.model, messages, settings.max_tokens)
    except chatgate.BudgetExceededError:
        return Outcome("refused")  # nothing was sent: the call could have crossed the budget
    started = time.perf_counter()
    try:
        response = chatgate.completion(
            settings.model,
            messages,
            max_tokens=settings.max_tokens,
            api_base=settings.api_base,
            api_key=settings.api_key,
        )
    except chatgate.ChatgateError:
        guard.settle(hold, Decimal(0))  # refused or unanswered: nothing to pay
        return Outcome("failed")
    latency = time.perf_counter() - started
    guard.settle(hold, response.meta.cost)
    return Outcome("answered", latency, response.meta.cost or Decimal(0))


def run(settings: Settings, prompts: Sequence[str] | None = None) -> Report:
    prompts = prompts or [QUESTIONS[i % len(QUESTIONS)] for i in range(settings.calls)]
    budgets = chatgate.Budgets([chatgate.Budget("global", settings.budget_usd, "lifetime")])
    guard = BudgetGuard(budgets)
    # Holds count prompts: load the tokenizer (~1 s, once) before the clock starts.
    chatgate.count_tokens(settings.model, [{"role": "user", "content": "warm-up"}])
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=settings.threads) as pool:
        outcomes = list(pool.map(lambda p: call_one(settings, guard, p), prompts))
    elapsed = time.perf_counter() - started
    spent = guard.spent()
    answered = [o for o in outcomes if o.status == "answered"]
    latencies_ms = sorted(o.latency_s * 1000 for o in answered)
    # 99 cut points: [49] is the median, [94] the 95th percentile
    cuts = statistics.quantiles(latencies_ms, n=100) if len(latencies_ms) > 1 else latencies_ms * 99
    return Report(
        answered=len(answered),
        refused=sum(o.status == "refused" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        elapsed_s=elapsed,
        calls_per_s=len(answered) / elapsed if elapsed else 0.0,
        p50_ms=cuts[49] if cuts else 0.0,
        p95_ms=cuts[94] if cuts else 0.0,
        total_cost=sum((o.cost for o in answered), Decimal(0)),
        spent=spent,
        budget=settings.budget_usd,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=Settings.model)
    parser.add_argument("--budget", type=Decimal, default=Settings.budget_usd, help="USD")
    parser.add_argument("--calls", type=int, default=Settings.calls)
    parser.add_argument("--threads", type=int, default=Settings.threads)
    parser.add_argument("--max-tokens", type=int, default=Settings.max_tokens)
    args = parser.parse_args(argv)
    settings = Settings(
        model=args.model,
        budget_usd=args.budget,
        threads=args.threads,
        calls=args.calls,
        max_tokens=args.max_tokens,
    )
    report = run(settings)
    print("\n".join(report.lines()))
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
