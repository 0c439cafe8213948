"""`chatgate batch --config ... --tags eu` as a real process: only the deployment tagged eu
is asked, live and with --provider-batch; a tag nothing carries exits 1 naming it, nothing
sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.batching.support import LLAMA, MINI, Fakes, chats
from tests.integration.test_batch import line, read_output, write_input

SRC = str(Path(__file__).resolve().parents[2] / "src")


def config(path: Path, fakes: Fakes) -> Path:
    entries = [
        {"model_name": name, "params": {"model": model, "api_key": "sk-upstream", "free": True,
                                        "api_base": fake.base_url, "tags": tags}}
        for name, model, pair in (("chat", LLAMA, fakes[:2]), ("mini", MINI, fakes[2:]))
        for fake, tags in zip(pair, ([], ["eu"]), strict=True)
    ]  # fmt: skip
    path.write_bytes(orjson.dumps({"model_list": entries}))  # JSON is YAML
    return path


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "chatgate.cli", "batch", *args]
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_tags_pick_the_tagged_deployment(fakes: Fakes, tmp_path: Path) -> None:
    us, eu, us_batch, eu_batch = fakes
    cfg = str(config(tmp_path / "config.yaml", fakes))
    live = write_input(tmp_path / "live.jsonl", [line(f"c{i}", "chat") for i in range(8)])
    done = batch(str(live), "-o", str(tmp_path / "a.jsonl"), "--config", cfg, "--tags", "eu")
    assert done.returncode == 0, done.stderr
    assert (chats(us), chats(eu)) == (0, 8)
    assert all(r["error"] is None for r in read_output(tmp_path / "a.jsonl"))
    mini = write_input(tmp_path / "mini.jsonl", [line(f"m{i}", "mini") for i in range(2)])
    out = tmp_path / "b.jsonl"
    done = batch(str(mini), "-o", str(out), "--config", cfg, "--tags", " eu, ", "--provider-batch")
    assert done.returncode == 0, done.stderr
    assert (us_batch.submissions, eu_batch.submissions) == (0, 1)
    assert [r["error"] for r in read_output(out)] == [None, None]


def test_a_tag_nothing_carries_exits_1_naming_it(fakes: Fakes, tmp_path: Path) -> None:
    cfg = str(config(tmp_path / "config.yaml", fakes))
    source = write_input(tmp_path / "in.jsonl", [line("c", "chat")])
    out = tmp_path / "out.jsonl"
    done = batch(str(source), "-o", str(out), "--config", cfg, "--tags", "eu,mars")
    assert done.returncode == 1
    assert (
        "line 1: body.model 'chat': no deployment of it carries every requested tag (eu, mars)"
        in done.stderr
    )
    assert all(not fake.requests for fake in fakes)
    done = batch(str(source), "-o", str(out), "--config", cfg, "--tags", " , ")
    assert done.returncode == 2  # argparse: a usage error
    assert "no tag in ' , '" in done.stderr
