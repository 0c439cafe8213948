"""The lean recorder's queue and export thread against real sockets: a collector that is down,
one that accepts and never answers, one that refuses; the queue stays bounded, ending a span
never waits, and every span lost is counted exactly once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from chatgate.config import OtelSettings
from chatgate.telemetry import setup, spans
from chatgate.telemetry.export import Exporter, HttpTarget
from chatgate.telemetry.recorder import LeanTracerProvider, SpanQueue
from chatgate.telemetry.sampling import Sampler
from tests.fakes.gateway import free_port
from tests.fakes.otlp_receiver import OtlpReceiver


class Drops:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()  # the request path and the export thread both count

    def __call__(self, n: int) -> None:
        with self._lock:
            self.count += n


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """Accepts connections, reads what comes, never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def run(endpoint: str, max_queue: int, spans_made: int, timeout_s: float) -> tuple[int, float]:
    """Record ``spans_made`` spans through a lean provider exporting to ``endpoint``; (spans
    dropped and counted once the exporter stopped, the slowest ``end()``)."""
    drops = Drops()
    queue = SpanQueue(max_queue, min(512, max_queue), drops)
    target = HttpTarget(f"{endpoint}/v1/traces", timeout_s=timeout_s)
    exporter = Exporter(queue, target, {"service.name": "t"}, drops, schedule_s=0.05)
    tracer = LeanTracerProvider(Sampler(), queue).get_tracer("chatgate")
    slowest = 0.0
    for i in range(spans_made):
        span = tracer.start_span(f"s{i}", attributes={"i": i})
        began = time.perf_counter()
        span.end()
        slowest = max(slowest, time.perf_counter() - began)
        assert len(queue) <= max_queue
    exporter.shutdown(int(timeout_s * 1000) + 2000)
    return drops.count, slowest


def test_a_collector_that_is_down_loses_every_span_and_counts_each_once() -> None:
    dropped, slowest = run(f"http://127.0.0.1:{free_port()}", 8, 5000, 0.5)
    assert dropped == 5000
    assert slowest < 0.05


def test_a_collector_that_never_answers_holds_only_the_export_thread(
    silent_collector: str,
) -> None:
    dropped, slowest = run(silent_collector, 16, 3000, 0.3)
    assert dropped == 3000
    assert slowest < 0.05


def test_a_collector_that_refuses_each_batch_is_counted_and_still_tried() -> None:
    with OtlpReceiver() as receiver:
        target = HttpTarget(f"{receiver.http_endpoint}/v1/nothing-here", timeout_s=2)
        drops = Drops()
        queue = SpanQueue(100, 100, drops)
        exporter = Exporter(queue, target, {}, drops, schedule_s=0.05)
        tracer = LeanTracerProvider(Sampler(), queue).get_tracer("chatgate")
        try:
            for expected in (3, 5):
                while drops.count + len(queue) < expected:
                    tracer.start_span("refused").end()
                assert exporter.force_flush(5000)
                assert drops.count == expected
        finally:
            exporter.shutdown(5000)
        assert receiver.spans == []


def test_spans_reach_a_collector_in_batches_with_the_configured_headers_gzipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OtlpReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.http_endpoint}/v1/traces",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=blue%20team,authorization=Bearer%20t0k",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        }
        telemetry = setup.start(OtelSettings(metrics=False), env)
        try:
            tracer = spans.tracer()
            for i in range(1200):  # more than one batch of 512
                tracer.start_span(f"s{i}").end()
        finally:
            telemetry.shutdown()
        assert len(receiver.spans) == 1200
        assert len(receiver.headers) >= 3
        for sent in receiver.headers:
            headers = {k.lower(): v for k, v in sent.items()}
            assert headers["x-tenant"] == "blue team"
            assert headers["authorization"] == "Bearer t0k"
            assert headers["content-encoding"] == "gzip"
            assert headers["content-type"] == "application/x-protobuf"


def test_the_endpoint_and_headers_come_from_the_config_first() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-from=env",
    }
    target = HttpTarget.resolve("https://collector.example:4318/", {"x-from": "config"}, 3, env)
    assert target.url == "https://collector.example:4318/v1/traces"
    assert target.headers == {"x-from": "config"}
    assert HttpTarget.resolve(None, {}, 3, env).url == "http://env:4318/v1/traces"
    assert HttpTarget.resolve(None, {}, 3, env).headers == {"x-from": "env"}
    assert HttpTarget.resolve(None, {}, 3, {}).url == "http://localhost:4318/v1/traces"
    assert "x-from" not in repr(target)  # headers carry a vendor's key: never in a repr


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector:21"])
def test_an_endpoint_that_is_not_an_http_url_fails_at_start_naming_it(endpoint: str) -> None:
    with pytest.raises(ValueError, match="OTLP endpoint"):
        setup.start(OtelSettings(endpoint=endpoint, metrics=False), {})
    assert spans._provider is None  # nothing half set up is left behind


def test_the_grpc_protocol_keeps_the_sdk() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    endpoint = f"http://127.0.0.1:{free_port()}"
    telemetry = setup.start(OtelSettings(endpoint=endpoint, protocol="grpc", metrics=False), {})
    try:
        assert isinstance(telemetry.tracer_provider, TracerProvider)
        assert telemetry.exporters == []
    finally:
        telemetry.shutdown()


def test_under_load_only_whole_batches_are_posted_and_the_rest_waits_for_its_schedule() -> None:
    """A POST costs the gateway's core ~0.3 ms: the spans left after a whole batch (those that
    came while it was sent) wait for the next batch or the schedule, not a POST of their own."""
    with OtlpReceiver() as receiver:
        drops = Drops()
        queue = SpanQueue(10_000, 100, drops)
        tracer = LeanTracerProvider(Sampler(), queue).get_tracer("chatgate")
        for i in range(150):  # a whole batch and a half waiting when the exporter wakes
            tracer.start_span(f"s{i}").end()
        target = HttpTarget(f"{receiver.http_endpoint}/v1/traces", timeout_s=5)
        exporter = Exporter(queue, target, {}, drops, schedule_s=30, batch_size=100)
        try:
            took = receiver.wait_for_spans(lambda got: len(got) >= 100)
            assert len(took) == 100
            time.sleep(0.5)  # the half batch must not follow on its own
            assert len(receiver.spans) == 100
            assert len(receiver.headers) == 1
            assert exporter.force_flush(5000)  # a flush sends everything
            assert len(receiver.spans) == 150
            assert len(receiver.headers) == 2
        finally:
            exporter.shutdown(5000)
        assert drops.count == 0


def test_a_part_batch_is_sent_on_schedule_without_a_flush() -> None:
    with OtlpReceiver() as receiver:
        drops = Drops()
        queue = SpanQueue(10_000, 100, drops)
        target = HttpTarget(f"{receiver.http_endpoint}/v1/traces", timeout_s=5)
        exporter = Exporter(queue, target, {}, drops, schedule_s=0.2, batch_size=100)
        tracer = LeanTracerProvider(Sampler(), queue).get_tracer("chatgate")
        try:
            for i in range(30):
                tracer.start_span(f"s{i}").end()
            assert len(receiver.wait_for_spans(lambda got: len(got) == 30, 5)) == 30
        finally:
            exporter.shutdown(5000)


def test_spans_are_encoded_as_soon_as_a_slice_waits_and_posted_by_the_whole_batch() -> None:
    """A queued span keeps its request's facts alive, and objects kept past their request slow
    every later one: the exporter takes each slice off the queue and encodes it at once, while
    the POST still waits for a whole batch (or the schedule, a flush, the shutdown)."""
    with OtlpReceiver() as receiver:
        drops = Drops()
        queue = SpanQueue(10_000, 10, drops)  # wakes the exporter at each slice of 10
        target = HttpTarget(f"{receiver.http_endpoint}/v1/traces", timeout_s=5)
        exporter = Exporter(queue, target, {}, drops, schedule_s=30, batch_size=100, encode_size=10)
        tracer = LeanTracerProvider(Sampler(), queue).get_tracer("chatgate")
        try:
            for i in range(30):
                tracer.start_span(f"s{i}").end()
            deadline = time.monotonic() + 5
            while len(queue) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(queue) == 0  # taken and encoded: no span object waits
            assert receiver.spans == []  # a part batch: not posted on its own
            assert exporter.force_flush(5000)
            assert sorted(s.name for s in receiver.spans) == sorted(f"s{i}" for i in range(30))
            assert len(receiver.headers) == 1  # the three slices in one POST
        finally:
            exporter.shutdown(5000)
        assert drops.count == 0


def test_a_span_the_encoder_cannot_write_is_dropped_alone_and_the_thread_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An instrumentation can set what OTLP has no form for (the lean recorder does not
    check attributes on the request path): a dict with int keys. That span is dropped and
    counted; the rest of its slice, and every later span, still reach the collector."""
    with OtlpReceiver() as receiver:
        drops = Drops()
        queue = SpanQueue(1000, 4, drops)
        target = HttpTarget(f"{receiver.http_endpoint}/v1/traces")
        exporter = Exporter(queue, target, {}, drops, schedule_s=30, batch_size=4, encode_size=4)
        tracer = LeanTracerProvider(Sampler(), queue).get_tracer("chatgate")
        for i in range(12):
            span = tracer.start_span(f"s{i}")
            if i in (1, 6):
                span.set_attribute("odd", {1: "one"})  # type: ignore[dict-item]  # what a careless instrumentation passes
            span.end()
        assert exporter.force_flush(5000)
        exporter.shutdown(5000)
    names = sorted(int(s.name[1:]) for s in receiver.spans)
    assert names == [i for i in range(12) if i not in (1, 6)]
    assert drops.count == 2
    assert "could not encode a span" in caplog.text
