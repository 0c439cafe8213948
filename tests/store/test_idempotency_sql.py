"""Idempotency keys in the SQL store, on SQLite and on a real PostgreSQL: a key is claimed
once, its outcome replayed, and racing claimers (tasks, then separate processes) never both
win."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

import chatgate
from chatgate.store.idempotency import SqlIdempotencyStore
from chatgate.store.records import IdempotencyRecord
from chatgate.tools import tool
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.test_tools import ASK, answer, asks, call, kw, results

ROOT = Path(__file__).resolve().parents[2]
KEYS = 60
PROCESSES = 4


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlIdempotencyStore]:
    made = SqlIdempotencyStore(db_url)
    yield made
    await made.aclose()


async def claim(store: SqlIdempotencyStore, key: str = "k") -> IdempotencyRecord | None:
    return await store.claim(key, conversation_id="c", tool="mail", arguments='{"to":"a"}')


async def test_claim_finish_replay_release(store: SqlIdempotencyStore) -> None:
    assert await claim(store) is None
    started = IdempotencyRecord("k", "c", "mail", '{"to":"a"}', "started")
    assert await claim(store) == started
    await store.finish("k", status="ok", content='{"status":"ok"}')
    done = IdempotencyRecord("k", "c", "mail", '{"to":"a"}', "done", "ok", '{"status":"ok"}')
    assert await claim(store) == done
    await store.release("k")
    assert await claim(store) is None


async def test_racing_tasks_one_claim_wins(store: SqlIdempotencyStore, db_url: str) -> None:
    claimers = [SqlIdempotencyStore(db_url) for _ in range(12)]
    outcomes = await asyncio.gather(*(claim(c) for c in claimers))
    assert outcomes.count(None) == 1
    assert all(o is None or o.state == "started" for o in outcomes)
    for c in claimers:
        await c.aclose()


def test_racing_processes_each_key_won_exactly_once(db_url: str) -> None:
    """PROCESSES processes, each with its own connections, claim the same KEYS keys at once
    (released together, claiming in the same order: in one run they won 27, 2, 31 and 0)."""
    asyncio.run(SqlIdempotencyStore(db_url).database.ready())  # schema first, as in practice
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.claim_worker", db_url, str(KEYS), f"p{n}"],
            text=True,
            cwd=ROOT,
            **pipes,
        )
        for n in range(PROCESSES)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            assert w.stdout.readline().strip() == "ready"
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        results = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert all(w.returncode == 0 for w in workers), [err for _, err in results]
    won = [orjson.loads(out) for out, _ in results]
    wins = Counter(key for keys in won for key in keys)
    assert sorted(wins) == sorted(f"k{n}" for n in range(KEYS))
    assert set(wins.values()) == {1}

    async def recorded() -> list[IdempotencyRecord | None]:
        store = SqlIdempotencyStore(db_url)
        found = [await claim(store, f"k{n}") for n in range(KEYS)]
        await store.aclose()
        return found

    by_key = {key: f"p{n}" for n, keys in enumerate(won) for key in keys}
    for n, found in enumerate(asyncio.run(recorded())):
        assert found is not None
        assert (found.state, found.content) == ("done", by_key[f"k{n}"])


def test_run_tools_sync_with_a_database_url_runs_a_side_effect_once(
    db_url: str, fake: FakeOpenAI
) -> None:
    """Two runs (as two restarts) asking for the same email, with store= a URL, through the
    sync API: it is sent once, and the second run replays the recorded result."""
    sent: list[str] = []

    @tool(side_effect=True)
    def send_email(to: str) -> str:
        """Send an email."""
        sent.append(to)
        return f"sent to {to}"

    runs = []
    email = call("c1", "send_email", {"to": "ada@example.com"})
    for _ in range(2):
        fake.script(asks(email), answer())
        runs.append(
            chatgate.run_tools(
                "gpt-4o-mini",
                ASK,
                tools=[send_email],
                conversation_id="conv-1",
                store=db_url,
                **kw(fake),
            )
        )
    assert sent == ["ada@example.com"]
    outcomes = [(r.decisions[0].status, r.decisions[0].replayed) for r in runs]
    assert outcomes == [("ok", False), ("ok", True)]
    replayed = results(fake.requests[-1].body)["c1"]
    assert replayed == {"status": "ok", "result": "sent to ada@example.com"}


def test_a_postgresql_url_without_asyncpg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'chatgate\[postgres\]'"):
        SqlIdempotencyStore("postgresql://u@127.0.0.1/db")
