"""OTLP export of the gateway's spans and metrics (the ``server`` extra installs the SDK and
exporters; the library never imports this module).

Spans over OTLP/HTTP (the default) are recorded by chatgate's lean recorder
(telemetry/recorder.py, export.py, otlp.py: a tenth of the SDK's CPU per span); over gRPC by
the SDK, with its BatchSpanProcessor and gRPC exporter (the lean exporter speaks HTTP only).
Either way the request path appends to a bounded queue and a background thread exports. A
collector that is down or slow costs that thread its export timeout and nothing else; spans
that find the queue full, or whose export failed, are dropped and counted (``on_drop``),
never waited for. Metrics are the SDK's in both cases.

Settings come from ``general_settings.otel``; what it leaves out, the exporters read from the
standard ``OTEL_EXPORTER_OTLP_*`` variables, and the resource from ``OTEL_SERVICE_NAME`` /
``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from chatgate.config import OtelSettings
from chatgate.telemetry import metrics, sampling, spans
from chatgate.telemetry.export import Exporter, HttpTarget
from chatgate.telemetry.recorder import LeanTracerProvider, SpanQueue

__all__ = ["Telemetry", "start", "wanted"]

log = logging.getLogger("chatgate.telemetry")

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_SHUTDOWN_MS = 2000  # a collector that is down must not hold up the gateway's exit
_BATCH = 512  # spans per export: the SDK's default


def wanted(settings: OtelSettings | None, env: Mapping[str, str]) -> bool:
    """Export when configured, or when the standard endpoint variable is set."""
    return settings is not None or any(env.get(name) for name in _ENDPOINT_VARS)


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


@dataclass
class Telemetry:
    tracer_provider: trace.TracerProvider
    meter_provider: MeterProvider | None
    exporter: Exporter | None = None  # the lean recorder's; None when the SDK records

    def shutdown(self) -> None:
        """Flush what is queued (bounded in time) and stop; chatgate's spans go back to the
        application's global provider."""
        spans.set_tracer_provider(None)
        spans.capture_content(False)
        metrics.set_meter_provider(None)
        if self.exporter is not None:
            self.exporter.shutdown(_SHUTDOWN_MS)
        elif isinstance(self.tracer_provider, TracerProvider):
            self.tracer_provider.force_flush(_SHUTDOWN_MS)
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=_SHUTDOWN_MS)


def _protocol(settings: OtelSettings, env: Mapping[str, str]) -> str:
    return (
        settings.protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )


def _grpc_exporters(settings: OtelSettings) -> tuple[SpanExporter, MetricExporter]:
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
    return (
        GrpcSpans(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout),
        GrpcMetrics(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout),
    )


def _http_metrics(settings: OtelSettings) -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetrics,
    )

    base = settings.endpoint.rstrip("/") if settings.endpoint else None
    return HttpMetrics(
        endpoint=f"{base}/v1/metrics" if base else None,
        headers=settings.headers or None,
        timeout=settings.export_timeout_s,
    )


def _sdk_sampler(chosen: sampling.Sampler) -> Sampler:
    ratio = TraceIdRatioBased(chosen.rate)
    return ParentBased(ratio) if chosen.parent_based else ratio


def start(
    settings: OtelSettings | None,
    env: Mapping[str, str],
    on_drop: Callable[[int], None] = lambda n: None,
) -> Telemetry:
    """Build the providers and exporters and make chatgate's spans and metrics use them (the
    application's global providers are left alone)."""
    settings = settings or OtelSettings()
    protocol = _protocol(settings, env)
    if protocol not in ("http/protobuf", "grpc"):
        raise ValueError(f"OTLP protocol {protocol!r}: use 'http/protobuf' or 'grpc'")
    named = settings.service_name or env.get("OTEL_SERVICE_NAME") or "chatgate"
    resource = Resource.create({"service.name": named})
    configured = "sample_rate" in settings.model_fields_set
    sampler = sampling.from_settings(settings.sample_rate if configured else None, env)
    exporter = None
    tracer_provider: trace.TracerProvider
    if protocol == "grpc":
        span_exporter, metric_exporter = _grpc_exporters(settings)
        tracer_provider = TracerProvider(resource=resource, sampler=_sdk_sampler(sampler))
        tracer_provider.add_span_processor(
            _CountingProcessor(
                _CountingExporter(span_exporter, on_drop), settings.max_queue_size, on_drop
            )
        )
    else:
        metric_exporter = _http_metrics(settings)
        queue = SpanQueue(settings.max_queue_size, min(_BATCH, settings.max_queue_size), on_drop)
        target = HttpTarget.resolve(
            settings.endpoint, settings.headers, settings.export_timeout_s, env
        )
        exporter = Exporter(queue, target, dict(resource.attributes), on_drop, batch_size=_BATCH)
        tracer_provider = LeanTracerProvider(sampler, queue)
    meter_provider = None
    if settings.metrics:
        reader = PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=settings.metrics_interval_s * 1000
        )
        # Exemplars (a trace id kept with a measurement) cost more than the measurement on
        # every sampled request: off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them.
        exemplars = None if env.get("OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], exemplar_filter=exemplars
        )
        metrics.set_meter_provider(meter_provider)
    spans.set_tracer_provider(tracer_provider)
    spans.capture_content(settings.capture_content)
    return Telemetry(tracer_provider, meter_provider, exporter)
