"""`chatgate chat` as a user runs it: a real process against the fake OpenAI upstream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fakes.openai_server import FakeOpenAI, Reply, chunk_json, error_json, text_stream

KEY = "sk-chat-cli-secret-9876"


def chat(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "chatgate.cli", "chat", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "OPENAI_API_KEY": KEY, **(env or {})},
    )


def test_one_question_streams_only_the_answer_to_stdout(fake: FakeOpenAI) -> None:
    done = chat("-m", "openai/gpt-4o-mini", "--api-base", fake.base_url, "--system", "be terse",
                "--max-tokens", "20", "name a river")  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "echo: name a river\n", "")
    body = fake.last.body
    assert body["stream"] is True
    assert body["max_tokens"] == 20
    assert body["messages"] == [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "name a river"},
    ]
    fake.script(Reply(chunks=[*text_stream(["cut"])[:-2], chunk_json({}, finish_reason="length")]))
    cut = chat("-m", "openai/gpt-4o-mini", "--api-base", fake.base_url, "go on")
    assert (cut.stdout, cut.stderr) == ("cut\n", "[the answer stopped at the token limit]\n")


def test_the_question_can_come_on_stdin(fake: FakeOpenAI) -> None:
    done = chat("--api-base", fake.base_url, stdin="from a pipe\n",
                env={"CHATGATE_MODEL": "openai/gpt-4o-mini"})  # fmt: skip
    assert done.stdout == "echo: from a pipe\n"


def test_a_conversation_sends_the_history_and_resets(fake: FakeOpenAI) -> None:
    script = "first\nsecond\n/reset\nthird\n/exit\nnever sent\n"
    done = chat("-m", "openai/gpt-4o-mini", "--api-base", fake.base_url, "--interactive",
                stdin=script)  # fmt: skip
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["echo: first", "echo: second", "echo: third"]
    sent = [[m["content"] for m in r.body["messages"]] for r in fake.requests]
    assert sent == [
        ["first"],
        ["first", "echo: first", "second"],
        ["third"],
    ]


def test_through_a_config_with_fallbacks(fake: FakeOpenAI, tmp_path: Path) -> None:
    dead = {"model": "openai/dead", "api_base": "http://127.0.0.1:9/v1", "api_key": KEY}
    live = {"model": "openai/live", "api_base": fake.base_url, "api_key": KEY}
    config = {
        "model_list": [
            {"model_name": "main", "params": dead},
            {"model_name": "backup", "params": live},
        ],
        "router_settings": {"fallbacks": [{"main": ["backup"]}], "num_retries": 0},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = chat("--config", str(path), "via the router")  # the first model_list name: main
    assert (done.returncode, done.stdout) == (0, "echo: via the router\n")
    assert fake.last.body["model"] == "live"


def test_errors_are_one_line_on_stderr_and_never_show_the_key(fake: FakeOpenAI) -> None:
    fake.script(Reply(status=401, json=error_json(f"bad key {KEY}", "invalid_request_error")))
    done = chat("-m", "openai/gpt-4o-mini", "--api-base", fake.base_url, "hi")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.splitlines()) == 1
    assert KEY not in done.stderr


def test_no_model_says_how_to_name_one(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("model_list: []\n")
    done = chat("--config", str(config), "hi")
    assert done.returncode == 1
    assert "pass -m provider/model" in done.stderr
