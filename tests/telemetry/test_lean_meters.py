"""The lean meters through the OpenTelemetry metrics API, encoded by otlp_metrics and read
back with opentelemetry-proto, compared field by field; and what the SDK would have said."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterable
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from chatgate.providers.base import Deployment
from chatgate.telemetry import metrics, otlp, otlp_metrics
from chatgate.telemetry.meters import DEFAULT_BOUNDS, FrozenAttributes, LeanMeterProvider
from chatgate.types import ChatResponse

START, NOW = 1_700_000_000_000_000_000, 1_700_000_060_000_000_000

DEPLOYMENT = Deployment("openai", "gpt-4o-mini", "http://127.0.0.1:9/v1")
ANSWER = ChatResponse.model_validate(
    {
        "id": "c1",
        "model": "gpt-4o-mini-2024",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }
)
ANSWER.meta.cost = Decimal("0.25")


def attrs(values: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in values}


def export(provider: LeanMeterProvider) -> dict[str, Any]:
    body = otlp_metrics.encode_metrics(
        otlp.encode_resource({"service.name": "gw"}), provider.snapshot(), START, NOW
    )
    assert body is not None
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    [resource_metrics] = request.resource_metrics
    assert attrs(resource_metrics.resource.attributes) == {"service.name": "gw"}
    return {
        m.name: (scope.scope.name, m)
        for scope in resource_metrics.scope_metrics
        for m in scope.metrics
    }


def test_a_histogram_with_its_buckets_sum_count_min_and_max() -> None:
    provider = LeanMeterProvider()
    meter = provider.get_meter("chatgate", "1.0")
    bounds = [0.01, 0.02, 0.04]
    duration = meter.create_histogram(
        "op.duration", unit="s", description="how long", explicit_bucket_boundaries_advisory=bounds
    )
    for value in (0.005, 0.01, 0.015, 0.5):  # a value on a bound falls in the bucket it closes
        duration.record(value, {"model": "m1"})
    duration.record(0.03, {"model": "m2"})
    scope, metric = export(provider)["op.duration"]
    assert scope == "chatgate"
    assert (metric.unit, metric.description) == ("s", "how long")
    assert metric.histogram.aggregation_temporality == 2  # cumulative
    points = {attrs(p.attributes)["model"]: p for p in metric.histogram.data_points}
    m1 = points["m1"]
    assert list(m1.explicit_bounds) == bounds
    assert list(m1.bucket_counts) == [2, 1, 0, 1]
    assert m1.count == 4
    assert m1.sum == pytest.approx(0.53)
    assert (m1.min, m1.max) == (0.005, 0.5)
    assert (m1.start_time_unix_nano, m1.time_unix_nano) == (START, NOW)
    assert list(points["m2"].bucket_counts) == [0, 0, 1, 0]
    default = meter.create_histogram("plain")
    default.record(7)
    _, plain = export(provider)["plain"]
    assert tuple(plain.histogram.data_points[0].explicit_bounds) == DEFAULT_BOUNDS


def test_sums_int_or_double_monotonic_or_not_and_the_order_of_attributes_ignored() -> None:
    provider = LeanMeterProvider()
    meter = provider.get_meter("chatgate")
    requests = meter.create_counter("requests", unit="{request}")
    requests.add(1, {"status": "hit", "model": "m"})
    requests.add(2, {"model": "m", "status": "hit"})  # the same series
    requests.add(-1, {"status": "hit", "model": "m"})  # a counter never goes down: left out
    cost = meter.create_counter("cost", unit="USD")
    cost.add(0.25)
    cost.add(1)
    in_flight = meter.create_up_down_counter("in_flight")
    in_flight.add(3)
    in_flight.add(-5)
    got = export(provider)
    [point] = got["requests"][1].sum.data_points
    assert point.WhichOneof("value") == "as_int"
    assert point.as_int == 3
    assert attrs(point.attributes) == {"status": "hit", "model": "m"}
    assert got["requests"][1].sum.is_monotonic
    assert got["cost"][1].sum.data_points[0].as_double == 1.25
    assert got["in_flight"][1].sum.data_points[0].as_int == -2
    assert not got["in_flight"][1].sum.is_monotonic


def test_a_gauge_keeps_the_last_value_and_when_it_was_set() -> None:
    provider = LeanMeterProvider()
    gauge = provider.get_meter("chatgate").create_gauge("utilization", unit="1")
    gauge.set(0.2, {"budget": "b"})
    before = time.time_ns()
    gauge.set(0.4, {"budget": "b"})
    after = time.time_ns()
    [point] = export(provider)["utilization"][1].gauge.data_points
    assert point.as_double == 0.4
    assert before <= point.time_unix_nano <= after  # the set, not the export (NOW)


def test_observable_instruments_are_called_back_at_export_and_a_failing_one_skipped() -> None:
    provider = LeanMeterProvider()
    meter = provider.get_meter("third.party")

    def queue_depth(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(4, {"queue": "a"})]

    def broken(options: CallbackOptions) -> Iterable[Observation]:
        raise RuntimeError("the callback's own bug")

    def generator() -> Generator[Iterable[Observation], CallbackOptions, None]:
        count = 0
        while True:
            count += 1
            yield [Observation(count)]

    meter.create_observable_gauge("depth", [queue_depth, broken])
    meter.create_observable_counter("ticks", [generator()])
    meter.create_observable_up_down_counter("nothing", [broken])
    got = export(provider)
    assert got["depth"][0] == "third.party"
    assert [p.as_int for p in got["depth"][1].gauge.data_points] == [4]
    # primed to its first yield when registered, then sent the options: as the SDK does
    assert got["ticks"][1].sum.data_points[0].as_int == 2
    assert "nothing" not in got  # no points: no metric
    assert export(provider)["ticks"][1].sum.data_points[0].as_int == 3


def test_nothing_recorded_is_no_export() -> None:
    provider = LeanMeterProvider()
    provider.get_meter("chatgate").create_counter("unused")
    assert otlp_metrics.encode_metrics(b"", provider.snapshot(), START, NOW) is None


def test_measurements_from_many_threads_are_all_counted() -> None:
    provider = LeanMeterProvider()
    meter = provider.get_meter("chatgate")
    counter = meter.create_counter("n")
    histogram = meter.create_histogram("h")

    def work(worker: int) -> None:
        for i in range(2000):
            counter.add(1, {"series": i % 3})
            histogram.record(i % 10, {"series": i % 3})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = export(provider)
    assert sum(p.as_int for p in got["n"][1].sum.data_points) == 8000
    assert sum(p.count for p in got["h"][1].histogram.data_points) == 8000


def test_a_frozen_attribute_set_is_the_series_of_the_same_plain_attributes() -> None:
    provider = LeanMeterProvider()
    requests = provider.get_meter("chatgate").create_counter("requests")
    frozen = FrozenAttributes({"status": "hit", "model": "m"})
    requests.add(1, frozen)
    requests.add(2, {"model": "m", "status": "hit"})
    requests.add(4, FrozenAttributes({"model": "m", "status": "hit"}))
    requests.add(8, FrozenAttributes({"model": "m", "status": "miss"}))
    points = {
        attrs(p.attributes)["status"]: p.as_int
        for p in export(provider)["requests"][1].sum.data_points
    }
    assert points == {"hit": 7, "miss": 8}
    assert dict(frozen) == {"status": "hit", "model": "m"}  # any meter reads it as a dict


def test_attempt_metrics_keep_outcomes_apart_with_their_attributes() -> None:
    provider = LeanMeterProvider()
    metrics.set_meter_provider(provider)
    try:
        for _ in range(2):
            metrics.record_attempt(DEPLOYMENT, "chat", time.perf_counter(), ANSWER)
        metrics.record_attempt(DEPLOYMENT, "chat", time.perf_counter(), error=TimeoutError())
        got = export(provider)
    finally:
        metrics.set_meter_provider(None)
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
    }
    durations = [
        (attrs(p.attributes), p.count)
        for p in got["gen_ai.client.operation.duration"][1].histogram.data_points
    ]
    assert sorted(durations, key=lambda d: d[1]) == [
        ({**base, "error.type": "TimeoutError"}, 1),
        ({**base, "gen_ai.response.model": "gpt-4o-mini-2024"}, 2),
    ]
    tokens = {
        attrs(p.attributes)["gen_ai.token.type"]: (attrs(p.attributes), p.sum)
        for p in got["gen_ai.client.token.usage"][1].histogram.data_points
    }
    answered = {**base, "gen_ai.response.model": "gpt-4o-mini-2024"}
    assert tokens == {
        "input": ({**answered, "gen_ai.token.type": "input"}, 6),
        "output": ({**answered, "gen_ai.token.type": "output"}, 10),
    }


def _measured(provider: LeanMeterProvider) -> int:
    """Points recorded so far, without applying what waits (what the request path did)."""
    every = [i for kept in provider.instruments.values() for i in kept]
    return sum(s.count or int(s.value) for i in every for s in i.series.values())


def test_the_request_path_leaves_its_measurements_to_the_export_thread_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = LeanMeterProvider()
    metrics.set_meter_provider(provider)
    monkeypatch.setattr(metrics, "_MAX_LATER", 3)
    try:
        deployment = Deployment("openai", "gpt-4o-mini", "http://127.0.0.1:9/v1")
        metrics.record_attempt(deployment, "chat", time.perf_counter(), error=TimeoutError())
        metrics.record_cache("hit", "smart")
        assert len(provider.later) == 2
        assert _measured(provider) == 0  # nothing measured on the request path
        provider.apply_later()
        assert len(provider.later) == 0
        assert _measured(provider) == 2
        for _ in range(5):  # the export thread is held up: past the bound, measured at once
            metrics.record_cache("hit", "smart")
        assert len(provider.later) == 3
        assert _measured(provider) == 4
        got = export(provider)  # a collection applies what waits first
    finally:
        metrics.set_meter_provider(None)
    [point] = got["chatgate.cache.requests"][1].sum.data_points
    assert point.as_int == 6
    assert len(provider.later) == 0


def _attempts_through_spans(queue_size: int, exporter_url: str) -> LeanMeterProvider:
    """Two answered attempts and a failed one through the lean recorder's attempt spans (as
    client.send makes them), exported by a real export thread from a queue of
    ``queue_size`` (past it a span is dropped)."""
    from chatgate.telemetry import spans
    from chatgate.telemetry.export import Exporter, HttpTarget
    from chatgate.telemetry.recorder import LeanTracerProvider, SpanQueue
    from chatgate.telemetry.sampling import Sampler
    from chatgate.types import ChatRequest

    provider = LeanMeterProvider()
    queue = SpanQueue(queue_size, 128, lambda n: None)
    metrics.set_meter_provider(provider)
    spans.set_tracer_provider(LeanTracerProvider(Sampler(), queue))
    exporter = Exporter(queue, HttpTarget(exporter_url), {}, lambda n: None, schedule_s=30)
    try:
        request = ChatRequest.model_validate(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        )
        for error in (None, None, TimeoutError()):
            span = spans.start_chat(request, DEPLOYMENT)
            spans.end_attempt(
                span, DEPLOYMENT, time.perf_counter(), None if error else ANSWER, error
            )
        if queue_size > 3:  # nothing was dropped, and the thread waits for a slice of 128
            assert _measured(provider) == 0  # nothing measured on the request path
        assert exporter.force_flush(5000)
        exporter.shutdown(5000)
    finally:
        metrics.set_meter_provider(None)
        spans.set_tracer_provider(None)
    return provider


def _without_times(got: dict[str, Any]) -> dict[str, Any]:
    """Each metric's points by attributes: counts, sums of tokens and cost (not durations)."""
    out = {}
    for name, (_, metric) in got.items():
        kind = metric.WhichOneof("data")
        points = getattr(metric, kind).data_points
        out[name] = sorted(
            (
                sorted(attrs(p.attributes).items()),
                p.count if kind == "histogram" else (p.as_double or p.as_int),
                p.sum if kind == "histogram" and "token" in name else None,
            )
            for p in points
        )
    return out


@pytest.mark.parametrize("exported", [True, False], ids=["export-thread", "span-dropped"])
def test_attempt_spans_carry_their_metrics_to_the_export_thread_or_make_them_when_dropped(
    exported: bool,
) -> None:
    """With the lean recorder and meters, an attempt's metrics are made from its span's facts
    by the export thread (or at once when the full queue drops the span): the same points as
    ``record_attempt`` makes, and none lost."""
    from tests.fakes.otlp_receiver import OtlpReceiver

    expected_provider = LeanMeterProvider()
    metrics.set_meter_provider(expected_provider)
    try:
        for error in (None, None, TimeoutError()):
            metrics.record_attempt(
                DEPLOYMENT, "chat", time.perf_counter(), None if error else ANSWER, error
            )
    finally:
        metrics.set_meter_provider(None)
    with OtlpReceiver() as receiver:
        url = receiver.http_endpoint + "/v1/traces"
        got = _attempts_through_spans(1000 if exported else 1, url)
        assert len(receiver.spans) == (3 if exported else 1)  # flushed before it returned
    expected = _without_times(export(expected_provider))
    assert expected["chatgate.cost"]  # the comparison covers cost, tokens and durations
    assert _without_times(export(got)) == expected
