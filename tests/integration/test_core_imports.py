"""SQLAlchemy and aiosqlite are core dependencies only so that persistence works with no extra
installed (docs/architecture.md, "Dependencies"): the core call must never import them. Each
program runs in a fresh interpreter, against a fake upstream, and reports what it imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import chatgate
from tests.fakes.openai_server import FakeOpenAI

SQL_PACKAGES = ("sqlalchemy", "aiosqlite", "greenlet")
SRC = Path(chatgate.__file__).resolve().parents[1]

_REPORT = f"""
import json, sys
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({SQL_PACKAGES!r}))
print(json.dumps({{"answer": answer.content, "loaded": loaded}}))
"""


def run(program: str, base_url: str, cwd: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "CHATGATE_SQLITE_PATH": str(cwd / "chat.db")}
    done = subprocess.run(
        [sys.executable, "-c", program + _REPORT, base_url],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return report


def test_a_plain_completion_imports_no_sql_module(fake: FakeOpenAI, tmp_path: Path) -> None:
    program = """
import sys
import chatgate
answer = chatgate.completion(
    model="openai/gpt-4o-mini",
    messages=[{"role": "user", "content": "hi"}],
    api_key="sk-test",
    api_base=sys.argv[1],
)
"""
    report = run(program, fake.base_url, tmp_path)
    assert report == {"answer": "echo: hi", "loaded": []}


def test_a_persisted_conversation_does_import_them(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The check above can see them: a program that persists loads them."""
    program = """
import sys
import chatgate
chat = chatgate.Conversation(model="openai/gpt-4o-mini", api_key="sk-test", api_base=sys.argv[1])
answer = chat.send("hi")
"""
    report = run(program, fake.base_url, tmp_path)
    assert report["answer"] == "echo: hi"
    loaded = report["loaded"]
    assert isinstance(loaded, list)
    assert {"sqlalchemy", "aiosqlite"} <= set(loaded)
    assert (tmp_path / "chat.db").exists()
