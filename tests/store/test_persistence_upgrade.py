"""What chatgate.persistence left behind (tests/fixtures/store/persistence.sqlite.sql, frozen
by tests/store/freeze_persistence.py from commit 010a7f4): the SQL store opens that file as it
is, keeps every conversation and tool-call record (and says so once), resumes a conversation
from it through the default path, and copies it into another database on request."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

import chatgate
from chatgate.cli import main as cli
from chatgate.store.conversations import SqlConversationStore
from chatgate.store.database import Database
from chatgate.store.idempotency import SqlIdempotencyStore
from chatgate.store.legacy import import_sqlite_file
from chatgate.store.migrations import current_version
from chatgate.store.records import ConversationRecord, IdempotencyRecord
from chatgate.store.schema.spend import SPEND_LOG
from tests.fakes.openai_server import FakeOpenAI
from tests.store.dumps import FIXTURES, restore
from tests.store.freeze_persistence import PLAIN_TURNS, TRIP

PLAIN = ConversationRecord(
    id="plain",
    model="anthropic/claude-sonnet-4-5",
    policy={"kind": "last_turns", "turns": 3},
    messages=[m for turn in PLAIN_TURNS for m in turn],
)
CALLS = {
    "k-book": ("book", '{"city":"Zürich"}', "done", "ok", '{"status":"ok","result":"B-17"}'),
    "k-mail": ("mail", '{"to":"ada@example.com"}', "done", "error",
               '{"status":"error","error":"bounced"}'),
    "k-charge": ("charge", '{"usd":"12.50"}', "started", None, None),
}  # fmt: skip
ADOPTED = "kept 2 conversations and 3 tool-call records"


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "old" / "chatgate.db"
    path.parent.mkdir()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript((FIXTURES / "persistence.sqlite.sql").read_text())
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def holds_everything(url: str) -> None:
    conversations = SqlConversationStore(url)
    assert await conversations.load_conversation("trip-ada") == TRIP
    assert await conversations.load_conversation("plain") == PLAIN
    calls = SqlIdempotencyStore(url)
    for key, (tool, arguments, *outcome) in CALLS.items():
        found = await calls.claim(key, conversation_id="other", tool="x", arguments="{}")
        assert found == IdempotencyRecord(key, "trip-ada", tool, arguments, *outcome)
    await conversations.aclose()
    await calls.aclose()


async def test_the_old_file_is_the_store_as_it_is(
    old_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{old_file}"
    with caplog.at_level(logging.INFO, logger="chatgate"):
        await holds_everything(url)
    assert [r.getMessage() for r in caplog.records if ADOPTED in r.getMessage()] != []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="chatgate"):
        await holds_everything(url)  # a second opening: migrated already, nothing said
    assert caplog.records == []
    db = Database(url)
    assert await current_version(db.engine) >= 14
    async with db.engine.begin() as conn:  # the rest of the store's schema is there too
        assert (await conn.execute(select(func.count()).select_from(SPEND_LOG))).scalar() == 0
    await db.aclose()


def test_a_conversation_resumes_from_the_default_file(
    old_file: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATGATE_SQLITE_PATH", str(old_file))
    chat = chatgate.Conversation.load("trip-ada", api_key="sk-test", api_base=fake.base_url)
    assert chat.record() == TRIP
    chat.send("Back again")
    sent = fake.last.body["messages"]
    assert sent[1]["content"].endswith("Ada plans a trip to Zürich in March.")  # the summary
    assert [m.get("content") for m in sent[2:]] == [
        "Book the hotel.", None, '{"status":"ok","result":"B-17"}', "Booked: B-17.", "Back again"
    ]  # fmt: skip
    assert fake.last.body["temperature"] == 0.2
    assert len(chatgate.Conversation.load("trip-ada").messages) == 8


async def test_a_file_shared_with_the_gateway_keeps_both(tmp_path: Path) -> None:
    """The gateway's default database is the same ./chatgate.db: a v11 spend database that
    conversations were also kept in upgrades to hold both."""
    path = tmp_path / "chatgate.db"
    url = f"sqlite:///{path}"
    await restore(url, "v11")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript((FIXTURES / "persistence.sqlite.sql").read_text())
    await holds_everything(url)
    db = Database(url)
    async with db.engine.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(SPEND_LOG))).scalar() == 9
    await db.aclose()


async def test_import_into_another_database_is_repeatable(old_file: Path, db_url: str) -> None:
    before = await asyncio.to_thread(digest, old_file)
    first = await import_sqlite_file(old_file, db_url)
    counts = {"chatgate_conversations": 2, "chatgate_conversation_messages": 10,
              "chatgate_tool_calls": 3}  # fmt: skip
    assert first.read == first.added == counts
    again = await import_sqlite_file(old_file, db_url)
    assert again.read == counts
    assert set(again.added.values()) == {0}
    await holds_everything(db_url)
    assert await asyncio.to_thread(digest, old_file) == before


def test_the_import_command(
    old_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"sqlite:///{tmp_path / 'new.db'}"
    assert cli(["store", "import", str(old_file), "--to", target]) == 0
    assert "chatgate_conversation_messages: 10 read, 10 added" in capsys.readouterr().out
    assert cli(["store", "import", str(tmp_path / "missing.db"), "--to", target]) == 2
    assert "missing.db: no such file" in capsys.readouterr().err


def test_the_default_file_is_the_working_directory_s_when_the_conversation_is_made(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATGATE_SQLITE_PATH", raising=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = chatgate.Conversation(model="openai/gpt-4o-mini", api_key="k", api_base=fake.base_url)
    first.send("in a")
    monkeypatch.chdir(tmp_path / "b")
    second = chatgate.Conversation(model="openai/gpt-4o-mini", api_key="k", api_base=fake.base_url)
    second.send("in b")
    first.send("still in a")
    monkeypatch.chdir(tmp_path / "a")
    assert len(chatgate.Conversation.load(first.id).messages) == 4
    monkeypatch.chdir(tmp_path / "b")
    assert len(chatgate.Conversation.load(second.id).messages) == 2
    with pytest.raises(chatgate.ConversationNotFoundError):
        chatgate.Conversation.load(first.id)


def test_the_import_command_names_an_unreachable_target_without_its_password(
    old_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = f"postgresql://ada:hunter2@127.0.0.1:{port}/db"
    assert cli(["store", "import", str(old_file), "--to", target]) == 1
    err = capsys.readouterr().err
    assert f"postgresql://ada:***@127.0.0.1:{port}/db" in err
    assert "hunter2" not in err
    assert "Traceback" not in err
