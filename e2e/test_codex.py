"""The real Codex CLI (`@openai/codex`, pinned in the Makefile) against `chatgate serve`, with a
scripted fake upstream of each wire format: `codex exec` answers, a shell-tool round trip (the
model asks for `echo hi`, Codex runs it, the model sees its output) and a freeform apply_patch
round trip complete, on an OpenAI-format, an Anthropic (Responses <-> Messages through the
canonical types) and a Gemini backend; the backend's reasoning (Anthropic thinking, Gemini
thought signatures) goes out sealed and comes back. Codex talks to the gateway through a
logging proxy that keeps every request body; with CHATGATE_E2E_CAPTURE=<folder> they are
written there (the replay fixtures of tests/integration/test_codex_replay.py come from it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web
from tests.fakes import anthropic_server as anth
from tests.fakes import gemini_server as gem
from tests.fakes.gateway import Gateway, start_gateway
from tests.fakes.openai_server import FakeOpenAI, Reply, chunk_json, text_stream

MASTER = "sk-e2e-codex-master-1"
SHELL_CALL_ID = "call_shell_1"

Responder = Callable[[Any], Reply]


class ScriptedUpstream:
    """Answers by what the request holds: a tool result -> the final text; a request whose
    user asks to run something -> a shell tool call; otherwise a greeting."""

    def __init__(self, fake: FakeOpenAI, responder: Responder) -> None:
        self.fake = fake
        handle = fake._handle

        async def scripted(request: web.Request) -> web.StreamResponse:
            raw = await request.read()  # aiohttp keeps the body: the fake reads it again
            fake.replies.append(responder(orjson.loads(raw) if raw else {}))
            return await handle(request)

        fake._handle = scripted  # type: ignore[method-assign]  # its routes call this


def _tool_result(messages: list[Any]) -> str | None:
    for message in messages:
        for part in message.get("parts") or ():  # Gemini
            if "functionResponse" in part:
                answer = part["functionResponse"]["response"]
                texts = [v for v in answer.values() if isinstance(v, str)]
                return texts[0] if texts else orjson.dumps(answer).decode()
        if message.get("role") == "tool":
            return str(message["content"])
        for block in message.get("content") or ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                return content if isinstance(content, str) else orjson.dumps(content).decode()
    return None


PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello from apply_patch\n*** End Patch\n"


def _asks(body: Any, words: str) -> bool:
    turns = body.get("messages") or body.get("contents") or []
    return words in orjson.dumps(turns[-1:]).decode()


def _call(body: Any) -> tuple[str, dict[str, Any]] | None:
    """The tool call the scripted model makes for this request, if any."""
    if _asks(body, "run echo hi"):
        return "exec_command", {"cmd": "echo hi"}
    if _asks(body, "add hello.txt"):
        return "apply_patch", {"input": PATCH}  # a custom tool: one string argument here
    return None


def openai_reply(body: Any) -> Reply:
    result = _tool_result(body.get("messages", []))
    if result is not None:
        return Reply(chunks=text_stream(["the command printed: ", result.strip()[-40:]]))
    if (wanted := _call(body)) is not None:
        function = {"name": wanted[0], "arguments": orjson.dumps(wanted[1]).decode()}
        call = {"index": 0, "id": SHELL_CALL_ID, "type": "function", "function": function}
        return Reply(chunks=[
            chunk_json({"role": "assistant", "content": None, "tool_calls": [call]}),
            chunk_json({}, finish_reason="tool_calls"),
        ])  # fmt: skip
    return Reply(chunks=text_stream(["hi from ", "the fake"]))


def anthropic_reply(body: Any) -> Reply:
    result = _tool_result(body.get("messages", []))
    if result is not None:
        text = f"the command printed: {result.strip()[-40:]}"
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
    elif (wanted := _call(body)) is not None:
        thinking = {"type": "thinking", "thinking": "run it", "signature": "sig-e2e-1"}
        use = {"type": "tool_use", "id": "toolu_e2e_1", "name": wanted[0], "input": wanted[1]}
        message = anth.message_json([thinking, use], model="claude-sonnet-4-5")
        message["stop_reason"] = "tool_use"
        return Reply(chunks=anth.events_for(message))
    else:
        blocks = [{"type": "text", "text": "hi from the fake"}]
    return Reply(chunks=anth.events_for(anth.message_json(blocks, model="claude-sonnet-4-5")))


GEMINI_SIGNATURE = "c2lnbmF0dXJlLWUyZQ=="


def gemini_reply(body: Any) -> Reply:
    result = _tool_result(body.get("contents", []))
    if result is not None:
        part: dict[str, Any] = {"text": f"the command printed: {result.strip()[-40:]}"}
    elif (wanted := _call(body)) is not None:
        call = {"name": wanted[0], "args": wanted[1]}
        part = {"functionCall": call, "thoughtSignature": GEMINI_SIGNATURE}
    else:
        part = {"text": "hi from the fake"}
    answer = gem.response_json(gem.candidate_json(part), usage=gem.usage_json())
    return gem.stream_reply([answer])


class LoggingProxy:
    """Forwards everything to ``target`` and keeps each request's method, path and body."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[str, str, bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path, body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with ClientSession(auto_decompress=False) as session:
            url = self.target + request.path_qs
            async with session.request(request.method, url, data=body, headers=headers) as up:
                skip = ("content-length", "transfer-encoding", "connection")
                out = web.StreamResponse(status=up.status)
                for key, value in up.headers.items():
                    if key.lower() not in skip:
                        out.headers[key] = value
                await out.prepare(request)
                async for piece in up.content.iter_any():
                    await out.write(piece)
                await out.write_eof()
                return out

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    def __enter__(self) -> LoggingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def responses_bodies(self) -> list[Any]:
        return [orjson.loads(b) for m, p, b in self.seen if m == "POST" and p == "/v1/responses"]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeOpenAI]]:
    """A scripted fake per backend kind, by the gateway model name that reaches it."""
    fakes = {
        "gw-openai": FakeOpenAI(),
        "gw-claude": anth.FakeAnthropic(),
        "gw-gemini": gem.FakeGemini(),
    }
    responders = {
        "gw-openai": openai_reply,
        "gw-claude": anthropic_reply,
        "gw-gemini": gemini_reply,
    }
    for name, fake in fakes.items():
        ScriptedUpstream(fake, responders[name])  # before they start: their routes bind _handle
    with fakes["gw-openai"], fakes["gw-claude"], fakes["gw-gemini"]:
        yield fakes


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    models = {
        "gw-openai": "openai/gpt-4o-mini",
        "gw-claude": "anthropic/claude-sonnet-4-5",
        "gw-gemini": "gemini/gemini-2.5-flash",
    }
    config = {
        "model_list": [
            {"model_name": name, "params": {
                "model": model, "api_base": upstreams[name].base_url, "api_key": "up"}}
            for name, model in models.items()
        ],
        "router_settings": {"num_retries": 0, "timeout": 30},
        "general_settings": {"master_key": MASTER},
    }  # fmt: skip
    with start_gateway(config, tmp_path_factory.mktemp("codex-gw")) as gw:
        yield gw


@pytest.fixture
def proxy(gateway: Gateway) -> Iterator[LoggingProxy]:
    with LoggingProxy(gateway.url) as logging_proxy:
        yield logging_proxy


CONFIG = """\
model = "{model}"
model_provider = "chatgate"
check_for_update_on_startup = false
approval_policy = "never"
sandbox_mode = "danger-full-access"

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.chatgate]
name = "chatgate"
base_url = "{base_url}/v1"
wire_api = "responses"
env_key = "CHATGATE_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""


def catalog(model: str) -> dict[str, Any]:
    """Codex's model metadata for a gateway model that takes the freeform apply_patch tool
    (Codex offers it as a `custom` tool only to models whose metadata say so)."""
    levels = [{"effort": e, "description": e} for e in ("low", "medium", "high")]
    entry = {
        "slug": model, "display_name": model, "description": "through chatgate", "priority": 1,
        "additional_speed_tiers": [], "service_tiers": [], "availability_nux": None,
        "upgrade": None, "default_reasoning_level": "medium", "supported_reasoning_levels": levels,
        "shell_type": "shell_command", "visibility": "list", "supported_in_api": True,
        "supports_reasoning_summaries": True, "support_verbosity": False,
        "default_verbosity": None, "apply_patch_tool_type": "freeform",
        "web_search_tool_type": "text", "supports_parallel_tool_calls": True,
        "supports_image_detail_original": False, "experimental_supported_tools": [],
        "supports_search_tool": False, "context_window": 200000, "max_context_window": 200000,
        "effective_context_window_percent": 95,
        "truncation_policy": {"mode": "tokens", "limit": 10000}, "input_modalities": ["text"],
        "base_instructions": "You are a coding agent.",
    }  # fmt: skip
    return {"models": [entry]}


def codex_exec(
    e2e_bin: Path, tmp: Path, base_url: str, model: str, prompt: str, *, freeform: bool = False
) -> tuple[subprocess.CompletedProcess[str], str]:
    home, work = tmp / "codex-home", tmp / "work"
    home.mkdir()
    work.mkdir()
    config = CONFIG.format(model=model, base_url=base_url)
    if freeform:
        (home / "catalog.json").write_bytes(orjson.dumps(catalog(model)))
        config = f'model_catalog_json = "{home / "catalog.json"}"\n' + config
    (home / "config.toml").write_text(config)
    last = tmp / "last-message.txt"
    env = {
        "PATH": f"{e2e_bin}:{os.environ['PATH']}",
        "HOME": str(tmp),
        "CODEX_HOME": str(home),
        "CHATGATE_API_KEY": MASTER,
        "NO_COLOR": "1",
    }
    args = [str(e2e_bin / "codex"), "exec", "--skip-git-repo-check", "--ephemeral",
            "-C", str(work), "-o", str(last), prompt]  # fmt: skip
    done = subprocess.run(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done, last.read_text() if last.exists() else ""


def capture(proxy: LoggingProxy, name: str) -> None:
    folder = os.environ.get("CHATGATE_E2E_CAPTURE")
    if not folder:
        return
    for n, body in enumerate(proxy.responses_bodies()):
        path = Path(folder) / f"{name}-{n}.json"
        path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


@dataclass
class Codex:
    """`codex exec` pointed at the gateway (through the logging proxy) for one model."""

    bin: Path
    proxy: LoggingProxy
    upstream: FakeOpenAI  # the fake behind ``model``
    tmp: Path
    model: str

    def run(self, prompt: str, freeform: bool = False) -> tuple[int, str, str]:
        done, last = codex_exec(
            self.bin, self.tmp, self.proxy.url, self.model, prompt, freeform=freeform
        )
        return done.returncode, last.strip(), _explain(done)

    def round_trip(self, prompt: str, freeform: bool = False) -> tuple[str, list[Any]]:
        """A prompt that makes the scripted model call a tool: the final answer and the two
        request bodies (the call asked for, then the tool's output sent back)."""
        status, last, why = self.run(prompt, freeform)
        assert status == 0, why
        assert last.startswith("the command printed:"), why
        bodies = self.proxy.responses_bodies()
        assert len(bodies) == 2, bodies
        return last, bodies


@pytest.fixture(params=["gw-openai", "gw-claude", "gw-gemini"])
def codex(
    request: pytest.FixtureRequest,
    e2e_bin: Path,
    proxy: LoggingProxy,
    upstreams: dict[str, FakeOpenAI],
    tmp_path: Path,
) -> Iterator[Codex]:
    run = Codex(e2e_bin, proxy, upstreams[request.param], tmp_path, request.param)
    yield run
    capture(proxy, f"{request.node.originalname}-{run.model}")


def test_codex_exec_says_hi(codex: Codex) -> None:
    status, last, why = codex.run("say hi")
    assert status == 0, why
    assert last == "hi from the fake", why
    [body] = codex.proxy.responses_bodies()
    assert body["include"] == ["reasoning.encrypted_content"]
    assert {t["type"] for t in body["tools"]} >= {"function", "namespace", "web_search"}


def test_codex_shell_round_trip(codex: Codex) -> None:
    last, (_, second) = codex.round_trip("run echo hi")
    assert last.endswith("hi")
    kinds = [item.get("type") for item in second["input"]]
    assert "function_call" in kinds
    assert "function_call_output" in kinds
    output = next(i for i in second["input"] if i.get("type") == "function_call_output")
    assert "hi" in orjson.dumps(output["output"]).decode()
    if codex.model == "gw-openai":
        return
    # The backend's reasoning went out sealed, and came back to it on its turn.
    assert any(i.get("type") == "reasoning" and i.get("encrypted_content") for i in second["input"])
    sent = codex.upstream.last.body
    if codex.model == "gw-claude":
        thinking = {"type": "thinking", "thinking": "run it", "signature": "sig-e2e-1"}
        assert sent["messages"][1]["content"][0] == thinking
    else:
        model_turn = next(c for c in sent["contents"] if c["role"] == "model")
        assert model_turn["parts"][0]["thoughtSignature"] == GEMINI_SIGNATURE


def test_codex_apply_patch_custom_tool_round_trip(codex: Codex) -> None:
    _, (first, second) = codex.round_trip("add hello.txt", freeform=True)
    assert (codex.tmp / "work" / "hello.txt").read_text() == "hello from apply_patch\n"
    assert {"type": "custom", "name": "apply_patch"}.items() <= next(
        t for t in first["tools"] if t["type"] == "custom"
    ).items()
    call = next(i for i in second["input"] if i.get("type") == "custom_tool_call")
    assert (call["name"], call["input"]) == ("apply_patch", PATCH)
    assert any(i.get("type") == "custom_tool_call_output" for i in second["input"])
    assert first["reasoning"]["effort"] == "medium"  # this model's Codex metadata asks for it
    if codex.model == "gw-claude":  # ... which Anthropic takes as a thinking budget
        thinking = codex.upstream.last.body["thinking"]
        assert thinking == {"type": "enabled", "budget_tokens": 8192}
