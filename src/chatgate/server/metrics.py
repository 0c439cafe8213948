"""Prometheus metrics for GET /metrics.

``Metrics.record(ctx)`` is called by the usage pipeline, off the request path; only the
in-flight gauge is touched on the request path (one locked add each way).

With ``--workers N`` every worker is its own process: prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``chatgate serve`` before the workers start) keeps each
worker's values in a file in that directory and /metrics, answered by any worker, sums them.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from chatgate.server.context import RequestContext
from chatgate.server.services import SpendHooks

__all__ = ["CONTENT_TYPE_LATEST", "OTHER", "Metrics", "multiprocess_dir"]

OTHER = "other"  # the label of every model or deployment past the cap

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_MODEL = ("model", "deployment")


@dataclass(frozen=True, slots=True)
class _RouteSeries:
    requests: Counter
    overhead: Histogram


@dataclass(frozen=True, slots=True)
class _ModelSeries:
    latency: Histogram
    ttft: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter
    cache_hits: Counter


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """One set of metrics per app (no module globals), in its own registry."""

    def __init__(self, max_models: int = 500) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # Model and deployment label values are capped (past the cap: "other"): clients can
        # name models, and every value is a dozen series kept for the life of the process.
        self._max_models = max_models
        self._labels: dict[str, str] = {"": ""}  # the values given a label of their own
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values live in files; collection reads the files instead.
        reg = None if self.multiprocess else self.registry
        self._routes: dict[tuple[str, str, str, int], _RouteSeries] = {}
        self._models: dict[tuple[str, str], _ModelSeries] = {}
        self.requests = Counter(
            "chatgate_requests",
            "Requests by route, model, deployment and HTTP status.",
            ("route", *_MODEL, "status"),
            registry=reg,
        )
        self.latency = Histogram(
            "chatgate_request_latency_seconds",
            "Time from request arrival to the last byte of the answer.",
            _MODEL,
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.ttft = Histogram(
            "chatgate_ttft_seconds",
            "Streams: time from request arrival to the first content chunk.",
            _MODEL,
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.overhead = Histogram(
            "chatgate_overhead_seconds",
            "Gateway time before the answer began, excluding the wait for the upstream.",
            ("route",),
            buckets=_OVERHEAD_BUCKETS,
            registry=reg,
        )
        self.tokens = Counter(
            "chatgate_tokens",
            "Tokens by direction: input (prompt) and output (completion).",
            (*_MODEL, "direction"),
            registry=reg,
        )
        self.cost = Counter(
            "chatgate_cost_usd", "Spend in USD, where the price is known.", _MODEL, registry=reg
        )
        self.errors = Counter(
            "chatgate_errors",
            "Failed requests by error class.",
            ("route", "model", "error_class"),
            registry=reg,
        )
        self.cache_hits = Counter(
            "chatgate_cache_hits", "Answers served from the cache.", _MODEL, registry=reg
        )
        self.in_flight = Gauge(
            "chatgate_in_flight_requests",
            "Requests being served now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.dropped = Counter(
            "chatgate_usage_records_dropped",
            "Requests whose metrics and access-log line were dropped because the pipeline was full "
            "(their spend records are not: they go to the spend log at once).",
            registry=reg,
        )
        self.otel_spans_dropped = Counter(
            "chatgate_otel_spans_dropped",
            "Spans not exported: the export queue was full or the collector did not take them.",
            registry=reg,
        )
        self.shared_state_fallbacks = Counter(
            "chatgate_shared_state_fallbacks",
            "Router and key-limit state operations answered from this process's memory "
            "because the shared-state Redis was unavailable.",
            registry=reg,
        )
        self.shared_state_refusals = Counter(
            "chatgate_shared_state_refusals",
            "Calls refused because the shared-state Redis was unavailable and "
            "shared_state_failure is closed, by scope (router, key) and reason.",
            ("scope", "reason"),
            registry=reg,
        )
        self.spend_pending = Gauge(
            "chatgate_spend_records_pending",
            "Spend records taken but not in the database yet (in memory or in the WAL).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.spend_dropped = Counter(
            "chatgate_spend_records_dropped",
            "Spend records lost: held in memory past the cap, the WAL and database failing.",
            registry=reg,
        )
        self.log_dropped = Counter(
            "chatgate_access_log_dropped",
            "Access-log lines dropped because the log writer fell behind.",
            registry=reg,
        )

    def spend_hooks(self) -> SpendHooks:
        return {"on_pending": self.spend_pending.set, "on_dropped": self.spend_dropped.inc}

    def shared_state_refused(self, scope: str, reason: str) -> None:
        self.shared_state_refusals.labels(scope, reason).inc()

    def _label(self, value: str) -> str:
        label = self._labels.get(value)
        if label is not None:
            return label
        if len(self._labels) > self._max_models:  # "" is not counted
            return OTHER
        self._labels[value] = value
        return value

    def record(self, ctx: RequestContext) -> None:
        labels = self._labels  # the usual names are known: a lookup, not a call
        model = labels.get(ctx.requested_model or "") or self._label(ctx.requested_model or "")
        deployment = labels.get(ctx.deployment or "") or self._label(ctx.deployment or "")
        route = self._route_series(ctx.route, model, deployment, ctx.status)
        route.requests.inc()
        route.overhead.observe(max(ctx.overhead_ms or 0.0, 0.0) / 1000.0)
        if ctx.error_class is not None:
            self.errors.labels(ctx.route, model, ctx.error_class).inc()
        if not deployment:
            return
        series = self._model_series(model, deployment)
        series.latency.observe(ctx.latency_ms / 1000.0)
        if ctx.ttft_ms is not None and ctx.stream:
            series.ttft.observe(ctx.ttft_ms / 1000.0)
        usage = ctx.usage
        if usage is not None:
            if usage.prompt_tokens:
                series.input_tokens.inc(usage.prompt_tokens)
            if usage.completion_tokens:
                series.output_tokens.inc(usage.completion_tokens)
        if ctx.cost is not None:
            series.cost.inc(float(ctx.cost))
        if ctx.cache_hit:
            series.cache_hits.inc()

    # ``labels()`` costs about a microsecond a call (a tuple, a lock, a dict); a request
    # touches up to eight series, so each label combination's children are looked up once.

    def _route_series(self, route: str, model: str, deployment: str, status: int) -> _RouteSeries:
        key = (route, model, deployment, status)
        series = self._routes.get(key)
        if series is None:
            series = self._routes[key] = _RouteSeries(
                self.requests.labels(route, model, deployment, str(status)),
                self.overhead.labels(route),
            )
        return series

    def _model_series(self, model: str, deployment: str) -> _ModelSeries:
        series = self._models.get((model, deployment))
        if series is None:
            series = self._models[(model, deployment)] = _ModelSeries(
                latency=self.latency.labels(model, deployment),
                ttft=self.ttft.labels(model, deployment),
                input_tokens=self.tokens.labels(model, deployment, "input"),
                output_tokens=self.tokens.labels(model, deployment, "output"),
                cost=self.cost.labels(model, deployment),
                cache_hits=self.cache_hits.labels(model, deployment),
            )
        return series

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry)

    def forget_dead_processes(self) -> None:
        """Drop the live gauges (in flight, spend records pending) of workers that were
        killed, so a sum over the live ones does not keep their last values."""
        directory = multiprocess_dir()
        if directory is None:
            return
        for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
            pid_text = path.rsplit("_", 1)[1].removesuffix(".db")
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped upstream
            except PermissionError:  # alive, another user's
                continue

    def process_exited(self) -> None:
        """Forget this process's live gauges (in-flight) when it shuts down cleanly."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # as above
