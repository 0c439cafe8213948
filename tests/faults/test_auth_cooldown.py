"""A provider key the upstream refuses (401, 403) disables its deployment: a real `chatgate
serve` then fails every call to it at once — whole or streamed, on every chat route — with
the same error naming the deployment's state, and tells clients not to retry.

Before: the deployment merely cooled down, and each call waited for the cooldown (30 s by
default, up to the router's deadline) only to be refused again."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.gateway_harness import Gateway, deployment, gateway_config, serve

HI = [{"role": "user", "content": "hi"}]
ROUTES: dict[str, Any] = {
    "/v1/chat/completions": lambda model, stream: {
        "model": model,
        "messages": HI,
        "stream": stream,
    },
    "/v1/messages": lambda model, stream: {
        "model": model,
        "max_tokens": 16,
        "messages": HI,
        "stream": stream,
    },
    "/v1/responses": lambda model, stream: {"model": model, "input": "hi", "stream": stream},
}
REFUSALS = {
    "revoked": Reply(status=401, json=error_json("Incorrect API key provided", "invalid_api_key")),
    "forbidden": Reply(
        status=403, json=error_json("Project lacks access to this model", "permission_denied")
    ),
    "unknown": Reply(
        status=404,
        json=error_json(
            "The model `gpt-4o` does not exist", "invalid_request_error", "model_not_found"
        ),
    ),
}
STATUS = {"revoked": 401, "forbidden": 403, "unknown": 404}
FIRST = {"revoked": (502, "upstream_auth"), "forbidden": (502, "upstream_auth")}
STATE = {
    "revoked": "rejected its credentials",
    "forbidden": "denied its credentials permission",
    "unknown": "does not know its model",
}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeOpenAI]]:
    with FakeOpenAI() as revoked, FakeOpenAI() as forbidden, FakeOpenAI() as unknown:
        yield {"revoked": revoked, "forbidden": forbidden, "unknown": unknown}


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    for name, fake in upstreams.items():
        fake.script(*[REFUSALS[name]] * 20)
    config = gateway_config(
        *[deployment(name, f, "openai/gpt-4o") for name, f in upstreams.items()],
        # the defaults but for a longer cooldown: no recovery probe during the test
        router={"cooldown_time": 120, "timeout": 600},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


def post(url: str, body: Any) -> tuple[int, dict[str, str], Any, float]:
    """(status, headers, parsed error body, seconds); a call that waits gives up after 5 s."""
    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST")
    request.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        body = orjson.loads(exc.read())
        return exc.code, dict(exc.headers), body, time.monotonic() - started


def message_of(route: str, body: Any) -> tuple[str, str]:
    """(error type, message) in the route's own error shape."""
    if route == "/v1/messages":
        assert body["type"] == "error"
    return body["error"]["type"], body["error"]["message"]


@pytest.mark.parametrize("name", ["revoked", "forbidden", "unknown"])
def test_every_route_fails_at_once_with_the_same_error(
    gateway: Gateway, upstreams: dict[str, FakeOpenAI], name: str
) -> None:
    status, headers, body, _ = post(
        gateway.url + "/v1/chat/completions", ROUTES["/v1/chat/completions"](name, False)
    )
    assert (status, body["error"]["code"]) == FIRST.get(name, (404, "model_not_found"))
    if status == 502:
        assert headers["x-should-retry"] == "false"
    assert len(upstreams[name].requests) == 1

    messages = set()
    for route, make in ROUTES.items():
        for stream in (False, True):
            status, headers, body, took = post(gateway.url + route, make(name, stream))
            assert status == 502, (route, stream, body)
            assert took < 1.0, (route, stream, took)
            assert headers["x-should-retry"] == "false"
            assert "retry-after" not in {k.lower() for k in headers}
            kind, message = message_of(route, body)
            assert kind == ("api_error" if route == "/v1/messages" else "upstream_error")
            if route != "/v1/messages":  # the state, whatever refused (401, 403 or a 404 model)
                assert body["error"]["code"] == "deployment_disabled"
            messages.add(message)
    [message] = messages  # one error, whatever the route and whether streamed
    assert message.startswith(
        f"deployment {name}#0 (openai/gpt-4o) of '{name}' is disabled: the upstream {STATE[name]} "
        f"({STATUS[name]}) at "
    )
    assert " and reload (chatgate tries it again with the first request after " in message
    assert len(upstreams[name].requests) == 1  # none of them reached the upstream


def settled_access_lines(gateway: Gateway) -> int:
    """How many access-log lines, once no more arrive (they are written in batches)."""
    count, since = -1, time.monotonic()
    while time.monotonic() - since < 0.3:
        now = len(gateway.access_lines())
        if now != count:
            count, since = now, time.monotonic()
        time.sleep(0.02)
    return count


def test_the_official_sdks_do_not_retry_it(gateway: Gateway) -> None:
    post(gateway.url + "/v1/chat/completions", ROUTES["/v1/chat/completions"]("revoked", False))
    before = settled_access_lines(gateway)
    started = time.monotonic()
    with (
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused") as client,  # 2 retries
        pytest.raises(openai.InternalServerError) as failed,
    ):
        client.chat.completions.create(model="revoked", messages=HI)  # type: ignore[arg-type]
    assert failed.value.status_code == 502
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="unused") as claude,  # 2 retries
        pytest.raises(anthropic.APIStatusError) as refused,
    ):
        claude.messages.create(model="revoked", max_tokens=16, messages=HI)  # type: ignore[arg-type]
    assert refused.value.status_code == 502
    assert time.monotonic() - started < 1.0  # no backoff: neither SDK tried again
    assert settled_access_lines(gateway) == before + 2  # one request each
