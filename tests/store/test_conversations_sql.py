"""Conversations in the SQL store, on SQLite and on a real PostgreSQL: exact round trips,
appends that refuse a stale or racing writer, the same store used from the sync API's loop
and the caller's, and a Conversation resumed in another process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import chatgate
from chatgate.errors import ChatgateError
from chatgate.store.conversations import SqlConversationStore
from chatgate.store.engine import create_engine
from chatgate.store.records import ConversationRecord
from chatgate.transport.loop_thread import run_sync
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]


def record(messages: list[dict[str, object]], **kw: object) -> ConversationRecord:
    return ConversationRecord(
        id="c1",
        model="openai/gpt-4o-mini",
        system="Be brief.",
        policy={"kind": "last_turns", "turns": 2},
        params={"temperature": 0.2},
        messages=messages,
        **kw,  # type: ignore[arg-type]  # the record's optional fields, as each test needs
    )


HI = [{"role": "user", "content": "Grüß dich ☃"}, {"role": "assistant", "content": None,
      "tool_calls": [{"id": "t", "type": "function",
                      "function": {"name": "f", "arguments": "{}"}}]}]  # fmt: skip
MORE = [{"role": "tool", "tool_call_id": "t", "content": "ok"}, {"role": "user", "content": "2"}]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlConversationStore]:
    made = SqlConversationStore(db_url)
    yield made
    await made.aclose()


async def test_appends_load_back_exactly(store: SqlConversationStore) -> None:
    assert await store.load_conversation("c1") is None
    await store.save_conversation(record(HI), persisted=0)
    await store.save_conversation(record(MORE, summary="s", summary_covers=1), persisted=2)
    loaded = await store.load_conversation("c1")
    assert loaded == record(HI + MORE, summary="s", summary_covers=1)


async def test_a_stale_copy_is_refused_and_writes_nothing(store: SqlConversationStore) -> None:
    await store.save_conversation(record(HI), persisted=0)
    with pytest.raises(ChatgateError, match="2 stored messages, this copy knew 0"):
        await store.save_conversation(record(MORE, summary="lost"), persisted=0)
    assert await store.load_conversation("c1") == record(HI)


async def test_racing_writers_one_wins_the_rest_are_told_to_reload(
    store: SqlConversationStore, db_url: str
) -> None:
    """Each writer its own store (as in another process), all appending to one count."""
    writers = [SqlConversationStore(db_url) for _ in range(6)]
    saves = [
        w.save_conversation(record([{"role": "user", "content": f"w{n}"}]), persisted=0)
        for n, w in enumerate(writers)
    ]
    outcomes = await asyncio.gather(*saves, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 5, outcomes
    assert all(isinstance(f, ChatgateError) and "load it again" in str(f) for f in failures)
    (winner,) = [n for n, o in enumerate(outcomes) if o is None]
    loaded = await store.load_conversation("c1")
    assert loaded is not None
    assert loaded.messages == [{"role": "user", "content": f"w{winner}"}]
    for w in writers:
        await w.aclose()


async def test_one_store_serves_the_sync_loop_and_the_callers(
    store: SqlConversationStore,
) -> None:
    """A Conversation's store is used from chatgate's private loop (send) and the caller's
    (asend): no connection may be tied to either."""
    await asyncio.to_thread(run_sync, store.save_conversation(record(HI), persisted=0))
    await store.save_conversation(record(MORE), persisted=2)
    await asyncio.to_thread(run_sync, store.save_conversation(record(MORE[:1]), persisted=4))
    loaded = await asyncio.to_thread(run_sync, store.load_conversation("c1"))
    assert loaded is not None
    assert len(loaded.messages) == 5


CHILD = textwrap.dedent(
    """
    import sys
    import chatgate

    url, base = sys.argv[1], sys.argv[2]
    chat = chatgate.Conversation("ada", model="openai/gpt-4o-mini", system="Be brief.",
                                 store=url, api_key="sk-test", api_base=base, temperature=0.3)
    print(chat.send("I'm Ada.").content)
    """
)


def test_a_conversation_resumes_in_another_process_on_postgresql(
    pg_url: str, fake: FakeOpenAI
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, pg_url, fake.base_url],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "echo: I'm Ada."
    chat = chatgate.Conversation.load("ada", store=pg_url, api_key="sk-test",
                                      api_base=fake.base_url)  # fmt: skip
    assert chat.send("Who am I?").content == "echo: Who am I?"
    assert fake.last.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I'm Ada."},
        {"role": "assistant", "content": "echo: I'm Ada."},
        {"role": "user", "content": "Who am I?"},
    ]
    assert fake.last.body["temperature"] == 0.3
    again = chatgate.Conversation.load("ada", store=pg_url)
    assert len(again.messages) == 4


async def test_a_pooled_engine_of_your_own(db_url: str) -> None:
    """An engine given instead of a URL is used as it is (pooled), its schema made first."""
    store = SqlConversationStore(create_engine(db_url, pool_size=2))
    await store.save_conversation(record(HI), persisted=0)
    await store.save_conversation(record(MORE), persisted=2)
    assert await store.load_conversation("c1") == record(HI + MORE)
    assert store.database.engine.pool.checkedin() >= 1  # the connection went back to a pool
    await store.aclose()
