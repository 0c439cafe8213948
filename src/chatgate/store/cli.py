"""``chatgate store import OLD.db --to URL``: copy the conversations and tool calls an older
chatgate kept in its SQLite file into another database (see ``chatgate.store.legacy``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from chatgate.errors import ChatgateError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    store = sub.add_parser("store", help="the database of conversations, keys and spend")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    imp = store_sub.add_parser(
        "import",
        help="copy conversations and tool calls from an old chatgate SQLite file "
        "(repeatable: rows already there are kept)",
    )
    imp.add_argument("old", help="the old file, e.g. ./chatgate.db")
    imp.add_argument("--to", required=True, help="database URL, e.g. postgresql://host/db")
    store.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from chatgate.store.legacy import import_sqlite_file

    try:
        done = asyncio.run(import_sqlite_file(args.old, args.to))
    except (ChatgateError, ValueError) as exc:
        print(f"chatgate store import: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as exc:  # the target is down or refuses us
        where = make_url(args.to).render_as_string(hide_password=True)
        print(f"chatgate store import: {where}: {exc}", file=sys.stderr)
        return 1
    for table, read in done.read.items():
        print(f"{table}: {read} read, {done.added[table]} added")
    return 0
