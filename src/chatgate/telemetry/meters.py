"""The gateway's metric instruments: the OpenTelemetry API's MeterProvider / Meter and its
instruments, lean, beside the lean span recorder.

The SDK spends 15-25 us per measurement in a busy gateway (view matching, attribute
validation, exemplar and aggregation machinery); a request makes four or five, about 100 us,
more than everything else tracing does (bench/tracing.py). Here a measurement is a dict look-up
by its attributes and an update of that series' running state under a lock; the export thread
reads the states (cumulative temporality, as the SDK's default) and encodes them
(telemetry/otlp_metrics.py).

Counters, up-down counters, histograms (explicit buckets: the advisory boundaries, else the
SDK's defaults), gauges and the observable instruments (called back at each collection).
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left as _bucket
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, CallbackT, Observation
from opentelemetry.util.types import Attributes

__all__ = ["FrozenAttributes", "Instrument", "Later", "LeanMeter", "LeanMeterProvider", "Series"]

log = logging.getLogger("chatgate.telemetry")

# The SDK's default explicit bucket boundaries.
DEFAULT_BOUNDS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0,
                  5000.0, 7500.0, 10000.0)  # fmt: skip

Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _callable(callback: CallbackT) -> Callback:
    """The API lets a callback be a generator sent the options: primed once, as the SDK."""
    if isinstance(callback, Generator):
        next(callback)
        return callback.send
    return callback


class FrozenAttributes(dict[str, Any]):
    """An attribute set built once and measured many times (never changed after it is
    made): it carries its series key, so a measurement does not hash its items again. Any
    meter takes it as the plain dict it is."""

    __slots__ = ("key",)

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        super().__init__(attributes)
        self.key = frozenset(self.items())


@dataclass(slots=True)
class Series:
    """One attribute set's running state. Sums and gauges: ``value``; histograms: ``count``,
    ``value`` (the sum), ``low``, ``high`` and ``buckets``."""

    attributes: Mapping[str, Any]
    value: float = 0
    count: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    buckets: list[int] | None = None
    at_ns: int = 0  # a gauge's last set


class Instrument:
    """kind: "sum", "gauge" or "histogram"; ``monotonic`` for sums."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        kind: str,
        *,
        monotonic: bool = False,
        bounds: Sequence[float] | None = None,
        callbacks: Sequence[CallbackT] = (),
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.kind = kind
        self.monotonic = monotonic
        self.bounds = tuple(float(b) for b in bounds) if bounds is not None else DEFAULT_BOUNDS
        self.callbacks = tuple(_callable(c) for c in callbacks)
        self.series: dict[frozenset[tuple[str, Any]], Series] = {}
        self.lock = threading.Lock()

    def _series(self, attributes: Attributes) -> Series:
        if type(attributes) is FrozenAttributes:
            key = attributes.key
        else:
            key = frozenset(attributes.items()) if attributes else frozenset()
        found = self.series.get(key)
        if found is None:
            found = Series(dict(attributes or {}))
            if self.kind == "histogram":
                found.buckets = [0] * (len(self.bounds) + 1)
            with self.lock:
                found = self.series.setdefault(key, found)
        return found

    def add(self, amount: float, attributes: Attributes) -> None:
        if self.monotonic and amount < 0:
            log.warning("a counter only goes up: %s got %s, left out", self.name, amount)
            return
        series = (
            self.series.get(attributes.key) if type(attributes) is FrozenAttributes else None
        ) or self._series(attributes)
        with self.lock:
            series.value += amount

    def record(self, amount: float, attributes: Attributes) -> None:
        # A known attribute set's series found here, without _series' call: an attempt
        # makes three of these (docs/observability.md, "Cost").
        series = (
            self.series.get(attributes.key) if type(attributes) is FrozenAttributes else None
        ) or self._series(attributes)
        index = _bucket(self.bounds, amount)  # bucket i: (bounds[i-1], bounds[i]]
        with self.lock:
            series.value += amount
            series.count += 1
            if amount < series.low:
                series.low = amount
            if amount > series.high:
                series.high = amount
            series.buckets[index] += 1  # type: ignore[index]  # a histogram's series has them

    def set(self, amount: float, attributes: Attributes) -> None:
        series = self._series(attributes)
        with self.lock:
            series.value = amount
            series.at_ns = time.time_ns()

    def collect(self) -> list[Series]:
        """A consistent copy of every series (observable instruments: called back now)."""
        if self.callbacks:
            return self._observe()
        with self.lock:
            return [
                Series(s.attributes, s.value, s.count, s.low, s.high,
                       list(s.buckets) if s.buckets is not None else None, s.at_ns)
                for s in self.series.values()
            ]  # fmt: skip

    def _observe(self) -> list[Series]:
        now = time.time_ns()
        out = []
        for callback in self.callbacks:
            try:
                observations = list(callback(CallbackOptions()))
            # Someone else's callback, on the export thread: whatever it raises costs its
            # own points, never the export.
            except Exception as exc:
                log.warning("metric callback for %s failed: %s", self.name, type(exc).__name__)
                continue
            out += [Series(dict(o.attributes or {}), o.value, at_ns=now) for o in observations]
        return out


class _Bound:
    """An API instrument object over one of ours: a measurement is one call."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument


def _add(
    self: _Bound, amount: float, attributes: Attributes = None, context: Context | None = None
) -> None:
    self.instrument.add(amount, attributes)


def _record(
    self: _Bound, amount: float, attributes: Attributes = None, context: Context | None = None
) -> None:
    self.instrument.record(amount, attributes)


def _set(
    self: _Bound, amount: float, attributes: Attributes = None, context: Context | None = None
) -> None:
    self.instrument.set(amount, attributes)


class _Counter(_Bound, metrics.Counter):
    add = _add


class _UpDownCounter(_Bound, metrics.UpDownCounter):
    add = _add


class _Histogram(_Bound, metrics.Histogram):
    record = _record


class _Gauge(_Bound, metrics._Gauge):
    set = _set


class _Observable(
    _Bound, metrics.ObservableGauge, metrics.ObservableCounter, metrics.ObservableUpDownCounter
):
    pass


class LeanMeter(metrics.Meter):
    def __init__(
        self, name: str, version: str | None, on_new: Callable[[str, Instrument], None]
    ) -> None:
        super().__init__(name, version)
        self._on_new = on_new

    def _new(self, instrument: Instrument) -> Instrument:
        self._on_new(self._name, instrument)
        return instrument

    def create_counter(self, name: str, unit: str = "", description: str = "") -> metrics.Counter:
        return _Counter(self._new(Instrument(name, unit, description, "sum", monotonic=True)))

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> metrics.UpDownCounter:
        return _UpDownCounter(self._new(Instrument(name, unit, description, "sum")))

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> metrics.Histogram:
        bounds = explicit_bucket_boundaries_advisory
        return _Histogram(
            self._new(Instrument(name, unit, description, "histogram", bounds=bounds))
        )

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> metrics._Gauge:
        return _Gauge(self._new(Instrument(name, unit, description, "gauge")))

    def create_observable_counter(
        self,
        name: str,
        callbacks: Sequence[CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> metrics.ObservableCounter:
        kind = Instrument(name, unit, description, "sum", monotonic=True, callbacks=callbacks or ())
        return _Observable(self._new(kind))

    def create_observable_up_down_counter(
        self,
        name: str,
        callbacks: Sequence[CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> metrics.ObservableUpDownCounter:
        return _Observable(
            self._new(Instrument(name, unit, description, "sum", callbacks=callbacks or ()))
        )

    def create_observable_gauge(
        self,
        name: str,
        callbacks: Sequence[CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> metrics.ObservableGauge:
        return _Observable(
            self._new(Instrument(name, unit, description, "gauge", callbacks=callbacks or ()))
        )


Later = deque[tuple[Callable[..., None], tuple[Any, ...]]]


class LeanMeterProvider(metrics.MeterProvider):
    """Its instruments, by meter (instrumentation scope) name, for the exporter to collect.

    ``later``: measurements the request path left for the export thread, each a function and
    its arguments (chatgate's own, telemetry/metrics.py: the facts of an attempt, not its
    attribute sets); applied in order before every collection (``apply_later``)."""

    def __init__(self) -> None:
        self.start_ns = time.time_ns()
        self.later: Later = deque()
        self._applying = threading.Lock()
        self.instruments: dict[str, list[Instrument]] = {}
        self._meters: dict[tuple[str, str], LeanMeter] = {}
        self._lock = threading.Lock()

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> metrics.Meter:
        scope = (name, version or "")
        with self._lock:
            meter = self._meters.get(scope)
            if meter is None:
                meter = self._meters[scope] = LeanMeter(name, version, self._register)
        return meter

    def _register(self, scope: str, instrument: Instrument) -> None:
        with self._lock:
            self.instruments.setdefault(scope, []).append(instrument)

    def apply_later(self) -> None:
        with self._applying:
            take = self.later.popleft
            for _ in range(len(self.later)):
                apply, args = take()
                apply(*args)

    def snapshot(self) -> list[tuple[str, Instrument, list[Series]]]:
        self.apply_later()
        with self._lock:
            every = [(scope, i) for scope, kept in self.instruments.items() for i in kept]
        return [(scope, i, i.collect()) for scope, i in every]
