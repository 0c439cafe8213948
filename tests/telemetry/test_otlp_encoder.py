"""The hand-written OTLP encoder, read back with opentelemetry-proto (what a collector runs)
and compared field by field with the spans it was given."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanPb
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusPb
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)

from chatgate.telemetry import otlp
from chatgate.telemetry.recorder import LeanSpan, LeanTracer, LeanTracerProvider, SpanQueue
from chatgate.telemetry.sampling import Sampler

REMOTE = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "v1")]),
)


def record(build: Any) -> list[LeanSpan]:
    queue = SpanQueue(1000, 1000, lambda n: None)
    build(LeanTracerProvider(Sampler(), queue))
    return queue.take(1000)


def decode(spans: list[LeanSpan], resource: dict[str, Any] | None = None) -> Any:
    body = otlp.encode_request(otlp.encode_resource(resource or {"service.name": "gw"}), spans)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attrs(pb: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in pb}


ATTRIBUTES: dict[str, Any] = {
    "text": "héllo \U0001f600",
    "empty": "",
    "yes": True,
    "no": False,
    "one": 1,  # beside True: a cache keyed by the pair would confuse them
    "zero": 0,
    "negative": -42,
    "big": 2**63 - 1,
    "smallest": -(2**63),
    "ratio": 0.25,
    "inf": math.inf,
    "strings": ["a", "b"],
    "ints": (1, 2, 300),
    "bools": [True, False],
    "floats": [1.5],
    "raw": b"\x00\xff",
    "long": "x" * 20000,  # a length that takes three varint bytes
}


def test_every_field_of_a_span_reads_back_as_written() -> None:
    def build(provider: LeanTracerProvider) -> None:
        tracer = provider.get_tracer("chatgate", "1.2.3")
        parent = trace.set_span_in_context(NonRecordingSpan(REMOTE))
        span = tracer.start_span(
            "chat gpt-4o",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=ATTRIBUTES,
            start_time=1_700_000_000_000_000_001,
            links=[Link(REMOTE, {"why": "batch"})],
        )
        span.add_event("first token", {"index": 3}, timestamp=1_700_000_000_000_000_500)
        span.set_status(StatusCode.ERROR, "InternalServerError")
        span.end(1_700_000_000_123_456_789)

    [span] = record(build)
    request = decode([span], {"service.name": "gw", "deployment.environment": "test"})
    [resource_spans] = request.resource_spans
    assert attrs(resource_spans.resource.attributes) == {
        "service.name": "gw",
        "deployment.environment": "test",
    }
    [scope_spans] = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("chatgate", "1.2.3")
    [pb] = scope_spans.spans
    assert pb.trace_id == REMOTE.trace_id.to_bytes(16, "big")
    assert pb.span_id == span.context.span_id.to_bytes(8, "big")
    assert pb.parent_span_id == REMOTE.span_id.to_bytes(8, "big")
    assert pb.trace_state == "vendor=v1"
    assert pb.name == "chat gpt-4o"
    assert pb.kind == SpanPb.SPAN_KIND_CLIENT
    assert pb.start_time_unix_nano == 1_700_000_000_000_000_001
    assert pb.end_time_unix_nano == 1_700_000_000_123_456_789
    expected = {**ATTRIBUTES, "ints": [1, 2, 300], "floats": [1.5]}
    assert attrs(pb.attributes) == expected
    assert pb.status.code == StatusPb.STATUS_CODE_ERROR
    assert pb.status.message == "InternalServerError"
    assert pb.flags == 0x01 | 0x100 | 0x200  # sampled; the parent's remoteness is known, and true
    [event] = pb.events
    assert (event.name, event.time_unix_nano) == ("first token", 1_700_000_000_000_000_500)
    assert attrs(event.attributes) == {"index": 3}
    [link] = pb.links
    assert link.trace_id == REMOTE.trace_id.to_bytes(16, "big")
    assert link.span_id == REMOTE.span_id.to_bytes(8, "big")
    assert link.trace_state == "vendor=v1"
    assert attrs(link.attributes) == {"why": "batch"}
    assert link.flags == 0x01 | 0x100 | 0x200


def test_a_root_span_and_each_kind_and_scope() -> None:
    kinds = {
        SpanKind.INTERNAL: SpanPb.SPAN_KIND_INTERNAL,
        SpanKind.SERVER: SpanPb.SPAN_KIND_SERVER,
        SpanKind.CLIENT: SpanPb.SPAN_KIND_CLIENT,
        SpanKind.PRODUCER: SpanPb.SPAN_KIND_PRODUCER,
        SpanKind.CONSUMER: SpanPb.SPAN_KIND_CONSUMER,
    }

    def build(provider: LeanTracerProvider) -> None:
        for kind in kinds:
            provider.get_tracer("chatgate").start_span(kind.name, kind=kind).end()
        with provider.get_tracer("third.party", "0.1").start_as_current_span("outer"):
            provider.get_tracer("chatgate").start_span("inner").end()

    request = decode(record(build))
    scopes = {s.scope.name: s for s in request.resource_spans[0].scope_spans}
    assert set(scopes) == {"chatgate", "third.party"}
    assert scopes["chatgate"].scope.version == ""
    by_name = {s.name: s for scope in scopes.values() for s in scope.spans}
    for kind, pb_kind in kinds.items():
        span = by_name[kind.name]
        assert span.kind == pb_kind
        assert span.parent_span_id == b""
        assert span.flags == 0x01 | 0x100
        assert not span.HasField("status")
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
    assert by_name["inner"].parent_span_id == by_name["outer"].span_id
    assert by_name["inner"].trace_id == by_name["outer"].trace_id


def test_values_otlp_cannot_carry_are_left_out_and_the_rest_kept() -> None:
    class Opaque:
        pass

    def build(provider: LeanTracerProvider) -> None:
        span = provider.get_tracer("chatgate").start_span("s")
        span.set_attributes({"kept": "yes", "none": None, "object": Opaque()})  # type: ignore[dict-item]  # what a careless instrumentation passes
        span.set_attribute("mixed", [1, None, "two"])  # type: ignore[list-item]  # likewise
        span.end()

    [pb] = decode(record(build)).resource_spans[0].scope_spans[0].spans
    assert attrs(pb.attributes) == {"kept": "yes", "mixed": [1, "two"]}


def test_an_exception_is_the_sdks_exception_event() -> None:
    def build(provider: LeanTracerProvider) -> None:
        tracer = provider.get_tracer("chatgate")
        with pytest.raises(ValueError, match="bad"), tracer.start_as_current_span("work"):
            raise ValueError("bad")

    [pb] = decode(record(build)).resource_spans[0].scope_spans[0].spans
    assert pb.status.code == StatusPb.STATUS_CODE_ERROR
    [event] = pb.events
    got = attrs(event.attributes)
    assert event.name == "exception"
    assert got["exception.type"] == "ValueError"
    assert got["exception.message"] == "bad"
    assert "raise ValueError" in got["exception.stacktrace"]


def test_many_spans_in_one_request_keep_their_order_and_ids() -> None:
    def build(provider: LeanTracerProvider) -> None:
        tracer = provider.get_tracer("chatgate")
        for i in range(600):
            tracer.start_span(f"s{i}", attributes={"i": i, "kind": "same"}).end()

    recorded = record(build)
    spans = decode(recorded).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == [f"s{i}" for i in range(600)]
    assert [s.span_id for s in spans] == [s.context.span_id.to_bytes(8, "big") for s in recorded]
    assert all(attrs(s.attributes) == {"i": i, "kind": "same"} for i, s in enumerate(spans))


@pytest.mark.parametrize("writer", ["attribute", "attribute_once"])
def test_the_records_attribute_writers_read_back_as_written_twice(writer: str) -> None:
    """What span records write pair by pair (telemetry/records.py), from the caches the
    second time: each value under each key, and one key given values that compare equal
    (1, True, 1.0) kept apart."""
    write = getattr(otlp, writer)
    for _ in range(2):
        fields = b"".join(write(key, v) for key, v in ATTRIBUTES.items() if key != "raw")
        assert attrs(SpanPb.FromString(fields).attributes) == {
            key: list(v) if isinstance(v, tuple) else v
            for key, v in ATTRIBUTES.items()
            if key != "raw"
        }
        for same in (1, True, 1.0, "1", False, 0, 0.0):
            [kv] = SpanPb.FromString(write("same", same)).attributes
            assert type(value(kv.value)) is type(same)
            assert value(kv.value) == same


def test_the_double_and_string_writers_match_the_general_encoder() -> None:
    for key, number in [("chatgate.cost_usd", 0.0000036), ("k", -math.inf), ("k", 1e300)]:
        assert otlp.double_attribute(key, number) == otlp.attribute_once(key, number)
        [kv] = SpanPb.FromString(otlp.double_attribute(key, number)).attributes
        assert (kv.key, kv.value.double_value) == (key, number)
    for text in ["", "chatcmpl-abc", "héllo \U0001f600", "x" * 20000]:
        [kv] = SpanPb.FromString(otlp.string_attribute("gen_ai.response.id", text)).attributes
        assert kv.value.string_value == text


def test_a_lone_surrogate_is_replaced_not_written_as_utf8_a_collector_refuses() -> None:
    """A client's JSON may carry "\\ud800" (a stop sequence, a user id): written as is, it
    is not UTF-8, and the collector refuses the whole batch of 512 spans it is in."""
    for write in (otlp.string_attribute, otlp.attribute, otlp.attribute_once):
        [kv] = SpanPb.FromString(write("stop", "a\ud800b")).attributes
        assert kv.value.string_value == "a?b"

    def build(provider: LeanTracerProvider) -> None:
        provider.get_tracer("chatgate").start_span("s\udc80", attributes={"k": ["\ud800"]}).end()

    [pb] = decode(record(build)).resource_spans[0].scope_spans[0].spans
    assert (pb.name, attrs(pb.attributes)) == ("s?", {"k": ["?"]})


def test_one_name_on_spans_of_two_kinds_keeps_each_kind() -> None:
    def build(provider: LeanTracerProvider) -> None:
        tracer = provider.get_tracer("chatgate")
        for kind in (SpanKind.CLIENT, SpanKind.SERVER, SpanKind.CLIENT):
            tracer.start_span("same name", kind=kind).end()

    spans = decode(record(build)).resource_spans[0].scope_spans[0].spans
    client, server = SpanPb.SPAN_KIND_CLIENT, SpanPb.SPAN_KIND_SERVER
    assert [s.kind for s in spans] == [client, server, client]


def test_a_step_done_after_its_span_ended_is_its_child_and_says_what_failed() -> None:
    """A LateStep (the spend-log write): no span object was made for it; the exporter makes
    its span, a child of the ended one, with an id of its own."""
    parents: list[SpanContext] = []

    def build(provider: LeanTracerProvider) -> None:
        tracer = provider.get_tracer("chatgate")
        span = tracer.start_span(
            "POST /v1/chat/completions", context=trace.set_span_in_context(NonRecordingSpan(REMOTE))
        )
        span.end()
        parents.append(span.get_span_context())
        assert isinstance(tracer, LeanTracer)
        tracer.put_step(parents[0], ("chatgate.spend.write", 10, 20, None))
        tracer.put_step(parents[0], ("chatgate.spend.write", 30, 40, "OSError"))

    server, ok, failed = decode(record(build)).resource_spans[0].scope_spans[0].spans
    for step in (ok, failed):
        assert step.name == "chatgate.spend.write"
        assert step.kind == SpanPb.SPAN_KIND_INTERNAL
        assert (step.trace_id, step.parent_span_id) == (server.trace_id, server.span_id)
        assert step.trace_state == "vendor=v1"
    assert len({server.span_id, ok.span_id, failed.span_id}) == 3
    assert (ok.start_time_unix_nano, ok.end_time_unix_nano) == (10, 20)
    assert (attrs(ok.attributes), ok.HasField("status")) == ({}, False)
    assert attrs(failed.attributes) == {"error.type": "OSError"}
    assert (failed.status.code, failed.status.message) == (StatusPb.STATUS_CODE_ERROR, "OSError")


def test_a_server_spans_facts_write_the_sdk_paths_attributes_from_the_cache_too() -> None:
    """``ServerFacts.encode`` (the repeated values cached as one piece) against
    ``context_attributes`` (the SDK path's), each twice: built, then from the cache."""
    from decimal import Decimal

    from chatgate.telemetry.records import ServerFacts, Static, context_attributes

    static = {"http.request.method": "POST", "http.route": "/v1/chat/completions"}
    rows: list[tuple[int, tuple[Any, ...]]] = [
        (
            200,
            ("r1", "k1", "u", "t", "smart", "openai/gpt-4o", "smart", "miss", None, ("a",), "0.5",
             1, False),
        ),
        (
            200,
            ("r2", "k1", "u", "t", "smart", "openai/gpt-4o", "cheap", "miss", None, (), None, 1,
             True),
        ),
        (503, ("r3", None, None, None, "smart", None, None, None, "APIError", (), None, 3, None)),
        (
            200,
            ("r4", "k1", "u", "t", "smart", "openai/gpt-4o", "smart", "hit", None, (), None, 0,
             False),
        ),
        (0, ("r5", None, ["not", "hashable"], None, None, None, None, None, None, (), None, 0,
             None)),
    ]  # fmt: skip
    for _ in range(2):
        for status, values in rows:
            cost = None if values[10] is None else Decimal(values[10])
            values = (*values[:10], cost, *values[11:])
            facts = ServerFacts(Static(static))
            facts.status, facts.request = status, values
            want = {**static, **context_attributes(values)}
            if status:
                want["http.response.status_code"] = status
            assert attrs(SpanPb.FromString(facts.encode()).attributes) == want


def test_an_attempts_parameters_are_written_as_the_sdk_path_writes_them_cached_or_not() -> None:
    """``AttemptFacts`` keeps the parameters as one tuple and writes them from a cache keyed
    by value and type: each request's attributes are ``semconv.request_parameters``' (the
    SDK path's), an int never written for a float that equals it, a list of stop sequences
    (no cache key) written all the same."""
    from chatgate.providers.base import Deployment
    from chatgate.telemetry import semconv
    from chatgate.telemetry.records import AttemptFacts
    from chatgate.types import ChatRequest

    deployment = Deployment("openai", "gpt-4o-mini", "https://api.openai.com/v1")
    base = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    given: list[dict[str, Any]] = [
        {},
        {"temperature": 1.0, "max_tokens": 5},
        {"temperature": 1.0, "max_tokens": 5},
        {"stop": ["a", "b"], "n": 2, "stream": True, "seed": 7},
        {"stop": "END", "max_completion_tokens": 9, "max_tokens": 5, "top_p": 0.5},
    ]
    requests = [ChatRequest.model_validate({**base, **extra}) for extra in given]
    assigned = ChatRequest.model_validate({**base, "temperature": 1.0, "max_tokens": 5})
    assigned.temperature = 1  # type: ignore[assignment]  # an int, set past validation
    requests.append(assigned)
    for _ in range(2):
        for request in requests:
            facts = AttemptFacts(request, deployment, None)
            facts.ended(None)
            written = attrs(SpanPb.FromString(facts.encode()).attributes)
            want = semconv.chat_request_attributes(request, deployment)
            assert written == {k: list(v) if isinstance(v, tuple) else v for k, v in want.items()}
            temperature = written.get("gen_ai.request.temperature")
            assert type(temperature) is type(request.temperature) or temperature is None
