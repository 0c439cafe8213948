"""Request bodies the real Codex CLI sent (tests/fixtures/clients/codex-<version>/, captured by
e2e/test_codex.py) replayed through a real `chatgate serve` against every backend kind with a
fake upstream (OpenAI-format, Anthropic, Gemini): each is answered 200 with a well-formed
Responses stream (every event parsed by the openai SDK's own types), hosted tools named in
x-chatgate-dropped-tools, and what reaches each upstream is that upstream's own format. (The
local llama.cpp backend is left out: Codex's ~12k-token prompt exceeds the embedded model's
context window.)"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.clients.backends import BACKENDS, model_list, upstreams
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import Gateway, gateway_config, serve

__all__ = ["upstreams"]  # the fixture, used by name

FIXTURES = Path(__file__).parent.parent / "fixtures" / "clients"
CAPTURED = sorted(FIXTURES.glob("codex-*/*.json"))
MASTER = "sk-e2e-codex-master-1"  # the key the sealed-thinking fixture was captured with
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    openai_entry, anthropic_entry, _ = model_list(upstreams)
    # Anthropic first: its kind must not decide for the OpenAI deployment of the same name
    mixed = [{**entry, "model_name": "mixed"} for entry in (anthropic_entry, openai_entry)]
    config = gateway_config(
        *model_list(upstreams), *mixed, master_key=MASTER, router={"num_retries": 0, "timeout": 10}
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def captured(path: Path, model: str, *, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(path.read_bytes())
    return {**body, "model": model, "stream": stream}


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return orjson.loads(self.text)


def post(gateway: Gateway, body: dict[str, Any]) -> Answer:
    request = urllib.request.Request(
        f"{gateway.url}/v1/responses", data=orjson.dumps(body), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {MASTER}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                          resp.read().decode())  # fmt: skip
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read().decode())


def stream_events(response: Answer) -> list[dict[str, Any]]:
    events = []
    for block in response.text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            events.append(orjson.loads(data[0]))
    return events


def test_fixtures_are_there() -> None:
    assert len(CAPTURED) >= 5
    assert all(orjson.loads(p.read_bytes())["include"] for p in CAPTURED)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_captured_request_is_answered_by_every_backend(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI], path: Path, backend: str
) -> None:
    upstream = upstreams[backend]
    before = len(upstream.requests)
    response = post(gateway, captured(path, backend))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-chatgate-dropped-tools"] == "web_search"
    events = stream_events(response)
    for event in events:
        EVENTS.validate_python(event)
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    final = events[-1]
    assert final["type"] == "response.completed"
    Response.model_validate(final["response"])
    assert final["response"]["output"][0]["type"] == "message"
    assert len(upstream.requests) == before + 1  # one upstream call, no retry


def test_sealed_thinking_goes_back_to_anthropic_only(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI]
) -> None:
    path = next(p for p in CAPTURED if p.stem == "shell-tool-output-sealed-thinking")
    sent: dict[str, Any] = {}
    for backend in BACKENDS:
        response = post(gateway, captured(path, backend, stream=False))
        assert response.status_code == 200, response.text
        Response.model_validate(response.json())
        sent[backend] = upstreams[backend].last.body
    turn = next(m for m in sent["anthropic"]["messages"] if m["role"] == "assistant")
    assert turn["content"][0] == {
        "type": "thinking",
        "thinking": "run it",
        "signature": "sig-e2e-1",
    }
    assert "sig-e2e-1" not in orjson.dumps(sent["openai"]).decode()
    assert "sig-e2e-1" not in orjson.dumps(sent["gemini"]).decode()


def test_what_each_upstream_gets_is_its_own_format(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI]
) -> None:
    path = next(p for p in CAPTURED if p.stem == "freeform-apply-patch-output")
    for backend in BACKENDS:
        response = post(gateway, captured(path, backend, stream=False))
        assert response.status_code == 200, response.text
        ignored = response.headers["x-chatgate-ignored-params"].split(",")
        assert "client_metadata" in ignored
        body = upstreams[backend].last.body
        if backend == "openai":
            assert body["prompt_cache_key"]
            assert body["reasoning_effort"] == "medium"
            names = [t["function"]["name"] for t in body["tools"]]
        elif backend == "anthropic":
            assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
            assert "prompt_cache_key" not in body
            assert "prompt_cache_key" in ignored
            names = [t["name"] for t in body["tools"]]
        else:
            assert "prompt_cache_key" not in body
            decls = body["tools"][0]["functionDeclarations"]
            names = [d["name"] for d in decls]
        assert "apply_patch" in names
        assert "multi_agent_v1__close_agent" in names


def test_a_model_of_mixed_backend_kinds_gets_no_sealed_reasoning(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI]
) -> None:
    path = next(p for p in CAPTURED if p.stem == "shell-tool-output-sealed-thinking")
    before = {kind: len(upstreams[kind].requests) for kind in ("openai", "anthropic")}
    for _ in range(4):  # both deployments of "mixed" get some: simple-shuffle
        response = post(gateway, captured(path, "mixed", stream=False))
        assert response.status_code == 200, response.text
    for kind, count in before.items():
        for request in upstreams[kind].requests[count:]:
            assert "sig-e2e-1" not in orjson.dumps(request.body).decode()
