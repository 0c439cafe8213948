"""An upstream that refuses the request itself (400, 422) is asked exactly once, its deployment
is not held against it, and the caller gets 400 with the upstream's own message: through the
Router and through a real `chatgate serve`, whole and streamed, on every chat route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from chatgate import Router
from chatgate.errors import BadRequestError, UnprocessableEntityError
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI, Reply, error_json
from tests.gateway_harness import deployment, gateway_config, serve

HI = [{"role": "user", "content": "hi"}]
MESSAGE = "Invalid value for 'top_p': must be at most 1. [param: top_p]"
# Cooldowns on, and one failure enough to start one: a refusal counted against the
# deployment would show at once.
SETTINGS = {"num_retries": 2, "allowed_fails": 1, "cooldown_time": 30, "retry_base_delay": 0.01}


def refusal(status: int) -> Reply:
    # x-should-retry: true, as if the upstream wanted it retried: a refused request is not
    # retried all the same (the same request would be refused again).
    return Reply(
        status=status,
        json=error_json(MESSAGE, "invalid_request_error", "invalid_value", "top_p"),
        headers={"x-should-retry": "true"},
    )


@pytest.fixture
def pair() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b:
        yield a, b


@pytest.mark.parametrize(
    ("status", "error"), [(400, BadRequestError), (422, UnprocessableEntityError)]
)
@pytest.mark.parametrize("stream", [False, True])
async def test_the_router_asks_once_and_holds_nothing_against_the_deployment(
    pair: tuple[FakeOpenAI, FakeOpenAI], status: int, error: type[Exception], stream: bool
) -> None:
    a, b = pair
    a.script(refusal(status))
    router = Router(
        [deployment("smart", a), deployment("smart", b)],
        routing_strategy="round-robin",
        settings=SETTINGS,
    )
    with pytest.raises(error) as info:
        await router.acompletion("smart", HI, stream=stream)
    assert info.value.message == MESSAGE  # type: ignore[attr-defined]
    assert (len(a.requests), len(b.requests)) == (1, 0)  # not retried, here or elsewhere
    [smart0, _] = await router.state.view(["smart#0", "smart#1"], router.now())
    assert smart0.cooldown_until == 0.0
    assert smart0.last_error is None  # not even counted
    for _ in range(2):  # both deployments serve the next calls
        await router.acompletion("smart", HI)
    assert (len(a.requests), len(b.requests)) == (2, 1)


ROUTES: dict[str, Any] = {
    "/v1/chat/completions": lambda stream: {"model": "m", "messages": HI, "stream": stream},
    "/v1/messages": lambda stream: {
        "model": "m",
        "max_tokens": 16,
        "messages": HI,
        "stream": stream,
    },
    "/v1/responses": lambda stream: {"model": "m", "input": "hi", "stream": stream},
}


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(gateway_config(deployment("m", upstream), router=SETTINGS), tmp_path_factory) as gw:
        yield gw.url


def message_of(route: str, body: Any) -> str:
    if route == "/v1/messages":
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["type"] == "invalid_request_error"
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize("status", [400, 422])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("route", list(ROUTES))
def test_the_gateway_answers_400_with_the_upstreams_message(
    gateway: str, upstream: FakeOpenAI, route: str, stream: bool, status: int
) -> None:
    upstream.replies.clear()
    upstream.script(refusal(status))
    before = len(upstream.requests)
    code, body = request_json(gateway + route, body=orjson.dumps(ROUTES[route](stream)))
    assert code == 400, body
    assert message_of(route, body) == MESSAGE
    assert len(upstream.requests) == before + 1  # asked once
    code, _ = request_json(gateway + route, body=orjson.dumps(ROUTES[route](False)))
    assert code == 200  # and the deployment is not cooling down
