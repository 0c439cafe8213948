"""The gateway's sampler: parent-based ratio, the standard variables, the config's rate first;
and what a span that is not sampled still carries downstream."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chatgate.config import OtelSettings
from chatgate.telemetry.recorder import LeanSpan, LeanTracerProvider, SpanQueue
from chatgate.telemetry.sampling import Sampler, from_settings

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def parent(sampled: bool) -> SpanContext:
    return SpanContext(TRACE, 0x00F067AA0BA902B7, True, TraceFlags(1 if sampled else 0))


def test_a_new_trace_is_kept_by_the_low_64_bits_of_its_id_as_the_sdk_keeps_it() -> None:
    import random

    rng = random.Random(7)
    for rate in (0.0, 0.1, 0.5, 0.999, 1.0):
        ours = Sampler(rate)
        sdk = TraceIdRatioBased(rate)
        for _ in range(2000):
            trace_id = rng.getrandbits(128) or 1
            want = sdk.should_sample(None, trace_id, "s").decision.is_sampled()
            assert ours.sampled(trace_id, None, ours.bound) is want, (rate, hex(trace_id))
    kept = sum(
        Sampler(0.25).sampled(rng.getrandbits(128), None, Sampler(0.25).bound) for _ in range(20000)
    )
    assert 4500 < kept < 5500


@pytest.mark.parametrize("sampled", [True, False])
def test_a_parent_decides_whatever_the_rate(sampled: bool) -> None:
    for rate in (0.0, 1.0):
        chosen = Sampler(rate)
        assert chosen.sampled(TRACE, parent(sampled), chosen.bound) is sampled
    # the plain ratio (OTEL_TRACES_SAMPLER=traceidratio) ignores the parent
    assert Sampler(0.0, parent_based=False).sampled(TRACE, parent(True), 0) is False


def test_the_configured_rate_wins_over_the_variables() -> None:
    env = {"OTEL_TRACES_SAMPLER": "always_off"}
    assert from_settings(0.5, env) == Sampler(0.5)
    settings = OtelSettings.model_validate({"sample_rate": 0.5})
    assert "sample_rate" in settings.model_fields_set
    assert "sample_rate" not in OtelSettings().model_fields_set  # the default is not "written"


@pytest.mark.parametrize(
    ("name", "arg", "expected"),
    [
        (None, None, Sampler(1.0)),
        ("always_on", None, Sampler(1.0, parent_based=False)),
        ("always_off", None, Sampler(0.0, parent_based=False)),
        ("traceidratio", "0.1", Sampler(0.1, parent_based=False)),
        ("parentbased_always_on", None, Sampler(1.0)),
        ("parentbased_always_off", None, Sampler(0.0)),
        ("parentbased_traceidratio", "0.25", Sampler(0.25)),
        ("PARENTBASED_TRACEIDRATIO", " 0.25 ", Sampler(0.25)),
        ("parentbased_traceidratio", None, Sampler(1.0)),
    ],
)
def test_the_standard_variables(name: str | None, arg: str | None, expected: Sampler) -> None:
    env = {}
    if name is not None:
        env["OTEL_TRACES_SAMPLER"] = name
    if arg is not None:
        env["OTEL_TRACES_SAMPLER_ARG"] = arg
    assert from_settings(None, env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_SAMPLER": "jaeger_remote"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "nan"},
    ],
)
def test_a_variable_that_makes_no_sense_is_named_and_everything_sampled(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "chatgate.telemetry"):
        chosen = from_settings(None, env)
    assert chosen.rate == 1.0
    assert "OTEL_TRACES_SAMPLER" in caplog.text


def test_an_unsampled_span_passes_the_trace_on_with_the_flag_off() -> None:
    queue = SpanQueue(10, 10, lambda n: None)
    tracer = LeanTracerProvider(Sampler(0.0), queue).get_tracer("chatgate")
    span = tracer.start_span("POST /v1/chat/completions")
    assert not span.is_recording()
    assert span.get_span_context().is_valid
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    version, trace_id, _, flags = headers["traceparent"].split("-")
    assert (version, flags) == ("00", "00")
    assert int(trace_id, 16) == span.get_span_context().trace_id
    child = tracer.start_span("child", context=trace.set_span_in_context(span))
    assert not child.is_recording()
    assert child.get_span_context().trace_id == span.get_span_context().trace_id
    span.end()
    assert len(queue) == 0


def test_a_sampled_caller_is_followed_at_rate_zero_and_its_trace_continued() -> None:
    queue = SpanQueue(10, 10, lambda n: None)
    tracer = LeanTracerProvider(Sampler(0.0), queue).get_tracer("chatgate")
    context = propagate.extract({"traceparent": f"00-{TRACE:032x}-00f067aa0ba902b7-01"})
    span = tracer.start_span("server", context=context)
    assert isinstance(span, LeanSpan)
    assert span.context.trace_id == TRACE
    assert span.context == SpanContext(
        TRACE, span.context.span_id, False, TraceFlags(TraceFlags.SAMPLED), span.parent.trace_state
    )  # the fields as the constructor sets them, is_valid among them
    assert span.context.is_valid
    assert span.parent is not None
    assert span.parent.is_remote
    not_sampled = propagate.extract({"traceparent": f"00-{TRACE:032x}-00f067aa0ba902b7-00"})
    other = LeanTracerProvider(Sampler(1.0), queue).get_tracer("chatgate")
    assert not other.start_span("server", context=not_sampled).is_recording()
    assert isinstance(NonRecordingSpan(parent(True)), trace.Span)


def test_the_sdk_sampler_for_grpc_is_the_same_choice() -> None:
    from chatgate.telemetry.sdk_export import sdk_sampler as _sdk_sampler

    assert isinstance(_sdk_sampler(Sampler(0.5)), ParentBased)
    assert isinstance(_sdk_sampler(Sampler(0.5, parent_based=False)), TraceIdRatioBased)


def test_inside_an_unsampled_trace_children_are_the_parents_own_span_not_new_ones() -> None:
    queue = SpanQueue(10, 10, lambda n: None)
    tracer = LeanTracerProvider(Sampler(0.0), queue).get_tracer("chatgate")
    caller = propagate.extract({"traceparent": f"00-{TRACE:032x}-00f067aa0ba902b7-00"})
    server = tracer.start_span("server", context=caller)
    # The caller's span is remote: the server span is ours, with an id of its own.
    assert server.get_span_context().span_id not in (0, 0x00F067AA0BA902B7)
    assert server.get_span_context().trace_id == TRACE
    with trace.use_span(server):
        route = tracer.start_span("route")
        with trace.use_span(route):
            attempt = tracer.start_span("attempt")
    assert route is server
    assert attempt is server
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(attempt))
    assert headers["traceparent"] == f"00-{TRACE:032x}-{server.get_span_context().span_id:016x}-00"
    attempt.end()
    assert len(queue) == 0
    # Ratio alone (not parent-based): each span is its own choice, and gets its own id.
    ratio = LeanTracerProvider(Sampler(0.0, parent_based=False), queue).get_tracer("chatgate")
    root = ratio.start_span("root")
    child = ratio.start_span("child", context=trace.set_span_in_context(root))
    assert child is not root
    assert child.get_span_context().span_id != root.get_span_context().span_id
