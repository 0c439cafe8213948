"""The export threads of the lean recorder and meters.

Spans: the thread takes ended spans off the SpanQueue in slices and encodes them at once
(telemetry/otlp.py), then POSTs them by the batch (telemetry/otlp_http.py). It wakes as soon
as a slice is waiting and sends whole batches only; what is left is sent on its schedule (and
by a flush or the shutdown): under load a POST costs ~0.3 ms of CPU on the gateway's core,
and sending the remainder at every wake made several POSTs of every batch. A batch the
collector refused, or could not take within the timeout, is dropped and counted
(``on_drop``); the next batch tries again. Metrics: every interval, and once more at
shutdown, the meters' series are encoded and POSTed; every second, the measurements the
request path left for later are applied (telemetry/metrics.py). The request path never waits
on any of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from chatgate.telemetry import otlp, otlp_metrics
from chatgate.telemetry.meters import LeanMeterProvider
from chatgate.telemetry.otlp_http import HttpTarget, Poster
from chatgate.telemetry.recorder import Queued, SpanQueue

log = logging.getLogger("chatgate.telemetry")

__all__ = ["Exporter", "HttpTarget", "MetricExporter"]

_APPLY_S = 1.0


class Exporter:
    """Drains ``queue`` on a thread of its own until ``shutdown``."""

    def __init__(
        self,
        queue: SpanQueue,
        target: HttpTarget,
        resource: Mapping[str, Any],
        on_drop: Callable[[int], None],
        *,
        schedule_s: float = 1.0,
        batch_size: int = 512,
        encode_size: int = 128,
    ) -> None:
        self._queue = queue
        self._poster = Poster(target)
        self._resource = otlp.encode_resource(resource)
        self._on_drop = on_drop
        self._schedule_s = schedule_s
        self._batch_size = batch_size
        self._encode_size = min(encode_size, batch_size)
        self._encoded: otlp.EncodedSpans = {}  # taken off the queue, not yet POSTed
        self._encoded_count = 0
        self._stopping = False
        self._sent_all_at = time.monotonic()
        self._told = False  # a span or measurement that failed was logged
        self._flushers = 0  # force_flush calls waiting: everything is sent, not whole batches
        self._drains = 0  # whole drains done: force_flush waits for one begun after its call
        self._flushed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="chatgate-otlp-spans", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._queue.wake.wait(self._schedule_s)
            self._queue.wake.clear()
            due = time.monotonic() - self._sent_all_at >= self._schedule_s
            self._drain(everything=due or self._flushers > 0)
        self._drain(everything=True)
        self._poster.close()

    def _drain(self, *, everything: bool) -> None:
        queue, size = self._queue, self._encode_size
        while len(queue) >= (1 if everything else size):
            # Encoded as soon as a slice waits, POSTed by the whole batch: a queued span keeps
            # its request's facts alive, and objects kept past their request slow every later
            # one (docs/observability.md, "What held objects cost"); bytes do not.
            spans = queue.take(size)
            self._measure(spans)
            self._encode(spans)
            del spans
            if self._encoded_count >= self._batch_size:
                self._post()
        if everything and self._encoded_count:
            self._post()
        if everything:
            self._sent_all_at = time.monotonic()
        with self._flushed:
            if everything:
                self._drains += 1
            self._flushed.notify_all()

    def _measure(self, spans: list[Queued]) -> None:
        """The metrics the spans' facts carry (an attempt's)."""
        for span in spans:
            facts = getattr(span, "facts", None)  # a LeanSpan's; a LateStep has none
            if facts is not None:
                try:
                    facts.measure()
                except Exception as exc:  # a measurement lost, never the export thread
                    self._failed("metrics of a span", exc)

    def _encode(self, spans: list[Queued]) -> None:
        """``spans`` encoded and added to what waits for the POST. A span the encoder cannot
        write (an attribute an instrumentation set that OTLP has no form for, say a dict
        with int keys) is dropped and counted, alone: the rest of its slice is sent, and the
        thread lives on."""
        try:
            encoded = otlp.encode_spans(spans, {})
            count = len(spans)
        except Exception as exc:
            self._failed("a span", exc)
            encoded, count = {}, 0
            for span in spans:
                try:
                    alone = otlp.encode_spans([span], {})
                except Exception:
                    self._on_drop(1)
                    continue
                for scope, items in alone.items():
                    encoded.setdefault(scope, []).extend(items)
                count += 1
        for scope, items in encoded.items():
            self._encoded.setdefault(scope, []).extend(items)
        self._encoded_count += count

    def _failed(self, what: str, exc: Exception) -> None:
        if not self._told:  # once per exporter: a broken instrumentation repeats itself
            self._told = True
            log.warning("could not encode %s for OTLP export: %s", what, type(exc).__name__)

    def _post(self) -> None:
        body = otlp.request_of(self._resource, self._encoded)
        count = self._encoded_count
        self._encoded, self._encoded_count = {}, 0
        if not self._poster.post(body):
            self._on_drop(count)

    def force_flush(self, timeout_ms: int) -> bool:
        """Wait (at most ``timeout_ms``) until what is queued now has been sent or dropped."""
        deadline = time.monotonic() + timeout_ms / 1000
        with self._flushed:
            # The drain under way may have taken its batch before our call: wait for the next.
            wanted = self._drains + 2
            self._flushers += 1
            try:
                while self._drains < wanted and self._thread.is_alive():
                    self._queue.wake.set()
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._flushed.wait(left):
                        return False
            finally:
                self._flushers -= 1
        return True

    def shutdown(self, timeout_ms: int) -> None:
        """Send what is queued (bounded in time) and stop the thread."""
        self._stopping = True
        self._queue.wake.set()
        self._thread.join(timeout_ms / 1000)


class MetricExporter:
    """Sends the meters' series every ``interval_s`` and at ``shutdown``."""

    def __init__(
        self,
        provider: LeanMeterProvider,
        target: HttpTarget,
        resource: Mapping[str, Any],
        interval_s: float,
    ) -> None:
        self._provider = provider
        self._poster = Poster(target)
        self._resource = otlp.encode_resource(resource)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatgate-otlp-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The measurements the request path left are applied every second, whatever the
        # interval: what waits is small (a tuple each), and stays so.
        due = time.monotonic() + self._interval_s
        while not self._stop.wait(min(self._interval_s, _APPLY_S)):
            self._provider.apply_later()
            if time.monotonic() >= due:
                due += self._interval_s
                self.export()
        self.export()
        self._poster.close()

    def export(self) -> bool:
        snapshot = self._provider.snapshot()
        body = otlp_metrics.encode_metrics(
            self._resource, snapshot, self._provider.start_ns, time.time_ns()
        )
        return body is None or self._poster.post(body)

    def shutdown(self, timeout_ms: int) -> None:
        self._stop.set()
        self._thread.join(timeout_ms / 1000)
