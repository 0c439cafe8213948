"""The real Claude Code (`claude -p`) against `chatgate serve` with a non-Claude model name, on
an OpenAI-format backend and a Gemini backend (the embedded local model: see the skip below).

Run by `make e2e-clients` inside a network namespace with loopback only. The scripted fakes
answer a prompt that asks for a tool with a call to Bash `echo hi`, and once they see the
tool's result, with text quoting it: the answer proves the whole round trip (Claude Code ran
the command and sent its output back through the gateway).
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.gemini_server import (
    FakeGemini,
    candidate_json,
    response_json,
    stream_reply,
    usage_json,
)
from tests.fakes.openai_server import FakeOpenAI, Reply, chunk_json, text_stream

GATEWAY_KEY = "sk-e2e-claude-code-master"
TOOL_PROMPT = "TOOLTEST: run `echo hi` with the Bash tool, then tell me what it printed."
BASH_INPUT = {"command": "echo hi", "description": "Print hi"}


def _tool_output(texts: list[str]) -> str:
    return " ".join(t.strip() for t in texts if t.strip())


class ScriptedOpenAI(FakeOpenAI):
    """Bash `echo hi` for the tool prompt; then "tool said: <output>"; else "pong"."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = orjson.loads(await request.read() or b"{}")
        if request.path.endswith("/chat/completions"):
            self.replies.append(self._answer(body))
        return await super()._handle(request)  # aiohttp keeps the body: it reads it again

    def _answer(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        results = [m for m in messages if m.get("role") == "tool"]
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        if results:
            content = results[-1]["content"]
            texts = [content] if isinstance(content, str) else [p["text"] for p in content]
            return Reply(chunks=text_stream([f"tool said: {_tool_output(texts)}"]))
        if "Bash" in tools and TOOL_PROMPT in orjson.dumps(messages).decode():
            call = {
                "index": 0,
                "id": "call_e2e_1",
                "type": "function",
                "function": {"name": "Bash", "arguments": orjson.dumps(BASH_INPUT).decode()},
            }
            chunks: list[Any] = [
                chunk_json({"role": "assistant", "tool_calls": [call]}),
                chunk_json({}, finish_reason="tool_calls"),
            ]
            return Reply(chunks=chunks)
        return Reply(chunks=text_stream(["pong"]))


class ScriptedGemini(FakeGemini):
    """The same script in Gemini's wire format (functionCall / functionResponse parts)."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith((":generateContent", ":streamGenerateContent")):
            self.replies.append(self._answer(orjson.loads(await request.read() or b"{}")))
        return await super()._handle(request)

    def _answer(self, body: dict[str, Any]) -> Reply:
        parts = [p for c in body.get("contents") or [] for p in c.get("parts", [])]
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        tools = [
            d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations", [])
        ]
        if responses:
            said = _tool_output([orjson.dumps(responses[-1].get("response")).decode()])
            part: dict[str, Any] = {"text": f"tool said: {said}"}
        elif "Bash" in tools and TOOL_PROMPT in orjson.dumps(parts).decode():
            part = {"functionCall": {"name": "Bash", "args": BASH_INPUT}}
        else:
            part = {"text": "pong"}
        return stream_reply([response_json(candidate_json(part), usage=usage_json())])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with ScriptedOpenAI() as oai, ScriptedGemini() as gem:
        model_list: list[dict[str, Any]] = [
            {"model_name": "gpt-4o", "params": {"model": "openai/gpt-4o",
                                                "api_base": oai.base_url, "api_key": "sk-up"}},
            {"model_name": "gemini-flash", "params": {"model": "gemini/gemini-2.5-flash",
                                                      "api_base": gem.base_url, "api_key": "g"}},
        ]  # fmt: skip
        if importlib.util.find_spec("llama_cpp") is not None:  # started on first use only
            model_list.append({"model_name": "local", "params": {"model": "local/smollm2-135m"}})
        config = {
            "model_list": model_list,
            "general_settings": {"master_key": GATEWAY_KEY},
            "router_settings": {"timeout": 120, "num_retries": 0},
        }
        with start_gateway(config, tmp_path_factory.mktemp("gw"), ready_timeout_s=60) as gw:
            yield gw


def claude(e2e_bin: Path, gateway: Gateway, model: str, prompt: str, home: Path) -> str:
    env = {
        "PATH": f"{e2e_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": GATEWAY_KEY,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    }
    work = home / "work"
    work.mkdir(exist_ok=True)
    done = subprocess.run(
        [str(e2e_bin / "claude"), "-p", prompt, "--allowedTools", "Bash"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr, gateway.log_text()[-4000:])
    return done.stdout


@pytest.mark.parametrize("model", ["gpt-4o", "gemini-flash"])
def test_claude_p_answers(e2e_bin: Path, gateway: Gateway, model: str, tmp_path: Path) -> None:
    assert claude(e2e_bin, gateway, model, "say pong", tmp_path).strip() == "pong"


@pytest.mark.parametrize("model", ["gpt-4o", "gemini-flash"])
def test_bash_tool_round_trip(e2e_bin: Path, gateway: Gateway, model: str, tmp_path: Path) -> None:
    out = claude(e2e_bin, gateway, model, TOOL_PROMPT, tmp_path)
    assert "tool said:" in out
    assert "hi" in out.split("tool said:", 1)[1]
    lines = [line for line in gateway.access_lines() if line.get("model") == model]
    assert len(lines) >= 2  # the tool call, then the answer after the tool's result


# Measured with Claude Code 2.1.332: its first request is ~9,700 tokens (o200k) of system prompt
# and tool schemas, more than SmolLM2-135M's trained context (8,192; the gateway runs it with
# 2,048 unless `n_ctx` is set), and its system prompt comes as a list of text blocks, which the
# llama.cpp server refuses (issue 15 item 3, flattening for the local backend: another change).
@pytest.mark.skip(reason="Claude Code's prompt does not fit the embedded model's context")
def test_claude_p_answers_with_the_local_model(
    e2e_bin: Path, gateway: Gateway, tmp_path: Path
) -> None:
    out = claude(e2e_bin, gateway, "local", "Reply with one word: hello", tmp_path)
    assert out.strip()
