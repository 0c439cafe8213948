"""`chatgate spend`: a spend report as a table (rich when installed, plain text otherwise)."""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal

from chatgate.cost.report import SpendRow, spend_report
from chatgate.errors import InvalidRequestError

__all__ = ["format_plain", "run"]

HEADERS = ("requests", "errors", "prompt tok", "completion tok", "cost (USD)")
DATABASE_ENV = "CHATGATE_DATABASE_URL"


def _cells(row: SpendRow) -> list[str]:
    cost = f"{row.cost:.6f}" + (f" (+{row.unpriced} unpriced)" if row.unpriced else "")
    return [
        f"{row.requests:,}",
        f"{row.errors:,}",
        f"{row.prompt_tokens:,}",
        f"{row.completion_tokens:,}",
        cost,
    ]


def _total(rows: list[SpendRow]) -> SpendRow:
    return SpendRow(
        "TOTAL",
        sum(r.requests for r in rows),
        sum(r.errors for r in rows),
        sum(r.prompt_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum((r.cost for r in rows), Decimal(0)),
        sum(r.unpriced for r in rows),
    )


def format_plain(by: str, rows: list[SpendRow]) -> str:
    table = [[by, *HEADERS]] + [[r.group, *_cells(r)] for r in [*rows, _total(rows)]]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    out = []
    for n, line in enumerate(table):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0 or n == len(table) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _print_rich(by: str, since: str, rows: list[SpendRow]) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    table = Table(title=f"spend by {by} since {since}", show_footer=False)
    table.add_column(by)
    for header in HEADERS:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(row.group, *_cells(row))
    table.add_section()
    table.add_row(*[f"[bold]{c}[/bold]" for c in ["TOTAL", *_cells(_total(rows))]])
    Console().print(table)
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
    if not rows:
        print(f"no spend recorded since {args.since}")
        return 0
    if not (sys.stdout.isatty() and _print_rich(args.by, args.since, rows)):
        print(format_plain(args.by, rows))
    return 0
