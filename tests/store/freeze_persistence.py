"""Freeze a file written by ``chatgate.persistence.SQLiteStore`` (the store conversations and
side-effect tool calls used before they moved into ``chatgate.store``), so the upgrade test
opens what a user's ``chatgate.db`` holds today.

    git archive 010a7f4 src | tar -x -C /tmp/old      # the last commit with chatgate.persistence
    PYTHONPATH=/tmp/old/src python tests/store/freeze_persistence.py tests/fixtures/store

Writes ``persistence.sqlite.sql`` (SQLite's own dump). The rows are fixed apart from their
timestamps: two conversations (one with a summary, a tool round and non-ASCII text, one
appended in two saves) and three tool calls (two done, one started and never finished).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path

from chatgate.memory.policy import LastTurns, Summarize
from chatgate.persistence import ConversationRecord, SQLiteStore

TRIP = ConversationRecord(
    id="trip-ada",
    model="openai/gpt-4o-mini",
    system="Be brief.",
    policy=Summarize(max_tokens=2000, model="openai/gpt-4o-mini").model_dump(mode="json"),
    params={"temperature": 0.2, "max_tokens": 300},
    summary="Ada plans a trip to Zürich in March.",
    summary_covers=2,
    messages=[
        {"role": "user", "content": "I'm Ada; Zürich in March?"},
        {"role": "assistant", "content": "Cold but lovely. ☃"},
        {"role": "user", "content": "Book the hotel."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "book", "arguments": '{"city":"Zürich"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status":"ok","result":"B-17"}'},
        {"role": "assistant", "content": "Booked: B-17."},
    ],
)
PLAIN = ConversationRecord(
    id="plain",
    model="anthropic/claude-sonnet-4-5",
    policy=LastTurns(turns=3).model_dump(mode="json"),
)
PLAIN_TURNS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye."}],
]


async def write(path: Path) -> None:
    store = SQLiteStore(path)
    await store.save_conversation(TRIP, persisted=0)
    for n, turn in enumerate(PLAIN_TURNS):
        PLAIN.messages = turn
        await store.save_conversation(PLAIN, persisted=2 * n)
    for key, tool, args in (
        ("k-book", "book", '{"city":"Zürich"}'),
        ("k-mail", "mail", '{"to":"ada@example.com"}'),
        ("k-charge", "charge", '{"usd":"12.50"}'),
    ):
        assert await store.claim(key, conversation_id="trip-ada", tool=tool, arguments=args) is None
    await store.finish("k-book", status="ok", content='{"status":"ok","result":"B-17"}')
    await store.finish("k-mail", status="error", content='{"status":"error","error":"bounced"}')
    store.close()  # k-charge stays "started": a crash between claim and finish


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "chatgate.db"
        asyncio.run(write(db))
        with sqlite3.connect(db) as conn:
            dump = "\n".join(conn.iterdump()) + "\n"
    (out / "persistence.sqlite.sql").write_text(dump)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
