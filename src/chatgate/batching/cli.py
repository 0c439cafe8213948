"""`chatgate batch INPUT.jsonl -o OUTPUT.jsonl`: a batch run with a progress line.

Exit status: 0 every request answered or written as an error line; 1 the input, config or
output file was refused (nothing sent), or a batch API refused a submission; 2 the cost cap
left requests unsent; 3 (--provider-batch --max-wait) batches still running, rerun to
collect them; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from chatgate.errors import ChatgateError, InvalidRequestError

if TYPE_CHECKING:  # imported when the command runs: `chatgate serve` does not pay for them
    from rich.console import Console
    from rich.live import Live

    from chatgate.batching.summary import BatchSummary

__all__ = ["add_parser", "run"]

PLAIN_EVERY_S = 2.0  # progress lines when stderr is not a terminal


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}")
    return value


def _tags(text: str) -> list[str]:
    """``eu,gold``: the run's routing tags (checked by the run: at most 16 of 64 characters)."""
    tags = [t.strip() for t in text.split(",") if t.strip()]
    if not tags:
        raise argparse.ArgumentTypeError(f"no tag in {text!r}: give them like eu,gold")
    return tags


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("batch", help="run a JSONL file of chat requests (OpenAI Batch format)")
    cmd.add_argument("input", help="JSONL in OpenAI's Batch API input format")
    cmd.add_argument("-o", "--output", required=True, help="JSONL answers (appended; resumable)")
    cmd.add_argument("--config", help="YAML config: body.model names are its model_list names")
    cmd.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    cmd.add_argument("--max-cost", type=_usd, help="USD this run may spend at most")
    cmd.add_argument(
        "--retry-failed", action="store_true", help="run again the requests that failed before"
    )
    cmd.add_argument(
        "--tags",
        type=_tags,
        metavar="TAG,...",
        help="with --config: only deployments carrying every tag answer (routing tags)",
    )
    cmd.add_argument(
        "--provider-batch",
        action="store_true",
        help="submit to the providers' batch APIs (OpenAI, Anthropic, Gemini): half price",
    )
    cmd.add_argument(
        "--max-wait",
        type=float,
        metavar="SECONDS",
        help="with --provider-batch: stop polling after this long (exit 3; rerun to collect)",
    )
    cmd.set_defaults(run=run)


class _Progress:
    """One updating line on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self._last = 0.0

    def __enter__(self) -> _Progress:
        from rich.live import Live
        from rich.text import Text

        if self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, transient=True)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, summary: BatchSummary) -> None:
        from rich.text import Text

        if self.live is not None:
            self.live.update(Text(summary.progress()))
            return
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY_S:
            self._last = now
            self.console.print(summary.progress(), highlight=False)


async def _main(args: argparse.Namespace, console: Console) -> int:
    from chatgate.batching.provider.poll import PollPolicy
    from chatgate.batching.provider.run import ProviderBatchRun
    from chatgate.batching.run import BatchRun
    from chatgate.router import Router

    router = Router.from_config(args.config) if args.config else None
    with _Progress(console) as progress:
        common = {
            "router": router,
            "max_cost": args.max_cost,
            "retry_failed": args.retry_failed,
            "on_progress": progress,
            "tags": args.tags,
        }
        batch_run: BatchRun | ProviderBatchRun = (
            ProviderBatchRun(
                args.input, args.output, poll=PollPolicy(max_wait_s=args.max_wait), **common
            )
            if args.provider_batch
            else BatchRun(args.input, args.output, concurrency=args.concurrency, **common)
        )
        batch_run.prepare()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, batch_run.interrupt)
        try:
            summary = await batch_run.run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            if router is not None:
                await router.aclose()
    print(summary.report(), flush=True)
    if summary.stopped == "interrupted":
        return 130
    if summary.unsent:
        return 2
    return 3 if summary.waiting else 0


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    try:
        return asyncio.run(_main(args, console))
    except (ChatgateError, OSError) as exc:
        message = exc.message if isinstance(exc, InvalidRequestError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
