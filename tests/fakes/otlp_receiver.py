"""A real OTLP receiver on 127.0.0.1: OTLP/HTTP (POST /v1/traces and /v1/metrics, protobuf
bodies) and OTLP/gRPC (the collector's TraceService and MetricsService), decoding what it gets
with the ``opentelemetry-proto`` messages a collector uses, and keeping it for tests to read.

    with OtlpReceiver() as receiver:       # receiver.http_endpoint, receiver.grpc_endpoint
        ...
        spans = receiver.wait_for_spans(lambda s: len(s) >= 3)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanPb


@dataclass
class Span:
    name: str
    trace_id: str  # hex
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: str  # SERVER, CLIENT, INTERNAL, ...
    attributes: dict[str, Any]
    status: str  # UNSET, OK, ERROR
    resource: dict[str, Any]
    start_ns: int = 0
    end_ns: int = 0
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id), hex


@dataclass
class Metric:
    name: str
    unit: str
    points: list[dict[str, Any]] = field(default_factory=list)  # attributes + value / buckets


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attrs(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


def _attrs(values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in values if isinstance(kv, KeyValue)}


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    out = []
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    Span(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        kind=SpanPb.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                        attributes=_attrs(s.attributes),
                        status=("UNSET", "OK", "ERROR")[s.status.code],
                        resource=resource,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        links=[(k.trace_id.hex(), k.span_id.hex()) for k in s.links],
                    )
                )
    return out


def _metrics(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[Metric]:
    out = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                metric = Metric(m.name, m.unit)
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                for p in data.data_points:
                    point: dict[str, Any] = {"attributes": _attrs(p.attributes)}
                    if kind == "histogram":
                        point.update(
                            count=p.count,
                            sum=p.sum,
                            bounds=list(p.explicit_bounds),
                            buckets=list(p.bucket_counts),
                        )
                    else:
                        point["value"] = p.as_double if p.HasField("as_double") else p.as_int
                    metric.points.append(point)
                out.append(metric)
    return out


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.metrics: list[Metric] = []
        self.headers: list[dict[str, str]] = []  # of each export request
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._grpc: grpc.Server | None = None
        self.http_port = 0
        self.grpc_port = 0

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def wait_for_spans(
        self, done: Callable[[list[Span]], bool], timeout_s: float = 10.0
    ) -> list[Span]:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                spans = list(self.spans)
            if done(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.02)

    def metric(self, name: str) -> list[Metric]:
        with self._lock:
            return [m for m in self.metrics if m.name == name]

    def _took(self, spans: list[Span], metrics: list[Metric], headers: dict[str, str]) -> None:
        with self._lock:
            self.spans += spans
            self.metrics += metrics
            self.headers.append(headers)

    # -- OTLP/HTTP ---------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> bytes:
        # aiohttp has already undone a Content-Encoding: gzip (a body that is not gzip is its 400)
        return await request.read()

    async def _traces(self, request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest.FromString(await self._body(request))
        self._took(_spans(message), [], dict(request.headers))
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        message = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        self._took([], _metrics(message), dict(request.headers))
        reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- OTLP/gRPC ---------------------------------------------------------------------------

    def _start_grpc(self) -> None:
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                metadata = dict(context.invocation_metadata())
                receiver._took(_spans(request), [], metadata)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                metadata = dict(context.invocation_metadata())
                receiver._took([], _metrics(request), metadata)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self._start_grpc()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
