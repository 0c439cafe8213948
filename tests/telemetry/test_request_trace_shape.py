"""Inside a gateway request a routed call is no span of its own: its attempts are the request
span's children (the cache lookup's, with a cache), the request span says which group
answered, and the time a call waited for an admission slot is a step of its own. Exported
over OTLP to a real receiver on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from chatgate.config import parse
from chatgate.server.app import create_app
from tests.asgi_client import Lifespan, call
from tests.clock import wait_until
from tests.fakes.openai_server import FakeOpenAI, Reply, completion_json, error_json
from tests.fakes.otlp_receiver import OtlpReceiver, Span

MASTER = "sk-master-0123456789abcdef"
AUTH = {"authorization": f"Bearer {MASTER}"}
CHAT = "/v1/chat/completions"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


def app_for(fake: FakeOpenAI, receiver: OtlpReceiver, router: dict[str, Any]) -> Any:
    def group(name: str, model: str) -> dict[str, Any]:
        params = {"model": model, "api_base": fake.base_url, "api_key": "sk-up-0000"}
        return {"model_name": name, "params": params}

    groups = [group("smart", "openai/gpt-4o"), group("cheap", "openai/gpt-4o-mini")]
    general = {"master_key": MASTER, "otel": {"endpoint": receiver.http_endpoint}}
    return create_app(
        parse({"model_list": groups, "router_settings": router, "general_settings": general})
    )


def chat(content: str) -> dict[str, Any]:
    return {"model": "smart", "messages": [{"role": "user", "content": content}]}


def traces(spans: list[Span]) -> dict[str, list[Span]]:
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    return by_trace


def server_of(trace: list[Span]) -> Span:
    [server] = [s for s in trace if s.kind == "SERVER"]
    return server


async def test_a_fallback_s_attempts_are_the_request_span_s_children(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    fake.script(Reply(status=500, json=error_json("boom", "server_error")))
    app = app_for(fake, receiver, {"num_retries": 0, "fallbacks": [{"smart": ["cheap"]}]})
    async with Lifespan(app):
        assert (await call(app, "POST", CHAT, chat("hi"), AUTH))[0] == 200
    spans = receiver.wait_for_spans(lambda s: any(x.name == "chatgate.spend.write" for x in s))
    assert not [s.name for s in spans if s.name.startswith("chatgate.route")]
    server = server_of(spans)
    assert server.attributes["chatgate.served_group"] == "cheap"
    assert server.attributes["chatgate.fallback_taken"] is True
    assert server.attributes["chatgate.model"] == "smart"
    attempts = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.start_ns)
    assert [s.name for s in attempts] == ["chat gpt-4o", "chat gpt-4o-mini"]
    assert [s.attributes["chatgate.model_group"] for s in attempts] == ["smart", "cheap"]
    assert [s.status for s in attempts] == ["ERROR", "UNSET"]
    assert {s.parent_span_id for s in attempts} == {server.span_id}


async def test_the_wait_for_an_admission_slot_is_a_step_of_the_request(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    fake.script(Reply(delay_s=1.0, json=completion_json("slow")))
    app = app_for(fake, receiver, {"max_parallel_requests": 1, "max_queue": 1})
    async with Lifespan(app):
        slow = asyncio.create_task(call(app, "POST", CHAT, chat("slow"), AUTH))
        await wait_until(lambda: len(fake.requests) == 1, what="the slow call upstream")
        # Two more while the slow call holds the one slot: one queues, the other finds the
        # queue full (which is which is the loop's affair, not the test's).
        second = asyncio.create_task(call(app, "POST", CHAT, chat("second"), AUTH))
        await asyncio.sleep(0.2)
        third = await call(app, "POST", CHAT, chat("third"), AUTH)
        assert (await slow)[0] == 200
        assert sorted([(await second)[0], third[0]]) == [200, 429]
    spans = receiver.wait_for_spans(
        lambda s: (
            len([x for x in s if x.name == "chatgate.spend.write"]) >= 2
            and len([x for x in s if x.kind == "SERVER"]) >= 3
        )
    )
    seen = []
    for trace in traces(spans).values():
        server = server_of(trace)
        waits = [s for s in trace if s.name == "chatgate.admission.wait"]
        seen.append((server.attributes["http.response.status_code"], len(waits)))
        for wait in waits:
            assert wait.parent_span_id == server.span_id
            assert (wait.kind, wait.status) == ("INTERNAL", "UNSET")
            assert wait.end_ns - wait.start_ns >= 0.5e9  # the slow call's time, or most of it
            [attempt] = [s for s in trace if s.kind == "CLIENT"]
            assert wait.end_ns <= attempt.start_ns
    # the slow call and the refused one waited for nothing; the queued one did
    assert sorted(seen) == [(200, 0), (200, 1), (429, 0)]
