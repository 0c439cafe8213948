"""`chatgate spend`: a spend report as a table (rich when installed, plain text otherwise), or
as JSON with ``--json``.

The table explains a cost, so it shows the prompt's cache reads and writes next to the
tokens, and what was saved (tiered routing, response-cache hits, prompt-cache reads, batch
discounts: the column is their sum, the line under the table each lever's total). The same
prompt token costs 0.1x (read), 1x, 1.25x (5-minute write) or 2x (1-hour write) the input
price. To fit 100 columns, headers take two lines and token counts from
100,000 up are shortened to three digits (``2.31M``); ``--json`` has every number exact.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import astuple
from decimal import Decimal

import orjson

from chatgate.cost.report import SpendRow, spend_report
from chatgate.errors import InvalidRequestError

__all__ = ["compact", "format_plain", "run"]

HEADERS = (  # (top line, bottom line) of each column after the group's; "total (part)"
    ("requests", "(errors)"),
    ("prompt", "tokens"),
    ("cache", "read"),
    ("cache write", "(1h)"),
    ("completion", "tokens"),
    ("cost", "(USD)"),
)
SAVED = ("saved", "(USD)")  # shown when any lever saved anything (docs/cost.md)
DATABASE_ENV = "CHATGATE_DATABASE_URL"
UNPRICED_NOTE = "(+N): N successful calls had no price and are not in the cost"
_UNITS = (("k", 10**3), ("M", 10**6), ("B", 10**9))


def compact(n: int) -> str:
    """``n`` in at most 6 characters: exact below 100,000 (``12,345``), else three digits
    and a unit (``312k``, ``2.31M``, ``12.3B``)."""
    if n < 100_000:
        return f"{n:,}"
    for unit, size in _UNITS:
        value = n / size
        if value < 999.5 or unit == "B":
            digits = 2 if value < 9.995 else 1 if value < 99.95 else 0
            return f"{value:.{digits}f}{unit}"
    raise AssertionError("unreachable")  # the loop returns at "B"


def _with_part(total: str, part: int, shown: str) -> str:
    return f"{total} ({shown})" if part else total


def _saved(row: SpendRow) -> Decimal:
    return sum(row.by_lever.values(), Decimal(0))


def _heads(rows: list[SpendRow]) -> tuple[tuple[str, str], ...]:
    return (*HEADERS, SAVED) if any(_saved(r) for r in rows) else HEADERS


def lever_line(rows: list[SpendRow]) -> str | None:
    """Each lever's saving over the rows, next to the spend: None when nothing was saved."""
    total = _total(rows)
    levers = [f"{name} {usd:.6f}" for name, usd in total.by_lever.items() if usd]
    if not levers:
        return None
    return f"spent {total.cost:.6f} USD; saved {_saved(total):.6f}: " + ", ".join(levers)


def _cells(row: SpendRow, saved: bool = False) -> list[str]:
    cells = [
        _with_part(f"{row.requests:,}", row.errors, f"{row.errors:,}"),
        compact(row.prompt_tokens),
        compact(row.cached_tokens),
        _with_part(
            compact(row.cache_write_tokens),
            row.cache_write_1h_tokens,
            compact(row.cache_write_1h_tokens),
        ),
        compact(row.completion_tokens),
        _with_part(f"{row.cost:.6f}", row.unpriced, f"+{row.unpriced}"),
    ]
    return [*cells, f"{_saved(row):.6f}"] if saved else cells


def _total(rows: list[SpendRow]) -> SpendRow:
    zero = SpendRow("TOTAL", 0, 0, 0, 0, Decimal(0), 0)
    columns = zip(*(astuple(r)[1:] for r in [zero, *rows]), strict=True)
    return SpendRow("TOTAL", *(sum(values) for values in columns))


def format_plain(by: str, rows: list[SpendRow]) -> str:
    heads = [("", by), *_heads(rows)]
    saved = len(heads) > len(HEADERS) + 1
    body = [[r.group, *_cells(r, saved)] for r in [*rows, _total(rows)]]
    widths = [
        max(len(h[1]), len(h[0]), *(len(line[i]) for line in body)) for i, h in enumerate(heads)
    ]

    def line(cells: list[str]) -> str:
        padded = [cells[0].ljust(widths[0])]
        padded += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line([h[0] for h in heads]), line([h[1] for h in heads]), rule]
    out += [line(cells) for cells in body[:-1]]
    out += [rule, line(body[-1])]
    if any(r.unpriced for r in rows):
        out.append(UNPRICED_NOTE)
    levers = lever_line(rows)
    if levers:
        out.append(levers)
    return "\n".join(out)


def _print_rich(by: str, since: str, rows: list[SpendRow]) -> bool:
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    table = Table(
        title=f"spend by {by} since {since}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    table.add_column(by, overflow="fold")  # a long name wraps rather than losing its end
    heads = _heads(rows)
    saved = len(heads) > len(HEADERS)
    for top, bottom in heads:
        table.add_column(f"{top}\n{bottom}".strip(), justify="right", overflow="fold")
    for row in rows:
        table.add_row(row.group, *_cells(row, saved))
    table.add_section()
    table.add_row(*[f"[bold]{c}[/bold]" for c in ["TOTAL", *_cells(_total(rows), saved)]])
    console = Console()
    console.print(table)
    if any(r.unpriced for r in rows):
        console.print(UNPRICED_NOTE, style="dim")
    levers = lever_line(rows)
    if levers:
        console.print(levers)
    return True


def _database_url(args: argparse.Namespace) -> str | None:
    if args.db:
        return str(args.db)
    if args.config:
        from chatgate import config as config_module

        return config_module.load(args.config).general_settings.database_url
    return os.environ.get(DATABASE_ENV)


def run(args: argparse.Namespace) -> int:
    try:
        rows = spend_report(args.by, args.since, database_url=_database_url(args))
    except InvalidRequestError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        data = {"by": args.by, "since": args.since, "data": [r.to_json() for r in rows]}
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not rows:
        print(f"no spend recorded since {args.since}")
        return 0
    if not (sys.stdout.isatty() and _print_rich(args.by, args.since, rows)):
        print(format_plain(args.by, rows))
    return 0
