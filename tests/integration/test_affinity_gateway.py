"""Prompt caching through a real `chatgate serve`: automatic Claude cache breakpoints reach the
Anthropic fake only for a deployment (``auto_prompt_cache``) or a key (metadata
``auto_prompt_cache: true``) that opted in, whichever API the client speaks; a client's own
breakpoint is kept alone; OpenAI's ``prompt_cache_key`` on /v1/chat/completions reaches an
OpenAI backend and is not sent to an Anthropic one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.fakes import anthropic_server as anth
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-prompt-cache-3"
SYSTEM = "You are the support agent of a large online shop. " * 120  # ~1,500 tokens
EPHEMERAL = {"type": "ephemeral"}
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "where is my order?"},
    {"role": "assistant", "content": "Which order number?"},
    {"role": "user", "content": "A-1234"},
]


@pytest.fixture(scope="module")
def claude() -> Iterator[anth.FakeAnthropic]:
    with anth.FakeAnthropic() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module")
def gpt() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    claude: anth.FakeAnthropic, gpt: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    sonnet = "anthropic/claude-sonnet-4-5"
    config = gateway_config(
        deployment("plain", claude, sonnet),
        deployment("auto", claude, sonnet, auto_prompt_cache=True),
        deployment("gpt", gpt, "openai/gpt-4o"),
        master_key=MASTER,
        database=SQLITE,
        key_cache_ttl_s=0,
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def chat(gw: Gateway, key: str, model: str, **extra: Any) -> None:
    with gw.openai_client(key) as client:
        client.chat.completions.create(model=model, messages=MESSAGES, **extra)  # type: ignore[arg-type]


def cache_marks(body: dict[str, Any]) -> list[str]:
    """Where the body carries cache_control: 'system', 'messages.N', 'tools.N', 'top'."""
    found = ["top"] if "cache_control" in body else []
    system = body.get("system")
    if isinstance(system, list) and any("cache_control" in b for b in system):
        found.append("system")
    for i, turn in enumerate(body["messages"]):
        content = turn["content"]
        if isinstance(content, list) and any("cache_control" in b for b in content):
            found.append(f"messages.{i}")
    return found


def test_a_deployment_that_opted_in_gets_breakpoints(
    gateway: Gateway, claude: anth.FakeAnthropic
) -> None:
    chat(gateway, MASTER, "auto")
    assert cache_marks(claude.last.body) == ["system", "messages.1", "messages.2"]
    assert claude.last.body["messages"][1]["content"][-1]["cache_control"] == EPHEMERAL


def test_without_an_opt_in_the_request_goes_as_it_came(
    gateway: Gateway, claude: anth.FakeAnthropic
) -> None:
    chat(gateway, MASTER, "plain")
    assert cache_marks(claude.last.body) == []
    assert claude.last.body["system"] == SYSTEM


def test_a_key_that_opted_in_gets_breakpoints_on_any_claude_deployment(
    gateway: Gateway, claude: anth.FakeAnthropic
) -> None:
    opted = gateway.new_key(metadata={"auto_prompt_cache": True})
    chat(gateway, opted, "plain")
    assert cache_marks(claude.last.body) == ["system", "messages.1", "messages.2"]
    with gateway.openai_client(opted) as client:
        stream = client.chat.completions.create(model="plain", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert cache_marks(claude.last.body) == [
        "system",
        "messages.1",
        "messages.2",
    ]  # streamed: the same
    other = gateway.new_key(metadata={"auto_prompt_cache": "yes"})  # only true opts in
    chat(gateway, other, "plain")
    assert cache_marks(claude.last.body) == []


def test_the_messages_api_gets_them_too_and_a_clients_own_is_kept_alone(
    gateway: Gateway, claude: anth.FakeAnthropic
) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0) as client:
        turns: Any = MESSAGES[1:]
        client.messages.create(model="auto", max_tokens=100, system=SYSTEM, messages=turns)
        assert cache_marks(claude.last.body) == ["system", "messages.1", "messages.2"]
        own: Any = [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}]
        client.messages.create(model="auto", max_tokens=100, system=own, messages=turns)
    assert cache_marks(claude.last.body) == ["system"]  # the client's one, no other


def test_prompt_cache_key_reaches_openai_and_not_anthropic(
    gateway: Gateway, claude: anth.FakeAnthropic, gpt: FakeOpenAI
) -> None:
    chat(gateway, MASTER, "gpt", extra_body={"prompt_cache_key": "thread-7"})
    assert gpt.last.body["prompt_cache_key"] == "thread-7"
    chat(gateway, MASTER, "plain", extra_body={"prompt_cache_key": "thread-7"})
    assert "prompt_cache_key" not in claude.last.body
