"""`chatgate keys create | list | update | revoke`, straight on the gateway's database.

    chatgate keys create --models gpt-4o-mini,smart --budget 10 --budget-period monthly \\
        --rpm 60 --tpm 20000 --expires 30d --team search --user alice

The secret is printed once, on create; nothing else ever shows it. The database is the
gateway's: --db, else --config's general_settings.database_url, else CHATGATE_DATABASE_URL,
else sqlite:///chatgate.db (what `chatgate serve` uses with no config).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from chatgate.errors import InvalidRequestError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="virtual keys: create, list, update, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, help_ in (("create", "a new key (prints the secret once)"), ("update", "change")):
        cmd = keys_sub.add_parser(name, help=help_)
        if name == "update":
            cmd.add_argument("key_id")
        cmd.add_argument("--name")
        cmd.add_argument("--models", help="comma-separated allowlist (default: every model)")
        cmd.add_argument("--budget", help="USD")
        cmd.add_argument("--budget-period", choices=["daily", "monthly", "lifetime"])
        cmd.add_argument("--rpm", type=int)
        cmd.add_argument("--tpm", type=int)
        cmd.add_argument("--expires", help="30d, 12h, 90m ...")
        cmd.add_argument("--team")
        cmd.add_argument("--user")
        cmd.add_argument("--metadata", help='JSON object, e.g. \'{"env": "prod"}\'')
        cmd.add_argument("--tags", help="comma-separated tags every request with the key carries")
    listing = keys_sub.add_parser("list", help="the keys (never their secrets)")
    listing.add_argument("--team")
    listing.add_argument("--user")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key (its spend stays on record)")
    revoke.add_argument("key_id")
    for cmd in (keys, *keys_sub.choices.values()):
        cmd.add_argument("--db", help="database URL")
        cmd.add_argument("--config", help="YAML config whose database_url to use")
    keys.set_defaults(run=run)


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in ("name", "budget", "budget_period", "rpm", "tpm", "expires", "team", "user"):
        if (value := getattr(args, field, None)) is not None:
            changes[field] = value
    if args.models is not None:
        changes["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.tags is not None:
        changes["tags"] = [t.strip() for t in args.tags.split(",") if t.strip()]
    if args.metadata is not None:
        try:
            changes["metadata"] = orjson.loads(args.metadata)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"--metadata is not JSON: {exc}", param="metadata") from None
    return changes


async def _run(args: argparse.Namespace) -> int:
    from chatgate import config as config_module
    from chatgate.server.keys import KeyStore
    from chatgate.server.services import database_url
    from chatgate.store.engine import create_engine
    from chatgate.store.migrations import migrate

    settings = config_module.load(args.config).general_settings if args.config else None
    url = args.db or database_url(settings or config_module.GeneralSettings())
    engine = create_engine(url)
    try:
        await migrate(engine)
        store = KeyStore(engine, cache_ttl_s=0)
        command = args.keys_command
        if command == "create":
            secret, record = await store.create(**_changes(args))
            print(f"key: {secret}")
            print("(shown this once: store it now)", file=sys.stderr)
            print(orjson.dumps(record.public(), option=orjson.OPT_INDENT_2).decode())
        elif command == "update":
            record = await store.update(args.key_id, **_changes(args))
            print(orjson.dumps(record.public(), option=orjson.OPT_INDENT_2).decode())
        elif command == "revoke":
            record = await store.revoke(args.key_id)
            print(f"revoked {record.key_id} ({record.display})")
        else:
            records = await store.list(team=args.team, user=args.user, include_revoked=args.all)
            for r in records:
                state = "revoked" if r.revoked_at else "active"
                models = ",".join(r.models) or "*"
                budget = f"${r.budget_usd}/{r.budget_period}" if r.budget_usd is not None else "-"
                who = f"team={r.team or '-'}  user={r.user or '-'}  name={r.name or '-'}"
                print(
                    f"{r.key_id}  {r.display}  {state:7}  models={models}  budget={budget}  {who}"
                )
    finally:
        await engine.dispose()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except InvalidRequestError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
