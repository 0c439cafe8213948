"""`chatgate batch` as a real process: a run, refused input, Ctrl-C and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from tests.clock import poll_until
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json
from tests.integration.test_batch import line, read_output, write_input

SRC = str(Path(__file__).resolve().parents[2] / "src")


def start(fake: FakeOpenAI, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
    }
    command = [sys.executable, "-m", "chatgate.cli", "batch", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_run_then_refused_input(fake: FakeOpenAI, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}") for i in range(3)])
    out = tmp_path / "out.jsonl"
    proc = start(fake, str(source), "-o", str(out), "--concurrency", "2")
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "done 3, failed 0, skipped 0, unsent 0 (of 3)" in stdout
    assert len(read_output(out)) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(line("a")) + b"\n" + orjson.dumps(line("a")) + b"\n")
    proc = start(fake, str(bad), "-o", str(tmp_path / "other.jsonl"))
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "line 2: custom_id 'a' repeats line 1" in stderr
    assert len(fake.requests) == 3


def test_ctrl_c_stops_cleanly_and_resume_finishes(fake: FakeOpenAI, tmp_path: Path) -> None:
    slow = Reply(json=completion_json("x"), delay_s=0.3)
    fake.script(*[slow] * 40)
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}") for i in range(10)])
    out = tmp_path / "out.jsonl"
    proc = start(fake, str(source), "-o", str(out), "--concurrency", "2")
    # the batch runs in its own process: poll its output until two answers are in
    poll_until(lambda: out.exists() and len(read_output(out)) >= 2, 15, "two answers written")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stdout
    assert "unsent" in stdout
    first = read_output(out)  # every line whole
    assert 2 <= len(first) < 10
    proc = start(fake, str(source), "-o", str(out), "--concurrency", "8")
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert f"skipped {len(first)}" in stdout
    ids = [r["custom_id"] for r in read_output(out)]
    assert sorted(ids) == sorted(f"q{i}" for i in range(10))  # each exactly once
