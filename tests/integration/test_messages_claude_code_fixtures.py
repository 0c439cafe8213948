"""The request bodies a real Claude Code sent (tests/fixtures/clients/claude-code-<version>/,
captured with a logging fake upstream), replayed through a real `chatgate serve` against every
kind of backend: each must be answered with a complete Anthropic stream.

To capture a new version: point ``claude -p`` at a logging fake Anthropic upstream
(ANTHROPIC_BASE_URL, ANTHROPIC_MODEL=<a non-Claude name>) inside ``unshare -n``, keep the JSON
bodies of its POST /v1/messages with the ``anthropic-beta`` header, and blank the ids in
``metadata.user_id``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.messages_support import Backends, fresh_gateway, module_gateway

FIXTURES = sorted(Path(__file__).parents[1].glob("fixtures/clients/claude-code-*/*.json"))
BACKENDS = ["gpt", "reasoner", "claude", "gem", "bedrock"]

backends = pytest.fixture(scope="module")(module_gateway)
fresh = pytest.fixture(fresh_gateway)


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_the_fixtures_are_there() -> None:
    assert {p.parent.name for p in FIXTURES} >= {"claude-code-2.1.332"}
    assert {p.stem for p in FIXTURES} >= {"say-pong", "bash-tool-call", "bash-tool-result"}


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_claude_code_requests_are_answered(fresh: Backends, fixture: Path, model: str) -> None:
    captured = json.loads(fixture.read_text())
    body = {**captured["body"], "model": model}
    beta = {"anthropic-beta": captured["headers"]["anthropic-beta"]}
    resp = fresh.post("/v1/messages", body, headers=beta)
    assert resp.status_code == 200, resp.text
    got = events(resp.text)
    assert got[0]["type"] == "message_start"
    assert got[0]["message"]["id"].startswith("msg_")
    assert got[-1] == {"type": "message_stop"}
    text = "".join(e["delta"].get("text", "") for e in got if e["type"] == "content_block_delta")
    assert text.startswith("echo:")
    fake = {"claude": fresh.anthropic, "gem": fresh.gemini, "bedrock": fresh.bedrock}.get(
        model, fresh.openai
    )
    sent = fake.last.body
    if model == "claude":  # native: the Claude Code fields as they came
        assert sent["thinking"] == captured["body"]["thinking"]
        assert sent["context_management"] == captured["body"]["context_management"]
    elif model == "bedrock":  # Converse: the system prompt apart, nothing Anthropic-only
        assert len(sent["system"]) >= 1
        assert "additionalModelRequestFields" not in sent
    elif model == "gem":  # Gemini 2.5 reasons: effort "high" is its thinking budget
        thinking = {"thinkingBudget": 24576, "includeThoughts": True}
        assert sent["generationConfig"]["thinkingConfig"] == thinking
        assert "context_management" not in sent
    else:
        assert not {"thinking", "output_config", "context_management"} & set(sent)
        assert sent["messages"][0]["role"] == "system"
        assert [m["role"] for m in sent["messages"]].count("system") == 1
        if fixture.stem == "bash-tool-result":
            tool = {"role": "tool", "tool_call_id": "toolu_cap1", "content": "hi"}
            assert sent["messages"][-1] == tool
