"""The gateway's traces and metrics, exported over OTLP to a real receiver on loopback
(tests/fakes/otlp_receiver.py decodes them with opentelemetry-proto): one trace per request,
its parent/child structure, the GenAI attributes, trace continuation both ways, content
capture, a collector that is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from chatgate.config import parse
from chatgate.server.app import create_app
from tests.asgi_client import Lifespan, call
from tests.fakes.gateway import free_port
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.otlp_receiver import OtlpReceiver, Span

MASTER = "sk-master-0123456789abcdef"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CHAT = "/v1/chat/completions"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


def config(fake: FakeOpenAI, otel: dict[str, Any], **general: Any) -> Any:
    params = {"model": "openai/gpt-4o-mini", "api_base": fake.base_url, "api_key": "sk-up-0000"}
    return parse(
        {
            "model_list": [{"model_name": "smart", "params": params}],
            "general_settings": {"master_key": MASTER, "otel": otel, **general},
        }
    )


def chat(content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "smart", "messages": [{"role": "user", "content": content}], **extra}


AUTH = {"authorization": f"Bearer {MASTER}"}


def by_name(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def ancestors(span: Span, spans: list[Span]) -> list[str]:
    index = {s.span_id: s for s in spans}
    names = []
    while span.parent_span_id in index:
        span = index[span.parent_span_id]
        names.append(span.name)
    return names


async def test_one_trace_per_request_continuing_the_callers_and_reaching_the_upstream(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    general = {
        "budgets": [{"scope": "global", "limit": "100"}],
        "cache": {"backend": "memory", "mode": "always"},
    }
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}, **general))
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    async with Lifespan(app):
        status, _, made = await call(
            app, "POST", "/admin/keys", {"team": "ml", "tags": ["team-ml"]}, AUTH
        )
        assert status == 200
        key = orjson.loads(made)
        headers = {
            "authorization": f"Bearer {key['key']}",
            "traceparent": traceparent,
            "x-chatgate-tags": "feature-a",
        }
        status, _, _ = await call(app, "POST", CHAT, chat(), headers)
        assert status == 200
    spans = receiver.wait_for_spans(lambda s: any(x.name == "chatgate.spend.write" for x in s))
    spans = [s for s in spans if s.trace_id == CALLER_TRACE]  # not the key creation's

    server = by_name(spans, f"POST {CHAT}")
    assert server.kind == "SERVER"
    assert server.parent_span_id == CALLER_SPAN
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.path"] == CHAT
    assert server.attributes["http.route"] == CHAT
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["chatgate.model"] == "smart"
    assert server.attributes["chatgate.cache.status"] == "miss"
    assert server.attributes["chatgate.cost_usd"] > 0
    assert server.attributes["chatgate.fallback_taken"] is False
    assert server.attributes["chatgate.key.id"] == key["key_id"]
    assert server.attributes["chatgate.team.id"] == "ml"
    assert server.attributes["chatgate.tags"] == ["team-ml", "feature-a"]  # the spend row's
    for span in spans:  # the secret itself never
        assert key["key"] not in orjson.dumps(span.attributes).decode()
    assert server.resource["service.name"] == "chatgate"

    for step in ("chatgate.auth", "chatgate.budget.hold", "chatgate.cache", "chatgate.spend.write"):
        assert by_name(spans, step).parent_span_id == server.span_id, step
    for step in ("chatgate.auth", "chatgate.budget.hold", "chatgate.cache"):  # inside the request
        span = by_name(spans, step)
        assert server.start_ns <= span.start_ns <= span.end_ns <= server.end_ns, step
        assert span.kind == "INTERNAL", step
        assert span.status == "UNSET", step
    assert by_name(spans, "chatgate.auth").end_ns <= by_name(spans, "chatgate.budget.hold").start_ns
    spend = by_name(spans, "chatgate.spend.write")  # done after the answer, off its path
    assert (spend.kind, spend.status) == ("INTERNAL", "UNSET")
    assert server.start_ns <= spend.start_ns <= spend.end_ns
    assert len({s.span_id for s in spans}) == len(spans)  # every id its own
    assert all(s.trace_id == CALLER_TRACE and int(s.span_id, 16) for s in spans)
    # The routed call is no span of its own in a request: its attempts are the cache
    # lookup's children (the server span's without a cache), and the server span says which
    # group answered.
    assert not [s for s in spans if s.name.startswith("chatgate.route")]
    assert server.attributes["chatgate.served_group"] == "smart"
    attempt = by_name(spans, "chat gpt-4o-mini")
    assert attempt.kind == "CLIENT"
    assert attempt.parent_span_id == by_name(spans, "chatgate.cache").span_id
    assert f"POST {CHAT}" in ancestors(attempt, spans)
    a = attempt.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] > 0
    assert a["chatgate.deployment.id"]
    assert a["chatgate.attempt"] == 1
    assert "gen_ai.input.messages" not in a  # content capture is off by default

    # The upstream got our attempt's context, in the caller's trace.
    upstream = fake.last.headers["traceparent"].split("-")
    assert upstream[1:3] == [CALLER_TRACE, attempt.span_id]


async def test_a_request_without_traceparent_starts_a_trace_of_its_own(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}))
    async with Lifespan(app):
        assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200
        assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200
    spans = receiver.wait_for_spans(lambda s: len([x for x in s if x.kind == "SERVER"]) >= 2)
    servers = [s for s in spans if s.kind == "SERVER"]
    assert [s.parent_span_id for s in servers] == ["", ""]
    assert len({s.trace_id for s in servers}) == 2


async def test_probes_and_scrapes_are_not_traced(fake: FakeOpenAI, receiver: OtlpReceiver) -> None:
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}))
    async with Lifespan(app):
        assert (await call(app, "GET", "/health/liveness"))[0] == 200
        assert (await call(app, "GET", "/metrics"))[0] == 200
        assert (await call(app, "GET", "/v1/models", None, AUTH))[0] == 200
    spans = receiver.wait_for_spans(lambda s: any(x.kind == "SERVER" for x in s))
    assert [s.name for s in spans if s.kind == "SERVER"] == ["GET /v1/models"]


async def test_an_upstream_error_marks_the_attempt_and_a_5xx_the_server_span(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    from tests.fakes.openai_server import Reply, error_json

    fake.script(*[Reply(status=500, json=error_json("boom", "server_error"))] * 5)
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}))
    async with Lifespan(app):
        status, _, _ = await call(app, "POST", CHAT, chat(), AUTH)
    assert status >= 500
    spans = receiver.wait_for_spans(lambda s: any(x.kind == "SERVER" for x in s))
    attempts = [s for s in spans if s.name == "chat gpt-4o-mini"]
    assert attempts
    assert all(s.attributes["error.type"] == "InternalServerError" for s in attempts)
    assert all(s.status == "ERROR" for s in attempts)
    server = next(s for s in spans if s.kind == "SERVER")
    assert server.status == "ERROR"
    assert server.attributes["error.type"] == str(status)


async def test_content_capture_scrubs_secrets(fake: FakeOpenAI, receiver: OtlpReceiver) -> None:
    key = "sk-proj-" + "Zz9Yy8Xx" * 4
    otel = {"endpoint": receiver.http_endpoint, "capture_content": True}
    app = create_app(config(fake, otel))
    async with Lifespan(app):
        assert (await call(app, "POST", CHAT, chat(f"use {key} please"), AUTH))[0] == 200
    spans = receiver.wait_for_spans(lambda s: any(x.name.startswith("chat ") for x in s))
    attempt = next(s for s in spans if s.name.startswith("chat "))
    inputs = orjson.loads(attempt.attributes["gen_ai.input.messages"])
    assert inputs == [{"role": "user", "parts": [{"type": "text", "content": "use *** please"}]}]
    outputs = orjson.loads(attempt.attributes["gen_ai.output.messages"])
    assert outputs[0]["role"] == "assistant"
    for span in spans:
        assert key not in orjson.dumps(span.attributes).decode()


async def test_a_stream_is_traced_to_its_end(fake: FakeOpenAI, receiver: OtlpReceiver) -> None:
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}))
    async with Lifespan(app):
        status, _, body = await call(app, "POST", CHAT, chat(stream=True), AUTH)
        assert status == 200
        assert b"[DONE]" in body
    spans = receiver.wait_for_spans(lambda s: any(x.kind == "SERVER" for x in s))
    attempt = next(s for s in spans if s.name.startswith("chat "))
    server = next(s for s in spans if s.kind == "SERVER")
    assert attempt.attributes["gen_ai.request.stream"] is True
    assert attempt.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert attempt.end_ns <= server.end_ns  # the server span covers the whole stream
    assert server.attributes["http.response.status_code"] == 200


async def test_a_streams_body_goes_straight_out_once_its_head_has_gone() -> None:
    """The server span's status is noted by a watch on ``send``; a stream's body messages
    (hundreds in a long answer) then bypass it."""
    from chatgate.server.asgi import StatusWatch
    from chatgate.server.context import RequestContext
    from chatgate.server.request import GatewayRequest

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    watch = StatusWatch(send)
    ctx = RequestContext(route=CHAT)
    request = GatewayRequest({}, receive, watch, None, ctx)  # type: ignore[arg-type]  # no state is read
    assert StatusWatch.plain(watch) is watch  # nothing sent yet: the status is still to see
    await request.start_stream()
    assert watch.status == 200
    assert request.send is send
    assert sent[0]["type"] == "http.response.start"


async def test_grpc_export(fake: FakeOpenAI, receiver: OtlpReceiver) -> None:
    otel = {"endpoint": receiver.grpc_endpoint, "protocol": "grpc", "headers": {"x-team": "ops"}}
    app = create_app(config(fake, otel))
    async with Lifespan(app):
        assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200
    spans = receiver.wait_for_spans(
        lambda s: any(x.kind == "SERVER" for x in s) and any(x.name.endswith("write") for x in s)
    )
    assert any(h.get("x-team") == "ops" for h in receiver.headers)
    # The SDK's trace has the lean recorder's shape: no route span, the spend write a child
    # of the ended request span, in its own time.
    server = by_name(spans, f"POST {CHAT}")
    assert server.attributes["chatgate.served_group"] == "smart"
    assert not [s for s in spans if s.name.startswith("chatgate.route")]
    assert by_name(spans, "chat gpt-4o-mini").parent_span_id == server.span_id
    spend = by_name(spans, "chatgate.spend.write")
    assert spend.parent_span_id == server.span_id
    assert server.start_ns <= spend.start_ns <= spend.end_ns
    assert spend.status == "UNSET"


async def test_genai_metrics_with_the_conventions_buckets(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    general = {
        "budgets": [{"scope": "global", "limit": "10"}],
        "cache": {"backend": "memory", "mode": "always"},
    }
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}, **general))
    async with Lifespan(app):  # the metrics are exported at shutdown
        assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200
        assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200  # a cache hit
    tokens = receiver.metric("gen_ai.client.token.usage")
    duration = receiver.metric("gen_ai.client.operation.duration")
    cost = receiver.metric("chatgate.cost")
    assert tokens
    assert duration
    assert cost
    kinds = {p["attributes"]["gen_ai.token.type"] for m in tokens for p in m.points}
    assert kinds == {"input", "output"}
    assert tokens[0].points[0]["bounds"][:4] == [1, 4, 16, 64]
    assert duration[0].unit == "s"
    assert duration[0].points[0]["bounds"][:3] == [0.01, 0.02, 0.04]
    assert duration[0].points[0]["attributes"]["gen_ai.provider.name"] == "openai"
    assert cost[0].unit == "USD"
    assert cost[0].points[0]["value"] > 0
    cache = receiver.metric("chatgate.cache.requests")
    statuses = {p["attributes"]["chatgate.cache.status"]: p["value"] for p in cache[0].points}
    assert statuses == {"miss": 1, "hit": 1}
    [budget] = receiver.metric("chatgate.budget.utilization")
    used = budget.points[0]["value"]
    assert 0 < used < 0.01  # a fraction of a cent of $10
    assert budget.points[0]["attributes"]["chatgate.budget.id"].startswith("global")


async def test_a_collector_that_is_down_slows_and_fails_nothing_and_drops_are_counted(
    fake: FakeOpenAI,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    otel = {"endpoint": down, "max_queue_size": 2, "export_timeout_s": 0.5}
    app = create_app(config(fake, otel))
    async with Lifespan(app):
        for _ in range(5):
            began = time.perf_counter()
            assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200
            assert time.perf_counter() - began < 1.0
        status, _, body = await call(app, "GET", "/metrics", None, AUTH)
    assert status == 200
    [line] = [
        x for x in body.decode().splitlines() if x.startswith("chatgate_otel_spans_dropped_total")
    ]
    assert float(line.split()[-1]) > 0


async def test_tracing_off_leaves_the_app_unwrapped_and_sends_no_traceparent(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    params = {"model": "openai/gpt-4o-mini", "api_base": fake.base_url, "api_key": "k"}
    app = create_app(parse({"model_list": [{"model_name": "smart", "params": params}]}))
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    async with Lifespan(app):
        assert (await call(app, "POST", CHAT, chat(), {"traceparent": traceparent}))[0] == 200
    assert type(app).__name__ == "function"
    assert "traceparent" not in fake.last.headers


async def test_the_standard_variable_turns_export_on(
    fake: FakeOpenAI, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gateway")
    params = {"model": "openai/gpt-4o-mini", "api_base": fake.base_url, "api_key": "k"}
    app = create_app(parse({"model_list": [{"model_name": "smart", "params": params}]}))
    async with Lifespan(app):
        assert (await call(app, "POST", CHAT, chat()))[0] == 200
    spans = receiver.wait_for_spans(lambda s: any(x.kind == "SERVER" for x in s))
    assert {s.resource["service.name"] for s in spans} == {"edge-gateway"}


async def test_an_unsampled_request_exports_no_span_but_its_metrics_and_passes_the_trace_on(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    otel = {"endpoint": receiver.http_endpoint, "sample_rate": 0.0}
    app = create_app(config(fake, otel, cache={"backend": "memory", "mode": "always"}))
    async with Lifespan(app):  # the metrics are exported at shutdown
        for _ in range(3):  # a miss, then two hits
            assert (await call(app, "POST", CHAT, chat(), AUTH))[0] == 200
    version, trace_id, span_id, flags = fake.last.headers["traceparent"].split("-")
    assert (version, flags) == ("00", "00")
    assert int(trace_id, 16)
    assert int(span_id, 16)
    [duration] = receiver.metric("gen_ai.client.operation.duration")
    assert [p["count"] for p in duration.points] == [1]
    [cache] = receiver.metric("chatgate.cache.requests")
    assert {p["attributes"]["chatgate.cache.status"]: p["value"] for p in cache.points} == {
        "miss": 1,
        "hit": 2,
    }
    assert receiver.spans == []


async def test_a_refused_budget_hold_is_a_failed_step_of_the_request(
    fake: FakeOpenAI, receiver: OtlpReceiver
) -> None:
    general = {"budgets": [{"scope": "global", "limit": "0.0000001"}]}
    app = create_app(config(fake, {"endpoint": receiver.http_endpoint}, **general))
    async with Lifespan(app):
        status, _, made = await call(app, "POST", "/admin/keys", {}, AUTH)
        key = orjson.loads(made)["key"]
        status, _, _ = await call(
            app, "POST", CHAT, chat(max_tokens=500), {"authorization": f"Bearer {key}"}
        )
    assert status == 402  # budget_exceeded
    spans = receiver.wait_for_spans(lambda s: any(x.name == "chatgate.budget.hold" for x in s))
    server = by_name([s for s in spans if s.name == f"POST {CHAT}"][-1:], f"POST {CHAT}")
    hold = by_name(spans, "chatgate.budget.hold")
    assert hold.parent_span_id == server.span_id
    assert hold.trace_id == server.trace_id
    assert hold.status == "ERROR"
    assert hold.attributes["error.type"] == "BudgetExceededError"
    assert by_name(spans, "chatgate.auth").status == "UNSET"
    assert not [s for s in spans if s.name.startswith("chat ")]  # nothing went upstream
