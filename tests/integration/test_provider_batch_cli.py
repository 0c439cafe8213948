"""`chatgate batch --provider-batch` as a real process: a run, --max-wait then a rerun that
collects, Ctrl-C while polling then a rerun that does not submit again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatgate.batching.provider.state import state_path
from tests.fakes.openai_batches import BatchScript, FakeOpenAIBatches
from tests.integration.test_batch import line, read_output, write_input

SRC = str(Path(__file__).resolve().parents[2] / "src")
MINI = "openai/gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIBatches]:  # this module's own fake, not conftest's
    with FakeOpenAIBatches(BatchScript(polls=0)) as server:
        yield server


def start(fake: FakeOpenAIBatches, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "OPENAI_API_KEY": "sk-test",
           "OPENAI_BASE_URL": fake.base_url}  # fmt: skip
    command = [sys.executable, "-m", "chatgate.cli", "batch", "--provider-batch", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_run_and_max_wait_then_collect(fake: FakeOpenAIBatches, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(2)])
    out = tmp_path / "out.jsonl"
    stdout, stderr = start(fake, str(source), "-o", str(out)).communicate(timeout=30)
    assert "done 2, failed 0, skipped 0, unsent 0 (of 2)" in stdout, stderr
    assert "provider batches submitted: batch_" in stdout
    assert len(read_output(out)) == 2
    fake.batch_script.polls = 1
    later = tmp_path / "later.jsonl"
    proc = start(fake, str(source), "-o", str(later), "--max-wait", "0")
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr
    assert "waiting: 2 lines still in provider batches" in stdout
    proc = start(fake, str(source), "-o", str(later))
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert fake.submissions == 2  # one per output file, none for the rerun
    assert len(read_output(later)) == 2


def test_ctrl_c_while_polling_then_resume(fake: FakeOpenAIBatches, tmp_path: Path) -> None:
    fake.batch_script.polls = 1000
    source = write_input(tmp_path / "in.jsonl", [line(f"q{i}", MINI) for i in range(2)])
    out = tmp_path / "out.jsonl"
    proc = start(fake, str(source), "-o", str(out))
    try:
        deadline = time.monotonic() + 20
        while not any(fake.polls.values()) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the batch is submitted and polled once
        assert state_path(out).exists()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout
    assert state_path(out).exists()
    fake.batch_script.polls = 0
    proc = start(fake, str(source), "-o", str(out))
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert fake.submissions == 1
    assert len(read_output(out)) == 2


def test_refused_submission_exits_1(fake: FakeOpenAIBatches, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [line("q0", "groq/llama-3.1-8b-instant")])
    proc = start(fake, str(source), "-o", str(tmp_path / "out.jsonl"))
    env_proc = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "no batch API" in env_proc[1] or "GROQ_API_KEY" in env_proc[1]
