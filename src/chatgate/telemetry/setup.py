"""OTLP export of the gateway's spans and metrics (the ``server`` extra installs the SDK and
exporters; the library never imports this module).

Over OTLP/HTTP (the default) spans and metrics are recorded by chatgate's lean recorder and
meters (telemetry/recorder.py, meters.py; exported by export.py): a small fraction of the SDK's
CPU per request. Over gRPC, the SDK records and exports them (telemetry/sdk_export.py): the
lean exporter speaks HTTP only. Either way the request path appends to a bounded queue and a
background thread exports. A collector that is down or slow costs that thread its export
timeout and nothing else; spans that find the queue full, or whose export failed, are dropped
and counted (``on_drop``), never waited for.

Settings come from ``general_settings.otel``; what it leaves out is read from the standard
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_TRACES_SAMPLER(_ARG)`` variables, and the resource from
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from chatgate.config import OtelSettings
from chatgate.telemetry import metrics, sampling, spans
from chatgate.telemetry.export import Exporter, HttpTarget, MetricExporter
from chatgate.telemetry.meters import LeanMeterProvider
from chatgate.telemetry.recorder import LeanTracerProvider, SpanQueue
from chatgate.telemetry.sdk_export import grpc_providers

__all__ = ["Telemetry", "start", "wanted"]

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_SHUTDOWN_MS = 2000  # a collector that is down must not hold up the gateway's exit
_BATCH = 512  # spans per export: the SDK's default
_SLICE = 128  # spans encoded at a time, as soon as they wait (export.py)


def wanted(settings: OtelSettings | None, env: Mapping[str, str]) -> bool:
    """Export when configured, or when the standard endpoint variable is set."""
    return settings is not None or any(env.get(name) for name in _ENDPOINT_VARS)


@dataclass
class Telemetry:
    tracer_provider: trace.TracerProvider
    meter_provider: otel_metrics.MeterProvider | None
    # the lean path's export threads; empty when the SDK records
    exporters: list[Exporter | MetricExporter] = field(default_factory=list)

    def shutdown(self) -> None:
        """Flush what is queued (bounded in time) and stop; chatgate's spans go back to the
        application's global provider."""
        spans.set_tracer_provider(None)
        spans.capture_content(False)
        metrics.set_meter_provider(None)
        deadline = time.monotonic() + _SHUTDOWN_MS / 1000  # for all of them together
        for exporter in self.exporters:
            exporter.shutdown(max(0, int((deadline - time.monotonic()) * 1000)))
        if isinstance(self.tracer_provider, TracerProvider):
            self.tracer_provider.force_flush(_SHUTDOWN_MS)
            self.tracer_provider.shutdown()
        if isinstance(self.meter_provider, MeterProvider):
            self.meter_provider.shutdown(timeout_millis=_SHUTDOWN_MS)


def _protocol(settings: OtelSettings, env: Mapping[str, str]) -> str:
    return (
        settings.protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )


def _lean(
    settings: OtelSettings,
    env: Mapping[str, str],
    resource: Resource,
    sampler: sampling.Sampler,
    on_drop: Callable[[int], None],
) -> Telemetry:
    def target(signal: str) -> HttpTarget:
        timeout = settings.export_timeout_s
        return HttpTarget.resolve(settings.endpoint, settings.headers, timeout, env, signal)

    attributes = dict(resource.attributes)
    traces, metrics_to = target("traces"), target("metrics")  # both checked before any starts
    queue = SpanQueue(settings.max_queue_size, min(_SLICE, settings.max_queue_size), on_drop)
    exporters: list[Exporter | MetricExporter] = [
        Exporter(queue, traces, attributes, on_drop, batch_size=_BATCH, encode_size=_SLICE)
    ]
    meter_provider = None
    if settings.metrics:
        meter_provider = LeanMeterProvider()
        interval = settings.metrics_interval_s
        exporters.append(MetricExporter(meter_provider, metrics_to, attributes, interval))
    return Telemetry(LeanTracerProvider(sampler, queue), meter_provider, exporters)


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
    if protocol == "grpc":
        tracer_provider, sdk_meters = grpc_providers(settings, env, resource, sampler, on_drop)
        telemetry = Telemetry(tracer_provider, sdk_meters)
    else:
        telemetry = _lean(settings, env, resource, sampler, on_drop)
    if telemetry.meter_provider is not None:
        metrics.set_meter_provider(telemetry.meter_provider)
    spans.set_tracer_provider(telemetry.tracer_provider)
    spans.capture_content(settings.capture_content)
    return telemetry
