"""What a batch run did: counts, tokens, the exact cost and the pace."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chatgate.types import ChatResponse

__all__ = ["BatchSummary"]

Stopped = Literal["max_cost", "interrupted", "waiting"]


@dataclass
class BatchSummary:
    total: int = 0  # requests in the input
    done: int = 0  # answered in this run
    failed: int = 0  # written as error lines in this run
    skipped: int = 0  # already in the output file (answered, or failed without retry_failed)
    unsent: int = 0  # not sent (cost cap reached, interrupted) or cancelled in flight
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)  # exact USD of this run's answers with a known price
    unpriced: int = 0  # answers whose cost is unknown (no price for their model)
    wall_s: float = 0.0
    stopped: Stopped | None = None  # why requests were left unsent
    repaired: bool = False  # the output's cut-off last line was removed before the run
    batches: list[str] = field(default_factory=list)  # provider batch ids submitted by this run
    waiting: int = 0  # lines in provider batches not collected yet (a rerun collects them)

    def count(self, response: ChatResponse) -> None:
        """One answer: its tokens and exact cost."""
        self.done += 1
        if response.usage is not None:
            self.prompt_tokens += response.usage.prompt_tokens
            self.completion_tokens += response.usage.completion_tokens
        if response.meta.cost is None:
            self.unpriced += 1
        else:
            self.cost += response.meta.cost

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def requests_per_s(self) -> float:
        return self.finished / self.wall_s if self.wall_s > 0 else 0.0

    def progress(self) -> str:
        """One short line for a progress display."""
        left = self.total - self.skipped - self.finished
        return (
            f"{self.finished}/{self.total - self.skipped} sent: {self.done} done, "
            f"{self.failed} failed, {left} to go, ${self.cost:f}"
        )

    def report(self) -> str:
        lines = [
            f"done {self.done}, failed {self.failed}, skipped {self.skipped}, "
            f"unsent {self.unsent} (of {self.total})",
            f"tokens: {self.prompt_tokens} prompt + {self.completion_tokens} completion",
            f"cost: ${self.cost:f}"
            + (f" (+ {self.unpriced} answers of unknown price)" if self.unpriced else ""),
            f"time: {self.wall_s:.2f} s, {self.requests_per_s:.1f} requests/s",
        ]
        if self.stopped == "max_cost":
            lines.append(
                f"stopped: the cost cap cannot cover the next request ({self.unsent} unsent)"
            )
        elif self.stopped == "interrupted":
            lines.append(f"interrupted: {self.unsent} unsent; run again to resume")
        if self.batches:
            lines.append(f"provider batches submitted: {', '.join(self.batches)}")
        if self.waiting:
            lines.append(
                f"waiting: {self.waiting} lines still in provider batches; run the same "
                "command again to collect them (they are not submitted again)"
            )
        if self.repaired:
            lines.append(
                "note: a cut-off last line in the output was removed (that request ran again)"
            )
        return "\n".join(lines)
