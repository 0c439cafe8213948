"""The gateway's OTLP export over gRPC, through the SDK: its TracerProvider with a
BatchSpanProcessor, its gRPC exporters and MeterProvider (the lean recorder, telemetry/
recorder.py, speaks OTLP/HTTP only). The spans and metrics are the same; the CPU per request is
the SDK's (docs/observability.md gives both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from chatgate.config import OtelSettings
from chatgate.telemetry import sampling

__all__ = ["grpc_providers", "sdk_sampler"]

log = logging.getLogger("chatgate.telemetry")


class _CountingExporter(SpanExporter):
    """Counts the spans of every batch that could not be exported."""

    def __init__(self, inner: SpanExporter, on_drop: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_drop = on_drop

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        # The top of the export thread: whatever an exporter raises, the spans are lost and
        # counted, and the thread goes on with the next batch.
        except Exception as exc:
            log.debug("span export failed: %s", type(exc).__name__)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._on_drop(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _CountingProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor that counts the spans it drops because its queue is full."""

    def __init__(
        self, exporter: SpanExporter, max_queue_size: int, on_drop: Callable[[int], None]
    ) -> None:
        batch = min(512, max_queue_size)  # the SDK default, or the whole queue if smaller
        super().__init__(exporter, max_queue_size=max_queue_size, max_export_batch_size=batch)
        self._max_queue = max_queue_size
        self._on_drop = on_drop
        # The SDK drops the oldest span when its deque is full and only logs it; its length is
        # the one way to know (read-only, a deque's len is thread-safe).
        self._queue_of = getattr(self._batch_processor, "_queue", None)

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue_of
        if queue is not None and len(queue) >= self._max_queue and span.context.trace_flags.sampled:
            self._on_drop(1)
        super().on_end(span)


def sdk_sampler(chosen: sampling.Sampler) -> Sampler:
    ratio = TraceIdRatioBased(chosen.rate)
    return ParentBased(ratio) if chosen.parent_based else ratio


def grpc_providers(
    settings: OtelSettings,
    env: Mapping[str, str],
    resource: Resource,
    sampler: sampling.Sampler,
    on_drop: Callable[[int], None],
) -> tuple[TracerProvider, MeterProvider | None]:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
        OTLPMetricExporter as GrpcMetrics,
    )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpans,
    )

    headers = settings.headers or None
    timeout = settings.export_timeout_s
    endpoint = settings.endpoint
    insecure = endpoint.startswith("http://") if endpoint else None
    span_exporter = GrpcSpans(
        endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout
    )
    tracer_provider = TracerProvider(resource=resource, sampler=sdk_sampler(sampler))
    tracer_provider.add_span_processor(
        _CountingProcessor(
            _CountingExporter(span_exporter, on_drop), settings.max_queue_size, on_drop
        )
    )
    if not settings.metrics:
        return tracer_provider, None
    metric_exporter = GrpcMetrics(
        endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout
    )
    reader = PeriodicExportingMetricReader(
        metric_exporter, export_interval_millis=settings.metrics_interval_s * 1000
    )
    # Exemplars (a trace id kept with a measurement) cost more than the measurement on
    # every sampled request: off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them.
    exemplars = None if env.get("OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader], exemplar_filter=exemplars
    )
    return tracer_provider, meter_provider
