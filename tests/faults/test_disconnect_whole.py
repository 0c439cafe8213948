"""A client that gives up on a whole (non-streamed) answer: the gateway notices at once,
cancels the upstream call, logs 499 and settles as docs/cost.md defines for a cancelled call
(the hold is charged: the upstream may bill up to it and we never learn what it did)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from chatgate.cost.budgets import Budgets
from tests.clock import poll_until
from tests.fakes.gateway import request_json
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, embeddings_reply
from tests.gateway_harness import SQLITE, Gateway, deployment, gateway_config, serve

MASTER = "sk-master-disconnect-7"
MAX_TOKENS = 1000
ASK = [{"role": "user", "content": "tell me a long story"}]


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        deployment("fast", upstream),
        deployment("embed", upstream, "openai/text-embedding-3-small"),
        master_key=MASTER,
        database=SQLITE,
        router={"cooldown_time": 0, "num_retries": 0},
        key_cache_ttl_s=0,
        cache={"backend": "memory"},
    )
    with serve(config, tmp_path_factory) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _fresh_script(upstream: FakeOpenAI) -> None:
    upstream.replies.clear()


def give_up(
    gw: Gateway,
    upstream: FakeOpenAI,
    path: str,
    body: dict[str, Any],
    key: str,
    trace: str,
    until: tuple[Callable[[], bool], str] | None = None,
) -> float:
    """Send a request, close the connection once the upstream is working on it (and the
    condition ``until`` names holds): the client's patience ran out mid-call. The time of the
    close (monotonic)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]), timeout=5)
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {key}",
        "x-chatgate-trace-id": trace,
    }
    calls = len(upstream.requests)
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    poll_until(lambda: len(upstream.requests) > calls, what="the request reaching the upstream")
    if until is not None:
        condition, what = until
        poll_until(condition, what=what)
    conn.close()
    return time.monotonic()


def access_line(gw: Gateway, trace: str) -> dict[str, Any]:
    return gw.wait_for_access_line(trace, field="trace_id")


def hold_of(messages: list[dict[str, Any]], max_tokens: int) -> Decimal:
    return Budgets([]).worst_case("openai/gpt-4o-mini", messages, max_tokens=max_tokens)


def test_a_client_giving_up_on_a_whole_answer_cancels_the_upstream_and_is_charged_the_hold(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    hold = hold_of(ASK, MAX_TOKENS)
    budget = hold * Decimal("1.5")  # room for one call's hold, not two
    secret = gateway.new_key(budget=str(budget))
    before = upstream.disconnects
    upstream.script(Reply(json=completion_json("late", prompt_tokens=9, completion_tokens=3),
                          delay_s=2.0))  # fmt: skip
    body = {"model": "fast", "messages": ASK, "max_tokens": MAX_TOKENS}
    closed = give_up(gateway, upstream, "/v1/chat/completions", body, secret, "whole-1")
    assert upstream.wait_for_disconnect(before + 1, timeout_s=1.0), "upstream call still running"
    assert time.monotonic() - closed < 1.0
    line = access_line(gateway, "whole-1")
    assert line["status"] == 499
    assert line["error_class"] == "ClientDisconnected"
    assert Decimal(line["cost_usd"]) == hold  # what the upstream may bill, at most
    # The budget was charged the hold: the next call's hold no longer fits.
    status, answer = request_json(
        f"{gateway.url}/v1/chat/completions", body=json.dumps(body).encode(), key=secret
    )
    assert status == 402, answer


def test_embeddings_give_up_cancels_the_upstream(gateway: Gateway, upstream: FakeOpenAI) -> None:
    secret = gateway.new_key(budget="1")
    before = upstream.disconnects
    upstream.script(Reply(json=embeddings_reply({"input": "x"}).json, delay_s=2.0))
    body = {"model": "embed", "input": "some words to embed"}
    give_up(gateway, upstream, "/v1/embeddings", body, secret, "embed-1")
    assert upstream.wait_for_disconnect(before + 1, timeout_s=1.0)
    line = access_line(gateway, "embed-1")
    assert line["status"] == 499
    assert Decimal(line["cost_usd"]) > 0  # the input, which the upstream bills once it read it


def test_a_leader_giving_up_does_not_cancel_the_shared_call_of_the_others(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    """Single-flight: two identical cacheable requests share one upstream call; the one that
    started it leaving must not fail the other, nor close the upstream connection."""
    before = upstream.disconnects
    calls = len(upstream.requests)
    upstream.script(Reply(json=completion_json("shared answer"), delay_s=1.5))
    body = {"model": "fast", "messages": [{"role": "user", "content": "shared"}],
            "temperature": 0, "max_tokens": 50}  # fmt: skip
    result: dict[str, Any] = {}

    def follower() -> None:
        poll_until(lambda: len(upstream.requests) > calls, what="the leader's call upstream")
        result["answer"] = request_json(
            f"{gateway.url}/v1/chat/completions", body=json.dumps(body).encode(), key=MASTER
        )

    def joined() -> bool:  # the follower in flight too (it joins the flight as it arrives)
        return gateway.metric("chatgate_in_flight_requests") == 2

    thread = threading.Thread(target=follower)
    thread.start()
    until = (joined, "the follower joining the leader's flight")
    give_up(gateway, upstream, "/v1/chat/completions", body, MASTER, "leader-1", until)
    thread.join(10)
    status, answer = result["answer"]
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == "shared answer"
    assert len(upstream.requests) == calls + 1  # one upstream call for both
    assert upstream.disconnects == before
    assert access_line(gateway, "leader-1")["status"] == 499


def test_a_stream_client_giving_up_before_the_first_chunk_cancels_the_upstream(
    gateway: Gateway, upstream: FakeOpenAI
) -> None:
    before = upstream.disconnects
    upstream.script(Reply(chunks=[], delay_s=2.0))
    body = {"model": "fast", "messages": ASK, "stream": True}
    give_up(gateway, upstream, "/v1/chat/completions", body, MASTER, "stream-1")
    assert upstream.wait_for_disconnect(before + 1, timeout_s=1.0)
    assert access_line(gateway, "stream-1")["status"] == 499


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {"model": "fast", "max_tokens": 100, "messages": ASK}),
        ("/v1/responses", {"model": "fast", "input": "tell me a long story"}),
    ],
)
def test_every_whole_answer_route_notices_the_client_leaving(
    gateway: Gateway, upstream: FakeOpenAI, path: str, body: dict[str, Any]
) -> None:
    before = upstream.disconnects
    upstream.script(Reply(json=completion_json("late"), delay_s=2.0))
    trace = f"route-{path}"
    give_up(gateway, upstream, path, body, MASTER, trace)
    assert upstream.wait_for_disconnect(before + 1, timeout_s=1.0)
    assert access_line(gateway, trace)["status"] == 499
