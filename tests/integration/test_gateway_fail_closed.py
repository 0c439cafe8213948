"""A real `chatgate serve` with ``shared_state_failure: closed``: while its Redis is stopped,
chat, embeddings and /v1/messages are refused with 503, Retry-After and the code
``shared_state_unavailable`` (seen through the official SDKs), a virtual key's limits refuse
too, nothing reaches the upstream, readiness fails, /metrics counts the refusals and the log
has one line for the outage; when Redis is back requests are served again, no restart."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from chatgate.config import parse
from chatgate.router import RedisState
from chatgate.server.services import Services
from tests.clock import poll_until
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_server import RedisServer
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-fail-closed-3"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def setup(
    upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, RedisServer, Any]]:
    with RedisServer() as redis_server:
        config = gateway_config(
            deployment("fast", upstream),
            master_key=MASTER,
            database=SQLITE,
            router={"redis_url": redis_server.url, "shared_state_failure": "closed"},
        )
        with serve(config, tmp_path_factory) as gateway:
            yield gateway, redis_server, upstream


def refusals(gw: Gateway) -> dict[str, float]:
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.findall(r"^chatgate_shared_state_refusals_total\{(.*)\} (\S+)$", text, re.M)
    return {labels: float(value) for labels, value in found}


@pytest.fixture
def clients(
    setup: tuple[Gateway, RedisServer, FakeOpenAI],
) -> Iterator[tuple[openai.OpenAI, openai.OpenAI, anthropic.Anthropic]]:
    """The master key (no limits of its own), a key with an RPM limit, and Anthropic's SDK."""
    gw = setup[0]
    with (
        gw.openai_client() as master,
        gw.openai_client(gw.new_key(rpm=100)) as keyed,
        anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0) as claude,
    ):
        yield master, keyed, claude


def chat_served(client: openai.OpenAI) -> bool:
    """One chat call: True when answered, False when refused for the shared state."""
    try:
        client.chat.completions.create(model="fast", messages=HI)
    except openai.InternalServerError as refused:
        failure = (refused.status_code, refused.code)
    else:
        return True
    assert failure == (503, "shared_state_unavailable")
    return False


def test_requests_are_refused_while_redis_is_down_and_served_when_it_is_back(
    setup: tuple[Gateway, RedisServer, FakeOpenAI],
    clients: tuple[openai.OpenAI, openai.OpenAI, anthropic.Anthropic],
) -> None:
    gw, redis_server, upstream = setup
    master, keyed, claude = clients
    for client in (master, keyed):
        client.chat.completions.create(model="fast", messages=HI)
    served = len(upstream.requests)

    redis_server.stop()
    try:
        errors = []
        for client in (master, keyed, master):
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model="fast", messages=HI)
            errors.append(info.value)
        with pytest.raises(openai.InternalServerError) as embedding:
            master.embeddings.create(model="fast", input="hi")
        errors.append(embedding.value)
        for error in errors:
            assert (error.status_code, error.code) == (503, "shared_state_unavailable")
            assert error.response.headers["retry-after"] == "1"
        with pytest.raises(anthropic.InternalServerError) as message:
            claude.messages.create(model="fast", max_tokens=5, messages=HI)
        assert message.value.status_code == 503
        assert message.value.response.headers["retry-after"] == "1"
        refused: Any = message.value.body
        assert refused["error"]["type"] == "api_error"
        assert "shared_state_failure is 'closed'" in refused["error"]["message"]
        assert len(upstream.requests) == served  # nothing reached the upstream

        status, ready = request_json(f"{gw.url}/health/readiness", method="GET")
        assert (status, ready["checks"]["shared_state"]["ok"]) == (503, False)
        counted = refusals(gw)
        assert counted['reason="unreachable",scope="router"'] == 4  # 2 chats, embeddings, messages
        assert counted['reason="unreachable",scope="key"'] == 1  # the key's RPM, before routing
        log = gw.log_text()
        assert 1 <= log.count("Redis unavailable") <= 2  # per shared state (router, keys)
        assert "failed: SharedStateUnavailableError" not in log  # no line per request
    finally:
        redis_server.start()

    # The router's and the keys' shared states each try Redis again on their own schedule
    # (every second, on the gateway's clock): the master key's call proves the first, the
    # keyed call the second. Until then a call is refused as above, never failed otherwise.
    for client in (master, keyed):
        poll_until(lambda c=client: chat_served(c), 60, "the gateway did not recover", every_s=0.05)
    assert claude.messages.create(model="fast", max_tokens=5, messages=HI).content
    assert request_json(f"{gw.url}/health/readiness", method="GET")[0] == 200


def test_a_reload_switches_open_and_closed_on_the_states_in_use() -> None:
    """The Redis states outlive a reload (their leases, their connection): the new setting
    applies to them, the routers' and the keys' alike."""
    services = Services()
    url = "redis://127.0.0.1:1/0"  # never connected to here
    config = parse({"router_settings": {"redis_url": url}}, env={})
    services.configure(config)
    router_state = services.router_state(config.router_settings)
    assert isinstance(router_state, RedisState)
    assert isinstance(services.key_limits, RedisState)
    assert (router_state.failure, services.key_limits.failure) == ("open", "open")
    closed = parse(
        {"router_settings": {"redis_url": url, "shared_state_failure": "closed"}}, env={}
    )
    services.configure(closed)
    assert services.router_state(closed.router_settings) is router_state
    assert (router_state.failure, services.key_limits.failure) == ("closed", "closed")
