"""OTLP protobuf encoding of the lean meters' series: an ``ExportMetricsServiceRequest``,
written by hand like the spans' (telemetry/otlp.py says why), checked the same way by a test
that decodes it with opentelemetry-proto.

Cumulative temporality throughout, from the provider's start; a sum is ``as_int`` while every
amount added was an int, as the SDK reports it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from chatgate.telemetry.meters import Instrument, Series
from chatgate.telemetry.otlp import _field, _string, encode_attributes

__all__ = ["encode_metrics"]

_CUMULATIVE = 2
_TIMES = struct.Struct("<BQBQ")  # a point's start_time_unix_nano and time_unix_nano
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")


def _number_point(series: Series, start_ns: int, now_ns: int) -> bytes:
    """NumberDataPoint: 2/3 times, 4 as_double, 6 as_int (sfixed64), 7 attributes."""
    value = series.value
    number = (
        b"\x31" + _FIXED64.pack(value & 0xFFFFFFFFFFFFFFFF)
        if type(value) is int
        else b"\x21" + _DOUBLE.pack(float(value))
    )
    at = series.at_ns or now_ns
    return (
        _TIMES.pack(0x11, start_ns, 0x19, at) + number + encode_attributes(series.attributes, 0x3A)
    )


def _histogram_point(series: Series, start_ns: int, now_ns: int, bounds: Sequence[float]) -> bytes:
    """HistogramDataPoint: 2/3 times, 4 count, 5 sum, 6 bucket_counts and 7 explicit_bounds
    (packed), 9 attributes, 11 min, 12 max."""
    buckets = series.buckets or []
    parts = [
        _TIMES.pack(0x11, start_ns, 0x19, now_ns),
        b"\x21" + _FIXED64.pack(series.count),
        b"\x29" + _DOUBLE.pack(float(series.value)),
        _field(0x32, struct.pack(f"<{len(buckets)}Q", *buckets)),
        _field(0x3A, struct.pack(f"<{len(bounds)}d", *bounds)),
        encode_attributes(series.attributes, 0x4A),
    ]
    if series.count:
        parts += (b"\x59" + _DOUBLE.pack(series.low), b"\x61" + _DOUBLE.pack(series.high))
    return b"".join(parts)


def _metric(instrument: Instrument, points: list[Series], start_ns: int, now_ns: int) -> bytes:
    """Metric: 1 name, 2 description, 3 unit, then 5 gauge, 7 sum or 9 histogram."""
    head = _string(0x0A, instrument.name)
    if instrument.description:
        head += _string(0x12, instrument.description)
    if instrument.unit:
        head += _string(0x1A, instrument.unit)
    if instrument.kind == "histogram":
        encoded = [_histogram_point(s, start_ns, now_ns, instrument.bounds) for s in points]
        body = b"".join(_field(0x0A, p) for p in encoded) + bytes((0x10, _CUMULATIVE))
        return head + _field(0x4A, body)
    encoded = [_number_point(s, start_ns, now_ns) for s in points]
    body = b"".join(_field(0x0A, p) for p in encoded)
    if instrument.kind == "gauge":
        return head + _field(0x2A, body)
    body += bytes((0x10, _CUMULATIVE, 0x18, int(instrument.monotonic)))
    return head + _field(0x3A, body)


def encode_metrics(
    resource: bytes,
    snapshot: Sequence[tuple[str, Instrument, list[Series]]],
    start_ns: int,
    now_ns: int,
) -> bytes | None:
    """ExportMetricsServiceRequest (``resource`` from otlp.encode_resource), one ScopeMetrics
    per meter; None when no instrument has a point yet."""
    by_scope: dict[str, list[bytes]] = {}
    for scope, instrument, points in snapshot:
        if points:
            metric = _metric(instrument, points, start_ns, now_ns)
            by_scope.setdefault(scope, []).append(_field(0x12, metric))
    if not by_scope:
        return None
    scopes = [
        _field(0x12, _field(0x0A, _string(0x0A, scope)) + b"".join(metrics))
        for scope, metrics in by_scope.items()
    ]
    return _field(0x0A, resource + b"".join(scopes))
