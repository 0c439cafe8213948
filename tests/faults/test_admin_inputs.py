"""The admin API's key fields (and `chatgate keys`) against the inputs that once gave 500s,
some after writing the row; SQL parameters never in a log line or an error."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gateway import Gateway
from tests.faults.bodies import MASTER, TIMEOUT_S, call, serve


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve(tmp_path_factory.mktemp("malformed")) as gw:
        yield gw


# The inputs that gave a 500 (and, for some, wrote the row first), and the field each names.
ADMIN_CASES = [
    ({"budget": "abc"}, "budget"),
    ({"budget": "NaN"}, "budget"),
    ({"budget": "Infinity"}, "budget"),
    ({"budget": [1]}, "budget"),
    ({"budget": {"usd": 1}}, "budget"),
    ({"budget": 1e308}, "budget"),
    ({"budget": True}, "budget"),
    ({"expires": [1]}, "expires"),
    ({"expires": "1e400d"}, "expires"),
    ({"expires": 1e308}, "expires"),
    ({"expires": -5}, "expires"),
    ({"expires": "-5"}, "expires"),
    ({"expires": 0}, "expires"),
    ({"expires": True}, "expires"),
    ({"name": {"a": 1}}, "name"),
    ({"name": [1]}, "name"),
    ({"user": {"a": 1}}, "user"),
    ({"team": ["x"]}, "team"),
    ({"name": "x" * 201}, "name"),
    ({"metadata": "x"}, "metadata"),
    ({"metadata": [1]}, "metadata"),
    ({"models": "fast"}, "models"),
    ({"models": [1]}, "models"),
    ({"rpm": 2**40}, "rpm"),
    ({"rpm": 1.5}, "rpm"),
    ({"tpm": True}, "tpm"),
    ({"budget_period": "weekly"}, "budget_period"),
    ({"colour": "red"}, "colour"),
    # PostgreSQL cannot store a NUL (a key's fields are refused alike on SQLite)
    ({"name": "a\x00b"}, "name"),
    ({"user": "a\x00b"}, "user"),
    ({"team": "\x00"}, "team"),
    ({"models": ["fast\x00"]}, "models"),
    ({"tags": ["team\x00x"]}, "tags"),
    ({"metadata": {"env": "a\x00b"}}, "metadata"),
    ({"metadata": {"e\x00nv": "prod"}}, "metadata"),
    ({"metadata": {"env": [{"deep": "\x00"}]}}, "metadata"),
]


@pytest.mark.parametrize(
    ("body", "field"), ADMIN_CASES, ids=[json.dumps(c[0]) for c in ADMIN_CASES]
)
def test_admin_key_fields_refused_before_any_write(
    gateway: Gateway, body: dict[str, Any], field: str
) -> None:
    before = len(call(gateway, "GET", "/admin/keys")[1]["data"])
    status, answer, _ = call(gateway, "POST", "/admin/keys", body)
    assert status == 400, answer
    assert answer["error"]["param"] == field, answer
    assert field in answer["error"]["message"]
    assert len(call(gateway, "GET", "/admin/keys")[1]["data"]) == before  # nothing written
    _, created, _ = call(gateway, "POST", "/admin/keys", {"name": "to-patch"})
    status, answer, _ = call(gateway, "PATCH", f"/admin/keys/{created['key_id']}", body)
    assert (status, answer["error"]["param"]) == (400, field), answer


def test_sql_parameters_never_reach_the_log(gateway: Gateway) -> None:
    """The binding errors once logged every parameter, the secret's hash among them."""
    for body in ({"name": {"a": 1}}, {"user": [1]}, {"budget": "abc"}):
        call(gateway, "POST", "/admin/keys", body)
    log = gateway.log_text()
    assert "parameters" not in log.lower(), log[-3000:]
    assert "secret_hash" not in log, log[-3000:]


async def test_a_failed_statement_never_shows_its_parameters(tmp_path: Path) -> None:
    """hide_parameters on every engine: a binding error names no value (a hash, a body)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from chatgate.store.engine import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (a TEXT)"))
            with pytest.raises(SQLAlchemyError) as failed:
                await conn.execute(text("INSERT INTO t VALUES (:a)"), {"a": {"sk-secret": 1}})
    finally:
        await engine.dispose()
    assert "sk-secret" not in str(failed.value)
    assert "parameters hidden" in str(failed.value)


def test_rows_written_before_the_bounds_still_list(gateway: Gateway) -> None:
    """Before the schema, `expires: 1e308` was stored and every later listing failed."""
    status, created, _ = call(gateway, "POST", "/admin/keys", {"name": "old-row"})
    assert status == 200
    with sqlite3.connect(gateway.config_path.parent / "gateway.db") as db:
        db.execute(
            "UPDATE virtual_keys SET expires_at = 1e308 WHERE key_id = ?", (created["key_id"],)
        )
    status, listed, _ = call(gateway, "GET", "/admin/keys")
    assert status == 200, listed
    row = next(k for k in listed["data"] if k["key_id"] == created["key_id"])
    assert row["expires_at"].startswith("9999-12-31")


def test_expiry_bounds_are_usable(gateway: Gateway) -> None:
    """The longest expiry accepted is shown back; a literal NaN is a 400, not a 500."""
    status, answer, _ = call(gateway, "POST", "/admin/keys", {"expires": "100y"})
    assert status == 200, answer
    assert answer["expires_at"] > "2100"
    request = urllib.request.Request(
        gateway.url + "/admin/keys", data=b'{"budget": NaN}', method="POST"
    )
    request.add_header("Authorization", f"Bearer {MASTER}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=TIMEOUT_S)
    with refused.value as answer:
        assert answer.code == 400


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--budget", "NaN"], "budget"), (["--expires", "1e400d"], "expires"),
     (["--rpm", "99999999999"], "rpm"), (["--metadata", "[1]"], "metadata")],
)  # fmt: skip
def test_cli_refuses_the_same_fields_before_writing(
    tmp_path: Path, args: list[str], field: str
) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'keys.db'}"]
    keys = [sys.executable, "-m", "chatgate.cli", "keys"]
    done = subprocess.run([*keys, "create", *args, *db], capture_output=True, text=True)
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"error: {field}: "), done.stderr
    listed = subprocess.run([*keys, "list", *db], capture_output=True, text=True, check=True)
    assert listed.stdout == ""
